// @ts-check
// `npm run mutate`: StrykerJS over our own logic (components/) against the fast tests (unit and
// sandbox, not e2e). Scope it with `npm run mutate -- --mutate components/machinery/shell.ts`. The gate
// (scripts/gate.mjs) has its own config, stryker.gate.config.mjs (npm run mutate:gate).
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
    // Our own runner (test/mutation/nodeTestRunner.mjs): the test files run in Stryker's worker, one
    // test at a time, with coverage per test, so a mutant re-runs only the tests that reach it.
    testRunner: "node-test",
    plugins: ["@stryker-mutator/typescript-checker", "./test/mutation/nodeTestRunner.mjs"],
    // The worker loads the .ts test files itself.
    testRunnerNodeArgs: ["--import", "tsx"],
    nodeTest: {
        // A mutant's tests run up to the first that fails: those of the mutated file's own test
        // files first (components/pillar.ts: test/unit/pillar.test.ts; the runner does that), then in
        // this order, the cheapest tests first: by the average time of a test in run F's dry run (test/mutation/
        // report.md), config.test.ts first (a mutant of the config schema, code run when the files
        // load, runs every test, and most such mutants fail there) and transferDispatcher.test.ts
        // (64 s, a second a test) near the end; run F's order (sandbox files second) cost about
        // twice the test time for the same kills. Left out, as they test the harness and how Pulumi
        // loads the program, not components' logic: test/unit/engine.test.ts (the engine and
        // provider rules on a conformance program of its own, which imports no component) and
        // test/unit/runtime.test.ts (index.ts under Pulumi's own cmd/run in a child process, where
        // Stryker sees no coverage; what the program registers is checked in-process by the
        // sandbox, runbook and config tests). gate.test.ts and gateConnect.test.ts load no
        // component (they are the gate's: stryker.gate.config.mjs).
        // Own test files of the files not named after them (a file's own is <name>.test.ts), in
        // the order to run them: the transfer key's, by what run G's kills show; a crawl's read
        // access where it runs (run H's survivors of incrementalCrawls.ts).
        ownTestFiles: {
            "temporaryAccess.ts": ["transferAccess.test.ts", "transferKey.test.ts", "transferJump.test.ts", "transferDispatcher.test.ts"],
            "incrementalCrawls.ts": ["readAccess.test.ts"],
        },
        testFiles: [
            "test/unit/config.test.ts",
            "test/unit/replicaStack.test.ts",
            "test/unit/replicationSource.test.ts",
            "test/unit/configDestinations.test.ts",
            "test/unit/saltEquivalence.test.ts",
            "test/unit/resourceTree.test.ts",
            "test/unit/secrets.test.ts",
            "test/unit/oldServerIdle.test.ts",
            "test/unit/order.test.ts",
            "test/unit/transferAccess.test.ts",
            "test/unit/commands.test.ts",
            "test/unit/pillar.test.ts",
            "test/unit/incrementalCrawls.test.ts",
            "test/sandbox/tinyproxy.test.ts",
            "test/sandbox/replicationSource.test.ts",
            "test/sandbox/haltRestore.test.ts",
            "test/sandbox/transferJump.test.ts",
            "test/sandbox/oneOff.test.ts",
            "test/sandbox/incremental.test.ts",
            "test/sandbox/readAccess.test.ts",
            "test/sandbox/walArchiving.test.ts",
            "test/sandbox/transferKey.test.ts",
            "test/unit/runbook.test.ts",
            "test/unit/shell.test.ts",
            "test/unit/injection.test.ts",
            "test/unit/badConfig.property.test.ts",
            "test/sandbox/transferDispatcher.test.ts",
            "test/unit/treeManifest.test.ts",
            "test/unit/progress.test.ts",
        ],
    },
    checkers: ["typescript"],
    // The checker checks the program as Pulumi compiles it (index.ts and components/), not the tests
    // (tsx runs them unchecked): the whole project took 32 s to check here, the program 12 s, and
    // under load the checker, not the tests, was what each mutant waited for.
    tsconfigFile: "tsconfig.mutate.json",
    typescriptChecker: { prioritizePerformanceOverAccuracy: true },
    mutate: ["components/**/*.ts"],
    mutator: {
        // Half of all mutants (1021 of 2142) are StringLiteral, and here a string is nearly always
        // shell text, a message or a resource name. Stryker turns a whole string or template,
        // `sh` templates included, into "" (it cannot mutate inside the shell text): such a
        // mutant says nothing of the scripts' logic (the sandbox tests and the mutants made by
        // hand, test/mutation/report.md, check that), and each costs a run of the test files.
        excludedMutations: ["StringLiteral"],
    },
    coverageAnalysis: "perTest",
    // A "static" mutant is in code run when the modules load (552 of 1261; the zod schemas of
    // config.ts and configValues.ts are most of them): Stryker cannot tell which tests reach it, so
    // it would run every test (one to three minutes here) for each one that survives, hours in all.
    // The 239 that no test reaches afterwards are ignored (reported as such, not scored); the others
    // run against the tests that reach them. To measure them all, use a config that spreads this one
    // with `ignoreStatic: false`.
    ignoreStatic: true,
    // With a checker, Stryker 9.6.1 splits this between checkers (ceil(n/2)) and test runners
    // (floor(n/2), at least 1: core/src/concurrent/concurrency-token-provider.ts): 2 is one
    // TypeScript checker and one test runner, a process per core of this 2-core machine (1 gives the same).
    concurrency: 2,
    // A hung script is ended by the sandbox itself after 120 s (spawnSync); a mutant past this is a time-out (detected).
    timeoutMS: 60000,
    // The dry run (every test once, in one process) takes about a minute on a quiet machine.
    dryRunTimeoutMinutes: 10,
    // event-recorder: each mutant's result is written as it is known (reports/mutation/events/), so
    // a run stopped early still tells what it found.
    reporters: ["clear-text", "progress", "json", "html", "event-recorder"],
    eventReporter: { baseDir: "reports/mutation/events" },
    jsonReporter: { fileName: "reports/mutation/mutation.json" },
    htmlReporter: { fileName: "reports/mutation/mutation.html" },
    tempDirName: ".stryker-tmp",
    // Scoped runs side by side each take a --tempDirName of their own (.stryker-tmp-<x>): not copied.
    ignorePatterns: ["/.stryker-tmp-*"],
    cleanTempDir: true,
};
