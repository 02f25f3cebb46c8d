// @ts-check
// A Stryker test runner ("node-test") that runs our node:test files in Stryker's own worker process,
// one test at a time, so that coverage is per test and a mutant re-runs only the tests that reach it.
//
// Why our own: StrykerJS 9.6.1 has no runner for node:test, and its tap runner (the nearest) spawns
// node + tsx + @pulumi/pulumi per test FILE per mutant (about 2 s of start-up each) with coverage per
// file, which made `npm run mutate` over components/ about 5 hours here. Node 20's own
// `run()` (node:test) has no in-process mode (it spawns a process per file), so the files are loaded
// here instead, with `node:test` replaced by the small recorder below.
//
// Followed (StrykerJS v9.6.1, github.com/stryker-mutator/stryker-js):
// - packages/mocha-runner/src/mocha-test-runner.ts: the files are loaded on the first run (with a
//   static mutant already active), `currentTestId` set around each test in the dry run,
//   `hitLimit`/`hitCount` set before each mutant run and read back with determineHitLimitReached;
// - packages/core/src/test-runner/reload-environment-decorator.ts: when `reloadEnvironment` is asked
//   (before and after a static mutant), and what a runner that cannot reload gets (a new worker);
// - packages/tap-runner/src/tap-test-runner.ts: bail at the first failure unless disableBail;
// - packages/instrumenter/src/util/syntax-helpers.ts: what the instrumented code reads
//   (`__stryker__.activeMutant`, `.currentTestId`, `.mutantCoverage.{static,perTest}`).
//
// What the recorder supports is what our tests use (test/unit, test/sandbox): `test`, `describe`,
// `before`, `after`, the options `skip` and `timeout`, and `t.diagnostic`; anything else from
// node:test throws when the file is loaded, so a new use shows up in the dry run, not as a
// silently wrong result. Tests run one after another (a `concurrency` option is ignored).
//
// The project is CommonJS (tsx compiles each .ts file to CommonJS), so `import ... from "node:test"`
// arrives as require("node:test"): it is answered in Module._load. (An ESM hook registered with
// module.register does not see require() in Node 20.)
//
// A file's `before` hooks run whenever one of its tests runs, so what they reach counts as reached by
// every test of that file (the same for `after`). Code run when the files are loaded is Stryker's
// "static" coverage: such a mutant runs every test, with the project's modules loaded again.
import Module from "node:module";
import path from "node:path";
import { declareClassPlugin, PluginKind, commonTokens, tokens } from "@stryker-mutator/api/plugin";
import { DryRunStatus, TestStatus, toMutantRunResult, determineHitLimitReached } from "@stryker-mutator/api/test-runner";

/** @typedef {{ kind: "test", id: string, name: string, fn: Function, skip: boolean, timeout?: number, file: string }} Test */
/** @typedef {{ kind: "suite", id: string, name: string, children: (Test|Suite)[], before: Function[], after: Function[], skip: boolean }} Suite */

/** The suite that `test`/`describe`/`before`/`after` add to while a file (or a describe block) loads. */
/** @type {Suite | undefined} */
let current;
/** @type {string} */
let currentFile = "";

/** node:test's (name, options, fn) with name and options optional. */
function parse(args) {
    const name = typeof args[0] === "string" ? args.shift() : (args.find((a) => typeof a === "function")?.name ?? "<anonymous>");
    const options = typeof args[0] === "object" && args[0] !== null ? args.shift() : {};
    const fn = typeof args[0] === "function" ? args[0] : () => {};
    return { name, options, fn };
}

function add(node) {
    if (!current) throw new Error(`node:test used outside a test file's loading (${node.name}); the mutation runner records tests only then`);
    const siblings = current.children.filter((c) => c.name === node.name).length;
    // Ids must be unique: a repeated name (tests made in a loop) gets its rank.
    node.id = `${current.id} > ${node.name}${siblings ? ` (${siblings + 1})` : ""}`;
    current.children.push(node);
    return node;
}

const unsupported = (what) => () => {
    throw new Error(`node:test ${what} is not supported by test/mutation/nodeTestRunner.mjs (add it there)`);
};

/** What `require("node:test")` returns in the worker. */
const recorder = {
    test(...args) {
        const { name, options, fn } = parse(args);
        add({ kind: "test", name, fn, skip: Boolean(options.skip || options.todo), timeout: options.timeout, file: currentFile });
    },
    describe(...args) {
        const { name, options, fn } = parse(args);
        const suite = add({ kind: "suite", name, children: [], before: [], after: [], skip: Boolean(options.skip) });
        const outer = current;
        current = suite;
        try {
            const result = fn();
            if (result && typeof result.then === "function") throw new Error(`describe("${name}") with an async body is not supported by the mutation runner`);
        } finally {
            current = outer;
        }
    },
    before(fn) {
        if (!current) throw new Error("before() outside a test file's loading");
        current.before.push(fn);
    },
    after(fn) {
        if (!current) throw new Error("after() outside a test file's loading");
        current.after.push(fn);
    },
};
for (const name of ["it", "suite", "beforeEach", "afterEach", "mock", "run", "only", "skip", "todo"]) recorder[name] = unsupported(name);
recorder.default = recorder.test;

const load = /** @type {any} */ (Module)._load;
/** @type {any} */ (Module)._load = function (request, ...rest) {
    return request === "node:test" ? recorder : load.call(this, request, ...rest);
};

/** Runs fn(t), failing after `timeout` ms if it is given (the test's own promise is left behind). */
async function call(fn, name, timeout) {
    const t = { name, diagnostic() {}, signal: new AbortController().signal };
    const run = Promise.resolve().then(() => fn(t));
    if (!timeout || !Number.isFinite(timeout)) return run;
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    try {
        return await Promise.race([run, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`test timed out after ${timeout} ms`)), timeout)))]);
    } finally {
        clearTimeout(timer);
    }
}

const tests = (node) => (node.kind === "test" ? [node] : node.children.flatMap(tests));
const message = (error) => (error instanceof Error ? (error.stack ?? error.message) : String(error));

export class NodeTestRunner {
    static inject = tokens(commonTokens.options, commonTokens.logger);
    /** @type {Suite[]} */
    files = [];
    loaded = false;
    /** The mutant that was active when the files were loaded (a static one), if any. */
    loadedWith = undefined;

    constructor(options, log) {
        this.testFiles = options.nodeTest.testFiles;
        this.timeout = options.nodeTest.timeout;
        this.reloadInProcess = options.nodeTest.reloadInProcess ?? true;
        this.ownTestFiles = options.nodeTest.ownTestFiles ?? {};
        this.log = log;
        this.ns = globalThis.__stryker__ ?? (globalThis.__stryker__ = {});
    }

    capabilities() {
        // We reload the project's CommonJS modules ourselves (unload below): about 2 s, where a new
        // worker loads node, tsx and @pulumi/pulumi again (about 9 s here). An ES module cannot be
        // unloaded (scripts/gate.mjs): with reloadInProcess false, Stryker starts a new worker for
        // each static mutant instead.
        return { reloadEnvironment: this.reloadInProcess };
    }

    /**
     * Forgets the project's own modules (tests, support, tools, components; not node_modules), so
     * that the next run loads them again, with a static mutant active or with none. Modules of
     * node_modules stay loaded: no mutant is in them.
     */
    unload() {
        const root = path.resolve(".") + path.sep;
        const cache = /** @type {any} */ (Module)._cache;
        for (const key of Object.keys(cache)) {
            if (key.startsWith(root) && !key.includes(`${path.sep}node_modules${path.sep}`)) delete cache[key];
        }
        this.files = [];
        this.loaded = false;
    }

    loadFiles() {
        for (const file of this.testFiles) {
            currentFile = file;
            current = { kind: "suite", id: file, name: file, children: [], before: [], after: [], skip: false };
            this.files.push(current);
            try {
                Module.createRequire(path.resolve("package.json"))(path.resolve(file));
            } finally {
                current = undefined;
            }
        }
        this.loaded = true;
    }

    async dryRun(options) {
        const perTest = options.coverageAnalysis === "perTest";
        const hooks = new Map();
        const result = await this.run({ disableBail: options.disableBail, perTest, hooks, onlyFiles: options.testFiles });
        if (result.status !== DryRunStatus.Complete || options.coverageAnalysis === "off") return result;
        const coverage = this.ns.mutantCoverage ?? { static: {}, perTest: {} };
        // What a suite's hooks reached counts for each of its tests (they run whenever one does).
        for (const [hookId, suite] of hooks) {
            const reached = coverage.perTest[hookId] ?? {};
            delete coverage.perTest[hookId];
            for (const test of tests(suite)) {
                const own = (coverage.perTest[test.id] ??= {});
                for (const [mutant, hits] of Object.entries(reached)) own[mutant] = (own[mutant] ?? 0) + hits;
            }
        }
        return { ...result, mutantCoverage: coverage };
    }

    async mutantRun(options) {
        this.ns.hitLimit = options.hitLimit;
        this.ns.hitCount = options.hitLimit ? 0 : undefined;
        const result = await this.run({
            disableBail: options.disableBail,
            activeMutant: options.activeMutant.id,
            staticMutant: options.mutantActivation === "static",
            reload: options.reloadEnvironment,
            filter: options.testFilter && new Set(options.testFilter),
            // The mutated file's own test files first (components/pillar.ts: pillar.test.ts, and
            // those nodeTest.ownTestFiles names): they are the likeliest to fail, and a mutant stops
            // at its first failing test.
            ownTests: this.ownTestsOf(options.activeMutant.fileName),
        });
        return toMutantRunResult(result);
    }

    /** The base names of a source file's own test files, in the order to run them. */
    ownTestsOf(fileName) {
        const base = path.basename(fileName);
        return [base.replace(/\.[cm]?[jt]s$/, ".test.ts"), ...(this.ownTestFiles[base] ?? [])];
    }

    /**
     * Runs the selected tests of each file, in the files' order and each file's order, with its
     * suites' before hooks first and after hooks last (as node:test does).
     */
    async run({ disableBail, activeMutant, staticMutant = false, reload = false, filter, perTest = false, hooks, onlyFiles, ownTests }) {
        // Stryker asks for a reload before and after a mutant in code run at load time. Needed only
        // if the modules loaded differ from what this run needs (loaded with that mutant, or none).
        const loadWith = staticMutant ? activeMutant : undefined;
        if (reload && this.loaded && this.loadedWith !== loadWith) this.unload();
        try {
            if (!this.loaded) {
                this.ns.activeMutant = loadWith;
                this.loadedWith = loadWith;
                this.loadFiles();
            }
        } catch (error) {
            return { status: DryRunStatus.Error, errorMessage: `loading the test files: ${message(error)}` };
        }
        this.ns.activeMutant = activeMutant;
        /** @type {any[]} */
        const results = [];
        const selected = (test) => !filter || filter.has(test.id);
        const stop = () => !disableBail && results.some((r) => r.status === TestStatus.Failed);

        const runSuite = async (suite) => {
            const mine = tests(suite).filter(selected);
            if (mine.length === 0 || stop()) return;
            if (suite.skip) {
                for (const test of mine) results.push({ id: test.id, name: test.id, fileName: test.file, status: TestStatus.Skipped, timeSpentMs: 0 });
                return;
            }
            let hookMs = 0;
            const hook = async (kind, fns) => {
                const hookId = `${suite.id} (${kind})`;
                if (perTest) {
                    hooks?.set(hookId, suite);
                    this.ns.currentTestId = hookId;
                }
                const start = Date.now();
                try {
                    for (const fn of fns) await call(fn, hookId);
                } finally {
                    hookMs += Date.now() - start;
                    this.ns.currentTestId = undefined;
                }
            };
            try {
                await hook("before", suite.before);
            } catch (error) {
                // A failed before hook fails each of the suite's tests, as in node:test.
                for (const test of mine) results.push({ id: test.id, name: test.id, fileName: test.file, status: TestStatus.Failed, failureMessage: `before: ${message(error)}`, timeSpentMs: 0 });
                return;
            }
            const first = results.length;
            for (const child of suite.children) {
                if (stop()) break;
                if (child.kind === "suite") {
                    await runSuite(child);
                    continue;
                }
                if (!selected(child)) continue;
                const base = { id: child.id, name: child.id, fileName: child.file };
                if (child.skip) {
                    results.push({ ...base, status: TestStatus.Skipped, timeSpentMs: 0 });
                    continue;
                }
                if (perTest) this.ns.currentTestId = child.id;
                const start = Date.now();
                try {
                    await call(child.fn, child.name, child.timeout ?? this.timeout);
                    results.push({ ...base, status: TestStatus.Success, timeSpentMs: Date.now() - start });
                } catch (error) {
                    results.push({ ...base, status: TestStatus.Failed, failureMessage: message(error), timeSpentMs: Date.now() - start });
                } finally {
                    this.ns.currentTestId = undefined;
                }
            }
            try {
                await hook("after", suite.after);
            } catch (error) {
                results.push({ id: `${suite.id} (after)`, name: `${suite.id} (after)`, status: TestStatus.Failed, failureMessage: `after: ${message(error)}`, timeSpentMs: 0 });
            }
            // The hooks' time is part of what each test costs (Stryker's time-out for a mutant adds up
            // the covering tests' times).
            for (const r of results.slice(first)) r.timeSpentMs += hookMs;
        };

        const rank = (file) => {
            const at = ownTests?.indexOf(path.basename(file.id)) ?? -1;
            return at < 0 ? Infinity : at;
        };
        // Own files first, in their given order; the others in the configured order (a stable sort).
        const files = [...this.files].sort((a, b) => (rank(a) === rank(b) ? 0 : rank(a) < rank(b) ? -1 : 1));
        for (const file of files) {
            if (onlyFiles && !onlyFiles.some((f) => path.resolve(f) === path.resolve(file.id))) continue;
            await runSuite(file);
            if (stop()) break;
        }
        const timeout = determineHitLimitReached(this.ns.hitCount, this.ns.hitLimit);
        if (timeout) return timeout;
        return { status: DryRunStatus.Complete, tests: results };
    }
}

export const strykerPlugins = [declareClassPlugin(PluginKind.TestRunner, "node-test", NodeTestRunner)];

export const strykerValidationSchema = {
    $schema: "http://json-schema.org/draft-07/schema#",
    type: "object",
    properties: {
        nodeTest: {
            description: "Options of test/mutation/nodeTestRunner.mjs",
            type: "object",
            properties: {
                testFiles: { type: "array", items: { type: "string" }, description: "Test files, in the order they run" },
                timeout: { type: "number", description: "Each test's time-out in ms where it sets none (node --test-timeout)" },
                reloadInProcess: { type: "boolean", description: "Reload the project's CommonJS modules in the worker for a static mutant (false: a new worker)" },
                ownTestFiles: {
                    type: "object",
                    additionalProperties: { type: "array", items: { type: "string" } },
                    description: "A source file's base name -> the base names of its own test files besides <name>.test.ts, run first, in this order",
                },
            },
            required: ["testFiles"],
            additionalProperties: false,
        },
    },
};
