// Conformance of the executing harness (test/support/apply.ts) to the Pulumi engine and the
// command provider it stands for. Each test names the source file and version whose rule it pins,
// so an upgrade of either shows what to re-check. The rules are shown on a small program of local
// commands (test/support/conformance/program.ts) that append to a log; no test hosts needed.
// SSH, the provider's connection, is pinned in test/unit/providerSsh.test.ts.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { applyCommand, readApplyResult, type ApplyRequest, type ApplyResult, type State } from "../support/apply";
import type { Spec } from "../support/conformance/program";

const PROGRAM = path.join(__dirname, "..", "support", "conformance", "program.ts");

/** A stack of the conformance program: its state file and a log its commands append to. */
class Stack {
    readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "ds-engine-"));
    readonly log = path.join(this.dir, "log");
    readonly statePath = path.join(this.dir, "state.json");

    /** `echo WORD >> log`, as command text. */
    say(word: string): string {
        return `echo ${word} >> ${this.log}`;
    }

    lines(): string[] {
        return fs.existsSync(this.log) ? fs.readFileSync(this.log, "utf8").split("\n").filter(Boolean) : [];
    }

    clearLog(): void {
        fs.rmSync(this.log, { force: true });
    }

    state(): State {
        return JSON.parse(fs.readFileSync(this.statePath, "utf8"));
    }

    private request(resources: Spec[], options: { preview?: boolean; replace?: string[] }): { argv: string[]; resultPath: string } {
        const request: ApplyRequest = {
            config: { resources },
            stack: "main",
            statePath: this.statePath,
            preview: options.preview ?? false,
            replace: options.replace ?? [],
            operator: [],
            scratchDir: path.join(this.dir, "scratch"),
            projectDir: this.dir,
            program: PROGRAM,
        };
        return applyCommand(request, this.dir, "main");
    }

    up(resources: Spec[], options: { preview?: boolean; replace?: string[] } = {}): ApplyResult {
        const { argv, resultPath } = this.request(resources, options);
        const child = spawnSync(process.execPath, argv, { encoding: "utf8" });
        return readApplyResult(resultPath, child.status, `${child.stderr}${child.stdout}`);
    }

    /** Starts an `up` and kills it (as Ctrl-C twice, or a lost machine would) once `until` holds. */
    async upKilledWhen(resources: Spec[], until: () => boolean): Promise<void> {
        const { argv } = this.request(resources, {});
        const child = spawn(process.execPath, argv, { stdio: "ignore" });
        const exited = new Promise((resolve) => child.on("exit", resolve));
        while (!until()) await new Promise((resolve) => setTimeout(resolve, 20));
        child.kill("SIGKILL");
        await exited;
    }
}

const acted = (r: ApplyResult) => r.steps.map((s) => `${s.action} ${s.name}`);
const urnOf = (r: ApplyResult, name: string) => r.registered.find((x) => x.name === name)!.urn;

test("pulumi-command v1.2.1 remote|local/commandOutputs.go: stdout and stderr are stored with one trailing newline removed", () => {
    const stack = new Stack();
    const result = stack.up([
        { name: "one", create: "printf 'key\\n'; printf 'warn\\n' >&2" },
        { name: "two", create: "printf 'a\\n\\n'" },
        { name: "none", create: "printf 'b'" },
    ]);
    assert.ok(result.ok, result.error);
    assert.deepEqual(result.outputs.stdout, { one: "key", two: "a\n", none: "b" });
    assert.deepEqual(stack.state().resources[urnOf(result, "one")].outputs.stderr, "warn");
});

test("commandOutputs.go trimming: a step reading another's stdout with `read` must not need the newline (the transfer grant's bug)", () => {
    const stack = new Stack();
    const result = stack.up([
        { name: "keypair", create: "echo 'ssh-ed25519 AAAA comment'" },
        // What the grant did before the fix: `read` returns 1 at an end of input with no newline.
        { name: "strict", create: "set -e; IFS= read -r k; echo \"$k\"", stdinFrom: "keypair" },
    ]);
    assert.equal(result.ok, false);
    assert.match(result.error ?? "", /^command:local:Command \(strict\):\n    error: exit status 1: running "set -e; IFS= read -r k; echo \\"\$k\\"":/);
    const fixed = new Stack().up([
        { name: "keypair", create: "echo 'ssh-ed25519 AAAA comment'" },
        { name: "tolerant", create: "set -e; IFS= read -r k || [ -n \"$k\" ]; echo \"got $k\"", stdinFrom: "keypair" },
    ]);
    assert.ok(fixed.ok, fixed.error);
    assert.equal((fixed.outputs.stdout as any).tolerant, "got ssh-ed25519 AAAA comment");
});

test("commandController.go: a change of any input but triggers runs `update`, else `create`; unchanged inputs run nothing", () => {
    const stack = new Stack();
    // Independent steps run in parallel, in any order: compare them sorted.
    assert.deepEqual(acted(stack.up([{ name: "u", create: stack.say("create1"), update: stack.say("update1") }, { name: "c", create: stack.say("c1") }])).sort(), ["create c", "create u"]);
    const second = stack.up([{ name: "u", create: stack.say("create2"), update: stack.say("update2") }, { name: "c", create: stack.say("c2") }]);
    assert.deepEqual(acted(second).sort(), ["update c", "update u"]);
    assert.deepEqual(stack.lines().sort(), ["c1", "c2", "create1", "update2"]);
    stack.clearLog();
    const third = stack.up([{ name: "u", create: stack.say("create2"), update: stack.say("update2") }, { name: "c", create: stack.say("c2") }]);
    assert.deepEqual(acted(third).sort(), ["same c", "same u"]);
    assert.deepEqual(stack.lines(), []);
});

test("common/inputs.go (triggers: replaceOnChanges) and pulumi v3.248.0 step_generator.go: a replacement creates the new one first and deletes the old one at the end", () => {
    const stack = new Stack();
    stack.up([{ name: "r", create: stack.say("create-a"), delete: stack.say("delete-a"), triggers: ["a"] }, { name: "later", create: stack.say("later-1") }]);
    stack.clearLog();
    const result = stack.up([{ name: "r", create: stack.say("create-b"), delete: stack.say("delete-b"), triggers: ["b"] }, { name: "later", create: stack.say("later-2"), dependsOn: ["r"] }]);
    assert.ok(result.ok, result.error);
    // The old half is deleted with the inputs it was created with.
    assert.deepEqual(stack.lines(), ["create-b", "later-2", "delete-a"]);
    assert.deepEqual(acted(result), ["replace r", "update later", "delete-replaced r"]);
    assert.deepEqual(stack.state().condemned, []);
});

test("step_generator.go: deleteBeforeReplace deletes the old one before the new one is created", () => {
    const stack = new Stack();
    stack.up([{ name: "r", create: stack.say("create-a"), delete: stack.say("delete-a"), triggers: ["a"], deleteBeforeReplace: true }]);
    stack.clearLog();
    const result = stack.up([{ name: "r", create: stack.say("create-b"), delete: stack.say("delete-b"), triggers: ["b"], deleteBeforeReplace: true }]);
    assert.ok(result.ok, result.error);
    assert.deepEqual(stack.lines(), ["delete-a", "create-b"]);
    assert.deepEqual(acted(result), ["delete-replaced r", "replace r"]);
});

test("pulumi up --replace <urn> (step_generator.go, replaceTargets) replaces that resource only, though nothing changed", () => {
    const stack = new Stack();
    const specs = [
        { name: "a", create: stack.say("create-a"), delete: stack.say("delete-a") },
        { name: "b", create: stack.say("create-b"), delete: stack.say("delete-b") },
    ];
    const first = stack.up(specs);
    stack.clearLog();
    const result = stack.up(specs, { replace: [urnOf(first, "a")] });
    assert.ok(result.ok, result.error);
    assert.deepEqual(acted(result).slice(0, 2).sort(), ["replace a", "same b"]);
    assert.equal(acted(result)[2], "delete-replaced a", "the old half goes last");
    assert.deepEqual(stack.lines(), ["create-a", "delete-a"]);
});

test("step_executor.go: after a failed step no new step starts (running ones finish), and no delete runs", () => {
    const stack = new Stack();
    stack.up([{ name: "gone", create: ":", delete: stack.say("deleted-gone") }]);
    const state = stack.statePath;
    // `slow` is running when `fails` fails (`fails` waits for it to start): it waits until the
    // harness has recorded the failed create as finished (no pending operation left for it in
    // the saved state), then ends.
    const waitForFailure = `until [ -e ${stack.dir}/failed ] && node -e 'process.exit(require(process.argv[1]).pending.some((p) => p.urn.endsWith("::fails")) ? 1 : 0)' ${state}; do sleep 0.05; done`;
    const result = stack.up([
        { name: "fails", create: `until [ -e ${stack.dir}/slow-started ]; do sleep 0.05; done; touch ${stack.dir}/failed; exit 3` },
        { name: "slow", create: `touch ${stack.dir}/slow-started; ${waitForFailure}; ${stack.say("slow-finished")}` },
        { name: "after", create: stack.say("after-ran"), dependsOn: ["slow"] },
    ]);
    assert.equal(result.ok, false);
    assert.equal(result.failed?.name, "fails");
    assert.match(result.error ?? "", /^command:local:Command \(fails\):\n    error: exit status 3: running "until /);
    assert.deepEqual(stack.lines(), ["slow-finished"], "the running step finished; `after` never started; `gone` was not deleted");
    assert.deepEqual(acted(result).sort(), ["create fails", "create slow"]);
    const urns = Object.keys(stack.state().resources);
    assert.ok(urns.some((u) => u.endsWith("::gone")), "a resource that left the program stays until a run succeeds");
    assert.ok(urns.some((u) => u.endsWith("::slow")));
    assert.ok(!urns.some((u) => u.endsWith("::fails")), "a failed create records nothing");
});

test("a failed update keeps the old state; the next up updates again (commandController.go Update, step_executor.go)", () => {
    const stack = new Stack();
    stack.up([{ name: "u", create: "echo v1" }]);
    const failed = stack.up([{ name: "u", create: "echo v2; exit 1" }]);
    assert.equal(failed.ok, false);
    const entry = Object.values(stack.state().resources)[0];
    assert.equal(entry.inputs.create, "echo v1");
    assert.equal(entry.outputs.stdout, "v1");
    assert.deepEqual(acted(stack.up([{ name: "u", create: "echo v3" }])), ["update u"]);
});

test("deployment_executor.go: deletes run dependents first; a failed delete and those not yet run stay in the state for the next up", () => {
    const stack = new Stack();
    const marker = path.join(stack.dir, "allow-delete");
    stack.up([
        { name: "base", create: ":", delete: stack.say("delete-base") },
        { name: "mid", create: ":", delete: `[ -e ${marker} ] && ${stack.say("delete-mid")}`, dependsOn: ["base"] },
        { name: "top", create: ":", delete: stack.say("delete-top"), dependsOn: ["mid"] },
    ]);
    const failed = stack.up([]);
    assert.equal(failed.ok, false);
    assert.equal(failed.failed?.action, "delete");
    assert.deepEqual(stack.lines(), ["delete-top"]);
    assert.deepEqual(Object.values(stack.state().resources).map((e) => e.name).sort(), ["base", "mid"]);
    fs.writeFileSync(marker, "");
    const again = stack.up([]);
    assert.ok(again.ok, again.error);
    assert.deepEqual(stack.lines(), ["delete-top", "delete-mid", "delete-base"]);
    assert.deepEqual(stack.state().resources, {});
});

test("the engine saves the state after each step; an interrupted run's pending operation is reported, and that resource is created again", async () => {
    const stack = new Stack();
    const release = path.join(stack.dir, "release");
    const specs = (second: string) => [
        { name: "first", create: stack.say("first") },
        { name: "second", create: second, dependsOn: ["first"] },
    ];
    // Killed while `second` runs: `first` is in the saved state, `second` is a pending create.
    await stack.upKilledWhen(specs(`${stack.say("second-started")}; while [ ! -e ${release} ]; do :; done`), () => stack.lines().includes("second-started"));
    const saved = stack.state();
    assert.deepEqual(Object.values(saved.resources).map((e) => e.name), ["first"]);
    assert.deepEqual(saved.pending.map((p) => [p.urn.split("::").pop(), p.op]), [["second", "creating"]]);
    fs.writeFileSync(release, "");
    const next = stack.up(specs(stack.say("second-again")));
    assert.ok(next.ok, next.error);
    assert.equal(next.warnings.length, 1);
    assert.match(next.warnings[0], /^Attempting to deploy or update resources with 1 pending operations from previous deployment\.\n  \* urn:pulumi:[^ ]*::second, interrupted while creating$/);
    assert.deepEqual(acted(next), ["same first", "create second"]);
    assert.deepEqual(stack.state().pending, []);
});

test("preview (pulumi preview): each resource's action, unknown outputs where inputs changed, nothing run, nothing saved", () => {
    const stack = new Stack();
    stack.up([
        { name: "same", create: "echo kept" },
        { name: "changed", create: "echo one" },
        { name: "retriggered", create: "echo t", triggers: [1] },
        { name: "gone", create: ":", delete: stack.say("deleted") },
    ]);
    const before = fs.readFileSync(stack.statePath, "utf8");
    stack.clearLog();
    const preview = stack.up(
        [
            { name: "same", create: "echo kept" },
            { name: "changed", create: `${stack.say("ran")}; echo two` },
            { name: "retriggered", create: stack.say("ran"), triggers: [2] },
            { name: "reader", create: stack.say("ran"), stdinFrom: "changed" },
            { name: "reader-of-same", create: "cat", stdinFrom: "same" },
            { name: "new", create: stack.say("ran") },
        ],
        { preview: true },
    );
    assert.ok(preview.ok, preview.error);
    assert.deepEqual(acted(preview).sort(), ["create new", "create reader", "create reader-of-same", "delete gone", "replace retriggered", "same same", "update changed"]);
    assert.deepEqual(stack.lines(), [], "a preview runs no command");
    assert.equal(fs.readFileSync(stack.statePath, "utf8"), before, "a preview saves no state");
    const step = (name: string) => preview.steps.find((s) => s.name === name)!;
    assert.deepEqual(step("changed").unknownOutputs, ["stdout", "stderr"]);
    assert.equal(step("same").unknownOutputs, undefined);
    // What a changed step prints is unknown to those that read it; an unchanged one's is known.
    assert.deepEqual(step("reader").unknownInputs, ["stdin"]);
    assert.deepEqual(step("reader-of-same").unknownInputs, []);
    assert.equal(preview.outputs.stdout, undefined, "the stack output holds unknowns: not known in a preview");
});

test("pulumi v3.248.0 step_generator.go: a second registration of one URN fails the run (in preview too), running nothing", () => {
    const stack = new Stack();
    const twice = [{ name: "twice", create: stack.say("ran") }, { name: "twice", create: stack.say("ran") }];
    const preview = stack.up(twice, { preview: true });
    assert.equal(preview.ok, false);
    assert.match(preview.error ?? "", /Duplicate resource URN '[^']*::twice'/);
    const up = stack.up(twice);
    assert.equal(up.ok, false);
    assert.match(up.error ?? "", /Duplicate resource URN '[^']*::twice'/);
});
