// The section of bench/results.md that bench/copy.ts writes: what was measured, the figures of
// each method, and what they mean.
import * as os from "node:os";
import { median } from "./results";
import { MIGRATION_ID, RUNBOOK } from "./copyRunbook";
import type { DbRun, FilesRun, Options } from "./copy";
import type { Step, Steps } from "./copySteps";

export const movingLines = (s: Step) => s.create.split("\n").filter((l) => /\b(pg_dump|rsync)\b/.test(l));

export const BEGIN = "<!-- copy:begin -->";
export const END = "<!-- copy:end -->";

export const fmt = (x: number, digits = 2) => x.toFixed(digits);
export const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

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

export function dbSection(runs: DbRun[], steps: Steps, opts: Options): string[] {
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
        "then runs `ANALYZE` and compares the table fingerprints of both sides (`components/machinery/fingerprint.ts`):",
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

export function filesSection(runs: FilesRun[], steps: Steps, opts: Options): string[] {
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
        "manifest (components/machinery/treeManifest.ts), so after the halt each side hashes only files whose size or mtime changed",
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
