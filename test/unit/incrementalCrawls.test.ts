// IncrementalCrawls' own rules, written out: which tables a crawl's users may read, the script of
// a crawl without spider arguments (Salt's `{% if 'spider_arguments' in crawl %}`), the check a
// crawl script passes before it replaces the old one, and the guards (the DSN, the bare words). The
// files as Salt renders them: saltEquivalence.test.ts; the read access where it runs:
// test/sandbox/readAccess.test.ts.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { parseStackConfig, type Crawl, type MainConfig } from "../../components/config";
import { grantedTables, IncrementalCrawls, renderCrawlScript } from "../../components/runbook/incremental-updates/incrementalCrawls";
import type { Host } from "../../components/machinery/host";
import { mainConfig } from "../support/fixtures";
import { runProgram } from "../../tools/program";

/** The fixture's crawls as the config parses them: DOMINICAN_REPUBLIC (users dgcp, no cardinal) and ECUADOR. */
function crawls(cfg = mainConfig()): Crawl[] {
    return (parseStackConfig(cfg) as MainConfig).incremental.crawls;
}

/** What mainServer.ts gives renderCrawlScript for the fixture's stack (the test hosts' DSN). */
const SCRIPT_ARGS = { home: "/home/incremental", database: "kingfisher_collect", proxyUrl: "http://ocp19.open-contracting.org:8888", sentryDsn: "https://public@sentry.example.invalid/1" };

function cardinalConfig() {
    const cfg = mainConfig();
    cfg.incremental.crawls[0] = { ...cfg.incremental.crawls[0], cardinal: true, cardinal_settings: "[defaults]\n" };
    return cfg;
}

test("grantedTables: a cardinal crawl's users read <spider>_result; without cardinal, nothing", () => {
    assert.deepEqual(grantedTables(crawls()[0]), []);
    assert.deepEqual(grantedTables(crawls(cardinalConfig())[0]), ["dominican_republic_api_result"]);
});

test("a crawl without spider arguments: the spider alone on its line, as Salt's cron.sh renders it", () => {
    const ecuador = crawls()[1];
    assert.equal(
        renderCrawlScript(ecuador, SCRIPT_ARGS),
        `#!/bin/sh
# shellcheck disable=SC1083

set -eu

cd /home/incremental/kingfisher-collect

env http_proxy=http://ocp19.open-contracting.org:8888 https_proxy=http://ocp19.open-contracting.org:8888 no_proxy=localhost,sentry.io,standard.open-contracting.org .ve/bin/scrapy crawl \\
    ecuador_sercop_bulk \\
    -a crawl_time=2025-01-01T00:00:00 \\
    -s FILES_STORE=/home/incremental/data \\
    -s DATABASE_URL=postgresql://kingfisher_collect@localhost:5432/kingfisher_collect \\
    -s PROXY_SPIDERS= \\
    -s SENTRY_DSN=https://public@sentry.example.invalid/1 \\
    --logfile="/home/incremental/logs/ecuador_sercop_bulk-$(date +%F).log"

# shellcheck disable=all
`,
    );
});

test("a crawl script is checked with sh -n before it replaces the old one; cardinal's settings and SQL are not shell", async () => {
    const run = await runProgram(cardinalConfig());
    const checked = (name: string) => (run.resources.find((r) => r.name === name)!.inputs.create as string).includes('sh -n "$tmp"');
    assert.deepEqual(
        ["dominican_republic", "ecuador", "dominican_republic-cardinal-settings", "dominican_republic-cardinal-result-sql"].map((id) => [id, checked(`data-support-crawls-${id}`)]),
        [
            ["dominican_republic", true],
            ["ecuador", true],
            ["dominican_republic-cardinal-settings", false],
            ["dominican_republic-cardinal-result-sql", false],
        ],
    );
});

test("crawls without a Sentry DSN: the component refuses them (config.ts says so first, naming the key)", async () => {
    await pulumi.runtime.setMocks({ newResource: (r) => ({ id: `${r.name}-id`, state: r.inputs }), call: () => ({}) }, "data-support", "main", false);
    const args = {
        ...SCRIPT_ARGS,
        sentryDsn: undefined,
        // Not reached: the guard comes before any command.
        newMain: undefined as unknown as Host,
        user: "incremental",
        crawls: crawls(),
        after: [],
    };
    assert.throws(() => new IncrementalCrawls("data-support-crawls", args), { message: "incremental.sentryDsn is required with crawls (config.ts checks it)" });
});

test("a home, spider or database that is not a plain shell word: the script is refused (it writes them bare, as Salt does)", () => {
    const [dominicanRepublic] = crawls();
    // config.ts lets none of these through; the guard keeps a later config change from making the bare paths unsafe.
    assert.throws(() => renderCrawlScript(dominicanRepublic, { ...SCRIPT_ARGS, home: "/home/in cremental" }), { message: "not a plain shell word: /home/in cremental" });
    assert.throws(() => renderCrawlScript({ ...dominicanRepublic, spider: "dr;reboot" }, SCRIPT_ARGS), { message: "not a plain shell word: dr;reboot" });
    assert.throws(() => renderCrawlScript(dominicanRepublic, { ...SCRIPT_ARGS, database: "kingfisher$collect" }), { message: "not a plain shell word: kingfisher$collect" });
});
