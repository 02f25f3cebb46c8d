// Node API over testbed.sh: bring the test hosts up and down, read their facts, run commands in
// them. Imports only node builtins. Everything needs root (namespaces, mounts).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const SCRIPT = join(__dirname, "testbed.sh");
export const STATE_DIR = "/run/ds-testbed";
const PATH_IN_HOST = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export type HostName = "operator" | "old" | "new" | "docs" | "replica" | "outsider" | "web";

export interface HostInfo {
  hostname: string;
  ipv4: string;
  ipv6: string;
  /** "ssh-ed25519 AAAA..."; null for `web`, which runs no sshd. */
  hostKey: string | null;
}

export interface Testbed {
  stateDir: string;
  hosts: Record<HostName, HostInfo>;
  /** agentSocket works both inside the operator host and in the root namespace. */
  operator: { agentSocket: string; publicKey: string };
  /**
   * jobsFile: edit it (same path from the root namespace) to add running/pending jobs (old);
   * newJobsFile: the idle Scrapyd of the new server. publicUrl: the collect name over HTTPS (port
   * 443 of old and new, certificate of the testbed CA in caFile, virtual host of that name).
   */
  scrapyd: { url: string; username: string; password: string; jobsFile: string; publicUrl: string; newJobsFile: string; caFile: string };
  rabbitmq: { url: string; username: string; password: string };
  web: { url: string; body: string };
  /** Passwords of the application roles (same on old and new). */
  postgres: { port: number; passwords: Record<"kingfisher_collect" | "pelican_backend", string> };
  /** Paths inside the hosts where the stand-ins record their calls (JSON lines). */
  standins: { dockerLog: string; scrapydDeployLog: string; scrapyLog: string; scrapydLog: string };
  seedRows: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv (e.g. from operatorCommand) and collects its output; never throws on exit code. */
export function runArgv(argv: string[], input?: string, env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], env: env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
    child.stdin.on("error", () => undefined); // the command may exit without reading stdin
    child.stdin.end(input ?? "");
  });
}

async function testbed(...args: string[]): Promise<RunResult> {
  const result = await runArgv(["bash", SCRIPT, ...args]);
  if (result.code !== 0) {
    throw new Error(`testbed.sh ${args.join(" ")} failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
  }
  return result;
}

/** Removes stale state, brings every host up, returns the facts. */
export async function up(): Promise<Testbed> {
  await testbed("up");
  return info();
}

/** Stops everything and removes namespaces and state; safe to call at any time. */
export async function down(): Promise<void> {
  await testbed("down");
}

export function info(): Testbed {
  return JSON.parse(readFileSync(join(STATE_DIR, "info.json"), "utf8")) as Testbed;
}

/** Runs `bash -c script` in HOST (as root or `user`, in that user's home); never throws on exit code. */
export function run(host: HostName, script: string, opts: { user?: string; input?: string } = {}): Promise<RunResult> {
  return runArgv(
    ["bash", SCRIPT, "exec", host, "--user", opts.user ?? "root", "--", "bash", "-c", script],
    opts.input,
  );
}

/** Points NAME at HOST's addresses in the operator's /etc/hosts (drives the DNS gate). */
export async function pointName(name: string, host: HostName): Promise<void> {
  await testbed("dns", name, host);
}

/**
 * The argv that runs `argv` as root in the operator's namespaces with SSH_AUTH_SOCK set to the
 * operator's agent, a clean environment and /root as working directory.
 */
export function operatorCommand(argv: string[]): string[] {
  const pid = readFileSync(join(STATE_DIR, "hosts", "operator", "pid"), "utf8").trim();
  const t = info();
  return [
    // -r: the host's own root (entering a mount namespace alone would leave a chroot we run in).
    "nsenter", "-t", pid, "-r", "-n", "-m", "-u", "-i", "-p", "--",
    "env", "-i", "-C", "/root",
    `PATH=${PATH_IN_HOST}`, "HOME=/root", "USER=root", "LOGNAME=root", "LANG=C.UTF-8",
    `SSH_AUTH_SOCK=${t.operator.agentSocket}`,
    // The operator's machine trusts the testbed CA, as a real one trusts the public CAs.
    `NODE_EXTRA_CA_CERTS=${t.scrapyd.caFile}`,
    ...argv,
  ];
}
