// Issue 16, deliverable 7: every accepted config value is valid wherever it ends up (shell text,
// crontab lines, file names, PostgreSQL identifiers, the pillar's YAML), and no setting or spider
// argument overrides what the crawl script sets itself. Bad values are written out below, each with
// the key its one error must name and what the message must say; then properties over generated
// values: whatever the schema accepts survives every destination it has.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import YAML from "yaml";
import { ConfigError, parseStackConfig, type MainConfig } from "../../components/config";
import { cronEntry, crawlPaths, renderCrawlScript } from "../../components/runbook/incremental-updates/incrementalCrawls";
import { SALT_LOADED_TABLES } from "../../components/runbook/copy-incremental-data/incrementalCopy";
import { crawlsPillar, tinyproxyPillar } from "../../components/pillar";
import { renderTinyproxyConf } from "../../components/runbook/dependencies/tinyproxyAllowlist";
import { mainConfig, withReplica } from "../support/fixtures";
import { problemsOf } from "../support/configProblems";
import { runProgram } from "../../tools/program";

const SEED = 20261201;

function set(config: Record<string, any>, path: string, value: unknown): Record<string, any> {
    const copy = structuredClone(config);
    const parts = path.split(".");
    let node: any = copy;
    for (const part of parts.slice(0, -1)) node = node[/^\d+$/.test(part) ? Number(part) : part];
    node[parts[parts.length - 1]] = value;
    return copy;
}

// PostgreSQL 15's reserved key words (pg_get_keywords(), catcode R and T), written out here from a
// PostgreSQL 15 server, not taken from config.ts.
const RESERVED = new Set(
    "all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation column concurrently constraint create cross current_catalog current_date current_role current_schema current_time current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign freeze from full grant group having ilike in initially inner intersect into is isnull join lateral leading left like limit localtime localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references returning right select session_user similar some symmetric table tablesample then to trailing true union unique user using variadic verbose when where window with".split(
        " ",
    ),
);

const REPLICA = {
    role: "replica",
    servers: { replica: { hostname: "ocp24.open-contracting.org", ipv4: "198.51.100.24" } },
    main: { hostname: "ocp23.open-contracting.org", ipv4: "198.51.100.23", password: "abc123", maxWorkerProcesses: 8 },
};

// [what, config path, bad value, the one problem: its key, then the text it must hold]
const BAD: [string, string, unknown, string][] = [
    // Settings the crawl script passes itself: scrapy takes the last -s of a name, so config would win.
    ["a setting DATABASE_URL", "incremental.crawls.0.settings", { DATABASE_URL: "postgresql://other@db/x" }, "data-support:incremental.crawls[0].settings: sets DATABASE_URL, which the crawl script sets itself"],
    ["a setting FILES_STORE, in the string form", "incremental.crawls.0.settings", "-s FILES_STORE=/tmp/elsewhere", "data-support:incremental.crawls[0].settings: sets FILES_STORE, which the crawl script sets itself"],
    ["a setting PROXY_SPIDERS", "incremental.crawls.0.settings", { PROXY_SPIDERS: "" }, "data-support:incremental.crawls[0].settings: sets PROXY_SPIDERS, which the crawl script sets itself"],
    ["a setting SENTRY_DSN", "incremental.crawls.1.settings", { SENTRY_DSN: "https://x@sentry.io/1" }, "data-support:incremental.crawls[1].settings: sets SENTRY_DSN, which the crawl script sets itself"],
    ["a setting LOG_FILE (the script's --logfile)", "incremental.crawls.0.settings", { LOG_FILE: "/dev/null" }, "data-support:incremental.crawls[0].settings: sets LOG_FILE, which the crawl script sets itself"],
    ["a spider argument crawl_time", "incremental.crawls.0.spider_arguments", { crawl_time: "2001-01-01T00:00:00" }, "data-support:incremental.crawls[0].spider_arguments: sets crawl_time, which the crawl script sets itself"],
    ["a spider argument crawl_time, in the string form", "incremental.crawls.0.spider_arguments", "-a compile_releases=true -a crawl_time=2001-01-01", "data-support:incremental.crawls[0].spider_arguments: sets crawl_time, which the crawl script sets itself"],
    // One-line values: they go into the pillar and, through Salt's template, into cron.sh.
    ["a setting value with a carriage return", "incremental.crawls.0.settings", { CLOSESPIDER_ITEMCOUNT: "10\r" }, "data-support:incremental.crawls[0].settings.CLOSESPIDER_ITEMCOUNT: must be one line"],
    ["a spider argument with a Unicode line separator", "incremental.crawls.0.spider_arguments", { from_date: "2020\u2028-01-01" }, "data-support:incremental.crawls[0].spider_arguments.from_date: must be one line"],
    // PostgreSQL identifiers left unquoted in SQL (the cardinal scripts, result.sql, DROP ROLE).
    ["a spider named like a reserved word", "incremental.crawls.0.spider", "order", "data-support:incremental.crawls[0].spider: is a word PostgreSQL reserves"],
    ["a spider too long for its index name", "incremental.crawls.0.spider", "a".repeat(54), "data-support:incremental.crawls[0].spider: must be at most 53 characters"],
    ["a spider named like a table Salt loads", "incremental.crawls.1.spider", "excluded_supplier", "data-support:incremental.crawls[1].spider: is the name of a table Salt loads"],
    ["a spider named like another crawl's cardinal table", "incremental.crawls.1.spider", "dominican_republic_api_clean", "data-support:incremental.crawls[1].spider: names a table or index of crawls[0]"],
    ["a reader role 'public' (a grant to everyone)", "incremental.crawls.0.users", ["public"], "data-support:incremental.crawls[0].users[0]: is a role name with a special meaning"],
    ["a reader role that is a reserved word", "incremental.crawls.0.users", ["dgcp", "user"], "data-support:incremental.crawls[0].users[1]: is a word PostgreSQL reserves"],
    ["a reader role pg_read_all_data", "incremental.crawls.0.users", ["pg_read_all_data"], "data-support:incremental.crawls[0].users[0]: is a role name with a special meaning"],
    ["a replication role 'all' (every user in pg_hba.conf)", "postgres.replication", { role: "all" }, "data-support:postgres.replication.role: is a word PostgreSQL reserves"],
    ["a replication role 'samerole' (a pg_hba.conf key word)", "postgres.replication", { role: "samerole" }, "data-support:postgres.replication.role: is a role name with a special meaning"],
    ["a database 'none'", "incremental", { database: "none" }, "data-support:incremental.database: is a role name with a special meaning"],
    // Paths: shell text, crontab lines, and edits that take the last part off.
    ["the home '/'", "incremental", { home: "/" }, "data-support:incremental.home: must name a file or directory below '/'"],
    ["a home with a trailing '/'", "incremental", { home: "/home/incremental/" }, "data-support:incremental.home: must name a file or directory below '/'"],
    ["a tinyproxy config path with '//'", "tinyproxy", { configPath: "/etc/tinyproxy//tinyproxy.conf" }, "data-support:tinyproxy.configPath: must name a file or directory below '/'"],
    ["a backups cron path with a '.' part", "paths", { postgresBackupsCron: "/etc/cron.d/./postgres_backups" }, "data-support:paths.postgresBackupsCron: must name a file or directory below '/'"],
    ["a state directory with a part longer than a file name", "paths", { stateDir: `/var/lib/${"d".repeat(256)}` }, "data-support:paths.stateDir: must be at most 1024 characters, each part at most 255"],
    ["an app name longer than 63", "docker", { apps: ["kingfisher-process", "pelican-backend", "pelican-frontend", `a${"b".repeat(63)}`] }, "data-support:docker.apps[3]: must be an app directory name (at most 63 characters)"],
    // Comments of tinyproxy.conf and the pillar's YAML comments.
    ["a tinyproxy comment with a vertical tab", "tinyproxy.keep.0.comment", "ocp10\u000bAllow 0.0.0.0/0", "data-support:tinyproxy.keep[0].comment: must be one line without '#' or control characters"],
    ["a RabbitMQ vhost with a newline", "gates.rabbitmq", { url: "https://rabbitmq.kingfisher.open-contracting.org", username: "admin", password: "x", vhost: "/\nkingfisher" }, "data-support:gates.rabbitmq.vhost: must be one line without control characters"],
];

for (const [what, path, value, expected] of BAD) {
    test(`rejected, naming its key and what to do: ${what}`, async () => {
        const config = set(mainConfig(), path, value);
        assert.deepEqual(problemsOf(config).filter((p) => !p.startsWith(expected)), [], "only the one problem");
        assert.equal(problemsOf(config).filter((p) => p.startsWith(expected)).length, 1, `one problem starting: ${expected}\n${problemsOf(config).join("\n")}`);
        // Nothing registered, so nothing runs.
        const run = await runProgram(config).catch((error: unknown) => error);
        assert.ok(run instanceof ConfigError, `the program fails with the ConfigError, got ${run}`);
    });
}

test("rejected on the replica stack: a main password with ':' (the .pgpass field separator)", () => {
    assert.deepEqual(problemsOf(set(REPLICA, "main.password", "ab:cd")), [
        "data-support:main.password: must not contain ':' or '\\' (copy it from the main stack: pulumi stack output -s main --show-secrets)",
    ]);
    assert.deepEqual(problemsOf(REPLICA), []);
});

test("the messages for settings and arguments the script sets say which and to remove it", () => {
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.crawls.0.settings", { FILES_STORE: "/x", DATABASE_URL: "postgresql://x", DOWNLOAD_DELAY: "1" })), [
        "data-support:incremental.crawls[0].settings: sets FILES_STORE, DATABASE_URL, which the crawl script sets itself (DATABASE_URL, FILES_STORE, PROXY_SPIDERS, SENTRY_DSN, LOG_FILE; the database, the files store, the proxy, Sentry and the log file are the server's); remove it",
    ]);
});

test("values close to the bad ones are still accepted", () => {
    for (const [path, value] of [
        ["incremental.crawls.0.settings", { DATABASE_URL_TIMEOUT: "1", FILES_STORE_S3_ACL: "private" }],
        ["incremental.crawls.0.spider_arguments", { crawl_time_zone: "UTC" }],
        ["incremental.crawls.0.spider", "a".repeat(53)],
        ["incremental.crawls.0.spider", "orders"],
        ["incremental.crawls.0.users", ["public_reader", "users", "pgx"]],
        ["tinyproxy.keep.0.comment", "ocp10\t(collect)"],
    ] as [string, unknown][]) {
        assert.deepEqual(problemsOf(set(mainConfig(), path, value)), [], `${path}=${JSON.stringify(value)}`);
    }
});

test("config.ts's list of Salt's tables is incrementalCopy.ts's", () => {
    assert.deepEqual(SALT_LOADED_TABLES, ["codelist", "indicator", "cpc", "unspsc", "excluded_supplier"]);
    assert.match(problemsOf(set(mainConfig(), "incremental.crawls.0.spider", "unspsc")).join("\n"), /codelist, indicator, cpc, unspsc, excluded_supplier/);
});

// ---- Properties: generated values; whatever is accepted survives where it goes. ----

// Characters that matter somewhere: shell, cron ('%', newlines), YAML, paths, SQL quoting, Unicode breaks.
const HOSTILE = ["a", "z", "_", "-", "0", "9", "A", "Z", ".", "/", " ", "\t", "\n", "\r", "%", "#", "'", '"', "$", "`", "\\", ":", "=", ";", "\0", "\u000b", "\u0085", "\u2028", "é", "*"];
const text = (maxLength: number) => fc.array(fc.constantFrom(...HOSTILE), { maxLength }).map((cs) => cs.join(""));
// Mostly values of the right shape (so that whole crawls get accepted), some anything at all.
const identifierLike = (re: string, maxLength: number) =>
    fc.oneof({ weight: 5, arbitrary: fc.stringMatching(new RegExp(`^${re}$`)).filter((s) => s.length <= maxLength + 4) }, { weight: 1, arbitrary: text(maxLength) });
const BREAKS = ["\n", "\r", "\0", "\u000b", "\u0085", "\u2028"];
const value = fc.oneof({ weight: 5, arbitrary: fc.array(fc.constantFrom(...HOSTILE.filter((c) => !BREAKS.includes(c))), { maxLength: 12 }).map((cs) => cs.join("")) }, { weight: 1, arbitrary: text(12) });
const RUNS = 400;

function accepted(config: Record<string, unknown>): MainConfig | undefined {
    try {
        const parsed = parseStackConfig(config);
        return parsed.role === "main" ? parsed : undefined;
    } catch (error) {
        if (error instanceof ConfigError) return undefined;
        throw error;
    }
}

/** A PostgreSQL identifier that SQL may hold unquoted: lower case, at most 63 bytes, not reserved. */
function plainIdentifier(name: string): boolean {
    return /^[a-z_][a-z0-9_]*$/.test(name) && Buffer.byteLength(name) <= 63 && !RESERVED.has(name);
}

test("property: an accepted crawl gives one-line crontab entries, file names without '/', plain table names, and a pillar that reads back the same", () => {
    let kept = 0;
    fc.assert(
        fc.property(
            identifierLike("[A-Z][A-Z0-9_]{0,20}", 20),
            identifierLike("[a-z][a-z0-9_]{0,60}", 60),
            fc.dictionary(fc.oneof({ weight: 4, arbitrary: identifierLike("[A-Z][A-Z0-9_]{0,14}", 14) }, { weight: 1, arbitrary: fc.constantFrom("DATABASE_URL", "FILES_STORE", "PROXY_SPIDERS", "SENTRY_DSN", "LOG_FILE") }), value, { maxKeys: 3 }),
            fc.dictionary(fc.oneof({ weight: 4, arbitrary: identifierLike("[a-z_][a-z0-9_]{0,10}", 10) }, { weight: 1, arbitrary: fc.constant("crawl_time") }), value, { maxKeys: 3 }),
            fc.array(identifierLike("[a-z_][a-z0-9_]{0,8}", 8), { maxLength: 3 }),
            identifierLike("(/[a-z][a-z._-]{0,8}){1,3}", 20),
            fc.option(fc.integer({ min: -1, max: 31 }), { nil: undefined }),
            (identifier, spider, settings, args, users, home, day) => {
                const crawl: Record<string, unknown> = { identifier, spider, crawl_time: "2025-05-06", settings, spider_arguments: args, users, cardinal: true, cardinal_settings: "[defaults]\n" };
                if (day !== undefined) crawl.day = day;
                const cfg = accepted(set(mainConfig(), "incremental", { home, crawls: [crawl], sentryDsn: "https://k@o1.ingest.sentry.io/1" }));
                if (!cfg) return;
                kept++;
                const c = cfg.incremental.crawls[0];
                const h = cfg.incremental.home;
                // Crontab: two lines, no line break inside, no '%' (cron turns it into a newline), six fields.
                const lines = cronEntry(c, h);
                assert.equal(lines.length, 2);
                for (const line of lines) assert.doesNotMatch(line, /[\n\r\0%\u0085\u2028\u2029]/, line);
                assert.equal(lines[1].split(" ").length, 6, lines[1]);
                // File names: one part each, no '/', at most 255 bytes; paths canonical.
                const p = crawlPaths(c, h);
                for (const path of [p.script, p.cardinalSettings, p.cardinalResultSql]) {
                    assert.ok(path.startsWith(`${h}/`) && !path.includes("//") && !path.includes("/./") && !path.includes("/../"), path);
                    const base = path.slice(path.lastIndexOf("/") + 1);
                    assert.ok(base.length > 0 && Buffer.byteLength(base) <= 255, path);
                }
                // Tables, the cardinal index and the readers: plain identifiers, not Salt's tables.
                for (const name of [c.spider, `${c.spider}_clean`, `${c.spider}_result`, `idx_${c.spider}_clean`, ...c.users]) assert.ok(plainIdentifier(name), name);
                assert.ok(!["codelist", "indicator", "cpc", "unspsc", "excluded_supplier"].includes(c.spider));
                for (const u of c.users) assert.ok(u !== "public" && u !== "none" && !u.startsWith("pg_"), u);
                // The script's own arguments are there once, so config cannot override them.
                // The script's own arguments are there once (lines of the rendered crawl script), so
                // config cannot override them; every argument line is one line.
                const text = renderCrawlScript(c, { home: h, database: cfg.incremental.database, proxyUrl: "http://docs.example:8888", sentryDsn: "https://k@o1.ingest.sentry.io/1" });
                for (const [flag, name] of [["-a", "crawl_time"], ["-s", "FILES_STORE"], ["-s", "DATABASE_URL"], ["-s", "PROXY_SPIDERS"], ["-s", "SENTRY_DSN"], ["-s", "LOG_FILE"]]) {
                    const set = text.split("\n").filter((line) => new RegExp(`^\\s+${flag} '?${name}=`).test(line));
                    assert.equal(set.length, name === "LOG_FILE" ? 0 : 1, `${name}: ${set.join(" | ")}`);
                }
                // The pillar reads back as the same crawl.
                const back = YAML.parse(crawlsPillar([c])).python_apps.kingfisher_collect.crawls[0];
                assert.equal(back.identifier, c.identifier);
                assert.equal(back.spider, c.spider);
                assert.deepEqual(back.settings ?? {}, c.settings);
            },
        ),
        { seed: SEED, numRuns: RUNS },
    );
    console.log(`# crawls: ${RUNS} generated, ${kept} accepted and checked against every destination`);
    assert.ok(kept > 20, `too few accepted to mean anything: ${kept}`);
});

test("property: an accepted tinyproxy comment is one comment line in tinyproxy.conf and in the pillar", () => {
    let kept = 0;
    fc.assert(
        fc.property(text(30), (comment) => {
            const cfg = accepted(set(mainConfig(), "tinyproxy.keep.0.comment", comment));
            if (!cfg) return;
            kept++;
            const entry = cfg.tinyproxy.keep[0];
            const conf = renderTinyproxyConf(8888, [entry]).split("\n");
            // Its comment line, then its Allow line: nothing else came out of the comment.
            const at = conf.indexOf(`# ${entry.comment}`);
            assert.ok(at >= 0, conf.join("\n"));
            assert.equal(conf[at + 1], "Allow 198.51.100.10");
            assert.doesNotMatch(entry.comment, /[\r\0\u000b\u000c\u0085\u2028\u2029]/);
            const pillar = tinyproxyPillar([entry]);
            assert.deepEqual(YAML.parse(pillar), { tinyproxy: { allow: ["198.51.100.10"] } });
        }),
        { seed: SEED, numRuns: RUNS },
    );
    console.log(`# tinyproxy comments: ${RUNS} generated, ${kept} accepted`);
    assert.ok(kept > 20, `too few accepted: ${kept}`);
});

test("property: accepted paths are canonical, and accepted role names are plain PostgreSQL identifiers", () => {
    let paths = 0;
    let roles = 0;
    fc.assert(
        fc.property(identifierLike("/[a-z0-9/._-]{0,30}", 30), identifierLike("[a-z_][a-z0-9_]{0,12}", 12), (path, role) => {
            const cfg = accepted(set(set(mainConfig(), "paths", { stateDir: path }), "postgres.replication", { role }));
            const pathOk = accepted(set(mainConfig(), "paths", { stateDir: path }));
            const roleOk = accepted(set(withReplica(mainConfig()), "postgres.replication", { role }));
            if (pathOk) {
                paths++;
                const p = pathOk.paths.stateDir;
                assert.ok(p.startsWith("/") && p !== "/" && !p.endsWith("/") && !p.includes("//"), p);
                assert.ok(!p.split("/").includes(".") && !p.split("/").includes(".."), p);
                assert.match(p, /^[A-Za-z0-9._/-]+$/);
            }
            if (roleOk) {
                roles++;
                const r = roleOk.postgres.replication.role;
                assert.ok(plainIdentifier(r), r);
                assert.ok(!["public", "none", "all", "sameuser", "samerole", "samegroup", "replication"].includes(r) && !r.startsWith("pg_"), r);
            }
            assert.equal(cfg !== undefined, pathOk !== undefined && roleOk !== undefined);
        }),
        { seed: SEED, numRuns: RUNS },
    );
    console.log(`# paths: ${paths} accepted, roles: ${roles} accepted, of ${RUNS} each`);
    assert.ok(paths > 20 && roles > 20, `too few accepted: ${paths}, ${roles}`);
});
