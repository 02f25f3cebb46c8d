// Over 300 lines: one sequence of edits, each applied to the state the one before left; split, a file would have to replay the edits before it.
// Every edit of the config converges (issue 16, deliverable 5): after a first full `up` of the main
// stack, a sequence of edits, each applied as `pulumi up` would (the harness follows the engine's
// order of creates, updates, replacements and deletes), and after each the servers are checked
// against values written out here: the incremental user's crontab, the crawl scripts, the read
// grants, tinyproxy's Allow lines and who gets through, pg_hba and replication, the Docker apps, and
// the SSH port. After each edit a second `up` changes nothing.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { down, pointName, up, type HostName, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig, type ApplyResult } from "../support/harness";
import { dockerCalls, psql, sh } from "../support/hosts";

let tb: Testbed;
let harness: Harness;
let main: ApplyResult;

const HOME = "/home/incremental";
const MIGRATION = "/var/lib/data-support/ocp04-to-ocp23";

// The crawls as first applied, and as edited.
const DR = { identifier: "DOMINICAN_REPUBLIC", spider: "dominican_republic_api", crawl_time: "2025-05-06", spider_arguments: "-a compile_releases=true", users: ["dgcp"] };
const EC = { identifier: "ECUADOR", spider: "ecuador_sercop_bulk", crawl_time: "2025-01-01", day: 1 };
// A cardinal crawl: its users read its result (edit 5 renames it: they keep reading it).
const PY = { identifier: "PARAGUAY", spider: "paraguay_dncp_releases", crawl_time: "2025-02-01", settings: { CONCURRENT_REQUESTS: "2" }, users: ["bi"], cardinal: true, cardinal_settings: "[defaults]\ncurrency = PYG\n" };
// Edit 1: every field of DR changes but identifier, spider and crawl_time; users gain bi; cardinal on.
const DR1 = { ...DR, spider_arguments: { from_date: "2025-01-01" }, settings: { DOWNLOAD_DELAY: "1" }, day: 15, users: ["dgcp", "bi"], cardinal: true, cardinal_settings: "[defaults]\ncurrency = DOP\n" };
// Edit 2: users lose dgcp, cardinal off, day gone (daily again), settings changed.
const DR2 = { identifier: "DOMINICAN_REPUBLIC", spider: "dominican_republic_api", crawl_time: "2025-05-06", spider_arguments: { from_date: "2025-01-01" }, settings: { DOWNLOAD_DELAY: "3" }, users: ["bi"] };

const REPLICA3 = { hostname: "ocp25.open-contracting.org", ipv6: false, role: "replica_ocp25", slot: "replica2" };
const OUTSIDER_V4 = { address: "198.51.100.66", comment: "outsider (reports)" };
const OUTSIDER_V6 = { address: "2001:db8:d5::66", comment: "outsider (reports)" };

interface Edit {
    crawls: Record<string, unknown>[];
    keep?: { address: string; comment: string }[];
    replica?: { hostname: string; ipv6: boolean; role?: string; slot?: string };
    apps?: string[];
    sshPort?: number;
}

function config(edit: Edit): Record<string, any> {
    const cfg = testbedConfig(tb);
    cfg.incremental = { ...cfg.incremental, crawls: edit.crawls };
    cfg.tinyproxy = { ...cfg.tinyproxy, keep: edit.keep ?? [] };
    if (edit.replica) {
        const r = tb.hosts.replica;
        cfg.servers.replica = { hostname: edit.replica.hostname, ipv4: r.ipv4, ...(edit.replica.ipv6 ? { ipv6: r.ipv6 } : {}), ssh: { user: "root", port: 22, hostKey: r.hostKey } };
        if (edit.replica.role) cfg.postgres = { ...cfg.postgres, replication: { role: edit.replica.role, slot: edit.replica.slot } };
    }
    if (edit.apps) cfg.docker = { apps: edit.apps };
    if (edit.sshPort) for (const key of ["oldMain", "newMain"]) cfg.servers[key].ssh.port = edit.sshPort;
    return cfg;
}

const acted = (r: ApplyResult) => r.steps.filter((s) => s.action !== "same").map((s) => `${s.action} ${s.name}`).sort();

/** Applies `edit`, then applies it again: the second `up` must change nothing. */
function applyEdit(edit: Edit): ApplyResult {
    const result = assertApplied(harness.apply(config(edit)));
    main = result;
    assert.deepEqual(acted(assertApplied(harness.apply(config(edit)))), [], "a second up of the same config changes nothing");
    return result;
}

/** `pulumi up -s replica`, reading the main stack's last outputs. */
function applyReplicaStack(): ApplyResult {
    const r = tb.hosts.replica;
    return assertApplied(
        harness.apply(
            { role: "replica", migrationId: "ocp04-to-ocp23", servers: { replica: { hostname: r.hostname, ipv4: r.ipv4, ipv6: r.ipv6, ssh: { user: "root", port: 22, hostKey: r.hostKey } } } },
            { stack: "replica", stackOutputs: { "organization/data-support/main": { outputs: main.outputs, secretOutputNames: main.secretOutputs } } },
        ),
    );
}

const crontab = () => sh("new", "crontab -l -u incremental");
const entry = (id: string, spider: string, day = "*") => [`# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_${id}`, `15 0 ${day} * * ${HOME}/bin/${spider}.sh`];
// Salt's lines in that crontab (test/hosts/provision.sh): its header, and the excluded-supplier job.
const SALT_TAG = "# Lines below here are managed by Salt, do not edit";
const MAILTO = "MAILTO=sysadmin@open-contracting.org";
const EXCLUDED = ["# SALT_CRON_IDENTIFIER:DOMINICAN_REPUBLIC_EXCLUDED_SUPPLIER", `42 1 * * * ${HOME}/bin/do_excluded_supplier.sh`];

/**
 * The crawl files: scripts under bin/, cardinal's settings and result.sql under bi/ (Salt's paths;
 * Salt's own two scripts are always there, and bi/sql's reference files are not a crawl's).
 */
const crawlFiles = async () =>
    (await sh("new", `cd ${HOME} && ls -1 bin/*.sh bi/settings/*.ini bi/sql/*_result.sql 2>/dev/null || true`)).trim().split("\n").filter(Boolean);

/** has_table_privilege(role, table, SELECT) on new, as "role table t|f" lines. */
async function grants(roles: string[], tables: string[]): Promise<string[]> {
    const sql = `SELECT r || ' ' || t || ' ' || CASE WHEN has_table_privilege(r, t, 'SELECT') THEN 't' ELSE 'f' END FROM unnest(ARRAY[${roles.map((r) => `'${r}'`).join(",")}]) r, unnest(ARRAY[${tables.map((t) => `'${t}'`).join(",")}]) t ORDER BY 1`;
    return (await sh("new", `${psql("kingfisher_collect")} -c "${sql}"`)).trim().split("\n");
}
const TABLES = ["dominican_republic_api", "dominican_republic_api_clean", "dominican_republic_api_result", "paraguay_dncp_releases", "paraguay_dncp_releases_result"];

const allowLines = async () => (await sh("docs", "grep -e '^Allow ' -e '^# outsider' /etc/tinyproxy/tinyproxy.conf")).trim().split("\n");

/** The HTTP status `host` gets through the proxy, by address family ("000": no connection). */
async function through(host: HostName): Promise<{ v4: string; v6: string }> {
    const get = (proxy: string) => sh(host, `curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -x http://${proxy}:8888 ${tb.web.url} 2>/dev/null || true`);
    return { v4: await get(tb.hosts.docs.ipv4), v6: await get(`[${tb.hosts.docs.ipv6}]`) };
}

const hbaBlocks = () => sh("new", "grep -e 'data-support replication' -e '^hostssl replication' /etc/postgresql/15/main/pg_hba.conf || true");
const replicationState = () =>
    sh("new", `${psql("postgres")} -c "SELECT (SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolreplication AND rolname <> 'postgres') || ' ' || (SELECT string_agg(slot_name, ',') FROM pg_replication_slots)"`);

/** Polls (a bounded loop on the host) until `sql` on `host` prints `want`. */
const eventually = (host: HostName, db: string, sql: string, want: string) =>
    sh(host, `for _ in $(seq 100); do v=$(${psql(db)} -c "${sql}" 2>/dev/null || true); [ "$v" = "${want}" ] && break; sleep 0.1; done; printf '%s' "$v"`);

/** The one-off steps' markers on a host, with the time each was recorded. */
const markers = (host: HostName) => sh(host, `cd ${MIGRATION} && for f in *.done; do printf '%s %s\\n' "$f" "$(cat "$f")"; done`);

before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    harness = new Harness(tb);
    // bi: a role a sysadmin created for a crawl's readers (dgcp is Salt's, test/hosts/provision.sh).
    await sh("new", `${psql("kingfisher_collect")} -c "CREATE ROLE bi"`);
    main = assertApplied(harness.apply(config({ crawls: [DR, EC] })));
});

after(async () => {
    await down();
});

test("after the first up: Salt's crawls replaced by the stack's, dgcp reads DR's result only, only the new server is admitted", async () => {
    assert.equal(await crontab(), [SALT_TAG, MAILTO, ...entry("DOMINICAN_REPUBLIC", DR.spider), ...entry("ECUADOR", EC.spider, "1"), ...EXCLUDED, ""].join("\n"));
    // DR's cardinal files are Salt's (cardinal on in its pillar), left as Salt wrote them: DR is not
    // a cardinal crawl in this config, so the program installs none.
    assert.deepEqual(await crawlFiles(), [
        "bi/settings/dominican_republic_api.ini",
        "bi/sql/dominican_republic_api_result.sql",
        "bin/do_excluded_supplier.sh",
        "bin/dominican_republic_api.sh",
        "bin/ecuador_sercop_bulk.sh",
        "bin/mexico_nuevo_leon.sh",
    ]);
    // _result: Salt's grant (its result.sql), copied from the old server; the raw table and _clean:
    // nobody's (Salt grants only the result; DR without cardinal: the program grants nothing).
    assert.deepEqual(await grants(["bi", "dgcp"], TABLES.slice(0, 3)), [
        "bi dominican_republic_api f",
        "bi dominican_republic_api_clean f",
        "bi dominican_republic_api_result f",
        "dgcp dominican_republic_api f",
        "dgcp dominican_republic_api_clean f",
        "dgcp dominican_republic_api_result t",
    ]);
    assert.deepEqual(await allowLines(), ["Allow 127.0.0.1", "Allow ::1", "Allow 198.51.100.23", "Allow 2001:db8:d5::23/128"]);
    assert.equal(await hbaBlocks(), "");
    assert.equal(await replicationState(), "\n", "no replication role, no slot");
});

test("edit 1: a crawl added, every field of another changed (cardinal on, a user added), an allow-list entry added", async () => {
    // The new crawl's tables exist already (a crawl and its cardinal steps ran by hand): its users
    // read the result at once, and only the result (Salt's result.sql).
    await sh("new", `${psql("kingfisher_collect")} -c "CREATE TABLE paraguay_dncp_releases (data jsonb); CREATE TABLE paraguay_dncp_releases_result (ocid text)"`);
    const result = applyEdit({ crawls: [DR1, EC, PY], keep: [OUTSIDER_V4, OUTSIDER_V6] });
    assert.deepEqual(acted(result), [
        "create data-support-crawls-dominican_republic-cardinal-result-sql",
        "create data-support-crawls-dominican_republic-cardinal-settings",
        "create data-support-crawls-paraguay",
        "create data-support-crawls-paraguay-cardinal-result-sql",
        "create data-support-crawls-paraguay-cardinal-settings",
        "create data-support-crawls-paraguay-read-access",
        "delete-replaced data-support-tinyproxy-proof",
        "replace data-support-tinyproxy-proof",
        "update data-support-crawls-crontab",
        "update data-support-crawls-dominican_republic",
        "update data-support-crawls-dominican_republic-read-access",
        "update data-support-tinyproxy-config",
    ]);
    // Entries in the config's order after the lines the stack does not manage; Salt's untouched.
    assert.equal(
        await crontab(),
        [SALT_TAG, MAILTO, ...EXCLUDED, ...entry("DOMINICAN_REPUBLIC", DR.spider, "15"), ...entry("ECUADOR", EC.spider, "1"), ...entry("PARAGUAY", PY.spider), ""].join("\n"),
    );
    assert.deepEqual(await crawlFiles(), [
        "bi/settings/dominican_republic_api.ini",
        "bi/settings/paraguay_dncp_releases.ini",
        "bi/sql/dominican_republic_api_result.sql",
        "bi/sql/paraguay_dncp_releases_result.sql",
        "bin/do_excluded_supplier.sh",
        "bin/dominican_republic_api.sh",
        "bin/ecuador_sercop_bulk.sh",
        "bin/mexico_nuevo_leon.sh",
        "bin/paraguay_dncp_releases.sh",
    ]);
    const dr = await sh("new", `cat ${HOME}/bin/dominican_republic_api.sh`);
    assert.match(dr, / from_date=2025-01-01 /);
    assert.match(dr, / DOWNLOAD_DELAY=1 /);
    assert.doesNotMatch(dr, /compile_releases/, "the argument that left the config left the script");
    // Cardinal's steps are in the crawl's own script, as in Salt's cron.sh.
    assert.match(dr, /ocdscardinal prepare \\\n {4}-s \/home\/incremental\/bi\/settings\/dominican_republic_api\.ini /);
    assert.equal(await sh("new", `cat ${HOME}/bi/settings/dominican_republic_api.ini`), "[defaults]\ncurrency = DOP\n");
    assert.equal(await sh("new", `grep GRANT ${HOME}/bi/sql/dominican_republic_api_result.sql`), "    GRANT SELECT ON dominican_republic_api_result TO dgcp;\n    GRANT SELECT ON dominican_republic_api_result TO bi;\n");
    assert.match(await sh("new", `cat ${HOME}/bin/paraguay_dncp_releases.sh`), / CONCURRENT_REQUESTS=2 /);
    // Cardinal on: the crawl's result (and only it, as Salt's result.sql), for both of its users, at
    // once on the table the copy brought; the added crawl's result for its user bi.
    assert.deepEqual(await grants(["bi", "dgcp"], TABLES), [
        "bi dominican_republic_api f",
        "bi dominican_republic_api_clean f",
        "bi dominican_republic_api_result t",
        "bi paraguay_dncp_releases f",
        "bi paraguay_dncp_releases_result t",
        "dgcp dominican_republic_api f",
        "dgcp dominican_republic_api_clean f",
        "dgcp dominican_republic_api_result t",
        "dgcp paraguay_dncp_releases f",
        "dgcp paraguay_dncp_releases_result f",
    ]);
    assert.deepEqual(await allowLines(), [
        "Allow 127.0.0.1",
        "Allow ::1",
        "Allow 198.51.100.23",
        "Allow 2001:db8:d5::23/128",
        "# outsider (reports)",
        "Allow 198.51.100.66",
        "# outsider (reports)",
        "Allow 2001:db8:d5::66/128",
    ]);
    assert.equal((await through("outsider")).v4, "200");
    // Over IPv6 the guard lets the added address through to tinyproxy (what tinyproxy 1.11.1 then
    // answers after an IPv4 request is its bug #495: tinyproxy.test.ts).
    assert.notEqual((await through("outsider")).v6, "000");
});

test("edit 2: a crawl removed, a user removed, cardinal off, an allow-list entry changed and one removed, the replica added", async () => {
    const result = applyEdit({ crawls: [DR2, PY], keep: [{ ...OUTSIDER_V4, comment: "outsider (dashboards)" }], replica: { hostname: "ocp24.open-contracting.org", ipv6: true } });
    assert.deepEqual(acted(result), [
        "create data-support-replication-max-worker-processes",
        "create data-support-replication-password",
        "create data-support-replication-source",
        "delete data-support-crawls-dominican_republic-cardinal-result-sql",
        "delete data-support-crawls-dominican_republic-cardinal-settings",
        "delete data-support-crawls-ecuador",
        "delete data-support-crawls-ecuador-read-access",
        "delete-replaced data-support-tinyproxy-proof",
        "replace data-support-tinyproxy-proof",
        "update data-support-crawls-crontab",
        "update data-support-crawls-dominican_republic",
        "update data-support-crawls-dominican_republic-read-access",
        "update data-support-tinyproxy-config",
    ]);
    assert.equal(await crontab(), [SALT_TAG, MAILTO, ...EXCLUDED, ...entry("DOMINICAN_REPUBLIC", DR.spider), ...entry("PARAGUAY", PY.spider), ""].join("\n"));
    assert.deepEqual(await crawlFiles(), [
        "bi/settings/paraguay_dncp_releases.ini",
        "bi/sql/paraguay_dncp_releases_result.sql",
        "bin/do_excluded_supplier.sh",
        "bin/dominican_republic_api.sh",
        "bin/mexico_nuevo_leon.sh",
        "bin/paraguay_dncp_releases.sh",
    ]);
    const dr = await sh("new", `cat ${HOME}/bin/dominican_republic_api.sh`);
    assert.match(dr, / DOWNLOAD_DELAY=3 /);
    assert.doesNotMatch(dr, /DOWNLOAD_DELAY=1|cardinal/);
    // Cardinal off: no role reads the result through this crawl any more, so the grants this program
    // made are revoked, bi's and dgcp's (Salt's on _result was the same grant, made again in edit 1).
    // bi still reads the other crawl's result.
    assert.deepEqual(await grants(["bi", "dgcp"], TABLES), [
        "bi dominican_republic_api f",
        "bi dominican_republic_api_clean f",
        "bi dominican_republic_api_result f",
        "bi paraguay_dncp_releases f",
        "bi paraguay_dncp_releases_result t",
        "dgcp dominican_republic_api f",
        "dgcp dominican_republic_api_clean f",
        "dgcp dominican_republic_api_result f",
        "dgcp paraguay_dncp_releases f",
        "dgcp paraguay_dncp_releases_result f",
    ]);
    assert.deepEqual(await allowLines(), ["Allow 127.0.0.1", "Allow ::1", "Allow 198.51.100.23", "Allow 2001:db8:d5::23/128", "# outsider (dashboards)", "Allow 198.51.100.66"]);
    assert.deepEqual(await through("outsider"), { v4: "200", v6: "000" });
    assert.equal(
        await hbaBlocks(),
        [
            "# BEGIN data-support replication (ocp24.open-contracting.org)",
            "hostssl replication replica 198.51.100.24/32 scram-sha-256",
            "hostssl replication replica 2001:db8:d5::24/128 scram-sha-256",
            "# END data-support replication (ocp24.open-contracting.org)",
            "",
        ].join("\n"),
    );
    assert.equal(await replicationState(), "replica replica1\n");
    // The replica stack then makes it a standby of the new main (replica.test.ts has the details).
    assert.match(String(applyReplicaStack().outputs.status), /streaming from ocp23/);
});

test("edit 3: the replica renamed, without IPv6, with another role and slot; a Docker app added, both servers' SSH port changed: no data step runs again", async () => {
    const d = "/data/deploy/kingfisher-summarize";
    await sh("new", `install -d -o deployer -g deployer ${d} && printf 'services:\\n  web:\\n    image: ghcr.io/open-contracting/kingfisher-summarize:latest\\n' > ${d}/docker-compose.yaml && chown deployer: ${d}/docker-compose.yaml`);
    for (const host of ["old", "new"] as const) {
        await sh(host, ": > /var/log/docker-standin.log");
        // sshd on 2222 only: every command of the run must use the new port.
        await sh(host, "echo 'Port 2222' > /etc/ssh/sshd_config.d/ds-port.conf && service ssh restart > /dev/null && for _ in $(seq 50); do [ -n \"$(ss -Hltn 'sport = :2222')\" ] && break; sleep 0.1; done");
    }
    // A row written on the new server since the migration: nothing may overwrite it.
    await sh("new", `${psql("kingfisher_collect")} -c "INSERT INTO crawl (spider, started) VALUES ('after_migration', now())"`);
    const before = { old: await markers("old"), new: await markers("new") };
    const apps = ["kingfisher-process", "pelican-backend", "pelican-frontend", "kingfisher-summarize"];
    const result = applyEdit({ crawls: [DR2, PY], keep: [{ ...OUTSIDER_V4, comment: "outsider (dashboards)" }], replica: REPLICA3, apps, sshPort: 2222 });
    // Every command on old and new runs its update (its connection changed), nothing is replaced
    // or deleted, and the one step created is the added app's start.
    const byAction = (action: string) => result.steps.filter((s) => s.action === action).map((s) => s.name);
    assert.deepEqual(byAction("create"), ["data-support-docker-start-kingfisher-summarize"]);
    assert.deepEqual([...byAction("replace"), ...byAction("delete"), ...byAction("delete-replaced")], []);
    const onServers = result.steps.filter((s) => /@198\.51\.100\.(4|23)$/.test(s.host) && s.name !== "data-support-docker-start-kingfisher-summarize");
    assert.ok(onServers.length >= 25, `${onServers.length} steps on old and new`);
    assert.deepEqual(onServers.filter((s) => s.action !== "update").map((s) => `${s.action} ${s.name}`), []);
    assert.deepEqual(result.steps.filter((s) => s.host.endsWith("@198.51.100.19") && s.action !== "same").map((s) => s.name), [], "nothing on the docs server");
    // The one-off steps found their markers: none ran again, none was re-recorded; the added app's start is new.
    const started = (await sh("new", `cat ${MIGRATION}/start-kingfisher-summarize.done`)).trim();
    assert.deepEqual(
        { old: await markers("old"), new: await markers("new") },
        { old: before.old, new: before.new.replace("start-pelican-backend.done", `start-kingfisher-summarize.done ${started}\nstart-pelican-backend.done`) },
    );
    assert.equal(await sh("new", `${psql("kingfisher_collect")} -c "SELECT count(*) FROM crawl WHERE spider = 'after_migration'"`), "1\n");
    // The transfer key was not granted again, nor made again.
    assert.doesNotMatch(await sh("old", "cat /var/lib/postgresql/.ssh/authorized_keys /home/incremental/.ssh/authorized_keys 2>/dev/null || true"), /data-support-/);
    assert.equal(await sh("old", "ls -A /usr/local/lib/data-support 2>/dev/null || true"), "");
    assert.equal(await sh("new", `ls ${MIGRATION} | grep -c -e transfer_ed25519 -e known_hosts || true`), "0\n");
    // Docker: only the added app, pulled and started on new; nothing brought down on old.
    assert.deepEqual(await dockerCalls("new"), [`deployer ${d}: docker compose pull`, `deployer ${d}: docker compose up -d`]);
    assert.deepEqual(await dockerCalls("old"), []);
    // The replica's lines follow its new name, address and role: one block, IPv4 only; the previous
    // role and slot are gone (a slot left behind would hold WAL for ever).
    assert.equal(
        await hbaBlocks(),
        [
            "# BEGIN data-support replication (ocp25.open-contracting.org)",
            "hostssl replication replica_ocp25 198.51.100.24/32 scram-sha-256",
            "# END data-support replication (ocp25.open-contracting.org)",
            "",
        ].join("\n"),
    );
    assert.equal(await replicationState(), "replica_ocp25 replica2\n");
    // The replica stack follows (new role and slot); it streams again, over IPv4.
    assert.match(String(applyReplicaStack().outputs.status), /streaming from ocp23/);
    await sh("new", `${psql("kingfisher_collect")} -c "INSERT INTO crawl (spider, started) VALUES ('after_edit_3', now())"`);
    assert.equal(await eventually("replica", "kingfisher_collect", "SELECT count(*) FROM crawl WHERE spider = 'after_edit_3'", "1"), "1");
});

test("edit 4: the replica, the added Docker app and the allow-list entry removed; the gates that passed are not asked again", async () => {
    for (const host of ["old", "new"] as const) await sh(host, ": > /var/log/docker-standin.log");
    const scrapydAsked = await sh("old", "wc -l < /var/log/scrapyd-standin.log");
    const result = applyEdit({ crawls: [DR2, PY], sshPort: 2222 });
    assert.deepEqual(acted(result), [
        "delete data-support-docker-start-kingfisher-summarize",
        "delete data-support-replication-max-worker-processes",
        "delete data-support-replication-password",
        "delete data-support-replication-source",
        "delete-replaced data-support-tinyproxy-proof",
        "replace data-support-tinyproxy-proof",
        // The re-checks after the halt and before the copy: their guide names the apps, so their
        // inputs changed; a gate that passed updates by doing nothing (jobsGate.ts, PASSED).
        "update data-support-gates-after-halt-rabbitmq",
        "update data-support-gates-after-halt-scrapyd",
        "update data-support-gates-before-copy-rabbitmq",
        "update data-support-gates-before-copy-scrapyd",
        // Their text names the apps (the halt, and the copies' own check's guide); each finds its
        // marker and runs nothing again.
        "update data-support-halt-old-server",
        "update data-support-incremental-copy-database",
        "update data-support-incremental-copy-files",
        "update data-support-tinyproxy-config",
    ]);
    for (const name of ["data-support-halt-old-server", "data-support-incremental-copy-database", "data-support-incremental-copy-files"]) {
        assert.match(result.steps.find((s) => s.name === name)?.stdout ?? "", /already done/, name);
    }
    // Nothing asked the old server's Scrapyd or RabbitMQ: the gates ran their update, `true`, and
    // its Scrapyd saw no request (the copies stopped at their markers, before their check).
    assert.deepEqual(
        result.steps.filter((s) => /-gates-/.test(s.name) && s.action !== "same").map((s) => `${s.name}: ${s.command}`).sort(),
        ["after-halt-rabbitmq", "after-halt-scrapyd", "before-copy-rabbitmq", "before-copy-scrapyd"].map((g) => `data-support-gates-${g}: true`),
    );
    assert.equal(await sh("old", "wc -l < /var/log/scrapyd-standin.log"), scrapydAsked);
    assert.equal(await hbaBlocks(), "");
    assert.equal(await replicationState(), "\n", "no replication role, no slot");
    assert.equal(await sh("new", `${psql("postgres")} -c "SELECT count(*) FROM pg_stat_replication"`), "0\n");
    // An app that leaves the config is no longer managed: it is not brought down on the server it serves.
    assert.deepEqual(await dockerCalls("new"), []);
    assert.deepEqual(await dockerCalls("old"), []);
    assert.deepEqual(await allowLines(), ["Allow 127.0.0.1", "Allow ::1", "Allow 198.51.100.23", "Allow 2001:db8:d5::23/128"]);
    assert.deepEqual(await through("outsider"), { v4: "403", v6: "000" });
    assert.deepEqual(await through("new"), { v4: "200", v6: "200" });
    // The crawls were not touched by these edits.
    assert.equal(await crontab(), [SALT_TAG, MAILTO, ...EXCLUDED, ...entry("DOMINICAN_REPUBLIC", DR.spider), ...entry("PARAGUAY", PY.spider), ""].join("\n"));
});

test("edit 5: a crawl's identifier renamed and another's spider renamed: nothing lost, nothing left at the old path", async () => {
    const PY5 = { ...PY, identifier: "PARAGUAY_DNCP" };
    const DR5 = { ...DR2, spider: "dominican_republic_bulk" };
    const result = applyEdit({ crawls: [DR5, PY5], sshPort: 2222 });
    // The engine creates the renamed crawl's resources first and deletes the old ones last.
    assert.deepEqual(acted(result), [
        "create data-support-crawls-paraguay_dncp",
        "create data-support-crawls-paraguay_dncp-cardinal-result-sql",
        "create data-support-crawls-paraguay_dncp-cardinal-settings",
        "create data-support-crawls-paraguay_dncp-read-access",
        "delete data-support-crawls-paraguay",
        "delete data-support-crawls-paraguay-cardinal-result-sql",
        "delete data-support-crawls-paraguay-cardinal-settings",
        "delete data-support-crawls-paraguay-read-access",
        "update data-support-crawls-crontab",
        "update data-support-crawls-dominican_republic",
        "update data-support-crawls-dominican_republic-read-access",
    ]);
    assert.equal(await crontab(), [SALT_TAG, MAILTO, ...EXCLUDED, ...entry("DOMINICAN_REPUBLIC", "dominican_republic_bulk"), ...entry("PARAGUAY_DNCP", PY.spider), ""].join("\n"));
    // The same spider's script stays (the old crawl's delete does not remove what the new one
    // installed); the renamed spider's script moved.
    assert.deepEqual(await crawlFiles(), [
        "bi/settings/paraguay_dncp_releases.ini",
        "bi/sql/paraguay_dncp_releases_result.sql",
        "bin/do_excluded_supplier.sh",
        "bin/dominican_republic_bulk.sh",
        "bin/mexico_nuevo_leon.sh",
        "bin/paraguay_dncp_releases.sh",
    ]);
    assert.match(await sh("new", `cat ${HOME}/bin/paraguay_dncp_releases.sh`), / CONCURRENT_REQUESTS=2 /);
    assert.equal(await sh("new", `cat ${HOME}/bi/settings/paraguay_dncp_releases.ini`), "[defaults]\ncurrency = PYG\n");
    // The grant on the result stays: the renamed crawl owns it now, the old one's delete keeps it.
    assert.deepEqual(await grants(["bi", "dgcp"], ["paraguay_dncp_releases_result"]), ["bi paraguay_dncp_releases_result t", "dgcp paraguay_dncp_releases_result f"]);
});
