// The dependency graph reproduces the runbook's documented sequence (design.md, steps 1 to 9).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig, withReplica } from "../support/fixtures";
import { runProgram } from "../support/program";
import { Graph } from "../support/graph";

// The documented sequence, as one list: [step, the resources (by name) that carry it out].
// Each step must wait for every resource of every step before it.
const DOCUMENTED: [string, RegExp][] = [
    ["1 dependencies: tinyproxy admits the new server (proven), the replica is admitted", /^data-support-(tinyproxy|replication)-/],
    ["2 halt: docker uid check, new server's crons, old server's backups, crons and apps", /^data-support-halt-/],
    ["3 gates: no Scrapyd job, no RabbitMQ message", /^data-support-gates-/],
    ["4 docker apps: migrations, then pull and start", /^data-support-docker-/],
    ["5 DNS of the collect hostname points at the new server", /^data-support-collect-dns-/],
    ["5 deploy the spiders", /^data-support-spiders-/],
    ["6 stop the incremental crons on the old server", /^data-support-incremental-copy-stop-old-crons$/],
    ["6 copy kingfisher_collect, data/ and logs/, verified", /^data-support-incremental-copy-(database|files)$/],
    ["6 the incremental crons run on the new server", /^data-support-crawls-/],
    ["7 copy exchange_rates, verified", /^data-support-exchange-rates-/],
    ["revoke the transfer key", /^data-support-transfer-revoke$/],
    ["8 restore the exchange-rates cron and backups on the new server", /^data-support-restore-/],
];
// Not in the runbook: the transfer key and a first copy of data/ and logs/ while the old
// server is still live (so the copy after the halt is short). After step 1, before step 6's copy.
const PRESYNC = /^data-support-(transfer-(keypair|grant)|incremental-copy-presync)$/;

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
