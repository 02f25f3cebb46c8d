// End to end: the whole `main` stack applied to the test hosts (real sshd, PostgreSQL, tinyproxy,
// cron, rsync, RabbitMQ; stand-ins for docker and Scrapyd), then the outcome checked on the hosts.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { down, pointName, up, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig, type ApplyResult } from "../support/harness";
import { treeFingerprint } from "../../components/machinery/fingerprint";
import { runbookSteps } from "../../tools/runbook";
import { dockerCalls, exchangeRatesDump, psql, sh, tablesDump } from "../support/hosts";
import { quote } from "../../components/machinery/shell";

let tb: Testbed;
let harness: Harness;
let first: ApplyResult;
const before_: Record<string, string> = {};


before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    harness = new Harness(tb);
    // What the old server holds before the migration: the copies must equal it.
    // Compared by a method of their own, not the copy step's fingerprint: every row as COPY prints it.
    before_.tables = await sh("old", tablesDump("kingfisher_collect"));
    before_.rates = await sh("old", exchangeRatesDump());
    before_.data = await sh("old", treeFingerprint("/home/incremental/data").text);
    before_.logs = await sh("old", treeFingerprint("/home/incremental/logs").text);
    // A writer of each server mid-run, as the excluded-supplier job is while its download hangs: a
    // script (its own session, like cron's jobs) whose psql holds excluded_supplier locked inside a
    // COPY, and a child in a session of its own. Killing the script alone would leave both.
    for (const host of ["old", "new"] as const) await sh(host, `runuser -u incremental -- setsid -f sh -c ${quote(HANGING_WRITER)} < /dev/null > /dev/null 2>&1`);
    await sh("old", `for _ in $(seq 100); do [ "$(${psql("kingfisher_collect")} -c "${LOCKED}")" = 1 ] && break; sleep 0.1; done`);
    await sh("new", `for _ in $(seq 100); do [ "$(${psql("kingfisher_collect")} -c "${LOCKED}")" = 1 ] && break; sleep 0.1; done`);
    before_.writers = await sh("old", "pgrep -l -u incremental | awk '{ print $2 }' | sort");
    first = harness.apply(testbedConfig(tb));
});

/** The excluded-supplier job stuck in its download; its psql holds the table locked in a COPY. */
const HANGING_WRITER =
    "setsid sleep 3600 & sleep 3600 | psql -X -q -U kingfisher_collect -h localhost kingfisher_collect -c 'BEGIN; LOCK TABLE excluded_supplier IN ACCESS EXCLUSIVE MODE; DELETE FROM excluded_supplier; COPY excluded_supplier (identifier) FROM stdin; END;'";
const LOCKED = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'excluded_supplier' AND l.mode = 'AccessExclusiveLock' AND l.granted";

after(async () => {
    await down();
});

test("the main stack applies without error", () => {
    assertApplied(first);
    assert.ok(first.steps.filter((s) => s.action === "create").length >= 20);
});

test("the harness ran exactly the commands of the offline runbook, each after all it waits for", async () => {
    const book = await runbookSteps(testbedConfig(tb));
    const ran = first.steps.filter((s) => s.action === "create").map((s) => s.urn);
    const commands = book.filter((s) => s.type.startsWith("command:"));
    assert.deepEqual([...ran].sort(), commands.map((s) => s.urn).sort());
    // The runbook's order is one order `pulumi up` may take; the harness ran steps as soon as what
    // they wait for was done. Both respect every dependency the runbook lists.
    for (const step of commands) {
        for (const dep of step.dependsOn.filter((d) => ran.includes(d))) {
            assert.ok(ran.indexOf(dep) < ran.indexOf(step.urn), `${step.name} ran before ${dep}`);
            assert.ok(book.findIndex((s) => s.urn === dep) < book.findIndex((s) => s.urn === step.urn));
        }
    }
});

test("no secret in any command text, stdout or stderr the run recorded", () => {
    const secrets = [tb.scrapyd.password, tb.rabbitmq.password];
    const texts = first.steps.flatMap((s) => [s.command, s.stdout, s.stderr]);
    for (const secret of secrets) assert.equal(texts.filter((t) => t.includes(secret)).length, 0);
    assert.ok(texts.length > 60);
});

const proxy = (addr: string) => `curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -x http://${addr}:8888 ${tb.web.url}`;

test("tinyproxy admits the new server over IPv4 and IPv6, and answers 403 to an outsider over IPv4", async () => {
    assert.equal(await sh("new", proxy(tb.hosts.docs.ipv4)), "200");
    assert.equal(await sh("new", proxy(`[${tb.hosts.docs.ipv6}]`)), "200");
    assert.equal(await sh("outsider", proxy(tb.hosts.docs.ipv4)), "403");
});

// Over IPv6 the guard beside tinyproxy refuses an address off the list at the port (tinyproxy
// 1.11.1 mixes up client addresses across IPv4/IPv6, upstream #495; see tinyproxyAllowlist.ts).
test("over IPv6 an outsider is refused at the proxy port", async () => {
    assert.equal(await sh("outsider", `${proxy(`[${tb.hosts.docs.ipv6}]`)} || true`), "000");
});

test("kingfisher_collect on new equals old: every table, every row, byte for byte as COPY prints them", async () => {
    const now = await sh("new", tablesDump("kingfisher_collect"));
    const tables = before_.tables.split("\n").filter((l) => l.startsWith("== "));
    assert.ok(tables.length >= 3, before_.tables.slice(0, 2000));
    // Every table of the seed has rows: no "== t" line directly followed by another or by the end.
    assert.doesNotMatch(before_.tables, /^== .*\n(== |$)/m, "the seed has rows in every table");
    assert.equal(now, before_.tables);
});

test("exchange_rates on new equals old (valid_on, rates, created, modified), byte for byte", async () => {
    const now = await sh("new", exchangeRatesDump());
    assert.match(before_.rates, /^\d{4}-\d\d-\d\d\t\{/);
    assert.equal(now, before_.rates);
});

test("data/ and logs/ trees on new equal old: paths, sizes, checksums", async () => {
    assert.equal(await sh("new", treeFingerprint("/home/incremental/data").text), before_.data);
    assert.equal(await sh("new", treeFingerprint("/home/incremental/logs").text), before_.logs);
    assert.match(before_.data, /é/, "the seed has non-ASCII names");
    assert.match(await sh("new", "stat -c %U /home/incremental/data/* | sort -u"), /^incremental\n$/);
});

test("crontabs: crawls on new only; exchange rates and backups back on new, off on old", async () => {
    // New was deployed by Salt with the pillar's crawls (DOMINICAN_REPUBLIC, MEXICO_NUEVO_LEON) and the
    // excluded-supplier job: the crawls are now the stack's, the job is back after the copy, and
    // Salt's header stays first.
    assert.equal(
        await sh("new", "crontab -l -u incremental"),
        [
            "# Lines below here are managed by Salt, do not edit",
            "MAILTO=sysadmin@open-contracting.org",
            "# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_DOMINICAN_REPUBLIC",
            "15 0 * * * /home/incremental/bin/dominican_republic_api.sh",
            "# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_ECUADOR",
            "15 0 1 * * /home/incremental/bin/ecuador_sercop_bulk.sh",
            "# SALT_CRON_IDENTIFIER:DOMINICAN_REPUBLIC_EXCLUDED_SUPPLIER",
            "42 1 * * * /home/incremental/bin/do_excluded_supplier.sh",
            "",
        ].join("\n"),
    );
    // On old, every job of the incremental user is gone (crawls and the excluded-supplier job).
    assert.equal(await sh("old", "crontab -l -u incremental || true"), "# Lines below here are managed by Salt, do not edit\nMAILTO=sysadmin@open-contracting.org\n");
    assert.doesNotMatch(await sh("old", "crontab -l -u incremental || true"), /OCDS_KINGFISHER_COLLECT/);
    const deployerNew = await sh("new", "crontab -l -u deployer");
    assert.equal(deployerNew.match(/^# SALT_CRON_IDENTIFIER:PELICAN_BACKEND_UPDATE_EXCHANGE_RATES$/gm)?.length, 1, deployerNew);
    assert.doesNotMatch(await sh("old", "crontab -l -u deployer || true"), /PELICAN_BACKEND_UPDATE_EXCHANGE_RATES/);
    assert.equal(await sh("new", "test -e /etc/cron.d/postgres_backups && echo yes"), "yes\n");
    assert.equal(await sh("old", "test -e /etc/cron.d/postgres_backups && echo yes || echo no"), "no\n");
});

test("the writers of both servers stopped for the copy, with every process they started", async () => {
    assert.equal(before_.writers, "psql\nsh\nsleep\nsleep\n", "the script, its pipeline and the sleep in a session of its own ran on old");
    for (const host of ["old", "new"] as const) {
        assert.equal(await sh(host, "pgrep -u incremental -a || true"), "", `${host}: no process of incremental is left`);
        assert.equal(await sh(host, `${psql("kingfisher_collect")} -c "${LOCKED}"`), "0\n", `${host}: the lock is gone`);
    }
});

test("Salt's reference tables on new are the old server's, and the copied grant reads", async () => {
    const lists = `${psql("kingfisher_collect")} -c "SELECT count(*), min(identifier), max(identifier) FROM excluded_supplier"`;
    // Old's list (DO-RPE-1500..1560) replaced the one new had fetched (1500..1540).
    assert.equal(await sh("new", lists), "61|DO-RPE-1500|DO-RPE-1560\n");
    assert.equal(await sh("new", `${psql("kingfisher_collect")} -c "SELECT has_table_privilege('dgcp', 'dominican_republic_api_result', 'SELECT'), count(*) FROM codelist"`), "t|3\n");
});

test("WAL: new archives into its own stanza only, never into the old server's", async () => {
    // A segment switch makes the archiver call archive_command; a bounded wait on the host for it.
    await sh("new", `${psql("postgres")} -c "SELECT pg_switch_wal()" > /dev/null; for _ in $(seq 100); do [ "$(${psql("postgres")} -c "SELECT archived_count FROM pg_stat_archiver")" -gt 0 ] && break; sleep 0.1; done`);
    const stanzas = (await sh("new", "cat /var/log/pgbackrest-standin.log")).trim().split("\n").map((l) => JSON.parse(l).stanza);
    assert.ok(stanzas.length >= 1, "the stand-in was called");
    assert.deepEqual([...new Set(stanzas)], ["kingfisher-ocp23"]);
});

test("docker: apps down on old; on new migrations, then pull and up -d, as deployer, in order", async () => {
    const d = "/data/deploy";
    assert.deepEqual(await dockerCalls("new"), [
        `deployer ${d}/kingfisher-process: docker compose run --rm --name django-migrate cron python manage.py migrate`,
        `deployer ${d}/pelican-frontend: docker compose run --rm --name django-migrate web python manage.py migrate`,
        `deployer ${d}/kingfisher-process: docker compose pull`,
        `deployer ${d}/kingfisher-process: docker compose up -d`,
        `deployer ${d}/pelican-backend: docker compose pull`,
        `deployer ${d}/pelican-backend: docker compose up -d`,
        `deployer ${d}/pelican-frontend: docker compose pull`,
        `deployer ${d}/pelican-frontend: docker compose up -d`,
    ]);
    assert.deepEqual(await dockerCalls("old"), [
        `deployer ${d}/kingfisher-process: docker compose down`,
        `deployer ${d}/pelican-backend: docker compose down`,
        `deployer ${d}/pelican-frontend: docker compose down`,
    ]);
});

test("the temporary transfer key is gone: from the old server, its dispatcher too, and the private key from the new server", async () => {
    const keys = await sh("old", "cat /var/lib/postgresql/.ssh/authorized_keys /home/incremental/.ssh/authorized_keys 2>/dev/null || true");
    assert.doesNotMatch(keys, /data-support-/);
    assert.equal(await sh("old", "ls -A /usr/local/lib/data-support 2>/dev/null || true"), "");
    assert.equal(await sh("new", "ls /var/lib/data-support/ocp04-to-ocp23 | grep -c -e transfer_ed25519 -e known_hosts || true"), "0\n");
});

test("a preview after the up: every resource is same; a changed config is reported and reaches no host; nothing is saved", async () => {
    const unchanged = harness.apply(testbedConfig(tb), { preview: true });
    assert.ok(unchanged.ok, unchanged.error);
    assert.deepEqual(unchanged.steps.filter((s) => s.action !== "same"), []);
    const seen = async () => [await sh("docs", "cat /etc/tinyproxy/tinyproxy.conf"), await sh("new", "crontab -l -u incremental")];
    const before = await seen();
    const state = JSON.stringify(harness.stackUrns());
    const changed = testbedConfig(tb);
    changed.tinyproxy = { ...changed.tinyproxy, keep: [{ address: "198.51.100.77", comment: "preview only" }] };
    changed.incremental.crawls[1].day = 2;
    const preview = harness.apply(changed, { preview: true });
    assert.ok(preview.ok, preview.error);
    const acted = preview.steps.filter((s) => s.action !== "same").map((s) => `${s.action} ${s.name}`).sort();
    assert.ok(acted.includes("update data-support-tinyproxy-config"), acted.join(", "));
    assert.ok(acted.includes("update data-support-crawls-crontab"), acted.join(", "));
    assert.deepEqual(await seen(), before, "the preview changed nothing on the docs server or the new server");
    assert.equal(JSON.stringify(harness.stackUrns()), state);
});

test("a second `pulumi up` with the same config changes nothing", () => {
    const second = assertApplied(harness.apply(testbedConfig(tb)));
    const acted = second.steps.filter((s) => s.action !== "same").map((s) => `${s.action} ${s.name}`);
    assert.deepEqual(acted, []);
});

test("a broken config (wrong database name) fails naming the host and the command", () => {
    // A new migration id: the one-off steps run again, and the copy meets the wrong database.
    harness.reset("main");
    const broken = testbedConfig(tb, { migrationId: "broken-db-name" });
    broken.incremental = { ...broken.incremental, database: "kingfisher_colect" };
    const result = harness.apply(broken);
    assert.equal(result.ok, false);
    assert.equal(result.failed?.host, "root@198.51.100.23");
    // The engine's error names the resource; the provider's, the command it ran, then its output.
    assert.match(result.error ?? "", /^command:remote:Command \(data-support-[a-z-]+\):\n    error: Process exited with status \d+: running "/);
    assert.match(result.error ?? "", /kingfisher_colect/);
});
