// Smoke test of the test hosts: brings them up, checks each service from where the harness will
// use it, tears them down. Run from the repository root, as root:
//   node --import tsx --test test/hosts/testbed.smoke.test.ts
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { down, operatorCommand, run, runArgv, up, type HostName, type Testbed } from "./testbed";

let tb: Testbed;
let knownHosts: string;

before(async () => {
  tb = await up();
  // known_hosts from the collected host keys; the state dir has the same path in the operator.
  knownHosts = join(tb.stateDir, "operator", "smoke_known_hosts");
  const lines = Object.values(tb.hosts)
    .filter((h) => h.hostKey !== null)
    .map((h) => `${h.hostname},${h.ipv4},${h.ipv6} ${h.hostKey}`);
  writeFileSync(knownHosts, lines.join("\n") + "\n");
});

after(async () => {
  await down();
  const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  assert.equal(namespaces.split("\n").filter((l) => l.startsWith("ds-")).length, 0, namespaces);
});

function ssh(target: string, command: string) {
  return runArgv(
    operatorCommand([
      "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
      "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null",
      `root@${target}`, command,
    ]),
  );
}

function curl(host: HostName, args: string) {
  return run(host, `curl -sS --max-time 10 ${args}`);
}

test("ssh with a pinned host key reaches root on every host (by name and by IPv6)", async () => {
  for (const [name, host] of Object.entries(tb.hosts)) {
    if (host.hostKey === null) continue;
    const byName = await ssh(host.hostname, "hostname");
    assert.equal(byName.code, 0, `${name}: ${byName.stderr}`);
    assert.equal(byName.stdout.trim(), host.hostname);
    const byAddress = await ssh(host.ipv6, "id -un");
    assert.equal(byAddress.code, 0, `${name} over IPv6: ${byAddress.stderr}`);
    assert.equal(byAddress.stdout.trim(), "root");
  }
});

test("old has the seed data", async () => {
  const counts = await ssh(
    tb.hosts.old.hostname,
    `runuser -u postgres -- psql -XAtq -d kingfisher_collect -c "select (select count(*) from release), (select count(*) from crawl), (select count(*) from file_item)"
     runuser -u postgres -- psql -XAtq -d pelican_backend -c "select count(*) from exchange_rates"`,
  );
  assert.equal(counts.code, 0, counts.stderr);
  assert.deepEqual(counts.stdout.trim().split("\n"), [`${tb.seedRows}|20|${Math.floor(tb.seedRows / 2)}`, "300"]);
  const files = await run("old", "find data logs -type f | sort", { user: "incremental" });
  assert.match(files.stdout, /données été\.json/);
  assert.match(files.stdout, /nested dir\/file with spaces\.json/);
  const empty = await run("new", "psql -XAtq -d pelican_backend -c 'select count(*) from exchange_rates'", { user: "postgres" });
  assert.equal(empty.stdout.trim(), "0");
});

test("old and new as Salt leaves them at deploy afaedf6b: crontabs, reference tables, WAL archiving, tinyproxy.conf", async () => {
  for (const host of ["old", "new"] as const) {
    const ids = await run(host, "crontab -l -u incremental | grep '^# SALT_CRON_IDENTIFIER:'; crontab -l -u deployer | grep '^# SALT_CRON_IDENTIFIER:'");
    assert.deepEqual(ids.stdout.trim().split("\n"), [
      "# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_DOMINICAN_REPUBLIC",
      "# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_MEXICO_NUEVO_LEON",
      "# SALT_CRON_IDENTIFIER:DOMINICAN_REPUBLIC_EXCLUDED_SUPPLIER",
      "# SALT_CRON_IDENTIFIER:PELICAN_BACKEND_UPDATE_EXCHANGE_RATES",
      "# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_STALE_COLLECTIONS",
      "# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_UNFINISHED_COLLECTIONS",
      "# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_EMPTY_COLLECTIONS",
    ], host);
    const tables = await run(host, `psql -XAtq -d kingfisher_collect -c "select (select count(*) from codelist), (select count(*) from indicator), (select count(*) from cpc), (select count(*) from unspsc), (select count(*) from excluded_supplier)"`, { user: "postgres" });
    assert.equal(tables.stdout, host === "old" ? "3|2|2|2|61\n" : "3|2|2|2|41\n", `${host}: ${tables.stderr}`);
    const archive = await run(host, "psql -XAtq -c 'show archive_mode' -c 'show archive_command'", { user: "postgres" });
    assert.equal(archive.stdout, `on\npgbackrest --stanza=${host === "old" ? "kingfisher-2023" : "kingfisher-ocp23"} archive-push %p\n`, host);
    const uids = await run(host, "id -u deployer; getent passwd collect summarize incremental | cut -d: -f1,6,7");
    assert.equal(uids.stdout, "1005\ncollect:/home/collect:/bin/bash\nsummarize:/home/summarize:/bin/bash\nincremental:/home/incremental:/bin/bash\n");
  }
  const allow = await run("docs", "grep '^Allow ' /etc/tinyproxy/tinyproxy.conf");
  assert.deepEqual(allow.stdout.trim().split("\n"), ["Allow 127.0.0.1", "Allow ::1", "Allow 203.0.113.23", "Allow 2001:db8:23::2", "Allow 203.0.113.27", "Allow 2001:db8:27::2"]);
});

test("tinyproxy admits loopback on docs and answers 403 to the outsider", async () => {
  const local = await curl("docs", `-x http://127.0.0.1:8888 ${tb.web.url}`);
  assert.equal(local.code, 0, local.stderr);
  assert.equal(local.stdout, tb.web.body);
  const outsider = await curl("outsider", `-o /dev/null -w '%{http_code}' -x http://${tb.hosts.docs.ipv4}:8888 ${tb.web.url}`);
  assert.equal(outsider.stdout, "403");
});

test("Scrapyd stand-in: 401 without auth, the jobs with auth", async () => {
  const url = `${tb.scrapyd.url}/listjobs.json?project=kingfisher`;
  const anonymous = await curl("operator", `-o /dev/null -w '%{http_code}' '${url}'`);
  assert.equal(anonymous.stdout, "401");
  const authed = await curl("operator", `-u '${tb.scrapyd.username}:${tb.scrapyd.password}' '${url}'`);
  assert.equal(authed.code, 0, authed.stderr);
  const body = JSON.parse(authed.stdout);
  assert.equal(body.status, "ok");
  assert.deepEqual([body.pending, body.running, body.finished], [[], [], []]);
});

test("RabbitMQ management API lists the queues with auth", async () => {
  const queues = await curl("operator", `-f -u '${tb.rabbitmq.username}:${tb.rabbitmq.password}' '${tb.rabbitmq.url}/api/queues/%2F'`);
  assert.equal(queues.code, 0, queues.stderr);
  assert.ok(Array.isArray(JSON.parse(queues.stdout)));
});

test("docker stand-in refuses docker run and records the call", async () => {
  const refused = await run("old", "docker run --rm hello-world", { user: "deployer" });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /not a docker command/);
  const logged = await run("old", `tail -n 1 ${tb.standins.dockerLog}`);
  const entry = JSON.parse(logged.stdout);
  assert.deepEqual([entry.argv, entry.user, entry.uid], [["run", "--rm", "hello-world"], "deployer", 1005]);
});
