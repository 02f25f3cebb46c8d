// The halt and the gates on the test hosts: a wrong docker uid, a running crawl, a queued message
// and DNS not yet moved each stop `pulumi up` before anything after them happens, with a message
// that says what to do; once the cause is gone, the next run continues from there.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { down, pointName, runArgv, operatorCommand, up, type HostName, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig, type ApplyResult } from "../support/harness";
import { sh } from "../support/hosts";

let tb: Testbed;
let harness: Harness;


/** The RabbitMQ management API, called from the operator's machine as an operator would. */
async function rabbit(method: string, path: string, body?: unknown): Promise<void> {
    const r = await runArgv(
        operatorCommand([
            "curl", "-sS", "-f", "-u", `${tb.rabbitmq.username}:${tb.rabbitmq.password}`, "-X", method,
            "-H", "content-type: application/json", ...(body ? ["-d", JSON.stringify(body)] : []),
            `${tb.rabbitmq.url.replace(/\/$/, "")}${path}`,
        ]),
    );
    assert.equal(r.code, 0, r.stderr);
}

const ran = (r: ApplyResult) => r.steps.filter((s) => s.action === "create").map((s) => s.name);
const dockerCalls = (host: HostName) => sh(host, "cat /var/log/docker-standin.log");
const deployCalls = () => sh("new", "cat /var/log/scrapyd-deploy-standin.log");

before(async () => {
    tb = await up();
    harness = new Harness(tb);
    // DNS of the collect hostname still points at the old server.
    await pointName("collect.kingfisher.open-contracting.org", "old");
});

after(async () => {
    await down();
});

// The new server as the pillar of the runbook's commit deploys it: the same pgBackRest stanza as the
// old server (salt/postgres/files/conf/shared.conf, pillar postgres.backup.stanza kingfisher-2023).
const CONF = "/etc/postgresql/15/main/conf.d/030_kingfisher-main1.conf";
const pg = (sql: string) => `cd / && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -c "${sql}"`;
const setStanza = (stanza: string) => sh("new", `sed -i "s/--stanza=[^ ]*/--stanza=${stanza}/" ${CONF} && ${pg("SELECT pg_reload_conf()")} > /dev/null && for _ in $(seq 50); do [ "$(${pg("SHOW archive_command")})" = 'pgbackrest --stanza=${stanza} archive-push %p' ] && break; sleep 0.1; done`);
/** Writes WAL and switches segments, then waits (bounded, on the host) until the archiver has tried it. */
const switchWal = (column: "failed_count" | "archived_count") =>
    sh("new", `n=$(${pg(`SELECT ${column} FROM pg_stat_archiver`)}); ${pg("SELECT pg_logical_emit_message(false, 'ds-testbed', 'x')")} > /dev/null; ${pg("SELECT pg_switch_wal()")} > /dev/null; for _ in $(seq 100); do [ "$(${pg(`SELECT ${column} FROM pg_stat_archiver`)})" -gt "$n" ] && break; sleep 0.1; done`);

test("new archives WAL into the old server's stanza: the WAL gate stops before anything is halted, naming the pillar key", async () => {
    await setStanza("kingfisher-2023");
    const result = harness.apply(testbedConfig(tb));
    await setStanza("kingfisher-ocp23");
    assert.equal(result.ok, false);
    assert.match(result.error ?? "", /ocp23\.open-contracting\.org: PostgreSQL archives its WAL into the pgBackRest stanza kingfisher-2023 \(archive_command\), the stanza of the old server ocp04\.open-contracting\.org/);
    assert.match(result.error ?? "", /set postgres\.backup\.stanza to a stanza of its own/);
    assert.ok(!ran(result).some((n) => /halt-(new|old)-server/.test(n)), ran(result).join(", "));
    assert.equal(await sh("old", "test -e /etc/cron.d/postgres_backups && echo kept"), "kept\n");
    assert.equal(await sh("new", "test -e /etc/cron.d/postgres_backups && echo kept"), "kept\n");
});

test("WAL archiving fails on the new server: the gate stops, saying WAL piles up in pg_wal", async () => {
    await sh("new", "touch /etc/pgbackrest-standin.fail");
    await switchWal("failed_count");
    const result = harness.apply(testbedConfig(tb));
    await sh("new", "rm /etc/pgbackrest-standin.fail");
    await sh("new", `${pg("SELECT pg_reload_conf()")} > /dev/null`);
    await switchWal("archived_count");
    assert.equal(result.ok, false);
    assert.match(result.error ?? "", /ocp23\.open-contracting\.org: WAL archiving fails \(pg_stat_archiver: [1-9]\d* failure\(s\), the last at .*\), so WAL piles up in pg_wal/);
    assert.ok(!ran(result).some((n) => /halt-(new|old)-server/.test(n)), ran(result).join(", "));
    assert.equal(await sh("old", "test -e /etc/cron.d/postgres_backups && echo kept"), "kept\n");
});

test("docker uid differs on the new server: one clear error naming docker.uid; the old server is untouched", async () => {
    const result = harness.apply(testbedConfig(tb, { docker: { uid: 1006 } }));
    assert.equal(result.ok, false);
    assert.match(result.error ?? "", /deployer has uid 1005 in \/etc\/passwd, but data-support:docker\.uid is 1006/);
    assert.ok(!ran(result).some((n) => /halt-(new|old)-server/.test(n)), ran(result).join(", "));
    assert.equal(await sh("old", "test -e /etc/cron.d/postgres_backups && echo kept"), "kept\n");
    assert.equal(await dockerCalls("old"), "");
});

test("a compose file missing on the old server stops the halt, naming the app and the path", async () => {
    await sh("old", "mv /data/deploy/pelican-frontend/docker-compose.yaml /root/pelican-frontend.compose.yaml");
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "data-support-halt-old-server");
    assert.match(result.error ?? "", /cannot bring down Docker Compose app pelican-frontend: \/data\/deploy\/pelican-frontend\/docker-compose\.yaml is missing/);
    // Not recorded as done: the next run brings the apps down again, and nothing after it ran.
    assert.equal(await sh("old", "test -e /var/lib/data-support/ocp04-to-ocp23/halt-old-server.done && echo done || echo not"), "not\n");
    assert.deepEqual(ran(result).filter((n) => /gates/.test(n)), []);
    await sh("old", "mv /root/pelican-frontend.compose.yaml /data/deploy/pelican-frontend/docker-compose.yaml");
});

test("with DNS of the collect name already on the new server, the Scrapyd gate still asks the old one and stops at its running crawl", async () => {
    // The collect name points at the new server, whose Scrapyd (same name, certificate and
    // virtual host) is idle: a gate that followed DNS would pass.
    await pointName("collect.kingfisher.open-contracting.org", "new");
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({ running: [{ id: "a1b2c3", spider: "paraguay_dncp_records", start_time: "2026-11-26 06:00:00" }], pending: [], finished: [] }));
    await rabbit("PUT", "/api/queues/%2F/kingfisher_process_api", { durable: true });
    await rabbit("POST", "/api/exchanges/%2F/amq.default/publish", { properties: {}, routing_key: "kingfisher_process_api", payload: "{}", payload_encoding: "string" });
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "data-support-gates-scrapyd");
    assert.match(result.error ?? "", /running: project kingfisher, spider paraguay_dncp_records, job a1b2c3/);
    assert.match(result.error ?? "", /cancel\.json -d project=kingfisher -d job=a1b2c3/);
    assert.match(result.error ?? "", /at https:\/\/collect\.kingfisher\.open-contracting\.org \(at 198\.51\.100\.4\)/);
    // The old server's Scrapyd was asked over TLS with the public name as SNI and Host (its virtual
    // host answers nothing else); the new server's was not asked at all.
    const oldLog = await sh("old", "cat /var/log/scrapyd-standin.log");
    assert.match(oldLog, /"path": "\/listprojects\.json", "client": "(::ffff:)?198\.51\.100\.2", "status": 200/);
    assert.doesNotMatch(oldLog, /"status": 421/);
    assert.equal(await sh("new", "cat /var/log/scrapyd-standin.log 2>/dev/null || true"), "");
    // The halt ran (it comes before the gates); nothing after the gate did.
    assert.equal(await sh("old", "test -e /etc/cron.d/postgres_backups && echo kept || echo removed"), "removed\n");
    assert.equal(await dockerCalls("new"), "");
});

test("a running job in another Scrapyd project stops the gate, naming project, spider, job and the cancel command", async () => {
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({
        projects: ["kingfisher", "kingfisher_archive"],
        running: [{ project: "kingfisher_archive", id: "d4e5f6", spider: "mexico_inai", start_time: "2026-11-26 07:00:00" }],
        pending: [],
        finished: [{ id: "0a0a0a", spider: "paraguay_dncp_records" }],
    }));
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.match(result.error ?? "", /1 crawl\(s\) are running or pending/);
    assert.match(result.error ?? "", /running: project kingfisher_archive, spider mexico_inai, job d4e5f6/);
    assert.match(result.error ?? "", /curl -u USER https:\/\/collect\.kingfisher\.open-contracting\.org\/cancel\.json -d project=kingfisher_archive -d job=d4e5f6/);
    assert.equal(await dockerCalls("new"), "");
});

test("with the crawl gone, the run continues and stops at RabbitMQ, naming the queue", async () => {
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({ running: [], pending: [], finished: [] }));
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.deepEqual(ran(result).filter((n) => /halt|uid/.test(n)), [], "steps already done are not repeated");
    assert.match(result.error ?? "", /kingfisher_process_api: 1 message\(s\)/);
    assert.equal(await dockerCalls("new"), "");
});

test("with the queue empty, the run goes on to the DNS gate and stops there before deploying spiders", async () => {
    await pointName("collect.kingfisher.open-contracting.org", "old");
    await rabbit("DELETE", "/api/queues/%2F/kingfisher_process_api/contents");
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.match(result.error ?? "", /DNS gate: collect\.kingfisher\.open-contracting\.org resolves to 198\.51\.100\.4.*not only to the new server/);
    assert.match(await dockerCalls("new"), /"up", "-d"/, "docker apps (step 4) ran before the DNS gate");
    assert.equal(await deployCalls(), "");
    assert.match(await sh("old", "crontab -l -u incremental"), /OCDS_KINGFISHER_COLLECT/, "the copy (step 6) has not begun");
});

test("once DNS points at the new server, the run completes, and a second run changes nothing", async () => {
    await pointName("collect.kingfisher.open-contracting.org", "new");
    const result = assertApplied(harness.apply(testbedConfig(tb)));
    assert.ok(ran(result).includes("data-support-spiders-deploy"), ran(result).join(", "));
    assert.notEqual(await deployCalls(), "");
    const again = assertApplied(harness.apply(testbedConfig(tb)));
    assert.deepEqual(again.steps.filter((s) => s.action !== "same"), []);
});
