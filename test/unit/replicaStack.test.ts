// The `replica` stack under the mocks: where it learns the main from (StackReference or explicit
// config), that the replication password stays secret, and what it does when the main has none.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { HOST_KEY } from "../support/fixtures";
import { runProgram } from "../../tools/program";

const PASSWORD = "canary-replication-S3cr3t-51aa";

function replicaConfig(extra: Record<string, unknown> = {}): Record<string, any> {
    return {
        role: "replica",
        servers: { replica: { hostname: "ocp24.open-contracting.org", ipv4: "198.51.100.24", ssh: { hostKey: HOST_KEY } } },
        ...extra,
    };
}

const mainOutputs = {
    newServer: { hostname: "ocp23.open-contracting.org", ipv4: "198.51.100.23", ipv6: "" },
    replication: { role: "replica", slot: "replica1", password: PASSWORD, maxWorkerProcesses: "8" },
};

function standbyOf(resources: { name: string; inputs: Record<string, any>; secretInputs: string[] }[]) {
    const standby = resources.find((r) => r.name === "data-support-replica-standby");
    assert.ok(standby, "the standby command is registered");
    return standby;
}

test("from the main stack's outputs: the password reaches the standby on stdin only, as a secret", async () => {
    const run = await runProgram(replicaConfig(), { stack: "replica", stackOutputs: { "organization/data-support/main": { outputs: mainOutputs, secretOutputNames: ["replication"] } } });
    const standby = standbyOf(run.resources);
    assert.ok(standby.inputs.stdin.includes(PASSWORD));
    assert.ok(standby.secretInputs.includes("stdin"));
    assert.doesNotMatch(JSON.stringify([standby.inputs.create, standby.inputs.triggers]), new RegExp(PASSWORD));
    assert.deepEqual(standby.inputs.triggers, ["ocp23.open-contracting.org", "198.51.100.23"]);
    assert.doesNotMatch(JSON.stringify(run.outputs), new RegExp(PASSWORD));
});

test("from explicit config (main stack elsewhere): the same standby, no StackReference needed", async () => {
    const explicit = { hostname: "ocp23.open-contracting.org", ipv4: "198.51.100.23", password: PASSWORD, maxWorkerProcesses: 8 };
    const run = await runProgram(replicaConfig({ main: explicit }), { stack: "replica" });
    const standby = standbyOf(run.resources);
    assert.match(standby.inputs.stdin, /"workers":"8"/);
    assert.ok(standby.secretInputs.includes("stdin"));
    assert.doesNotMatch(JSON.stringify(standby.inputs.create), new RegExp(PASSWORD));
});

test("explicit main config is validated like the rest: each bad key is named", async () => {
    await assert.rejects(
        runProgram(replicaConfig({ main: { hostname: "ocp23.open-contracting.org", ipv4: "not-an-address", maxWorkerProcesses: 0 } }), { stack: "replica" }),
        (e: Error) =>
            /data-support:main\.ipv4: must be an IPv4 address/.test(e.message) &&
            /data-support:main\.password: is required/.test(e.message) &&
            /data-support:main\.maxWorkerProcesses/.test(e.message),
    );
});

test("StackReference (pulumi v3.248.0 pkg/resource/deploy/builtins.go; @pulumi/pulumi stackReference.js isSecretOutputName): only outputs the main stack marked secret read as secret", async () => {
    const read = async (secretOutputNames: string[]) => {
        const run = await runProgram(replicaConfig(), { stack: "replica", stackOutputs: { "organization/data-support/main": { outputs: mainOutputs, secretOutputNames } } });
        return standbyOf(run.resources).secretInputs.filter((k) => k === "stdin" || k === "triggers").sort();
    };
    // The main's name and address (the standby's triggers) are plain; the password (stdin) is secret.
    assert.deepEqual(await read(["replication"]), ["stdin"]);
    // Had the main marked newServer secret, the triggers made of it would be secret too.
    assert.deepEqual(await read(["newServer", "replication"]), ["stdin", "triggers"]);
});
