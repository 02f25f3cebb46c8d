// Faults on the test hosts (issue 9): a changed host key, a full disk on the new server, the old
// server's PostgreSQL stopped during the dump, the SSH connection dropped in the middle of a step,
// and the new server's services restarted between steps. Each ends in a clear failure; a re-run
// once the fault is gone ends with data equal to the old server's. The figures go to the report.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { down, pointName, up, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig, type ApplyResult } from "../support/harness";
import { treeFingerprint } from "../../components/machinery/fingerprint";
import { psql, sh, tablesDump, whileLoading } from "../support/hosts";

let tb: Testbed;
let harness: Harness;
const outcomes: string[] = [];
const DATA = "/home/incremental/data";

function failed(result: ApplyResult, fault: string, pattern: RegExp): void {
    assert.equal(result.ok, false, `${fault}: the run should fail`);
    // The failed step, where it ran, and the engine's error (the provider's text, with the output).
    const described = `${result.failed?.name ?? "(no step)"} failed on ${result.failed?.host ?? "?"} (exit ${result.failed?.exitCode ?? "?"})\n${result.error}`;
    assert.match(described, pattern);
    outcomes.push(`${fault}: failed clearly (${(result.error ?? "").split("\n")[0]})`);
}

before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    harness = new Harness(tb);
    await sh("old", `${psql("kingfisher_collect")} -c "SET ROLE kingfisher_collect; CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 300000) g"`);
    await sh("old", `mkdir -p ${DATA}/big && head -c 6000000 /dev/urandom > ${DATA}/big/blob.bin && chown -R incremental: ${DATA}/big`);
});

after(async (t) => {
    // Report faults x outcomes.
    for (const line of outcomes) console.log(`# fault: ${line}`);
    await down();
});

test("a changed host key stops the run before any command runs on that host", async () => {
    await sh("new", "cp -a /etc/ssh/ssh_host_ed25519_key /root/key.bak && cp -a /etc/ssh/ssh_host_ed25519_key.pub /root/key.pub.bak && rm /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && pkill -HUP -x sshd");
    const result = harness.apply(testbedConfig(tb));
    // The provider's x/crypto/ssh refuses the key at the handshake, retrying the dial first (connection.go).
    failed(result, "host key of the new server changed", /error: after 10 failed attempts: ssh: handshake failed: ssh: host key mismatch/);
    const onNew = result.steps.filter((s) => s.host === "root@198.51.100.23");
    assert.ok(onNew.length > 0 && onNew.every((s) => s.exitCode === -1), "no command ran on the new server: no exit status");
    assert.equal(await sh("new", "test -e /var/lib/data-support/ocp04-to-ocp23 && echo touched || echo untouched"), "untouched\n");
    await sh("new", "mv /root/key.bak /etc/ssh/ssh_host_ed25519_key && mv /root/key.pub.bak /etc/ssh/ssh_host_ed25519_key.pub && pkill -HUP -x sshd");
});

test("the new server's disk full during the copy of data/: a clear failure naming the host", async () => {
    // A small loop-mounted ext4 over data/; where a machine has no loop devices, a small tmpfs.
    const kind = await sh(
        "new",
        `if truncate -s 4M /tmp/small.img && mkfs.ext4 -q -F /tmp/small.img && mount -o loop /tmp/small.img ${DATA} 2>/dev/null; then echo loop-mounted ext4; else mount -t tmpfs -o size=2m tmpfs ${DATA} && echo tmpfs; fi; chown incremental: ${DATA}`,
    );
    const result = harness.apply(testbedConfig(tb));
    await sh("new", `umount ${DATA}; rm -f /tmp/small.img`);
    failed(result, `disk full on the new server (a 4 MB ${kind.trim()} over data/)`, /failed on root@198\.51\.100\.23[\s\S]*No space left on device/);
});

test("the old server's PostgreSQL stopped during the dump: the load is rolled back", async () => {
    const applying = harness.applyInBackground(testbedConfig(tb));
    await whileLoading();
    await sh("old", "pg_ctlcluster 15 main stop -m fast");
    const result = await applying;
    await sh("old", "pg_ctlcluster 15 main start");
    failed(result, "old PostgreSQL stopped during the dump", /data-support-incremental-copy-database failed on root@198\.51\.100\.23/);
    // Rolled back whole: new holds only what Salt loaded before the copy, as it was (41 excluded suppliers).
    assert.equal(await sh("new", `${psql("kingfisher_collect")} -c "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"`), "codelist,cpc,excluded_supplier,indicator,unspsc\n");
    assert.equal(await sh("new", `${psql("kingfisher_collect")} -c "SELECT count(*) FROM excluded_supplier"`), "41\n");
});

test("the SSH connection dropped in the middle of the database copy", async () => {
    const applying = harness.applyInBackground(testbedConfig(tb));
    await whileLoading();
    // Every SSH session of the operator on the new server ends at once (as when a link drops).
    await sh("new", "pkill -f '^sshd: root@notty'");
    const result = await applying;
    failed(result, "SSH connection dropped mid-step", /data-support-incremental-copy-database failed on root@198\.51\.100\.23 \(exit -1\)/);
});

test("the new server's services restarted between steps; the next run ends with equal data", async () => {
    await sh("new", "pg_ctlcluster 15 main restart && pkill -HUP -x sshd && service cron restart");
    const result = assertApplied(harness.apply(testbedConfig(tb)));
    outcomes.push(`services restarted between steps: the next run completed (${result.steps.filter((s) => s.action === "create").length} steps)`);
    assert.equal(await sh("new", tablesDump("kingfisher_collect")), await sh("old", tablesDump("kingfisher_collect")));
    for (const dir of [DATA, "/home/incremental/logs"]) {
        assert.equal(await sh("new", treeFingerprint(dir).text), await sh("old", treeFingerprint(dir).text), dir);
    }
    outcomes.push("after all faults: tables and trees equal on old and new");
});
