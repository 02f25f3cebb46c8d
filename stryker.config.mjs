// @ts-check
// `npm run mutate`: StrykerJS over our own logic (components/) against the fast tests (unit and
// sandbox, not e2e). Scope it with `npm run mutate -- --mutate components/shell.ts`. The gate
// (scripts/gate.mjs) has its own config, stryker.gate.config.mjs (npm run mutate:gate).
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
    testRunner: "tap",
    tap: {
        // The sandbox first: it kills most mutants of shell text soonest. gate.test.ts loads no
        // component (it is the gate's, below).
        testFiles: ["test/sandbox/*.test.ts", "test/unit/!(gate).test.ts"],
        nodeArgs: ["--import", "tsx", "--test-reporter=tap", "-r", "{{hookFile}}", "{{testFile}}"],
    },
    checkers: ["typescript"],
    tsconfigFile: "tsconfig.json",
    typescriptChecker: { prioritizePerformanceOverAccuracy: true },
    mutate: ["components/**/*.ts"],
    coverageAnalysis: "perTest",
    // Two cores shared with other work: one test process at a time.
    concurrency: 1,
    timeoutMS: 120000,
    // The first run of every test file, on a busy machine, takes minutes.
    dryRunTimeoutMinutes: 30,
    reporters: ["clear-text", "progress", "json", "html"],
    jsonReporter: { fileName: "reports/mutation/mutation.json" },
    htmlReporter: { fileName: "reports/mutation/mutation.html" },
    tempDirName: ".stryker-tmp",
    cleanTempDir: true,
};
