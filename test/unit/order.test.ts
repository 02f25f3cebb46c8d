// The dependency graph reproduces the runbook's documented sequence (design.md, steps 1 to 9).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig, withReplica } from "../support/fixtures";
import { runProgram } from "../support/program";
import { Graph } from "../../scripts/graph";
import { PRESYNC as PRESYNC_STAGE, SEQUENCES } from "../../scripts/sequence";

// The documented sequence (scripts/sequence.ts), labelled "<step> <what>". Each stage must wait
// for every resource of every stage before it; the pre-sync is placed by its own dependencies.
const DOCUMENTED: [string, RegExp][] = SEQUENCES.main.stages.map((s) => [`${s.step} ${s.what}`, s.names]);
const PRESYNC = PRESYNC_STAGE.names;

for (const [label, config] of [
    ["without a replica", mainConfig()],
    ["with a replica", withReplica(mainConfig())],
] as const) {
    test(`main stack follows the documented sequence (${label})`, async () => {
        const run = await runProgram(config);
        const graph = new Graph(run.resources);
        const steps = DOCUMENTED.map(([step, re]) => [step, graph.named(re)] as const);
        for (const [step, resources] of steps) assert.ok(resources.length > 0, `no resource carries out step "${step}"`);

        // Every command belongs to exactly one documented step or to the pre-sync.
        const placed = new Set([...steps.flatMap(([, rs]) => rs.map((r) => r.urn)), ...graph.named(PRESYNC).map((r) => r.urn)]);
        const stray = run.resources.filter((r) => r.type.startsWith("command:") && !placed.has(r.urn)).map((r) => r.name);
        assert.deepEqual(stray, [], "commands outside the documented sequence");

        const order: string[] = [];
        steps.forEach(([step, resources], i) => {
            for (const [earlier, before] of steps.slice(0, i)) {
                for (const r of resources) {
                    for (const b of before) {
                        assert.ok(graph.waitsFor(r.urn).has(b.urn), `"${r.name}" (${step}) must wait for "${b.name}" (${earlier})`);
                    }
                }
            }
            order.push(step);
        });
        assert.deepEqual(order, DOCUMENTED.map(([s]) => s));

        for (const r of graph.named(PRESYNC)) {
            for (const b of steps[0][1]) assert.ok(graph.waitsFor(r.urn).has(b.urn), `${r.name} must wait for step 1 (${b.name})`);
        }
        const stop = graph.named(/^data-support-incremental-copy-stop-old-crons$/)[0];
        for (const p of graph.named(PRESYNC)) assert.ok(graph.waitsFor(stop.urn).has(p.urn), `the halt of incremental crons must wait for ${p.name}`);
    });
}

test("no replica configured: no replication resource", async () => {
    const run = await runProgram(mainConfig());
    assert.deepEqual(run.resources.filter((r) => /replica|replication/i.test(r.name)), []);
    const withIt = await runProgram(withReplica(mainConfig()));
    assert.ok(withIt.resources.some((r) => r.type === "random:index/randomPassword:RandomPassword"));
});
