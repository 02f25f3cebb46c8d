// The executing harness: `pulumi up` of the real program against the test hosts. Each apply runs
// index.ts under the SDK's mocks in a fresh process (apply.ts) and carries out every registered
// resource as @pulumi/command would (remote.Command over SSH from the operator's namespace,
// local.Command there too, RandomPassword for real), keeping a state file between applies so a
// second config converges with the provider's update, replace and delete semantics.
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { REPO } from "../../tools/program";
import { applyCommand, readApplyResult, type ApplyEvent, type ApplyRequest, type ApplyResult, type StepRecord } from "./apply";
import { operatorCommand, STATE_DIR, type Testbed } from "../hosts/testbed";

export type { ApplyEvent, ApplyResult, StepRecord };

export class Harness {
    private readonly dir: string;

    constructor(readonly testbed: Testbed) {
        this.dir = path.join(STATE_DIR, "harness");
        fs.mkdirSync(this.dir, { recursive: true });
        // The work tree may live where the operator's namespace does not see it (its /tmp is
        // private), so local commands run in a copy of the project's scripts under the state dir.
        fs.cpSync(path.join(REPO, "scripts"), path.join(this.dir, "project", "scripts"), { recursive: true });
    }

    statePath(stack: string): string {
        return path.join(this.dir, `state-${stack}.json`);
    }

    /** The URNs in the stack's state, as `pulumi stack --show-urns` lists them. */
    stackUrns(stack = "main"): string[] {
        const file = this.statePath(stack);
        return fs.existsSync(file) ? Object.keys(JSON.parse(fs.readFileSync(file, "utf8")).resources ?? {}) : [];
    }

    /** Forgets a stack's state (a fresh `pulumi stack init`). */
    reset(stack: string): void {
        fs.rmSync(this.statePath(stack), { force: true });
    }

    /** Applies `config` to the stack; never throws on a failed step: see result.ok and result.error. */
    apply(config: Record<string, unknown>, options: ApplyOptions = {}): ApplyResult {
        const { argv, resultPath } = this.prepare(config, options);
        const child = spawnSync(process.execPath, argv, { cwd: REPO, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
        return this.collect(resultPath, child.status, child.stderr + child.stdout);
    }

    /** Like apply, while the test goes on (to inject a fault while a step runs). */
    applyInBackground(config: Record<string, unknown>, options: ApplyOptions = {}, onEvent?: (event: ApplyEvent) => void): Promise<ApplyResult> {
        const { argv, resultPath } = this.prepare(config, options);
        // options.signal: an aborted run ends its process (the rehearsal's Ctrl-C).
        const child = spawn(process.execPath, argv, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"], signal: options.signal });
        let output = "";
        let pending = "";
        child.stdout.on("data", (d) => {
            output += d;
            // One event a line (apply.ts ApplyEvent); anything else is the program's own output.
            pending += d;
            const lines = pending.split("\n");
            pending = lines.pop() ?? "";
            for (const line of lines) {
                if (!line.startsWith("{\"event\":")) continue;
                onEvent?.(JSON.parse(line) as ApplyEvent);
            }
        });
        child.stderr.on("data", (d) => (output += d));
        return new Promise((resolve, reject) => {
            child.on("error", (error) => (options.signal?.aborted ? undefined : reject(error)));
            child.on("close", (code) => {
                try {
                    resolve(this.collect(resultPath, code, output));
                } catch (error) {
                    reject(error);
                }
            });
        });
    }

    private prepare(config: Record<string, unknown>, options: ApplyOptions): { argv: string[]; resultPath: string } {
        const stack = options.stack ?? "main";
        const request: ApplyRequest = {
            config,
            stack,
            statePath: this.statePath(stack),
            preview: options.preview ?? false,
            replace: options.replace ?? [],
            operator: operatorCommand([]),
            stackOutputs: options.stackOutputs,
            scratchDir: path.join(this.dir, "scratch"),
            projectDir: path.join(this.dir, "project"),
        };
        return applyCommand(request, this.dir, stack);
    }

    private collect(resultPath: string, status: number | null, output: string): ApplyResult {
        return readApplyResult(resultPath, status, output);
    }}

export interface ApplyOptions {
    stack?: string;
    /** `pulumi preview`: reports each step's action, runs nothing, saves no state. */
    preview?: boolean;
    /** `pulumi up --replace <urn>`: these URNs are replaced whatever their diff says. */
    replace?: string[];
    stackOutputs?: ApplyRequest["stackOutputs"];
    /** applyInBackground only: aborting it kills the run (as Ctrl-C stops pulumi up). */
    signal?: AbortSignal;
}

/** Throws with the failing step's record (host, command, output) when the apply failed. */
export function assertApplied(result: ApplyResult): ApplyResult {
    if (!result.ok) throw new Error(`pulumi up failed: ${result.error}`);
    return result;
}

/** The stack config of the test hosts, as a sysadmin would write it for these servers. */
export function testbedConfig(tb: Testbed, overrides: Record<string, unknown> = {}): Record<string, any> {
    const server = (name: "old" | "new" | "docs" | "replica") => ({
        hostname: tb.hosts[name].hostname,
        ipv4: tb.hosts[name].ipv4,
        ipv6: tb.hosts[name].ipv6,
        ssh: { user: "root", port: 22, hostKey: tb.hosts[name].hostKey },
    });
    return {
        role: "main",
        migrationId: "ocp04-to-ocp23",
        servers: { oldMain: server("old"), newMain: server("new"), docs: server("docs") },
        tinyproxy: { port: 8888, keep: [], checkUrl: tb.web.url },
        postgres: { publicHostname: "postgres.kingfisher.open-contracting.org" },
        incremental: {
            // The DSN Salt's pillar gives on the test hosts (test/hosts/provision.sh, SENTRY_DSN).
            sentryDsn: "https://public@sentry.example.invalid/1",
            crawls: [
                { identifier: "DOMINICAN_REPUBLIC", spider: "dominican_republic_api", crawl_time: "2025-05-06", spider_arguments: "-a compile_releases=true" },
                { identifier: "ECUADOR", spider: "ecuador_sercop_bulk", crawl_time: "2025-01-01", day: 1 },
            ],
        },
        gates: {
            // The public name over HTTPS, as in production; the gate connects to the old server.
            scrapyd: { url: tb.scrapyd.publicUrl, username: tb.scrapyd.username, password: tb.scrapyd.password },
            rabbitmq: { url: tb.rabbitmq.url, username: tb.rabbitmq.username, password: tb.rabbitmq.password },
            collectHostname: "collect.kingfisher.open-contracting.org",
        },
        ...overrides,
    };
}

/** Whether the test hosts can run here (root, Linux namespaces). */
export function canRunTestHosts(): boolean {
    return process.getuid?.() === 0 && spawnSync("ip", ["netns", "list"]).status === 0;
}
