// Direct old -> new transfer for steps 6 and 7, instead of the runbook's dump file copied through a
// laptop. The new server gets a key pair of its own; the old server accepts it for the `postgres`
// and incremental users only from the new server's addresses, with no forwarding or pty, and only
// until an expiry time that sshd enforces itself. So even if a later step fails and nothing runs
// the revoke, the key stops working by itself. The revoke after the copies removes it at once.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import type { Host } from "./host";
import { sh, script, ShellText } from "./shell";

export interface TemporaryAccessArgs {
    from: Host;
    to: Host;
    /** Users on `to` that accept the key. */
    users: { name: string; home: string }[];
    /** How long the key is accepted. */
    hours: number;
}

export class TemporaryAccess extends pulumi.ComponentResource {
    /** `ssh` on `from`, as root, with the key and `to`'s pinned host key; add `user@host cmd`. */
    readonly ssh: ShellText;
    /** The address of `to` that `ssh` connects to. */
    readonly target: string;
    /** Accepted on `to`: copies depend on it. */
    readonly granted: pulumi.Resource;
    private readonly args: TemporaryAccessArgs;
    private readonly name: string;
    private readonly comment: string;
    private readonly timerUnit: string;

    constructor(name: string, args: TemporaryAccessArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:migration:TemporaryAccess", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        this.args = args;
        this.name = name;
        const { from, to } = args;
        const dir = from.migrationDir;
        const key = `${dir}/transfer_ed25519`;
        const knownHosts = `${dir}/known_hosts`;
        this.comment = `data-support-${from.settings.migrationId}@${from.hostname}`;
        this.timerUnit = `data-support-revoke-${from.settings.migrationId}`;
        this.target = to.ipv4;
        const hostKey = to.server.ssh.hostKey;
        this.ssh = sh`ssh -i ${key} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=${hostKey ? "yes" : "accept-new"} -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 -o Compression=no -c aes128-gcm@openssh.com`;

        const keypair = from.command(
            `${name}-keypair`,
            {
                create: script(
                    sh`install -d -m 0700 ${dir}`,
                    sh`if [ ! -e ${key} ]; then ssh-keygen -q -t ed25519 -N '' -C ${this.comment} -f ${key}; fi`,
                    hostKey ? sh`printf '%s %s\\n' ${to.ipv4} ${hostKey} > ${knownHosts}` : sh`: > ${knownHosts}`,
                    sh`cat ${`${key}.pub`}`,
                ),
                delete: sh`rm -f ${key} ${`${key}.pub`} ${knownHosts}`,
            },
            { parent: this, dependsOn: inherited },
        );

        const options = `restrict,from="${from.addresses.join(",")}",expiry-time="EXPIRY"`;
        const grants = args.users.map((user) =>
            sh`install -d -m 0700 -o ${user.name} -g ${user.name} ${`${user.home}/.ssh`}
f=${`${user.home}/.ssh/authorized_keys`}
touch "$f"; chown ${user.name}: "$f"; chmod 0600 "$f"
grep -vF ${this.comment} "$f" > "$f.tmp" || true
printf '%s %s\\n' "$options" "$pubkey" >> "$f.tmp"
chown ${user.name}: "$f.tmp"; chmod 0600 "$f.tmp"; mv "$f.tmp" "$f"`,
        );
        const grant = script(
            // The provider stores stdout with its trailing newline removed (pulumi-command v1.2.1
            // remote/commandOutputs.go), and `read` fails at an end of input with no newline.
            sh`IFS= read -r pubkey || [ -n "$pubkey" ]`,
            sh`case "$pubkey" in "ssh-ed25519 "*${` ${this.comment}`}) ;; *) echo "unexpected public key on stdin" >&2; exit 1;; esac`,
            sh`options=${options}; options=\${options/EXPIRY/$(date -u -d ${`+${args.hours} hours`} +%Y%m%d%H%M)}`,
            ...grants,
            // Also removed from the files when it expires, whatever happens to the run: a later
            // step that fails stops `pulumi up` before the revoke, and sshd's expiry only refuses
            // the key. A systemd timer where systemd runs, else a detached sleep.
            sh`remover=${this.revokeScript().text}`,
            sh`if [ -d /run/systemd/system ]; then systemctl stop ${`${this.timerUnit}.timer`} 2>/dev/null || true; systemctl reset-failed ${this.timerUnit} 2>/dev/null || true; systemd-run --quiet --unit=${this.timerUnit} --on-active=${`${args.hours}h`} /bin/sh -c "$remover"; else pkill -f ${`^/bin/sh -c sleep [0-9]+; .*${this.comment}`} || true; setsid -f /bin/sh -c "sleep ${String(args.hours * 3600)}; $remover" < /dev/null > /dev/null 2>&1; fi`,
            sh`echo ${`${to.hostname}: accepts ${this.comment} for ${args.users.map((u) => u.name).join(", ")} for ${args.hours} h, then removes it`}`,
        );
        this.granted = to.command(
            `${name}-grant`,
            { create: grant, update: grant, delete: this.revokeScript(), stdin: keypair.stdout },
            // The revoke removes every line with this key's comment: on a replacement (the guide
            // for an expired key) it must run before the new grant, not after it.
            { parent: this, dependsOn: inherited, deleteBeforeReplace: true },
        );
        this.registerOutputs({});
    }

    private revokeScript(): ShellText {
        return script(
            ...this.args.users.map(
                (user) => sh`f=${`${user.home}/.ssh/authorized_keys`}; if [ -e "$f" ]; then grep -vF ${this.comment} "$f" > "$f.tmp" || true; chown ${user.name}: "$f.tmp"; chmod 0600 "$f.tmp"; mv "$f.tmp" "$f"; fi`,
            ),
        );
    }

    /**
     * Fails with a guide when `to` no longer accepts the key for `user`: it expired (a run resumed
     * more than `hours` later) or was revoked by hand. Replacing the grant issues a fresh one.
     */
    check(user: string): ShellText {
        return sh`if ! ${this.ssh} ${`${user}@${this.target}`} true 2>/dev/null; then echo ${`${this.args.to.hostname} does not accept the transfer key of ${this.args.from.hostname} for ${user} (it expires ${this.args.hours} h after it was granted, or it was removed). Grant it again: pulumi up --replace "$(pulumi stack --show-urns | grep -o 'urn:pulumi:[^ ]*::${this.name}-grant')", then run pulumi up again.`} >&2; exit 1; fi`;
    }

    /** Removes the key from `to` once every given step is done. */
    revokeAfter(steps: pulumi.Resource[]): pulumi.Resource {
        return this.args.to.oneOff(`${this.name}-revoke`, "revoke-transfer-key", this.revokeScript(), { parent: this, dependsOn: steps });
    }
}
