// The dependency graph reproduces the runbook's documented sequence (design.md, steps 1 to 9).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig, withReplica } from "../support/fixtures";
import { runProgram } from "../support/program";
import { Graph } from "../../scripts/graph";
import { MAIN_STAGES, PRESYNC as PRESYNC_NAMES, REPLICATION } from "../support/expected";

// The documented sequence, written out (test/support/expected.ts), labelled "<step> <what>". Each
// stage must wait for every resource of every stage before it; the pre-sync is placed by its own
// dependencies.
const exactly = (names: string[]) => new RegExp(`^(${names.join("|")})$`);
const DOCUMENTED: [string, RegExp, string[]][] = MAIN_STAGES.map(([label, names]) => [label, exactly(names), names]);
const PRESYNC = exactly(PRESYNC_NAMES);

for (const [label, config] of [
    ["without a replica", mainConfig()],
    ["with a replica", withReplica(mainConfig())],
] as const) {
    test(`main stack follows the documented sequence (${label})`, async () => {
        const run = await runProgram(config);
        const graph = new Graph(run.resources);
        const steps = DOCUMENTED.map(([step, re]) => [step, graph.named(re)] as const);
        // Each written-out name is a resource of this run (the replication ones only with a replica).
        const expected = DOCUMENTED.flatMap(([, , names]) => names).filter((n) => label === "with a replica" || !REPLICATION.includes(n));
        assert.deepEqual(steps.flatMap(([, rs]) => rs.map((r) => r.name)).sort(), expected.sort());
        assert.deepEqual(graph.named(PRESYNC).map((r) => r.name).sort(), [...PRESYNC_NAMES].sort());

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
        assert.deepEqual(order, MAIN_STAGES.map(([s]) => s));

        for (const r of graph.named(PRESYNC)) {
            for (const b of steps[0][1]) assert.ok(graph.waitsFor(r.urn).has(b.urn), `${r.name} must wait for step 1 (${b.name})`);
        }
        const stops = graph.named(/^data-support-incremental-copy-stop-(old|new)-crons$/);
        assert.equal(stops.length, 2);
        for (const stop of stops) {
            for (const p of graph.named(PRESYNC)) assert.ok(graph.waitsFor(stop.urn).has(p.urn), `${stop.name} must wait for ${p.name}`);
        }
    });
}

test("no replica configured: no replication resource", async () => {
    const run = await runProgram(mainConfig());
    assert.deepEqual(run.resources.filter((r) => /replica|replication/i.test(r.name)), []);
    const withIt = await runProgram(withReplica(mainConfig()));
    assert.ok(withIt.resources.some((r) => r.type === "random:index/randomPassword:RandomPassword"));
});
