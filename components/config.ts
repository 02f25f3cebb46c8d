// The stack's configuration: one zod schema for both roles, validated before any resource is
// registered. Components take the typed `StackConfig` below, never raw config.
import { z } from "zod";

/** The project's config namespace: keys are `data-support:<key>` in Pulumi.<stack>.yaml. */
export const PROJECT = "data-support";

// Top-level keys read from the stack's config. Everything else in the namespace is an error.
export const CONFIG_KEYS = [
    "role",
    "migrationId",
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
// A public host key as `ssh-keygen -y` or `ssh-keyscan` prints it (type and base64; a comment is allowed).
const hostKey = z
    .string()
    .regex(
        /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/,
        "must be a public host key line such as 'ssh-ed25519 AAAA...' (ssh-keyscan -t ed25519 <host>)",
    );
const unixUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name (lower case, digits, _ or -)");
const absolutePath = z
    .string()
    .regex(/^\/[A-Za-z0-9._\/-]*$/, "must be an absolute path of letters, digits, '.', '_', '-' and '/'")
    .refine((p) => !p.split("/").includes(".."), "must not contain '..'");
const pgRole = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a PostgreSQL role name (lower case, digits, _; at most 63)");
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
    comment: z.string().regex(/^[^\n\r\0\u0085\u2028\u2029#]{1,200}$/, "must be one line without '#' naming what uses the proxy"),
});

// Spider arguments: either the pillar's string form ("-a key=value -a key2=value2") or a mapping.
// Both end as a key -> value record; each pair becomes one `-a key=value` argument, never raw shell.
const argKey = /^[a-z_][a-z0-9_]*$/;
const spiderArguments = z
    .union([
        z.string().transform((s, ctx) => parsePairs(s, "-a", argKey, ctx)),
        z.record(z.string().regex(argKey, "keys must be snake case"), z.string().refine((v) => !/[\n\0]/.test(v), "must be one line")),
    ], { error: "must be '-a key=value' pairs or a mapping of snake case keys to one-line strings" })
    .default({});
const settingKey = /^[A-Z][A-Z0-9_]*$/;
const scrapySettings = z
    .union([
        z.string().transform((s, ctx) => parsePairs(s, "-s", settingKey, ctx)),
        z.record(z.string().regex(settingKey, "keys must be Scrapy setting names (upper case)"), z.string().refine((v) => !/[\n\0]/.test(v), "must be one line")),
    ], { error: "must be '-s key=value' pairs or a mapping of Scrapy setting names to one-line strings" })
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
    spider: z.string().regex(/^[a-z][a-z0-9_]*$/, "must be a snake case spider name, e.g. dominican_republic_api"),
    crawl_time: z.iso.date("must be a real date YYYY-MM-DD, e.g. '2025-05-06'"),
    spider_arguments: spiderArguments,
    cardinal: z.boolean().default(false),
    // ocdscardinal's settings (INI text) for this spider; only with cardinal: true.
    cardinal_settings: z.string().max(65536, "must be at most 64 KiB").refine((v) => !v.includes("\0"), "must not hold NUL bytes").optional(),
    users: z.array(pgRole).default([]),
    day: z.number().int().min(1, "must be 1 to 28").max(28, "must be 1 to 28").optional(),
    settings: scrapySettings,
});

const appName = z.string().regex(/^[a-z][a-z0-9-]*$/, "must be an app directory name, e.g. kingfisher-process");

const mainFields = {
        role: z.literal("main"),
        // Names this migration; one-off steps record their completion under it on each host.
        migrationId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be lower case letters, digits and '-', e.g. ocp04-to-ocp23").default("migration"),
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
                vhost: z.string().min(1).default("/"),
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
        });
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
            password: secretString,
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
export const SECRET_PATHS = ["ssh.privateKey", "gates.scrapyd.password", "gates.rabbitmq.password", "main.password"] as const;

export class ConfigError extends Error {
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
            const message = issue.code === "invalid_type" && issue.input === undefined ? "is required" : issue.message;
            problems.push(`${keyPath(issue.path)}: ${message}`);
        }
    }
    if (problems.length > 0 || !result.success) throw new ConfigError(problems);
    return result.data;
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
