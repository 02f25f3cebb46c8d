// Over 300 lines: one table of bad values for every config key, which must be in one place to be checked complete.
// Issue 9, part 1: generated invalid configs, one broken key each, over every key of the schema.
// Each must end in one ConfigError naming that key, before the program registers any resource
// (so no command can run). The keys come from the schema itself, so a key added later without a
// generator of bad values fails the coverage check below instead of going untested.
import { test, type TestContext } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import { z } from "zod";
import { CONFIG_KEYS, ConfigError, PROJECT, parseStackConfig, stackSchema } from "../../components/config";
import { CANARY, HOST_KEY, KEYS, mainConfig, withReplica } from "../support/fixtures";
import { runProgram, type Registered } from "../../tools/program";

const SEED = 20250506;

type Path = (string | number)[];
type Json = { [key: string]: any };

/** The stack's key for a path, as ConfigError writes it: data-support:servers.newMain.ipv4, crawls[0]. */
function keyOf(path: Path): string {
    return `${PROJECT}:` + path.map((p, i) => (typeof p === "number" ? `[${p}]` : (i === 0 ? "" : ".") + p)).join("");
}

// The schema as config is written (io: input), one branch per role; a transform (spider_arguments'
// string form) is left untyped.
const BRANCH_SCHEMAS: Record<string, Json> = Object.fromEntries(
    ((z.toJSONSchema(stackSchema, { io: "input", unrepresentable: "any" }) as Json).oneOf as Json[]).map((b) => [b.properties.role.const, b]),
);

// ---- Valid starting points: every optional key set, so every key has a value to break. ----

const JUMP = { host: "bastion.open-contracting.org", port: 2222, user: "jump", hostKey: HOST_KEY };
const CRAWLS = [
    {
        identifier: "DOMINICAN_REPUBLIC",
        spider: "dominican_republic_api",
        crawl_time: "2025-05-06",
        spider_arguments: "-a compile_releases=true",
        settings: "-s CLOSESPIDER_ITEMCOUNT=10",
        users: ["dgcp"],
        cardinal: true,
        cardinal_settings: "[defaults]\ncurrency = USD\n",
    },
    { identifier: "ECUADOR", spider: "ecuador_sercop_bulk", crawl_time: "2025-01-01", day: 1, spider_arguments: { from_date: "2020-01-01" }, settings: { DOWNLOAD_DELAY: "1" }, users: ["ecuador"], cardinal: false, proxy: true },
];

function withJumpHosts(servers: Json): Json {
    return Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, { ...s, ssh: { ...s.ssh, jumpHost: JUMP } }]));
}

/**
 * Parsed (so every default is filled in), then written back as config. Keys the schema does not
 * have are dropped first, so a fixture may offer a value for a key that is not (or no longer) there.
 */
function complete(raw: Json, crawls?: Json[]): Json {
    const schema = BRANCH_SCHEMAS[raw.role];
    const full = structuredClone(parseStackConfig(known(raw, schema))) as Json;
    // Keep both forms of spider_arguments and settings (parsing turns the string form into a mapping).
    if (crawls) full.incremental.crawls = known(crawls, schema.properties.incremental.properties.crawls);
    return full;
}

/** Only what the schema node has keys for. */
function known(value: any, node: Json): any {
    if (Array.isArray(value) && node.type === "array") return value.map((v) => known(v, node.items));
    if (value && typeof value === "object" && node.type === "object" && node.properties) {
        return Object.fromEntries(Object.entries(value).filter(([k]) => k in node.properties).map(([k, v]) => [k, known(v, node.properties[k])]));
    }
    return value;
}

const sshSettings = { privateKey: CANARY.privateKey, agentSocketPath: "/run/user/1000/ssh-agent.sock" };
const base = withReplica(mainConfig());
const FULL_MAIN = complete(
    { ...base, servers: withJumpHosts(base.servers), ssh: sshSettings, postgres: { ...base.postgres, replication: { role: "replica", slot: "replica1" } }, incremental: { crawls: CRAWLS, sentryDsn: "https://abc@o1.ingest.sentry.io/1" } },
    CRAWLS,
);
const FULL_REPLICA = complete({
    role: "replica",
    migrationId: "ocp04-to-ocp23",
    servers: withJumpHosts({ replica: base.servers.replica }),
    ssh: sshSettings,
    mainStack: "organization/data-support/main",
    main: { hostname: "ocp23.open-contracting.org", ipv4: "198.51.100.23", password: "canary-replication-S3cr3t-51aa", maxWorkerProcesses: 8 },
});

// ---- The keys, from the schema: each leaf (a value that is not an object of named keys). ----

interface Leaf {
    /** The schema's path, `[]` standing for any index: incremental.crawls[].identifier */
    pattern: string;
    node: Json;
    required: boolean;
    /** The keys its parent object allows (for an unknown sibling key). */
    siblings: string[];
}

function leavesOf(node: Json, prefix: string, required: boolean, siblings: string[], out: Leaf[]): Leaf[] {
    if (node.type === "object" && node.properties) {
        const keys = Object.keys(node.properties);
        for (const key of keys) {
            leavesOf(node.properties[key], prefix ? `${prefix}.${key}` : key, (node.required ?? []).includes(key), keys, out);
        }
    } else if (node.type === "array") {
        leavesOf(node.items, `${prefix}[]`, true, siblings, out);
    } else {
        out.push({ pattern: prefix, node, required, siblings });
    }
    return out;
}


const BRANCHES = Object.fromEntries(Object.entries(BRANCH_SCHEMAS).map(([role, b]) => [role, leavesOf(b, "", true, [], [])]));

/** Concrete paths of a leaf in a config: one per array index present. */
function instances(config: Json, pattern: string): Path[] {
    let paths: Path[] = [[]];
    for (const part of pattern.split(".")) {
        const name = part.replace(/(\[\])+$/, "");
        const depth = (part.length - name.length) / 2;
        paths = paths.map((p) => [...p, name]);
        for (let d = 0; d < depth; d++) paths = paths.flatMap((p) => (get(config, p) ?? []).map((_: unknown, i: number) => [...p, i]));
    }
    return paths.filter((p) => get(config, p) !== undefined);
}

function get(config: Json, path: Path): any {
    return path.reduce((node: any, part) => node?.[part], config);
}

function mutate(config: Json, path: Path, value: unknown, remove = false): Json {
    const copy = structuredClone(config);
    const parent = get(copy, path.slice(0, -1));
    const last = path[path.length - 1];
    if (remove) delete parent[last];
    else parent[last] = value;
    return copy;
}

// ---- Bad values. ----

/** One character that no valid value of the kind may contain, put in at any position of a valid one. */
function corrupt(valid: string, never: string): fc.Arbitrary<string> {
    return fc.tuple(fc.nat({ max: valid.length }), fc.constantFrom(...never)).map(([i, c]) => valid.slice(0, i) + c + valid.slice(i));
}

function outside(min: number, max: number): fc.Arbitrary<number> {
    return fc.oneof(
        fc.integer({ min: -1_000_000, max: min - 1 }),
        fc.integer({ min: max + 1, max: max + 1_000_000 }),
        fc.double({ min, max, noInteger: true, noNaN: true }),
    );
}

/** Bad values for a key: `fixed` ones are always tried, `random` ones drawn (from the key's valid value). */
interface Bad {
    fixed: unknown[];
    random?: fc.Arbitrary<unknown>;
}

const badHostname = (v: string): Bad => ({ fixed: ["", "ocp23.", ".ocp23", "-ocp23.org", "ocp23-.org", "ocp23..org", `${"a".repeat(64)}.org`, `${"abc.".repeat(64)}org`], random: corrupt(v, "ABXYZ_ /$;@*'\n") });
const badPath = (v: string): Bad => ({ fixed: [v.slice(1), `${v}/../etc`, "/tmp/../etc/shadow", "~/x", ""], random: corrupt(v, " $;'`\"*~&|\n") });
const badPgRole = (v: string): Bad => ({ fixed: ["1abc", "a".repeat(64), ""], random: corrupt(v, "ABZ- ;'\".$") });
const badUnixUser = (v: string): Bad => ({ fixed: ["1user", "-user", "a".repeat(33), ""], random: corrupt(v, "ABZ :/$;.'") });
const badAppName = (v: string): Bad => ({ fixed: ["1app", "-app", ""], random: corrupt(v, "ABZ_ /.$;") });
const badSnake = (v: string): Bad => ({ fixed: ["_x", "1x", ""], random: corrupt(v, "ABZ- ./$") });
const badRange = (min: number, max: number) => (): Bad => ({ fixed: [min - 1, max + 1, min + 0.5], random: outside(min, max) });
const badPairs = (flag: string, other: string, goodKey: string, badKey: RegExp): Bad => ({
    fixed: [flag, `${flag} x`, `${flag} =1`, `${other} ${goodKey}=1`, `${goodKey}=1`, `${flag} ${goodKey}=1 ${flag}`, `${flag} ${goodKey}=1; rm -rf /`, { "Bad-Key": "1" }, { [goodKey]: "a\nb" }, { [goodKey]: 5 }],
    random: fc.stringMatching(badKey).map((k) => `${flag} ${k}=v`),
});

/** Invalid values for each key, by the schema's path: what a slip or a hostile value looks like. */
const KINDS: [RegExp, (valid: any) => Bad][] = [
    [/^role$/, () => ({ fixed: ["", "primary", "Main", "main "], random: fc.string().filter((s) => s !== "main" && s !== "replica") })],
    [/^migrationId$/, (v) => ({ fixed: ["-leading", "a".repeat(64), ""], random: corrupt(v, "ABZ_ .$;/") })],
    [/jumpHost\.host$/, (v) => ({ fixed: ["", "bastion.", "2001:db8::zz", "bad host"], random: corrupt(v, "_ /$;@*'\n") })],
    [/(\.hostname|Hostname)$/, badHostname],
    [/\.ipv4$/, (v) => ({ fixed: ["198.51.100.256", "198.51.100", "198.51.100.1.2", "198.51.100.019", "2001:db8::1", ""], random: corrupt(v, "abz:/ -") })],
    [/\.ipv6$/, (v) => ({ fixed: ["2001:db8:::1", "2001:db8::1::2", "198.51.100.4", "12345::1", "2001:db8:0:0:0:0:0:0:1", ""], random: corrupt(v, "ghz/ ;$") })],
    [/keep\[\]\.address$/, (v) => ({ fixed: ["198.51.100.0/33", "2001:db8::/129", "10.0.0.999", "any", ""], random: corrupt(v, "ghz ;$#") })],
    // A line break of any kind would let a comment add an Allow line (tinyproxy) or a key (pillar YAML).
    [/keep\[\]\.comment$/, (v) => ({ fixed: ["", "#", "a".repeat(201), "a\nAllow 0.0.0.0/0", "a\rAllow 0.0.0.0/0", "a\u2028b: c"], random: corrupt(v, "#\n\r\u0085\u2028\u2029") })],
    [/\.port$/, badRange(1, 65535)],
    [/docker\.uid$/, badRange(1, 65534)],
    [/^transfer\.keyHours$/, badRange(1, 168)],
    [/maxWorkerProcesses$/, badRange(1, 262143)],
    [/postgres\.version$/, badRange(12, 18)],
    [/\.day$/, badRange(1, 28)],
    [/hostKey$/, (v) => ({
        fixed: [
            "", "ssh-ed25519", "ssh-dss AAAAB3NzaC1kc3M", "AAAAC3NzaC1lZDI1NTE5", "ecdsa-sha2-nistp999 AAAA", "ssh-ed25519 AAAA$(id)",
            // Real keys the provider cannot check against OpenSSH 8.8+, and real keys damaged or mislabelled.
            KEYS.rsa, KEYS.dss, `ocp04.open-contracting.org ${KEYS.ed25519}`, `ssh-ed25519 ${KEYS.p256.split(" ")[1]}`, KEYS.ed25519.slice(0, -4), KEYS.p384.slice(0, -8) + "AAAAAA==",
        ],
        random: corrupt(v, "$!*'\n"),
    })],
    [/privateKey$/, (v) => ({
        fixed: ["", "hunter2", HOST_KEY, "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", "-----BEGIN OPENSSH PRIVATE KEY-----", v.replace(/-----END[^]*$/, "")],
        random: fc.string({ minLength: 1 }).map((junk) => junk + v),
    })],
    [/(agentSocketPath|configPath|deployDir|incremental\.home|postgresBackupsCron|stateDir)$/, badPath],
    [/(replication\.role|main\.role|incremental\.database|users\[\])$/, badPgRole],
    [/\.slot$/, (v) => ({ fixed: ["a".repeat(64), ""], random: corrupt(v, "ABZ- ;'.$") })],
    [/(ssh\.user|jumpHost\.user|docker\.user|incremental\.user)$/, badUnixUser],
    [/(apps\[\]|migrations\[\]\.app|exchangeRatesApp)$/, badAppName],
    // A compose service name may hold '-', unlike the other snake-case names.
    [/migrations\[\]\.service$/, (v) => ({ fixed: ["_x", "1x", ""], random: corrupt(v, "ABZ ./$") })],
    // CRONTAB: the crawl's resource would be named like the crontab's.
    [/crawls\[\]\.identifier$/, (v) => ({ fixed: ["_LEADING", "1ABC", "", "CRONTAB"], random: corrupt(v, "abz- ./$") })],
    [/crawls\[\]\.spider$/, badSnake],
    [/crawls\[\]\.crawl_time$/, (v) => ({
        fixed: ["2025-02-30", "2025-00-10", "25-05-06", "2025-5-6", "2025/05/06", "2025-05-06T00:00:00", "yesterday", ""],
        random: fc.oneof(corrupt(v, "aT $;/"), fc.integer({ min: 13, max: 99 }).map((m) => `2025-${m}-01`)),
    })],
    [/crawls\[\]\.spider_arguments$/, () => badPairs("-a", "-s", "from_date", /^[A-Z-][a-zA-Z0-9-]{0,8}$/)],
    [/crawls\[\]\.settings$/, () => badPairs("-s", "-a", "DOWNLOAD_DELAY", /^[a-z_][a-z0-9_]{0,8}$/)],
    [/crawls\[\]\.cardinal$/, () => ({ fixed: ["true", "false", "yes", 1, 0] })],
    [/crawls\[\]\.proxy$/, () => ({ fixed: ["true", "yes", 1, 0] })],
    // Written bare into the crawl scripts, as Salt writes it: nothing but a DSN's characters.
    [/incremental\.sentryDsn$/, (v) => ({ fixed: ["", "http://abc@o1.ingest.sentry.io/1", "https://abc@o1.ingest.sentry.io/$(id)", "https://abc@o1.ingest.sentry.io/1 ; id", "[secret]"], random: corrupt(v, " ;'\"`$\\\n") })],
    [/crawls\[\]\.cardinal_settings$/, (v) => ({ fixed: ["x".repeat(65537), "[defaults]\0"], random: corrupt(v, "\0") })],
    [/(\.url|checkUrl)$/, (v) => ({
        fixed: ["", "collect", "ftp://x.org", "file:///etc/passwd", "javascript:alert(1)", "http://", "https://x.org/$(id)", "https://scrape:hunter2@x.org"],
        random: corrupt(v, " '\"`$\\"),
    })],
    [/scrapyd\.project$/, badSnake],
    [/username$/, (v) => ({ fixed: [""], random: corrupt(v, ": \t\n") })],
    [/password$/, (v) => ({ fixed: [""], random: corrupt(v, "\n\r\0") })],
    [/rabbitmq\.vhost$/, () => ({ fixed: [""] })],
    [/^mainStack$/, (v) => ({ fixed: ["", "main", "org/main", "a/b/c/d", "org//main"], random: corrupt(v, " $;:'@") })],
];

/** Lists whose items must differ: each item names a resource (or, for spider, a file on the server). */
const UNIQUE = /^(docker\.apps\[\]|docker\.migrations\[\]\.app|incremental\.crawls\[\]\.(identifier|spider))$/;

/** The JSON types a leaf accepts, from the schema (a union accepts each member's). */
function acceptedTypes(node: Json): Set<string> {
    const types = new Set<string>();
    for (const n of [node, ...(node.anyOf ?? []).flatMap((m: Json) => [...acceptedTypes(m)].map((type) => ({ type })))]) {
        if (n.type === "number") ["number", "integer"].forEach((t) => types.add(t));
        else if (n.type) types.add(n.type);
    }
    return types;
}

const WRONG_TYPES: [string, fc.Arbitrary<unknown>][] = [
    ["string", fc.string({ maxLength: 8 })],
    ["integer", fc.integer()],
    ["number", fc.double({ noNaN: true, noDefaultInfinity: true, noInteger: true })],
    ["boolean", fc.boolean()],
    ["null", fc.constant(null)],
    ["array", fc.array(fc.string({ maxLength: 4 }), { maxLength: 2 })],
    ["object", fc.dictionary(fc.stringMatching(/^[a-z]{1,5}$/), fc.string({ maxLength: 4 }), { maxKeys: 2 })],
];

function wrongType(leaf: Leaf): fc.Arbitrary<unknown> | undefined {
    const accepted = acceptedTypes(leaf.node);
    if (accepted.size === 0) return undefined;
    // A top-level value reaches the program as text (Pulumi's config), so only JSON structures are a wrong type there.
    const candidates = WRONG_TYPES.filter(([t]) => !accepted.has(t) && (leaf.pattern.includes(".") || t === "array" || t === "object"));
    return candidates.length > 0 ? fc.oneof(...candidates.map(([, arb]) => arb)) : undefined;
}

/** A key the parent does not have: a typo of this one, any other name, or (top level) the other role's key. */
function unknownKey(leaf: Leaf): fc.Arbitrary<string> {
    const name = leaf.pattern.split(".").pop()!.replace(/\[\]/g, "");
    const typo = fc.nat({ max: name.length - 1 }).map((i) => name.slice(0, i) + name.slice(i + 1));
    const others = leaf.pattern.includes(".") ? [] : CONFIG_KEYS.filter((k) => !leaf.siblings.includes(k));
    return fc
        .oneof(typo, fc.stringMatching(/^[a-z][a-zA-Z0-9_]{0,12}$/), ...(others.length > 0 ? [fc.constantFrom(...others)] : []))
        .filter((k) => k !== "" && !leaf.siblings.includes(k));
}

// ---- The property. ----

interface Case {
    kind: string;
    config: Json;
    /** The key the message must name. */
    key: string;
}

/** A case that fast-check reports by what was broken, not by the whole config. */
function makeCase(kind: string, path: Path, config: Json, shown: unknown): Case {
    const key = keyOf(path);
    return { kind, config, key, [fc.toStringMethod]: () => `${kind} at ${key}: ${JSON.stringify(shown)}` } as Case;
}

/** One way to break a key: cases always tried (`fixed`), and cases drawn at random. */
interface Way {
    kind: string;
    fixed: Case[];
    random?: fc.Arbitrary<Case>;
}

/** Every way to break one leaf; a leaf inside a list is broken at any of its places (crawls[0], [1]). */
function waysToBreak(leaf: Leaf, fixture: Json): Way[] {
    const at = instances(fixture, leaf.pattern);
    const where = fc.constantFrom(...at);
    const set = (kind: string, path: Path, value: unknown) => makeCase(kind, path, mutate(fixture, path, value), value);
    const ways: Way[] = [];
    const bad = KINDS.find(([re]) => re.test(leaf.pattern))?.[1];
    if (bad) {
        const { fixed, random } = bad(get(fixture, at[0]));
        ways.push({
            kind: "bad value",
            fixed: fixed.map((value, i) => set("bad value", at[i % at.length], value)),
            random: random && where.chain((path) => bad(get(fixture, path)).random!.map((value) => set("bad value", path, value))),
        });
    }
    // A list whose items name resources, with one name twice: the first item added again at the end
    // (apps[]; replacing an app would drop one another key needs), or a later item's field set to the
    // first's (crawls[1].identifier).
    if (UNIQUE.test(leaf.pattern) && at.length > 1) {
        const first = get(fixture, at[0]);
        const paths = leaf.pattern.endsWith("[]") ? [[...at[0].slice(0, -1), at.length]] : at.slice(1);
        ways.push({ kind: "duplicate", fixed: paths.map((path) => set("duplicate", path, first)) });
    }
    const wrong = wrongType(leaf);
    if (wrong) ways.push({ kind: "wrong type", fixed: [], random: where.chain((path) => wrong.map((value) => set("wrong type", path, value))) });
    if (leaf.required && !leaf.pattern.endsWith("[]")) {
        ways.push({ kind: "missing", fixed: at.map((path) => makeCase("missing", path, mutate(fixture, path, undefined, true), undefined)) });
    }
    // The unknown key goes in the object holding this key (for an element of a list: holding the list).
    const holder = (path: Path) => path.slice(0, leaf.pattern.endsWith("[]") ? -2 : -1);
    ways.push({
        kind: "unknown key",
        fixed: [],
        random: where.chain((path) => unknownKey(leaf).map((extra) => makeCase("unknown key", [...holder(path), extra], mutate(fixture, [...holder(path), extra], get(fixture, path)), extra))),
    });
    return ways;
}

/** Problems a ConfigError lists, by the key each names. */
function namedKeys(error: ConfigError): string[] {
    return error.problems.map((p) => p.slice(0, p.indexOf(": ")));
}

interface Tally {
    configs: number;
    registered: number;
    byKind: Record<string, number>;
    leaves: Map<string, number>;
}

async function rejected(c: Case, stack: string, tally: Tally): Promise<void> {
    const record: Registered[] = [];
    const error = await runProgram(c.config, { stack, record }).then(
        () => undefined,
        (e: unknown) => e,
    );
    tally.configs++;
    tally.registered += record.length;
    tally.byKind[c.kind] = (tally.byKind[c.kind] ?? 0) + 1;
    const what = `${c.kind} at ${c.key}`;
    assert.ok(error instanceof ConfigError, `${what}: expected a ConfigError, got ${error}`);
    // The broken key is named, or a key inside it (spider_arguments.from_date); nothing else is blamed.
    const named = (k: string) => k === c.key || k.startsWith(`${c.key}.`) || k.startsWith(`${c.key}[`);
    const keys = namedKeys(error);
    assert.ok(keys.some(named), `${what}: the message must name ${c.key}:\n${error.message}`);
    assert.deepEqual(keys.filter((k) => !named(k)), [], `${what}: other keys are blamed:\n${error.message}`);
    // A key that is there but wrong is not reported as missing (it would send the user looking for the wrong fix).
    if (c.kind !== "missing") assert.ok(!error.problems.some((p) => p.endsWith(": is required")), `${what}: reported as missing:\n${error.message}`);
    assert.equal(record.length, 0, `${what}: ${record.length} resources were registered before the error`);
}

/** fast-check's seed per property, so each key's values differ but every run is the same. */
function seedOf(text: string): number {
    let h = SEED;
    for (const ch of text) h = (Math.imul(h, 31) + ch.charCodeAt(0)) | 0;
    return h;
}

// Random cases per way of breaking a key, besides the fixed ones (a case takes about 2 ms).
const RANDOM_RUNS: Record<string, number> = { "bad value": 3, "wrong type": 2, missing: 0, "unknown key": 2, duplicate: 0 };

for (const [role, fixture, stack] of [
    ["main", FULL_MAIN, "main"],
    ["replica", FULL_REPLICA, "replica"],
] as const) {
    test(`generated invalid ${role} configs: each is rejected naming its key, nothing registered`, async (t: TestContext) => {
        const leaves = BRANCHES[role];
        assert.ok(leaves && leaves.length > 0, `the schema has no ${role} branch`);
        // The starting point is valid, and the same program does register resources for it.
        const control: Registered[] = [];
        await runProgram(fixture, { stack, record: control });
        assert.ok(control.length > 0, "the valid fixture registers no resource: the zero counts below would prove nothing");

        const missing = leaves.filter((l) => instances(fixture, l.pattern).length === 0).map((l) => l.pattern);
        assert.deepEqual(missing, [], `the ${role} fixture has no value for these keys: give them one so they can be broken`);
        const unkinded = leaves.filter((l) => !KINDS.some(([re]) => re.test(l.pattern))).map((l) => l.pattern);
        assert.deepEqual(unkinded, [], "no generator of bad values for these keys: add one to KINDS");

        const tally: Tally = { configs: 0, registered: 0, byKind: {}, leaves: new Map() };
        for (const leaf of leaves) {
            for (const way of waysToBreak(leaf, fixture)) {
                // fast-check counts the fixed cases (its `examples`) within numRuns.
                await fc.assert(
                    fc.asyncProperty(way.random ?? fc.constantFrom(...way.fixed), async (c) => {
                        await rejected(c, stack, tally);
                        tally.leaves.set(leaf.pattern, (tally.leaves.get(leaf.pattern) ?? 0) + 1);
                    }),
                    {
                        seed: seedOf(`${role}:${leaf.pattern}:${way.kind}`),
                        examples: way.fixed.map((c) => [c]),
                        numRuns: way.fixed.length + (way.random ? RANDOM_RUNS[way.kind] : 0),
                        includeErrorInReport: true,
                    },
                );
            }
        }
        const uncovered = leaves.filter((l) => !tally.leaves.has(l.pattern)).map((l) => l.pattern);
        assert.deepEqual(uncovered, [], "keys never broken");
        assert.equal(tally.registered, 0);
        // Only the main stack has lists whose items must differ; each of them got its duplicate.
        const unique = leaves.filter((l) => UNIQUE.test(l.pattern)).map((l) => l.pattern);
        assert.deepEqual(unique, role === "main" ? ["docker.apps[]", "docker.migrations[].app", "incremental.crawls[].identifier", "incremental.crawls[].spider"] : []);
        for (const kind of Object.keys(RANDOM_RUNS)) {
            if (kind !== "duplicate" || unique.length > 0) assert.ok((tally.byKind[kind] ?? 0) > 0, `no case of kind ${kind}`);
        }
        t.diagnostic(
            `${role}: ${tally.configs} invalid configs generated (seed ${SEED}), ${tally.leaves.size}/${leaves.length} keys covered; ` +
                `by kind: ${Object.entries(tally.byKind).map(([k, n]) => `${k} ${n}`).join(", ")}; ` +
                `resources registered: ${tally.registered} (valid fixture: ${control.length})`,
        );
    });
}

test("a top-level value that looks like JSON but is not is rejected naming its key", async (t: TestContext) => {
    // Pulumi passes each top-level value as text; one starting with '{' or '[' is read as JSON.
    const tally: Tally = { configs: 0, registered: 0, byKind: {}, leaves: new Map() };
    const keys = [...new Set([...Object.keys(FULL_MAIN), ...Object.keys(FULL_REPLICA)])];
    const text = fc.tuple(fc.constantFrom("{", "["), fc.string({ maxLength: 12 })).map(([open, rest]) => open + rest).filter((s) => !isJson(s));
    await fc.assert(
        fc.asyncProperty(fc.constantFrom(...keys), text, async (key, value) => {
            const fixture = key in FULL_MAIN ? FULL_MAIN : FULL_REPLICA;
            await rejected(makeCase("not JSON", [key], { ...fixture, [key]: value }, value), fixture.role, tally);
            tally.leaves.set(key, 1);
        }),
        { seed: SEED, numRuns: 40, includeErrorInReport: true },
    );
    t.diagnostic(`${tally.configs} configs with a top-level value that is not JSON, ${tally.leaves.size}/${keys.length} top-level keys; resources registered: ${tally.registered}`);
});

function isJson(text: string): boolean {
    try {
        JSON.parse(text);
        return true;
    } catch {
        return false;
    }
}
