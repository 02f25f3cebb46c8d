// No secret value in command text, non-secret inputs, plain outputs or pillar fragments (issue 9,
// part 3, under the mocks); every input or output carrying one is secret. Secrets are the canary
// values in config and the generated replication password, on both stacks.
import { test, type TestContext } from "node:test";
import * as assert from "node:assert/strict";
import { CANARY, HOST_KEY, mainConfig, withReplica } from "../support/fixtures";
import { runProgram, type ProgramRun } from "../../tools/program";

const GENERATED = "mock-generated-password-0123456789";
const REPLICATION = "canary-replication-S3cr3t-51aa";
const COMMAND_TEXT = ["create", "update", "delete", "triggers"];

/**
 * The forms a secret could take on its way into a command: as is, JSON-escaped, URL-encoded, hex,
 * base64 at each of the three alignments it can have inside a longer blob, and each line of it.
 */
function forms(secret: string): string[] {
    const base64 = [0, 1, 2].map((shift) => {
        const text = Buffer.from("..".slice(0, shift) + secret).toString("base64");
        return text.slice(shift === 0 ? 0 : 4, -4);
    });
    const lines = secret.split("\n").filter((l) => l !== "" && !l.startsWith("-----"));
    return [...new Set([secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret), Buffer.from(secret).toString("hex"), ...base64, ...lines])];
}

/** Which of the secrets (by name) a value holds, in any of their forms. */
function leaks(value: unknown, secrets: Record<string, string>): string[] {
    const text = typeof value === "string" ? value : JSON.stringify(value ?? "");
    return Object.entries(secrets)
        .filter(([, secret]) => forms(secret).some((f) => text.includes(f)))
        .map(([name]) => name);
}

interface Counts {
    resources: number;
    commandTexts: number;
    inputs: number;
    outputs: number;
    plainOutputs: number;
    carriers: Record<string, number>;
}

/** Checks one program run and counts what it checked. */
function audit(run: ProgramRun, secrets: Record<string, string>): Counts {
    const counts: Counts = { resources: run.resources.length, commandTexts: 0, inputs: 0, outputs: 0, plainOutputs: 0, carriers: {} };
    for (const r of run.resources) {
        // Command text is shown whole on failure, secret or not: no secret may be in it at all.
        for (const field of COMMAND_TEXT.filter((f) => r.inputs[f] !== undefined)) {
            counts.commandTexts++;
            assert.deepEqual(leaks(r.inputs[field], secrets), [], `${r.name}.${field} holds a secret`);
        }
        for (const [field, value] of Object.entries(r.inputs)) {
            counts.inputs++;
            for (const name of leaks(value, secrets)) {
                counts.carriers[name] = (counts.carriers[name] ?? 0) + 1;
                assert.ok(r.secretInputs.includes(field), `${r.name}.${field} carries ${name} but is not marked secret`);
            }
        }
    }
    for (const [key, value] of Object.entries(run.outputs)) {
        counts.outputs++;
        if (run.secretOutputs.includes(key)) continue;
        counts.plainOutputs++;
        assert.deepEqual(leaks(value, secrets), [], `plain output ${key} carries a secret`);
    }
    // Otherwise the checks above would pass for a secret that never reached the program.
    for (const name of Object.keys(secrets)) assert.ok((counts.carriers[name] ?? 0) > 0, `${name} reaches no resource: the canary is not exercised`);
    return counts;
}

function report(t: TestContext, label: string, c: Counts): void {
    t.diagnostic(
        `${label}: ${c.resources} resources checked (${c.commandTexts} command texts, ${c.inputs} inputs), ` +
            `${c.outputs} outputs checked (${c.plainOutputs} plain); secrets carried by secret inputs: ` +
            Object.entries(c.carriers).map(([name, n]) => `${name} ${n}`).join(", "),
    );
}

test("main stack: no secret in command text, plain inputs, plain outputs or pillar; carriers are secret", async (t) => {
    const run = await runProgram(withReplica(mainConfig({ ssh: { privateKey: CANARY.privateKey } })));
    const secrets = { scrapyd: CANARY.scrapyd, rabbitmq: CANARY.rabbitmq, privateKey: CANARY.privateKey, replication: GENERATED, sentryDsn: CANARY.sentryDsn };
    const counts = audit(run, secrets);
    assert.ok(run.secretOutputs.includes("replication"), "the replication output (with its password) must be secret");
    // The pillar fragments are copied into the Salt repository by hand: never a secret, even a marked one.
    const pillar = run.outputs.pillar as Record<string, string>;
    assert.ok(Object.keys(pillar).length > 0);
    for (const [fragment, text] of Object.entries(pillar)) assert.deepEqual(leaks(text, secrets), [], `pillar fragment ${fragment} holds a secret`);
    report(t, `main stack with a replica (${Object.keys(pillar).length} pillar fragments)`, counts);
});

test("replica stack: the replication password and the key stay out of command text and plain outputs", async (t) => {
    const replica = { replica: { hostname: "ocp24.open-contracting.org", ipv4: "198.51.100.24", ssh: { hostKey: HOST_KEY } } };
    const config = { role: "replica", servers: replica, ssh: { privateKey: CANARY.privateKey } };
    const main = { hostname: "ocp23.open-contracting.org", ipv4: "198.51.100.23" };
    const secrets = { privateKey: CANARY.privateKey, replication: REPLICATION };
    // The main's password as the main stack's output, and as explicit config (main stack elsewhere).
    const fromStack = await runProgram(config, {
        stack: "replica",
        stackOutputs: { "organization/data-support/main": { outputs: { newServer: main, replication: { role: "replica", slot: "replica1", password: REPLICATION, maxWorkerProcesses: "8" } }, secretOutputNames: ["replication"] } },
    });
    report(t, "replica stack, main from its StackReference", audit(fromStack, secrets));
    const fromConfig = await runProgram({ ...config, main: { ...main, password: REPLICATION, maxWorkerProcesses: 8 } }, { stack: "replica" });
    report(t, "replica stack, main from config", audit(fromConfig, secrets));
});

test("gate credentials go on stdin, as secrets", async () => {
    const run = await runProgram(mainConfig());
    const gates = run.resources.filter((r) => r.type === "command:local:Command" && /scrapyd|rabbitmq/.test(r.name));
    // Asked before the halt, right after it, and right before the copy.
    assert.deepEqual(gates.map((g) => g.name).sort(), [
        "data-support-gates-after-halt-rabbitmq", "data-support-gates-after-halt-scrapyd", "data-support-gates-before-copy-rabbitmq",
        "data-support-gates-before-copy-scrapyd", "data-support-gates-rabbitmq", "data-support-gates-scrapyd",
    ]);
    for (const gate of gates) {
        assert.ok(gate.secretInputs.includes("stdin"), `${gate.name}: stdin must be secret`);
        assert.match(gate.inputs.stdin, /"password":/);
    }
});

test("the copies' own check of the old server gets both services' credentials on stdin, as a secret, written out", async () => {
    const run = await runProgram(mainConfig());
    const expected = JSON.stringify({ scrapyd: { username: "scrape", password: CANARY.scrapyd }, rabbitmq: { username: "admin", password: CANARY.rabbitmq } });
    for (const name of ["data-support-incremental-copy-database", "data-support-incremental-copy-files"]) {
        const copy = run.resources.find((r) => r.name === name);
        assert.ok(copy, name);
        assert.ok(copy.secretInputs.includes("stdin"), `${name}: stdin must be secret`);
        assert.equal(copy.inputs.stdin, expected, name);
    }
});
