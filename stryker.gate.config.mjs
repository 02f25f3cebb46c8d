// @ts-check
// `npm run mutate:gate`: StrykerJS over the operator-side gate (scripts/gate.mjs). Its tests run the
// gate as a child process (test/unit/gate.test.ts), which takes the active mutant from the
// environment but reports no coverage to the test process; so the command runner runs the gate's
// test file for every mutant (no coverage analysis).
import base from "./stryker.config.mjs";

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
    ...base,
    testRunner: "command",
    commandRunner: { command: "node --import tsx --test test/unit/gate.test.ts" },
    tap: undefined,
    checkers: [],
    mutate: ["scripts/gate.mjs"],
    coverageAnalysis: "off",
    jsonReporter: { fileName: "reports/mutation/gate.json" },
    htmlReporter: { fileName: "reports/mutation/gate.html" },
};
