// The shell text the program itself sends: the real program (index.ts) runs under the SDK's mocks
// and each remote command's create/update/delete text and stdin are taken from its inputs.
import { runProgram } from "../../tools/program";

export interface ProgramCommand {
    create: string;
    update?: string;
    delete?: string;
    stdin?: string;
}

/** Every command resource of one run of the program with `config`, by resource name. */
export async function programCommands(config: Record<string, unknown>): Promise<Map<string, ProgramCommand>> {
    const run = await runProgram(config);
    const commands = new Map<string, ProgramCommand>();
    for (const r of run.resources) {
        if (!r.type.startsWith("command:")) continue;
        commands.set(r.name, { create: r.inputs.create, update: r.inputs.update, delete: r.inputs.delete, stdin: r.inputs.stdin });
    }
    return commands;
}

/** The command named `name`, or a failure naming it (a renamed resource must not pass silently). */
export function commandOf(commands: Map<string, ProgramCommand>, name: string): ProgramCommand {
    const found = commands.get(name);
    if (!found) throw new Error(`the program registers no command ${name}; it has: ${[...commands.keys()].join(", ")}`);
    return found;
}

/**
 * Shell that waits (10 s at most) until the grant's detached remover runs, and sets `pid` to it:
 * `setsid -f` returns before its child has become `/bin/sh -c sleep ...`.
 */
export const REMOVER_STARTED = `for _ in $(seq 200); do pid=$(pgrep -f '^/bin/sh -c sleep') && break; sleep 0.05; done`;
