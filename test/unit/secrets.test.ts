// No secret value in command text or plain outputs; every input or output carrying one is secret.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { CANARY, mainConfig, withReplica } from "../support/fixtures";
import { runProgram } from "../support/program";

const GENERATED = "mock-generated-password-0123456789";

function leaks(text: string, secrets: string[]): string[] {
    return secrets.filter((s) => text.includes(s) || text.includes(s.trim().split("\n")[1] ?? "\0"));
}

test("no secret appears in command text or plain outputs; carriers are secret", async () => {
    const config = withReplica(mainConfig({ ssh: { privateKey: CANARY.privateKey } }));
    const run = await runProgram(config);
    const secrets = [CANARY.scrapyd, CANARY.rabbitmq, CANARY.privateKey, GENERATED];
    let carriers = 0;
    for (const r of run.resources) {
        for (const field of ["create", "update", "delete", "triggers"]) {
            const text = JSON.stringify(r.inputs[field] ?? "");
            assert.deepEqual(leaks(text, secrets), [], `${r.name}.${field} holds a secret`);
        }
        for (const [field, value] of Object.entries(r.inputs)) {
            if (leaks(JSON.stringify(value), secrets).length > 0) {
                carriers++;
                assert.ok(r.secretInputs.includes(field), `${r.name}.${field} carries a secret but is not marked secret`);
            }
        }
    }
    // The gates' credentials, the replication password and the private key in every connection.
    assert.ok(carriers >= 4, `expected secrets to travel on stdin/connection, found ${carriers} carriers`);
    for (const [key, value] of Object.entries(run.outputs)) {
        if (leaks(JSON.stringify(value ?? ""), secrets).length > 0) assert.ok(run.secretOutputs.includes(key), `output ${key} carries a secret in plain text`);
    }
    assert.ok(run.secretOutputs.includes("replication"), "the replication output (with its password) must be secret");
});

test("gate credentials go on stdin, as secrets", async () => {
    const run = await runProgram(mainConfig());
    const gates = run.resources.filter((r) => r.type === "command:local:Command" && /scrapyd|rabbitmq/.test(r.name));
    assert.equal(gates.length, 2);
    for (const gate of gates) {
        assert.ok(gate.secretInputs.includes("stdin"), `${gate.name}: stdin must be secret`);
        assert.match(gate.inputs.stdin, /"password":/);
    }
});
