// `npm run preview -- <stack>`: what `pulumi preview` lists for an example stack on its first run
// (an empty state): each resource's action, from the executing harness's preview
// (test/support/apply.ts), which follows the engine: it runs nothing and saves nothing. The
// README's review section shows its output for `main`; on an unchanged second run every resource
// reads `same` (test/e2e/main.test.ts previews the test hosts after a real up).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { applyCommand, readApplyResult, type ApplyRequest } from "../test/support/apply";
import { REPO } from "./program";
import { readStackConfig } from "./stackConfig";

const stack = process.argv[2] ?? "main";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ds-preview-"));
try {
    const request: ApplyRequest = {
        config: readStackConfig(REPO, stack).config,
        stack,
        statePath: path.join(dir, "state.json"),
        preview: true,
        replace: [],
        operator: [],
        scratchDir: dir,
        projectDir: REPO,
    };
    const { argv, resultPath } = applyCommand(request, dir, stack);
    const child = spawnSync(process.execPath, argv, { encoding: "utf8" });
    const result = readApplyResult(resultPath, child.status, child.stderr);
    if (!result.ok) {
        console.error(result.error);
        process.exit(1);
    }
    const counts = new Map<string, number>();
    console.log(`Previewing update (${stack}), first run:\n`);
    for (const step of result.steps) {
        counts.set(step.action, (counts.get(step.action) ?? 0) + 1);
        console.log(`  ${step.action.padEnd(8)} ${step.type.padEnd(42)} ${step.name}`);
    }
    console.log(`\nResources: ${[...counts].map(([action, n]) => `${n} to ${action}`).join(", ")}`);
} finally {
    fs.rmSync(dir, { recursive: true, force: true });
}
