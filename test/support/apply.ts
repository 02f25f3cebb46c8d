// One `pulumi up` (or preview) of the real program against the test hosts, in its own process so
// that each run starts with a fresh Pulumi runtime, as the CLI does. The harness (harness.ts)
// spawns it: node --import tsx test/support/apply.ts <request.json> <result.json>
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { runArgv } from "../hosts/testbed";
import { runProgram, type Registered } from "./program";

export interface ApplyRequest {
    config: Record<string, unknown>;
    stack: string;
    statePath: string;
    preview: boolean;
    /** Prefix that runs a program in the operator's namespaces (testbed.operatorCommand). */
    operator: string[];
    stackOutputs?: Record<string, Record<string, unknown>>;
    /** A directory visible inside the operator's namespaces (for known_hosts files). */
    scratchDir: string;
    /** The project as the operator's namespaces see it: local commands run there (the CLI runs them in the project directory). */
    projectDir: string;
}

/** What the harness records for each resource it acted on. */
export interface StepRecord {
    urn: string;
    name: string;
    type: string;
    action: "create" | "update" | "replace" | "delete" | "same";
    host: string;
    command: string;
    exitCode: number;
    stdout: string;
    stderr: string;
    durationMs: number;
}

export interface ApplyResult {
    ok: boolean;
    error?: string;
    steps: StepRecord[];
    outputs: Record<string, unknown>;
    secretOutputs: string[];
    /** Every resource registered, in registration order (for the runbook and the tests). */
    registered: { urn: string; type: string; name: string }[];
}

interface StateEntry {
    type: string;
    name: string;
    inputs: Record<string, any>;
    outputs: Record<string, any>;
    order: number;
}
type State = Record<string, StateEntry>;

async function exec(argv: string[], input: string | undefined): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
    const start = Date.now();
    const result = await runArgv(argv, input);
    return { ...result, ms: Date.now() - start };
}

/** The ssh argv the provider's connection stands for: pinned host key, the agent, a jump host. */
function sshArgv(connection: Record<string, any>, scratch: string): string[] {
    const knownHosts = path.join(scratch, `known_hosts_${crypto.randomUUID()}`);
    const lines: string[] = [];
    const argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null"];
    // Without hostKey the provider checks nothing; with it, exactly that key is accepted.
    if (connection.hostKey) {
        lines.push(`${connection.host} ${connection.hostKey}`);
        argv.push("-o", "StrictHostKeyChecking=yes");
    } else {
        argv.push("-o", "StrictHostKeyChecking=no");
    }
    if (connection.proxy) {
        const p = connection.proxy;
        if (p.hostKey) lines.push(`${p.host} ${p.hostKey}`);
        argv.push("-J", `${p.user ?? "root"}@${p.host}:${p.port ?? 22}`);
    }
    fs.writeFileSync(knownHosts, lines.join("\n") + "\n");
    argv.push("-p", String(connection.port ?? 22), "-l", connection.user ?? "root", connection.host);
    return argv;
}

function sameInputs(a: Record<string, any>, b: Record<string, any>): boolean {
    return JSON.stringify(a) === JSON.stringify(b);
}

async function main(): Promise<void> {
    const [requestPath, resultPath] = process.argv.slice(2);
    const request = JSON.parse(fs.readFileSync(requestPath, "utf8")) as ApplyRequest;
    const previous: State = fs.existsSync(request.statePath) ? JSON.parse(fs.readFileSync(request.statePath, "utf8")) : {};
    const next: State = {};
    const steps: StepRecord[] = [];
    fs.mkdirSync(request.scratchDir, { recursive: true });
    let order = 0;
    let failure: string | undefined;
    const replaced: [string, StateEntry][] = [];

    const runCommand = async (r: Registered | StateEntry & { urn: string }, text: string, action: StepRecord["action"], stdin: string | undefined) => {
        const inputs = r.inputs;
        const remote = r.type === "command:remote:Command";
        const argv = remote
            ? [...request.operator, ...sshArgv(inputs.connection, request.scratchDir), text]
            : [...request.operator, "sh", "-c", `cd ${JSON.stringify(request.projectDir)} && ${text}`];
        const res = await exec(argv, stdin);
        const record: StepRecord = {
            urn: r.urn,
            name: r.name,
            type: r.type,
            action,
            host: remote ? `${inputs.connection.user ?? "root"}@${inputs.connection.host}` : "operator (local)",
            command: text,
            exitCode: res.code,
            stdout: res.stdout,
            stderr: res.stderr,
            durationMs: res.ms,
        };
        steps.push(record);
        if (res.code !== 0) {
            const message = `${r.name} failed on ${record.host} (exit ${res.code}) during ${action}:\n--- command ---\n${text}\n--- stdout ---\n${res.stdout}\n--- stderr ---\n${res.stderr}`;
            failure ??= message;
            throw new Error(message);
        }
        return { stdout: res.stdout, stderr: res.stderr };
    };

    // After a failure, resources that wait for the failed one never register, so the program's
    // promises never settle (as under the engine, which stops). Finish once nothing is running.
    let inFlight = 0;
    let settleFailed: () => void = () => undefined;
    const failedAndIdle = new Promise<undefined>((resolve) => (settleFailed = () => resolve(undefined)));
    // A program error outside any resource (an output that throws) fails the run like the engine.
    process.on("unhandledRejection", (e) => {
        failure ??= String((e as Error)?.message ?? e);
        if (inFlight === 0) settleFailed();
    });
    const keepAlive = setInterval(() => undefined, 1000);
    let run;
    try {
        run = await Promise.race([failedAndIdle, runProgram(request.config, {
            preview: request.preview,
            stack: request.stack,
            stackOutputs: request.stackOutputs,
            execute: async (r) => {
                inFlight++;
                try {
                    return await carryOut(r);
                } finally {
                    inFlight--;
                    if (failure !== undefined && inFlight === 0) settleFailed();
                }
            },
        })]);
    } catch (error) {
        failure ??= String((error as Error).message ?? error);
    }
    clearInterval(keepAlive);

    async function carryOut(r: Registered): Promise<{ id?: string; state?: Record<string, unknown> }> {
                const prior = previous[r.urn];
                const inputs = r.inputs;
                const keep = (outputs: Record<string, any>) => {
                    next[r.urn] = { type: r.type, name: r.name, inputs, outputs, order: order++ };
                    return { id: r.name, state: outputs };
                };
                if (request.preview) {
                    // The engine runs nothing on preview: outputs of new resources are unknown.
                    return { id: r.name, state: prior ? prior.outputs : { ...inputs, stdout: "", stderr: "" } };
                }
                if (r.type === "random:index/randomPassword:RandomPassword") {
                    if (prior && sameInputs(prior.inputs, inputs)) return keep(prior.outputs);
                    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                    const result = Array.from(crypto.randomBytes(inputs.length), (b) => alphabet[b % alphabet.length]).join("");
                    return keep({ ...inputs, result });
                }
                if (r.type === "command:remote:Command" || r.type === "command:local:Command") {
                    if (prior && sameInputs(prior.inputs, inputs)) {
                        steps.push({ urn: r.urn, name: r.name, type: r.type, action: "same", host: "", command: "", exitCode: 0, stdout: "", stderr: "", durationMs: 0 });
                        return keep(prior.outputs);
                    }
                    let action: StepRecord["action"] = "create";
                    let text: string | undefined = inputs.create;
                    if (prior) {
                        if (JSON.stringify(prior.inputs.triggers ?? null) !== JSON.stringify(inputs.triggers ?? null)) {
                            // A change in triggers replaces: create the new one, delete the old one at the end.
                            action = "replace";
                            replaced.push([r.urn, { ...prior }]);
                        } else {
                            action = "update";
                            text = inputs.update ?? inputs.create;
                        }
                    }
                    if (!text) return keep({ ...inputs, stdout: "", stderr: "" });
                    const out = await runCommand(r, text, action, inputs.stdin);
                    return keep({ ...inputs, ...out });
                }
                throw new Error(`the harness cannot carry out ${r.type} (${r.name})`);
    }

    // Resources that went away are deleted, newest first, as the engine does; then the old halves
    // of replacements. A failed run deletes nothing (the engine stops at the first error).
    if (!failure && !request.preview) {
        const gone = Object.entries(previous)
            .filter(([urn]) => !(urn in next))
            .sort(([, a], [, b]) => b.order - a.order);
        for (const [urn, entry] of [...gone, ...replaced.reverse()]) {
            if (entry.inputs.delete) {
                try {
                    await runCommand({ ...entry, urn }, entry.inputs.delete, "delete", entry.inputs.stdin);
                } catch {
                    next[urn] = entry; // a failed delete keeps the resource in the state
                    break;
                }
            }
        }
    } else {
        // Keep what the failed run did not reach.
        for (const [urn, entry] of Object.entries(previous)) if (!(urn in next)) next[urn] = entry;
    }
    if (!request.preview) fs.writeFileSync(request.statePath, JSON.stringify(next, null, 1));
    const result: ApplyResult = {
        ok: failure === undefined,
        error: failure,
        steps,
        outputs: run?.outputs ?? {},
        secretOutputs: run?.secretOutputs ?? [],
        registered: (run?.resources ?? []).map((r) => ({ urn: r.urn, type: r.type, name: r.name })),
    };
    fs.writeFileSync(resultPath, JSON.stringify(result, null, 1));
    process.exit(0);
}

void main();
