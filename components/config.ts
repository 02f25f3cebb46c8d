// Over 300 lines: the one schema of both stacks (design.md: one module); its value types are in configValues.ts, the host key check in hostKey.ts.
// The stack's configuration: one zod schema for both roles, validated before any resource is
// registered. Components take the typed `StackConfig` below, never raw config.
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { hostname, unixUser, absolutePath, pgRole, secretString, httpUrl, serverSchema, allowedAddress, crawlSchema, SALT_TABLES, sentryDsn, appName } from "./configValues";
import { pinHostKeyCommand, HOST_KEY_FIX } from "./hostKey";
// Exported here as before the split, for the components and tests that import them from config.
export { hostKeyProblem, pinHostKeyCommand } from "./hostKey";
export { PG_RESERVED_WORDS, SCRIPT_SPIDER_ARGUMENTS, SCRIPT_SETTINGS } from "./configValues";

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
