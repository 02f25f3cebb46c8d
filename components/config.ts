// The stack's configuration: one zod schema for both roles, validated before any resource is
// registered. Components take the typed `StackConfig` below, never raw config.
import { createPublicKey } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";

/** The project's config namespace: keys are `data-support:<key>` in Pulumi.<stack>.yaml. */
export const PROJECT = "data-support";

// Top-level keys read from the stack's config. Everything else in the namespace is an error.
export const CONFIG_KEYS = [
    "role",
    "migrationId",
    "transfer",
    "servers",
    "ssh",
    "tinyproxy",
    "postgres",
    "docker",
    "incremental",
    "gates",
    "paths",
    "mainStack",
    "main",
] as const;

const hostnameRe = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const hostname = z.string().regex(hostnameRe, "must be a lower-case DNS name such as ocp23.open-contracting.org");
// A public host key as `ssh-keyscan` prints it after the host name: type, base64 blob, a comment allowed.
// Only types the provider can check against a current OpenSSH server: @pulumi/command 1.2.1
// (provider/pkg/provider/remote/connection.go) parses the key with x/crypto's ParseAuthorizedKey and
// offers ONLY its type as host-key algorithm (HostKeyAlgorithms = []string{publicKey.Type()}), so an
// ssh-rsa key offers SHA-1 "ssh-rsa" alone. The four below are plain key formats that x/crypto
// v0.48.0 (the provider's; ssh/common.go supportedHostKeyAlgos) verifies natively and OpenSSH offers.
// Value: the length of the key material (ed25519) or of the uncompressed point (ECDSA: 0x04, x, y).
const HOST_KEY_TYPES: Record<string, { curve?: string; jwkCurve?: string; length: number }> = {
    "ssh-ed25519": { length: 32 },
    "ecdsa-sha2-nistp256": { curve: "nistp256", jwkCurve: "P-256", length: 65 },
    "ecdsa-sha2-nistp384": { curve: "nistp384", jwkCurve: "P-384", length: 97 },
    "ecdsa-sha2-nistp521": { curve: "nistp521", jwkCurve: "P-521", length: 133 },
};

// Why a key type that parses is still refused: one sentence each.
function refusedTypeReason(type: string): string {
    if (type === "ssh-rsa") {
        return "is an ssh-rsa key, which is not accepted: the provider (@pulumi/command) then offers only the SHA-1 'ssh-rsa' host-key algorithm, which OpenSSH 8.8 and later refuse, so no command could run";
    }
    if (type === "ssh-dss") return "is an ssh-dss (DSA) key, which is not accepted: OpenSSH 7.0 and later do not offer DSA host keys, so the provider could never check it";
    return `is a '${type}' key, which is not accepted: the provider can check only ${Object.keys(HOST_KEY_TYPES).join(", ")} host keys against an OpenSSH server`;
}

/** What is wrong with a host key line, or undefined; every message ends in a `HOST_KEY_FIX`. */
export function hostKeyProblem(line: string): string | undefined {
    const fields = line.split(" ");
    const [type, blob] = fields;
    if (blob !== undefined && /^(ssh-|ecdsa-|sk-)/.test(blob)) {
        return `starts with '${type}', which is not a key type: give the key without the host name ssh-keyscan prints first`;
    }
    if (!/^[a-z0-9@.-]+$/.test(type) || !blob || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || /[\n\r\0]/.test(line)) {
        return "must be a public host key line: its type, one space and the base64 key, e.g. 'ssh-ed25519 AAAA...'";
    }
    if (!(type in HOST_KEY_TYPES)) return refusedTypeReason(type);
    const bytes = Buffer.from(blob, "base64");
    // Canonical base64 only (as ssh-keyscan prints it): Node's decoder would skip what Go's refuses.
    if (bytes.toString("base64") !== blob) return `is not a whole ${type} key: its base64 part does not decode`;
    const expected = HOST_KEY_TYPES[type];
    const wire = readSshStrings(bytes);
    const embedded = wire?.[0]?.toString("latin1");
    if (embedded !== undefined && embedded !== type && /^[a-z0-9@.-]+$/.test(embedded)) {
        return `says '${type}' but its base64 part holds a key of type '${embedded}'; copy the whole line again`;
    }
    const material = expected.curve ? wire?.[2] : wire?.[1];
    const shape = wire !== undefined && wire.length === (expected.curve ? 3 : 2) && embedded === type && (!expected.curve || wire[1].toString("latin1") === expected.curve);
    if (!shape || material === undefined || material.length !== expected.length || (expected.jwkCurve && !onCurve(material, expected.jwkCurve))) {
        return `is not a whole ${type} key (its base64 part is cut short or damaged); copy the whole line again`;
    }
    return undefined;
}

/** SSH wire format (RFC 4251): a sequence of uint32-length-prefixed strings, nothing left over. */
function readSshStrings(bytes: Buffer): Buffer[] | undefined {
    const out: Buffer[] = [];
    let at = 0;
    while (at < bytes.length) {
        if (at + 4 > bytes.length) return undefined;
        const length = bytes.readUInt32BE(at);
        if (at + 4 + length > bytes.length) return undefined;
        out.push(bytes.subarray(at + 4, at + 4 + length));
        at += 4 + length;
    }
    return out;
}

// x/crypto rejects an ECDSA point off its curve, so the provider would fail to parse the key.
function onCurve(point: Buffer, crv: string): boolean {
    const size = (point.length - 1) / 2;
    if (point[0] !== 4) return false;
    try {
        createPublicKey({ key: { kty: "EC", crv, x: point.subarray(1, 1 + size).toString("base64url"), y: point.subarray(1 + size).toString("base64url") }, format: "jwk" });
        return true;
    } catch {
        return false;
    }
}

/** How to pin a server's ed25519 host key into `configKey` (also in host.ts's warning). */
export function pinHostKeyCommand(configKey: string, host: string, port = 22): string {
    return `pulumi config set --path '${configKey}' "$(ssh-keyscan${port === 22 ? "" : ` -p ${port}`} -t ed25519 ${host} | cut -d' ' -f2-)"`;
}

// Marks a hostKey issue: parseStackConfig adds how to get an ed25519 key, with the host filled in.
const HOST_KEY_FIX = "hostKeyFix";
const hostKey = z.string().superRefine((line, ctx) => {
    const problem = hostKeyProblem(line);
    if (problem) ctx.addIssue({ code: "custom", message: problem, params: { [HOST_KEY_FIX]: true } });
});
const unixUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name (lower case, digits, _ or -)");
// Paths end up in shell text (quoted), crontab lines (where '%' and spaces would change the entry)
// and `dirname`-style edits (a trailing '/' or '//' would name another file): one canonical form.
const absolutePath = z
    .string()
    .regex(/^\/[A-Za-z0-9._\/-]*$/, "must be an absolute path of letters, digits, '.', '_', '-' and '/'")
    .refine((p) => !p.split("/").includes(".."), "must not contain '..'")
    .refine((p) => p !== "/" && !p.endsWith("/") && !p.includes("//") && !p.split("/").includes("."), "must name a file or directory below '/' in canonical form: no trailing '/', no '//', no '.' part")
    .refine((p) => p.length <= 1024 && p.split("/").every((part) => part.length <= 255), "must be at most 1024 characters, each part at most 255 (a file name's limit)");

/**
 * PostgreSQL 15's reserved key words (catcode R and T of pg_get_keywords(), read from a PostgreSQL 15
 * server on 2026-12-01): as a table or role name left unquoted in SQL (`SELECT data FROM <spider>`,
 * `GRANT ... TO <user>`, `DROP ROLE <role>`) they are a syntax error.
 */
export const PG_RESERVED_WORDS = new Set(
    ("all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation column " +
        "concurrently constraint create cross current_catalog current_date current_role current_schema current_time " +
        "current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign freeze " +
        "from full grant group having ilike in initially inner intersect into is isnull join lateral leading left like limit " +
        "localtime localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references " +
        "returning right select session_user similar some symmetric table tablesample then to trailing true union unique user " +
        "using variadic verbose when where window with").split(" "),
);
// Role names with a meaning of their own: PostgreSQL refuses to create `public` and `none`, and
// `pg_*` is kept for its built-in roles; in pg_hba.conf's user column (the replication role's line)
// `all`, `sameuser`, `samerole`, `samegroup` are key words, and `GRANT ... TO public` grants to everyone.
const SPECIAL_ROLES = new Set(["public", "none", "sameuser", "samerole", "samegroup", "replication"]);
const pgRole = z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a PostgreSQL role name (lower case, digits, _; at most 63)")
    .refine((r) => !PG_RESERVED_WORDS.has(r), "is a word PostgreSQL reserves (it would need quoting in SQL); choose another name")
    .refine((r) => !SPECIAL_ROLES.has(r) && !r.startsWith("pg_"), "is a role name with a special meaning in PostgreSQL (public, none, pg_*, or a pg_hba.conf key word); choose another name");
const secretString = z.string().min(1, "must be set (pulumi config set --secret --path ...)").refine((s) => !/[\r\n\0]/.test(s), "must be one line");
const httpUrl = z
    .string()
    .url("must be a URL")
    .refine((u) => /^https?:\/\//.test(u), "must start with http:// or https://")
    .refine((u) => !/[\s'"`$\\]/.test(u), "must not contain spaces, quotes, '$', '`' or '\\'")
    // The URL is command text: a user:password@ in it would show wherever the command does.
    .refine((u) => !/^https?:\/\/[^/?#]*@/.test(u), "must not contain a user or password (user:password@); set username and password instead");

const sshSchema = z.strictObject({
    user: unixUser.default("root"),
    port: z.number().int().min(1).max(65535).default(22),
    hostKey: hostKey.optional(),
    // A bastion to reach the server through (ProxyJump).
    jumpHost: z
        .strictObject({
            host: z.union([hostname, z.ipv4(), z.ipv6()], { error: "must be a lower-case DNS name or an IP address" }),
            port: z.number().int().min(1).max(65535).default(22),
            user: unixUser.default("root"),
            hostKey: hostKey.optional(),
        })
        .optional(),
});

const serverSchema = z.strictObject({
    hostname,
    ipv4: z.ipv4("must be an IPv4 address"),
    ipv6: z.ipv6("must be an IPv6 address").optional(),
    ssh: sshSchema.default({ user: "root", port: 22 }),
});

const allowedAddress = z.strictObject({
    address: z.union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()], { error: "must be an IPv4 or IPv6 address or CIDR range" }),
    // A `# comment` line of tinyproxy.conf and a YAML comment in the pillar: no line break or control character.
    comment: z.string().regex(/^[^\x00-\x08\x0a-\x1f\x7f\u0085\u2028\u2029#]{1,200}$/, "must be one line without '#' or control characters, naming what uses the proxy"),
});

// Spider arguments: either the pillar's string form ("-a key=value -a key2=value2") or a mapping.
// Both end as a key -> value record; each pair becomes one `-a key=value` argument, never raw shell.
// Values are one line: they also go into the pillar (YAML) and, through Salt's template, cron.sh.
const oneLine = z.string().refine((v) => !/[\n\r\0\u0085\u2028\u2029]/.test(v), "must be one line");
const argKey = /^[a-z_][a-z0-9_]*$/;
/** What the crawl script passes itself (scrapy's last `-a`/`-s` of a name wins): config must not set these. */
export const SCRIPT_SPIDER_ARGUMENTS = ["crawl_time"];
export const SCRIPT_SETTINGS = ["DATABASE_URL", "FILES_STORE", "PROXY_SPIDERS", "SENTRY_DSN", "LOG_FILE"];
function notSetByScript(owned: string[], what: string) {
    return (pairs: Record<string, string>, ctx: z.RefinementCtx) => {
        const taken = Object.keys(pairs).filter((k) => owned.includes(k));
        if (taken.length > 0) {
            ctx.addIssue({ code: "custom", message: `sets ${taken.join(", ")}, which the crawl script sets itself (${owned.join(", ")}; ${what}); remove it` });
        }
    };
}
const spiderArguments = z
    .union([
        z.string().transform((s, ctx) => parsePairs(s, "-a", argKey, ctx)),
        z.record(z.string().regex(argKey, "keys must be snake case"), oneLine),
    ], { error: "must be '-a key=value' pairs or a mapping of snake case keys to one-line strings" })
    .superRefine(notSetByScript(SCRIPT_SPIDER_ARGUMENTS, "crawl_time comes from the crawl's crawl_time"))
    .default({});
const settingKey = /^[A-Z][A-Z0-9_]*$/;
const scrapySettings = z
    .union([
        z.string().transform((s, ctx) => parsePairs(s, "-s", settingKey, ctx)),
        z.record(z.string().regex(settingKey, "keys must be Scrapy setting names (upper case)"), oneLine),
    ], { error: "must be '-s key=value' pairs or a mapping of Scrapy setting names to one-line strings" })
    .superRefine(notSetByScript(SCRIPT_SETTINGS, "the database, the files store, the proxy, Sentry and the log file are the server's"))
    .default({});

function parsePairs(text: string, flag: string, keyRe: RegExp, ctx: z.RefinementCtx): Record<string, string> {
    const tokens = text.trim() === "" ? [] : text.trim().split(/\s+/);
    const out: Record<string, string> = {};
    for (let i = 0; i < tokens.length; i += 2) {
        const pair = tokens[i + 1];
        const eq = pair?.indexOf("=") ?? -1;
        if (tokens[i] !== flag || pair === undefined || eq < 1 || !keyRe.test(pair.slice(0, eq))) {
            ctx.addIssue({ code: "custom", message: `must be '${flag} key=value' pairs (key ${keyRe.source}); use a mapping for values with spaces` });
            return {};
        }
        out[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    return out;
}

const crawlSchema = z.strictObject({
    identifier: z.string().regex(/^[A-Z][A-Z0-9_]*$/, "must be upper case with underscores, e.g. DOMINICAN_REPUBLIC"),
    // Also a file name (bin/<spider>.sh) and a table name left unquoted in SQL, with cardinal's
    // idx_<spider>_clean the longest: 4 + 53 + 6 = 63, PostgreSQL's limit (longer names are cut).
    spider: z
        .string()
        .regex(/^[a-z][a-z0-9_]*$/, "must be a snake case spider name, e.g. dominican_republic_api")
        .max(53, "must be at most 53 characters (its tables and index, e.g. idx_<spider>_clean, must fit PostgreSQL's 63)")
        .refine((s) => !PG_RESERVED_WORDS.has(s), "is a word PostgreSQL reserves, and it names the spider's table; choose another spider"),
    crawl_time: z.iso.date("must be a real date YYYY-MM-DD, e.g. '2025-05-06'"),
    spider_arguments: spiderArguments,
    cardinal: z.boolean().default(false),
    // ocdscardinal's settings (INI text) for this spider; only with cardinal: true.
    cardinal_settings: z.string().max(65536, "must be at most 64 KiB").refine((v) => !v.includes("\0"), "must not hold NUL bytes").optional(),
    users: z.array(pgRole).default([]),
    day: z.number().int().min(1, "must be 1 to 28").max(28, "must be 1 to 28").optional(),
    settings: scrapySettings,
    // The pillar's `proxy`: Salt's cron.sh passes -s PROXY_SPIDERS=<spider> when it is set.
    proxy: z.boolean().default(false),
});

/** The tables Salt loads into kingfisher_collect (the same list as incrementalCopy.ts's SALT_LOADED_TABLES; a test keeps them equal). */
const SALT_TABLES = ["codelist", "indicator", "cpc", "unspsc", "excluded_supplier"];

// Salt's cron.sh passes -s SENTRY_DSN={{ pillar.kingfisher_collect.env.SENTRY_DSN }} unquoted, and
// the crawl script must equal Salt's byte for byte: only the characters of a Sentry DSN URL.
const sentryDsn = z
    .string()
    .regex(/^https:\/\/[A-Za-z0-9]+(:[A-Za-z0-9]+)?@[a-z0-9.-]+(:[0-9]+)?\/[A-Za-z0-9\/_-]*[0-9]$/, "must be a Sentry DSN such as https://<key>@o1.ingest.sentry.io/<project> (pillar kingfisher_collect.env.SENTRY_DSN); set it with pulumi config set --secret --path 'data-support:incremental.sentryDsn' ...");

const appName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, "must be an app directory name (at most 63 characters), e.g. kingfisher-process");

const mainFields = {
        role: z.literal("main"),
        // Names this migration; one-off steps record their completion under it on each host.
        migrationId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be lower case letters, digits and '-', e.g. ocp04-to-ocp23").default("migration"),
        transfer: z
            .strictObject({
                // How long the old server's sshd accepts the new server's transfer key (steps 6 and 7).
                keyHours: z.number().int().min(1, "must be 1 to 168 hours").max(168, "must be 1 to 168 hours").default(12),
            })
            .default({ keyHours: 12 }),
        servers: z.strictObject({
            oldMain: serverSchema,
            newMain: serverSchema,
            docs: serverSchema,
            replica: serverSchema.optional(),
        }),
        ssh: z
            .strictObject({
                // Operators use their SSH agent; a private key is the exception, and then a secret.
                privateKey: z
                    .string()
                    .regex(/^-----BEGIN ([A-Z ]*)PRIVATE KEY-----\r?\n[\s\S]+\n-----END \1PRIVATE KEY-----\s*$/, "must be a whole PEM/OpenSSH private key, BEGIN to END line")
                    .optional(),
                agentSocketPath: absolutePath.optional(),
            })
            .default({}),
        tinyproxy: z
            .strictObject({
                port: z.number().int().min(1).max(65535).default(8888),
                configPath: absolutePath.default("/etc/tinyproxy/tinyproxy.conf"),
                // Addresses of other servers that use the proxy: they stay allowed.
                keep: z.array(allowedAddress).default([]),
                // A URL fetched from the new server through the proxy to prove it is admitted.
                checkUrl: httpUrl.default("https://www.open-contracting.org/"),
            })
            .default({ port: 8888, configPath: "/etc/tinyproxy/tinyproxy.conf", keep: [], checkUrl: "https://www.open-contracting.org/" }),
        postgres: z.strictObject({
            publicHostname: hostname,
            version: z.number().int().min(12).max(18).default(15),
            replication: z
                .strictObject({
                    role: pgRole.default("replica"),
                    slot: z.string().regex(/^[a-z0-9_]{1,63}$/, "must be lower case, digits and _").default("replica1"),
                })
                .default({ role: "replica", slot: "replica1" }),
        }),
        docker: z
            .strictObject({
                user: unixUser.default("deployer"),
                uid: z.number().int().min(1).max(65534).default(1005),
                deployDir: absolutePath.default("/data/deploy"),
                apps: z.array(appName).min(1).default(["kingfisher-process", "pelican-backend", "pelican-frontend"]),
                migrations: z
                    .array(z.strictObject({ app: appName, service: z.string().regex(/^[a-z][a-z0-9_-]*$/, "must be a compose service name") }))
                    .default([
                        { app: "kingfisher-process", service: "cron" },
                        { app: "pelican-frontend", service: "web" },
                    ]),
                exchangeRatesApp: appName.default("pelican-backend"),
            })
            .default({
                user: "deployer",
                uid: 1005,
                deployDir: "/data/deploy",
                apps: ["kingfisher-process", "pelican-backend", "pelican-frontend"],
                migrations: [
                    { app: "kingfisher-process", service: "cron" },
                    { app: "pelican-frontend", service: "web" },
                ],
                exchangeRatesApp: "pelican-backend",
            }),
        incremental: z
            .strictObject({
                user: unixUser.default("incremental"),
                home: absolutePath.default("/home/incremental"),
                database: pgRole.default("kingfisher_collect"),
                crawls: z.array(crawlSchema).default([]),
                // A secret: the Sentry DSN every crawl script passes to scrapy, as Salt's does.
                sentryDsn: sentryDsn.optional(),
            })
            .default({ user: "incremental", home: "/home/incremental", database: "kingfisher_collect", crawls: [] }),
        gates: z.strictObject({
            scrapyd: z.strictObject({
                url: httpUrl,
                project: z.string().regex(/^[a-z][a-z0-9_]*$/, "must be a Scrapyd project name").default("kingfisher"),
                username: z.string().regex(/^[^:\s]+$/, "must not contain ':' or spaces"),
                password: secretString,
            }),
            rabbitmq: z.strictObject({
                url: httpUrl,
                vhost: z.string().min(1).refine((v) => !/[\x00-\x1f\x7f]/.test(v), "must be one line without control characters").default("/"),
                username: z.string().regex(/^[^:\s]+$/, "must not contain ':' or spaces"),
                password: secretString,
            }),
            // The DNS gate: deploy spiders once this name resolves to the new server.
            collectHostname: hostname,
        }),
        paths: z
            .strictObject({
                postgresBackupsCron: absolutePath.default("/etc/cron.d/postgres_backups"),
                // Where one-off steps record completion (and keep what they took away) on each host.
                stateDir: absolutePath.default("/var/lib/data-support"),
            })
            .default({ postgresBackupsCron: "/etc/cron.d/postgres_backups", stateDir: "/var/lib/data-support" }),
};

const mainSchema = z
    .strictObject(mainFields)
    // Across keys, so only once each key is valid: a bad app name is not also "missing from apps".
    .superRefine((cfg, ctx) => {
        const seen = new Map<string, number>();
        cfg.incremental.crawls.forEach((crawl, i) => {
            if (seen.has(crawl.identifier)) {
                ctx.addIssue({ code: "custom", path: ["incremental", "crawls", i, "identifier"], message: `duplicates crawls[${seen.get(crawl.identifier)}]; identifiers must be unique` });
            }
            seen.set(crawl.identifier, i);
        });
        cfg.incremental.crawls.forEach((crawl, i) => {
            if (crawl.cardinal_settings !== undefined && !crawl.cardinal) {
                ctx.addIssue({ code: "custom", path: ["incremental", "crawls", i, "cardinal_settings"], message: "is set but cardinal is not true; set cardinal: true or remove it" });
            }
            // bi/settings/<spider>.ini is Salt's file (salt/kingfisher/collect/files/cardinal/): the
            // program writes it, so it must hold the same text, not an empty file.
            if (crawl.cardinal && crawl.cardinal_settings === undefined) {
                ctx.addIssue({ code: "custom", path: ["incremental", "crawls", i, "cardinal_settings"], message: `is required with cardinal: true; give the text of salt/kingfisher/collect/files/cardinal/${crawl.spider}.ini of the deploy repository` });
            }
        });
        if (cfg.incremental.crawls.length > 0 && cfg.incremental.sentryDsn === undefined) {
            ctx.addIssue({ code: "custom", path: ["incremental", "sentryDsn"], message: "is required when incremental.crawls is not empty (every crawl script passes it to scrapy, as Salt's cron.sh does); set the pillar's kingfisher_collect.env.SENTRY_DSN with pulumi config set --secret --path 'data-support:incremental.sentryDsn' ..." });
        }
        const spiders = new Map<string, number>();
        cfg.incremental.crawls.forEach((crawl, i) => {
            // Each crawl owns bin/<spider>.sh, so two crawls of one spider would overwrite each other.
            if (spiders.has(crawl.spider)) {
                ctx.addIssue({ code: "custom", path: ["incremental", "crawls", i, "spider"], message: `is used by crawls[${spiders.get(crawl.spider)}] too; one crawl per spider` });
            }
            spiders.set(crawl.spider, i);
        });
        const names = Object.entries(cfg.servers).filter(([, s]) => s !== undefined) as [string, { hostname: string }][];
        names.forEach(([key, server]) => {
            const twin = names.find(([other, s]) => other !== key && s.hostname === server.hostname);
            if (twin && key > twin[0]) {
                ctx.addIssue({ code: "custom", path: ["servers", key, "hostname"], message: `is the same as servers.${twin[0]}.hostname; each server needs its own` });
            }
        });
        // Each app and each migration is one resource named after the app: one listed twice would
        // register that name twice, and the engine fails with "Duplicate resource URN", naming no key.
        cfg.docker.apps.forEach((app, i) => {
            const first = cfg.docker.apps.indexOf(app);
            if (first < i) ctx.addIssue({ code: "custom", path: ["docker", "apps", i], message: `lists '${app}' twice (also docker.apps[${first}]); list each app once` });
        });
        cfg.docker.migrations.forEach((m, i) => {
            const first = cfg.docker.migrations.findIndex((o) => o.app === m.app);
            if (first < i) ctx.addIssue({ code: "custom", path: ["docker", "migrations", i, "app"], message: `migrates '${m.app}' twice (also docker.migrations[${first}]); one migration per app` });
        });
        // Each crawl's tables (the spider's, and cardinal's <spider>_clean, <spider>_result and index)
        // live in one schema with Salt's own tables: a spider named like one of them would write there.
        cfg.incremental.crawls.forEach((crawl, i) => {
            if (SALT_TABLES.includes(crawl.spider)) {
                ctx.addIssue({ code: "custom", path: ["incremental", "crawls", i, "spider"], message: `is the name of a table Salt loads into the crawls' database (${SALT_TABLES.join(", ")}); choose another spider` });
            }
            const owner = cfg.incremental.crawls.findIndex((o, j) => j !== i && [`${o.spider}_clean`, `${o.spider}_result`, `idx_${o.spider}_clean`].includes(crawl.spider));
            if (owner >= 0) {
                ctx.addIssue({ code: "custom", path: ["incremental", "crawls", i, "spider"], message: `names a table or index of crawls[${owner}] (spider ${cfg.incremental.crawls[owner].spider}, with cardinal); choose another spider` });
            }
        });
        cfg.incremental.crawls.forEach((crawl, i) => {
            // The crawl's script is the resource data-support-crawls-<identifier>: CRONTAB is the crontab's name.
            if (crawl.identifier === "CRONTAB") {
                ctx.addIssue({ code: "custom", path: ["incremental", "crawls", i, "identifier"], message: "CRONTAB is reserved (the crontab's resource has that name); choose another identifier" });
            }
        });
        for (const app of [...cfg.docker.migrations.map((m) => m.app), cfg.docker.exchangeRatesApp]) {
            if (!cfg.docker.apps.includes(app)) {
                ctx.addIssue({ code: "custom", path: ["docker", "apps"], message: `must include '${app}' (used by docker.migrations or docker.exchangeRatesApp)` });
            }
        }
    }, { when: (payload) => payload.issues.length === 0 });

// The replica stack needs only the replica, how to reach the main stack, and PostgreSQL's version.
const replicaSchema = z.strictObject({
    role: z.literal("replica"),
    migrationId: mainFields.migrationId,
    servers: z.strictObject({ replica: serverSchema }),
    ssh: mainFields.ssh,
    postgres: z.strictObject({ version: z.number().int().min(12).max(18).default(15) }).default({ version: 15 }),
    paths: mainFields.paths,
    // The replica stack reads the main stack through this StackReference...
    mainStack: z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, "must be organization/project/stack").default("organization/data-support/main"),
    // ...unless the main stack lives elsewhere: then its outputs are given here.
    main: z
        .strictObject({
            hostname,
            ipv4: z.ipv4("must be an IPv4 address"),
            role: pgRole.default("replica"),
            slot: z.string().regex(/^[a-z0-9_]{1,63}$/, "must be lower case, digits and _").default("replica1"),
            // The replica writes it into .pgpass, where ':' and '\\' are field syntax; the main stack generates letters and digits.
            password: secretString.refine((p) => !/[:\\]/.test(p), "must not contain ':' or '\\' (copy it from the main stack: pulumi stack output -s main --show-secrets)"),
            maxWorkerProcesses: z.number().int().min(1).max(262143),
        })
        .optional(),
});

// Exported for the tests, which enumerate every key of it (test/unit/badConfig.property.test.ts).
export const stackSchema = z.discriminatedUnion("role", [mainSchema, replicaSchema], { error: "must be 'main' or 'replica'" });

export type StackConfig = z.output<typeof stackSchema>;
export type MainConfig = z.output<typeof mainSchema>;
export type ReplicaConfig = z.output<typeof replicaSchema>;
export type ServerConfig = z.output<typeof serverSchema>;
export type Crawl = z.output<typeof crawlSchema>;

/** Keys whose values are secrets: never in command text or plain outputs. */
export const SECRET_PATHS = ["ssh.privateKey", "gates.scrapyd.password", "gates.rabbitmq.password", "main.password", "incremental.sentryDsn"] as const;

// A RunError: the runtime prints its message alone, without a stack or the `problems` property
// (@pulumi/pulumi 3.248.0 cmd/run/run.js, uncaughtHandler: RunError.isInstance -> log.error(err.message)).
export class ConfigError extends pulumi.RunError {
    constructor(readonly problems: string[]) {
        super(
            `Invalid configuration for stack; fix these keys in Pulumi.<stack>.yaml (pulumi config set --path ...) and run again:\n` +
                problems.map((p) => `  - ${p}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

function keyPath(path: PropertyKey[]): string {
    let out = `${PROJECT}:`;
    path.forEach((part, i) => {
        if (typeof part === "number") out += `[${part}]`;
        else out += (i === 0 ? "" : ".") + String(part);
    });
    return out;
}

/**
 * Validates raw config values (key -> parsed JSON value, as Pulumi gives them) and returns the typed
 * config, or throws one ConfigError that lists every bad key with the reason.
 */
export function parseStackConfig(raw: Record<string, unknown>): StackConfig {
    const problems: string[] = [];
    for (const key of Object.keys(raw)) {
        if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
            problems.push(`${PROJECT}:${key}: unknown key; expected one of ${CONFIG_KEYS.join(", ")}`);
        }
    }
    // reportInput: zod leaves `input` out of issues otherwise, and every wrong type read "is required".
    const result = stackSchema.safeParse(raw, { reportInput: true });
    if (!result.success) {
        for (const issue of result.error.issues) {
            if (issue.code === "unrecognized_keys") {
                // zod names the object; name each key (top-level ones not in CONFIG_KEYS are listed above).
                for (const key of issue.keys) {
                    if (issue.path.length > 0 || (CONFIG_KEYS as readonly string[]).includes(key)) {
                        problems.push(`${keyPath([...issue.path, key])}: unknown key${issue.path.length === 0 ? ` for a '${String(raw.role)}' stack` : ""}; check its spelling, or remove it`);
                    }
                }
                continue;
            }
            let message = issue.code === "invalid_type" && issue.input === undefined ? "is required" : issue.message;
            if (issue.code === "custom" && issue.params?.[HOST_KEY_FIX]) message += `. Pin its ed25519 key: ${pinHostKeyCommand(keyPath(issue.path), ...hostOf(raw, issue.path))}`;
            problems.push(`${keyPath(issue.path)}: ${message}`);
        }
    }
    if (problems.length > 0 || !result.success) throw new ConfigError(problems);
    return result.data;
}

/** The host and port a hostKey belongs to (servers.X.ssh.hostKey, or its jumpHost's), as far as known. */
function hostOf(raw: Record<string, unknown>, path: PropertyKey[]): [string, number] {
    const holder = path.slice(0, -1).reduce<any>((node, part) => node?.[part as string], raw);
    const server = path.slice(0, -2).reduce<any>((node, part) => node?.[part as string], raw);
    const [host, port] = path[path.length - 2] === "jumpHost" ? [holder?.host, holder?.port] : [server?.hostname, holder?.port];
    const known = typeof host === "string" && /^[A-Za-z0-9.:-]+$/.test(host);
    return [known ? host : "HOST", typeof port === "number" && Number.isInteger(port) && port > 0 && port < 65536 ? port : 22];
}

/**
 * Reads every `data-support:*` key of the running stack (as the CLI passes them: strings, with
 * structured values as JSON) and validates them. Throws ConfigError before anything is registered.
 */
export function loadStackConfig(all: Record<string, string>): StackConfig {
    const raw: Record<string, unknown> = {};
    for (const [fullKey, text] of Object.entries(all)) {
        if (!fullKey.startsWith(`${PROJECT}:`)) continue;
        const key = fullKey.slice(PROJECT.length + 1);
        raw[key] = /^\s*[[{]/.test(text) ? jsonOrText(text) : text;
    }
    return parseStackConfig(raw);
}

// A plain value may start with '[' or '{' too: if it is not JSON, the schema judges it as text
// (and names its key), instead of a bare SyntaxError.
function jsonOrText(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}
