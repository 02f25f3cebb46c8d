// index.ts loaded the way `pulumi up` loads it, for both stacks: the nodejs language host starts
// `node @pulumi/pulumi/cmd/run --monitor ... --project data-support --stack S --pwd <root> index.ts`
// with PULUMI_NODEJS_TYPESCRIPT=true and the stack's config in PULUMI_CONFIG (pulumi v3.248.0
// sdk/nodejs/cmd/pulumi-language-nodejs/main.go, execRuntime and constructArguments; pkg/engine/project.go
// getPwdMain). Here that very cmd/run runs, so its own code registers TypeScript: run.js (3.248.0)
// reads tsconfig.json, type-checks unless PULUMI_NODEJS_TRANSPILE_ONLY or noCheck, uses the project's
// `typescript` and, with no ts-node installed, its vendored ts-node 7.0.1 (tsutils.js
// typeScriptRequireStrings), then require()s the program. Only the engine is a stand-in: the SDK's
// mock monitor, preloaded by test/support/runtimeMocks.cjs. So a TypeScript or tsconfig change that
// would break `pulumi up` fails here, where `tsc --noEmit` and tsx (no type check) pass.
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { REPO, toAllConfig } from "../../tools/program";
import { readStackConfig } from "../../tools/stackConfig";

// The language host finds cmd/run from the program directory (main.go: locateModule).
const runPath = (dir: string) => path.join(dir, "node_modules", "@pulumi", "pulumi", "cmd", "run");
const PRELOAD = path.join(REPO, "test", "support", "runtimeMocks.cjs");
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "ds-runtime-"));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

interface RuntimeResult {
    status: number | null;
    stderr: string;
    resources: { type: string; name: string }[];
    stack: { outputs: Record<string, any>; secretOutputNames: string[] } | null;
}

let runs = 0;

/** One `pulumi up` program run of `stack` from `dir`, ts-node's cache in `cache` (as in $TMPDIR for the CLI). */
function pulumiRun(dir: string, stack: string, cache: string, options: { config?: Record<string, unknown>; secureKeys?: string[]; stackOutputs?: object } = {}): RuntimeResult {
    const read = options.config ? { config: options.config, secureKeys: options.secureKeys ?? [] } : readStackConfig(dir, stack);
    const resultPath = path.join(scratch, `result-${++runs}.json`);
    // Nothing of this test runner's TypeScript loader (tsx) or of the caller's ts-node settings.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NODE_OPTIONS|TS_NODE_|PULUMI_)/.test(k)));
    const child = spawnSync(
        process.execPath,
        ["-r", PRELOAD, runPath(dir), "--monitor", "mock", "--project", "data-support", "--root-directory", dir, "--stack", stack, "--pwd", dir, "--parallel", "16", "index.ts"],
        {
            cwd: dir,
            encoding: "utf8",
            env: {
                ...env,
                PULUMI_NODEJS_TYPESCRIPT: "true",
                PULUMI_CONFIG: JSON.stringify(toAllConfig(read.config)),
                // The CLI names the top-level keys that hold a secret.
                PULUMI_CONFIG_SECRET_KEYS: JSON.stringify([...new Set(read.secureKeys.map((k) => k.replace(/^([^:]+:[^.]+).*$/, "$1")))]),
                TS_NODE_CACHE_DIRECTORY: cache,
                DS_STACK_OUTPUTS: JSON.stringify(options.stackOutputs ?? {}),
                DS_RUNTIME_RESULT: resultPath,
            },
        },
    );
    const result = fs.existsSync(resultPath) ? JSON.parse(fs.readFileSync(resultPath, "utf8")) : { resources: [], stack: null };
    return { status: child.status, stderr: child.stderr, resources: result.resources, stack: result.stack };
}

/**
 * A copy of the project as `pulumi up` reads it (program, tsconfig.json, package.json, stack files),
 * so the last test can change a component without touching the work tree.
 */
function projectCopy(name: string): string {
    const dir = path.join(scratch, name);
    fs.mkdirSync(dir);
    for (const entry of ["index.ts", "components", "tsconfig.json", "package.json", "Pulumi.yaml", "Pulumi.main.yaml", "Pulumi.replica.yaml"]) {
        fs.cpSync(path.join(REPO, entry), path.join(dir, entry), { recursive: true });
    }
    fs.symlinkSync(fs.realpathSync(path.join(REPO, "node_modules")), path.join(dir, "node_modules"));
    return dir;
}

const MAIN_OUTPUTS = {
    newServer: { hostname: "ocp23.open-contracting.org", ipv4: "203.0.113.23", ipv6: "2001:db8:23::23" },
    postgresHostname: "postgres.kingfisher.open-contracting.org",
};

// One project and one ts-node cache for all tests, as on an operator's machine: the first run
// compiles and type-checks every file (the type check does not depend on the stack), later runs
// compile only what changed.
const PROJECT = projectCopy("project");
const CACHE = path.join(scratch, "ts-node-cache");
let mainStack: RuntimeResult["stack"] = null;

test("pulumi up's runtime loads index.ts for the main stack (Pulumi.main.yaml), type-checked by its ts-node", () => {
    const run = pulumiRun(PROJECT, "main", CACHE);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, "");
    assert.ok(run.stack, "the program's outputs reached the Stack resource");
    assert.deepEqual(run.stack.outputs.newServer, MAIN_OUTPUTS.newServer);
    assert.equal(run.stack.outputs.postgresHostname, MAIN_OUTPUTS.postgresHostname);
    assert.deepEqual(run.stack.secretOutputNames, ["replication"]);
    const names = run.resources.map((r) => r.name);
    for (const name of ["data-support-transfer-grant", "data-support-docker-start-pelican-frontend", "data-support-crawls-crontab", "data-support-replication-password"]) {
        assert.ok(names.includes(name), `${name} is registered: ${names.join(", ")}`);
    }
    mainStack = run.stack;
});

test("pulumi up's runtime loads index.ts for the replica stack (Pulumi.replica.yaml), the main stack's outputs through its StackReference", () => {
    assert.ok(mainStack, "the main stack ran first");
    const run = pulumiRun(PROJECT, "replica", CACHE, { stackOutputs: { "organization/data-support/main": mainStack } });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, "");
    assert.deepEqual(run.resources, [{ type: "command:remote:Command", name: "data-support-replica-standby" }]);
    assert.deepEqual(run.stack?.outputs.replica, { hostname: "ocp24.open-contracting.org", ipv4: "203.0.113.24", ipv6: "2001:db8:24::24" });
});

test("a bad config under pulumi up's runtime prints the message alone (a RunError): no stack trace, no problems array", () => {
    const { config, secureKeys } = readStackConfig(PROJECT, "main");
    const servers = structuredClone(config["data-support:servers"]) as any;
    servers.newMain.ipv4 = "203.0.113.300";
    servers.oldMain.ssh.hostKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQClY04dB6pZactgKtwDx8QLzHU73zb0H9XM/IFn1Jw5kP4++D08A9DhIC72OQ+x/lFFADZ5pK8llux94wPg91KIV4pzJLBnxOny8Annft4pWO3i7tAhDZWsnXNBrnsmN9BxbLCnfhUSMGfr/4f+2zCyAfVesb5kwjPyoV1X6KgIBd7hbVBvQaPACIbsF40SgzoWRgD4qUhnrwEiufAqzcKFOJIWyipyVcgRcgDqEYZkpD3Ewf1S/Ty0b/TL04IEo3PM3NoR6Y49L8kvZ+mXCxA8dktJZRaEKUmf+cExfMt6reOXsNu+hT8EVTJPxMZF1oYse995a6htiiGALesnuwl/";
    const run = pulumiRun(PROJECT, "main", CACHE, { config: { ...config, "data-support:servers": servers }, secureKeys });
    // cmd/run/index.js: an error the runtime logged ends the process with 32, which the language host
    // reports as a bail (nothing more printed).
    assert.equal(run.status, 32, run.stderr);
    assert.equal(
        run.stderr,
        "error: [runtime] Invalid configuration for stack; fix these keys in Pulumi.<stack>.yaml (pulumi config set --path ...) and run again:\n" +
            "  - data-support:servers.oldMain.ssh.hostKey: is an ssh-rsa key, which is not accepted: the provider (@pulumi/command) then offers only the SHA-1 'ssh-rsa' host-key algorithm, which OpenSSH 8.8 and later refuse, so no command could run. " +
            `Pin its ed25519 key: pulumi config set --path 'data-support:servers.oldMain.ssh.hostKey' "$(ssh-keyscan -t ed25519 ocp04.open-contracting.org | cut -d' ' -f2-)"\n` +
            "  - data-support:servers.newMain.ipv4: must be an IPv4 address\n",
    );
    assert.deepEqual(run.resources, []);
});

test("after an upgrade changes a component, the next pulumi up still compiles (ts-node's cache holds index.ts, not the component)", () => {
    // ts-node 7 type-checks only the files it compiles: with index.ts cached, the changed component
    // alone is the program's root, and TypeScript 6 then requires rootDir with ts-node's outDir (TS5011).
    assert.ok(mainStack, "the main stack ran first (and filled the cache)");
    const file = path.join(PROJECT, "components", "runbook", "docker-apps", "dockerApps.ts");
    fs.appendFileSync(file, "// changed by an upgrade\n");
    const run = pulumiRun(PROJECT, "main", CACHE);
    assert.equal(run.status, 0, run.stderr);
    assert.ok(run.resources.length > 0);

    // And the type check is on: a type error in that component stops the program before any resource.
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("readonly done: pulumi.Resource[];", "readonly done: pulumi.Resource[] = 42;"));
    const broken = pulumiRun(PROJECT, "main", CACHE);
    assert.equal(broken.status, 32, broken.stderr);
    assert.match(broken.stderr, /^error: \[runtime\] Running program '.*\/project\/index\.ts' failed with an unhandled exception:\nTSError: ⨯ Unable to compile TypeScript:\ncomponents\/runbook\/docker-apps\/dockerApps\.ts\(\d+,\d+\): error TS2322: Type 'number' is not assignable to type 'Resource\[\]'\./);
    assert.deepEqual(broken.resources, []);
});
