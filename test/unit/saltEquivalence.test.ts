// Salt equivalence (issue 15, deliverable 5), the parts that hold today: for the example pillar of
// the deploy repository at the runbook's commit (afaedf6b), what the program writes against what
// Salt's templates render from the pillar fragments the program outputs. Salt's side is written
// out as facts, each naming its file there; the program's side comes from its own renderers.
// Not yet equivalent, so not asserted here: the crawl script (Salt's cron.sh sets no_proxy with
// sentry.io and standard.open-contracting.org, PROXY_SPIDERS and SENTRY_DSN, logs to
// logs/<spider>-<date>.log) and the cardinal files (Salt's bi/settings, bi/sql, bi/scratch).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import YAML from "yaml";
import { parseStackConfig, type MainConfig } from "../../components/config";
import { cronEntry, MAILTO, SALT_CRON_TAG } from "../../components/incrementalCrawls";
import { allowList } from "../../components/mainServer";
import { crawlsPillar, replicaPillar, tinyproxyPillar } from "../../components/pillar";
import { renderTinyproxyConf } from "../../components/tinyproxyAllowlist";
import { replicationHbaLines } from "../../components/replicationSource";
import { mainConfig } from "../support/fixtures";

/** pillar/kingfisher_main.sls python_apps.kingfisher_collect.crawls at afaedf6b (both crawls). */
const PILLAR_CRAWLS = [
    { identifier: "DOMINICAN_REPUBLIC", spider: "dominican_republic_api", crawl_time: "2023-07-13", spider_arguments: { compile_releases: "true", force_version: "1.1", ignore_version: "true" }, cardinal: true, users: ["dgcp"] },
    { identifier: "MEXICO_NUEVO_LEON", spider: "mexico_nuevo_leon", crawl_time: "2025-05-05", spider_arguments: { compile_releases: "true" } },
];

const config = () => {
    const cfg = mainConfig();
    cfg.incremental = { crawls: PILLAR_CRAWLS };
    return parseStackConfig(cfg) as MainConfig;
};

test("crontab: Salt's cron.present of incremental.sls renders the program's lines, under Salt's header and MAILTO", () => {
    // salt/kingfisher/collect/incremental.sls: identifier OCDS_KINGFISHER_COLLECT_<identifier>, name
    // /home/incremental/bin/<spider>.sh, minute 15, hour 0, daymonth only with `day`;
    // salt/lib.sls set_cron_env: MAILTO=sysadmin@open-contracting.org; salt/modules/cron.py writes
    // its header line, the environment, then each entry under its identifier comment.
    const salt = [
        "# Lines below here are managed by Salt, do not edit",
        "MAILTO=sysadmin@open-contracting.org",
        "# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_DOMINICAN_REPUBLIC",
        "15 0 * * * /home/incremental/bin/dominican_republic_api.sh",
        "# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_MEXICO_NUEVO_LEON",
        "15 0 * * * /home/incremental/bin/mexico_nuevo_leon.sh",
    ];
    const program = [SALT_CRON_TAG, `MAILTO=${MAILTO}`, ...config().incremental.crawls.flatMap((c) => cronEntry(c, "/home/incremental"))];
    assert.deepEqual(program, salt);
    const monthly = parseStackConfig({ ...mainConfig(), incremental: { crawls: [{ ...PILLAR_CRAWLS[1], day: 1 }] } }) as MainConfig;
    assert.deepEqual(cronEntry(monthly.incremental.crawls[0], "/home/incremental"), ["# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_MEXICO_NUEVO_LEON", "15 0 1 * * /home/incremental/bin/mexico_nuevo_leon.sh"]);
});

test("crawls pillar: the fragment carries the pillar's crawls, as Salt's templates read them", () => {
    const crawls = YAML.parse(crawlsPillar(config().incremental.crawls)).python_apps.kingfisher_collect.crawls;
    // cron.sh puts `{{ crawl.spider_arguments }}` into the command line as it is: a string.
    assert.deepEqual(crawls, [
        { identifier: "DOMINICAN_REPUBLIC", spider: "dominican_republic_api", crawl_time: "2023-07-13", spider_arguments: "-a compile_releases=true -a force_version=1.1 -a ignore_version=true", cardinal: true, users: ["dgcp"] },
        { identifier: "MEXICO_NUEVO_LEON", spider: "mexico_nuevo_leon", crawl_time: "2025-05-05", spider_arguments: "-a compile_releases=true" },
    ]);
});

test("tinyproxy: Salt's template over the program's pillar fragment gives the program's Allow lines and admits the same addresses", () => {
    const cfg = config();
    const allow = allowList(cfg);
    // salt/tinyproxy/files/tinyproxy.conf: Allow 127.0.0.1, Allow ::1, then `Allow {{ ip }}` per
    // pillar entry, as written.
    const pillarAllow: string[] = YAML.parse(tinyproxyPillar(allow)).tinyproxy.allow;
    const salt = ["Allow 127.0.0.1", "Allow ::1", ...pillarAllow.map((ip) => `Allow ${ip}`)];
    const program = renderTinyproxyConf(8888, allow).split("\n").filter((l) => l.startsWith("Allow "));
    assert.deepEqual(program, salt);
    // The example: the new server's two addresses and the kept ones; IPv6 as one address each.
    assert.deepEqual(salt, ["Allow 127.0.0.1", "Allow ::1", "Allow 198.51.100.23", "Allow 2001:db8:d5::23/128", "Allow 198.51.100.10"]);
});

test("pg_hba: Salt's lines from the program's replica fragment admit the same role and addresses", () => {
    const replica = { hostname: "ocp24.open-contracting.org", ipv4: "198.51.100.24", ipv6: "2001:db8:d5::24" };
    const fragment = YAML.parse(replicaPillar(replica)).postgres;
    // salt/postgres/files/pg_hba.conf: `hostssl replication replica <ip>/32` (IPv6 /128) `md5` per
    // replica_ipv4 / replica_ipv6 entry; the role is always `replica`.
    const salt = [...fragment.replica_ipv4.map((ip: string) => `hostssl replication replica ${ip}/32`), ...fragment.replica_ipv6.map((ip: string) => `hostssl replication replica ${ip}/128`)];
    // The program writes scram-sha-256 where Salt writes md5; with SCRAM-hashed passwords (the default
    // since PostgreSQL 14) md5 authenticates with SCRAM too, so both admit the same clients.
    const program = replicationHbaLines("replica", [replica.ipv4, replica.ipv6]).map((l) => l.replace(/ scram-sha-256$/, ""));
    assert.deepEqual(program, salt);
    assert.deepEqual(salt, ["hostssl replication replica 198.51.100.24/32", "hostssl replication replica 2001:db8:d5::24/128"]);
});
