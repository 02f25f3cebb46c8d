// @ts-check
// `npm run mutate:gate`: StrykerJS over the operator-side gate (scripts/gate.mjs) against its own
// tests (test/unit/gate.test.ts), which run it in-process (runGate) and as the command.
import base from "./stryker.config.mjs";

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
    ...base,
    tap: { ...base.tap, testFiles: ["test/unit/gate.test.ts"] },
    // JavaScript: nothing for the TypeScript checker to check.
    checkers: [],
    mutate: ["scripts/gate.mjs"],
    jsonReporter: { fileName: "reports/mutation/gate.json" },
    htmlReporter: { fileName: "reports/mutation/gate.html" },
};
