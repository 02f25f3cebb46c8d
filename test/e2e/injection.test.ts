// Injection on the test hosts (issue 9): the config fields that accept hostile values (see
// test/unit/injection.test.ts) carry every payload at once through a real `pulumi up`; each arrives
// verbatim where it is used, and the canary file an injected command would create never appears.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { down, pointName, type HostName, up, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig } from "../support/harness";
import { CANARY_FILE, PAYLOADS } from "../support/hostile";
import { sh } from "../support/hosts";

let tb: Testbed;
const HOME = "/home/incremental";
// Comments are one line without '#': validation rejects the rest (counted in the unit test).
const COMMENTS = PAYLOADS.filter((p) => !/[\n#]/.test(p));
const ARGS = Object.fromEntries(PAYLOADS.map((p, i) => [`p${i}`, p.replace(/\n/g, " ")]));
const SETTINGS = Object.fromEntries(PAYLOADS.map((p, i) => [`HOSTILE_${i}`, p.replace(/\n/g, " ")]));
const CARDINAL = PAYLOADS.join("\n") + "\n";


before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    const cfg = testbedConfig(tb, {
        tinyproxy: { port: 8888, checkUrl: tb.web.url, keep: COMMENTS.map((comment, i) => ({ address: `203.0.113.${i + 1}`, comment })) },
    });
    cfg.incremental = {
        ...cfg.incremental,
        crawls: [
            { identifier: "HOSTILE", spider: "hostile_api", crawl_time: "2025-05-06", spider_arguments: ARGS, settings: SETTINGS },
            { identifier: "CARDINAL", spider: "cardinal_api", crawl_time: "2025-05-06", cardinal: true, cardinal_settings: CARDINAL },
        ],
    };
    assertApplied(new Harness(tb).apply(cfg));
});

after(async () => {
    await down();
});

test("tinyproxy.keep comments arrive verbatim in tinyproxy.conf", async (t) => {
    const conf = await sh("docs", "cat /etc/tinyproxy/tinyproxy.conf");
    COMMENTS.forEach((comment, i) => assert.ok(conf.includes(`# ${comment}\nAllow 203.0.113.${i + 1}\n`), comment));
    t.diagnostic(`injection: ${COMMENTS.length} hostile comments arrived verbatim`);
});

test("spider arguments and settings arrive verbatim in scrapy's argument vector", async (t) => {
    await sh("new", `: > ${HOME}/scrapy-standin.log; ${HOME}/bin/hostile_api.sh`, { user: "incremental" });
    const argv: string[] = JSON.parse((await sh("new", `cat ${HOME}/scrapy-standin.log`)).trim()).argv;
    for (const [k, v] of Object.entries(ARGS)) assert.ok(argv.includes(`${k}=${v}`), `${k}=${v}`);
    for (const [k, v] of Object.entries(SETTINGS)) assert.ok(argv.includes(`${k}=${v}`), `${k}=${v}`);
    t.diagnostic(`injection: ${Object.keys(ARGS).length + Object.keys(SETTINGS).length} hostile arguments and settings arrived verbatim`);
});

test("cardinal settings arrive verbatim in the settings file", async () => {
    // As it is, as Salt copies its file: no header.
    assert.equal(await sh("new", `cat ${HOME}/bi/settings/cardinal_api.ini`), CARDINAL);
});

test("no injected command ran: the canary file exists on no host", async () => {
    for (const host of ["operator", "old", "new", "docs", "replica", "outsider"] as HostName[]) {
        assert.equal(await sh(host, `test -e ${CANARY_FILE} && echo FOUND || echo absent`), "absent\n", host);
    }
});
