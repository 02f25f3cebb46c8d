// How the harness runs one remote.Command: as the provider does, through provider-ssh (Go's
// x/crypto/ssh with pulumi/pulumi-command v1.2.1's settings: providerSsh.ts). The result is what
// the provider saw: the remote stdout and stderr as they streamed (untrimmed: apply.ts trims them
// as the provider stores them), the exit status, and the provider's error text on failure.
import { runProviderSsh, type SshConnection } from "./providerSsh";

export interface RemoteResult {
    stdout: string;
    stderr: string;
    exitCode: number;
    /** The provider's error, word for word; undefined on success. */
    error?: string;
}

/** `onOutput` sees the command's output as it arrives, as the provider logs it while the step runs. */
export async function runRemoteCommand(
    operator: string[],
    scratchDir: string,
    connection: SshConnection,
    command: string,
    stdin: string | undefined,
    onOutput?: (stream: "stdout" | "stderr", chunk: string) => void,
): Promise<RemoteResult> {
    const res = await runProviderSsh(operator, scratchDir, connection, command, {
        stdin,
        onStdout: (chunk) => onOutput?.("stdout", chunk),
        onStderr: (chunk) => onOutput?.("stderr", chunk),
    });
    return { stdout: res.liveStdout, stderr: res.liveStderr, exitCode: res.exitCode, error: res.error ?? undefined };
}
