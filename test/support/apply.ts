// Over 300 lines: the engine's rules in one place, in the order test/support/README.md lists them, so each can be checked against its source.
// One `pulumi up` (or preview) of the real program against the test hosts, in its own process so
// that each run starts with a fresh Pulumi runtime, as the CLI does. The harness (harness.ts)
// spawns it: node --import tsx test/support/apply.ts <request.json> <result.json>
//
// It stands for the Pulumi engine and the command provider, and follows them rule by rule
// (design.md, "@pulumi/command 1.2.1 and the engine"); test/unit/engine.test.ts pins each rule
// against its source:
// - pulumi/pulumi-command v1.2.1 provider/pkg/provider/{remote,local}/commandController.go:
//   create runs `create`; an update runs `update`, else `create`; delete runs the stored `delete`.
// - .../common/inputs.go: `triggers` is replaceOnChanges: a change replaces.
// - .../{remote,local}/commandOutputs.go: stdout and stderr stored with one trailing "\n" removed;
//   a failure reads `<err>: running "<command>":\n<stdout and stderr>`.
// - pulumi/pulumi v3.248.0 pkg/resource/deploy (step_generator.go, step_executor.go, deployment_executor.go):
//   create-before-delete unless deleteBeforeReplace; `--replace <urn>`; after a failed step no new
//   step starts; deletes (resources gone, old halves of replacements) run last, dependents first,
//   and not after a failure; a failed delete stays in the state; the state is saved after each
//   step; pending operations of an interrupted run are reported and dropped by the next run.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { runArgv } from "../hosts/testbed";
import { runProgram, type Registered, type StackOutputs } from "../../tools/program";
import { runRemoteCommand } from "./remote";

export interface ApplyRequest {
    config: Record<string, unknown>;
    stack: string;
    statePath: string;
    preview: boolean;
    /** URNs to replace whatever their diff says (`pulumi up --replace <urn>`). */
    replace: string[];
    /** Prefix that runs a program in the operator's namespaces (testbed.operatorCommand). */
    operator: string[];
    stackOutputs?: Record<string, StackOutputs>;
    /** A directory visible inside the operator's namespaces (for request and known_hosts files). */
    scratchDir: string;
    /** The program to run (default: the project's index.ts); the engine's conformance tests run a small one. */
    program?: string;
    /** The project as the operator's namespaces see it: local commands run there (the CLI runs them in the project directory). */
    projectDir: string;
}

/**
 * One step the engine took (or, in a preview, would take). The engine's operations: create, update,
 * replace (the replacement is created), delete-replaced (the old half of a replacement), delete, same.
 */
export interface StepRecord {
    urn: string;
    name: string;
    type: string;
    action: "create" | "update" | "replace" | "delete-replaced" | "delete" | "same";
    /** Where it ran: `user@address`, or "operator (local)". */
    host: string;
    /** The command text run ("" for none). */
    command: string;
    exitCode: number;
    /** As the provider stores them: one trailing newline removed. */
    stdout: string;
    stderr: string;
    durationMs: number;
    /** Preview: outputs that are unknown until the step runs. */
    unknownOutputs?: string[];
    /** Preview: inputs that are unknown until a step before it runs (they read its outputs). */
    unknownInputs?: string[];
}

/**
 * What the harness prints on its stdout while it runs, one JSON object a line, as the CLI shows a
 * run's progress: a step starts, its output arrives (the provider logs it live), a step ends.
 */
export type ApplyEvent =
    | { event: "start"; name: string; type: string; action: StepRecord["action"]; host: string }
    | { event: "output"; name: string; stream: "stdout" | "stderr"; text: string }
    | { event: "end"; name: string; action: StepRecord["action"]; host: string; exitCode: number; durationMs: number; ok: boolean };

const emit = (event: ApplyEvent) => process.stdout.write(`${JSON.stringify(event)}\n`);

export interface ApplyResult {
    ok: boolean;
    /** The engine's error for the failed step: `<type> (<name>):\n    error: <provider's message>`. */
    error?: string;
    /** The step that failed, when one did. */
    failed?: StepRecord;
    /** The engine's warnings (pending operations of an interrupted run). */
    warnings: string[];
    steps: StepRecord[];
    outputs: Record<string, unknown>;
    secretOutputs: string[];
    /** Every resource registered, in registration order (for the runbook and the tests). */
    registered: { urn: string; type: string; name: string }[];
}

interface StateEntry {
    type: string;
    name: string;
    inputs: Record<string, any>;
    outputs: Record<string, any>;
    /** URNs it depended on when last registered: deletes run dependents first. */
    dependencies: string[];
    order: number;
}

/** The engine's checkpoint, saved after every step. */
export interface State {
    resources: Record<string, StateEntry>;
    /** Old halves of create-before-delete replacements, to be deleted at the end of a run. */
    condemned: ({ urn: string } & StateEntry)[];
    /** Operations begun and not finished (an interrupted run). */
    pending: { urn: string; op: string }[];
}

/** The SDK's sentinel for a value unknown during a preview (@pulumi/pulumi runtime/rpc.js unknownValue). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
const isUnknown = (value: unknown) => JSON.stringify(value ?? null).includes(UNKNOWN);
const sameValue = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
/** commandOutputs.go: strings.TrimSuffix(buf.String(), "\n"). */
const trimmed = (s: string) => (s.endsWith("\n") ? s.slice(0, -1) : s);

function readState(file: string): State {
    if (!fs.existsSync(file)) return { resources: {}, condemned: [], pending: [] };
    const raw = JSON.parse(fs.readFileSync(file, "utf8"));
    return { resources: raw.resources ?? {}, condemned: raw.condemned ?? [], pending: raw.pending ?? [] };
}

class RunFailed extends Error {}

async function main(): Promise<void> {
    const [requestPath, resultPath] = process.argv.slice(2);
    const request = JSON.parse(fs.readFileSync(requestPath, "utf8")) as ApplyRequest;
    const state = readState(request.statePath);
    const steps: StepRecord[] = [];
    const warnings: string[] = [];
    const visited = new Set<string>();
    fs.mkdirSync(request.scratchDir, { recursive: true });
    let order = Math.max(0, ...Object.values(state.resources).map((e) => e.order + 1));
    let failure: { error: string; step?: StepRecord } | undefined;

    // The engine saves the checkpoint after every step (atomically), so a run killed half-way
    // leaves the steps it finished, and its unfinished operation as pending.
    const save = () => {
        if (request.preview) return;
        const tmp = `${request.statePath}.tmp`;
        fs.writeFileSync(tmp, JSON.stringify(state, null, 1));
        fs.renameSync(tmp, request.statePath);
    };
    if (state.pending.length > 0) {
        // deployment_executor.go: the pending operations of an interrupted run are reported (in its
        // words), then dropped; a resource whose create was pending is not in the state, so it is
        // created again.
        warnings.push(
            `Attempting to deploy or update resources with ${state.pending.length} pending operations from previous deployment.\n` +
                state.pending.map((p) => `  * ${p.urn}, interrupted while ${p.op}`).join("\n"),
        );
        if (!request.preview) {
            state.pending = [];
            save();
        }
    }
    const begin = (urn: string, op: string) => {
        state.pending.push({ urn, op });
        save();
    };
    const end = (urn: string) => {
        state.pending = state.pending.filter((p) => p.urn !== urn);
        save();
    };

    /** Runs one command as the provider would; throws RunFailed (after recording the failure) on error. */
    const runCommand = async (r: { urn: string; name: string; type: string; inputs: Record<string, any> }, text: string, action: StepRecord["action"]): Promise<{ stdout: string; stderr: string }> => {
        const inputs = r.inputs;
        const remote = r.type === "command:remote:Command";
        const start = Date.now();
        const host = remote ? `${inputs.connection.user ?? "root"}@${inputs.connection.host}` : "operator (local)";
        emit({ event: "start", name: r.name, type: r.type, action, host });
        const res = remote
            ? await runRemoteCommand(request.operator, request.scratchDir, inputs.connection, text, inputs.stdin, (stream, chunk) => emit({ event: "output", name: r.name, stream, text: chunk }))
            : await runLocal(text, inputs.stdin);
        emit({ event: "end", name: r.name, action, host, exitCode: res.exitCode, durationMs: Date.now() - start, ok: res.error === undefined });
        const record: StepRecord = {
            urn: r.urn,
            name: r.name,
            type: r.type,
            action,
            host,
            command: text,
            exitCode: res.exitCode,
            stdout: trimmed(res.stdout),
            stderr: trimmed(res.stderr),
            durationMs: Date.now() - start,
        };
        steps.push(record);
        if (res.error !== undefined) {
            // How the CLI shows a failed resource: its type and name, then the provider's error.
            failure ??= { error: `${r.type} (${r.name}):\n    error: ${res.error}`, step: record };
            throw new RunFailed(res.error);
        }
        return { stdout: record.stdout, stderr: record.stderr };
    };

    // local/commandOutputs.go: `/bin/sh -c <command>` in the project directory; an exec.ExitError
    // reads "exit status N".
    const runLocal = async (text: string, stdin: string | undefined) => {
        const res = await runArgv([...request.operator, "sh", "-c", `cd ${JSON.stringify(request.projectDir)} && exec /bin/sh -c "$0"`, text], stdin);
        const error = res.code === 0 ? undefined : `exit status ${res.code}: running ${JSON.stringify(text)}:\n${res.stdout}${res.stderr}`;
        return { stdout: res.stdout, stderr: res.stderr, exitCode: res.code, error };
    };

    const deleteOne = async (entry: { urn: string } & StateEntry, action: "delete" | "delete-replaced") => {
        if (entry.type.startsWith("command:") && entry.inputs.delete) {
            begin(entry.urn, "deleting");
            try {
                await runCommand({ ...entry }, entry.inputs.delete, action);
            } finally {
                end(entry.urn);
            }
        } else {
            steps.push({ urn: entry.urn, name: entry.name, type: entry.type, action, host: "", command: "", exitCode: 0, stdout: "", stderr: "", durationMs: 0 });
        }
    };

    // After a failure, resources that wait for the failed one never register, so the program's
    // promises never settle (as under the engine, which stops). Finish once nothing is running.
    let inFlight = 0;
    let settleFailed: () => void = () => undefined;
    const failedAndIdle = new Promise<undefined>((resolve) => (settleFailed = () => resolve(undefined)));
    // A program error outside any resource (an output that throws) fails the run like the engine.
    process.on("unhandledRejection", (e) => {
        failure ??= { error: String((e as Error)?.message ?? e) };
        if (inFlight === 0) settleFailed();
    });
    const keepAlive = setInterval(() => undefined, 1000);
    let run;
    // What registered, kept even when the program does not finish (a failed run).
    const registered: Registered[] = [];
    try {
        run = await Promise.race([
            failedAndIdle,
            runProgram(request.config, {
                preview: request.preview,
                stack: request.stack,
                stackOutputs: request.stackOutputs,
                entry: request.program,
                record: registered,
                execute: async (r) => {
                    // step_executor.go: once a step failed, the engine starts no new step; the
                    // registration is never answered (the steps already running finish).
                    if (failure !== undefined) return new Promise(() => undefined);
                    inFlight++;
                    try {
                        return await carryOut(r);
                    } finally {
                        inFlight--;
                        if (failure !== undefined && inFlight === 0) settleFailed();
                    }
                },
            }),
        ]);
    } catch (error) {
        failure ??= { error: String((error as Error).message ?? error) };
    }
    // The program may end (an output rejected) while steps still run: the engine waits for them.
    while (inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 50));
    clearInterval(keepAlive);

    async function carryOut(r: Registered): Promise<{ id?: string; state?: Record<string, unknown> }> {
        visited.add(r.urn);
        const prior = state.resources[r.urn];
        const inputs = r.inputs;
        const keep = (outputs: Record<string, any>) => {
            if (!request.preview) {
                state.resources[r.urn] = { type: r.type, name: r.name, inputs, outputs, dependencies: r.dependencies, order: order++ };
                save();
            }
            return { id: r.name, state: outputs };
        };
        const record = (action: StepRecord["action"], extra: Partial<StepRecord> = {}) =>
            steps.push({ urn: r.urn, name: r.name, type: r.type, action, host: "", command: "", exitCode: 0, stdout: "", stderr: "", durationMs: 0, ...extra });

        // The diff. Commands: `triggers` is replaceOnChanges, any other input an update.
        // RandomPassword: every input forces a replacement (pulumi-random's schema).
        const forced = request.replace.includes(r.urn);
        let action: StepRecord["action"];
        if (!prior) action = "create";
        else if (forced) action = "replace";
        else if (r.type.startsWith("command:")) {
            if (!sameValue(prior.inputs.triggers, inputs.triggers)) action = "replace";
            else action = sameValue(prior.inputs, inputs) ? "same" : "update";
        } else action = sameValue(prior.inputs, inputs) ? "same" : "replace";

        if (action === "same") {
            record("same");
            return keep(prior!.outputs);
        }
        if (request.preview) {
            // The engine runs nothing on preview; what a step would compute is unknown.
            const unknownOutputs = r.type.startsWith("command:") ? ["stdout", "stderr"] : r.type.startsWith("random:") ? ["result"] : [];
            const text = r.type.startsWith("command:") ? (action === "update" ? inputs.update ?? inputs.create : inputs.create) ?? "" : "";
            const unknownInputs = Object.keys(inputs).filter((k) => isUnknown(inputs[k]));
            record(action, { command: text, unknownOutputs, unknownInputs });
            return { id: r.name, state: { ...inputs, ...Object.fromEntries(unknownOutputs.map((k) => [k, UNKNOWN])) } };
        }
        if (isUnknown(inputs)) throw new Error(`${r.name}: an input is still unknown outside a preview`);

        if (action === "replace" && r.deleteBeforeReplace) {
            // deleteBeforeReplace: the old one goes first, and leaves the state before the new one is created.
            await deleteOne({ urn: r.urn, ...prior! }, "delete-replaced");
            delete state.resources[r.urn];
            save();
        }

        let outputs: Record<string, any>;
        if (r.type === "random:index/randomPassword:RandomPassword") {
            // Generated for real (pulumi-random: crypto/rand over the allowed characters).
            const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            const result = Array.from(crypto.randomBytes(inputs.length), (b) => alphabet[b % alphabet.length]).join("");
            record(action);
            outputs = { ...inputs, result };
        } else if (r.type === "command:remote:Command" || r.type === "command:local:Command") {
            // commandController.go: update runs `update`, else `create`; a create or replacement runs `create`.
            const text: string | undefined = action === "update" ? inputs.update ?? inputs.create : inputs.create;
            if (!text) {
                record(action);
                outputs = { ...inputs, stdout: action === "update" ? prior!.outputs.stdout : "", stderr: action === "update" ? prior!.outputs.stderr : "" };
            } else {
                begin(r.urn, action === "update" ? "updating" : "creating");
                try {
                    // A failed create records nothing; a failed update keeps the old state.
                    outputs = { ...inputs, ...(await runCommand(r, text, action)) };
                } finally {
                    end(r.urn);
                }
            }
        } else {
            throw new Error(`the harness cannot carry out ${r.type} (${r.name})`);
        }
        if (action === "replace" && !r.deleteBeforeReplace) {
            // Create-before-delete: the old half is deleted at the end of the run.
            state.condemned.push({ urn: r.urn, ...prior! });
        }
        return keep(outputs);
    }

    // Deletes run last, and only when every step succeeded: resources that left the program and
    // the old halves of replacements, dependents before what they depend on.
    if (!failure && !request.preview) {
        const gone = Object.entries(state.resources)
            .filter(([urn]) => !visited.has(urn))
            .map(([urn, entry]) => ({ urn, ...entry, action: "delete" as const }));
        const condemned = state.condemned.map((entry) => ({ ...entry, action: "delete-replaced" as const }));
        try {
            for (const entry of dependentsFirst([...gone, ...condemned])) {
                await deleteOne(entry, entry.action);
                if (entry.action === "delete") delete state.resources[entry.urn];
                else state.condemned = state.condemned.filter((c) => !(c.urn === entry.urn && c.order === entry.order));
                save();
            }
        } catch (error) {
            if (!(error instanceof RunFailed)) throw error;
            // The failed delete and those not yet run stay in the state for the next `up`.
        }
    } else if (request.preview) {
        for (const [urn, entry] of Object.entries(state.resources)) {
            if (!visited.has(urn)) steps.push({ urn, name: entry.name, type: entry.type, action: "delete", host: "", command: entry.inputs.delete ?? "", exitCode: 0, stdout: "", stderr: "", durationMs: 0 });
        }
    }
    save();
    const result: ApplyResult = {
        ok: failure === undefined,
        error: failure?.error,
        failed: failure?.step,
        warnings,
        steps,
        outputs: run?.outputs ?? {},
        secretOutputs: run?.secretOutputs ?? [],
        registered: registered.map((r) => ({ urn: r.urn, type: r.type, name: r.name })),
    };
    fs.writeFileSync(resultPath, JSON.stringify(result, null, 1));
    process.exit(0);
}

/**
 * Orders deletes so that a resource goes before anything it depends on (the engine deletes in
 * reverse dependency order); among independent ones, newest first.
 */
export function dependentsFirst<T extends { urn: string; dependencies: string[]; order: number }>(entries: T[]): T[] {
    const left = [...entries].sort((a, b) => b.order - a.order);
    const out: T[] = [];
    while (left.length > 0) {
        // Next: one that no other remaining entry depends on.
        const i = left.findIndex((e) => !left.some((o) => o !== e && o.dependencies.includes(e.urn)));
        out.push(...left.splice(i === -1 ? 0 : i, 1));
    }
    return out;
}

/**
 * Writes `request` into `dir` (as `request-<tag>.json`) and returns the argv that runs one apply of
 * it, and where that apply writes its result: harness.ts, the engine's conformance tests and
 * `npm run preview` all start applies this way.
 */
export function applyCommand(request: ApplyRequest, dir: string, tag: string): { argv: string[]; resultPath: string } {
    const requestPath = path.join(dir, `request-${tag}.json`);
    const resultPath = path.join(dir, `result-${tag}.json`);
    fs.writeFileSync(requestPath, JSON.stringify(request));
    fs.rmSync(resultPath, { force: true });
    return { argv: ["--import", "tsx", __filename, requestPath, resultPath], resultPath };
}

/** The result an apply wrote; without one, the harness itself failed, and `output` says why. */
export function readApplyResult(resultPath: string, status: number | null, output: string): ApplyResult {
    if (!fs.existsSync(resultPath)) throw new Error(`the harness itself failed (exit ${status}):\n${output}`);
    return JSON.parse(fs.readFileSync(resultPath, "utf8")) as ApplyResult;
}

if (require.main === module) void main();
