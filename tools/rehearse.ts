// Over 300 lines: the rehearsal from top to bottom, in the order it prints; none of its parts is used elsewhere.
// `npm run rehearse`: the whole migration rehearsed on this machine. Brings up the test hosts
// (test/hosts/, real Debian services in Linux namespaces), fills the old server with generated data
// of the size asked for, runs the main stack then the replica stack as `pulumi up` would, through
// the executing harness (test/support/harness.ts), showing each step and the progress of long ones
// as they happen, then the outputs and a summary measured on the hosts themselves, and a second
// `up` that must change nothing. Tooling, not part of the Pulumi program. Needs root.
//
//   npm run rehearse -- [--size 250MB] [--rows N] [--files N] [--link 64mbit|none] [--keep]
import * as fs from "node:fs";
import { down, pointName, run, STATE_DIR, up, type HostName, type Testbed } from "../test/hosts/testbed";
import { Harness, testbedConfig, type ApplyEvent, type ApplyOptions, type ApplyResult } from "../test/support/harness";
import { canRunTestHosts } from "../test/support/harness";
import { TABLES_FINGERPRINT_SQL, columnsFingerprintSql, treeFingerprint } from "../components/machinery/fingerprint";
import { EXCHANGE_RATES_COLUMNS } from "../components/runbook/pelican-backend/exchangeRatesCopy";
import { createTablesSql, FILES_PY, insertRowsSql, SETTLE_SQL } from "../bench/copyData";

const USAGE = `usage: npm run rehearse -- [--size 250MB] [--rows N] [--files N] [--link 64mbit|none] [--keep]
  --size   data generated on the old server, 60 % rows in kingfisher_collect, 40 % files under
           /home/incremental/data (kB, MB, GB; default 250MB)
  --rows   rows to generate in kingfisher_collect instead (about 1.5 kB each with indexes)
  --files  files to generate under /home/incremental/data instead (about 250 kB each)
  --link   rate of the old server's link (tc on its interface), as between two data centres;
           none for this machine's full speed (default 64mbit)
  --keep   leave the test hosts up at the end, and say how to log into each`;

const FILE_BYTES = 250_000;
const ROW_BYTES = 1500;
const HOME = "/home/incremental";
const HALT_STEP = "data-support-halt-old-server";
const COPY_STEPS = ["data-support-incremental-copy-database", "data-support-incremental-copy-files", "data-support-exchange-rates-copy"];
const MAIN_STACK = "organization/data-support/main";

interface Options {
    rows: number;
    files: number;
    filesBytes: number;
    link: string | null;
    keep: boolean;
}

function fail(message: string): never {
    console.error(`rehearse: ${message}\n${USAGE}`);
    process.exit(2);
}

function parseSize(text: string): number {
    const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(text);
    if (!m) fail(`--size takes a size such as 250MB or 1GB, got ${JSON.stringify(text)}`);
    return Number(m[1]) * { "": 1, k: 1e3, m: 1e6, g: 1e9 }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
}

function parseOptions(argv: string[]): Options {
    let size = 250e6;
    let rows: number | undefined;
    let files: number | undefined;
    let link: string | null = "64mbit";
    let keep = false;
    const count = (flag: string, v: string | undefined) => {
        if (!v || !/^\d+$/.test(v)) fail(`${flag} takes a whole number, got ${JSON.stringify(v)}`);
        return Number(v);
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--size") size = parseSize(argv[++i] ?? "");
        else if (a === "--rows") rows = count(a, argv[++i]);
        else if (a === "--files") files = count(a, argv[++i]);
        else if (a === "--link") {
            const v = argv[++i] ?? "";
            if (v === "none") link = null;
            else if (/^\d+(kbit|mbit|gbit)$/.test(v)) link = v;
            else fail(`--link takes a rate such as 64mbit or 1gbit, or none, got ${JSON.stringify(v)}`);
        } else if (a === "--keep") keep = true;
        else if (a === "--help" || a === "-h") {
            console.log(USAGE);
            process.exit(0);
        } else fail(`unknown argument ${JSON.stringify(a)}`);
    }
    const n = files ?? Math.max(20, Math.round((size * 0.4) / FILE_BYTES));
    return { rows: rows ?? Math.max(1000, Math.round((size * 0.6) / ROW_BYTES)), files: n, filesBytes: n * FILE_BYTES, link, keep };
}

// ---------------------------------------------------------------------------------------------
// Printing

const t0 = Date.now();
const clock = () => {
    const s = Math.round((Date.now() - t0) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
};
const say = (line: string) => console.log(`[${clock()}] ${line}`);
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const stepCount = (steps: { action: string }[]) => {
    const n = steps.filter((s) => s.action !== "same").length;
    return `${n} step${n === 1 ? "" : "s"}`;
};
const seconds = (ms: number) => (ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`);
const num = (n: number) => n.toLocaleString("en-US");

/** Runs `script` on `host`; throws with its output unless it exits 0. */
async function must(host: HostName, script: string, opts: { user?: string; input?: string } = {}): Promise<string> {
    const r = await run(host, script, opts);
    if (r.code !== 0) throw new Error(`${host}: ${script.slice(0, 200)}\nexited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
}
const psql = (db: string) => `cd / && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -d ${db}`;

// ---------------------------------------------------------------------------------------------
// Measures on the hosts, independent of what the steps print

interface Measure {
    tables: string;
    tableCount: number;
    rows: number;
    dbBytes: number;
    rates: string;
    rateRows: number;
    trees: string;
    files: number;
    fileBytes: number;
}

async function measure(host: HostName, withFiles = true): Promise<Measure> {
    const tables = await must(host, psql("kingfisher_collect"), { input: TABLES_FINGERPRINT_SQL });
    const lines = tables.trim().split("\n").filter(Boolean);
    const dbBytes = Number(await must(host, `${psql("kingfisher_collect")} -c "SELECT pg_database_size('kingfisher_collect')"`));
    const rates = host === "replica" ? "" : await must(host, psql("pelican_backend"), { input: columnsFingerprintSql("exchange_rates", EXCHANGE_RATES_COLUMNS) });
    let trees = "";
    let files = 0;
    let fileBytes = 0;
    if (withFiles) {
        trees = (await must(host, treeFingerprint(`${HOME}/data`).text)) + (await must(host, treeFingerprint(`${HOME}/logs`).text));
        const [b, f] = (await must(host, `echo "$(du -sbc ${HOME}/data ${HOME}/logs | tail -n 1 | cut -f1) $(find ${HOME}/data ${HOME}/logs -type f | wc -l)"`)).trim().split(" ");
        fileBytes = Number(b);
        files = Number(f);
    }
    return {
        tables,
        tableCount: lines.length,
        rows: lines.reduce((sum, l) => sum + Number(l.split("|")[1]), 0),
        dbBytes,
        rates,
        rateRows: Number(rates.split("|")[0] || 0),
        trees,
        files,
        fileBytes,
    };
}

// ---------------------------------------------------------------------------------------------
// Data

async function generate(opts: Options): Promise<void> {
    say(`generating ${num(opts.rows)} rows in kingfisher_collect on the old server (3 tables of OCDS-like JSONB, owned by kingfisher_collect)`);
    await must("old", psql("kingfisher_collect"), { input: createTablesSql() });
    const batch = 200_000;
    for (let from = 0; from < opts.rows; from += batch) {
        await must("old", psql("kingfisher_collect"), { input: insertRowsSql(from, Math.min(batch, opts.rows - from)) });
        if (opts.rows > batch) say(`  ${num(Math.min(opts.rows, from + batch))} of ${num(opts.rows)} rows`);
    }
    await must("old", psql("kingfisher_collect"), { input: SETTLE_SQL });
    say(`generating ${num(opts.files)} files (about ${mb(opts.filesBytes)}) under ${HOME}/data on the old server, as the incremental user`);
    await must("old", `python3 - generate ${HOME}/data ${opts.files} ${opts.filesBytes} 17 > /dev/null && sync`, { user: "incremental", input: FILES_PY });
}

// ---------------------------------------------------------------------------------------------
// The runs

interface Timed {
    start: Map<string, number>;
    end: Map<string, number>;
}

function printer(tb: Testbed, timed: Timed): (e: ApplyEvent) => void {
    const names = new Map<string, string>();
    for (const [role, h] of Object.entries(tb.hosts)) names.set(h.ipv4, `${h.hostname.split(".")[0]} (${role})`);
    const hostOf = (host: string) => {
        const ip = host.replace(/^.*@/, "");
        return names.get(ip) ?? host;
    };
    const short = (name: string) => name.replace(/^data-support-/, "");
    const partial = new Map<string, string>();
    return (e) => {
        if (e.event === "start") {
            timed.start.set(e.name, Date.now());
            say(`▶ ${e.action} ${short(e.name)} on ${hostOf(e.host)}`);
        } else if (e.event === "output") {
            // Whole lines only, as they arrive; a step's live output is indented under it.
            const text = (partial.get(e.name) ?? "") + e.text;
            const lines = text.split("\n");
            partial.set(e.name, lines.pop() ?? "");
            for (const line of lines) if (line.trim()) say(`    ${short(e.name)} │ ${line}`);
        } else {
            timed.end.set(e.name, Date.now());
            const rest = partial.get(e.name);
            if (rest?.trim()) say(`    ${short(e.name)} │ ${rest}`);
            partial.delete(e.name);
            say(`${e.ok ? "✓" : "✗"} ${e.action} ${short(e.name)} on ${hostOf(e.host)}: ${seconds(e.durationMs)}${e.ok ? "" : ` (exit ${e.exitCode})`}`);
        }
    };
}

const abort = new AbortController();
let interrupted = false;
let upInProgress: Promise<Testbed> | null = null;

async function applyStack(harness: Harness, tb: Testbed, stack: "main" | "replica", config: Record<string, unknown>, timed: Timed, stackOutputs?: ApplyOptions["stackOutputs"]): Promise<ApplyResult> {
    const result = await harness.applyInBackground(config, { stack, stackOutputs, signal: abort.signal }, printer(tb, timed));
    if (!result.ok) throw new Error(`pulumi up -s ${stack} failed: ${result.error}`);
    return result;
}

function mainConfig(tb: Testbed): Record<string, any> {
    const cfg = testbedConfig(tb);
    const r = tb.hosts.replica;
    cfg.servers.replica = { hostname: r.hostname, ipv4: r.ipv4, ipv6: r.ipv6, ssh: { user: "root", port: 22, hostKey: r.hostKey } };
    return cfg;
}

function replicaConfig(tb: Testbed): Record<string, any> {
    const r = tb.hosts.replica;
    return { role: "replica", migrationId: "ocp04-to-ocp23", servers: { replica: { hostname: r.hostname, ipv4: r.ipv4, ipv6: r.ipv6, ssh: { user: "root", port: 22, hostKey: r.hostKey } } } };
}

function printOutputs(title: string, result: ApplyResult): void {
    console.log(`\n${title}`);
    for (const [key, value] of Object.entries(result.outputs)) {
        if (value === undefined) continue;
        if (result.secretOutputs.includes(key)) {
            console.log(`  ${key}: [secret]`);
            continue;
        }
        // The pillar fragments are YAML texts: shown as they would be pasted into the Salt repository.
        const parts = typeof value === "object" && value !== null && Object.values(value).every((v) => typeof v === "string") ? Object.entries(value as Record<string, string>) : null;
        if (parts && key === "pillar") {
            console.log(`  ${key}:`);
            for (const [name, text] of parts) console.log(`    ${name}:\n${text.trimEnd().replace(/^/gm, "      ")}`);
            continue;
        }
        const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
        console.log(`  ${key}:${text.includes("\n") ? `\n${text.replace(/^/gm, "    ")}` : ` ${text}`}`);
    }
}

async function main(): Promise<void> {
    const opts = parseOptions(process.argv.slice(2));
    // Measured here (2 shared cores, default size: 2 min 15 s idle, 4 min 37 s busy): about 2 min
    // whatever the size (hosts up and down, the steps, the replica, a second up), 0.35 s per MB of
    // rows generated, copied and verified, and the transfer over the old server's link.
    const bytes = opts.rows * ROW_BYTES + opts.filesBytes;
    const estimate = Math.max(3, Math.round(2 + ((opts.rows * ROW_BYTES) / 1e6) * 0.35 / 60 + (opts.link ? (bytes * 8) / parseLink(opts.link) / 60 : 0)));
    console.log(`Rehearsal of the data support migration on this machine (about ${estimate} min here, longer on a busy machine).
It will:
  1. bring up the test hosts: old (ocp04), new (ocp23), docs (ocp19), replica (ocp24), an operator
     and an outsider, each a Linux namespace with real sshd, PostgreSQL 15, cron, rsync, tinyproxy,
     RabbitMQ (stand-ins for Docker and Scrapyd);
  2. generate ${num(opts.rows)} rows in kingfisher_collect and ${num(opts.files)} files (${mb(opts.filesBytes)}) in data/ on the old server;
     the old server's link: ${opts.link ?? "this machine's full speed"};
  3. run pulumi up -s main, then pulumi up -s replica (the harness stands in for the engine and
     @pulumi/command 1.2.1), printing each step as it starts and ends, with its live output;
  4. print the stack outputs, what was copied and verified (measured on the hosts), how long the
     old server was halted, and what a second pulumi up changes (nothing);
  5. ${opts.keep ? "leave the test hosts up (--keep) and say how to log into each" : "bring the test hosts down (--keep leaves them up)"}.
Ctrl-C at any time brings the test hosts down.
`);
    if (!canRunTestHosts()) fail("the test hosts need root and Linux network namespaces (run as root on Debian 12; see README.md)");
    if (fs.existsSync(`${STATE_DIR}/info.json`)) say("test hosts from an earlier run are up: they are brought down first");

    say("bringing up the test hosts (about a minute)");
    upInProgress = up();
    const tb = await upInProgress;
    upInProgress = null;
    await pointName("collect.kingfisher.open-contracting.org", "new");
    say(`test hosts up: ${(["old", "new", "docs", "replica"] as const).map((h) => `${h} ${tb.hosts[h].hostname} ${tb.hosts[h].ipv4}`).join(", ")}`);

    await generate(opts);
    if (opts.link) await must("old", `tc qdisc add dev eth0 root tbf rate ${opts.link} burst 64kb latency 2s`);
    say("measuring the old server before the migration");
    const before = await measure("old");
    say(`old server: kingfisher_collect ${before.tableCount} tables, ${num(before.rows)} rows, ${mb(before.dbBytes)}; exchange_rates ${num(before.rateRows)} rows; data/ and logs/ ${num(before.files)} files, ${mb(before.fileBytes)}`);

    const harness = new Harness(tb);
    const timed: Timed = { start: new Map(), end: new Map() };
    console.log("\n== pulumi up -s main ==");
    const mainStarted = Date.now();
    const main = await applyStack(harness, tb, "main", mainConfig(tb), timed);
    const mainMs = Date.now() - mainStarted;
    printOutputs("Outputs of the main stack (pulumi stack output -s main):", main);

    console.log("\n== pulumi up -s replica ==");
    const stackOutputs = { [MAIN_STACK]: { outputs: main.outputs, secretOutputNames: main.secretOutputs } };
    const replicaStarted = Date.now();
    const replica = await applyStack(harness, tb, "replica", replicaConfig(tb), timed, stackOutputs);
    const replicaMs = Date.now() - replicaStarted;
    printOutputs("Outputs of the replica stack:", replica);

    if (opts.link) await must("old", "tc qdisc del dev eth0 root");
    say("measuring the new server and the replica");
    const after = await measure("new");
    const onReplica = await measure("replica", false);

    console.log("\n== second pulumi up of each stack (nothing may change) ==");
    const again = await applyStack(harness, tb, "main", mainConfig(tb), { start: new Map(), end: new Map() });
    const againReplica = await applyStack(harness, tb, "replica", replicaConfig(tb), { start: new Map(), end: new Map() }, stackOutputs);
    const changed = [...again.steps, ...againReplica.steps].filter((s) => s.action !== "same");

    const haltStart = timed.start.get(HALT_STEP);
    const copyEnds = COPY_STEPS.map((n) => timed.end.get(n)).filter((t): t is number => t !== undefined);
    const equal = (a: string, b: string) => (a === b ? "equal" : "DIFFERENT");
    const checks = [before.tables === after.tables, before.rates === after.rates, before.trees === after.trees, before.tables === onReplica.tables];
    console.log(`
== Summary ==
Measured on the hosts (fingerprints: rows and md5 per table; paths, sizes and sha256 per file):
  kingfisher_collect: ${before.tableCount} tables, ${num(before.rows)} rows; old ${mb(before.dbBytes)}, new ${mb(after.dbBytes)}: ${equal(before.tables, after.tables)}
  exchange_rates: ${num(before.rateRows)} rows: ${equal(before.rates, after.rates)}
  data/ and logs/: ${num(before.files)} files, ${mb(before.fileBytes)} on old, ${num(after.files)} files, ${mb(after.fileBytes)} on new: ${equal(before.trees, after.trees)}
  replica: ${String(replica.outputs.status ?? "")}; kingfisher_collect on the replica: ${equal(before.tables, onReplica.tables)} to the old server's
Old server halted (start of ${HALT_STEP.replace(/^data-support-/, "")} to the end of the last copy): ${haltStart && copyEnds.length ? seconds(Math.max(...copyEnds) - haltStart) : "unknown"}
  ${COPY_STEPS.map((n) => `${n.replace(/^data-support-/, "")} ${timed.start.has(n) && timed.end.has(n) ? seconds(timed.end.get(n)! - timed.start.get(n)!) : "?"}`).join(", ")}
pulumi up -s main: ${stepCount(main.steps)} in ${seconds(mainMs)}; pulumi up -s replica: ${stepCount(replica.steps)} in ${seconds(replicaMs)}
Second pulumi up: ${changed.length === 0 ? `nothing changed (${again.steps.length + againReplica.steps.length} resources, all same)` : `CHANGED ${changed.map((s) => `${s.action} ${s.name}`).join(", ")}`}
Rehearsal: ${seconds(Date.now() - t0)} in all`);

    if (opts.keep) {
        console.log(`
The test hosts are still up (--keep). Log into each as root (a shell inside its namespaces):
${(["old", "new", "docs", "replica", "operator"] as const).map((h) => `  bash test/hosts/testbed.sh exec ${h} -- bash -l${h === "operator" ? "    # where pulumi would run" : `    # ${tb.hosts[h].hostname}`}`).join("\n")}
Bring them down with: bash test/hosts/testbed.sh down`);
    } else {
        say("bringing the test hosts down");
        await down();
        say("test hosts down");
    }
    if (!checks.every(Boolean) || changed.length > 0) {
        console.error("rehearse: the copies differ or the second up changed something (see above)");
        process.exitCode = 1;
    }
}

function parseLink(link: string): number {
    const m = /^(\d+)(kbit|mbit|gbit)$/.exec(link)!;
    return Number(m[1]) * { kbit: 1e3, mbit: 1e6, gbit: 1e9 }[m[2] as "kbit" | "mbit" | "gbit"];
}

// Ctrl-C (or SIGTERM): stop the run, bring every test host down, leave nothing behind.
async function interrupt(signal: NodeJS.Signals): Promise<void> {
    if (interrupted) return;
    interrupted = true;
    console.error(`\nrehearse: ${signal}: stopping the run and bringing the test hosts down`);
    abort.abort();
    try {
        await down();
        // `up` was still running: let it end (it fails once its namespaces are gone), then again.
        if (upInProgress) {
            await upInProgress.catch(() => undefined);
            await down();
        }
        console.error("rehearse: test hosts down; nothing left behind");
    } catch (error) {
        console.error(`rehearse: bringing the test hosts down failed: ${(error as Error).message}\nRun: bash test/hosts/testbed.sh down`);
    }
    process.exit(130);
}
process.on("SIGINT", () => void interrupt("SIGINT"));
process.on("SIGTERM", () => void interrupt("SIGTERM"));

main().catch(async (error: Error) => {
    if (interrupted) return;
    console.error(`\nrehearse: ${error.message}`);
    if (!parseOptions(process.argv.slice(2)).keep) {
        console.error("rehearse: bringing the test hosts down");
        await down().catch(() => undefined);
    } else if (fs.existsSync(`${STATE_DIR}/info.json`)) {
        console.error(`rehearse: the test hosts are still up (--keep): bash test/hosts/testbed.sh exec old -- bash -l; down: bash test/hosts/testbed.sh down`);
    }
    process.exit(1);
});

