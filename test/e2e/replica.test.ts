// The replica on the test hosts: the `main` stack admits it (role, slot, pg_hba), the `replica`
// stack makes it a hot standby of the new main through a StackReference, and it follows the main.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { down, pointName, run, up, type HostName, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig, type ApplyResult } from "../support/harness";
import { psql, sh } from "../support/hosts";

let tb: Testbed;
let harness: Harness;
let main: ApplyResult;
let replicaRun: ApplyResult;



/** Polls (a bounded loop on the host, not a sleep in the test) until `sql` on `host` prints `want`. */
async function eventually(host: HostName, db: string, sql: string, want: string): Promise<string> {
    return sh(host, `for _ in $(seq 100); do v=$(${psql(db)} -c "${sql}" 2>/dev/null || true); [ "$v" = "${want}" ] && break; sleep 0.1; done; printf '%s' "$v"`);
}

function mainConfig(): Record<string, any> {
    const cfg = testbedConfig(tb);
    const r = tb.hosts.replica;
    cfg.servers.replica = { hostname: r.hostname, ipv4: r.ipv4, ipv6: r.ipv6, ssh: { user: "root", port: 22, hostKey: r.hostKey } };
    return cfg;
}

function replicaConfig(): Record<string, any> {
    const r = tb.hosts.replica;
    return {
        role: "replica",
        migrationId: "ocp04-to-ocp23",
        servers: { replica: { hostname: r.hostname, ipv4: r.ipv4, ipv6: r.ipv6, ssh: { user: "root", port: 22, hostKey: r.hostKey } } },
    };
}

// What the main stack's StackReference reads: its outputs, and which of them it marked secret.
const applyReplica = (mainRun: Pick<ApplyResult, "outputs" | "secretOutputs"> = main) =>
    harness.apply(replicaConfig(), { stack: "replica", stackOutputs: { "organization/data-support/main": { outputs: mainRun.outputs, secretOutputNames: mainRun.secretOutputs } } });

before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    harness = new Harness(tb);
    main = assertApplied(harness.apply(mainConfig()));
});

after(async () => {
    await down();
});

test("main side: a REPLICATION role, a physical slot and one hostssl line per replica address", async () => {
    assert.equal(await sh("new", `${psql("postgres")} -c "SELECT rolreplication, rolcanlogin FROM pg_roles WHERE rolname = 'replica'"`), "t|t\n");
    assert.equal(await sh("new", `${psql("postgres")} -c "SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'replica1'"`), "physical\n");
    const hba = await sh("new", "grep '^hostssl replication' /etc/postgresql/15/main/pg_hba.conf");
    assert.equal(hba, `hostssl replication replica ${tb.hosts.replica.ipv4}/32 scram-sha-256\nhostssl replication replica ${tb.hosts.replica.ipv6}/128 scram-sha-256\n`);
    assert.ok(main.secretOutputs.includes("replication"), "the replication output (with the password) is secret");
});

test("a main stack without a replica: the replica stack stops with one clear error, running nothing", () => {
    const result = applyReplica({ outputs: { newServer: main.outputs.newServer }, secretOutputs: [] });
    assert.equal(result.ok, false);
    assert.match(result.error ?? "", /organization\/data-support\/main has no replication output: add servers\.replica to the main stack's config/);
    assert.deepEqual(result.steps, []);
});

test("the replica stack refuses to wipe a data directory that is not a standby and holds databases", async () => {
    await sh("replica", `${psql("postgres")} -c "CREATE DATABASE precious"`);
    const refused = applyReplica();
    assert.equal(refused.ok, false);
    assert.match(refused.error ?? "", /is not a standby .* refusing to wipe a primary/);
    assert.equal(await sh("replica", `${psql("postgres")} -c "SELECT count(*) FROM pg_database WHERE datname = 'precious'"`), "1\n");
    await sh("replica", `${psql("postgres")} -c "DROP DATABASE precious"`);
});

test("after main then replica: the replica streams over SSL and follows the main", async () => {
    const result = (replicaRun = assertApplied(applyReplica()));
    assert.match(String(result.outputs.status), /streaming from ocp23/);
    const stat = await sh("new", `${psql("postgres")} -c "SELECT r.state, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = 'ocp24'"`);
    assert.equal(stat, "streaming|t\n");
    await sh("new", `${psql("kingfisher_collect")} -c "INSERT INTO crawl (spider, started) VALUES ('replica_probe', now())"`);
    assert.equal(await eventually("replica", "kingfisher_collect", "SELECT count(*) FROM crawl WHERE spider = 'replica_probe'", "1"), "1");
});

test("the replica is a hot standby: it answers reads and refuses writes", async () => {
    assert.equal(await sh("replica", `${psql("postgres")} -c "SELECT pg_is_in_recovery()"`), "t\n");
    const write = await run("replica", `${psql("kingfisher_collect")} -c "INSERT INTO crawl (spider, started) VALUES ('x', now())"`);
    assert.notEqual(write.code, 0);
    assert.match(write.stderr, /read-only transaction/);
    const settings = await sh("replica", `${psql("postgres")} -c "SELECT current_setting('hot_standby_feedback') || ' ' || current_setting('primary_slot_name') || ' ' || current_setting('max_worker_processes')"`);
    const mainWorkers = (await sh("new", `${psql("postgres")} -c "SHOW max_worker_processes"`)).trim();
    assert.equal(settings, `on replica1 ${mainWorkers}\n`);
});

test("the replication password appears in no command text, stdout or stderr of either stack", () => {
    const password = (main.outputs.replication as { password: string }).password;
    assert.match(password, /^[A-Za-z0-9]{40}$/);
    const texts = [...main.steps, ...replicaRun.steps].flatMap((s) => [s.command, s.stdout, s.stderr]);
    assert.equal(texts.filter((t) => t.includes(password)).length, 0);
});

test("a second up of both stacks changes nothing", () => {
    const acted = (r: ApplyResult) => r.steps.filter((s) => s.action !== "same").map((s) => s.name);
    assert.deepEqual(acted(assertApplied(harness.apply(mainConfig()))), []);
    assert.deepEqual(acted(assertApplied(applyReplica())), []);
});

test("re-pointing: a changed main replaces the standby with no manual step, and it streams again", async () => {
    // The main stack now reports another name for the main (as after a move): the replica is rebuilt from it.
    const moved = structuredClone(main.outputs) as any;
    moved.newServer.hostname = "ocp25.open-contracting.org";
    const result = assertApplied(applyReplica({ outputs: moved, secretOutputs: main.secretOutputs }));
    assert.deepEqual(result.steps.filter((s) => s.action !== "same").map((s) => `${s.action} ${s.name}`), ["replace data-support-replica-standby", "delete-replaced data-support-replica-standby"]);
    assert.match(String(result.outputs.status), /streaming from ocp25/);
    await sh("new", `${psql("kingfisher_collect")} -c "INSERT INTO crawl (spider, started) VALUES ('after_repoint', now())"`);
    assert.equal(await eventually("replica", "kingfisher_collect", "SELECT count(*) FROM crawl WHERE spider = 'after_repoint'", "1"), "1");
});

test("the replica leaving the main's config removes role, slot and pg_hba lines", async () => {
    assertApplied(harness.apply(testbedConfig(tb)));
    assert.equal(await sh("new", `${psql("postgres")} -c "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'replica') + (SELECT count(*) FROM pg_replication_slots)"`), "0\n");
    assert.equal(await sh("new", "grep -c 'replication' /etc/postgresql/15/main/pg_hba.conf || true"), (await sh("old", "grep -c 'replication' /etc/postgresql/15/main/pg_hba.conf || true")));
    assert.equal(await sh("new", `${psql("postgres")} -c "SELECT count(*) FROM pg_stat_replication"`), "0\n");
});
