// The Salt pillar fragments (stack output `pillar`) are rendered from the same config as the
// servers' state: read back, they give that config again.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import YAML from "yaml";
import { parseStackConfig, type MainConfig } from "../../components/config";
import { mainConfig, withReplica } from "../support/fixtures";
import { runProgram } from "../../tools/program";

const HOSTILE_ARGS = { compile_releases: "true", note: `it's "quoted" $(x) ; y` };

async function pillarOf(config: Record<string, any>) {
    const run = await runProgram(config);
    return run.outputs.pillar as { tinyproxy: string; crawls: string; replica: string };
}

test("tinyproxy: the allow list in order, each address under a comment naming its host", async () => {
    const { tinyproxy } = await pillarOf(mainConfig());
    // Salt's template writes each entry as it is, and tinyproxy 1.11 reads a bare IPv6 address as
    // admitting every IPv6 client: IPv6 entries carry /128.
    assert.equal(
        tinyproxy,
        `tinyproxy:
  allow:
    # ocp23.open-contracting.org (data support main)
    - 198.51.100.23
    # ocp23.open-contracting.org (data support main)
    - 2001:db8:d5::23/128
    # ocp10 (collect)
    - 198.51.100.10
`,
    );
});

test("crawls: the fixture's crawls as the pillar text Salt reads", async () => {
    const { crawls } = await pillarOf(mainConfig());
    assert.equal(
        crawls,
        `python_apps:
  kingfisher_collect:
    crawls:
      - identifier: DOMINICAN_REPUBLIC
        spider: dominican_republic_api
        crawl_time: 2025-05-06
        spider_arguments: -a compile_releases=true
        users:
          - dgcp
      - identifier: ECUADOR
        spider: ecuador_sercop_bulk
        crawl_time: 2025-01-01
        day: 1
`,
    );
});

test("crawls: python_apps.kingfisher_collect.crawls read back through the config gives the same crawls", async () => {
    const config = mainConfig();
    config.incremental.crawls[0].spider_arguments = HOSTILE_ARGS;
    config.incremental.crawls[0].settings = { CLOSESPIDER_ITEMCOUNT: "10" };
    config.incremental.crawls[1].cardinal = true;
    config.incremental.crawls[1].cardinal_settings = "[defaults]\ncurrency = USD\n";
    config.incremental.crawls[1].proxy = true;
    config.incremental.crawls[1].users = ["bi", "dgcp"];
    const cfg = parseStackConfig(config) as MainConfig;
    const { crawls } = await pillarOf(config);
    const fromPillar = YAML.parse(crawls).python_apps.kingfisher_collect.crawls;
    // The pillar's string form of spider_arguments (`-a k=v`, shell-quoted) goes
    // through Salt's template into a shell; here, parsed back by a shell, it gives the same pairs.
    const pairs = (text: string | undefined) =>
        text === undefined
            ? {}
            : Object.fromEntries(
                  execFileSync("sh", ["-c", `set -- ${text}; for a; do printf '%s\\0' "$a"; done`])
                      .toString()
                      .split("\0")
                      .filter((_: string, i: number) => i % 2 === 1)
                      .map((p: string) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
              );
    assert.equal(fromPillar.length, cfg.incremental.crawls.length);
    fromPillar.forEach((entry: any, i: number) => {
        const crawl = cfg.incremental.crawls[i];
        assert.equal(entry.identifier, crawl.identifier);
        assert.equal(entry.spider, crawl.spider);
        assert.equal(entry.crawl_time, crawl.crawl_time);
        assert.deepEqual(pairs(entry.spider_arguments), crawl.spider_arguments);
        // settings: a mapping, as the deploy repository's later template iterates it.
        assert.deepEqual(entry.settings ?? {}, crawl.settings);
        assert.equal(entry.cardinal ?? false, crawl.cardinal);
        assert.deepEqual(entry.users ?? [], crawl.users);
        assert.equal(entry.day, crawl.day);
        // cron.sh tests `'proxy' in crawl`: the key is there exactly when the crawl goes through the proxy.
        assert.equal("proxy" in entry, crawl.proxy);
    });
    assert.equal(fromPillar[1].proxy, true);
});

test("replica: its addresses for the main's pg_hba, and no key Salt never had; none without a replica", async () => {
    const withOne = YAML.parse((await pillarOf(withReplica(mainConfig()))).replica);
    assert.deepEqual(withOne, { postgres: { replica_ipv4: ["198.51.100.24"], replica_ipv6: ["2001:db8:d5::24"] } });
    assert.deepEqual(YAML.parse((await pillarOf(mainConfig())).replica), { postgres: { replica_ipv4: [], replica_ipv6: [] } });
});

test("replica without IPv6: its IPv4 address alone, and an empty IPv6 list", async () => {
    const config = withReplica(mainConfig());
    delete config.servers.replica.ipv6;
    assert.deepEqual(YAML.parse((await pillarOf(config)).replica), { postgres: { replica_ipv4: ["198.51.100.24"], replica_ipv6: [] } });
});

test("crawls: a long spider_arguments value stays on one line (Salt's template pastes the line as it is)", async () => {
    const config = mainConfig();
    const note = "n".repeat(120);
    config.incremental.crawls[0].spider_arguments = { compile_releases: "true", note };
    const { crawls } = await pillarOf(config);
    assert.ok(crawls.split("\n").includes(`        spider_arguments: -a compile_releases=true -a note=${note}`), crawls);
});
