// The program's steps of the copy, as the program renders them for the test hosts: for bench/copy.ts.
import { type HostName, type Testbed } from "../test/hosts/testbed";
import { testbedConfig } from "../test/support/harness";
import { runProgram } from "../tools/program";
import { MIGRATION_ID } from "./copyRunbook";

export interface Step {
    name: string;
    host: HostName;
    create: string;
    /** The one-off marker, removed before each run (a fresh run of the step). */
    marker?: string;
}

export type Steps = Record<"keypair" | "grant" | "stopCrons" | "presync" | "database" | "files", Step>;

export async function programSteps(tb: Testbed): Promise<Steps> {
    const program = await runProgram(testbedConfig(tb, { migrationId: MIGRATION_ID }), { preview: true });
    const hostOf = (ip: string): HostName => {
        const h = (Object.keys(tb.hosts) as HostName[]).find((k) => tb.hosts[k].ipv4 === ip);
        if (!h) throw new Error(`no test host has address ${ip}`);
        return h;
    };
    const step = (suffix: string): Step => {
        const r = program.resources.find((x) => x.name.endsWith(suffix));
        if (!r || typeof r.inputs.create !== "string") throw new Error(`the program registered no command ending in ${suffix}`);
        const marker = /^marker=(\S+)$/m.exec(r.inputs.create)?.[1];
        return { name: r.name, host: hostOf(r.inputs.connection.host), create: r.inputs.create, marker };
    };
    return {
        keypair: step("-transfer-keypair"),
        grant: step("-transfer-grant"),
        stopCrons: step("-incremental-copy-stop-old-crons"),
        presync: step("-incremental-copy-presync"),
        database: step("-incremental-copy-database"),
        files: step("-incremental-copy-files"),
    };
}

/** The lines of a step that move data (for the report): those running pg_dump or rsync. */
