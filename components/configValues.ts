// The value types of the config schema (config.ts): names, paths, roles, URLs, servers and crawls,
// each checked for every place its value ends up (shell text, crontab lines, file names, SQL, YAML).
import { z } from "zod";
import { hostKey } from "./hostKey";

const hostnameRe = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
export const hostname = z.string().regex(hostnameRe, "must be a lower-case DNS name such as ocp23.open-contracting.org");
export const unixUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name (lower case, digits, _ or -)");
// Paths end up in shell text (quoted), crontab lines (where '%' and spaces would change the entry)
// and `dirname`-style edits (a trailing '/' or '//' would name another file): one canonical form.
export const absolutePath = z
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
export const pgRole = z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a PostgreSQL role name (lower case, digits, _; at most 63)")
    .refine((r) => !PG_RESERVED_WORDS.has(r), "is a word PostgreSQL reserves (it would need quoting in SQL); choose another name")
    .refine((r) => !SPECIAL_ROLES.has(r) && !r.startsWith("pg_"), "is a role name with a special meaning in PostgreSQL (public, none, pg_*, or a pg_hba.conf key word); choose another name");
export const secretString = z.string().min(1, "must be set (pulumi config set --secret --path ...)").refine((s) => !/[\r\n\0]/.test(s), "must be one line");
export const httpUrl = z
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

export const serverSchema = z.strictObject({
    hostname,
    ipv4: z.ipv4("must be an IPv4 address"),
    ipv6: z.ipv6("must be an IPv6 address").optional(),
    ssh: sshSchema.default({ user: "root", port: 22 }),
});

export const allowedAddress = z.strictObject({
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
        const pair = tokens[i + 1] ?? ""; // a flag with nothing after it: no '=', refused below
        const eq = pair.indexOf("=");
        if (tokens[i] !== flag || eq < 1 || !keyRe.test(pair.slice(0, eq))) {
            ctx.addIssue({ code: "custom", message: `must be '${flag} key=value' pairs (key ${keyRe.source}); use a mapping for values with spaces` });
            return {};
        }
        out[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    return out;
}

export const crawlSchema = z.strictObject({
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
export const SALT_TABLES = ["codelist", "indicator", "cpc", "unspsc", "excluded_supplier"];

// Salt's cron.sh passes -s SENTRY_DSN={{ pillar.kingfisher_collect.env.SENTRY_DSN }} unquoted, and
// the crawl script must equal Salt's byte for byte: only the characters of a Sentry DSN URL.
export const sentryDsn = z
    .string()
    .regex(/^https:\/\/[A-Za-z0-9]+(:[A-Za-z0-9]+)?@[a-z0-9.-]+(:[0-9]+)?\/[A-Za-z0-9\/_-]*[0-9]$/, "must be a Sentry DSN such as https://<key>@o1.ingest.sentry.io/<project> (pillar kingfisher_collect.env.SENTRY_DSN); set it with pulumi config set --secret --path 'data-support:incremental.sentryDsn' ...");

export const appName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, "must be an app directory name (at most 63 characters), e.g. kingfisher-process");
