// The one-off copies under faults, on the test hosts: each transfer is killed in the middle, the
// run fails naming the step and the host, nothing half-copied stays, and the next run ends with
// data equal to the old server's. A completed step never runs again, even with the state lost.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { down, pointName, up, type HostName, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig } from "../support/harness";
import { TABLES_FINGERPRINT_SQL, treeFingerprint } from "../../components/machinery/fingerprint";
import { exchangeRatesDump, psql, sh, tablesDump, whileLoading } from "../support/hosts";

let tb: Testbed;
let harness: Harness;
const MARKERS = "/var/lib/data-support/ocp04-to-ocp23";
const BIG = "/home/incremental/data/dominican_republic_api/big";

const marker = (host: HostName, step: string) => sh(host, `test -e ${MARKERS}/${step}.done && echo done || echo absent`);

before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    harness = new Harness(tb);
    // Enough to be in flight when the fault comes: 8 MB of files, 200,000 more rows.
    await sh("old", `mkdir -p ${BIG} && for i in 1 2 3 4 5 6 7 8; do head -c 1000000 /dev/urandom > ${BIG}/part$i.bin; done && chown -R incremental: ${BIG}`);
    await sh("old", `${psql("kingfisher_collect")} -c "SET ROLE kingfisher_collect; CREATE TABLE bulk AS SELECT g AS id, jsonb_build_object('n', g, 'pad', repeat(md5(g::text), 8)) AS data FROM generate_series(1, 200000) g; ALTER TABLE bulk ADD PRIMARY KEY (id)"`);
});

after(async () => {
    await down();
});

// The table fingerprint the copy step compares: one scratch database per case on the old server,
// each the same two rows with one change.
const FINGERPRINT_BASE = `CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric, data jsonb, extra jsonb);
INSERT INTO t VALUES
  (1, 'a', 1.5, '{"ocid": "ocds-1", "tag": ["tender"], "tender": {"title": "Sillas", "value": {"amount": 10, "currency": "DOP"}}}', NULL),
  (2, 'b', 2, '{"ocid": "ocds-2", "tender": {"title": "Mesas"}, "x": {"b": 1}, "y": 2}', 'null');`;
const FINGERPRINT_CHANGES: Record<string, string> = {
    nested_string: `UPDATE t SET data = jsonb_set(data, '{tender,title}', '"Sillas "') WHERE id = 1;`,
    nested_number: `UPDATE t SET data = jsonb_set(data, '{tender,value,amount}', '11') WHERE id = 1;`,
    trailing_zero: `UPDATE t SET data = jsonb_set(data, '{tender,value,amount}', '10.0') WHERE id = 1;`,
    array_item: `UPDATE t SET data = jsonb_set(data, '{tag,0}', '"award"') WHERE id = 1;`,
    // The same scalars in the same order, in another shape: what a binary jsonb hash cannot see.
    array_to_scalar: `UPDATE t SET data = jsonb_set(data, '{tag}', '"tender"') WHERE id = 1;`,
    nesting_moved: `UPDATE t SET data = (data - 'x' - 'y') || '{"x": {"b": 1, "y": 2}}' WHERE id = 2;`,
    sql_null_to_json_null: "UPDATE t SET extra = 'null' WHERE id = 1;",
    text_column: "UPDATE t SET name = 'c' WHERE id = 1;",
    row_missing: "DELETE FROM t WHERE id = 2;",
    values_swapped: "UPDATE t SET data = CASE id WHEN 1 THEN (SELECT data FROM t WHERE id = 2) ELSE (SELECT data FROM t WHERE id = 1) END;",
};

test("the table fingerprint: equal rows in any order print the same; any changed value, shape or row differs", async () => {
    const print = async (name: string, change: string) => {
        const db = `fingerprint_${name}`;
        await sh("old", `cd / && runuser -u postgres -- createdb ${db} && ${psql(db)}`, { input: `${FINGERPRINT_BASE}\n${change}` });
        const out = await sh("old", psql(db), { input: TABLES_FINGERPRINT_SQL });
        await sh("old", `cd / && runuser -u postgres -- dropdb ${db}`);
        return out;
    };
    const base = await print("base", "");
    assert.match(base, /^public\.t\|2\|[0-9a-f]{32}\n$/);
    // The same rows stored in the other order.
    assert.equal(await print("reordered", "CREATE TEMP TABLE k AS SELECT * FROM t; DELETE FROM t; INSERT INTO t SELECT * FROM k ORDER BY id DESC;"), base);
    const changed: string[] = [];
    for (const [name, change] of Object.entries(FINGERPRINT_CHANGES)) {
        const out = await print(name, change);
        assert.notEqual(out, base, `the fingerprint misses ${name}`);
        changed.push(out);
    }
    assert.equal(new Set(changed).size, changed.length, "every change prints differently");
});

test("pre-sync of data/ killed mid-transfer: the step fails naming the host; nothing is marked done", async () => {
    // A slow link from the old server, so the transfer is still running when it is killed.
    await sh("old", "tc qdisc add dev eth0 root tbf rate 4mbit burst 32kb latency 2s");
    const applying = harness.applyInBackground(testbedConfig(tb));
    const seen = await sh("new", `for _ in $(seq 600); do n=$(find ${BIG} -name 'part*.bin' 2>/dev/null | wc -l); [ "$n" -ge 1 ] && break; sleep 0.1; done; pkill -x rsync; echo $n`);
    assert.equal(seen.trim(), "1", "killed after the first big file arrived");
    const result = await applying;
    await sh("old", "tc qdisc del dev eth0 root");
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "data-support-incremental-copy-presync");
    assert.equal(result.failed?.host, "root@198.51.100.23");
    assert.equal(await marker("new", "presync-incremental-files"), "absent\n");
    assert.match(await sh("old", "crontab -l -u incremental"), /OCDS_KINGFISHER_COLLECT/, "nothing after the pre-sync ran");
});

test("the old server removes the transfer key by itself when it expires, whatever happens to the run", async () => {
    // No systemd on the test hosts: the detached sleep that removes the key in 12 h.
    const sleeper = await sh("old", "pgrep -af '^/bin/sh -c sleep 43200;' || true");
    assert.match(sleeper, /sleep 43200;.*data-support-ocp04-to-ocp23@ocp23\.open-contracting\.org/);
    assert.match(sleeper, /\/var\/lib\/postgresql\/\.ssh\/authorized_keys/);
    assert.match(sleeper, /\/home\/incremental\/\.ssh\/authorized_keys/);
});

test("the database transfer killed mid-COPY: the load is rolled back, new holds only what Salt loaded", async () => {
    const applying = harness.applyInBackground(testbedConfig(tb));
    // Kill pg_dump on the old server once the new server is loading rows.
    await whileLoading();
    await sh("old", "pkill -x pg_dump");
    const result = await applying;
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "data-support-incremental-copy-database");
    assert.equal(result.failed?.host, "root@198.51.100.23");
    // Rolled back whole: new holds only what Salt loaded before the copy, as it was (41 excluded suppliers).
    assert.equal(await sh("new", `${psql("kingfisher_collect")} -c "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"`), "codelist,cpc,excluded_supplier,indicator,unspsc\n");
    assert.equal(await sh("new", `${psql("kingfisher_collect")} -c "SELECT count(*) FROM excluded_supplier"`), "41\n");
    assert.equal(await marker("new", "copy-kingfisher-collect"), "absent\n");
    assert.equal(await marker("new", "presync-incremental-files"), "done\n", "the pre-sync was re-run and completed");
});

test("a row changed on old during the copy (a writer the halt missed): the verification fails; the next run refuses to overwrite", async () => {
    const applying = harness.applyInBackground(testbedConfig(tb));
    await whileLoading();
    // pg_dump's snapshot is older than this change, so new gets the row as it was.
    await sh("old", `${psql("kingfisher_collect")} -c "UPDATE bulk SET data = jsonb_set(data, '{pad}', '\\"changed during the copy\\"') WHERE id = 7"`);
    const result = await applying;
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "data-support-incremental-copy-database");
    assert.equal(result.failed?.host, "root@198.51.100.23");
    assert.match(result.error ?? "", /verification failed: tables of kingfisher_collect differ/);
    assert.match(result.error ?? "", /public\.bulk\|200000\|/, "the diff names the table");
    assert.equal(await marker("new", "copy-kingfisher-collect"), "absent\n");

    const again = harness.apply(testbedConfig(tb));
    assert.equal(again.ok, false);
    assert.match(again.error ?? "", /database kingfisher_collect already has \d+ table\(s\) besides those Salt loads \(codelist, indicator, cpc, unspsc, excluded_supplier\) that differ from the old server's; refusing to overwrite them/);
    // What that message asks for, so that the next test's run copies again.
    await sh("new", `cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -c "DROP DATABASE kingfisher_collect WITH (FORCE)" -c "CREATE DATABASE kingfisher_collect OWNER kingfisher_collect"`);
});

test("the exchange-rates transfer killed: nothing committed on new; the key is still there for the re-run", async () => {
    // Hold a lock on the old table, so the export waits; then kill it where it waits.
    await sh("old", `setsid -f sh -c 'cd / && echo "BEGIN; LOCK TABLE exchange_rates IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300);" | runuser -u postgres -- psql -X -q -d pelican_backend' > /dev/null 2>&1`);
    const applying = harness.applyInBackground(testbedConfig(tb));
    await sh("old", `for _ in $(seq 1200); do p=$(${psql("pelican_backend")} -c "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'COPY%exchange_rates%' LIMIT 1"); [ -n "$p" ] && break; sleep 0.05; done; ${psql("pelican_backend")} -c "SELECT pg_terminate_backend($p)"`);
    const result = await applying;
    await sh("old", `${psql("pelican_backend")} -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(300)%' AND pid <> pg_backend_pid()"`);
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "data-support-exchange-rates-copy");
    assert.equal(result.failed?.host, "root@198.51.100.23");
    assert.equal(await sh("new", `${psql("pelican_backend")} -c "SELECT count(*) FROM exchange_rates"`), "0\n");
    assert.equal(await marker("new", "copy-kingfisher-collect"), "done\n");
});

test("an expired transfer key stops the copy with a guide; `pulumi up --replace` of the grant, as the guide says, grants it again and the run completes", async () => {
    // Twelve hours pass: sshd on old now refuses the key by its own expiry-time (the clock is
    // simulated by moving the expiry into the past; sshd's enforcement is real).
    const keys = "/home/incremental/.ssh/authorized_keys /var/lib/postgresql/.ssh/authorized_keys";
    await sh("old", `sed -i 's/expiry-time="[0-9]*"/expiry-time="202001010000"/' ${keys}`);
    const result = harness.apply(testbedConfig(tb));
    assert.equal(result.ok, false);
    assert.match(result.error ?? "", /ocp04\.open-contracting\.org does not accept the transfer key of ocp23\.open-contracting\.org for postgres \(it expires 12 h after it was granted/);
    assert.match(result.error ?? "", /pulumi up --replace "\$\(pulumi stack --show-urns \| grep -o 'urn:pulumi:\[\^ \]\*::data-support-transfer-grant'\)"/);
    // What the guide's grep finds in `pulumi stack --show-urns`.
    const grant = harness.stackUrns().filter((urn) => /^urn:pulumi:[^ ]*::data-support-transfer-grant$/.test(urn));
    assert.equal(grant.length, 1);
    const replaced = harness.apply(testbedConfig(tb), { replace: grant });
    assertApplied(replaced);
    const acted = replaced.steps.filter((s) => s.action !== "same").map((s) => `${s.action} ${s.name}`);
    // deleteBeforeReplace: the revoke (by the key's comment) runs before the new grant, not after it.
    assert.deepEqual(acted.slice(0, 2), ["delete-replaced data-support-transfer-grant", "replace data-support-transfer-grant"]);
    assert.ok(acted.includes("create data-support-exchange-rates-copy"), "the stopped step ran");
    assert.equal(await marker("new", "copy-exchange-rates"), "done\n");
});

test("the next run completes: tables, files and exchange rates equal the old server's; the key is gone", async () => {
    assertApplied(harness.apply(testbedConfig(tb)));
    // Compared by a method of their own, not the copy step's fingerprint: every row as COPY prints
    // it (hashed on the host: the bulk table is large), and the row count of the bulk table.
    assert.equal(await sh("new", `${tablesDump("kingfisher_collect")} | sha256sum`), await sh("old", `${tablesDump("kingfisher_collect")} | sha256sum`));
    assert.equal(await sh("new", `${psql("kingfisher_collect")} -c "SELECT count(*) FROM bulk"`), "200000\n");
    assert.equal(await sh("new", exchangeRatesDump()), await sh("old", exchangeRatesDump()));
    for (const dir of ["/home/incremental/data", "/home/incremental/logs"]) {
        assert.equal(await sh("new", treeFingerprint(dir).text), await sh("old", treeFingerprint(dir).text), dir);
    }
    assert.doesNotMatch(await sh("old", "cat /var/lib/postgresql/.ssh/authorized_keys /home/incremental/.ssh/authorized_keys 2>/dev/null || true"), /data-support-/);
});

test("a copy loaded but not recorded (marker and state lost): the next run finds it equal to old's and records it as done", async () => {
    await sh("new", `rm ${MARKERS}/copy-kingfisher-collect.done ${MARKERS}/copy-exchange-rates.done`);
    // Cut off before they were recorded, so nothing after them ran either: the key was neither
    // revoked on old nor deleted on new (the revoke and the forget wait for the copies).
    await sh("old", `rm ${MARKERS}/revoke-transfer-key.done`);
    await sh("new", `rm ${MARKERS}/forget-transfer-key.done`);
    harness.reset("main");
    const result = assertApplied(harness.apply(testbedConfig(tb)));
    const stdout = (suffix: string) => result.steps.find((s) => s.name.endsWith(suffix))?.stdout ?? "";
    assert.match(stdout("-incremental-copy-database"), /kingfisher_collect: already an equal copy of the old server's \(an earlier run was cut off\); recorded as done/);
    assert.match(stdout("-exchange-rates-copy"), /exchange_rates: already an equal copy of the old server's \(an earlier run was cut off\); recorded as done/);
    assert.equal(await marker("new", "copy-kingfisher-collect"), "done\n");
    assert.equal(await marker("new", "copy-exchange-rates"), "done\n");
});

test("a completed step never runs again, even with the state lost: rows written on new since stay", async () => {
    await sh("new", `${psql("kingfisher_collect")} -c "INSERT INTO crawl (spider, started) VALUES ('written_after', now())"`);
    await sh("new", `${psql("pelican_backend")} -c "INSERT INTO exchange_rates (valid_on, rates, created, modified) VALUES ('2030-01-01', '{}', now(), now())"`);
    harness.reset("main");
    const result = assertApplied(harness.apply(testbedConfig(tb)));
    const copies = result.steps.filter((s) => /copy-(database|files|presync)|exchange-rates-copy/.test(s.name));
    assert.equal(copies.length, 4);
    for (const s of copies) assert.match(s.stdout, /already done on ocp23/, s.name);
    assert.equal(await sh("new", `${psql("kingfisher_collect")} -c "SELECT count(*) FROM crawl WHERE spider = 'written_after'"`), "1\n");
    assert.equal(await sh("new", `${psql("pelican_backend")} -c "SELECT count(*) FROM exchange_rates WHERE valid_on = '2030-01-01'"`), "1\n");
});
