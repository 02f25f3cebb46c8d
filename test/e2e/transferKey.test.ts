// The transfer key on the test hosts, with an old server whose sshd listens on port 2222 only, that
// the new server reaches only through a jump host (the outsider host), and whose clock reads
// Asia/Tokyo (UTC+9): the key goes through that port and jump host, expires when
// transfer.keyHours says as the old server's sshd reads its own time, runs nothing but the copies'
// own commands (sshd forces the grant's dispatcher), and is gone from both servers at the end.
// The copy after the halt converges whatever changed on old since the pre-sync.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { down, pointName, run, up, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig } from "../support/harness";
import { TABLES_FINGERPRINT_SQL, treeFingerprint } from "../../components/machinery/fingerprint";
import { psql, sh } from "../support/hosts";

let tb: Testbed;
let harness: Harness;
const MIGRATION = "/var/lib/data-support/ocp04-to-ocp23";
const DATA = "/home/incremental/data/dominican_republic_api/20240101_001500";
const KEY = `-i ${MIGRATION}/transfer_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=${MIGRATION}/known_hosts -o StrictHostKeyChecking=yes`;
/** ssh on the new server with the transfer key, as the copies use it (port 2222, the jump host, pinned host keys). */
const KEY_SSH = `ssh ${KEY} -p 2222 -o ProxyCommand='ssh ${KEY} -p 22 -W %h:%p root@198.51.100.66'`;

function config(): Record<string, any> {
    const c = testbedConfig(tb, { transfer: { keyHours: 3 } });
    c.servers.oldMain.ssh.port = 2222;
    c.servers.oldMain.ssh.jumpHost = { host: tb.hosts.outsider.ipv4, port: 22, user: "root", hostKey: tb.hosts.outsider.hostKey };
    return c;
}

before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    harness = new Harness(tb);
    // Port 2222 only (Debian's sshd_config includes sshd_config.d first and sets no Port), and a
    // time zone nine hours east of UTC: an expiry written in UTC but read as local time would be
    // nine hours early, so a 3-hour key would be refused at once.
    await sh("old", "ln -sf /usr/share/zoneinfo/Asia/Tokyo /etc/localtime && echo 'Port 2222' > /etc/ssh/sshd_config.d/ds-port.conf && service ssh restart");
    assert.notEqual((await run("old", "timeout 1 bash -c ': >/dev/tcp/127.0.0.1/22'")).code, 0, "old's sshd still listens on 22");
    // The new server cannot reach old's sshd directly: only through the jump host.
    await sh("old", "nft add table inet ds_test && nft add chain inet ds_test input '{ type filter hook input priority 0; }' && nft add rule inet ds_test input ip saddr 198.51.100.23 tcp dport 2222 reject");
    assert.notEqual((await run("new", "timeout 5 bash -c ': >/dev/tcp/198.51.100.4/2222'")).code, 0, "new reaches old's sshd directly");
});

after(async () => {
    await down();
});

test("an old server on port 2222 behind a jump host: the grants and the pre-sync go through them; the run stops at a crawl", async () => {
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({ running: [{ id: "77aa", spider: "paraguay_dncp_records" }], pending: [], finished: [] }));
    const result = harness.apply(config());
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "data-support-gates-scrapyd");
    assert.equal(await sh("new", `test -e ${MIGRATION}/presync-incremental-files.done && echo done`), "done\n");
    assert.equal(await sh("new", "ls /home/incremental/data/dominican_republic_api"), "20240101_001500\n20240201_001500\n");
    // The jump host lets the key through to old's SSH port only.
    assert.match(await sh("outsider", "grep -h data-support- /root/.ssh/authorized_keys"), /^restrict,port-forwarding,permitopen="198\.51\.100\.4:2222",command="\/bin\/false",from="198\.51\.100\.23,2001:db8:d5::23",expiry-time="\d{12}" ssh-ed25519 /);
    const shell = await run("new", `ssh ${KEY} root@198.51.100.66 id`);
    assert.notEqual(shell.code, 0);
    assert.doesNotMatch(shell.stdout, /uid=/);
});

test("the key expires transfer.keyHours (3) after the grant, in the old server's own time zone", async () => {
    const line = await sh("old", "grep -h data-support- /var/lib/postgresql/.ssh/authorized_keys");
    const expiry = /expiry-time="(\d{12})"/.exec(line)?.[1];
    assert.ok(expiry, line);
    // Old's local time now + 3 h, and 10 minutes before it: the grant ran in between.
    const [late, early] = (await sh("old", "env -u TZ date -d '+3 hours' +%Y%m%d%H%M; env -u TZ date -d '+170 minutes' +%Y%m%d%H%M")).trim().split("\n");
    assert.ok(expiry >= early && expiry <= late, `${expiry} not within ${early}..${late}`);
    assert.match(line, /^restrict,command="\/usr\/local\/lib\/data-support\/ocp04-to-ocp23\/transfer-command",from="198\.51\.100\.66",expiry-time="\d{12}" ssh-ed25519 /);
});

test("the key runs only the copies' commands: a shell command, a DROP, another directory are refused", async () => {
    const refused = /the data-support transfer key may run only the migration's copies; refused/;
    const id = await run("new", `${KEY_SSH} postgres@198.51.100.4 id`);
    assert.notEqual(id.code, 0);
    assert.match(id.stderr, refused);
    assert.doesNotMatch(id.stdout, /uid=/);
    const drop = await run("new", `${KEY_SSH} postgres@198.51.100.4 "psql -d kingfisher_collect -c 'DROP TABLE crawl'"`);
    assert.notEqual(drop.code, 0);
    assert.match(drop.stderr, refused);
    // The fingerprint command is allowed, but its SQL is the one fixed on old: stdin is ignored.
    const swapped = await run("new", `${KEY_SSH} postgres@198.51.100.4 'psql -X -At -v ON_ERROR_STOP=1 -v fingerprint=tables -d kingfisher_collect'`, { input: "DROP TABLE crawl;\n" });
    assert.equal(swapped.code, 0, swapped.stderr);
    assert.match(swapped.stdout, /^public\.crawl\|20\|[0-9a-f]{32}$/m);
    assert.equal(await sh("old", `${psql("kingfisher_collect")} -c "SELECT count(*) FROM crawl"`), "20\n");
    const keys = await run("new", `${KEY_SSH} incremental@198.51.100.4 'cat .ssh/authorized_keys'`);
    assert.notEqual(keys.code, 0);
    assert.match(keys.stderr, refused);
    const etc = await run("new", `rm -rf /tmp/etc-copy && rsync -a --rsh="${KEY_SSH}" incremental@198.51.100.4:/etc/ /tmp/etc-copy/`);
    assert.notEqual(etc.code, 0);
    assert.equal(await sh("new", "ls -A /tmp/etc-copy 2>/dev/null | wc -l"), "0\n");
    // No forwarding either (restrict): a tunnel to old's PostgreSQL is refused.
    const forward = await run("new", `timeout 60 ${KEY_SSH} -W 127.0.0.1:5432 postgres@198.51.100.4 < /dev/null`);
    assert.notEqual(forward.code, 0);
    assert.match(forward.stderr, /administratively prohibited|open failed/);
    // What the copies need still works.
    assert.equal((await run("new", `${KEY_SSH} incremental@198.51.100.4 true`)).code, 0);
});

test("files added, changed, removed and renamed on old after the pre-sync: the copy after the halt converges to old's trees", async () => {
    await sh("old", [
        `echo '{"added": true}' > '${DATA}/added after presync.json'`,
        `echo '{"ocid": "changed", "n": 1, "longer": "yes"}' > ${DATA}/1.json`,
        `rm ${DATA}/2.json`,
        `mv ${DATA}/3.json ${DATA}/3-renamed.json`,
        `mv '${DATA}/nested dir' '${DATA}/moved dir'`,
        "chown -R incremental: /home/incremental/data",
    ].join(" && "));
    fs.writeFileSync(tb.scrapyd.jobsFile, JSON.stringify({ running: [], pending: [], finished: [] }));
    assertApplied(harness.apply(config()));
    for (const dir of ["/home/incremental/data", "/home/incremental/logs"]) {
        assert.equal(await sh("new", treeFingerprint(dir).text), await sh("old", treeFingerprint(dir).text), dir);
    }
    assert.equal(await sh("new", `ls ${DATA} | grep -E '^(2|3|3-renamed|added after presync)\\.json$|dir$'`), "3-renamed.json\nadded after presync.json\nmoved dir\n");
    assert.equal(await sh("new", `cat ${DATA}/1.json`), '{"ocid": "changed", "n": 1, "longer": "yes"}\n');
    assert.equal(await sh("new", psql("kingfisher_collect"), { input: TABLES_FINGERPRINT_SQL }), await sh("old", psql("kingfisher_collect"), { input: TABLES_FINGERPRINT_SQL }));
});

test("after the copies, nothing of the key is left: not on old (keys, dispatcher), not on new (private key)", async () => {
    assert.doesNotMatch(await sh("old", "cat /var/lib/postgresql/.ssh/authorized_keys /home/incremental/.ssh/authorized_keys 2>/dev/null || true"), /data-support-/);
    assert.equal(await sh("old", "ls -A /usr/local/lib/data-support 2>/dev/null || true"), "");
    assert.equal(await sh("new", `ls ${MIGRATION} | grep -c -e transfer_ed25519 -e known_hosts || true`), "0\n");
    assert.equal(await sh("new", `test -e ${MIGRATION}/forget-transfer-key.done && echo done`), "done\n");
    assert.doesNotMatch(await sh("outsider", "cat /root/.ssh/authorized_keys"), /data-support-/);
});
