// A server the program acts on: its names, addresses and SSH connection. It is a value, not a
// resource, and the only way components run commands on a server, so the @pulumi/command defaults
// the design requires are applied here once (see ../shared/design.md, "@pulumi/command semantics").
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { pinHostKeyCommand, type ServerConfig } from "../config";
import { noteForRunbook } from "./runbookNotes";
import { sh, ShellText, script } from "./shell";

export interface HostSettings {
    /** Where one-off steps record completion on the host. */
    stateDir: string;
    /** Names this migration: markers of one migration do not mark another as done. */
    migrationId: string;
    /** The operator's agent is the default; a private key is the exception and a secret. */
    privateKey?: pulumi.Input<string>;
    agentSocketPath?: string;
}

export interface CommandSpec {
    create: ShellText;
    update?: ShellText;
    delete?: ShellText;
    /** Secrets go here, never in command text. */
    stdin?: pulumi.Input<string>;
    /** A change replaces the command: the new one runs `create` again. */
    triggers?: pulumi.Input<unknown[]>;
}

export class Host {
    readonly hostname: string;
    readonly ipv4: string;
    readonly ipv6: string | undefined;
    readonly connection: command.types.input.remote.ConnectionArgs;

    constructor(
        /** The config key of this server, e.g. "newMain": error messages name it. */
        readonly key: string,
        readonly server: ServerConfig,
        readonly settings: HostSettings,
    ) {
        this.hostname = server.hostname;
        this.ipv4 = server.ipv4;
        this.ipv6 = server.ipv6;
        if (!server.ssh.hostKey) {
            // Without hostKey the provider does not check the host key at all. A jump host's key
            // sits beside its host and port (servers.X.ssh.jumpHost.hostKey), a server's under ssh.
            const hostKeyKey = key.endsWith(".jumpHost") ? `data-support:servers.${key}.hostKey` : `data-support:servers.${key}.ssh.hostKey`;
            void pulumi.log.warn(
                `${hostKeyKey} is not set: the SSH host key of ${server.hostname} will NOT be checked. ` +
                    `Pin it: ${pinHostKeyCommand(hostKeyKey, server.hostname, server.ssh.port)}`,
            );
        }
        const jump = server.ssh.jumpHost;
        this.connection = {
            host: server.ipv4,
            port: server.ssh.port,
            user: server.ssh.user,
            hostKey: server.ssh.hostKey,
            privateKey: settings.privateKey ? pulumi.secret(settings.privateKey) : undefined,
            agentSocketPath: settings.agentSocketPath,
            proxy: jump
                ? {
                      host: jump.host,
                      port: jump.port,
                      user: jump.user,
                      hostKey: jump.hostKey,
                      privateKey: settings.privateKey ? pulumi.secret(settings.privateKey) : undefined,
                      agentSocketPath: settings.agentSocketPath,
                  }
                : undefined,
        };
    }

    /** Every IP address of the host, IPv4 first. */
    get addresses(): string[] {
        return this.ipv6 ? [this.ipv4, this.ipv6] : [this.ipv4];
    }

    /** The directory where this migration's one-off steps keep markers and what they took away. */
    get migrationDir(): string {
        return `${this.settings.stateDir}/${this.settings.migrationId}`;
    }

    /** A remote command with the design's defaults. `name` must be unique in the stack. */
    command(name: string, spec: CommandSpec, opts: pulumi.CustomResourceOptions): command.remote.Command {
        // `cd /`: commands run as other users (runuser) must not start in root's home.
        const prelude = sh`set -euo pipefail; cd /`;
        const withPrelude = (text: ShellText | undefined) => (text ? script(prelude, text).text : undefined);
        return new command.remote.Command(
            name,
            {
                connection: this.connection,
                create: withPrelude(spec.create),
                update: withPrelude(spec.update),
                delete: withPrelude(spec.delete),
                stdin: spec.stdin,
                triggers: spec.triggers,
                // Large outputs in the environment of later runs break them with E2BIG.
                addPreviousOutputInEnv: false,
                // `environment` is never set: it needs AcceptEnv on the server (design.md).
            },
            opts,
        );
    }

    /**
     * A one-off step: runs once per migration. Its completion is recorded on the host, so a step
     * already done does nothing even if the Pulumi state was lost; a step that failed half-way
     * has no marker and runs again from its start.
     */
    oneOff(name: string, step: string, body: ShellText, opts: pulumi.CustomResourceOptions, extra: Omit<CommandSpec, "create"> = {}): command.remote.Command {
        const marker = `${this.migrationDir}/${step}.done`;
        noteForRunbook(name, { kind: "one-off", step, marker });
        const create = script(
            sh`marker=${marker}`,
            sh`install -d -m 0700 ${this.migrationDir}`,
            // One run of a step at a time: if an earlier run's SSH connection dropped, its step may
            // still be running on the host; wait for it, then see whether it finished.
            sh`exec 9> "$marker.lock"`,
            sh`if ! flock -n 9; then echo ${`${step}: still running on ${this.hostname} from an earlier run; waiting for it`} >&2; flock 9; fi`,
            sh`if [ -e "$marker" ]; then echo ${`${step}: already done on ${this.hostname} at`} "$(cat "$marker")"; exit 0; fi`,
            sh`(`,
            body,
            sh`)`,
            sh`date -u +%Y-%m-%dT%H:%M:%SZ > "$marker.tmp" && mv "$marker.tmp" "$marker"`,
            sh`echo ${`${step}: done on ${this.hostname}`}`,
        );
        return this.command(name, { ...extra, create }, opts);
    }
}
