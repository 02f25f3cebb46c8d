// Over 300 lines: the facts of Salt's rendering for every file the program manages, side by side in one place, so one reading compares them all.
// Salt equivalence (issue 15, deliverable 5), the parts that hold today: for the example pillar of
// the deploy repository at the runbook's commit (afaedf6b), what the program writes against what
// Salt's templates render from the pillar fragments the program outputs. Salt's side is written
// out as facts, each naming its file there; the program's side comes from its own renderers.
// The crawl files (bin/<spider>.sh, bi/settings/<spider>.ini, bi/sql/<spider>_result.sql) are
// Salt's byte for byte, so a Salt deploy after `pulumi up` rewrites none of them, and the next
// `pulumi up` finds them unchanged (the same on the test hosts: test/e2e/saltDeploy.test.ts).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import YAML from "yaml";
import { parseStackConfig, type MainConfig } from "../../components/config";
import { cronEntry, MAILTO, renderCrawlScript, SALT_CRON_TAG } from "../../components/runbook/incremental-updates/incrementalCrawls";
import { allowList } from "../../components/mainServer";
import { crawlsPillar, replicaPillar, tinyproxyPillar } from "../../components/pillar";
import { renderTinyproxyConf } from "../../components/runbook/dependencies/tinyproxyAllowlist";
import { replicationHbaLines } from "../../components/runbook/dependencies/replicationSource";
import { mainConfig } from "../support/fixtures";
import { runProgram, type Registered } from "../../tools/program";

// salt/kingfisher/collect/files/cardinal/dominican_republic_api.ini stands in as its first lines:
// the file is copied as it is, whatever it holds (Pulumi.main.yaml carries the whole of it).
const INI = "; currency = USD\nno_price_comparison_procurement_methods = Sorteo de Obras\n\n[defaults]\ncurrency = DOP\n";
/** The private pillar's kingfisher_collect.env.SENTRY_DSN, as the test hosts have it. */
const DSN = "https://public@sentry.example.invalid/1";

/** pillar/kingfisher_main.sls python_apps.kingfisher_collect.crawls at afaedf6b (both crawls). */
const PILLAR_CRAWLS = [
    { identifier: "DOMINICAN_REPUBLIC", spider: "dominican_republic_api", crawl_time: "2023-07-13", spider_arguments: { compile_releases: "true", force_version: "1.1", ignore_version: "true" }, cardinal: true, cardinal_settings: INI, users: ["dgcp"] },
    { identifier: "MEXICO_NUEVO_LEON", spider: "mexico_nuevo_leon", crawl_time: "2025-05-05", spider_arguments: { compile_releases: "true" } },
];

const rawConfig = () => {
    const cfg = mainConfig();
    cfg.incremental = { ...cfg.incremental, sentryDsn: DSN, crawls: PILLAR_CRAWLS };
    return cfg;
};
const config = () => parseStackConfig(rawConfig()) as MainConfig;

// salt/kingfisher/collect/files/cron.sh (deploy afaedf6b) as Salt's Jinja renders it for each crawl
// of the pillar above, with userdir /home/incremental, directory <userdir>/kingfisher-collect,
// pillar.tinyproxy.url http://ocp19.open-contracting.org:8888 (pillar/tinyproxy.sls), SENTRY_DSN,
// settingsdir <userdir>/bi/settings, scratchdir <userdir>/bi/scratch. `{%- if %}` eats the newline
// before it; Salt keeps the final newline (salt/utils/templates.py). No `proxy` in either crawl:
// PROXY_SPIDERS is empty. Written out here, and rendered independently by test/hosts/provision.sh.
const SALT_DR_SH = `#!/bin/sh
# shellcheck disable=SC1083

set -eu

cd /home/incremental/kingfisher-collect

env http_proxy=http://ocp19.open-contracting.org:8888 https_proxy=http://ocp19.open-contracting.org:8888 no_proxy=localhost,sentry.io,standard.open-contracting.org .ve/bin/scrapy crawl \\
    dominican_republic_api -a compile_releases=true -a force_version=1.1 -a ignore_version=true \\
    -a crawl_time=2023-07-13T00:00:00 \\
    -s FILES_STORE=/home/incremental/data \\
    -s DATABASE_URL=postgresql://kingfisher_collect@localhost:5432/kingfisher_collect \\
    -s PROXY_SPIDERS= \\
    -s SENTRY_DSN=https://public@sentry.example.invalid/1 \\
    --logfile="/home/incremental/logs/dominican_republic_api-$(date +%F).log"

# shellcheck disable=all
psql -U kingfisher_collect -h localhost -t -c 'SELECT data FROM dominican_republic_api' -o /home/incremental/bi/scratch/dominican_republic_api.jsonl

/home/incremental/.cargo/bin/ocdscardinal prepare \\
    -s /home/incremental/bi/settings/dominican_republic_api.ini \\
    -o /home/incremental/bi/scratch/dominican_republic_api.out.jsonl \\
    -e /home/incremental/bi/scratch/dominican_republic_api.err.csv \\
    /home/incremental/bi/scratch/dominican_republic_api.jsonl

if [ -s /home/incremental/bi/scratch/dominican_republic_api.err.csv ]; then
    echo "/home/incremental/bi/scratch/dominican_republic_api.jsonl contains new errors"
    exit 1
fi

/home/incremental/.cargo/bin/ocdscardinal indicators \\
    -s /home/incremental/bi/settings/dominican_republic_api.ini \\
    --map \\
    /home/incremental/bi/scratch/dominican_republic_api.out.jsonl \\
    > /home/incremental/bi/scratch/dominican_republic_api.json

# This appends to the CSV file, to keep flags consistent over time. Delete it manually if results are incorrect.
/home/incremental/bin/manage.py json-to-csv -q /home/incremental/bi/scratch/dominican_republic_api.json /home/incremental/bi/scratch/dominican_republic_api.csv

psql -U kingfisher_collect -h localhost -q \\
    -c "BEGIN" \\
    -c "DROP TABLE IF EXISTS dominican_republic_api_clean" \\
    -c "CREATE TABLE dominican_republic_api_clean (data jsonb)" \\
    -c "\\copy dominican_republic_api_clean (data) FROM stdin CSV QUOTE e'\\x01' DELIMITER e'\\x02'" \\
    -c "CREATE INDEX idx_dominican_republic_api_clean ON dominican_republic_api_clean (cast(data->>'date' as text))" \\
    -c "END" \\
    < /home/incremental/bi/scratch/dominican_republic_api.out.jsonl

psql -U kingfisher_collect -h localhost -q \\
    -c "BEGIN" \\
    -c "DROP TABLE IF EXISTS dominican_republic_api_result" \\
    -f /home/incremental/bi/sql/dominican_republic_api_result.sql \\
    -c "\\copy dominican_republic_api_result (ocid, subject, code, result, buyer_id, procuring_entity_id, tenderer_id, created_at) FROM stdin DELIMITER ',' CSV HEADER" \\
    -c "END" \\
    < /home/incremental/bi/scratch/dominican_republic_api.csv
`;
const SALT_MNL_SH = `#!/bin/sh
# shellcheck disable=SC1083

set -eu

cd /home/incremental/kingfisher-collect

env http_proxy=http://ocp19.open-contracting.org:8888 https_proxy=http://ocp19.open-contracting.org:8888 no_proxy=localhost,sentry.io,standard.open-contracting.org .ve/bin/scrapy crawl \\
    mexico_nuevo_leon -a compile_releases=true \\
    -a crawl_time=2025-05-05T00:00:00 \\
    -s FILES_STORE=/home/incremental/data \\
    -s DATABASE_URL=postgresql://kingfisher_collect@localhost:5432/kingfisher_collect \\
    -s PROXY_SPIDERS= \\
    -s SENTRY_DSN=https://public@sentry.example.invalid/1 \\
    --logfile="/home/incremental/logs/mexico_nuevo_leon-$(date +%F).log"

# shellcheck disable=all
`;
// salt/kingfisher/collect/files/sql/result.sql rendered with spider dominican_republic_api and users [dgcp].
const SALT_DR_RESULT_SQL = `CREATE TABLE IF NOT EXISTS dominican_republic_api_result (
    id serial PRIMARY KEY, -- an auto-incrementing ID that has no semantics
    ocid text, -- matches /ocid in the compiled release JSON
    -- the indicator's scope, one of OCID, Buyer, ProcuringEntity, Tenderer
    subject text,
    code text, -- the indicator's code
    result numeric, -- an individual indicator result
    buyer_id text, -- matches /buyer/id in the JSON
    procuring_entity_id text, -- matches /tender/procuringEntity/id in the JSON
    tenderer_id text, -- matches /bids/details[]/tenderers[]/id in the JSON
    created_at timestamp without time zone -- the time when this row was added
);
    GRANT SELECT ON dominican_republic_api_result TO dgcp;
`;

/** The program's file resources: path -> mode and content (a secret content's hash line removed). */
function programFiles(resources: Registered[]): Record<string, { mode: string; content: string; secret: boolean }> {
    const out: Record<string, { mode: string; content: string; secret: boolean }> = {};
    for (const r of resources.filter((r) => r.name.startsWith("data-support-crawls-") && /mv "\$tmp" /.test(r.inputs.create ?? ""))) {
        const [, mode] = /chmod (\d+) "\$tmp"/.exec(r.inputs.create)!;
        const [, file] = /mv "\$tmp" (\S+);/.exec(r.inputs.create)!;
        const secret = r.secretInputs.includes("stdin");
        out[file] = { mode, content: secret ? r.inputs.stdin.slice(r.inputs.stdin.indexOf("\n") + 1) : r.inputs.stdin, secret };
    }
    return out;
}

test("crawl files: the program writes Salt's files, at Salt's paths, byte for byte; the script's content is a secret", async () => {
    const run = await runProgram(rawConfig());
    const files = programFiles(run.resources);
    // incremental.sls: bin/<spider>.sh (mode 755) per crawl; with cardinal, bi/settings/<spider>.ini
    // and bi/sql/<spider>_result.sql (file.managed without mode: 644 under Salt's umask 022).
    assert.deepEqual(Object.keys(files).sort(), [
        "/home/incremental/bi/settings/dominican_republic_api.ini",
        "/home/incremental/bi/sql/dominican_republic_api_result.sql",
        "/home/incremental/bin/dominican_republic_api.sh",
        "/home/incremental/bin/mexico_nuevo_leon.sh",
    ]);
    assert.deepEqual(files["/home/incremental/bin/dominican_republic_api.sh"], { mode: "0755", content: SALT_DR_SH, secret: true });
    assert.deepEqual(files["/home/incremental/bin/mexico_nuevo_leon.sh"], { mode: "0755", content: SALT_MNL_SH, secret: true });
    assert.deepEqual(files["/home/incremental/bi/settings/dominican_republic_api.ini"], { mode: "0644", content: INI, secret: false });
    assert.deepEqual(files["/home/incremental/bi/sql/dominican_republic_api_result.sql"], { mode: "0644", content: SALT_DR_RESULT_SQL, secret: false });
    // The DSN is in the scripts (Salt's are so), and in no command text.
    for (const r of run.resources) for (const f of ["create", "update", "delete"]) assert.ok(!String(r.inputs[f] ?? "").includes(DSN), `${r.name}.${f}`);
});

test("crawl facts: environment, arguments, log file, cardinal steps and tables, as Salt's script runs them", () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "salt-eq-"));
    try {
        // Recording stand-ins: scrapy, psql (on PATH), ocdscardinal and manage.py where the script
        // calls them. Each call: program, argv, the proxy environment; prepare leaves an empty
        // error file (the script goes on), it and manage.py their output files.
        const recorder = `#!/usr/bin/env python3
import json, os, sys
a = sys.argv[1:]
with open(${JSON.stringify(path.join(home, "calls.jsonl"))}, "a") as f:
    f.write(json.dumps({"prog": os.path.basename(sys.argv[0]), "argv": a, "env": [os.environ.get(k) for k in ("http_proxy", "https_proxy", "no_proxy")]}) + "\\n")
if a[:1] == ["prepare"]:
    open(a[a.index("-e") + 1], "w").close()
    open(a[a.index("-o") + 1], "w").close()
if a[:1] == ["json-to-csv"]:
    open(a[-1], "a").close()
`;
        for (const bin of ["kingfisher-collect/.ve/bin/scrapy", "path/psql", ".cargo/bin/ocdscardinal", "bin/manage.py"]) {
            fs.mkdirSync(path.dirname(path.join(home, bin)), { recursive: true });
            fs.writeFileSync(path.join(home, bin), recorder, { mode: 0o755 });
        }
        const crawl = config().incremental.crawls[0];
        fs.writeFileSync(path.join(home, "crawl.sh"), renderCrawlScript(crawl, { home, database: "kingfisher_collect", proxyUrl: "http://ocp19.open-contracting.org:8888", sentryDsn: DSN }));
        fs.mkdirSync(path.join(home, "bi", "scratch"), { recursive: true });
        execFileSync("sh", [path.join(home, "crawl.sh")], { env: { PATH: `${path.join(home, "path")}:/usr/bin:/bin` } });
        const calls = fs.readFileSync(path.join(home, "calls.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
        const day = new Date().toISOString().slice(0, 10);
        const s = `${home}/bi/scratch/dominican_republic_api`;
        const proxy = ["http://ocp19.open-contracting.org:8888", "http://ocp19.open-contracting.org:8888", "localhost,sentry.io,standard.open-contracting.org"];
        const none = [null, null, null];
        assert.deepEqual(calls, [
            {
                prog: "scrapy",
                argv: [
                    "crawl", "dominican_republic_api",
                    "-a", "compile_releases=true", "-a", "force_version=1.1", "-a", "ignore_version=true",
                    "-a", "crawl_time=2023-07-13T00:00:00",
                    "-s", `FILES_STORE=${home}/data`,
                    "-s", "DATABASE_URL=postgresql://kingfisher_collect@localhost:5432/kingfisher_collect",
                    "-s", "PROXY_SPIDERS=",
                    "-s", "SENTRY_DSN=https://public@sentry.example.invalid/1",
                    `--logfile=${home}/logs/dominican_republic_api-${day}.log`,
                ],
                env: proxy,
            },
            { prog: "psql", argv: ["-U", "kingfisher_collect", "-h", "localhost", "-t", "-c", "SELECT data FROM dominican_republic_api", "-o", `${s}.jsonl`], env: none },
            { prog: "ocdscardinal", argv: ["prepare", "-s", `${home}/bi/settings/dominican_republic_api.ini`, "-o", `${s}.out.jsonl`, "-e", `${s}.err.csv`, `${s}.jsonl`], env: none },
            { prog: "ocdscardinal", argv: ["indicators", "-s", `${home}/bi/settings/dominican_republic_api.ini`, "--map", `${s}.out.jsonl`], env: none },
            { prog: "manage.py", argv: ["json-to-csv", "-q", `${s}.json`, `${s}.csv`], env: none },
            {
                prog: "psql",
                argv: [
                    "-U", "kingfisher_collect", "-h", "localhost", "-q",
                    "-c", "BEGIN",
                    "-c", "DROP TABLE IF EXISTS dominican_republic_api_clean",
                    "-c", "CREATE TABLE dominican_republic_api_clean (data jsonb)",
                    "-c", "\\copy dominican_republic_api_clean (data) FROM stdin CSV QUOTE e'\\x01' DELIMITER e'\\x02'",
                    "-c", "CREATE INDEX idx_dominican_republic_api_clean ON dominican_republic_api_clean (cast(data->>'date' as text))",
                    "-c", "END",
                ],
                env: none,
            },
            {
                prog: "psql",
                argv: [
                    "-U", "kingfisher_collect", "-h", "localhost", "-q",
                    "-c", "BEGIN",
                    "-c", "DROP TABLE IF EXISTS dominican_republic_api_result",
                    "-f", `${home}/bi/sql/dominican_republic_api_result.sql`,
                    "-c", "\\copy dominican_republic_api_result (ocid, subject, code, result, buyer_id, procuring_entity_id, tenderer_id, created_at) FROM stdin DELIMITER ',' CSV HEADER",
                    "-c", "END",
                ],
                env: none,
            },
        ]);
    } finally {
        fs.rmSync(home, { recursive: true });
    }
});

test("grants: users get SELECT on <spider>_result only, as result.sql grants it; nothing for a crawl without cardinal", async () => {
    const run = await runProgram(rawConfig());
    // The command text as the shell reads it: '\'' inside a quoted word is one quote.
    const access = (id: string) => (run.resources.find((r) => r.name === `data-support-crawls-${id}-read-access`)!.inputs.create as string).replaceAll("'\\''", "'");
    // The grant statement of each read-access step, written out: the tables and roles it names.
    const grants = (text: string) => [...text.matchAll(/format\('GRANT SELECT ON %I TO %I'.*?unnest\(ARRAY\[(.*?)\]::text\[\]\).*?c\.relname IN \((.*?)\)/g)].map((m) => ({ roles: m[1], tables: m[2] }));
    assert.deepEqual(grants(access("dominican_republic")), [{ roles: "'dgcp'", tables: "'dominican_republic_api_result'" }]);
    assert.deepEqual(grants(access("mexico_nuevo_leon")), [{ roles: "", tables: "'mexico_nuevo_leon_result'" }]);
    // No other GRANT anywhere in the crawls' files but result.sql's.
    const files = programFiles(run.resources);
    const grantLines = Object.values(files).flatMap((f) => f.content.split("\n").filter((l) => /GRANT/i.test(l)));
    assert.deepEqual(grantLines, ["    GRANT SELECT ON dominican_republic_api_result TO dgcp;"]);
});

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
    const monthly = parseStackConfig({ ...mainConfig(), incremental: { ...mainConfig().incremental, crawls: [{ ...PILLAR_CRAWLS[1], day: 1 }] } }) as MainConfig;
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
