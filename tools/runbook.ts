// Over 300 lines: the offline runbook's model and its renderings (Markdown, JSON, docs/) kept together, since docs/ is checked byte for byte against them.
// The offline runbook: what `pulumi up -s <stack>` would do, step by step, without the Pulumi CLI,
// credentials or network. It runs the real program (index.ts) under the SDK's mocks with the
// stack's config (tools/stackConfig.ts) and lists every resource in an order that respects every
// dependency, numbered by the runbook's documented steps (tools/sequence.ts), with its host,
// whether it is desired state, one-off or a gate, and its exact command text. Nothing runs.
//
//   npm run runbook -- <stack> [--json] [--cwd DIR]   Markdown (default) or JSON on stdout
//   npm run docs [-- --check]                         writes (or checks) docs/runbook-<stack>.md
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, loadStackConfig, type ServerConfig, type StackConfig as Validated } from "../components/config";
import { Graph } from "./graph";
import { REPO, runProgram, toAllConfig, type Executor, type ProgramRun, type Registered, type StackOutputs } from "./program";
import { outputsStep, SEQUENCES, stageOf, type Sequence } from "./sequence";
import { readStackConfig, SECRET, SECRET_PLACEHOLDERS, stacksIn, StackFileError } from "./stackConfig";

/** The example stacks whose runbooks are committed under docs/. */
export const DOC_STACKS = ["main", "replica"];
export const DOCS_DIR = path.join(REPO, "docs");

export interface RunbookHost {
    /** The server's config key (`newMain`, ...), or `operator` for the machine running `pulumi up`. */
    key: string;
    hostname: string;
    /** How it is reached over SSH. */
    ssh?: { user: string; address: string; port: number; via?: string };
}

export interface RunbookStep {
    /** Position in the runbook, from 1: the order `pulumi up` may take (each after all it waits for). */
    position: number;
    /** The runbook's step number (design.md, "The documented sequence"). */
    step: number;
    stepTitle: string;
    /** What this part of the step does. */
    what: string;
    /** Set when the runbook has no such step: why it is there. */
    addition?: string;
    urn: string;
    name: string;
    type: string;
    /** The component that creates it (type and name). */
    component?: { type: string; name: string };
    /** Where it runs; none for a resource that only lives in the Pulumi state. */
    host?: RunbookHost;
    kind: "one-off" | "desired state" | "gate";
    /** One-off: the file on the host that records the step as done. */
    marker?: string;
    /** Gate: what must hold for the run to go on. */
    condition?: string;
    create?: string;
    update?: string;
    delete?: string;
    stdin?: string;
    triggers?: unknown[];
    /** For a resource that is not a command (a generated password): its inputs. */
    inputs?: Record<string, unknown>;
    /** The URNs of the steps it waits for directly. */
    dependsOn: string[];
}

export interface Runbook {
    stack: string;
    role: "main" | "replica";
    titles: Record<number, string>;
    steps: RunbookStep[];
    /** The stack's outputs (step `outputsStep`); secret ones read SECRET. */
    outputsStep: number;
    outputs: Record<string, unknown>;
}

export interface RunbookOptions {
    /** The stack name (it is part of every URN). Default `main`. */
    stack?: string;
    /** Outputs of the stacks read through a StackReference, by reference name. */
    stackOutputs?: Record<string, StackOutputs>;
}

const RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword";

// Nothing runs: a command's output is shown by name, a generated password as a secret.
const mockExecute: Executor = async (r) => {
    if (r.type === RANDOM_PASSWORD) return { id: `${r.name}-id`, state: { ...r.inputs, result: SECRET } };
    if (r.type.startsWith("command:")) return { id: `${r.name}-id`, state: { ...r.inputs, stdout: `[output of ${r.name}]`, stderr: "" } };
    return { id: `${r.name}-id`, state: r.inputs };
};

/** Every secret placeholder in `value` reads SECRET. */
function scrub<T>(value: T): T {
    if (typeof value === "string") return SECRET_PLACEHOLDERS.reduce((text, p) => text.split(p).join(SECRET), value as string) as T;
    if (Array.isArray(value)) return value.map(scrub) as T;
    if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v)])) as T;
    return value;
}

/** An input as the runbook shows it: a secret one as SECRET, whatever it holds. */
function shown(r: Registered, field: string): any {
    if (r.inputs[field] === undefined) return undefined;
    return r.secretInputs.includes(field) ? SECRET : scrub(r.inputs[field]);
}

/** `urn:pulumi:<stack>::<project>::<parent types$type>::<name>` -> its type and name. */
function component(parentUrn: string): RunbookStep["component"] {
    const parts = parentUrn.split("::");
    if (parts.length < 4) return undefined;
    const type = parts[2].split("$").pop()!;
    if (type === "pulumi:pulumi:Stack") return undefined;
    return { type, name: parts.slice(3).join("::") };
}

function host(r: Registered, cfg: Validated): RunbookHost | undefined {
    if (r.type === "command:local:Command") return { key: "operator", hostname: "the operator's machine, where pulumi up runs" };
    const c = r.inputs.connection;
    if (r.type !== "command:remote:Command" || !c) return undefined;
    const servers = Object.entries(cfg.servers as Record<string, ServerConfig | undefined>);
    const [key, server] = servers.find(([, s]) => s?.ipv4 === c.host) ?? ["?", undefined];
    const via = c.proxy ? `${c.proxy.user ?? "root"}@${c.proxy.host}:${c.proxy.port ?? 22}` : undefined;
    return { key, hostname: server?.hostname ?? c.host, ssh: { user: c.user ?? "root", address: c.host, port: c.port ?? 22, ...(via ? { via } : {}) } };
}

function toStep(r: Registered, position: number, sequence: Sequence, graph: Graph, cfg: Validated): RunbookStep {
    const stage = stageOf(sequence, r.name);
    // A resource in no documented step would have no number: tools/sequence.ts must name it.
    if (!stage) throw new Error(`${r.name} (${r.type}) is in no step of the documented sequence: add it to tools/sequence.ts`);
    const isCommand = r.type.startsWith("command:");
    const step: RunbookStep = {
        position,
        step: stage.step,
        stepTitle: sequence.titles[stage.step],
        what: stage.what,
        ...(stage.addition ? { addition: stage.addition } : {}),
        urn: r.urn,
        name: r.name,
        type: r.type,
        component: component(r.parent),
        host: host(r, cfg),
        kind: r.note?.kind ?? "desired state",
        ...(r.note?.kind === "one-off" ? { marker: r.note.marker } : {}),
        ...(r.note?.kind === "gate" ? { condition: r.note.condition } : {}),
        dependsOn: graph.dependsOn(r.urn),
    };
    if (isCommand) {
        for (const field of ["create", "update", "delete", "stdin", "triggers"] as const) {
            const value = shown(r, field);
            if (value !== undefined) (step as any)[field] = value;
        }
    } else {
        step.inputs = Object.fromEntries(Object.keys(r.inputs).map((k) => [k, shown(r, k)]));
    }
    return step;
}

/** Validates as index.ts does (a ConfigError names every bad key), then runs the program under mocks. */
async function mockRun(config: Record<string, unknown>, options: RunbookOptions): Promise<{ cfg: Validated; run: ProgramRun }> {
    const cfg = loadStackConfig(toAllConfig(config));
    const run = await runProgram(config, { stack: options.stack ?? "main", stackOutputs: options.stackOutputs, execute: mockExecute });
    return { cfg, run };
}

/** The runbook of a stack config (keys `<key>` or `data-support:<key>`, as runProgram takes them). */
export async function buildRunbook(config: Record<string, unknown>, options: RunbookOptions = {}): Promise<Runbook> {
    const { cfg, run } = await mockRun(config, options);
    const sequence = SEQUENCES[cfg.role];
    const graph = new Graph(run.resources);
    // Ties (resources ready at once) go to the lower documented step, then to registration order.
    const rank = (r: Registered) => stageOf(sequence, r.name)?.step ?? Number.MAX_SAFE_INTEGER;
    const steps = graph.order(rank).map((r, i) => toStep(r, i + 1, sequence, graph, cfg));
    const outputs = Object.fromEntries(Object.entries(run.outputs).map(([k, v]) => [k, run.secretOutputs.includes(k) ? SECRET : scrub(v)]));
    return { stack: options.stack ?? "main", role: cfg.role, titles: sequence.titles, steps, outputsStep: outputsStep(sequence), outputs };
}

/**
 * The ordered steps of a stack config, each with the URN and name of its resource: for comparing
 * with the order in which the executing harness ran them (test/e2e).
 */
export async function runbookSteps(config: Record<string, unknown>, options: RunbookOptions = {}): Promise<RunbookStep[]> {
    return (await buildRunbook(config, options)).steps;
}

/**
 * The runbook of `stack` from Pulumi.yaml and Pulumi.<stack>.yaml in `dir`. A replica stack reads
 * its main stack's outputs: they come from running that stack's file here the same way.
 */
export async function runbookForStack(dir: string, stack: string): Promise<Runbook> {
    const { config } = readStackConfig(dir, stack);
    const cfg = loadStackConfig(toAllConfig(config));
    const stackOutputs: Record<string, StackOutputs> = {};
    if (cfg.role === "replica") {
        const mainStack = cfg.mainStack.split("/").pop()!;
        if (mainStack !== stack && stacksIn(dir).includes(mainStack)) {
            try {
                const { run } = await mockRun(readStackConfig(dir, mainStack).config, { stack: mainStack });
                stackOutputs[cfg.mainStack] = { outputs: run.outputs, secretOutputNames: run.secretOutputs };
            } catch (error) {
                if (!(error instanceof ConfigError)) throw error;
                throw new StackFileError(`stack ${stack} reads the outputs of stack ${mainStack}, whose config is invalid (npm run runbook -- ${mainStack}):\n${error.message}`);
            }
        }
    }
    return buildRunbook(config, { stack, stackOutputs });
}

// ---- Markdown ---------------------------------------------------------------------------------

/** A code block whose fence no line of `text` can close. */
function block(text: string, lang = ""): string {
    const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
    const fence = "`".repeat(longest + 1);
    return `${fence}${lang}\n${text.replace(/\n$/, "")}\n${fence}`;
}

function code(text: string): string {
    const ticks = text.includes("`") ? "``" : "`";
    return `${ticks}${text}${ticks}`;
}

function hostText(h: RunbookHost | undefined): string {
    if (!h) return "none (kept in the Pulumi state)";
    if (!h.ssh) return h.hostname;
    return `${code(h.key)}: ${h.hostname}, as ${h.ssh.user}@${h.ssh.address} port ${h.ssh.port}${h.ssh.via ? ` via ${h.ssh.via}` : ""}`;
}

function kindText(s: RunbookStep): string {
    if (s.kind === "one-off") {
        return `one-off: runs once per migration; done when ${code(s.marker!)} exists on the host. A step that failed half-way has no marker and runs again from its start on the next \`pulumi up\`.`;
    }
    if (s.kind === "gate") {
        return `gate: the run goes on only if ${s.condition}. Otherwise it stops here with a message saying what to do; the next \`pulumi up\` checks again.`;
    }
    if (!s.type.startsWith("command:")) return "desired state: created on the first `pulumi up` and kept in the stack's state.";
    const change = s.update === undefined || s.update === s.create ? "again" : "its update script";
    return (
        `desired state: runs on the first \`pulumi up\`, then ${change} whenever its inputs change` +
        (s.triggers ? "; replaced (create runs again) when its triggers change" : "") +
        (s.delete ? "; its delete script runs when it leaves the program" : "") +
        "."
    );
}

export function renderMarkdown(book: Runbook): string {
    const byUrn = new Map(book.steps.map((s) => [s.urn, s]));
    const out: string[] = [
        `# Runbook of stack \`${book.stack}\``,
        "",
        `What \`pulumi up -s ${book.stack}\` does, in an order it may take: each step comes after every step it waits for.`,
        `Generated offline by \`npm run runbook -- ${book.stack}\` from Pulumi.yaml and Pulumi.${book.stack}.yaml: the program ran`,
        "under the Pulumi SDK's mocks, so nothing ran on any server. Secrets read `[secret]`; `[output of NAME]` is what",
        "step NAME prints when it runs. `npm run docs` regenerates the pages under docs/; do not edit them by hand.",
        "",
        "| # | Step | Resource | Host | Kind |",
        "| --- | --- | --- | --- | --- |",
        ...book.steps.map((s) => `| ${s.position} | ${s.step}. ${s.stepTitle} | \`${s.name}\` | ${s.host ? s.host.key : "state"} | ${s.kind} |`),
    ];
    let previous: RunbookStep | undefined;
    for (const s of book.steps) {
        if (s.step !== previous?.step) out.push("", `## Step ${s.step}: ${s.stepTitle}`);
        // What a part of a step does, once for its resources in a row.
        if (s.what !== previous?.what) {
            out.push("", `${s.what[0].toUpperCase()}${s.what.slice(1)}.`);
            if (s.addition) out.push("", `> Not in the runbook: ${s.addition}`);
        }
        previous = s;
        out.push("", `### ${s.position}. \`${s.name}\``, "");
        if (s.component) out.push(`- Component: ${code(s.component.type)} ${code(s.component.name)}`);
        out.push(`- Host: ${hostText(s.host)}`, `- Kind: ${kindText(s)}`);
        const waits = s.dependsOn
            .map((u) => byUrn.get(u))
            .filter((d): d is RunbookStep => d !== undefined)
            .sort((a, b) => a.position - b.position);
        out.push(`- Waits for: ${waits.length ? waits.map((d) => `${d.position} ${code(d.name)}`).join(", ") : "nothing"}`);
        if (s.triggers !== undefined) out.push(`- Triggers: ${code(JSON.stringify(s.triggers))}`);
        if (s.inputs) out.push("", "Inputs:", "", block(JSON.stringify(s.inputs, null, 2), "json"));
        if (s.create !== undefined) out.push("", "Create:", "", block(s.create, "sh"));
        if (s.update !== undefined && s.update !== s.create) out.push("", "Update:", "", block(s.update, "sh"));
        if (s.delete !== undefined) out.push("", "Delete:", "", block(s.delete, "sh"));
        if (s.stdin !== undefined) out.push("", "Standard input:", "", block(s.stdin));
    }
    out.push("", `## Step ${book.outputsStep}: ${book.titles[book.outputsStep]}`, "", `\`pulumi stack output -s ${book.stack}\` shows:`);
    for (const [key, value] of Object.entries(book.outputs)) {
        // A group of multi-line texts (the pillar fragments) reads best as one block each.
        const texts = value && typeof value === "object" && !Array.isArray(value) && Object.values(value).every((v) => typeof v === "string" && v.includes("\n"));
        if (texts) for (const [part, text] of Object.entries(value)) out.push("", `### ${key}.${part}`, "", block(text as string));
        else out.push("", `### ${key}`, "", typeof value === "string" ? block(value) : block(JSON.stringify(value, null, 2), "json"));
    }
    return out.join("\n") + "\n";
}

export function renderJson(book: Runbook): string {
    return JSON.stringify(book, null, 2) + "\n";
}

// ---- Command line -----------------------------------------------------------------------------

const USAGE = `usage: npm run runbook -- <stack> [--json] [--cwd DIR]
       npm run docs [-- --check]`;

/** Writes docs/runbook-<stack>.md for the example stacks, or (check) lists the pages that differ. */
async function docs(check: boolean): Promise<number> {
    const stale: string[] = [];
    for (const stack of DOC_STACKS) {
        const file = path.join(DOCS_DIR, `runbook-${stack}.md`);
        const text = renderMarkdown(await runbookForStack(REPO, stack));
        const current = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined;
        if (current === text) continue;
        stale.push(path.relative(REPO, file));
        if (!check) {
            fs.mkdirSync(DOCS_DIR, { recursive: true });
            fs.writeFileSync(file, text);
        }
    }
    if (check && stale.length > 0) {
        process.stderr.write(`out of date: ${stale.join(", ")}. Run npm run docs and commit the result.\n`);
        return 1;
    }
    process.stderr.write(stale.length ? `${check ? "" : "wrote "}${stale.join(", ")}\n` : "docs/ is up to date\n");
    return 0;
}

async function main(argv: string[]): Promise<number> {
    const flags = new Set<string>();
    const positional: string[] = [];
    let dir = REPO;
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === "--cwd") {
            if (argv[i + 1] === undefined) return usage();
            dir = path.resolve(argv[++i]);
        } else if (["--json", "--docs", "--check", "--help"].includes(arg)) flags.add(arg);
        else if (arg.startsWith("-")) return usage();
        else positional.push(arg);
    }
    if (flags.has("--help")) {
        process.stdout.write(`${USAGE}\n`);
        return 0;
    }
    if (flags.has("--docs")) {
        if (positional.length > 0 || flags.has("--json") || dir !== REPO) return usage();
        return docs(flags.has("--check"));
    }
    if (positional.length !== 1 || flags.has("--check")) return usage();
    try {
        const book = await runbookForStack(dir, positional[0]);
        process.stdout.write(flags.has("--json") ? renderJson(book) : renderMarkdown(book));
        return 0;
    } catch (error) {
        // The message `pulumi up` shows for the same config, and nothing else.
        if (error instanceof ConfigError || error instanceof StackFileError) {
            process.stderr.write(`${error.name}: ${error.message}\n`);
            return 1;
        }
        throw error;
    }
}

function usage(): number {
    process.stderr.write(`${USAGE}\n`);
    return 2;
}

if (require.main === module) {
    // A reader that stops early (| head) is not an error.
    process.stdout.on("error", (error: NodeJS.ErrnoException) => process.exit(error.code === "EPIPE" ? 0 : 1));
    // The program failed inside an output (as `pulumi up` would): its message, without the SDK's trace.
    process.on("unhandledRejection", (error) => {
        const message = String((error as Error)?.message ?? error);
        const hint = /does not exist on stack/.test(message)
            ? "\nOffline, a stack reference reads the outputs of running that stack's Pulumi.<stack>.yaml from the same directory."
            : "";
        process.stderr.write(`error: ${message}${hint}\n`);
        process.exit(1);
    });
    main(process.argv.slice(2)).then(
        (code) => process.stdout.write("", () => process.exit(code)),
        (error) => {
            process.stderr.write(`${(error as Error).stack ?? error}\n`);
            process.exit(1);
        },
    );
}
