import { test } from "node:test";
import * as assert from "node:assert/strict";
import { ConfigError, parseStackConfig } from "../../components/config";
import { mainConfig } from "../support/fixtures";
import { runProgram, type Registered } from "../support/program";

function set(config: Record<string, any>, path: string, value: unknown): Record<string, any> {
    const copy = structuredClone(config);
    const parts = path.split(".");
    let node: any = copy;
    for (const part of parts.slice(0, -1)) node = node[/^\d+$/.test(part) ? Number(part) : part];
    const last = parts[parts.length - 1];
    if (value === undefined) delete node[last];
    else node[/^\d+$/.test(last) ? Number(last) : last] = value;
    return copy;
}

// [description, config path to break, bad value, the key the message must name]
const INVALID: [string, string, unknown, string][] = [
    ["unknown role", "role", "primary", "data-support:role"],
    ["old main hostname with upper case", "servers.oldMain.hostname", "OCP04.example", "data-support:servers.oldMain.hostname"],
    ["new main missing", "servers.newMain", undefined, "data-support:servers.newMain"],
    ["IPv4 that is not one", "servers.newMain.ipv4", "198.51.100.300", "data-support:servers.newMain.ipv4"],
    ["IPv6 that is not one", "servers.docs.ipv6", "2001:db8::zz", "data-support:servers.docs.ipv6"],
    ["SSH port out of range", "servers.oldMain.ssh.port", 70000, "data-support:servers.oldMain.ssh.port"],
    ["SSH user with a space", "servers.oldMain.ssh.user", "ro ot", "data-support:servers.oldMain.ssh.user"],
    ["host key that is not one", "servers.newMain.ssh.hostKey", "AAAA; rm -rf /", "data-support:servers.newMain.ssh.hostKey"],
    ["tinyproxy keep address invalid", "tinyproxy.keep.0.address", "10.0.0.999", "data-support:tinyproxy.keep[0].address"],
    ["tinyproxy keep comment with newline", "tinyproxy.keep.0.comment", "a\nAllow 0.0.0.0/0", "data-support:tinyproxy.keep[0].comment"],
    ["tinyproxy port zero", "tinyproxy.port", 0, "data-support:tinyproxy.port"],
    ["crawl identifier lower case", "incremental.crawls.0.identifier", "dominican", "data-support:incremental.crawls[0].identifier"],
    ["crawl identifier duplicated", "incremental.crawls.1.identifier", "DOMINICAN_REPUBLIC", "data-support:incremental.crawls[1].identifier"],
    ["spider not snake case", "incremental.crawls.0.spider", "Dominican-Api", "data-support:incremental.crawls[0].spider"],
    ["crawl_time not a real date", "incremental.crawls.0.crawl_time", "2025-02-30", "data-support:incremental.crawls[0].crawl_time"],
    ["crawl_time with a shell payload", "incremental.crawls.0.crawl_time", "2025-01-01$(id)", "data-support:incremental.crawls[0].crawl_time"],
    ["spider_arguments as raw shell", "incremental.crawls.0.spider_arguments", "-a x=1; rm -rf /", "data-support:incremental.crawls[0].spider_arguments"],
    ["spider_arguments key with a dash", "incremental.crawls.0.spider_arguments", "-a from-date=2020", "data-support:incremental.crawls[0].spider_arguments"],
    ["settings key lower case", "incremental.crawls.0.settings", { closespider: "1" }, "data-support:incremental.crawls[0].settings"],
    ["users with an invalid role", "incremental.crawls.0.users", ["dgcp", "Robert'); DROP"], "data-support:incremental.crawls[0].users[1]"],
    ["day 29", "incremental.crawls.1.day", 29, "data-support:incremental.crawls[1].day"],
    ["day zero", "incremental.crawls.1.day", 0, "data-support:incremental.crawls[1].day"],
    ["cardinal not a boolean", "incremental.crawls.0.cardinal", "yes", "data-support:incremental.crawls[0].cardinal"],
    ["docker uid negative", "docker", { uid: -1 }, "data-support:docker.uid"],
    ["docker apps missing the exchange-rates app", "docker", { apps: ["kingfisher-process", "pelican-frontend"] }, "data-support:docker.apps"],
    ["scrapyd password missing", "gates.scrapyd.password", undefined, "data-support:gates.scrapyd.password"],
    ["rabbitmq URL not http", "gates.rabbitmq.url", "ftp://rabbit.example", "data-support:gates.rabbitmq.url"],
    ["collect hostname with a slash", "gates.collectHostname", "collect.example/jobs", "data-support:gates.collectHostname"],
    ["public PostgreSQL hostname missing", "postgres.publicHostname", undefined, "data-support:postgres.publicHostname"],
    ["private key that is not one", "ssh", { privateKey: "hunter2" }, "data-support:ssh.privateKey"],
    ["paths relative", "paths", { stateDir: "var/lib/x" }, "data-support:paths.stateDir"],
    ["migration id with a space", "migrationId", "ocp04 to ocp23", "data-support:migrationId"],
    ["unknown top-level key", "tinyproxi", { port: 1 }, "data-support:tinyproxi"],
    ["unknown nested key", "servers.oldMain.hostnme", "x", "data-support:servers.oldMain"],
    ["two servers with one hostname", "servers.docs.hostname", "ocp23.open-contracting.org", "data-support:servers"],
];

for (const [what, path, value, key] of INVALID) {
    test(`invalid config is rejected with its key: ${what}`, () => {
        const config = set(mainConfig(), path, value);
        assert.throws(
            () => parseStackConfig(config),
            (error: unknown) => {
                assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
                assert.ok(error.message.includes(key), `message should name ${key}:\n${error.message}`);
                return true;
            },
        );
    });
}

test("every problem is listed in one error", () => {
    const config = set(set(mainConfig(), "tinyproxy.port", 0), "incremental.crawls.1.day", 31);
    assert.throws(() => parseStackConfig(config), (error: ConfigError) => {
        assert.equal(error.problems.length, 2, error.message);
        return true;
    });
});

test("the example config is valid and fills in production defaults", () => {
    const cfg = parseStackConfig(mainConfig());
    assert.equal(cfg.role, "main");
    if (cfg.role !== "main") return;
    assert.equal(cfg.docker.user, "deployer");
    assert.equal(cfg.docker.uid, 1005);
    assert.deepEqual(cfg.docker.apps, ["kingfisher-process", "pelican-backend", "pelican-frontend"]);
    assert.equal(cfg.incremental.home, "/home/incremental");
    assert.deepEqual(cfg.incremental.crawls[0].spider_arguments, { compile_releases: "true" });
    assert.equal(cfg.paths.postgresBackupsCron, "/etc/cron.d/postgres_backups");
});

test("bad config fails the program before any resource is registered", async () => {
    const registered: Registered[] = [];
    await assert.rejects(
        runProgram(set(mainConfig(), "incremental.crawls.0.crawl_time", "yesterday"), { record: registered }),
        (error: Error) => error.message.includes("data-support:incremental.crawls[0].crawl_time"),
    );
    assert.equal(registered.length, 0);
});
