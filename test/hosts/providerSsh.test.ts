// Conformance of provider-ssh (test/support/provider-ssh/main.go) with pulumi/pulumi-command v1.2.1
// against Debian 12's real OpenSSH server. Each test names the provider source it pins (paths under
// provider/pkg/provider/remote/ at tag v1.2.1): re-check them when @pulumi/command is upgraded.
//
// Needs root and unshare, but NOT the test hosts: three sshd (target, jump host, SHA-1 control) and an
// ssh-agent run in an anonymous network namespace with loopback only (no ds-* names, no flock
// needed), torn down at the end. Run: node --import tsx --test test/hosts/providerSsh.test.ts
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { buildProviderSsh, runProviderSsh, type SshConnection } from "../support/providerSsh";

const TARGET_PORT = 2202;
const JUMP_PORT = 2201;
const SHA1_PORT = 2203; // a target that still accepts SHA-1 ssh-rsa host key signatures

function skipReason(): string | undefined {
    if (process.getuid?.() !== 0) return "needs root (network and mount namespaces)";
    for (const tool of ["unshare", "nsenter", "ip"]) {
        try {
            execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
        } catch {
            return `needs ${tool} (util-linux, iproute2)`;
        }
    }
    return undefined;
}
const skip = skipReason();

let dir: string;
let holder: ChildProcess | undefined;
let holderClosed: Promise<void>;
let prefix: string[];
const keys: Record<string, string> = {};

const read = (file: string) => fs.readFileSync(path.join(dir, file), "utf8");
const pub = (name: string) => read(`${name}.pub`).trim();

function keygen(name: string, type: string, extra: string[] = []) {
    execFileSync("ssh-keygen", ["-q", "-t", type, ...extra, "-N", "", "-C", name, "-f", path.join(dir, name)]);
    keys[name] = pub(name);
}

function sshdConfig(port: number, hostKeys: string[], logLevel: string, extra: string[] = []): string {
    return [
        ...extra,
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        ...hostKeys.map((k) => `HostKey ${path.join(dir, k)}`),
        `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
        // The keys live in a directory under /tmp, which StrictModes would reject.
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PidFile none",
        `LogLevel ${logLevel}`,
        "",
    ].join("\n");
}

/** Polls a condition (no fixed sleeps); fails after `ms`. */
async function until(what: string, ms: number, ok: () => boolean): Promise<void> {
    const end = Date.now() + ms;
    while (!ok()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
    }
}

const connectionsTo = (log: string) => (read(log).match(/^.*Connection from 127\.0\.0\.1 port \d+ on 127\.0\.0\.1 port \d+/gm) ?? []).length;

const accepts = () => (read("target.log").match(/Accepted publickey/g) ?? []).length;

function target(extra: Partial<SshConnection> = {}): SshConnection {
    return { host: "127.0.0.1", port: TARGET_PORT, agentSocketPath: path.join(dir, "agent.sock"), hostKey: keys.host_ed25519, ...extra };
}

describe("provider-ssh against Debian's OpenSSH", { skip }, () => {
    before(async () => {
        buildProviderSsh();
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "provider-ssh-test-"));
        keygen("host_ed25519", "ed25519");
        keygen("host_rsa", "rsa", ["-b", "3072"]);
        keygen("host_ecdsa", "ecdsa", ["-b", "256"]);
        keygen("jump_ed25519", "ed25519");
        keygen("other_ed25519", "ed25519"); // a host key no server has
        keygen("client_agent", "ed25519"); // in the agent
        keygen("client_file", "ed25519"); // given as privateKey
        keygen("client_unknown", "ed25519"); // not authorized anywhere
        fs.writeFileSync(path.join(dir, "authorized_keys"), `${keys.client_agent}\n${keys.client_file}\n`);
        fs.writeFileSync(path.join(dir, "target.conf"), sshdConfig(TARGET_PORT, ["host_ed25519", "host_rsa", "host_ecdsa"], "VERBOSE"));
        // DEBUG1 on the jump host logs each forwarded connection's target.
        fs.writeFileSync(path.join(dir, "jump.conf"), sshdConfig(JUMP_PORT, ["jump_ed25519"], "DEBUG1"));
        fs.writeFileSync(path.join(dir, "sha1.conf"), sshdConfig(SHA1_PORT, ["host_rsa"], "VERBOSE", ["HostKeyAlgorithms +ssh-rsa"]));
        const script = `
            set -e
            ip link set lo up
            mount -t tmpfs -o mode=755 tmpfs /run
            mkdir -m 755 /run/sshd
            echo $$ >${dir}/ns.pid
            ssh-agent -D -a ${dir}/agent.sock >/dev/null &
            /usr/sbin/sshd -D -f ${dir}/target.conf -E ${dir}/target.log &
            /usr/sbin/sshd -D -f ${dir}/jump.conf -E ${dir}/jump.log &
            /usr/sbin/sshd -D -f ${dir}/sha1.conf -E ${dir}/sha1.log &
            wait`;
        holder = spawn("unshare", ["--net", "--mount", "--propagation", "private", "--fork", "bash", "-c", script], {
            detached: true,
            stdio: ["ignore", "inherit", "inherit"],
        });
        holderClosed = new Promise((resolve) => holder!.on("close", () => resolve()));
        const listening = (log: string) => fs.existsSync(path.join(dir, log)) && read(log).includes("Server listening on 127.0.0.1");
        await until("sshd and ssh-agent in the namespace", 10_000, () =>
            listening("target.log") && listening("jump.log") && listening("sha1.log") && fs.existsSync(path.join(dir, "agent.sock")));
        execFileSync("ssh-add", ["-q", path.join(dir, "client_agent")], { env: { ...process.env, SSH_AUTH_SOCK: path.join(dir, "agent.sock") }, stdio: "ignore" });
        // provider-ssh runs inside the namespace, without any SSH_AUTH_SOCK of ours.
        prefix = ["nsenter", "-t", read("ns.pid").trim(), "-r", "-n", "-m", "--", "env", "-u", "SSH_AUTH_SOCK"];
    });

    after(async () => {
        if (holder?.pid !== undefined && holder.exitCode === null && holder.signalCode === null) {
            process.kill(-holder.pid, "SIGTERM"); // its process group: unshare, bash, three sshd, ssh-agent
            await holderClosed;
        }
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    const run = (connection: SshConnection, command: string, stdin?: string, extraPrefix: string[] = []) =>
        runProviderSsh([...prefix, ...extraPrefix], dir, connection, command, { stdin });

    test("pinned ssh-ed25519 host key connects; stdout and stderr lose exactly one trailing newline (commandOutputs.go, connection.go @ v1.2.1)", async () => {
        const r = await run(target(), "printf 'a\\n\\n'; printf 'e\\n' >&2");
        assert.equal(r.error, null);
        assert.equal(r.exitCode, 0);
        assert.equal(r.stdout, "a\n");
        assert.equal(r.stderr, "e");
        // Streamed live as it came, untrimmed.
        assert.equal(r.liveStdout, "a\n\n");
        assert.equal(r.liveStderr, "e\n");
        const bare = await run(target(), "printf b");
        assert.equal(bare.stdout, "b");
    });

    test("agent from SSH_AUTH_SOCK when agentSocketPath is unset (connection_unix.go @ v1.2.1); privateKey alone authenticates (connection.go)", async () => {
        const viaEnv = await run(target({ agentSocketPath: undefined }), "echo agent", undefined, [`SSH_AUTH_SOCK=${path.join(dir, "agent.sock")}`]);
        assert.equal(viaEnv.error, null);
        assert.equal(viaEnv.stdout, "agent");
        const viaKey = await run(target({ agentSocketPath: undefined, privateKey: read("client_file") }), "echo key");
        assert.equal(viaKey.error, null);
        assert.equal(viaKey.stdout, "key");
    });

    test("no hostKey: any host key is accepted (InsecureIgnoreHostKey, connection.go @ v1.2.1)", async () => {
        const r = await run(target({ hostKey: undefined }), "echo unchecked");
        assert.equal(r.error, null);
        assert.equal(r.stdout, "unchecked");
    });

    test("stdin reaches the command; `IFS= read -r` under set -e fails on stdin without a final newline (commandOutputs.go @ v1.2.1)", async () => {
        const cat = await run(target(), "cat", "one\ntwo\n");
        assert.equal(cat.stdout, "one\ntwo");
        // Empty stdin is not attached: the command reads an immediate end of input.
        const empty = await run(target(), "cat; echo end", "");
        assert.equal(empty.stdout, "end");
        // A previous step's stdout as the provider stores it (trailing newline removed) fed to stdin:
        // `read` assigns the line but returns 1 at end of input, and set -e ends the script silently.
        const strict = "set -e; IFS= read -r x; echo \"got $x\"";
        const failed = await run(target(), strict, "ssh-ed25519 AAAA");
        assert.equal(failed.exitCode, 1);
        assert.equal(failed.error, 'Process exited with status 1: running "set -e; IFS= read -r x; echo \\"got $x\\"":\n');
        // A read that accepts a last line without newline.
        const tolerant = await run(target(), "set -e; IFS= read -r x || [ -n \"$x\" ]; echo \"got $x\"", "ssh-ed25519 AAAA");
        assert.equal(tolerant.error, null);
        assert.equal(tolerant.stdout, "got ssh-ed25519 AAAA");
    });

    test("a wrong pinned host key fails as `host key mismatch` after dialErrorLimit+1 attempts (connection.go dialWithRetry @ v1.2.1; pulumi sdk retry.Until)", async () => {
        const before = connectionsTo("target.log");
        const accepted = accepts();
        const r = await run(target({ hostKey: keys.other_ed25519, dialErrorLimit: 2 }), "echo never");
        assert.equal(r.error, "after 2 failed attempts: ssh: handshake failed: ssh: host key mismatch");
        assert.equal(r.exitCode, -1);
        assert.deepEqual(r.status, ["Dial 1/2 failed: retrying", "Dial 2/2 failed: retrying"]);
        // sshd saw three connections: a limit of N allows N+1 dials.
        assert.equal(connectionsTo("target.log") - before, 3);
        assert.equal(accepts(), accepted, "no attempt got as far as authentication");

        const once = connectionsTo("target.log");
        const zero = await run(target({ hostKey: keys.other_ed25519, dialErrorLimit: 0 }), "echo never");
        assert.equal(zero.error, "after 0 failed attempts: ssh: handshake failed: ssh: host key mismatch");
        assert.equal(connectionsTo("target.log") - once, 1);
    });

    test("a pinned ssh-rsa host key is refused by OpenSSH 9.2: only SHA-1 ssh-rsa is offered (connection.go HostKeyAlgorithms @ v1.2.1)", async () => {
        assert.match(keys.host_rsa, /^ssh-rsa /);
        const r = await run(target({ hostKey: keys.host_rsa, dialErrorLimit: 0 }), "echo never");
        // x/crypto 0.4.0's wording; the provider's x/crypto v0.48.0 words the same failure
        // "ssh: no common algorithm for host key; we offered: [ssh-rsa], peer offered: [...]".
        assert.equal(
            r.error,
            "after 0 failed attempts: ssh: handshake failed: ssh: no common algorithm for host key; client offered: [ssh-rsa], server offered: [ssh-ed25519 rsa-sha2-512 rsa-sha2-256 ecdsa-sha2-nistp256]",
        );
        // sshd's side of the refusal (logged when it reads our offer, which may be after we gave up).
        await until("sshd to log the refused offer", 5_000, () => /no matching host key type found\. Their offer: ssh-rsa \[preauth\]/.test(read("target.log")));
        // Control: the same key connects once the server accepts SHA-1 (`HostKeyAlgorithms +ssh-rsa`),
        // so the refusal is the SHA-1 algorithm, not the key.
        const sha1 = await run(target({ port: SHA1_PORT, hostKey: keys.host_rsa, dialErrorLimit: 0 }), "echo sha1");
        assert.equal(sha1.error, null);
        assert.equal(sha1.stdout, "sha1");
    });

    test("a pinned ecdsa-sha2-nistp256 host key connects (connection.go HostKeyAlgorithms @ v1.2.1)", async () => {
        const r = await run(target({ hostKey: keys.host_ecdsa }), "echo ecdsa");
        assert.equal(r.error, null);
        assert.equal(r.stdout, "ecdsa");
    });

    test("a failing command: `Process exited with status N: running %q:` then all output (commandOutputs.go @ v1.2.1)", async () => {
        const r = await run(target(), 'echo "q"\necho err >&2; exit 3');
        assert.equal(r.exitCode, 3);
        // stdout and stderr travel separately; the combined buffer holds them in arrival order.
        const head = 'Process exited with status 3: running "echo \\"q\\"\\necho err >&2; exit 3":\n';
        assert.ok([`${head}q\nerr\n`, `${head}err\nq\n`].includes(r.error ?? ""), r.error ?? "null");
        assert.equal(r.stdout, "q");
        assert.equal(r.stderr, "err");

        // Killed by a signal: x/crypto reports status 128+N "from signal NAME" (session.go, the same in
        // x/crypto 0.4.0 and v0.48.0); the exit code is then 143, not -1.
        const signalled = await run(target(), "kill -TERM $$");
        assert.equal(signalled.exitCode, 143);
        assert.equal(signalled.error, 'Process exited with status 143 from signal TERM: running "kill -TERM $$":\n');
    });

    test("auth failure, refused connection and a refused environment variable, word for word (connection.go, commandOutputs.go @ v1.2.1)", async () => {
        const auth = await run(target({ agentSocketPath: undefined, privateKey: read("client_unknown"), dialErrorLimit: 0 }), "echo never");
        assert.equal(auth.error, "after 0 failed attempts: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain");
        const refused = await run(target({ port: 2299, dialErrorLimit: 0 }), "echo never");
        assert.equal(refused.error, "after 0 failed attempts: dial tcp 127.0.0.1:2299: connect: connection refused");
        const env = await runProviderSsh(prefix, dir, target(), "echo never", { environment: { DS_VALUE: "x" } });
        assert.equal(env.error, 'could not set environment variable "DS_VALUE": ssh: setenv failed');
    });

    test("a jump host (proxy) carries the connection; its own pinned key is checked (connection.go Dial @ v1.2.1)", async () => {
        const proxy = { host: "127.0.0.1", port: JUMP_PORT, agentSocketPath: path.join(dir, "agent.sock"), hostKey: keys.jump_ed25519 };
        const r = await run(target({ proxy }), "echo via jump");
        assert.equal(r.error, null);
        assert.equal(r.stdout, "via jump");
        assert.match(read("jump.log"), new RegExp(`server_request_direct_tcpip: originator 0\\.0\\.0\\.0 port 0, target 127\\.0\\.0\\.1 port ${TARGET_PORT}`));

        const wrong = await run(target({ proxy: { ...proxy, hostKey: keys.other_ed25519, dialErrorLimit: 0 } }), "echo never");
        assert.equal(wrong.error, "proxy: after 0 failed attempts: ssh: handshake failed: ssh: host key mismatch");
        // Behind a proxy the provider retries the SSH handshake on the SAME forwarded connection,
        // which the failed first handshake closed: after a retry, the last error is EOF and the words
        // "host key mismatch" are gone. Only a limit of 0 keeps them.
        const wrongTarget = await run(target({ proxy, hostKey: keys.other_ed25519, dialErrorLimit: 2 }), "echo never");
        assert.equal(wrongTarget.error, "proxy: after 2 failed attempts: ssh: handshake failed: EOF");
        assert.deepEqual(wrongTarget.status, ["Dial 1/2 failed: retrying", "Dial 2/2 failed: retrying"]);
        const wrongTargetOnce = await run(target({ proxy, hostKey: keys.other_ed25519, dialErrorLimit: 0 }), "echo never");
        assert.equal(wrongTargetOnce.error, "proxy: after 0 failed attempts: ssh: handshake failed: ssh: host key mismatch");
    });
});
