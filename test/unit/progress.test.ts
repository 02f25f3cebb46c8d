// The progress reporter of long steps (components/machinery/progress.ts), run by bash here as a step runs it
// on a server (`set -euo pipefail`, then the lines): lines while the body runs, one when it ends, the
// body's own output and status untouched, and no reporter left behind when the body fails.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { withProgress } from "../../components/machinery/progress";
import { sh, script, ShellText } from "../../components/machinery/shell";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "progress-"));
const counter = path.join(dir, "count");

/** A meter counting the lines of a file the body appends to (10 in all). */
const meter = {
    what: "demo: copying",
    unit: "files",
    setup: sh`: > ${counter}`,
    total: sh`echo 10`,
    sample: sh`echo "$(wc -l < ${counter}) now at item $(wc -l < ${counter})"`,
};

function runStep(body: string): { status: number | null; stdout: string; stderr: string; error?: string } {
    const text = script(sh`set -euo pipefail`, sh`(`, withProgress(meter, new ShellText(body)), sh`)`, sh`echo after`).text;
    const r = spawnSync("bash", ["-c", text], { encoding: "utf8", timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, error: (r.error as NodeJS.ErrnoException | undefined)?.code };
}

test("while the body runs: lines of done of the total, percentage, rate and time left; then a last line; stdout untouched", () => {
    // 10 items, one every 1.5 s: at least one line comes while the body runs.
    const r = runStep(`for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1.5; echo $i >> ${counter}; done; echo body-out`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "body-out\nafter\n");
    const lines = r.stderr.trim().split("\n");
    assert.ok(lines.length >= 2, r.stderr);
    for (const l of lines.slice(0, -1)) assert.match(l, /^demo: copying: \d files of 10 files \(\d0%\), [\d.]+ files\/s, about \d+ s left \[\d+ s\]; now at item \d$/);
    assert.match(lines[lines.length - 1], /^demo: copying: 10 files of 10 files \(100%\), [\d.]+ files\/s \[1\d s\]; done$/);
});

test("a body that fails: its status is the step's, and the reporter does not outlive it", () => {
    const r = runStep("sleep 1; exit 7");
    // spawnSync returns once the step's stdout and stderr are closed by every process holding them
    // (as sshd ends the session): a reporter left running would hold them until the timeout.
    assert.equal(r.error, undefined, "the step's output was closed");
    assert.equal(r.status, 7);
    assert.equal(r.stdout, "", "the step stopped at the failure (set -e)");
});
