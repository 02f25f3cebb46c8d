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
import { down, STATE_DIR, up } from "../test/hosts/testbed";
import { sh } from "../test/support/hosts";
import { canRunTestHosts } from "../test/support/harness";
import { RESULTS, writeSection } from "./results";
import { phaseSpans, phases, traced, type Bound } from "./copyTrace";
import { idleRate, withCpu } from "./cpu";
import { BEGIN, END, fmt, section, type Facts } from "./copyReport";
import { HOME, RUNBOOK } from "./copyRunbook";
import { FILES_PY } from "./copyData";
import { programSteps, type Steps } from "./copySteps";
import { databasePrint, emptyNewFiles, generateDatabase, programAccess, resetNewDatabase, runbookAccess, verifyDatabase, verifyFiles } from "./copySetup";


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
        const changed = JSON.parse(await sh("old", `python3 - change ${HOME}/data ${opts.changedPercent} ${1000 + r} && sync`, { user: "incremental", input: FILES_PY }));
        await sh("new", "sync");
        const win = phases((await traced(steps.files.host, steps.files.create)).events, FILE_STEP_PHASES);
        await verifyFiles();
        runs.push({ kind: "program-window", total: win.total, phases: { check: win.check, transfer: win.transfer, verify: win.verify }, changed });
        log(r, runs[runs.length - 1]);
    }
    return runs;
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
            await sh("old", RUNBOOK.dump, { user: "incremental" });
            const dumpBytes = Number((await sh("old", "stat -c %s kingfisher_collect.sql && rm kingfisher_collect.sql", { user: "incremental" })).trim());
            oldPrint = await databasePrint("old");
            sizes.push(`kingfisher_collect ${fmt(g.mb, 0)} MiB on old (pg_database_size; ${g.rows} JSONB rows in 3 tables with 2 indexes each beside their primary keys, plus the seed's 3 small tables), plain dump ${fmt(dumpBytes / 2 ** 20, 0)} MiB`);
        }
        if (opts.parts.includes("files")) {
            process.stderr.write(`generating ${opts.files} files, about ${opts.filesMb} MiB, in ${HOME}/data on old\n`);
            const g = JSON.parse(await sh("old", `python3 - generate ${HOME}/data ${opts.files} ${Math.round(opts.filesMb * 2 ** 20)} 42 && sync`, { user: "incremental", input: FILES_PY }));
            const total = (await sh("old", `find ${HOME}/data -type f | wc -l; du -sb ${HOME}/data ${HOME}/logs | cut -f1`)).trim().split("\n").map(Number);
            sizes.push(`data/: ${total[0]} files, ${fmt(total[1] / 2 ** 20, 0)} MiB (${g.files} generated in data/<spider>/<crawl>/, the rest the hosts' seed); logs/: ${fmt(total[2] / 2 ** 20, 1)} MiB`);
        }
        lap("setup and data generation", t);
        const versions = await sh("old", "cd / && echo \"PostgreSQL $(runuser -u postgres -- psql -XAtc 'SHOW server_version' | cut -d' ' -f1), $(rsync --version | head -1 | sed 's/  */ /g'), $(ssh -V 2>&1 | cut -d, -f1)\"");
        const ssl = await sh("new", "psql -U kingfisher_collect -h localhost -XAt -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' kingfisher_collect", { user: "incremental" });
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
