// The mutation runs' test lists name every fast test file: a test file added to test/unit or
// test/sandbox but left out of stryker.config.mjs would never kill a mutant, and `npm run mutate`
// would report its kills as survivors without a word.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

const REPO = path.resolve(__dirname, "../..");

// Left out of stryker.config.mjs on purpose: engine and runtime test the engine rules and how Pulumi
// loads the program (its comment says why), this file the lists themselves; none reaches components/.
const LEFT_OUT = ["test/unit/engine.test.ts", "test/unit/runtime.test.ts", "test/unit/mutationConfig.test.ts"];

test("every unit and sandbox test file is in a mutation run's list, once", async () => {
    const onDisk = ["test/unit", "test/sandbox"].flatMap((dir) =>
        fs.readdirSync(path.join(REPO, dir)).filter((f) => f.endsWith(".test.ts")).map((f) => `${dir}/${f}`),
    );
    const components: string[] = (await import(path.join(REPO, "stryker.config.mjs"))).default.nodeTest.testFiles;
    const gate: string[] = (await import(path.join(REPO, "stryker.gate.config.mjs"))).default.nodeTest.testFiles;
    const listed = [...components, ...gate, ...LEFT_OUT];
    assert.deepEqual(listed.filter((f, i) => listed.indexOf(f) !== i), [], "named twice");
    assert.deepEqual(onDisk.filter((f) => !listed.includes(f)).sort(), [], "in no list");
    assert.deepEqual(listed.filter((f) => !onDisk.includes(f)).sort(), [], "listed, not on disk");
});
