// Issue 8, parts 1 and 2, on the test hosts (test/hosts/): how fast the program moves the
// incremental data from the old server to the new one, against the runbook's literal method.
//
// 1. Database: kingfisher_collect (generated on old, BENCH_DB_MB) copied by the runbook's
//    pg_dump -f / rsync -avz / psql -f, and by the program's step
//    data-support-incremental-copy-database (pg_dump streamed over SSH into psql, in one transaction
//    committed when the dump finished), alternating, BENCH_RUNS runs each; equal data checked after every run.
// 2. Downtime: data/ of BENCH_FILES files and BENCH_FILES_MB on old. The window after the halt with
//    the program's method (pre-sync while live, BENCH_CHANGED_PERCENT of the files change, then the
//    step data-support-incremental-copy-files) against one copy made after the halt (the same
//    step on an empty target, and the runbook's rsync -avz).
//
// The program's steps are its own command text: the program runs under the SDK's mocks with the
// test hosts' config (as the harness and `npm run runbook` do) and the bench runs the `create`
// text of the registered resources, unchanged, on the host the resource names. Times come from
// bash xtrace timestamps inside the host ($EPOCHREALTIME), so neither method pays for starting
// the session. Writes its section of bench/results.md between markers.
//
//   npm run bench:copy
//   BENCH_DB_MB=50 BENCH_FILES=2000 BENCH_FILES_MB=100 node --import tsx bench/copy.ts --no-write
//   options: --only db|files, --no-write; env BENCH_DB_MB (1024), BENCH_FILES (20000),
//   BENCH_FILES_MB (2048), BENCH_CHANGED_PERCENT (1), BENCH_RUNS (3)
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { down, run, STATE_DIR, up, type HostName, type Testbed } from "../test/hosts/testbed";
import { canRunTestHosts, testbedConfig } from "../test/support/harness";
import { runProgram } from "../test/support/program";
import { TABLES_FINGERPRINT_SQL, treeFingerprint } from "../components/fingerprint";
import { median, RESULTS, writeSection } from "./results";
import { CALIBRATION_ROWS, createTablesSql, FILES_PY, insertRowsSql, SETTLE_SQL } from "./copyData";

const BEGIN = "<!-- copy:begin -->";
const END = "<!-- copy:end -->";
const MIGRATION_ID = "bench-copy";
const HOME = "/home/incremental";
const DB = "kingfisher_collect";

// The runbook's literal commands (../shared/seed/data-support.rst, "Kingfisher Collect"), run as
// the incremental user in its home directory, as the runbook says.
const RUNBOOK = {
    dump: "pg_dump -U kingfisher_collect -h localhost -f kingfisher_collect.sql kingfisher_collect",
    transfer: "rsync -avz incremental@ocp04.open-contracting.org:~/kingfisher_collect.sql .",
    load: "psql -U kingfisher_collect -h localhost -f kingfisher_collect.sql kingfisher_collect",
    data: "rsync -avz incremental@ocp04.open-contracting.org:/home/incremental/data/ /home/incremental/data/",
    logs: "rsync -avz incremental@ocp04.open-contracting.org:/home/incremental/logs/ /home/incremental/logs/",
};

export interface Options {
    dbMb: number;
    files: number;
    filesMb: number;
    changedPercent: number;
    runs: number;
    parts: ("db" | "files")[];
    write: boolean;
}

function options(): Options {
    const num = (name: string, fallback: number) => {
        const v = process.env[name];
        if (v === undefined || v === "") return fallback;
        const n = Number(v);
        if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(v)}`);
        return n;
    };
    const i = process.argv.indexOf("--only");
    const only = i >= 0 ? process.argv[i + 1] : undefined;
    if (only !== undefined && only !== "db" && only !== "files") throw new Error("--only takes db or files");
    return {
        dbMb: num("BENCH_DB_MB", 1024),
        files: Math.round(num("BENCH_FILES", 20000)),
        filesMb: num("BENCH_FILES_MB", 2048),
        changedPercent: num("BENCH_CHANGED_PERCENT", 1),
        runs: Math.round(num("BENCH_RUNS", 3)),
        parts: only ? [only] : ["db", "files"],
        write: !process.argv.includes("--no-write"),
    };
}

// ---------------------------------------------------------------------------------------------
// Running things on the hosts

async function must(host: HostName, script: string, opts: { user?: string; input?: string } = {}): Promise<string> {
    const r = await run(host, script, opts);
    if (r.code !== 0) throw new Error(`${host}${opts.user ? ` (as ${opts.user})` : ""}: exit ${r.code}: ${script.slice(0, 300)}\n${r.stderr.slice(-3000)}`);
    return r.stdout;
}

const psqlRoot = (db: string) => `cd / && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -d ${db}`;

interface TraceEvent {
    t: number;
    cmd: string;
}

/** Runs `script` with an xtrace line (`+<epoch seconds> command`) per command, and a last `: bench-end`. */
async function traced(host: HostName, script: string, user?: string): Promise<{ events: TraceEvent[]; stdout: string; stderr: string }> {
    const text = `PS4='+\${EPOCHREALTIME} '\nset -x\n${script}\n: bench-end`;
    const r = await run(host, text, { user });
    if (r.code !== 0) throw new Error(`${host}: exit ${r.code} in a timed command:\n${script.slice(0, 600)}\n--- stderr (end) ---\n${r.stderr.slice(-4000)}`);
    return { events: traceEvents(r.stderr), stdout: r.stdout, stderr: r.stderr };
}

/** The `+<epoch seconds> command` lines of an xtrace (one `+` per nesting level). */
export function traceEvents(stderr: string): TraceEvent[] {
    return stderr.split("\n").flatMap((line) => {
        const m = /^\++(\d+[.,]\d+) (.*)$/.exec(line);
        return m ? [{ t: Number(m[1].replace(",", ".")), cmd: m[2] }] : [];
    });
}

/**
 * Where a phase starts: null, the first traced command; a pattern, the first command (from the
 * previous phase's start on) that matches it; afterLast, the command right after the last one
 * in the whole trace that matches (e.g. the verification after the last rsync, wherever the step
 * sets up its temporary files).
 */
type Bound = RegExp | null | { afterLast: RegExp };

/** Splits a traced run into phases, all ending at `: bench-end`: each phase's start and end (epoch seconds). */
export function phaseSpans(events: TraceEvent[], bounds: [string, Bound][]): { name: string; start: number; end: number }[] {
    const starts: number[] = [];
    let from = 0;
    for (const [name, bound] of bounds) {
        let i: number;
        if (bound === null) i = from;
        else if (bound instanceof RegExp) i = events.findIndex((e, k) => k >= from && bound.test(e.cmd));
        else {
            let last = events.length - 1;
            while (last >= 0 && !bound.afterLast.test(events[last].cmd)) last--;
            i = last < 0 ? -1 : last + 1;
        }
        if (i < 0 || i >= events.length || i < from) throw new Error(`phase ${name}: no traced command where it starts (${String(bound instanceof RegExp ? bound : bound?.afterLast)})`);
        starts.push(events[i].t);
        from = i;
    }
    const end = [...events].reverse().find((e) => e.cmd === ": bench-end");
    if (!end) throw new Error("no `: bench-end` in the trace");
    return bounds.map(([name], k) => ({ name, start: starts[k], end: k + 1 < starts.length ? starts[k + 1] : end.t }));
}

/** Seconds per phase and the total. */
export function phases(events: TraceEvent[], bounds: [string, Bound][]): Record<string, number> & { total: number } {
    const spans = phaseSpans(events, bounds);
    const out: Record<string, number> = {};
    for (const x of spans) out[x.name] = x.end - x.start;
    return Object.assign(out, { total: spans[spans.length - 1].end - spans[0].start });
}

// ---------------------------------------------------------------------------------------------
// CPU work: old and new share this machine's cores, so how much CPU a method uses bounds how fast
// it can be here. The kernel's counters (/proc/stat) are the same in every namespace.

/** Ticks per second of /proc/stat (USER_HZ). */
const USER_HZ = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

interface CpuSample {
    t: number;
    busy: number;
    steal: number;
}

function cpuSample(): CpuSample {
    // cpu  user nice system idle iowait irq softirq steal ...
    const f = fs.readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
    return { t: Date.now() / 1000, busy: (f[0] + f[1] + f[2] + f[5] + f[6]) / USER_HZ, steal: (f[7] ?? 0) / USER_HZ };
}

/** The whole machine's busy CPU time, sampled every 50 ms while `work` runs; core-seconds between two instants. */
export async function withCpu<T>(work: () => Promise<T>): Promise<{ value: T; busy: (from: number, to: number) => number; steal: number }> {
    const samples = [cpuSample()];
    const timer = setInterval(() => samples.push(cpuSample()), 50);
    let value: T;
    try {
        value = await work();
    } finally {
        clearInterval(timer);
        samples.push(cpuSample());
    }
    return { value, busy: (from, to) => cpuAt(samples, to) - cpuAt(samples, from), steal: samples[samples.length - 1].steal - samples[0].steal };
}

/**
 * The machine's busy rate (core-seconds per second) while the hosts are idle: other work on this
 * machine, subtracted from each run's figures so that they are the hosts' own work (at least).
 */
export async function idleRate(ms: number): Promise<number> {
    const a = cpuSample();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const b = cpuSample();
    return (b.busy - a.busy) / (b.t - a.t);
}

/** Busy core-seconds at instant t, interpolated between the samples around it. */
export function cpuAt(samples: CpuSample[], t: number): number {
    if (t <= samples[0].t) return samples[0].busy;
    for (let i = 1; i < samples.length; i++) {
        const a = samples[i - 1];
        const b = samples[i];
        if (t <= b.t) return b.t === a.t ? b.busy : a.busy + ((b.busy - a.busy) * (t - a.t)) / (b.t - a.t);
    }
    return samples[samples.length - 1].busy;
}

// ---------------------------------------------------------------------------------------------
// The program's steps, as it renders them for the test hosts

export interface Step {
    name: string;
    host: HostName;
    create: string;
    /** The one-off marker, removed before each run (a fresh run of the step). */
    marker?: string;
}

export type Steps = Record<"keypair" | "grant" | "stopCrons" | "presync" | "database" | "files", Step>;

async function programSteps(tb: Testbed): Promise<Steps> {
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
const movingLines = (s: Step) => s.create.split("\n").filter((l) => /\b(pg_dump|rsync)\b/.test(l));

// ---------------------------------------------------------------------------------------------
// Setup

/** The program's transfer key (keypair on new, granted on old), and the crawls' crons off on old. */
async function programAccess(steps: Steps): Promise<void> {
    const pub = await must(steps.keypair.host, steps.keypair.create);
    await must(steps.grant.host, steps.grant.create, { input: pub });
    await must(steps.stopCrons.host, steps.stopCrons.create);
}

/** What the runbook's sysadmin has: the new server's incremental key accepted by incremental@old. */
async function runbookAccess(tb: Testbed): Promise<void> {
    const pub = await must("new", "install -d -m 700 ~/.ssh && ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/id_ed25519 && cat ~/.ssh/id_ed25519.pub", { user: "incremental" });
    await must("old", "install -d -m 700 ~/.ssh && cat >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys", { user: "incremental", input: pub });
    await must("new", "cat > ~/.ssh/known_hosts", { user: "incremental", input: `${tb.hosts.old.hostname} ${tb.hosts.old.hostKey}\n` });
}

async function generateDatabase(targetMb: number): Promise<{ rows: number; mb: number; dumpMb?: number }> {
    const size = async () => Number((await must("old", psqlRoot(DB), { input: `SELECT pg_database_size('${DB}');` })).trim());
    await must("old", psqlRoot(DB), { input: createTablesSql() });
    const before = await size();
    const calibration = Math.min(CALIBRATION_ROWS, Math.max(1000, Math.round(targetMb * 200)));
    await must("old", psqlRoot(DB), { input: insertRowsSql(0, calibration) });
    const perRow = Math.max(1, ((await size()) - before) / calibration);
    const rest = Math.max(0, Math.round((targetMb * 2 ** 20 - (await size())) / perRow));
    // One INSERT per table per million rows keeps each statement's memory small.
    for (let from = calibration; from < calibration + rest; from += 1_000_000) {
        await must("old", psqlRoot(DB), { input: insertRowsSql(from, Math.min(1_000_000, calibration + rest - from)) });
    }
    await must("old", psqlRoot(DB), { input: SETTLE_SQL });
    const rows = Number((await must("old", psqlRoot(DB), { input: "SELECT (SELECT count(*) FROM bench_release) + (SELECT count(*) FROM bench_record) + (SELECT count(*) FROM bench_compiled_release);" })).trim());
    return { rows, mb: (await size()) / 2 ** 20 };
}

/** Both sides' table fingerprints (rows and md5 per table) and index definitions must be equal. */
async function verifyDatabase(oldPrint: string): Promise<void> {
    const newPrint = await databasePrint("new");
    if (newPrint !== oldPrint) throw new Error(`kingfisher_collect on new differs from old:\n--- old\n${oldPrint}\n--- new\n${newPrint}`);
}

async function databasePrint(host: HostName): Promise<string> {
    const tables = await must(host, psqlRoot(DB), { input: TABLES_FINGERPRINT_SQL });
    const indexes = await must(host, psqlRoot(DB), { input: "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexdef;" });
    return `${tables}${indexes}`;
}

async function resetNewDatabase(steps: Steps): Promise<void> {
    await must("new", `cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS ${DB} WITH (FORCE)' -c 'CREATE DATABASE ${DB} OWNER kingfisher_collect' -c CHECKPOINT && rm -f ${steps.database.marker} ${HOME}/kingfisher_collect.sql && sync`);
    await must("old", `cd / && runuser -u postgres -- psql -X -q -c CHECKPOINT && rm -f ${HOME}/kingfisher_collect.sql && sync`);
}

async function filesPrint(host: HostName): Promise<string> {
    const [data, logs] = await Promise.all([must(host, treeFingerprint(`${HOME}/data`).text), must(host, treeFingerprint(`${HOME}/logs`).text)]);
    return `${data}\n${logs}`;
}

async function verifyFiles(): Promise<void> {
    const [o, n] = await Promise.all([filesPrint("old"), filesPrint("new")]);
    if (o !== n) throw new Error("data/ or logs/ on new differ from old");
}

async function emptyNewFiles(steps: Steps): Promise<void> {
    await must("new", `rm -rf ${HOME}/data ${HOME}/logs && install -d -o incremental -g incremental -m 755 ${HOME}/data ${HOME}/logs && rm -f ${steps.files.marker} ${steps.presync.marker} "$(dirname ${steps.files.marker})"/manifest-*.jsonl && sync`);
}

// ---------------------------------------------------------------------------------------------
// Part 1: database

/** The database step: what it does before the copy, the copy (pg_dump into psql), ANALYZE, then the comparison of both sides. */
const DB_STEP_PHASES: [string, Bound][] = [["check", null], ["copy", /pg_dump --format=plain|^echo 'BEGIN;'/], ["analyze", /-c ANALYZE$/], ["verify", { afterLast: /-c ANALYZE$/ }]];

export interface DbRun {
    method: "runbook" | "program";
    total: number;
    phases: Record<string, number>;
    /** CPU core-seconds per phase, and in all: the machine's busy time less its idle rate before the run. */
    cpu: Record<string, number>;
    /** That idle rate (core-seconds per second). */
    idle: number;
    /** Core-seconds the hypervisor took from this machine during the run. */
    steal: number;
}

async function databaseRuns(opts: Options, steps: Steps, oldPrint: string): Promise<DbRun[]> {
    const runs: DbRun[] = [];
    for (let r = 0; r < opts.runs; r++) {
        for (const method of r % 2 === 0 ? (["runbook", "program"] as const) : (["program", "runbook"] as const)) {
            await resetNewDatabase(steps);
            const idle = await idleRate(3000);
            const measured = await withCpu(async () => {
                if (method === "runbook") {
                    const dump = phaseSpans((await traced("old", RUNBOOK.dump, "incremental")).events, [["dump", /^pg_dump /]]);
                    const transfer = phaseSpans((await traced("new", RUNBOOK.transfer, "incremental")).events, [["transfer", /^rsync /]]);
                    const load = await traced("new", RUNBOOK.load, "incremental");
                    // psql -f goes on after an error: any ERROR fails the run (and the check below would too).
                    const errors = load.stderr.split("\n").filter((l) => /\bERROR:/.test(l));
                    if (errors.length) throw new Error(`the runbook's psql -f reported errors:\n${errors.slice(0, 10).join("\n")}`);
                    // Three commands one after the other: the total is the sum of their times.
                    return [...dump, ...transfer, ...phaseSpans(load.events, [["load", /^psql /]])];
                }
                return phaseSpans((await traced(steps.database.host, steps.database.create)).events, DB_STEP_PHASES);
            });
            const spans = measured.value;
            const result: DbRun = {
                method,
                total: spans.reduce((sum, x) => sum + x.end - x.start, 0),
                phases: Object.fromEntries(spans.map((x) => [x.name, x.end - x.start])),
                cpu: Object.fromEntries(spans.map((x) => [x.name, Math.max(0, measured.busy(x.start, x.end) - idle * (x.end - x.start))])),
                idle,
                steal: measured.steal,
            };
            result.cpu.total = spans.reduce((sum, x) => sum + result.cpu[x.name], 0);
            await verifyDatabase(oldPrint);
            runs.push(result);
            process.stderr.write(`database run ${r + 1}/${opts.runs}, ${method}: ${fmt(result.total)} s, ${fmt(result.cpu.total, 1)} core-s (${Object.entries(result.phases).map(([k, v]) => `${k} ${fmt(v)} s ${fmt(result.cpu[k], 1)} core-s`).join(", ")}), equal data\n`);
        }
    }
    return runs;
}

// ---------------------------------------------------------------------------------------------
// Part 2: downtime

export interface FilesRun {
    kind: "runbook-full" | "program-full" | "presync" | "program-window";
    total: number;
    phases: Record<string, number>;
    changed?: { files: number; bytes: number };
}

const FILE_STEP_PHASES: [string, Bound][] = [["check", null], ["transfer", /^rsync /], ["verify", { afterLast: /^rsync / }]];

async function filesRuns(opts: Options, steps: Steps): Promise<FilesRun[]> {
    const runs: FilesRun[] = [];
    const log = (r: number, x: FilesRun) =>
        process.stderr.write(`files round ${r + 1}/${opts.runs}, ${x.kind}: ${fmt(x.total)} s (${Object.entries(x.phases).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")})${x.changed ? `, ${x.changed.files} files changed` : ""}\n`);
    for (let r = 0; r < opts.runs; r++) {
        // One copy after the halt, the runbook's way: rsync -avz of data/ and logs/ into empty directories.
        await emptyNewFiles(steps);
        const rb = phases((await traced("new", `${RUNBOOK.data}\n${RUNBOOK.logs}`, "incremental")).events, [["transfer", /^rsync /]]);
        await verifyFiles();
        runs.push({ kind: "runbook-full", total: rb.total, phases: { transfer: rb.transfer } });
        log(r, runs[runs.length - 1]);

        // One copy after the halt with the program's own step, on an empty target (no pre-sync).
        await emptyNewFiles(steps);
        const full = phases((await traced(steps.files.host, steps.files.create)).events, FILE_STEP_PHASES);
        await verifyFiles();
        runs.push({ kind: "program-full", total: full.total, phases: { check: full.check, transfer: full.transfer, verify: full.verify } });
        log(r, runs[runs.length - 1]);

        // The program's method: pre-sync while live, then the crawls change some files, then the halt and the step.
        await emptyNewFiles(steps);
        const pre = phases((await traced(steps.presync.host, steps.presync.create)).events, [["check", null], ["transfer", /^rsync /]]);
        runs.push({ kind: "presync", total: pre.total, phases: { transfer: pre.transfer } });
        log(r, runs[runs.length - 1]);
        const changed = JSON.parse(await must("old", `python3 - change ${HOME}/data ${opts.changedPercent} ${1000 + r} && sync`, { user: "incremental", input: FILES_PY }));
        await must("new", "sync");
        const win = phases((await traced(steps.files.host, steps.files.create)).events, FILE_STEP_PHASES);
        await verifyFiles();
        runs.push({ kind: "program-window", total: win.total, phases: { check: win.check, transfer: win.transfer, verify: win.verify }, changed });
        log(r, runs[runs.length - 1]);
    }
    return runs;
}

// ---------------------------------------------------------------------------------------------
// Report


const fmt = (x: number, digits = 2) => x.toFixed(digits);
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

export interface Facts {
    date: string;
    machine: string;
    versions: string;
    load: number;
    sizes: string[];
    durations: Record<string, number>;
    dbSsl?: string;
    program: string;
}

function dbSection(runs: DbRun[], steps: Steps, opts: Options): string[] {
    const rb = runs.filter((r) => r.method === "runbook");
    const pg = runs.filter((r) => r.method === "program");
    const med = (xs: DbRun[], key: string) => median(xs.map((x) => (key === "total" ? x.total : x.phases[key])));
    const rbTotal = med(rb, "total");
    const pgCopy = med(pg, "copy");
    const pgTotal = med(pg, "total");
    const ratioCopy = rbTotal / pgCopy;
    const ratioStep = rbTotal / pgTotal;
    const list = (xs: DbRun[], key: string) => xs.map((x) => fmt(key === "total" ? x.total : x.phases[key])).join(", ");
    const cores = os.cpus().length;
    const cpu = (xs: DbRun[], key: string) => median(xs.map((x) => x.cpu[key]));
    // The median of each run's own share, not the ratio of two medians.
    const share = (xs: DbRun[], key: string) => pct(median(xs.map((x) => x.cpu[key] / cores / (key === "total" ? x.total : x.phases[key]))));
    const row = (method: string, xs: DbRun[], key: string, bold = false) => {
        const b = (x: string) => (bold ? `**${x}**` : x);
        return `| ${method} | ${b(key)} | ${list(xs, key)} | ${b(fmt(med(xs, key)))} | ${b(fmt(cpu(xs, key), 1))} | ${share(xs, key)} |`;
    };
    return [
        "### 1. Database copy (kingfisher_collect)",
        "",
        "Runbook's literal method, as the `incremental` user in its home directory (three commands, one after the other):",
        "",
        "```sh",
        `# on old (ocp04)\n${RUNBOOK.dump}`,
        `# on new (ocp23)\n${RUNBOOK.transfer}\n${RUNBOOK.load}`,
        "```",
        "",
        `Program's method: the step \`${steps.database.name}\` on new as root, its whole text as the program renders it for these hosts`,
        "(also in docs/runbook-main.md for the example stack). It checks the target has no table, copies with this line,",
        "then runs `ANALYZE` and compares the table fingerprints of both sides (`components/fingerprint.ts`):",
        "",
        "```sh",
        ...movingLines(steps.database),
        "```",
        "",
        `Alternating, ${opts.runs} runs each (run order: ${runs.map((r) => r.method).join(", ")}). Before every run: drop and re-create`,
        "kingfisher_collect on new (owner kingfisher_collect), remove the dump files, CHECKPOINT on both, `sync`. After every",
        "run, untimed: the tables' row counts and md5 (TABLES_FINGERPRINT_SQL) and the index definitions on new equal old's.",
        "",
        `| method | phase | runs (s) | median (s) | CPU, median (core-s) | busy share of the ${cores} cores |`,
        "|---|---|---|---:|---:|---:|",
        ...["dump", "transfer", "load"].map((k) => row("runbook", rb, k)),
        row("runbook", rb, "total", true),
        ...["check", "copy", "analyze", "verify"].map((k) => row("program", pg, k)),
        row("program", pg, "total", true),
        "",
        "CPU is the whole machine's busy time (user, nice, system, irq, softirq in /proc/stat, sampled every 50 ms and",
        "interpolated at the phase bounds), less what the machine used while the hosts were idle, measured for 3 s before",
        `each run (${runs.map((x) => fmt(x.idle, 3)).join(", ")} core-s per s): so the hosts' own work, or a little less. Time the`,
        `hypervisor took from this machine (steal) during the runs: ${runs.map((x) => fmt(x.steal, 2)).join(", ")} core-s.`,
        "",
        `- Equal data after every run of both methods: yes (${runs.length} of ${runs.length} checks passed).`,
        `- Moving the data, like with like (runbook total / program's copy line): **${fmt(ratioCopy)}x** faster; target 2x: **${ratioCopy >= 2 ? "met" : `missed (${pct(1 - ratioCopy / 2)} short)`}**.`,
        `- The program's whole step, including the ANALYZE and verification that the runbook's method does not do (runbook total / program step): **${fmt(ratioStep)}x**; target 2x: **${ratioStep >= 2 ? "met" : `missed (${pct(1 - ratioStep / 2)} short)`}**.`,
        `- The floor on this machine: old and new share ${cores} cores, so a method cannot take less than its CPU work / ${cores}. The program's`,
        `  step used ${fmt(cpu(pg, "total"), 1)} core-s (its copy line ${fmt(cpu(pg, "copy"), 1)}), so it cannot take less than ${fmt(cpu(pg, "total") / cores)} s (copy line: ${fmt(cpu(pg, "copy") / cores)} s);`,
        `  the 2x target asks for ${fmt(rbTotal / 2)} s. ${cpu(pg, "total") / cores > rbTotal / 2 ? "Out of reach for this step here, however its work is spread over the cores" : "Within reach here, if its work were spread evenly over the cores"}${cpu(pg, "copy") / cores > rbTotal / 2 ? ", and for the copy line alone too." : "."}`,
        "",
        "Why:",
        "",
        `- Most of the runbook's time is its load (\`psql -f\`, ${fmt(med(rb, "load"))} s of ${fmt(rbTotal)} s), one backend on one core (busy share ${share(rb, "load")});`,
        `  its dump takes ${fmt(med(rb, "dump"))} s and its \`rsync -avz\` ${fmt(med(rb, "transfer"))} s (the hosts' bridge is fast: over a real network between two servers`,
        "  the transfer would weigh more; not measured here).",
        `- The program's copy line streams the dump into the load, so the dump and the transfer overlap the load: ${fmt(pgCopy)} s with the`,
        `  cores ${share(pg, "copy")} busy (old's backend and pg_dump, sshd, ssh, psql, new's backend). Both methods pay the same load: parsing`,
        "  every JSONB value and writing it to the WAL (wal_level replica, which the replica needs) in new's backend.",
        `- The step's verification (${fmt(med(pg, "verify"))} s, ${fmt(cpu(pg, "verify"), 1)} core-s) reads every row on old and on new at the same time and hashes it`,
        "  (TABLES_FINGERPRINT_SQL: an md5 of each row's text, an md5 over them in order); producing the JSON text of every",
        "  jsonb value is most of it. On two servers each side would hash on its own CPUs. The runbook's method checks nothing.",
    ];
}

function filesSection(runs: FilesRun[], steps: Steps, opts: Options): string[] {
    const of = (k: FilesRun["kind"]) => runs.filter((r) => r.kind === k);
    const med = (k: FilesRun["kind"], key: string) => median(of(k).map((x) => (key === "total" ? x.total : x.phases[key])));
    const list = (k: FilesRun["kind"], key: string) => of(k).map((x) => fmt(key === "total" ? x.total : x.phases[key])).join(", ");
    const window = med("program-window", "total");
    const vsStep = window / med("program-full", "total");
    const vsRunbook = window / med("runbook-full", "total");
    const transferOnly = med("program-window", "transfer") / med("program-full", "transfer");
    const verdict = (x: number) => (x <= 0.1 ? "met" : `missed (${fmt(x / 0.1, 1)}x the allowed 10 %)`);
    const changed = of("program-window").map((r) => r.changed!);
    const rows: [FilesRun["kind"], string, string[]][] = [
        ["runbook-full", "one copy after the halt: runbook's `rsync -avz` of data/ and logs/, empty target", ["transfer"]],
        ["program-full", `one copy after the halt: the program's step \`${steps.files.name}\`, empty target (no pre-sync)`, ["transfer", "verify"]],
        ["presync", `while the old server is live (not in the window): \`${steps.presync.name}\`, empty target`, ["transfer"]],
        ["program-window", `**the window**: \`${steps.files.name}\` after the pre-sync and the change`, ["transfer", "verify"]],
    ];
    return [
        "### 2. Downtime: data/ and logs/ after the halt",
        "",
        "Runbook's literal method after the halt, as `incremental` on new:",
        "",
        "```sh",
        RUNBOOK.data,
        RUNBOOK.logs,
        "```",
        "",
        `Program's method: \`${steps.presync.name}\` runs while the old server is live (it waits only for the transfer key),`,
        `then, after the halt, \`${steps.files.name}\` runs the same rsync again and verifies both trees (type, size and path of`,
        "every entry and sha256 of every file, on old and on new at once, compared). The pre-sync also writes each side's",
        "manifest (components/treeManifest.ts), so after the halt each side hashes only files whose size or mtime changed",
        "since. Both steps move the data with these lines on new as root:",
        "",
        "```sh",
        ...movingLines(steps.files),
        "```",
        "",
        `The window measured is the whole post-halt step \`${steps.files.name}\`: the only post-halt step that depends on data/.`,
        "The other post-halt steps (gates, Docker apps, DNS gate, spiders, stopping the old crons, the database copy, which runs",
        "beside this step, the crawls' crons, exchange rates, revoking the key, restore) are the same with or without the",
        "pre-sync, so they are left out of both sides. Each round, in this order: (a) the runbook's rsync into empty",
        "directories; (b) the program's step into empty directories; (c) empty again, the pre-sync step, then",
        `${opts.changedPercent} % of the files on old rewritten (new content, same size, new mtime) and \`sync\`, then the step.`,
        "Before each: the step's one-off markers removed, `sync`. After each, untimed: both trees equal (fingerprints of old and new).",
        "",
        `Changed per round: ${changed.map((c) => `${c.files} files, ${fmt(c.bytes / 2 ** 20, 1)} MiB`).join("; ")}.`,
        "",
        "| what | phase | runs (s) | median (s) |",
        "|---|---|---|---:|",
        ...rows.flatMap(([k, label, keys]) => [
            ...keys.map((key) => `| ${label} | ${key} | ${list(k, key)} | ${fmt(med(k, key))} |`),
            `| ${label} | **total** | ${list(k, "total")} | **${fmt(med(k, "total"))}** |`,
        ]),
        "",
        `- The window against one copy by the same step without pre-sync (both verify): **${pct(vsStep)}**; target at most 10 %: **${verdict(vsStep)}**.`,
        `- The window against the runbook's single \`rsync -avz\` (which verifies nothing): **${pct(vsRunbook)}**; target: **${verdict(vsRunbook)}**.`,
        `- Transfer alone (the step's rsync after the pre-sync against the same rsync into an empty target): **${pct(transferOnly)}**; target: **${verdict(transferOnly)}**.`,
        "",
        "Why:",
        "",
        `- The pre-sync does its job: after it the step's rsync moves the ${changed[0]?.files ?? 0} changed files in ${fmt(med("program-window", "transfer"))} s (median), ${pct(transferOnly)} of`,
        `  the same rsync into an empty target (${fmt(med("program-full", "transfer"))} s).`,
        `- The verification in the window takes ${fmt(med("program-window", "verify"))} s of ${fmt(window)} s: both sides list every entry at the same time and`,
        "  hash only the files whose size or mtime changed since the pre-sync's manifest (like rsync's quick check, a file",
        "  whose size and mtime did not change is taken as unchanged); the pre-sync, while the old server is live, paid for",
        `  hashing everything. Without a pre-sync the same step verifies in ${fmt(med("program-full", "verify"))} s (every file hashed, both sides at once).`,
        `- The runbook's \`rsync -avz\` into an empty target took ${fmt(med("runbook-full", "transfer"))} s, the program's \`rsync -a\` (aes128-gcm, no compression)`,
        `  ${fmt(med("program-full", "transfer"))} s: ${med("runbook-full", "transfer") > med("program-full", "transfer") ? "on this fast bridge compression costs more CPU than it saves" : "compression paid for itself here"}.`,
    ];
}

export function section(opts: Options, facts: Facts, steps: Steps, db: DbRun[] | undefined, files: FilesRun[] | undefined): string {
    const d = facts.durations;
    return [
        BEGIN,
        "## Copying the incremental data: the program against the runbook's literal method (test hosts)",
        "",
        `- Date: ${facts.date}`,
        `- Machine: ${facts.machine}; load average ${fmt(facts.load)} at the start`,
        `- Software on the hosts: ${facts.versions}`,
        `- Program: ${facts.program}`,
        `- Command: \`npm run bench:copy\` (\`node --import tsx bench/copy.ts\`; BENCH_DB_MB=${opts.dbMb}, BENCH_FILES=${opts.files}, BENCH_FILES_MB=${opts.filesMb}, BENCH_CHANGED_PERCENT=${opts.changedPercent}, BENCH_RUNS=${opts.runs})`,
        `- Data: ${facts.sizes.join("; ")}`,
        `- Bench time: ${Object.entries(d).map(([k, v]) => `${k} ${fmt(v, 0)} s`).join(", ")}`,
        "- Where: the test hosts (test/hosts/): old and new are network, mount and PID namespaces on this one machine, joined",
        "  by a veth bridge, their files on the same disk. So the network is fast and shared CPU is the limit: both",
        "  hosts' processes compete for the same 2 cores, as neither would on two real servers over a real network.",
        "  Page caches are warm for both methods (the data was just generated; no cache is dropped).",
        "- How the program's steps are run: the program runs under the SDK's mocks with the test hosts' config (migration id",
        `  \`${MIGRATION_ID}\`), and the \`create\` text of each registered step runs unchanged, as root on the host the resource`,
        "  names, through `testbed.sh exec` (no SSH session of the provider: its start-up is not counted for either method).",
        "  The transfer key is set up the same way, by the program's keypair and grant steps.",
        "- Timing: bash xtrace with `PS4='+${EPOCHREALTIME} '` put before each command or step text, and `: bench-end` after it;",
        "  a phase runs from the first traced command that starts it to the next phase's, the total from the first command",
        "  to `: bench-end`.",
        ...(facts.dbSsl ? [`- ${facts.dbSsl}`] : []),
        "",
        ...(db ? [...dbSection(db, steps, opts), ""] : []),
        ...(files ? [...filesSection(files, steps, opts), ""] : []),
        END,
    ].join("\n");
}

// ---------------------------------------------------------------------------------------------

/** The commit the program's steps were rendered from, and any uncommitted change to the program. */
function programVersion(): string {
    const git = (...args: string[]) => execFileSync("git", args, { cwd: path.join(__dirname, ".."), encoding: "utf8" });
    try {
        // Porcelain lines are "XY path": the status letters may start with a space, so no trim before slicing.
        const dirty = git("status", "--porcelain", "--", "index.ts", "components").split("\n").filter(Boolean).map((l) => l.slice(3));
        return `commit ${git("rev-parse", "--short", "HEAD").trim()}${dirty.length ? ` with uncommitted changes to ${dirty.join(", ")}` : ""}`;
    } catch {
        return "unknown (not a git work tree)";
    }
}

/** Free space where the hosts keep their files (their state dir), in MiB. */
function freeMb(): number {
    const dir = fs.existsSync(STATE_DIR) ? STATE_DIR : path.dirname(STATE_DIR);
    const s = fs.statfsSync(dir);
    return (s.bavail * s.bsize) / 2 ** 20;
}

async function main(): Promise<void> {
    const opts = options();
    if (!canRunTestHosts()) throw new Error("bench:copy needs the test hosts: run as root on Linux with ip netns (see test/hosts/README.md)");
    // old: the database, its dump; new: the load, the dump's copy; WAL on both; data/ twice.
    const needMb = (opts.parts.includes("db") ? opts.dbMb * 5 + 2048 : 0) + (opts.parts.includes("files") ? opts.filesMb * 2.2 : 0) + 1024;
    const free = freeMb();
    if (free < needMb) throw new Error(`bench:copy needs about ${fmt(needMb / 1024, 1)} GiB free under ${path.dirname(STATE_DIR)}, there are ${fmt(free / 1024, 1)} GiB: set smaller BENCH_DB_MB / BENCH_FILES_MB`);
    const started = Date.now();
    const durations: Record<string, number> = {};
    const lap = (name: string, since: number) => (durations[name] = (Date.now() - since) / 1000);
    const load = os.loadavg()[0];
    let section_: string | undefined;
    const stop = () => {
        // Interrupted: the hosts must still go down.
        process.stderr.write("interrupted: taking the test hosts down\n");
        execFileSync("bash", [path.join(__dirname, "..", "test", "hosts", "testbed.sh"), "down"], { stdio: "inherit" });
        process.exit(130);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
        let t = Date.now();
        process.stderr.write("bringing the test hosts up\n");
        const tb = await up();
        lap("hosts up", t);
        t = Date.now();
        // What the program's steps are rendered from (the work tree may change while the bench runs).
        const program = programVersion();
        const steps = await programSteps(tb);
        await programAccess(steps);
        await runbookAccess(tb);
        const sizes: string[] = [];
        let oldPrint = "";
        if (opts.parts.includes("db")) {
            process.stderr.write(`generating about ${opts.dbMb} MiB of kingfisher_collect on old\n`);
            const g = await generateDatabase(opts.dbMb);
            await must("old", RUNBOOK.dump, { user: "incremental" });
            const dumpBytes = Number((await must("old", "stat -c %s kingfisher_collect.sql && rm kingfisher_collect.sql", { user: "incremental" })).trim());
            oldPrint = await databasePrint("old");
            sizes.push(`kingfisher_collect ${fmt(g.mb, 0)} MiB on old (pg_database_size; ${g.rows} JSONB rows in 3 tables with 2 indexes each beside their primary keys, plus the seed's 3 small tables), plain dump ${fmt(dumpBytes / 2 ** 20, 0)} MiB`);
        }
        if (opts.parts.includes("files")) {
            process.stderr.write(`generating ${opts.files} files, about ${opts.filesMb} MiB, in ${HOME}/data on old\n`);
            const g = JSON.parse(await must("old", `python3 - generate ${HOME}/data ${opts.files} ${Math.round(opts.filesMb * 2 ** 20)} 42 && sync`, { user: "incremental", input: FILES_PY }));
            const total = (await must("old", `find ${HOME}/data -type f | wc -l; du -sb ${HOME}/data ${HOME}/logs | cut -f1`)).trim().split("\n").map(Number);
            sizes.push(`data/: ${total[0]} files, ${fmt(total[1] / 2 ** 20, 0)} MiB (${g.files} generated in data/<spider>/<crawl>/, the rest the hosts' seed); logs/: ${fmt(total[2] / 2 ** 20, 1)} MiB`);
        }
        lap("setup and data generation", t);
        const versions = await must("old", "cd / && echo \"PostgreSQL $(runuser -u postgres -- psql -XAtc 'SHOW server_version' | cut -d' ' -f1), $(rsync --version | head -1 | sed 's/  */ /g'), $(ssh -V 2>&1 | cut -d, -f1)\"");
        const ssl = await must("new", "psql -U kingfisher_collect -h localhost -XAt -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' kingfisher_collect", { user: "incremental" });
        const dbSsl = `The runbook's \`-h localhost\` connections use TLS here (pg_stat_ssl.ssl = ${ssl.trim()}; ssl = on, sslmode prefer), as they would on a server with TLS on; the program's run as postgres over the Unix socket.`;

        let db: DbRun[] | undefined;
        let files: FilesRun[] | undefined;
        if (opts.parts.includes("db")) {
            t = Date.now();
            db = await databaseRuns(opts, steps, oldPrint);
            lap("database runs", t);
        }
        if (opts.parts.includes("files")) {
            t = Date.now();
            files = await filesRuns(opts, steps);
            lap("files runs", t);
        }
        const facts: Facts = {
            date: new Date().toISOString(),
            machine: `${os.cpus().length} cores (${os.cpus()[0]?.model.trim() ?? "unknown CPU"}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, Linux ${os.release()} (uname -r), Node ${process.version}`,
            versions: versions.trim(),
            load,
            sizes,
            durations,
            dbSsl,
            program,
        };
        section_ = section(opts, facts, steps, db, files);
    } finally {
        const t = Date.now();
        process.stderr.write("taking the test hosts down\n");
        await down();
        lap("hosts down", t);
    }
    durations.total = (Date.now() - started) / 1000;
    // The durations line was rendered before `down`: render it again with the last two.
    const text = section_!.replace(/^- Bench time: .*$/m, `- Bench time: ${Object.entries(durations).map(([k, v]) => `${k} ${fmt(v, 0)} s`).join(", ")}`);
    process.stdout.write(text.split("\n").filter((l) => !l.startsWith("<!--")).join("\n") + "\n");
    if (opts.write) {
        writeSection(BEGIN, END, text);
        process.stderr.write(`written to ${path.relative(process.cwd(), RESULTS)}\n`);
    }
}

if (require.main === module) {
    main().then(
        () => process.exit(0),
        (error) => {
            console.error(error);
            process.exit(1);
        },
    );
}
