// Runs the real program (index.ts) under the SDK's mocks with a given stack config and records
// every resource it registers: type, name, inputs (raw, so secrets stay marked), and the URNs it
// depends on. The unit tests, the executing harness and the offline runbook all build on this.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import { clearRunbookNotes, runbookNote, type RunbookNote } from "../components/machinery/runbookNotes";

export const REPO = path.resolve(__dirname, "..");
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

export interface Registered {
    urn: string;
    type: string;
    name: string;
    /** Inputs with secrets unwrapped. */
    inputs: Record<string, any>;
    /** Input property names whose value was a secret. */
    secretInputs: string[];
    /** URNs this resource depends on (dependsOn and property dependencies). */
    dependencies: string[];
    parent: string;
    /** The resource option: replace by deleting the old one first (the engine's default creates the new one first). */
    deleteBeforeReplace: boolean;
    /** What the program said about it for the runbook: a one-off step, or a gate and its condition. */
    note?: RunbookNote;
}

export interface ProgramRun {
    resources: Registered[];
    /** The stack outputs, each resolved, and which of them are secret. */
    outputs: Record<string, unknown>;
    secretOutputs: string[];
    /**
     * Each component's registerOutputs, by name, secrets unwrapped: the engine keeps them as the
     * component's outputs in the stack's state (pulumi/pulumi v3.248.0: the RegisterResourceOutputs
     * RPC, sdk/nodejs/runtime/resource.ts registerResourceOutputs; runtime/mocks.js keeps them as
     * the resource's state).
     */
    componentOutputs: Record<string, Record<string, unknown>>;
}

/** The outputs of a stack read through a StackReference, and which of them that stack marked secret. */
export interface StackOutputs {
    outputs: Record<string, unknown>;
    /** Only these read as secret (pulumi/pulumi v3.248.0 pkg/resource/deploy/builtins.go, readStackReference). */
    secretOutputNames?: string[];
}

export type Executor = (resource: Registered) => Promise<{ id?: string; state?: Record<string, unknown> }>;

function unwrap(value: any, secret: { found: boolean }): any {
    if (value && typeof value === "object") {
        if (value[SECRET_SIG] === "1b47061264138c4ac30d75fd1eb44270") {
            secret.found = true;
            return unwrap(value.value, secret);
        }
        if (Array.isArray(value)) return value.map((v) => unwrap(v, secret));
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrap(v, secret)]));
    }
    return value;
}

/** Stack config as `pulumi config` holds it: `data-support:<key>` -> value (objects as JSON). */
export function toAllConfig(config: Record<string, unknown>): Record<string, string> {
    return Object.fromEntries(
        Object.entries(config).map(([k, v]) => [k.includes(":") ? k : `data-support:${k}`, typeof v === "string" ? v : JSON.stringify(v)]),
    );
}

/**
 * Runs index.ts once. `execute` is called for each resource as the engine would create it, after
 * the resources it depends on; by default it returns the inputs as state (a pure mock).
 */
export async function runProgram(
    config: Record<string, unknown>,
    options: {
        preview?: boolean;
        stack?: string;
        execute?: Executor;
        stackOutputs?: Record<string, StackOutputs>;
        record?: Registered[];
        /** The program's entry point (default: index.ts). */
        entry?: string;
    } = {},
): Promise<ProgramRun> {
    const resources: Registered[] = options.record ?? [];
    const execute: Executor = options.execute ?? (async (r) => ({ id: `${r.name}-id`, state: defaultState(r) }));
    const original = MockMonitor.prototype.registerResource;
    const originalOutputs = MockMonitor.prototype.registerResourceOutputs;
    const componentOutputs: Record<string, Record<string, unknown>> = {};
    const stackOutputs = options.stackOutputs ?? {};
    const seen = new Set<string>();
    // Notes are kept by resource name: forget those of an earlier run in this process (as each
    // `pulumi up` is a process of its own).
    clearRunbookNotes();
    MockMonitor.prototype.registerResourceOutputs = function (this: any, req: any, callback: any) {
        const raw = req.getOutputs()?.toJavaScript() ?? {};
        componentOutputs[String(req.getUrn()).split("::").pop()!] = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, unwrap(v, { found: false })]));
        return originalOutputs.call(this, req, callback);
    };
    MockMonitor.prototype.registerResource = async function (this: any, req: any, callback: any) {
        const type = req.getType();
        const name = req.getName();
        const raw = req.getObject().toJavaScript();
        const secretInputs: string[] = [];
        const inputs: Record<string, any> = {};
        for (const [key, value] of Object.entries(raw)) {
            const secret = { found: false };
            inputs[key] = unwrap(value, secret);
            if (secret.found) secretInputs.push(key);
        }
        const deps = new Set<string>(req.getDependenciesList());
        req.getPropertydependenciesMap().forEach((v: any) => v.getUrnsList().forEach((u: string) => deps.add(u)));
        const urn = this.newUrn(req.getParent(), type, name);
        // The engine refuses a second registration of one URN, in preview too (pulumi/pulumi v3.248.0
        // pkg/resource/deploy/step_generator.go: "Duplicate resource URN").
        if (seen.has(urn)) {
            callback(new Error(`Duplicate resource URN '${urn}'; try giving it a unique name`), undefined);
            return;
        }
        seen.add(urn);
        const record: Registered = {
            urn,
            type,
            name,
            inputs,
            secretInputs,
            dependencies: [...deps],
            parent: req.getParent(),
            deleteBeforeReplace: req.getDeletebeforereplace(),
            note: runbookNote(name),
        };
        if (req.getCustom()) resources.push(record);
        const self = this;
        (async () => {
            try {
                const result = req.getCustom() ? await execute(record) : { id: "", state: {} };
                const rpc = require("@pulumi/pulumi/runtime/rpc");
                const state = result.state ?? {};
                const serialized = await rpc.serializeProperties("", state);
                self.resources.set(urn, { urn, id: result.id ?? null, state: serialized });
                const resproto = require("@pulumi/pulumi/proto/resource_pb");
                const structproto = require("google-protobuf/google/protobuf/struct_pb");
                const response = new resproto.RegisterResourceResponse();
                response.setUrn(urn);
                response.setId(result.id ?? "");
                response.setObject(structproto.Struct.fromJavaScript(serialized));
                callback(null, response);
            } catch (error) {
                callback(error, undefined);
            }
        })();
    };
    try {
        await pulumi.runtime.setMocks(
            {
                newResource: () => {
                    throw new Error("not used: registerResource is intercepted");
                },
                call: () => ({}),
            },
            "data-support",
            options.stack ?? "main",
            options.preview ?? false,
        );
        pulumi.runtime.setAllConfig(toAllConfig(config));
        // StackReference reads go through readResource: answer with the given stack's outputs.
        MockMonitor.prototype.readResource = async function (this: any, req: any, callback: any) {
            const name = req.getName();
            const read = stackOutputs[name] ?? { outputs: {} };
            const secretNames = read.secretOutputNames ?? [];
            // Each output the other stack marked secret is secret, and only those.
            const outputs = Object.fromEntries(Object.entries(read.outputs).map(([k, v]) => [k, secretNames.includes(k) ? pulumi.secret(v) : v]));
            (async () => {
                const rpc = require("@pulumi/pulumi/runtime/rpc");
                const resproto = require("@pulumi/pulumi/proto/resource_pb");
                const structproto = require("google-protobuf/google/protobuf/struct_pb");
                const response = new resproto.ReadResourceResponse();
                response.setUrn(this.newUrn(req.getParent(), req.getType(), name));
                response.setProperties(structproto.Struct.fromJavaScript(await rpc.serializeProperties("", { name, outputs, secretOutputNames: secretNames })));
                callback(null, response);
            })().catch((e) => callback(e, undefined));
        };
        const entry = options.entry ?? path.join(REPO, "index.ts");
        delete require.cache[require.resolve(entry)];
        const exported = require(entry) as Record<string, unknown>;
        const outputs: Record<string, unknown> = {};
        const secretOutputs: string[] = [];
        for (const [key, value] of Object.entries(exported)) {
            const out = pulumi.output(value) as any;
            outputs[key] = await out.promise();
            if (await out.isSecret) secretOutputs.push(key);
        }
        await (pulumi.runtime as any).disconnect?.();
        return { resources, outputs, secretOutputs, componentOutputs };
    } finally {
        MockMonitor.prototype.registerResource = original;
        MockMonitor.prototype.registerResourceOutputs = originalOutputs;
    }
}

function defaultState(r: Registered): Record<string, unknown> {
    if (r.type === "random:index/randomPassword:RandomPassword") return { ...r.inputs, result: "mock-generated-password-0123456789" };
    if (r.type.startsWith("command:")) return { ...r.inputs, stdout: "", stderr: "" };
    return r.inputs;
}
