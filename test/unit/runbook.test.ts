// The offline runbook (tools/runbook.ts): every resource once, after everything it waits for,
// numbered by the documented sequence; secrets never shown; the stack files read as the CLI reads
// them; a bad config ends in the program's own ConfigError and a non-zero exit.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { ConfigError } from "../../components/config";
import { buildRunbook, renderJson, renderMarkdown, runbookForStack, runbookSteps, type RunbookStep } from "../../tools/runbook";
import { MAIN_STAGES, MAIN_STEP_OF, PRESYNC } from "../support/expected";
import { readStackConfig, SECRET, StackFileError } from "../../tools/stackConfig";
import { CANARY, mainConfig, withReplica } from "../support/fixtures";
import { REPO, runProgram } from "../../tools/program";

const CONFIGS = [
    ["without a replica", mainConfig()],
    ["with a replica", withReplica(mainConfig())],
] as const;

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const child = spawnSync(process.execPath, ["--import", "tsx", path.join(REPO, "tools", "runbook.ts"), ...args], { cwd: REPO, encoding: "utf8" });
    return { status: child.status, stdout: child.stdout, stderr: child.stderr };
}

/** A project directory with Pulumi.yaml and the given stack files. */
function project(files: Record<string, string>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "runbook-test-"));
    fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    return dir;
}

for (const [label, config] of CONFIGS) {
    test(`every resource once, each after every resource it waits for (${label})`, async () => {
        const steps = await runbookSteps(config);
        const run = await runProgram(config);
        assert.deepEqual(steps.map((s) => s.urn).sort(), run.resources.map((r) => r.urn).sort());
        const position = new Map(steps.map((s) => [s.urn, s.position]));
        assert.deepEqual(steps.map((s) => s.position), steps.map((_, i) => i + 1));
        for (const s of steps) {
            for (const d of s.dependsOn) assert.ok(position.get(d)! < s.position, `${s.name} (#${s.position}) comes before ${d} (#${position.get(d)}), which it waits for`);
        }
        // The edges are the program's own: each registered dependency is a step before it.
        for (const r of run.resources) {
            for (const d of r.dependencies.filter((u) => position.has(u))) assert.ok(position.get(d)! < position.get(r.urn)!, `${r.name} before ${d}`);
        }
    });

    // The gates are asked before the halt (step 3 before 2), then again after it (README, "Where we differ").
    test(`steps come in the documented sequence's order, with its step numbers (${label})`, async () => {
        const steps = await runbookSteps(config);
        const stageOf = (name: string) => (PRESYNC.includes(name) ? 0 : MAIN_STAGES.findIndex(([, names]) => names.includes(name)));
        steps.forEach((s, i) => {
            assert.equal(s.step, MAIN_STEP_OF[s.name], `${s.name}: step ${s.step}`);
            if (i > 0 && !PRESYNC.includes(s.name)) {
                const before = steps.slice(0, i).filter((b) => !PRESYNC.includes(b.name)).map((b) => stageOf(b.name));
                assert.ok(before.every((b) => b <= stageOf(s.name)), `${s.name} (stage ${stageOf(s.name)}) after a later stage`);
            }
        });
        const numbers = steps.filter((s) => !PRESYNC.includes(s.name)).map((s) => s.step);
        assert.deepEqual(numbers.filter((n, i) => n !== numbers[i - 1]), [1, 3, 2, 3, 4, 5, 6, 7, 8]);
    });
}

test("the order is the same on every run", async () => {
    const names = async () => (await runbookSteps(withReplica(mainConfig()))).map((s) => s.name);
    assert.deepEqual(await names(), await names());
});

test("desired state, one-off and gates are told apart, with each gate's condition", async () => {
    const steps = await runbookSteps(mainConfig());
    const byName = new Map(steps.map((s) => [s.name, s]));
    const kind = (name: string) => byName.get(name)?.kind;
    assert.equal(kind("data-support-tinyproxy-config"), "desired state");
    assert.equal(kind("data-support-crawls-crontab"), "desired state");
    assert.equal(kind("data-support-halt-old-server"), "one-off");
    assert.equal(kind("data-support-exchange-rates-copy"), "one-off");
    for (const s of steps.filter((s) => s.kind === "one-off")) {
        assert.match(s.marker!, /^\/var\/lib\/data-support\/ocp04-to-ocp23\/[a-z-]+\.done$/);
        assert.ok(s.create!.includes(`marker=${s.marker}`), `${s.name}: its create script checks ${s.marker}`);
        assert.ok(s.step >= 2 && s.step <= 8 || s.name === "data-support-incremental-copy-presync", `${s.name} is one-off outside steps 2 to 8`);
    }
    const gates = steps.filter((s) => s.kind === "gate");
    assert.deepEqual(gates.map((g) => [g.name, g.step, g.host?.key]), [
        ["data-support-gates-scrapyd", 3, "operator"],
        ["data-support-gates-rabbitmq", 3, "operator"],
        ["data-support-halt-wal-archiving-check", 2, "newMain"],
        ["data-support-gates-after-halt-scrapyd", 3, "operator"],
        ["data-support-gates-after-halt-rabbitmq", 3, "operator"],
        ["data-support-collect-dns-dns", 5, "operator"],
        ["data-support-gates-before-copy-scrapyd", 6, "operator"],
        ["data-support-gates-before-copy-rabbitmq", 6, "operator"],
    ]);
    const again = gates.filter((g) => /after-halt|before-copy/.test(g.name));
    assert.match(again[0].condition!, /is running or pending at https:\/\/collect\.kingfisher\.open-contracting\.org, asked at 198\.51\.100\.4 \(the old server\) whatever DNS says; asked again right after the halt of ocp04\.open-contracting\.org$/);
    assert.match(again[3].condition!, /is empty \(a queue whose count is unknown counts as busy\); asked again right before the incremental copy \(step 6\)$/);
    gates.splice(2, 1);
    assert.match(byName.get("data-support-halt-wal-archiving-check")!.condition!, /does not archive WAL into the old server's pgBackRest stanza/);
    assert.match(gates[0].condition!, /no Scrapyd job of any project \(listprojects\.json, with kingfisher\) is running or pending at https:\/\/collect\.kingfisher\.open-contracting\.org, asked at 198\.51\.100\.4 \(the old server\) whatever DNS says/);
    assert.match(gates[1].condition!, /every RabbitMQ queue in vhost \/ at https:\/\/rabbitmq\.kingfisher\.open-contracting\.org, asked at 198\.51\.100\.4 \(the old server\), is empty/);
    assert.match(gates[4].condition!, /collect\.kingfisher\.open-contracting\.org resolves.* to 198\.51\.100\.23 only, and any AAAA record to 2001:db8:d5::23/);
    const halt = byName.get("data-support-halt-old-server")!;
    assert.deepEqual(halt.host, { key: "oldMain", hostname: "ocp04.open-contracting.org", ssh: { user: "root", address: "198.51.100.4", port: 22 } });
    assert.deepEqual(halt.component, { type: "data-support:migration:HaltJobs", name: "data-support-halt" });
});

test("no secret is shown: [secret] stands for each, in Markdown and JSON", async () => {
    const book = await buildRunbook(withReplica(mainConfig({ ssh: { privateKey: CANARY.privateKey } })));
    const secrets = [CANARY.scrapyd, CANARY.rabbitmq, CANARY.privateKey.split("\n")[1], "mock-generated-password"];
    for (const text of [renderMarkdown(book), renderJson(book)]) {
        for (const secret of secrets) assert.ok(!text.includes(secret), `the runbook shows ${secret}`);
        assert.ok(text.includes(SECRET));
    }
    const gate = book.steps.find((s) => s.name === "data-support-gates-scrapyd")!;
    assert.equal(gate.stdin, SECRET);
    assert.equal(book.steps.find((s) => s.name === "data-support-replication-source")!.stdin, SECRET);
    assert.equal(book.outputs.replication, SECRET);
});

test("secure: values of the stack file are placeholders that read [secret]", async () => {
    const { config, secureKeys } = readStackConfig(REPO, "main");
    assert.deepEqual(secureKeys.sort(), ["data-support:gates.rabbitmq.password", "data-support:gates.scrapyd.password", "data-support:incremental.sentryDsn"]);
    assert.equal((config["data-support:gates"] as any).scrapyd.password, SECRET);

    const withKey = fs
        .readFileSync(path.join(REPO, "Pulumi.main.yaml"), "utf8")
        .replace("  data-support:tinyproxy:", "  data-support:ssh:\n    privateKey:\n      secure: v1:a2V5:cHJpdmF0ZS1rZXktY2lwaGVydGV4dA==\n  data-support:tinyproxy:");
    const dir = project({ "Pulumi.keyed.yaml": withKey });
    const read = readStackConfig(dir, "keyed");
    assert.ok(read.secureKeys.includes("data-support:ssh.privateKey"));
    const markdown = renderMarkdown(await runbookForStack(dir, "keyed"));
    for (const hidden of ["v1:", "PRIVATE KEY", "cHJpdmF0ZS1rZXktY2lwaGVydGV4dA"]) assert.ok(!markdown.includes(hidden), `the runbook shows ${hidden}`);
    assert.ok(markdown.includes("[secret]"));
});

test("the stack files are read as the CLI reads them", () => {
    const dir = project({
        "Pulumi.yaml": "name: data-support\nruntime: nodejs\nconfig:\n  migrationId:\n    default: from-project\n  role: main\n  pulumi:tags:\n    value:\n      a: b\n",
        "Pulumi.s.yaml": "config:\n  data-support:migrationId: from-stack\n  data-support:docker:\n    uid: 1005\n    apps: [a, b]\n  other:thing: '1'\n",
        "Pulumi.bare.yaml": "config:\n  role: main\n",
    });
    const { config } = readStackConfig(dir, "s");
    assert.deepEqual(config, {
        "data-support:migrationId": "from-stack",
        "data-support:role": "main",
        "pulumi:tags": { a: "b" },
        "data-support:docker": { uid: 1005, apps: ["a", "b"] },
        "other:thing": "1",
    });
    assert.throws(() => readStackConfig(dir, "bare"), (e: Error) => e instanceof StackFileError && /'role' has no namespace; write it as data-support:role/.test(e.message));
    assert.throws(() => readStackConfig(dir, "missing"), (e: Error) => e instanceof StackFileError && /no stack file Pulumi\.missing\.yaml.*stacks here: bare, s/.test(e.message));
});

test("a bad config file ends in the ConfigError that pulumi up shows, naming the key, and a non-zero exit", async () => {
    const bad = fs.readFileSync(path.join(REPO, "Pulumi.main.yaml"), "utf8").replace("ipv4: 203.0.113.23", "ipv4: 203.0.113.300");
    assert.notEqual(bad, fs.readFileSync(path.join(REPO, "Pulumi.main.yaml"), "utf8"));
    const dir = project({ "Pulumi.bad.yaml": bad });
    await assert.rejects(runbookForStack(dir, "bad"), (e: Error) => e instanceof ConfigError && e.message.includes("data-support:servers.newMain.ipv4"));
    const result = cli(["bad", "--cwd", dir]);
    assert.notEqual(result.status, 0);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /^ConfigError: Invalid configuration for stack; fix these keys/);
    assert.match(result.stderr, /data-support:servers\.newMain\.ipv4: must be an IPv4 address/);
});

test("--json prints the same runbook as JSON", async () => {
    const result = cli(["main", "--json"]);
    assert.equal(result.status, 0, result.stderr);
    const parsed = JSON.parse(result.stdout) as { stack: string; steps: RunbookStep[] };
    assert.equal(parsed.stack, "main");
    const book = await runbookForStack(REPO, "main");
    assert.deepEqual(parsed.steps.map((s) => s.urn), book.steps.map((s) => s.urn));
    assert.ok(!result.stdout.includes("v1:ZXhhbXBsZS1ub25jZQ"), "the ciphertext of a secure value is shown");
});

test("the replica stack reads the main stack's outputs from Pulumi.main.yaml", async () => {
    const book = await runbookForStack(REPO, "replica");
    assert.equal(book.role, "replica");
    assert.deepEqual(book.steps.map((s) => [s.name, s.step, s.kind]), [["data-support-replica-standby", 1, "desired state"]]);
    const [standby] = book.steps;
    assert.deepEqual(standby.triggers, ["ocp23.open-contracting.org", "203.0.113.23"]);
    assert.equal(standby.stdin, SECRET);
});
