// `npm run rehearse` stopped half-way (Ctrl-C, or SIGTERM from a supervisor): it brings the test
// hosts down and leaves no namespace, state or run behind, whether the signal comes while the
// hosts come up or while pulumi up runs.
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { down, STATE_DIR } from "../hosts/testbed";

const REPO = path.join(__dirname, "..", "..");

after(async () => {
    await down();
});

/** Starts the rehearsal, sends `signal` once a line matching `when` is printed; its exit code and output. */
function interruptedRehearsal(signal: NodeJS.Signals, when: RegExp): Promise<{ code: number | null; output: string; signalled: boolean }> {
    const child = spawn(process.execPath, ["--import", "tsx", "tools/rehearse.ts", "--rows", "2000", "--files", "20"], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let signalled = false;
    const seen = (d: Buffer) => {
        output += d;
        if (!signalled && when.test(output)) {
            signalled = true;
            child.kill(signal);
        }
    };
    child.stdout.on("data", seen);
    child.stderr.on("data", seen);
    return new Promise((resolve) => child.on("close", (code) => resolve({ code, output, signalled })));
}

const namespaces = () => (spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout.match(/^ds-\S+/gm) ?? []);
const runs = () => spawnSync("pgrep", ["-f", `apply.ts ${STATE_DIR}/harness/`], { encoding: "utf8" }).stdout.trim();

test("SIGINT while pulumi up -s main runs: exit 130, the hosts are down, no run is left", async () => {
    const r = await interruptedRehearsal("SIGINT", /▶ create /);
    assert.ok(r.signalled, r.output);
    assert.equal(r.code, 130, r.output);
    assert.match(r.output, /rehearse: SIGINT: stopping the run and bringing the test hosts down/);
    assert.match(r.output, /rehearse: test hosts down; nothing left behind/);
    assert.deepEqual(namespaces(), []);
    assert.equal(fs.existsSync(path.join(STATE_DIR, "info.json")), false);
    assert.equal(runs(), "");
});

test("SIGTERM while the test hosts come up: exit 130, no namespace left", async () => {
    const r = await interruptedRehearsal("SIGTERM", /bringing up the test hosts/);
    assert.ok(r.signalled, r.output);
    assert.equal(r.code, 130, r.output);
    assert.match(r.output, /rehearse: test hosts down; nothing left behind/);
    assert.deepEqual(namespaces(), []);
    assert.equal(fs.existsSync(path.join(STATE_DIR, "info.json")), false);
});
