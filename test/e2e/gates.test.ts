// The halt and the gates on the test hosts: a wrong docker uid, a running crawl, a queued message
// and DNS not yet moved each stop `pulumi up` before anything after them happens, with a message
// that says what to do; once the cause is gone, the next run continues from there. The gates are
// asked before the halt (the first run passes them), again right after it (a crawl and a message
// that arrive between the two are caught there, and the guide's commands are followed), and again
// right before the copy (a crawl started while the run was stopped at the DNS gate); and, once
// those passed and the step after them failed, by the copy itself when the run resumes.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { down, pointName, runArgv, operatorCommand, up, type HostName, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig, type ApplyResult } from "../support/harness";
import { psql, sh, tablesDump } from "../support/hosts";
import { treeFingerprint } from "../../components/machinery/fingerprint";

let tb: Testbed;
let harness: Harness;


/** The RabbitMQ management API, called from the operator's machine as an operator would. */
async function rabbit(method: string, path: string, body?: unknown): Promise<string> {
    const r = await runArgv(
        operatorCommand([
            "curl", "-sS", "-f", "-u", `${tb.rabbitmq.username}:${tb.rabbitmq.password}`, "-X", method,
            "-H", "content-type: application/json", ...(body ? ["-d", JSON.stringify(body)] : []),
            `${tb.rabbitmq.url.replace(/\/$/, "")}${path}`,
        ]),
    );
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
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

const AFTER_HALT = "This gate was asked again right after the halt of ocp04.open-contracting.org: the work above arrived after the gates first passed";
const APPS = ["kingfisher-process", "pelican-backend", "pelican-frontend"];
/** The message of the run the re-check after the halt stopped: its guide is followed by the next test. */
let guide = "";

test("with DNS of the collect name already on the new server, the Scrapyd gate after the halt still asks the old one and stops at its running crawl", async () => {
    // The collect name points at the new server, whose Scrapyd (same name, certificate and
    // virtual host) is idle: a gate that followed DNS would pass.
    await pointName("collect.kingfisher.open-contracting.org", "new");
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({ running: [{ id: "a1b2c3", spider: "paraguay_dncp_records", start_time: "2026-11-26 06:00:00" }], pending: [], finished: [] }));
    await rabbit("PUT", "/api/queues/%2F/kingfisher_process_api", { durable: true });
    await rabbit("POST", "/api/exchanges/%2F/amq.default/publish", { properties: {}, routing_key: "kingfisher_process_api", payload: "{}", payload_encoding: "string" });
    // The gates before the halt passed in the first run; this crawl and this message arrived since,
    // before the halt: the re-check right after the halt catches them.
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "data-support-gates-after-halt-scrapyd");
    assert.ok((result.error ?? "").includes(AFTER_HALT), result.error);
    assert.match(result.error ?? "", /running: project kingfisher, spider paraguay_dncp_records, job a1b2c3/);
    assert.match(result.error ?? "", /cancel\.json -d project=kingfisher -d job=a1b2c3/);
    assert.match(result.error ?? "", /at https:\/\/collect\.kingfisher\.open-contracting\.org \(at 198\.51\.100\.4\)/);
    // The old server's Scrapyd was asked over TLS with the public name as SNI and Host (its virtual
    // host answers nothing else); the new server's was not asked at all.
    const oldLog = await sh("old", "cat /var/log/scrapyd-standin.log");
    assert.match(oldLog, /"path": "\/listprojects\.json", "client": "(::ffff:)?198\.51\.100\.2", "status": 200/);
    assert.doesNotMatch(oldLog, /"status": 421/);
    assert.equal(await sh("new", "cat /var/log/scrapyd-standin.log 2>/dev/null || true"), "");
    // The halt ran (the re-check comes after it); nothing after the re-check did.
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

test("a message queued between the gates and the halt is not lost: the re-check after the halt stops the run with the guide", async () => {
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({ running: [], pending: [], finished: [] }));
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.deepEqual(ran(result).filter((n) => /^data-support-halt-/.test(n)), [], "steps already done are not repeated");
    assert.equal(result.failed?.name, "data-support-gates-after-halt-rabbitmq");
    assert.match(result.error ?? "", /kingfisher_process_api: 1 message\(s\)/);
    guide = result.error ?? "";
    for (const line of [
        AFTER_HALT,
        "  1. bring the apps back up:",
        "    runuser -l deployer -c 'cd /data/deploy/kingfisher-process && docker compose up -d'",
        "    runuser -l deployer -c 'cd /data/deploy/pelican-backend && docker compose up -d'",
        "    runuser -l deployer -c 'cd /data/deploy/pelican-frontend && docker compose up -d'",
        "  3. bring them down again:",
        "    runuser -l deployer -c 'cd /data/deploy/pelican-frontend && docker compose down'",
        "  4. run pulumi up again.",
    ]) {
        assert.ok((result.error ?? "").includes(line), `the guide says: ${line}\n${result.error}`);
    }
    assert.equal(await dockerCalls("new"), "");
    // The message is still queued on the old server: nothing dropped it.
    // (The listing with these flags counts straight from the queues, as the gate asks: design.md.)
    const queues = JSON.parse(await rabbit("GET", "/api/queues/%2F?disable_stats=true&enable_queue_totals=true"));
    assert.deepEqual(queues.filter((q: { name: string }) => q.name === "kingfisher_process_api").map((q: { messages: number }) => q.messages), [1]);
});

test("following the guide (apps up on old, queue drained, apps down), the re-run goes on to the DNS gate and stops there before deploying spiders", async () => {
    await pointName("collect.kingfisher.open-contracting.org", "old");
    const commands = (verb: string) => guide.split("\n").filter((l) => l.startsWith("    runuser ") && l.endsWith(`docker compose ${verb}'`)).map((l) => l.trim());
    assert.equal(commands("up -d").length, 3, guide);
    const before = (await dockerCalls("old")).split("\n").filter(Boolean).length;
    for (const command of commands("up -d")) await sh("old", command);
    // The consumers are stand-ins (no Docker engine here): the test takes the message in their place,
    // as Kingfisher Process would once up, and it is the one published before the halt.
    const taken = JSON.parse(await rabbit("POST", "/api/queues/%2F/kingfisher_process_api/get", { count: 1, ackmode: "ack_requeue_false", encoding: "auto" }));
    assert.deepEqual(taken.map((m: { payload: string }) => m.payload), ["{}"]);
    for (const command of commands("down")) await sh("old", command);
    const calls = (await dockerCalls("old")).split("\n").filter(Boolean).slice(before);
    assert.equal(calls.length, 6, calls.join("\n"));
    assert.equal(calls.filter((c) => /"up", "-d"/.test(c)).length, 3, calls.join("\n"));
    assert.equal(calls.filter((c) => /"down"/.test(c)).length, 3, calls.join("\n"));
    for (const app of APPS) assert.ok(calls.some((c) => c.includes(app)), `${app}: ${calls.join("\n")}`);

    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.ok(ran(result).includes("data-support-gates-after-halt-rabbitmq"), ran(result).join(", "));
    assert.match(result.error ?? "", /DNS gate: collect\.kingfisher\.open-contracting\.org resolves to 198\.51\.100\.4.*not only to the new server/);
    assert.match(await dockerCalls("new"), /"up", "-d"/, "docker apps (step 4) ran before the DNS gate");
    assert.equal(await deployCalls(), "");
    assert.match(await sh("old", "crontab -l -u incremental"), /OCDS_KINGFISHER_COLLECT/, "the copy (step 6) has not begun");
});

test("a crawl started on old while the run was stopped: the resumed run asks again and stops right before the copy", async () => {
    await pointName("collect.kingfisher.open-contracting.org", "new");
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({ running: [{ id: "c0ffee", spider: "moldova", start_time: "2026-11-27 09:00:00" }], pending: [], finished: [] }));
    const result = harness.apply(testbedConfig(tb));
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({ running: [], pending: [], finished: [] }));
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "data-support-gates-before-copy-scrapyd");
    assert.match(result.error ?? "", /running: project kingfisher, spider moldova, job c0ffee/);
    assert.ok((result.error ?? "").includes("This gate was asked again right before the incremental copy (step 6)"), result.error);
    assert.ok(ran(result).includes("data-support-spiders-deploy"), ran(result).join(", "));
    // Nothing of step 6 ran: old's crawls are still in its crontab, no copy marker on new.
    assert.match(await sh("old", "crontab -l -u incremental"), /OCDS_KINGFISHER_COLLECT/);
    assert.equal(await sh("old", "test -e /var/lib/data-support/ocp04-to-ocp23/stop-incremental-crons.done && echo done || echo not"), "not\n");
    assert.equal(await sh("new", "test -e /var/lib/data-support/ocp04-to-ocp23/copy-kingfisher-collect.done && echo done || echo not"), "not\n");
});

// The before-copy gates, once passed, are in the state: a failure right after them, and a run
// resumed later, must not copy while the old server works. The copies ask the old server themselves.
const NEW_TABLES = `${psql("kingfisher_collect")} -c "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"`;
const COPY_CHECK = "This gate was asked again by the incremental copy (step 6) itself, as it began: the work above arrived after the gates first passed";
const copyMarkers = () => sh("new", "cd /var/lib/data-support/ocp04-to-ocp23 && ls copy-kingfisher-collect.done copy-incremental-files.done 2>/dev/null || true");

test("the before-copy gates pass, then the step right after them fails (the old server's PostgreSQL is down)", async () => {
    await sh("old", "pg_ctlcluster 15 main stop -m fast");
    const result = harness.apply(testbedConfig(tb));
    await sh("old", "pg_ctlcluster 15 main start");
    assert.equal(result.ok, false);
    assert.ok(ran(result).includes("data-support-gates-before-copy-scrapyd") && ran(result).includes("data-support-gates-before-copy-rabbitmq"), ran(result).join(", "));
    assert.equal(result.failed?.name, "data-support-incremental-copy-stop-old-crons");
    assert.equal(await copyMarkers(), "");
});

test("a job of a second Scrapyd project started meanwhile: the resumed run is refused by the copy's own check with the guide; nothing is copied", async () => {
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({
        projects: ["kingfisher", "kingfisher_archive"],
        running: [{ project: "kingfisher_archive", id: "e7e7e7", spider: "chile_compra_api", start_time: "2026-11-28 08:00:00" }],
        pending: [],
        finished: [],
    }));
    const oldAsked = (await sh("old", "cat /var/log/scrapyd-standin.log")).split("\n").length;
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    // The gates passed in the run before: they are in the state and are not asked again...
    assert.ok(!ran(result).some((n) => /-gates-/.test(n)), ran(result).join(", "));
    // ...but the copies ask, first thing, on the new server.
    assert.match(result.failed?.name ?? "", /^data-support-incremental-copy-(database|files)$/);
    assert.equal(result.failed?.host, "root@198.51.100.23");
    const error = result.error ?? "";
    assert.ok(error.includes("The old server is not idle; nothing has been changed."), error);
    assert.match(error, /Scrapyd check: 1 crawl\(s\) are running or pending at https:\/\/collect\.kingfisher\.open-contracting\.org \(at 198\.51\.100\.4\):\n {2}- running: project kingfisher_archive, spider chile_compra_api, job e7e7e7, since 2026-11-28 08:00:00\n/);
    for (const line of [
        COPY_CHECK,
        "    runuser -l deployer -c 'cd /data/deploy/kingfisher-process && docker compose up -d'",
        "    runuser -l deployer -c 'cd /data/deploy/pelican-frontend && docker compose down'",
        "  4. run pulumi up again.",
    ]) {
        assert.ok(error.includes(line), `the guide says: ${line}\n${error}`);
    }
    // No credential in what the run shows.
    assert.ok(!error.includes(tb.scrapyd.password) && !error.includes(tb.rabbitmq.password), "no password in the error");
    // The collect name points at the new server (DNS moved); the check asked the old server, from
    // the new one, over TLS with the public name (its virtual host answers nothing else).
    const asked = (await sh("old", "cat /var/log/scrapyd-standin.log")).split("\n").slice(oldAsked - 1).join("\n");
    assert.match(asked, /"path": "\/listjobs\.json\?project=kingfisher_archive", "client": "(::ffff:)?198\.51\.100\.23", "status": 200/);
    assert.doesNotMatch(asked, /"status": 421/);
    // Nothing copied: no marker, new holds only what Salt loaded; old's crawls are kept aside on old.
    assert.equal(await copyMarkers(), "");
    assert.equal(await sh("new", NEW_TABLES), "codelist,cpc,excluded_supplier,indicator,unspsc\n");
    assert.match(await sh("old", "cat /var/lib/data-support/ocp04-to-ocp23/incremental.cron"), /OCDS_KINGFISHER_COLLECT_DOMINICAN_REPUBLIC/);
});

test("a message queued on the old server meanwhile: the next resumed run is refused too, naming the queue; the message stays", async () => {
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({ running: [], pending: [], finished: [] }));
    await rabbit("POST", "/api/exchanges/%2F/amq.default/publish", { properties: {}, routing_key: "kingfisher_process_api", payload: "{\"late\": 1}", payload_encoding: "string" });
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.match(result.failed?.name ?? "", /^data-support-incremental-copy-(database|files)$/);
    assert.match(result.error ?? "", /RabbitMQ check: queues in vhost \/ at http:\/\/198\.51\.100\.4:15672 \(at 198\.51\.100\.4\) are not empty:\n {2}- kingfisher_process_api: 1 message\(s\)\n/);
    assert.ok((result.error ?? "").includes(COPY_CHECK), result.error);
    assert.equal(await copyMarkers(), "");
    // The message is still there: the operator (here the test, in the consumers' place) takes it.
    const taken = JSON.parse(await rabbit("POST", "/api/queues/%2F/kingfisher_process_api/get", { count: 1, ackmode: "ack_requeue_false", encoding: "auto" }));
    assert.deepEqual(taken.map((m: { payload: string }) => m.payload), ['{"late": 1}']);
});

test("with the job ended and the queue empty, the resumed run copies: new equals old; a second run changes nothing", async () => {
    const result = assertApplied(harness.apply(testbedConfig(tb)));
    assert.ok(ran(result).includes("data-support-incremental-copy-database"), ran(result).join(", "));
    assert.match(result.steps.find((s) => s.name === "data-support-incremental-copy-database")?.stdout ?? "", /^old server idle: no crawl is running or pending at https:\/\/collect\.kingfisher\.open-contracting\.org \(at 198\.51\.100\.4\) \(project\(s\): kingfisher\); \d+ queue\(s\) in vhost \/, all empty\.$/m);
    assert.notEqual(await deployCalls(), "");
    assert.equal(await sh("new", tablesDump("kingfisher_collect")), await sh("old", tablesDump("kingfisher_collect")));
    for (const dir of ["/home/incremental/data", "/home/incremental/logs"]) {
        assert.equal(await sh("new", treeFingerprint(dir).text), await sh("old", treeFingerprint(dir).text), dir);
    }
    const again = assertApplied(harness.apply(testbedConfig(tb)));
    assert.deepEqual(again.steps.filter((s) => s.action !== "same"), []);
});
