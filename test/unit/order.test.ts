// The dependency graph reproduces the runbook's documented sequence (design.md, steps 1 to 9).
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import * as assert from "node:assert/strict";
import { mainConfig, withReplica } from "../support/fixtures";
import { runProgram } from "../../tools/program";
import { Graph } from "../../tools/graph";
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

// Issue 16: the gates are asked while the consumers still run, then again right after the halt and
// right before the copy; a failed re-check ends with the guide, its commands written out here.
test("the gates come before the halt, and are asked again after it and before the copy, with the consumers' guide", async () => {
    const run = await runProgram(mainConfig());
    const graph = new Graph(run.resources);
    const urn = (name: string) => run.resources.find((r) => r.name === name)!.urn;
    const waits = (a: string, b: string) => graph.waitsFor(urn(a)).has(urn(b));
    assert.ok(waits("data-support-halt-old-server", "data-support-gates-rabbitmq"));
    assert.ok(waits("data-support-halt-new-server", "data-support-gates-scrapyd"));
    assert.ok(!waits("data-support-gates-rabbitmq", "data-support-halt-old-server"));
    // The long pre-sync runs before the gates, so that the gates and the halt follow each other closely.
    assert.ok(waits("data-support-gates-scrapyd", "data-support-incremental-copy-presync"));
    assert.ok(waits("data-support-gates-after-halt-scrapyd", "data-support-halt-old-server"));
    assert.ok(waits("data-support-docker-migrate-kingfisher-process", "data-support-gates-after-halt-rabbitmq"));
    assert.ok(waits("data-support-gates-before-copy-scrapyd", "data-support-spiders-deploy"));
    for (const step of ["stop-old-crons", "stop-new-crons", "database", "files"]) {
        assert.ok(waits(`data-support-incremental-copy-${step}`, "data-support-gates-before-copy-rabbitmq"), step);
    }
    const create = (name: string) => run.resources.find((r) => r.name === name)!.inputs.create as string;
    assert.equal(create("data-support-gates-rabbitmq"), "node scripts/gate.mjs rabbitmq https://rabbitmq.kingfisher.open-contracting.org / --connect 198.51.100.4");
    // Run with the gate itself failing (`false` in its place): what the operator reads after the gate's own message.
    const guideOf = (name: string) => {
        const text = create(name);
        assert.ok(text.startsWith("node scripts/gate.mjs "), text);
        return spawnSync("sh", ["-c", text.replace(/^node scripts\/gate\.mjs [^|]*/, "false ")], { encoding: "utf8" });
    };
    const failed = guideOf("data-support-gates-after-halt-rabbitmq");
    assert.equal(failed.status, 1);
    assert.equal(
        failed.stderr,
        [
            "This gate was asked again right after the halt of ocp04.open-contracting.org: the work above arrived after the gates first passed, and the halt (step 2) has brought down the queues' consumers on ocp04.open-contracting.org (its Docker Compose apps), so queued messages cannot drain. Nothing after this gate has run. On ocp04.open-contracting.org, as root:",
            "  1. bring the apps back up:",
            "    runuser -l deployer -c 'cd /data/deploy/kingfisher-process && docker compose up -d'",
            "    runuser -l deployer -c 'cd /data/deploy/pelican-backend && docker compose up -d'",
            "    runuser -l deployer -c 'cd /data/deploy/pelican-frontend && docker compose up -d'",
            "  2. wait until no crawl runs and every queue is empty (the gate's URLs above);",
            "  3. bring them down again:",
            "    runuser -l deployer -c 'cd /data/deploy/kingfisher-process && docker compose down'",
            "    runuser -l deployer -c 'cd /data/deploy/pelican-backend && docker compose down'",
            "    runuser -l deployer -c 'cd /data/deploy/pelican-frontend && docker compose down'",
            "  4. run pulumi up again.",
            "",
        ].join("\n"),
    );
    assert.match(guideOf("data-support-gates-before-copy-scrapyd").stderr, /^This gate was asked again right before the incremental copy \(step 6\): the work above/);
    // The gate that passes passes: nothing printed, status 0.
    const passing = spawnSync("sh", ["-c", create("data-support-gates-after-halt-scrapyd").replace(/^node scripts\/gate\.mjs [^|]*/, "true ")], { encoding: "utf8" });
    assert.deepEqual([passing.status, passing.stderr], [0, ""]);
});
