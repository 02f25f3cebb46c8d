// @ts-check
// `npm run mutate:gate`: StrykerJS over the operator-side gate (scripts/gate.mjs) against its own
// tests: test/unit/gate.test.ts runs it in-process (runGate) and as the command,
// gateConnect.test.ts as the command against a local HTTP server (--connect, every project).
import base from "./stryker.config.mjs";

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
    ...base,
    nodeTest: {
        testFiles: ["test/unit/gate.test.ts", "test/unit/gateConnect.test.ts"],
        // A mutant that makes the gate wait forever (its time-out gone, an answer never read)
        // fails the waiting test after 10 s (each takes well under a second), instead of a
        // Stryker time-out and a restart of the worker.
        timeout: 10000,
        // scripts/gate.mjs is an ES module, which cannot be unloaded: a new worker per static mutant.
        reloadInProcess: false,
    },
    // Its static mutants are few and its tests take seconds.
    ignoreStatic: false,
    // JavaScript: nothing for the TypeScript checker to check.
    checkers: [],
    mutate: ["scripts/gate.mjs"],
    // Every mutator: the gate's strings are its URLs, answers' field names and messages, not shell text.
    mutator: { excludedMutations: [] },
    // Its tests take seconds (netTime about 10 s here, under load); a mutant that makes the gate
    // wait (its time-out gone, a read that never ends) is ended after 1.5 x that + 15 s: a minute
    // per such mutant otherwise, and there are many.
    timeoutMS: 15000,
    jsonReporter: { fileName: "reports/mutation/gate.json" },
    htmlReporter: { fileName: "reports/mutation/gate.html" },
};
