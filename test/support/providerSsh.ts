// Runs one `command:remote:Command` step over SSH as pulumi/pulumi-command v1.2.1 does, through
// provider-ssh/main.go (Go's x/crypto/ssh with the provider's settings). Node builtins only.
import { execFileSync, spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

/** Where the built binary is cached: outside any private /tmp, so the test hosts' namespaces see it. */
export const CACHE_DIR = "/var/cache/data-support-test";
const SOURCE = path.join(__dirname, "provider-ssh", "main.go");

/** A connection exactly as a program's `remote.Command` inputs hold it; provider-ssh fills the provider's defaults. */
export interface SshConnectionBase {
    host: string;
    port?: number;
    user?: string;
    password?: string;
    privateKey?: string;
    privateKeyPassword?: string;
    agentSocketPath?: string;
    dialErrorLimit?: number;
    perDialTimeout?: number;
    hostKey?: string;
}
export interface SshConnection extends SshConnectionBase {
    proxy?: SshConnectionBase;
}

export interface ProviderSshResult {
    /** With one trailing "\n" removed, as the provider stores it (it stores nothing when `error` is set). */
    stdout: string;
    stderr: string;
    /** The remote exit status; -1 when there is none (dial failure, signal, no exit-status). */
    exitCode: number;
    /** null on success, else the provider's error text, word for word. */
    error: string | null;
    /** The provider's progress lines, e.g. "Dial 1/10 failed: retrying". */
    status: string[];
    /** provider-ssh's own stdout/stderr: the command's output as it streamed, untrimmed. */
    liveStdout: string;
    liveStderr: string;
}

export interface ProviderSshOptions {
    stdin?: string;
    /** Sent with SSH setenv, as the provider's `environment` (sshd refuses names it does not AcceptEnv). */
    environment?: Record<string, string>;
    /** Test-only: first retry delay in ms (the provider's: 100, growing x1.5 to at most 5000). */
    retryDelayMs?: number;
    /** Called with each chunk as it arrives. */
    onStdout?: (chunk: string) => void;
    onStderr?: (chunk: string) => void;
}

let built: string | undefined;

/**
 * Builds provider-ssh once (offline: Debian's golang-go and golang-golang-x-crypto-dev), cached by a
 * hash of main.go and the Go version; returns the binary's path.
 */
export function buildProviderSsh(): string {
    if (built) return built;
    // CGO_ENABLED=0 as the provider's release (.goreleaser.yml @ v1.2.1): pure Go, no C compiler needed.
    const env = { ...process.env, GO111MODULE: "off", GOPATH: "/usr/share/gocode", GOCACHE: path.join(CACHE_DIR, "go-build"), GOFLAGS: "", CGO_ENABLED: "0" };
    let goVersion: string;
    try {
        goVersion = execFileSync("go", ["version"], { env, encoding: "utf8" });
    } catch (e) {
        throw new Error(`provider-ssh needs Go: apt-get install golang-go golang-golang-x-crypto-dev (${(e as Error).message})`);
    }
    const hash = createHash("sha256").update(fs.readFileSync(SOURCE)).update(goVersion).update("CGO_ENABLED=0 -trimpath").digest("hex").slice(0, 16);
    const binary = path.join(CACHE_DIR, `provider-ssh-${hash}`);
    if (!fs.existsSync(binary)) {
        fs.mkdirSync(CACHE_DIR, { recursive: true });
        // Build beside the target and rename: concurrent test files never see half a binary.
        const tmp = `${binary}.${process.pid}.${randomUUID()}`;
        try {
            execFileSync("go", ["build", "-trimpath", "-o", tmp, SOURCE], { env, cwd: path.dirname(SOURCE), stdio: ["ignore", "pipe", "pipe"] });
        } catch (e) {
            const err = e as { stderr?: Buffer; message: string };
            throw new Error(`building provider-ssh failed (needs golang-go and golang-golang-x-crypto-dev):\n${err.stderr?.toString() ?? err.message}`);
        }
        fs.renameSync(tmp, binary);
    }
    built = binary;
    return binary;
}

/**
 * Runs `command` on `connection` as the provider would. `prefixArgv` runs provider-ssh where the
 * provider would run (e.g. test/hosts/testbed.ts operatorCommand([]), [] for here); `scratchDir`
 * must be at the same path inside it. The request holds the connection's secrets, so it is written
 * 0600 and removed afterwards. Throws only when provider-ssh itself could not run.
 */
export async function runProviderSsh(
    prefixArgv: string[],
    scratchDir: string,
    connection: SshConnection,
    command: string,
    options: ProviderSshOptions = {},
): Promise<ProviderSshResult> {
    const binary = buildProviderSsh();
    fs.mkdirSync(scratchDir, { recursive: true });
    const id = randomUUID();
    const requestPath = path.join(scratchDir, `provider-ssh-${id}.request.json`);
    const resultPath = path.join(scratchDir, `provider-ssh-${id}.result.json`);
    const request: Record<string, unknown> = { connection, command };
    if (options.stdin !== undefined) request.stdin = options.stdin;
    if (options.environment !== undefined) request.environment = options.environment;
    if (options.retryDelayMs !== undefined) request.retryDelayMs = options.retryDelayMs;
    fs.writeFileSync(requestPath, JSON.stringify(request), { mode: 0o600 });
    try {
        const argv = [...prefixArgv, binary, requestPath, resultPath];
        const live = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
            const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
            let stdout = "";
            let stderr = "";
            child.stdout.setEncoding("utf8").on("data", (s: string) => {
                stdout += s;
                options.onStdout?.(s);
            });
            child.stderr.setEncoding("utf8").on("data", (s: string) => {
                stderr += s;
                options.onStderr?.(s);
            });
            child.on("error", reject);
            child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
        });
        if (live.code !== 0 || !fs.existsSync(resultPath)) {
            throw new Error(`provider-ssh did not run (exit ${live.code ?? live.signal}): ${argv.slice(0, -2).join(" ")}\n${live.stderr}`);
        }
        const result = JSON.parse(fs.readFileSync(resultPath, "utf8")) as Omit<ProviderSshResult, "liveStdout" | "liveStderr">;
        return { ...result, liveStdout: live.stdout, liveStderr: live.stderr };
    } finally {
        fs.rmSync(requestPath, { force: true });
        fs.rmSync(resultPath, { force: true });
    }
}
