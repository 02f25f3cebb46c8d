// How the harness runs one remote.Command: as the provider does (pulumi/pulumi-command v1.2.1
// provider/pkg/provider/remote/commandOutputs.go and connection.go). The result is what the
// provider saw: the remote stdout and stderr (untrimmed: the caller trims as the provider stores
// them), the exit status, and the provider's error text when the step failed.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { runArgv } from "../hosts/testbed";

export interface RemoteResult {
    stdout: string;
    stderr: string;
    exitCode: number;
    /** The provider's error, worded as it words it; undefined on success. */
    error?: string;
}

/** The ssh argv the provider's connection stands for: pinned host key, the agent, a jump host. */
function sshArgv(connection: Record<string, any>, scratch: string): string[] {
    const knownHosts = path.join(scratch, `known_hosts_${crypto.randomUUID()}`);
    const lines: string[] = [];
    const argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null"];
    // Without hostKey the provider checks nothing; with it, exactly that key is accepted.
    if (connection.hostKey) {
        lines.push(`${connection.host} ${connection.hostKey}`);
        argv.push("-o", "StrictHostKeyChecking=yes");
    } else {
        argv.push("-o", "StrictHostKeyChecking=no");
    }
    if (connection.proxy) {
        const p = connection.proxy;
        if (p.hostKey) lines.push(`${p.host} ${p.hostKey}`);
        argv.push("-J", `${p.user ?? "root"}@${p.host}:${p.port ?? 22}`);
    }
    fs.writeFileSync(knownHosts, lines.join("\n") + "\n");
    argv.push("-p", String(connection.port ?? 22), "-l", connection.user ?? "root", connection.host);
    return argv;
}

export async function runRemoteCommand(operator: string[], scratchDir: string, connection: Record<string, any>, command: string, stdin: string | undefined): Promise<RemoteResult> {
    // commandOutputs.go: stdin is attached only when it is not empty.
    const res = await runArgv([...operator, ...sshArgv(connection, scratchDir), command], stdin && stdin.length > 0 ? stdin : undefined);
    if (res.code === 0) return { stdout: res.stdout, stderr: res.stderr, exitCode: 0 };
    // fmt.Errorf("%w: running %q:\n%s", err, cmd, stdouterr); x/crypto's ExitError reads
    // "Process exited with status N".
    const error = `Process exited with status ${res.code}: running ${JSON.stringify(command)}:\n${res.stdout}${res.stderr}`;
    return { stdout: res.stdout, stderr: res.stderr, exitCode: res.code, error };
}
