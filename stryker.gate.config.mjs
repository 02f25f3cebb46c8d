// @ts-check
// `npm run mutate:gate`: StrykerJS over the operator-side gate (scripts/gate.mjs). Its tests run the
// gate as a child process (test/unit/gate.test.ts), which inherits the active mutant from the
// environment but reports no coverage to the test process: so coverage analysis is off here, and
// every mutant runs the gate's tests.
import base from "./stryker.config.mjs";

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
    ...base,
    tap: { ...base.tap, testFiles: ["test/unit/gate.test.ts"] },
    checkers: [],
    mutate: ["scripts/gate.mjs"],
    coverageAnalysis: "off",
    jsonReporter: { fileName: "reports/mutation/gate.json" },
    htmlReporter: { fileName: "reports/mutation/gate.html" },
};
