import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, parseStackConfig } from "../../components/config";
import { KEYS, mainConfig } from "../support/fixtures";
import { problemsOf } from "../support/configProblems";
import { runProgram, type Registered } from "../../tools/program";

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
    // Each of these would register one resource name twice: the engine's "Duplicate resource URN" names no key.
    ["an app listed twice", "docker", { apps: ["kingfisher-process", "pelican-backend", "kingfisher-process", "pelican-frontend"] }, "data-support:docker.apps[2]"],
    ["two migrations of one app", "docker", { migrations: [{ app: "pelican-frontend", service: "web" }, { app: "pelican-frontend", service: "cron" }] }, "data-support:docker.migrations[1].app"],
    ["crawl identifier CRONTAB (the crontab resource's name)", "incremental.crawls.1.identifier", "CRONTAB", "data-support:incremental.crawls[1].identifier"],
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

test("host keys of the types the provider can check are accepted, a comment too", () => {
    for (const key of [KEYS.ed25519, KEYS.p256, KEYS.p384, KEYS.p521, `${KEYS.ed25519} root@ocp04 (2025 rotation)`]) {
        assert.deepEqual(problemsOf(set(mainConfig(), "servers.oldMain.ssh.hostKey", key)), [], key);
    }
});

test("an ssh-rsa host key is rejected: the message names the key, says why and how to get an ed25519 one", () => {
    const config = set(set(mainConfig(), "servers.oldMain.ssh.hostKey", KEYS.rsa), "servers.oldMain.ssh.port", 2222);
    assert.deepEqual(problemsOf(config), [
        "data-support:servers.oldMain.ssh.hostKey: is an ssh-rsa key, which is not accepted: the provider (@pulumi/command) then offers only the SHA-1 'ssh-rsa' host-key algorithm, which OpenSSH 8.8 and later refuse, so no command could run. " +
            `Pin its ed25519 key: pulumi config set --path 'data-support:servers.oldMain.ssh.hostKey' "$(ssh-keyscan -p 2222 -t ed25519 ocp04.open-contracting.org | cut -d' ' -f2-)"`,
    ]);
});

test("a jump host's ssh-rsa or ssh-dss key is rejected naming the jump host's key and its host", () => {
    for (const [key, why] of [[KEYS.rsa, "is an ssh-rsa key, which is not accepted"], [KEYS.dss, "is an ssh-dss (DSA) key, which is not accepted"]]) {
        const config = set(mainConfig(), "servers.docs.ssh.jumpHost", { host: "bastion.open-contracting.org", hostKey: key });
        const [problem, ...rest] = problemsOf(config);
        assert.deepEqual(rest, []);
        assert.ok(problem.startsWith(`data-support:servers.docs.ssh.jumpHost.hostKey: ${why}`), problem);
        assert.ok(problem.endsWith(`"$(ssh-keyscan -t ed25519 bastion.open-contracting.org | cut -d' ' -f2-)"`), problem);
    }
});

/** The key with its EC point's first byte (0x04, uncompressed) made 0x06: the same x and y. */
function hybridPoint(line: string): string {
    const [type, base64] = line.split(" ");
    const blob = Buffer.from(base64, "base64");
    const at = blob.length - 65; // the last field: a 65-byte point for nistp256
    assert.equal(blob[at], 4);
    blob[at] = 6;
    return `${type} ${blob.toString("base64")}`;
}

test("a host key whose base64 part is damaged, cut short or of another type is rejected", () => {
    const cases: [string, string][] = [
        // ssh-keyscan's whole line, host name first
        [`ocp04.open-contracting.org ${KEYS.ed25519}`, "starts with 'ocp04.open-contracting.org', which is not a key type"],
        // an ECDSA key's base64 under the ed25519 type
        [`ssh-ed25519 ${KEYS.p256.split(" ")[1]}`, "says 'ssh-ed25519' but its base64 part holds a key of type 'ecdsa-sha2-nistp256'"],
        [KEYS.ed25519.slice(0, -8), "is not a whole ssh-ed25519 key"],
        // the last coordinate byte changed: the point is off the curve, which x/crypto refuses
        [KEYS.p256.replace(/BRE=$/, "BRA="), "is not a whole ecdsa-sha2-nistp256 key"],
        // the point's 0x04 prefix (uncompressed) made 0x06 (hybrid), x and y unchanged: x/crypto takes 0x04 only
        [hybridPoint(KEYS.p256), "is not a whole ecdsa-sha2-nistp256 key"],
        ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDEp6sWFHt/QKy9UkBsspIX146n67o6jR39GgiQL8mR2AAAA", "is not a whole ssh-ed25519 key"],
        ["ssh-ed25519", "must be a public host key line"],
        ["ssh-ed25519 AAAA\$(id)", "must be a public host key line"],
    ];
    for (const [key, why] of cases) {
        const [problem, ...rest] = problemsOf(set(mainConfig(), "servers.newMain.ssh.hostKey", key));
        assert.deepEqual(rest, [], key);
        assert.ok(problem?.startsWith(`data-support:servers.newMain.ssh.hostKey: ${why}`), `${key}:\n${problem}`);
        assert.ok(problem.includes("ssh-keyscan -t ed25519 ocp23.open-contracting.org"), problem);
    }
});

test("a config error is a pulumi.RunError, so pulumi up prints its message alone", () => {
    assert.throws(() => parseStackConfig(set(mainConfig(), "tinyproxy.port", 0)), (error: unknown) => {
        assert.ok(pulumi.RunError.isInstance(error));
        return true;
    });
});

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

// Rules across a crawl's keys (config.ts superRefine), each message written out.
test("cardinal and its settings go together, and crawls need the Sentry DSN: each rule names its key and what to do", () => {
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.crawls.0.cardinal_settings", "[cardinal]\n")), [
        "data-support:incremental.crawls[0].cardinal_settings: is set but cardinal is not true; set cardinal: true or remove it",
    ]);
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.crawls.1.cardinal", true)), [
        "data-support:incremental.crawls[1].cardinal_settings: is required with cardinal: true; give the text of salt/kingfisher/collect/files/cardinal/ecuador_sercop_bulk.ini of the deploy repository",
    ]);
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.sentryDsn", undefined)), [
        "data-support:incremental.sentryDsn: is required when incremental.crawls is not empty (every crawl script passes it to scrapy, as Salt's cron.sh does); set the pillar's kingfisher_collect.env.SENTRY_DSN with pulumi config set --secret --path 'data-support:incremental.sentryDsn' ...",
    ]);
    // Both, with cardinal: accepted; no crawl: no DSN needed.
    assert.deepEqual(problemsOf(set(set(mainConfig(), "incremental.crawls.1.cardinal", true), "incremental.crawls.1.cardinal_settings", "[cardinal]\n")), []);
    assert.deepEqual(problemsOf(set(set(mainConfig(), "incremental.sentryDsn", undefined), "incremental.crawls", [])), []);
});

test("two servers with one hostname: one problem, on the later key in alphabetical order, naming the other", () => {
    assert.deepEqual(problemsOf(set(mainConfig(), "servers.docs.hostname", "ocp23.open-contracting.org")), [
        "data-support:servers.newMain.hostname: is the same as servers.docs.hostname; each server needs its own",
    ]);
});

test("an unknown top-level key is one problem, listing the keys there are (not a second one from the schema)", () => {
    assert.deepEqual(problemsOf({ ...mainConfig(), tinyproxi: { port: 1 } }), [
        "data-support:tinyproxi: unknown key; expected one of role, migrationId, transfer, servers, ssh, tinyproxy, postgres, docker, incremental, gates, paths, mainStack, main",
    ]);
});

test("an unknown nested key is named with its path; a key of the other role's stack says which role this one is", () => {
    assert.deepEqual(problemsOf(set(mainConfig(), "servers.oldMain.hostnme", "x")), ["data-support:servers.oldMain.hostnme: unknown key; check its spelling, or remove it"]);
    assert.deepEqual(problemsOf({ ...mainConfig(), mainStack: "ocp/data-support/main" }), ["data-support:mainStack: unknown key for a 'main' stack; check its spelling, or remove it"]);
});

test("spider_arguments and settings given as empty (or blank) text are accepted: no arguments, no settings", () => {
    for (const text of ["", "  "]) {
        const config = set(set(mainConfig(), "incremental.crawls.0.spider_arguments", text), "incremental.crawls.0.settings", text);
        assert.deepEqual(problemsOf(config), [], JSON.stringify(text));
    }
});

test("a value of the wrong type is said to be so (zod 4's words), not 'is required'", () => {
    assert.deepEqual(problemsOf(set(mainConfig(), "servers.oldMain.ssh.port", "22")), ["data-support:servers.oldMain.ssh.port: Invalid input: expected number, received string"]);
});

test("an ssh-rsa host key of a server whose hostname is itself invalid: the fix says HOST, not the bad name", () => {
    const config = set(set(mainConfig(), "servers.oldMain.hostname", "ocp 04"), "servers.oldMain.ssh.hostKey", KEYS.rsa);
    assert.deepEqual(problemsOf(config), [
        "data-support:servers.oldMain.hostname: must be a lower-case DNS name such as ocp23.open-contracting.org",
        "data-support:servers.oldMain.ssh.hostKey: is an ssh-rsa key, which is not accepted: the provider (@pulumi/command) then offers only the SHA-1 'ssh-rsa' host-key algorithm, which OpenSSH 8.8 and later refuse, so no command could run. " +
            `Pin its ed25519 key: pulumi config set --path 'data-support:servers.oldMain.ssh.hostKey' "$(ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-)"`,
    ]);
});

test("an ssh-rsa host key beside an invalid port: the fix asks port 22 (no -p), not the bad port", () => {
    for (const port of [0, 65536, 22.5, "2222"]) {
        const config = set(set(mainConfig(), "servers.oldMain.ssh.port", port), "servers.oldMain.ssh.hostKey", KEYS.rsa);
        const fix = problemsOf(config).filter((p) => p.startsWith("data-support:servers.oldMain.ssh.hostKey:"));
        assert.equal(fix.length, 1, String(port));
        assert.ok(fix[0].endsWith(`Pin its ed25519 key: pulumi config set --path 'data-support:servers.oldMain.ssh.hostKey' "$(ssh-keyscan -t ed25519 ocp04.open-contracting.org | cut -d' ' -f2-)"`), `${port}: ${fix[0]}`);
    }
});

// Survivors of mutation run C (test/mutation/report.md): each rule of a path and a URL with its own
// message, so that a rule that no longer refuses (or refuses another value) fails here.
test("a path not in canonical form, or past the file-name limits, gets the rule's own message", () => {
    const canonical = "data-support:incremental.home: must name a file or directory below '/' in canonical form: no trailing '/', no '//', no '.' part";
    for (const path of ["/home/./incremental", "/home/incremental/", "/home//incremental", "/"]) {
        assert.deepEqual(problemsOf(set(mainConfig(), "incremental.home", path)), [canonical], path);
    }
    const limits = "data-support:incremental.home: must be at most 1024 characters, each part at most 255 (a file name's limit)";
    const part255 = "p".repeat(255);
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.home", `/${part255}`)), []);
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.home", `/${part255}p`)), [limits]);
    // 1024 characters in all: four parts of 255 and their slashes.
    const path1024 = `/${part255}/${part255}/${part255}/${"p".repeat(1024 - 4 - 3 * 255)}`;
    assert.equal(path1024.length, 1024);
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.home", path1024)), []);
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.home", `${path1024}p`)), [limits]);
    // 1025 characters with every part well under 255: the whole path's limit alone.
    const path1025 = `/${part255}/${part255}/${part255}/${"p".repeat(200)}/${"p".repeat(55)}`;
    assert.equal(path1025.length, 1025);
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.home", path1025)), [limits]);
});

test("a URL that is not http(s), or that holds a user and password, gets the rule's own message", () => {
    assert.deepEqual(problemsOf(set(mainConfig(), "gates.scrapyd.url", "ftp://collect.kingfisher.open-contracting.org/")), [
        "data-support:gates.scrapyd.url: must start with http:// or https://",
    ]);
    assert.deepEqual(problemsOf(set(mainConfig(), "gates.scrapyd.url", "http://collect.kingfisher.open-contracting.org/")), []);
    for (const url of ["https://scrape:secret@collect.kingfisher.open-contracting.org/", "http://scrape@collect.kingfisher.open-contracting.org:6800/"]) {
        assert.deepEqual(problemsOf(set(mainConfig(), "gates.scrapyd.url", url)), [
            "data-support:gates.scrapyd.url: must not contain a user or password (user:password@); set username and password instead",
        ], url);
    }
    // An '@' after the host (in the path or the query) is no user, even after an "http://" there.
    assert.deepEqual(problemsOf(set(mainConfig(), "gates.scrapyd.url", "https://collect.kingfisher.open-contracting.org/a@b")), []);
    assert.deepEqual(problemsOf(set(mainConfig(), "gates.scrapyd.url", "https://collect.kingfisher.open-contracting.org/?next=http://u@x")), []);
    // The scheme is the URL's own, not an "http://" further on.
    assert.deepEqual(problemsOf(set(mainConfig(), "gates.scrapyd.url", "ftp://collect.kingfisher.open-contracting.org/http://x")), [
        "data-support:gates.scrapyd.url: must start with http:// or https://",
    ]);
});

test("a spider named like another crawl's cardinal table or index is one problem, on the later crawl, naming the owner", () => {
    for (const table of ["dominican_republic_api_clean", "dominican_republic_api_result", "idx_dominican_republic_api_clean"]) {
        assert.deepEqual(problemsOf(set(mainConfig(), "incremental.crawls.1.spider", table)), [
            "data-support:incremental.crawls[1].spider: names a table or index of crawls[0] (spider dominican_republic_api, with cardinal); choose another spider",
        ], table);
    }
    // A name that only starts like one is no table of the other crawl.
    assert.deepEqual(problemsOf(set(mainConfig(), "incremental.crawls.1.spider", "dominican_republic_api_cleaner")), []);
});

test("an ssh-rsa host key of a server whose hostname is not even text: the fix says HOST", () => {
    const config = set(set(mainConfig(), "servers.oldMain.hostname", 12345), "servers.oldMain.ssh.hostKey", KEYS.rsa);
    const fix = problemsOf(config).filter((p) => p.startsWith("data-support:servers.oldMain.ssh.hostKey:"));
    assert.equal(fix.length, 1);
    assert.ok(fix[0].endsWith(`Pin its ed25519 key: pulumi config set --path 'data-support:servers.oldMain.ssh.hostKey' "$(ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-)"`), fix[0]);
});

test("spider_arguments text with spaces around and between the pairs is read as the same pairs", () => {
    for (const text of ["  -a compile_releases=true  ", "-a  compile_releases=true", "-a compile_releases=true \t -a from_date=2025-01-01"]) {
        const config = parseStackConfig(set(mainConfig(), "incremental.crawls.0.spider_arguments", text));
        const expected = text.includes("from_date") ? { compile_releases: "true", from_date: "2025-01-01" } : { compile_releases: "true" };
        assert.deepEqual(config.role === "main" && config.incremental.crawls[0].spider_arguments, expected, JSON.stringify(text));
    }
});

test("spider_arguments and settings text: each pair behind its own flag, and a one-letter key is a key", () => {
    // Accepted: one-letter keys (the '=' at index 1), written out.
    const ok = parseStackConfig(set(set(mainConfig(), "incremental.crawls.0.spider_arguments", "-a x=1 -a y="), "incremental.crawls.0.settings", "-s X=2"));
    assert.deepEqual(ok.role === "main" && ok.incremental.crawls[0].spider_arguments, { x: "1", y: "" });
    assert.deepEqual(ok.role === "main" && ok.incremental.crawls[0].settings, { X: "2" });
    // Refused: the other text's flag, first or after a good pair, a pair with no key or no '='.
    const refused: [string, string, string][] = [
        ["spider_arguments", "-s x=1", "must be '-a key=value' pairs"],
        ["spider_arguments", "-a x=1 -s y=2", "must be '-a key=value' pairs"],
        ["spider_arguments", "-a =1", "must be '-a key=value' pairs"],
        ["spider_arguments", "-a compile_releases", "must be '-a key=value' pairs"],
        ["settings", "-a X=1", "must be '-s key=value' pairs"],
        ["settings", "-s X=1 -a Y=2", "must be '-s key=value' pairs"],
    ];
    for (const [key, text, why] of refused) {
        const problems = problemsOf(set(mainConfig(), `incremental.crawls.0.${key}`, text));
        assert.equal(problems.length, 1, `${text}: ${problems.join("\n")}`);
        assert.ok(problems[0].startsWith(`data-support:incremental.crawls[0].${key}: ${why}`), problems[0]);
    }
});

test("a host key type is the whole first word: a known type inside a longer word is refused", () => {
    const [, ed25519Blob] = KEYS.ed25519.split(" ");
    const cases: [string, string][] = [
        // A type with more around it is not the type (the type check is anchored and whole), and
        // its message names that word (not ssh-dss's or ssh-rsa's).
        [`xssh-ed25519 ${ed25519Blob}`, "is a 'xssh-ed25519' key, which is not accepted"],
        [`ssh-ed25519x ${ed25519Blob}`, "is a 'ssh-ed25519x' key, which is not accepted"],
        // The first word with a character no key type has.
        [`ssh_ed25519 ${ed25519Blob}`, "must be a public host key line"],
        [`SSH-ED25519 ${ed25519Blob}`, "must be a public host key line"],
        // A second word that looks like a type, after a host name: ssh-keyscan's line.
        [`host ssh-ed25519x ${ed25519Blob}`, "starts with 'host', which is not a key type"],
        // The base64 part with a character base64 has not, in the middle or at either end.
        [`ssh-ed25519 ${ed25519Blob.slice(0, 10)}-${ed25519Blob.slice(10)}`, "must be a public host key line"],
        [`ssh-ed25519 -${ed25519Blob}`, "must be a public host key line"],
        [`ssh-ed25519 ${ed25519Blob}-`, "must be a public host key line"],
        // A second word with a type's start inside it is no host name's mistake: just not a key.
        [`ssh-ed25519 AAAAssh-${ed25519Blob}`, "must be a public host key line"],
    ];
    for (const [key, why] of cases) {
        const problems = problemsOf(set(mainConfig(), "servers.newMain.ssh.hostKey", key));
        assert.equal(problems.length, 1, `${key}: ${problems.join("\n")}`);
        assert.ok(problems[0].startsWith(`data-support:servers.newMain.ssh.hostKey: ${why}`), `${key}:\n${problems[0]}`);
    }
});

/** An SSH wire blob (RFC 4251 strings, each with its uint32 length) as a key line of `type`. */
function wireKey(type: string, ...fields: (string | Buffer)[]): string {
    const parts = fields.map((f) => (typeof f === "string" ? Buffer.from(f, "latin1") : f));
    const blob = Buffer.concat(parts.flatMap((p) => [Buffer.from([0, 0, 0, 0].map((_, i) => (p.length >>> (8 * (3 - i))) & 0xff)), p]));
    return `${type} ${blob.toString("base64")}`;
}

/** The key line with the last `bytes` bytes of its blob taken off (the lengths inside left as they were). */
function cutShort(line: string, bytes: number): string {
    const [type, base64] = line.split(" ");
    return `${type} ${Buffer.from(base64, "base64").subarray(0, -bytes).toString("base64")}`;
}

test("a host key's base64 part: canonical, its own type and curve inside, nothing more (as x/crypto's ParsePublicKey)", () => {
    // The key material of the fixtures' keys, taken out of their wire blobs.
    const ed25519 = Buffer.from(KEYS.ed25519.split(" ")[1], "base64").subarray(-32);
    const p256Point = Buffer.from(KEYS.p256.split(" ")[1], "base64").subarray(-65);
    // Built like this, the keys themselves pass: the helper writes what ssh-keyscan prints.
    assert.equal(wireKey("ssh-ed25519", "ssh-ed25519", ed25519), KEYS.ed25519);
    assert.equal(wireKey("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", "nistp256", p256Point), KEYS.p256);
    const cases: [string, string][] = [
        // The last character's two unused bits set: Node decodes the same bytes, Go's decoder refuses it.
        [KEYS.p256.replace(/BRE=$/, "BRF="), "is not a whole ecdsa-sha2-nistp256 key: its base64 part does not decode"],
        // One string more after the key material (ParsePublicKey refuses what is left over).
        [wireKey("ssh-ed25519", "ssh-ed25519", ed25519, "extra"), "is not a whole ssh-ed25519 key (its base64 part is cut short or damaged)"],
        // ... even one that is itself 32 bytes, the key's own length.
        [wireKey("ssh-ed25519", "ssh-ed25519", ed25519, ed25519), "is not a whole ssh-ed25519 key (its base64 part is cut short or damaged)"],
        // Whole strings, but key material of 31 or 33 bytes (an ed25519 key is 32).
        [wireKey("ssh-ed25519", "ssh-ed25519", ed25519.subarray(1)), "is not a whole ssh-ed25519 key (its base64 part is cut short or damaged)"],
        [wireKey("ssh-ed25519", "ssh-ed25519", Buffer.concat([ed25519, Buffer.from([0])])), "is not a whole ssh-ed25519 key (its base64 part is cut short or damaged)"],
        // Another curve's name around a nistp256 point.
        [wireKey("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", "nistp384", p256Point), "is not a whole ecdsa-sha2-nistp256 key (its base64 part is cut short or damaged)"],
        // An inner type that is no type name, with the real one inside it: not named back, just refused.
        [wireKey("ssh-ed25519", "Xssh-ed25519", ed25519), "is not a whole ssh-ed25519 key (its base64 part is cut short or damaged)"],
        [wireKey("ssh-ed25519", "ssh-ed25519X", ed25519), "is not a whole ssh-ed25519 key (its base64 part is cut short or damaged)"],
        // An inner type that is a type name: named, with an empty string last too (still whole strings).
        [wireKey("ssh-ed25519", "ssh-ed448", ed25519), "says 'ssh-ed25519' but its base64 part holds a key of type 'ssh-ed448'"],
        [wireKey("ssh-ed25519", "ssh-ed448", ed25519, ""), "says 'ssh-ed25519' but its base64 part holds a key of type 'ssh-ed448'"],
        // The same, its key material 6 bytes shorter than its length says: not whole strings, so not
        // read as a key of any type.
        [cutShort(wireKey("ssh-ed25519", "ssh-ed448", ed25519), 6), "is not a whole ssh-ed25519 key (its base64 part is cut short or damaged)"],
    ];
    for (const [key, why] of cases) {
        const problems = problemsOf(set(mainConfig(), "servers.newMain.ssh.hostKey", key));
        assert.equal(problems.length, 1, `${key}: ${problems.join("\n")}`);
        assert.ok(problems[0].startsWith(`data-support:servers.newMain.ssh.hostKey: ${why}`), `${key}:\n${problems[0]}`);
    }
});
