// Direct old -> new transfer for steps 6 and 7, instead of the runbook's dump file copied through a
// laptop. The new server gets a key pair of its own; the old server accepts it for the `postgres`
// and incremental users only from the new server's addresses, with no forwarding or pty, only
// until an expiry time that sshd enforces itself, and only for the copies: sshd runs a dispatcher
// installed by the grant (`command=` in authorized_keys) instead of whatever the key asks, and the
// dispatcher runs only the exact commands the copy steps send (pg_dump of the named database, the
// fingerprints with their SQL fixed on the old server, rsync's sender of data/ and logs/, the tree
// manifests, `true` for the check). A shell, `psql -c 'DROP ...'` or any other command is refused.
// The key reaches the old server at its SSH port, through its jump host when it has one. Even if a
// later step fails and nothing runs the revoke, the key stops working by itself; the revoke after
// the copies removes it from the old server at once, then the private key from the new server.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import { Host } from "./host";
import { quote, sh, script, ShellText } from "./shell";

/**
 * One command the transfer key may run on the old server, as its user, exactly as the copy step
 * sends it. `input`: the command's stdin is this text, fixed on the old server (the client's stdin
 * is ignored), so a query cannot be swapped; `passStdin`: the client's stdin goes through (the tree
 * manifest's cache of digests); else stdin is empty.
 */
export interface TransferCommand {
    user: string;
    command: string;
    input?: string;
    passStdin?: boolean;
}

/** rsync's sender (`rsync --server --sender -FLAGS . DIR`) of one directory, as `user`. */
export interface TransferTree {
    user: string;
    /** With its trailing slash, as rsync sends it: /home/incremental/data/ */
    dir: string;
}

export interface TemporaryAccessArgs {
    from: Host;
    to: Host;
    /** Users on `to` that accept the key. */
    users: { name: string; home: string }[];
    /** How long the key is accepted (data-support:transfer.keyHours). */
    hours: number;
    /** What the key may run on `to`, besides `true` (the check) for every user. */
    commands: TransferCommand[];
    trees: TransferTree[];
}

export class TemporaryAccess extends pulumi.ComponentResource {
    /** `ssh` on `from`, as root, with the key, `to`'s port, jump host and pinned host keys; add `user@host cmd`. */
    readonly ssh: ShellText;
    /** The address of `to` that `ssh` connects to. */
    readonly target: string;
    /** Accepted on `to` (and on its jump host): copies depend on it. */
    readonly granted: pulumi.Resource;
    /** `to`'s jump host, when it has one: it lets the key through to `to`'s SSH port only. */
    private readonly jump: Host | undefined;
    private readonly args: TemporaryAccessArgs;
    private readonly name: string;
    private readonly comment: string;
    private readonly timerUnit: string;
    private readonly key: string;
    private readonly knownHosts: string;
    /** On `to`: the dispatcher and its fixed inputs. */
    private readonly dispatchDir: string;

    constructor(name: string, args: TemporaryAccessArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:migration:TemporaryAccess", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        this.args = args;
        this.name = name;
        const { from, to } = args;
        const dir = from.migrationDir;
        const key = (this.key = `${dir}/transfer_ed25519`);
        const knownHosts = (this.knownHosts = `${dir}/known_hosts`);
        this.comment = `data-support-${from.settings.migrationId}@${from.hostname}`;
        this.timerUnit = `data-support-revoke-${from.settings.migrationId}`;
        // Not under the migration directory (0700, root's): postgres and incremental run it.
        this.dispatchDir = `/usr/local/lib/data-support/${from.settings.migrationId}`;
        this.target = to.ipv4;
        const port = to.server.ssh.port;
        const jump = to.server.ssh.jumpHost;
        // known_hosts names a host on another port than 22 as [host]:port.
        const knownName = (host: string, p: number) => (p === 22 ? host : `[${host}]:${p}`);
        const checking = (hostKey: string | undefined) => sh`-o StrictHostKeyChecking=${hostKey ? "yes" : "accept-new"}`;
        const common = sh`-i ${key} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=${knownHosts} -o ConnectTimeout=30`;
        // Through the jump host as ProxyJump does (ssh -W), but with this key and the jump host's
        // pinned key: a ProxyJump's ssh would take neither -i nor UserKnownHostsFile.
        const proxy = jump
            ? sh` -o ProxyCommand=${sh`ssh ${common} ${checking(jump.hostKey)} -p ${jump.port} -W %h:%p ${`${jump.user}@${jump.host}`}`.text}`
            : sh``;
        this.ssh = sh`ssh ${common} ${checking(to.server.ssh.hostKey)} -p ${port}${proxy} -o ServerAliveInterval=15 -o ServerAliveCountMax=4 -o Compression=no -c aes128-gcm@openssh.com`;

        const pinned = [
            ...(to.server.ssh.hostKey ? [sh`printf '%s %s\\n' ${knownName(to.ipv4, port)} ${to.server.ssh.hostKey}`] : []),
            ...(jump?.hostKey ? [sh`printf '%s %s\\n' ${knownName(jump.host, jump.port)} ${jump.hostKey}`] : []),
        ];
        const keypair = from.command(
            `${name}-keypair`,
            {
                create: script(
                    sh`install -d -m 0700 ${dir}`,
                    // Used and deleted (revokeAfter): a later update of this step must not make a
                    // new key that nothing would delete.
                    sh`if [ -e ${`${dir}/forget-transfer-key.done`} ]; then echo ${`${from.hostname}: the transfer key was used and deleted; no new one`} >&2; exit 0; fi`,
                    sh`if [ ! -e ${key} ]; then ssh-keygen -q -t ed25519 -N '' -C ${this.comment} -f ${key}; fi`,
                    pinned.length ? sh`{ ${script(...pinned)}; } > ${knownHosts}` : sh`: > ${knownHosts}`,
                    sh`cat ${`${key}.pub`}`,
                ),
                delete: sh`rm -f ${key} ${`${key}.pub`} ${knownHosts}`,
            },
            { parent: this, dependsOn: inherited },
        );

        // Through a jump host, the key arrives from the jump host's addresses, not the new server's.
        this.jump = jump
            ? new Host("oldMain.ssh.jumpHost", { hostname: jump.host, ipv4: jump.host, ssh: { user: jump.user, port: jump.port, hostKey: jump.hostKey } }, to.settings)
            : undefined;
        // `|| true`: getent fails (2) on a name it cannot resolve, and under pipefail the assignment
        // would end the script there, before the message below says what is wrong.
        const sources = jump
            ? sh`$(getent ahosts ${jump.host} | awk '{print $1}' | sort -u | paste -sd, - || true)`
            : sh`${from.addresses.join(",")}`;
        const options = `restrict,command="${this.dispatchDir}/transfer-command",from="FROM",expiry-time="EXPIRY"`;
        const grants = args.users.map((user) =>
            sh`install -d -m 0700 -o ${user.name} -g ${user.name} ${`${user.home}/.ssh`}
f=${`${user.home}/.ssh/authorized_keys`}
touch "$f"; chown ${user.name}: "$f"; chmod 0600 "$f"
grep -vF ${this.comment} "$f" > "$f.tmp" || true
printf '%s %s\\n' "$options" "$pubkey" >> "$f.tmp"
chown ${user.name}: "$f.tmp"; chmod 0600 "$f.tmp"; mv "$f.tmp" "$f"`,
        );
        const inputs = args.commands.filter((c) => c.input !== undefined);
        // Once revoked after the copies, never granted again for this migration: an update of this
        // step (its command text changed with a new version of the program) must not re-open old.
        const notAgain = (host: Host, step: string) =>
            sh`if [ -e ${`${host.migrationDir}/${step}.done`} ]; then echo ${`${host.hostname}: the transfer key was revoked after the copies; not granted again`}; exit 0; fi`;
        const grant = script(
            notAgain(to, "revoke-transfer-key"),
            // The provider stores stdout with its trailing newline removed (pulumi-command v1.2.1
            // remote/commandOutputs.go), and `read` fails at an end of input with no newline.
            sh`IFS= read -r pubkey || [ -n "$pubkey" ]`,
            sh`case "$pubkey" in "ssh-ed25519 "*${` ${this.comment}`}) ;; *) echo "unexpected public key on stdin" >&2; exit 1;; esac`,
            // The dispatcher that sshd runs for this key, and the fixed inputs of its commands.
            sh`install -d -m 0755 ${this.dispatchDir}`,
            ...inputs.map((c, i) => sh`printf '%s' ${c.input ?? ""} > ${`${this.dispatchDir}/input-${i}`}; chmod 0644 ${`${this.dispatchDir}/input-${i}`}`),
            sh`printf '%s\\n' ${this.dispatcher(inputs)} > ${`${this.dispatchDir}/transfer-command.tmp`}`,
            sh`chmod 0755 ${`${this.dispatchDir}/transfer-command.tmp`}; mv ${`${this.dispatchDir}/transfer-command.tmp`} ${`${this.dispatchDir}/transfer-command`}`,
            // sshd reads expiry-time in the system's time zone: the old server's own clock and zone
            // (TZ unset, as sshd runs), so the new server's clock does not matter.
            sh`options=${options}; options=\${options/EXPIRY/$(env -u TZ date -d ${`+${args.hours} hours`} +%Y%m%d%H%M)}`,
            sh`sources=${sources}; [ -n "$sources" ] || { echo ${`cannot resolve the jump host ${jump?.host ?? ""} on ${to.hostname}`} >&2; exit 1; }; options=\${options/FROM/$sources}`,
            ...grants,
            // Also removed from the files when it expires, whatever happens to the run: a later
            // step that fails stops `pulumi up` before the revoke, and sshd's expiry only refuses
            // the key. A systemd timer where systemd runs, else a detached sleep.
            sh`remover=${this.revokeScript().text}`,
            sh`if [ -d /run/systemd/system ]; then systemctl stop ${`${this.timerUnit}.timer`} 2>/dev/null || true; systemctl reset-failed ${this.timerUnit} 2>/dev/null || true; systemd-run --quiet --unit=${this.timerUnit} --on-active=${`${args.hours}h`} /bin/sh -c "$remover"; else pkill -f ${`^/bin/sh -c sleep [0-9]+; .*${this.comment}`} || true; setsid -f /bin/sh -c "sleep ${String(args.hours * 3600)}; $remover" < /dev/null > /dev/null 2>&1; fi`,
            sh`echo ${`${to.hostname}: accepts ${this.comment} for ${args.users.map((u) => u.name).join(", ")} for ${args.hours} h, for the copies only, then removes it`}`,
        );
        const granted = to.command(
            `${name}-grant`,
            { create: grant, update: grant, delete: this.revokeScript(), stdin: keypair.stdout },
            // The revoke removes every line with this key's comment: on a replacement (the guide
            // for an expired key) it must run before the new grant, not after it.
            { parent: this, dependsOn: inherited, deleteBeforeReplace: true },
        );
        this.granted = granted;
        if (this.jump && jump) {
            // The jump host: the key may only open a forwarding to the old server's SSH port
            // (what ssh -W asks), from the new server, until the same expiry by its own clock.
            const jumpGrant = script(
                notAgain(this.jump, "revoke-transfer-key-jump"),
                sh`IFS= read -r pubkey || [ -n "$pubkey" ]`,
                sh`case "$pubkey" in "ssh-ed25519 "*${` ${this.comment}`}) ;; *) echo "unexpected public key on stdin" >&2; exit 1;; esac`,
                // `|| true`: an unknown user must reach the message, not end the script (pipefail).
                sh`home=$(getent passwd ${jump.user} | cut -d: -f6 || true); [ -n "$home" ] || { echo ${`${jump.host}: no user ${jump.user}`} >&2; exit 1; }`,
                sh`options=${`restrict,port-forwarding,permitopen="${to.ipv4}:${port}",command="/bin/false",from="${from.addresses.join(",")}",expiry-time="EXPIRY"`}; options=\${options/EXPIRY/$(env -u TZ date -d ${`+${args.hours} hours`} +%Y%m%d%H%M)}`,
                sh`install -d -m 0700 -o ${jump.user} "$home/.ssh"; f="$home/.ssh/authorized_keys"; touch "$f"`,
                sh`grep -vF ${this.comment} "$f" > "$f.tmp" || true; printf '%s %s\n' "$options" "$pubkey" >> "$f.tmp"`,
                sh`chown ${jump.user} "$f.tmp"; chmod 0600 "$f.tmp"; mv "$f.tmp" "$f"`,
                sh`remover=${this.jumpRevokeScript().text}`,
                sh`if [ -d /run/systemd/system ]; then systemctl stop ${`${this.timerUnit}.timer`} 2>/dev/null || true; systemctl reset-failed ${this.timerUnit} 2>/dev/null || true; systemd-run --quiet --unit=${this.timerUnit} --on-active=${`${args.hours}h`} /bin/sh -c "$remover"; else pkill -f ${`^/bin/sh -c sleep [0-9]+; .*${this.comment}`} || true; setsid -f /bin/sh -c "sleep ${String(args.hours * 3600)}; $remover" < /dev/null > /dev/null 2>&1; fi`,
                sh`echo ${`${jump.host}: lets ${this.comment} through to ${to.ipv4}:${port} for ${args.hours} h`}`,
            );
            this.granted = this.jump.command(
                `${name}-jump-grant`,
                { create: jumpGrant, update: jumpGrant, delete: this.jumpRevokeScript(), stdin: keypair.stdout },
                { parent: this, dependsOn: [...inherited, granted], deleteBeforeReplace: true },
            );
        }
        this.registerOutputs({});
    }

    /**
     * The forced command (bash): runs the original command only when it is one of the copies' own,
     * word for word, for the user it runs as; rsync's sender only for the listed trees.
     */
    private dispatcher(inputs: TransferCommand[]): string {
        const users = [...new Set([...this.args.users.map((u) => u.name)])];
        const branches = users.map((user) => {
            const exact = this.args.commands
                .filter((c) => c.user === user)
                .map((c) => {
                    const stdin = c.input !== undefined ? sh`< ${`${this.dispatchDir}/input-${inputs.indexOf(c)}`}` : c.passStdin ? sh`` : sh`< /dev/null`;
                    return sh`    ${c.command}) exec /bin/sh -c "$cmd" ${stdin} ;;`;
                });
            const trees = this.args.trees.filter((t) => t.user === user).map((t) => t.dir);
            const rsync = trees.length
                ? [
                      // rsync's own command line; its flags vary with the client's rsync version.
                      sh`  read -r -a w <<< "$cmd"`,
                      sh`  if [ "\${#w[@]}" -eq 6 ] && [ "\${w[0]} \${w[1]} \${w[2]}" = 'rsync --server --sender' ] && [[ \${w[3]} =~ ^-[A-Za-z.]+$ ]] && [ "\${w[4]}" = . ]; then`,
                      sh`    case "\${w[5]}" in ${new ShellText(trees.map(quote).join("|"))}) exec rsync --server --sender "\${w[3]}" . "\${w[5]}" ;; esac`,
                      sh`  fi`,
                  ]
                : [];
            return script(sh`${user})`, sh`  case "$cmd" in`, sh`    true) exit 0 ;;`, ...exact, sh`  esac`, ...rsync, sh`  ;;`);
        });
        return script(
            new ShellText("#!/bin/bash"),
            new ShellText(`# Installed by data-support's transfer grant (${this.comment}); sshd runs it for that key`),
            new ShellText("# instead of the command asked (command= in authorized_keys). Only the copies' commands run."),
            sh`cmd=\${SSH_ORIGINAL_COMMAND-}`,
            sh`case "$(id -un)" in`,
            ...branches,
            sh`esac`,
            sh`echo "$(id -un)@$(hostname): the data-support transfer key may run only the migration's copies; refused: \${cmd:0:200}" >&2`,
            sh`exit 1`,
        ).text;
    }

    private revokeScript(): ShellText {
        return script(
            ...this.args.users.map(
                (user) => sh`f=${`${user.home}/.ssh/authorized_keys`}; if [ -e "$f" ]; then grep -vF ${this.comment} "$f" > "$f.tmp" || true; chown ${user.name}: "$f.tmp"; chmod 0600 "$f.tmp"; mv "$f.tmp" "$f"; fi`,
            ),
            sh`rm -rf ${this.dispatchDir}`,
        );
    }

    private jumpRevokeScript(): ShellText {
        const user = this.args.to.server.ssh.jumpHost?.user ?? "root";
        return sh`f="$(getent passwd ${user} | cut -d: -f6)/.ssh/authorized_keys"; if [ -e "$f" ]; then grep -vF ${this.comment} "$f" > "$f.tmp" || true; chown ${user} "$f.tmp"; chmod 0600 "$f.tmp"; mv "$f.tmp" "$f"; fi`;
    }

    /**
     * Fails with a guide when `to` no longer accepts the key for `user`: it expired (a run resumed
     * more than `hours` later) or was revoked by hand. Replacing the grant issues a fresh one.
     */
    check(user: string): ShellText {
        return sh`if ! ${this.ssh} ${`${user}@${this.target}`} true 2>/dev/null; then echo ${`${this.args.to.hostname} does not accept the transfer key of ${this.args.from.hostname} for ${user} (it expires ${this.args.hours} h after it was granted, or it was removed). Grant it again: pulumi up --replace "$(pulumi stack --show-urns | grep -o 'urn:pulumi:[^ ]*::${this.name}-grant')"${this.jump ? ` --replace "$(pulumi stack --show-urns | grep -o 'urn:pulumi:[^ ]*::${this.name}-jump-grant')"` : ""}, then run pulumi up again.`} >&2; exit 1; fi`;
    }

    /**
     * Removes the key from `to` once every given step is done, then the private key from `from`:
     * nothing that opens the old server stays behind.
     */
    revokeAfter(steps: pulumi.Resource[]): pulumi.Resource {
        let revoked = this.args.to.oneOff(`${this.name}-revoke`, "revoke-transfer-key", this.revokeScript(), { parent: this, dependsOn: steps });
        if (this.jump) {
            revoked = this.jump.oneOff(`${this.name}-jump-revoke`, "revoke-transfer-key-jump", this.jumpRevokeScript(), { parent: this, dependsOn: [revoked] });
        }
        return this.args.from.oneOff(
            `${this.name}-forget`,
            "forget-transfer-key",
            script(sh`rm -f ${this.key} ${`${this.key}.pub`} ${this.knownHosts}`, sh`echo ${`${this.args.from.hostname}: the transfer key is deleted`}`),
            { parent: this, dependsOn: [revoked] },
        );
    }
}
