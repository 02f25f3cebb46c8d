// Live progress of long steps (components/machinery/progress.ts), on the test hosts: over a slow link from
// the old server, the pre-sync and the database copy print progress lines while they run, each
// arriving on its own as the provider streams the step's output, and what the state stores stays small.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { down, pointName, run, up, type Testbed } from "../hosts/testbed";
import { USER_TABLES, VERIFY_APPLICATION, verifyMeter, withProgress } from "../../components/machinery/progress";
import { ShellText } from "../../components/machinery/shell";
import { Harness, testbedConfig, type ApplyEvent, type ApplyResult } from "../support/harness";
import { psql, sh } from "../support/hosts";

let tb: Testbed;
let result: ApplyResult;
/** Every event of the run, with the order in which it arrived. */
const events: ApplyEvent[] = [];

before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    // More than the seed: about 16 MB of rows and 12 MB of files, over a link of 0.5 MB/s (4 Mbit/s)
    // from the old server, so each transfer runs for well over 10 s.
    await sh("old", `${psql("kingfisher_collect")}`, {
        input: "SET ROLE kingfisher_collect;\nCREATE TABLE progress_bulk AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS filler FROM generate_series(1, 60000) AS g;\n",
    });
    await sh("old", "mkdir -p data/progress && head -c 12000000 /dev/urandom > data/progress/blob.bin", { user: "incremental" });
    await sh("old", "tc qdisc add dev eth0 root tbf rate 4mbit burst 32kb latency 2s");
    const harness = new Harness(tb);
    result = await harness.applyInBackground(testbedConfig(tb), {}, (event) => events.push(event));
    await sh("old", "tc qdisc del dev eth0 root");
});

after(async () => {
    await down();
});

/** The output events of step `name` carrying a line that matches `pattern`, and where the step's end came. */
function progressOf(name: string, pattern: RegExp): { lines: string[][]; endIndex: number; indexes: number[] } {
    const indexes: number[] = [];
    const lines: string[][] = [];
    events.forEach((e, i) => {
        if (e.event !== "output" || e.name !== name) return;
        const matched = e.text.split("\n").filter((l) => pattern.test(l));
        if (matched.length > 0) {
            indexes.push(i);
            lines.push(matched);
        }
    });
    return { lines, indexes, endIndex: events.findIndex((e) => e.event === "end" && e.name === name) };
}

test("the run applies, and the copies are verified equal", async () => {
    assert.ok(result.ok, result.error);
    const db = result.steps.find((s) => s.name === "data-support-incremental-copy-database");
    // As many tables as the old server holds (the seed's, progress_bulk, and what Salt loaded), counted there.
    const tables = (await sh("old", `${psql("kingfisher_collect")} -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"`)).trim();
    assert.ok(Number(tables) >= 10, `old holds the seed's tables, progress_bulk and Salt's five: ${tables}`);
    assert.match(db?.stdout ?? "", new RegExp(`kingfisher_collect: ${tables} table\\(s\\) copied and verified equal`));
});

test("the database copy prints progress lines while it loads: bytes of the total, rising percentages, rate, time left", () => {
    const { lines, indexes, endIndex } = progressOf("data-support-incremental-copy-database", /^kingfisher_collect: loading: /);
    assert.ok(lines.length >= 2, `expected at least two progress lines, got ${JSON.stringify(lines)}`);
    // Each line came in an output event of its own, before the step ended: they streamed as it ran.
    assert.ok(lines.every((l) => l.length === 1), JSON.stringify(lines));
    assert.ok(indexes.every((i) => i < endIndex));
    const line = /^kingfisher_collect: loading: [\d.]+ [kMG]?B of [\d.]+ MB \((\d+)%\), [\d.]+ [kMG]?B\/s(, about [\dminh ]+ s left)? \[\d+ s\]/;
    const percents = lines.map(([l]) => Number(line.exec(l)?.[1] ?? NaN));
    assert.ok(percents.every((p) => p >= 0), JSON.stringify(lines));
    assert.ok(percents[0] < 100, `the first line comes before the end of the load: ${lines[0]}`);
    for (let i = 1; i < percents.length; i++) assert.ok(percents[i] >= percents[i - 1], JSON.stringify(lines));
    // The load's last line, then the verification's: each phase ends with a line of its own.
    assert.match(lines[lines.length - 1][0], /; done$/);
    const stderr = result.steps.find((s) => s.name === "data-support-incremental-copy-database")?.stderr ?? "";
    assert.match(stderr, /^kingfisher_collect: verifying \(new server\): (.*; )?done\b/m);
});

test("the pre-sync prints progress lines while it transfers: bytes and files of the old server's", () => {
    const { lines, indexes, endIndex } = progressOf("data-support-incremental-copy-presync", /^pre-sync of data\/ and logs\/: /);
    assert.ok(indexes.every((i) => i < endIndex));
    // While it runs: files done of the old server's; the last line: done.
    assert.ok(lines.length >= 2, JSON.stringify(lines));
    for (const [l] of lines.slice(0, -1)) assert.match(l, /^pre-sync of data\/ and logs\/: [\d.]+ [kMG]?B of [\d.]+ MB \(\d+%\), .*; files: \d+ of \d+$/);
    assert.match(lines[lines.length - 1][0], /^pre-sync of data\/ and logs\/: [\d.]+ [kMG]?B of [\d.]+ MB \(\d+%\), .*; done$/);
});

test("the verification's meter, on a real session named as the verification's: lines while it hashes, with the table it is on", async () => {
    // The verification of the run above hashes 16 MB in well under 10 s, so it printed only its last
    // line. Here the meter of components/machinery/progress.ts watches a session that takes 21 s, as a
    // fingerprint of a large table would: PGAPPNAME as the verification sets it, the table it is on
    // as the first column of its query (what the meter reads from pg_stat_activity).
    const session = `runuser -u postgres -- env PGAPPNAME=${VERIFY_APPLICATION} psql -X -At -q -d kingfisher_collect -c "SELECT 'progress_bulk', pg_sleep(21)" > /dev/null`;
    const shell = withProgress(verifyMeter("kingfisher_collect: verifying (new server)", "kingfisher_collect", USER_TABLES), new ShellText(session)).text;
    const stderr = (await run("new", `{ ${shell}\n} 2>&1 >/dev/null`)).stdout;
    const lines = stderr.split("\n").filter((l) => l.startsWith("kingfisher_collect: verifying (new server): "));
    assert.ok(lines.length >= 3, `two lines while it runs and a last one: ${stderr}`);
    for (const l of lines.slice(0, -1)) assert.match(l, /^kingfisher_collect: verifying \(new server\): [\d.]+ [kMG]?B of [\d.]+ MB \(\d+%\), .*; now on progress_bulk$/);
    assert.match(lines[lines.length - 1], /^kingfisher_collect: verifying \(new server\): (.*; )?done\b/);
});

test("the stored output of every step stays small", () => {
    const sizes = result.steps.map((s) => ({ name: s.name, bytes: Buffer.byteLength(s.stdout) + Buffer.byteLength(s.stderr) }));
    const largest = sizes.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    assert.ok(largest.bytes < 8192, `${largest.name} stored ${largest.bytes} bytes`);
});
