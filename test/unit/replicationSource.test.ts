// The main's side of replication as the engine sees it: the password's shape and what each of its
// resources waits for. Where its script runs: test/sandbox/replicationSource.test.ts; against a real
// PostgreSQL: test/e2e/replica.test.ts. Expected values written out.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig, withReplica } from "../support/fixtures";
import { runProgram } from "../../tools/program";

const RS = "urn:pulumi:main::data-support::data-support:replication:ReplicationSource$";

test("the replication password: 40 letters and digits, no special character", async () => {
    // It is read by `read -r`, set with psql's `\set pw $pw` and written into the standby's
    // primary_conninfo and .pgpass: a quote, backslash, colon or space would break one of them.
    const run = await runProgram(withReplica(mainConfig()));
    const password = run.resources.find((r) => r.name === "data-support-replication-password");
    assert.deepEqual(password?.inputs, { length: 40, special: false });
});

test("what each replication resource waits for: the password, then the source, then max_worker_processes", async () => {
    const run = await runProgram(withReplica(mainConfig()));
    const waits = (name: string) => run.resources.find((r) => r.name === name)?.dependencies.filter((u) => u.includes("::data-support-replication-"));
    assert.deepEqual(waits("data-support-replication-password"), []);
    assert.deepEqual(waits("data-support-replication-source"), [`${RS}random:index/randomPassword:RandomPassword::data-support-replication-password`]);
    assert.deepEqual(waits("data-support-replication-max-worker-processes"), [`${RS}command:remote:Command::data-support-replication-source`]);
});

test("max_worker_processes is read again when the main server changes (its triggers)", async () => {
    const run = await runProgram(withReplica(mainConfig()));
    const workers = run.resources.find((r) => r.name === "data-support-replication-max-worker-processes");
    assert.deepEqual(workers?.inputs.triggers, ["ocp23.open-contracting.org"]);
});
