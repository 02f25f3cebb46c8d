// The quoting helper: hostile values arrive verbatim in a real shell.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { quote, sh } from "../../components/machinery/shell";
import { renderCrawlScript } from "../../components/runbook/incremental-updates/incrementalCrawls";
import { parseStackConfig } from "../../components/config";
import { mainConfig } from "../support/fixtures";

const HOSTILE = [
    "it's",
    `"double"`,
    "$(touch CANARY)",
    "`touch CANARY`",
    "a\nb; touch CANARY",
    "; touch CANARY",
    "-rf",
    "$HOME ${PATH}",
    "\\backslash\\",
    "tab\there",
    "* ? [a]",
    "'",
    "",
    "é ü 中文",
];

test("quoted values arrive verbatim in bash and dash; nothing they hold runs", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "quote-"));
    for (const shell of ["bash", "dash"]) {
        for (const value of HOSTILE) {
            const out = execFileSync(shell, ["-c", sh`printf '%s' ${value}`.text], { cwd: dir }).toString();
            assert.equal(out, value, `${shell}: ${JSON.stringify(value)}`);
        }
        const argv = execFileSync(shell, ["-c", sh`printf '[%s]' ${HOSTILE}`.text], { cwd: dir }).toString();
        assert.equal(argv, HOSTILE.map((v) => `[${v}]`).join(""));
    }
    assert.equal(fs.existsSync(path.join(dir, "CANARY")), false);
    fs.rmSync(dir, { recursive: true });
});

test("a NUL byte cannot be quoted", () => {
    assert.throws(() => quote("a\0b"));
});

test("crawl scripts pass spider arguments with spaces and quotes intact", () => {
    const cfg = parseStackConfig(
        mainConfig({
            incremental: {
                sentryDsn: "https://abc@o1.ingest.sentry.io/1",
                crawls: [
                    {
                        identifier: "X",
                        spider: "x_api",
                        crawl_time: "2025-05-06",
                        spider_arguments: { from_date: "2020-01-01", q: `it's "quoted" $(touch CANARY) ; x` },
                        settings: { CLOSESPIDER_ITEMCOUNT: "10" },
                    },
                ],
            },
        }),
    );
    if (cfg.role !== "main") throw new Error("main config expected");
    const crawl = cfg.incremental.crawls[0];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crawl-"));
    fs.mkdirSync(path.join(dir, "kingfisher-collect", ".ve", "bin"), { recursive: true });
    // A Scrapy stand-in that records its argument vector, one argument per line (JSON).
    fs.writeFileSync(path.join(dir, "kingfisher-collect", ".ve", "bin", "scrapy"), `#!/usr/bin/env node\nrequire("fs").writeFileSync(${JSON.stringify(path.join(dir, "argv.json"))}, JSON.stringify(process.argv.slice(2)));\n`, { mode: 0o755 });
    const text = renderCrawlScript(crawl, { home: dir, database: "kingfisher_collect", proxyUrl: "http://ocp19.open-contracting.org:8888", sentryDsn: "https://abc@o1.ingest.sentry.io/1" });
    fs.writeFileSync(path.join(dir, "crawl.sh"), text, { mode: 0o755 });
    execFileSync("sh", ["-n", path.join(dir, "crawl.sh")]);
    execFileSync("sh", [path.join(dir, "crawl.sh")], { cwd: dir });
    const argv = JSON.parse(fs.readFileSync(path.join(dir, "argv.json"), "utf8"));
    // Written out, in Salt's order (cron.sh): spider arguments as -a, crawl_time, then the -s
    // settings, the config's own after DATABASE_URL.
    const expected = [
        "crawl",
        "x_api",
        "-a",
        "from_date=2020-01-01",
        "-a",
        `q=it's "quoted" $(touch CANARY) ; x`,
        "-a",
        "crawl_time=2025-05-06T00:00:00",
        "-s",
        `FILES_STORE=${dir}/data`,
        "-s",
        "DATABASE_URL=postgresql://kingfisher_collect@localhost:5432/kingfisher_collect",
        "-s",
        "CLOSESPIDER_ITEMCOUNT=10",
        "-s",
        "PROXY_SPIDERS=",
        "-s",
        "SENTRY_DSN=https://abc@o1.ingest.sentry.io/1",
    ];
    assert.deepEqual(argv.slice(0, expected.length), expected);
    assert.equal(argv.length, expected.length + 1);
    assert.match(argv[expected.length], /^--logfile=.*\/logs\/x_api-\d{4}-\d{2}-\d{2}\.log$/);
    assert.ok(argv.includes(`q=it's "quoted" $(touch CANARY) ; x`));
    assert.equal(fs.existsSync(path.join(dir, "CANARY")), false);
    assert.equal(fs.existsSync(path.join(dir, "kingfisher-collect", "CANARY")), false);
    fs.rmSync(dir, { recursive: true });
});

// Each shell metacharacter alone, at the start, inside and at the end of a word: the value must
// reach the command verbatim in bash and dash (a value passed unquoted would be expanded, split,
// globbed, cut by a comment, or end the command).
const METACHARACTERS = ["$", "`", '"', "'", "\\", ";", "&", "|", "<", ">", "(", ")", "*", "?", "[", "#", "~", "!", "{", "}", " ", "\t", "\n"];

test("each shell metacharacter alone, and in a word, arrives verbatim in bash and dash", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "meta-"));
    // A file for globs to match: an unquoted * or ? would expand to its name.
    fs.writeFileSync(path.join(dir, "x"), "");
    const values = METACHARACTERS.flatMap((c) => [c, `${c}x`, `x${c}`, `a${c}b`, `${c}${c}`]);
    values.push("-", "-x", "--x", "-n", "-e");
    for (const shell of ["bash", "dash"]) {
        for (const value of values) {
            const out = execFileSync(shell, ["-c", sh`printf '[%s]' ${value}`.text], { cwd: dir, env: { HOME: "/home-of-tilde", PATH: process.env.PATH } }).toString();
            assert.equal(out, `[${value}]`, `${shell}: ${JSON.stringify(value)} -> ${JSON.stringify(out)}`);
        }
    }
    fs.rmSync(dir, { recursive: true });
});

test("quote: written-out results for plain words, metacharacters and a leading '-'", () => {
    const cases: [string | number, string][] = [
        ["plain", "plain"],
        ["/var/lib/data-support/ocp04-to-ocp23", "/var/lib/data-support/ocp04-to-ocp23"],
        ["user@host:22,a=b+c%d", "user@host:22,a=b+c%d"],
        [12, "12"],
        ["$", "'$'"],
        ["a$b", "'a$b'"],
        ["`", "'`'"],
        ["it's", "'it'\\''s'"],
        ["'", "''\\'''"],
        ["~", "'~'"],
        ["#", "'#'"],
        ["a b", "'a b'"],
        ["-rf", "'-rf'"],
        ["", "''"],
        ["é", "'é'"],
    ];
    for (const [value, expected] of cases) assert.equal(quote(value), expected, JSON.stringify(value));
});
