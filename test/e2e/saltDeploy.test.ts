// Salt equivalence on the test hosts (issue 15, deliverable 5): the new server is deployed by Salt
// with the pillar of the runbook's commit (test/hosts/provision.sh renders its crawl files). Then
// `pulumi up` with that pillar's crawls finds Salt's files as they are (no byte differs, none is
// rewritten); a Salt deploy of the pillar fragment the program outputs changes nothing; a second
// `pulumi up` after it changes nothing. And the crawl runs as Salt's: environment, arguments, log
// file, cardinal steps, the result table loaded, `users` reading <spider>_result only.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import YAML from "yaml";
import { down, pointName, up, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig, type ApplyResult } from "../support/harness";
import { psql, sh } from "../support/hosts";

let tb: Testbed;
let harness: Harness;
let first: ApplyResult;
let salt: string;

const HOME = "/home/incremental";
// salt/kingfisher/collect/files/cardinal/dominican_republic_api.ini as the test hosts hold it
// (provision.sh: its first settings): the deploy repository's file, which cardinal_settings equals.
const INI = "no_price_comparison_procurement_methods = Sorteo de Obras\n\n[defaults]\ncurrency = DOP\nitem_classification_scheme = UNSPSC\nbid_status = valid\nparty_roles = true\n";
// pillar/kingfisher_main.sls at afaedf6b, as the stack config holds it (Pulumi.main.yaml).
const CRAWLS = [
    { identifier: "DOMINICAN_REPUBLIC", spider: "dominican_republic_api", crawl_time: "2023-07-13", spider_arguments: "-a compile_releases=true -a force_version=1.1 -a ignore_version=true", cardinal: true, cardinal_settings: INI, users: ["dgcp"] },
    { identifier: "MEXICO_NUEVO_LEON", spider: "mexico_nuevo_leon", crawl_time: "2025-05-05", spider_arguments: "-a compile_releases=true" },
];
// Every file of the crawls, as Salt placed them (incremental.sls).
const FILES = [
    `${HOME}/bi/settings/dominican_republic_api.ini`,
    `${HOME}/bi/sql/dominican_republic_api_result.sql`,
    `${HOME}/bin/dominican_republic_api.sh`,
    `${HOME}/bin/mexico_nuevo_leon.sh`,
];
const config = () => {
    const cfg = testbedConfig(tb);
    cfg.incremental = { ...cfg.incremental, crawls: CRAWLS };
    return cfg;
};
/** Each file's inode, mtime, mode, owner and sha256, and the crontab: what a rewrite would change. */
const state = async () =>
    (await sh("new", `stat -c '%n %i %Y %a %U' ${FILES.join(" ")}; sha256sum ${FILES.join(" ")}; crontab -l -u incremental`));
const acted = (r: ApplyResult) => r.steps.filter((s) => s.action !== "same").map((s) => `${s.action} ${s.name}`);
const pillarJson = (r: ApplyResult) =>
    JSON.stringify({ crawls: YAML.parse((r.outputs.pillar as { crawls: string }).crawls).python_apps.kingfisher_collect.crawls, cardinal_ini: { dominican_republic_api: INI } });
const saltDeploy = (r: ApplyResult) => sh("new", "bash /run/ds-testbed/bin/provision.sh salt-deploy-crawls 2>/dev/null", { input: pillarJson(r) });

before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    harness = new Harness(tb);
    salt = await state();
    first = assertApplied(harness.apply(config()));
});

after(async () => {
    await down();
});

test("pulumi up on the server Salt deployed: every crawl file is found as Salt wrote it, none rewritten", async () => {
    const files = first.steps.filter((s) => /^data-support-crawls-(dominican_republic|mexico_nuevo_leon)(-cardinal-settings|-cardinal-result-sql)?$/.test(s.name));
    assert.deepEqual(files.map((s) => s.stdout).sort(), FILES.map((f) => `${f}: unchanged`));
    // Same inodes, times, modes, owners, bytes; the crontab as Salt wrote it (the excluded-supplier
    // job, set aside for the copy, is back in its place after the crawls).
    assert.equal(await state(), salt);
});

test("a Salt deploy of the program's pillar fragment changes nothing: no file, no crontab entry", async () => {
    const before = await state();
    assert.equal(await saltDeploy(first), "");
    assert.equal(await state(), before);
});

test("the check above can fail: a Salt deploy of another pillar changes the script and its entry", async () => {
    const before = await state();
    const other = JSON.parse(pillarJson(first));
    other.crawls[1].day = 2;
    other.crawls[1].proxy = true;
    const out = await sh("new", "bash /run/ds-testbed/bin/provision.sh salt-deploy-crawls 2>/dev/null", { input: JSON.stringify(other) });
    assert.equal(out, `changed: ${HOME}/bin/mexico_nuevo_leon.sh\nchanged: crontab entry OCDS_KINGFISHER_COLLECT_MEXICO_NUEVO_LEON\n`);
    assert.match(await sh("new", `cat ${HOME}/bin/mexico_nuevo_leon.sh`), /-s PROXY_SPIDERS=mexico_nuevo_leon \\\n/);
    // Salt deploys the stack's fragment again: back to what the program wrote.
    assert.equal(await saltDeploy(first), `changed: ${HOME}/bin/mexico_nuevo_leon.sh\nchanged: crontab entry OCDS_KINGFISHER_COLLECT_MEXICO_NUEVO_LEON\n`);
    // Rewritten twice, so a new inode: the bytes and the crontab are as before.
    const content = (text: string) => text.split("\n").filter((l) => !l.startsWith(`${HOME}/bin/mexico_nuevo_leon.sh `));
    assert.deepEqual(content(await state()), content(before));
});

test("a second pulumi up after the Salt deploy changes nothing on the hosts", async () => {
    const before = await state();
    const second = assertApplied(harness.apply(config()));
    assert.deepEqual(acted(second), []);
    assert.equal(await state(), before);
});

test("the crawl runs as Salt's: proxy environment, arguments, log file, cardinal steps, result loaded, dgcp reads the result only", async () => {
    await sh("new", `: > ${HOME}/scrapy-standin.log; : > ${HOME}/ocdscardinal-standin.log; ${HOME}/bin/dominican_republic_api.sh`, { user: "incremental" });
    const [call] = (await sh("new", `cat ${HOME}/scrapy-standin.log`)).trim().split("\n").map((l) => JSON.parse(l));
    const day = (await sh("new", "date +%F")).trim();
    assert.deepEqual(call.argv, [
        "crawl", "dominican_republic_api",
        "-a", "compile_releases=true", "-a", "force_version=1.1", "-a", "ignore_version=true",
        "-a", "crawl_time=2023-07-13T00:00:00",
        "-s", `FILES_STORE=${HOME}/data`,
        "-s", "DATABASE_URL=postgresql://kingfisher_collect@localhost:5432/kingfisher_collect",
        "-s", "PROXY_SPIDERS=",
        "-s", "SENTRY_DSN=https://public@sentry.example.invalid/1",
        `--logfile=${HOME}/logs/dominican_republic_api-${day}.log`,
    ]);
    assert.equal(call.cwd, `${HOME}/kingfisher-collect`);
    assert.deepEqual([call.http_proxy, call.https_proxy, call.no_proxy], [
        "http://ocp19.open-contracting.org:8888",
        "http://ocp19.open-contracting.org:8888",
        "localhost,sentry.io,standard.open-contracting.org",
    ]);
    const cardinal = (await sh("new", `cat ${HOME}/ocdscardinal-standin.log`)).trim().split("\n").map((l) => JSON.parse(l).argv.slice(0, 3));
    assert.deepEqual(cardinal, [
        ["prepare", "-s", `${HOME}/bi/settings/dominican_republic_api.ini`],
        ["indicators", "-s", `${HOME}/bi/settings/dominican_republic_api.ini`],
    ]);
    assert.equal(JSON.parse((await sh("new", `tail -1 ${HOME}/manage-standin.log`)).trim()).argv.join(" "), `json-to-csv -q ${HOME}/bi/scratch/dominican_republic_api.json ${HOME}/bi/scratch/dominican_republic_api.csv`);
    // The copy brought the old server's 30 releases; the crawl added one: 31 in _clean, and one
    // R003 result each (the stand-ins' indicators) in _result, loaded from the CSV.
    const q = (sql: string) => sh("new", `${psql("kingfisher_collect")} -c "${sql}"`);
    assert.equal(await q("SELECT count(*) FROM dominican_republic_api_clean"), "31\n");
    assert.equal(await q("SELECT count(*), count(DISTINCT ocid), min(code), max(code) FROM dominican_republic_api_result"), "31|31|R003|R003\n");
    const canRead = (table: string) => q(`SELECT has_table_privilege('dgcp', '${table}', 'SELECT')`);
    assert.equal(await canRead("dominican_republic_api_result"), "t\n");
    assert.equal(await canRead("dominican_republic_api"), "f\n");
    assert.equal(await canRead("dominican_republic_api_clean"), "f\n");
});
