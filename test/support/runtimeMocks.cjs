// Preloaded (node -r) before @pulumi/pulumi's own cmd/run, so `pulumi up`'s runtime runs the program
// against the SDK's mock monitor instead of the engine. Plain JavaScript on purpose: the process
// must have no TypeScript loader but the one cmd/run registers (test/unit/runtime.test.ts).
//
// Stand-ins, named as such: the mock monitor for the engine's resource monitor; no engine address,
// so the runtime's log.error prints "error: [runtime] <message>" to stderr where the CLI would show
// <message>; a signalAndWaitForShutdown that returns at once (the engine's waits for its steps).
"use strict";
const fs = require("node:fs");
const pulumi = require("@pulumi/pulumi");
const { MockMonitor } = require("@pulumi/pulumi/runtime/mocks");
const rpc = require("@pulumi/pulumi/runtime/rpc");
const settings = require("@pulumi/pulumi/runtime/settings");

const argv = process.argv.slice(2);
const flag = (name) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
};
// { "<org/project/stack>": { outputs, secretOutputNames } } for StackReference reads.
const stackOutputs = JSON.parse(process.env.DS_STACK_OUTPUTS || "{}");
const resultPath = process.env.DS_RUNTIME_RESULT;

const custom = [];
const urns = new Set();
let stackResult;

pulumi.runtime.setMocks(
    {
        newResource(args) {
            if (args.type === "pulumi:pulumi:StackReference") {
                const other = stackOutputs[args.inputs.name] || { outputs: {}, secretOutputNames: [] };
                return { id: args.inputs.name, state: { name: args.inputs.name, outputs: other.outputs, secretOutputNames: other.secretOutputNames } };
            }
            const state = { ...args.inputs };
            if (args.type.startsWith("command:")) Object.assign(state, { stdout: "", stderr: "" });
            if (args.type === "random:index/randomPassword:RandomPassword") state.result = "mock-generated-password-0123456789";
            return { id: `${args.name}-id`, state };
        },
        call: () => ({}),
    },
    flag("project"),
    flag("stack"),
    argv.includes("--dry-run"),
);

const registerResource = MockMonitor.prototype.registerResource;
MockMonitor.prototype.registerResource = function (req, callback) {
    const urn = this.newUrn(req.getParent(), req.getType(), req.getName());
    // As the engine does (pulumi v3.248.0 pkg/resource/deploy/step_generator.go).
    if (urns.has(urn)) return callback(new Error(`Duplicate resource URN '${urn}'; try giving it a unique name`), undefined);
    urns.add(urn);
    if (req.getCustom()) custom.push({ type: req.getType(), name: req.getName() });
    return registerResource.call(this, req, callback);
};

const registerResourceOutputs = MockMonitor.prototype.registerResourceOutputs;
MockMonitor.prototype.registerResourceOutputs = function (req, callback) {
    if (req.getUrn().includes("::pulumi:pulumi:Stack::")) {
        const outputs = {};
        const secretOutputNames = [];
        for (const [key, value] of Object.entries(rpc.deserializeProperties(req.getOutputs()))) {
            if (rpc.isRpcSecret(value)) secretOutputNames.push(key);
            outputs[key] = rpc.unwrapRpcSecret(value);
        }
        stackResult = { outputs, secretOutputNames };
    }
    return registerResourceOutputs.call(this, req, callback);
};

MockMonitor.prototype.signalAndWaitForShutdown = (_req, callback) => callback(null, {});

process.on("exit", () => {
    if (resultPath) fs.writeFileSync(resultPath, JSON.stringify({ resources: custom, stack: stackResult ?? null, monitor: settings.getMonitor() instanceof MockMonitor }));
});
