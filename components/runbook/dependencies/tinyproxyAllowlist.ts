// Step 1 (Dependencies, Tinyproxy): the docs server's tinyproxy admits the new server, and keeps
// the addresses still in use. Desired state: converges on every `pulumi up`.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import type { Host } from "../../machinery/host";
import { receiveWhole, sha256 } from "../../machinery/managedFile";
import { quote, sh, script } from "../../machinery/shell";

export interface AllowedEntry {
    address: string;
    comment: string;
}

export interface TinyproxyAllowlistArgs {
    docs: Host;
    port: number;
    configPath: string;
    /** Where the IPv6 guard's nft ruleset is kept (loaded again whenever tinyproxy starts). */
    guardPath: string;
    /** In order: loopback is always first, then these. */
    allow: AllowedEntry[];
    /** Proven admitted: a request through the proxy from this host must succeed. */
    client: Host;
    checkUrl: string;
}

/** The whole tinyproxy.conf, as the deploy repository's template renders it. */
export function renderTinyproxyConf(port: number, allow: AllowedEntry[]): string {
    const lines = [
        "# Managed by data-support (Pulumi): edit the stack config, not this file.",
        "User tinyproxy",
        "Group tinyproxy",
        `Port ${port}`,
        "Timeout 600",
        'DefaultErrorFile "/usr/share/tinyproxy/default.html"',
        'StatFile "/usr/share/tinyproxy/stats.html"',
        'LogFile "/var/log/tinyproxy/tinyproxy.log"',
        "LogLevel Info",
        'PidFile "/run/tinyproxy/tinyproxy.pid"',
        "MaxClients 100",
        "# With any Allow line, every other client is denied (HTTP 403).",
        "Allow 127.0.0.1",
        "Allow ::1",
    ];
    for (const entry of allow) {
        // Tinyproxy 1.11 reads an IPv6 Allow without a prefix length as a range that admits every
        // IPv6 client (seen on the test hosts: an outsider got through); /128 admits exactly one.
        const address = entry.address.includes(":") && !entry.address.includes("/") ? `${entry.address}/128` : entry.address;
        lines.push(`# ${entry.comment}`, `Allow ${address}`);
    }
    lines.push('ViaProxyName "tinyproxy"', "ConnectPort 443", "ConnectPort 563", "");
    return lines.join("\n");
}

/** The nftables table that guards the proxy port over IPv6 (see renderIpv6GuardScript). */
export const GUARD_TABLE = "data_support_tinyproxy";

/** Marks the hook line in /etc/default/tinyproxy on hosts without systemd. */
const HOOK_MARK = "# data-support: IPv6 guard of tinyproxy";

/**
 * A script that loads an nftables ruleset letting only tinyproxy.conf's own IPv6 `Allow` entries
 * (and ::1) reach its `Port`. It runs each time tinyproxy starts or reloads, so an allow list that
 * Salt renders later (salt/tinyproxy/files/tinyproxy.conf) takes effect in the guard too.
 * Why: Debian 12's tinyproxy 1.11.1 checks its ACL against a wrong client address for the first
 * IPv6 connection after an IPv4 one (upstream tinyproxy/tinyproxy#495, fixed in 1.11.2): accept()
 * keeps the IPv4 address length, so half of the IPv6 address is left over from the previous client.
 * Seen on the test hosts: an outsider in the same /64 was admitted. And tinyproxy 1.11 reads a bare
 * IPv6 `Allow` (as Salt writes the pillar's entries) as admitting every IPv6 client; the guard
 * reads it as that one address. IPv4 is not affected, so tinyproxy's own Allow list stays the
 * access control there (outsiders get HTTP 403); over IPv6 an address off the list is refused at
 * the port. The ruleset replaces the whole table in one transaction (`nft -f`), so there is no
 * moment without a guard.
 */
export function renderIpv6GuardScript(configPath: string): string {
    return [
        "#!/bin/sh",
        "# Managed by data-support (Pulumi): the IPv6 guard of tinyproxy, made from tinyproxy.conf's own",
        "# Port and Allow lines each time tinyproxy starts or reloads.",
        "set -eu",
        `conf=${quote(configPath)}`,
        `port=$(awk '$1 == "Port" { p = $2 } END { print (p == "" ? 8888 : p) }' "$conf")`,
        `case $port in '' | *[!0-9]*) echo "$conf: Port $port is not a number; the IPv6 guard is unchanged" >&2; exit 1 ;; esac`,
        "# Each IPv6 entry once, a bare address as itself (/128); ::1 always.",
        String.raw`elements=$(awk '$1 == "Allow" && $2 ~ /:/ && $2 ~ /^[0-9A-Fa-f:.]+(\/[0-9]+)?$/ { a = $2; if (a !~ /\//) a = a "/128"; if (!(a in seen)) { seen[a] = 1; list = list (list == "" ? "" : ", ") a } } END { if (!("::1/128" in seen)) list = list (list == "" ? "" : ", ") "::1/128"; print list }' "$conf")`,
        "nft -f - <<EOF",
        `table inet ${GUARD_TABLE}`,
        `delete table inet ${GUARD_TABLE}`,
        `table inet ${GUARD_TABLE} {`,
        "    set allowed6 {",
        "        type ipv6_addr",
        "        flags interval",
        "        auto-merge",
        "        elements = { $elements }",
        "    }",
        "    chain input {",
        "        type filter hook input priority filter - 10; policy accept;",
        "        meta nfproto ipv6 tcp dport $port ip6 saddr != @allowed6 reject with tcp reset",
        "    }",
        "}",
        "EOF",
        `echo "tinyproxy IPv6 guard: port $port, admitted $elements"`,
        "",
    ].join("\n");
}


export class TinyproxyAllowlist extends pulumi.ComponentResource {
    readonly config: string;
    readonly guard: string;
    /** The proof: the HTTP status the new server got through the proxy. */
    readonly proof: pulumi.Output<string>;

    constructor(name: string, args: TinyproxyAllowlistArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:tinyproxy:TinyproxyAllowlist", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        this.config = renderTinyproxyConf(args.port, args.allow);
        this.guard = renderIpv6GuardScript(args.configPath);
        const host = args.docs.hostname;

        // The IPv6 guard goes first, so the proxy never listens unguarded. It runs again whenever
        // tinyproxy starts or reloads: a systemd drop-in, or, without systemd, a line in
        // /etc/default/tinyproxy, which Debian's init script sources with its action in $1.
        const dropIn = "/etc/systemd/system/tinyproxy.service.d/data-support-ipv6-guard.conf";
        const hook = `case "\${1:-}" in start | restart | reload | force-reload) /bin/sh ${args.guardPath} > /dev/null || exit 1 ;; esac ${HOOK_MARK}`;
        const installGuard = script(
            sh`command -v nft >/dev/null || { echo ${`${host}: nft is missing; install Debian's nftables package on ${host} (it guards tinyproxy over IPv6), then run pulumi up again`} >&2; exit 1; }`,
            sh`path=${args.guardPath}`,
            receiveWhole(args.guardPath, this.guard, `${host}: the IPv6 guard arrived incomplete; nothing was changed`),
            sh`sh -n "$tmp"`,
            sh`chmod 0755 "$tmp"; mv "$tmp" "$path"`,
            sh`/bin/sh "$path"`,
            sh`if [ -d /run/systemd/system ]; then
  mkdir -p ${dropIn.replace(/\/[^/]+$/, "")}
  printf '%s\\n' '[Service]' ${`ExecStartPre=/bin/sh ${args.guardPath}`} ${`ExecReload=/bin/sh ${args.guardPath}`} > ${dropIn}
  systemctl daemon-reload
elif ! grep -qxF ${hook} /etc/default/tinyproxy 2>/dev/null; then
  sed -i ${`/${HOOK_MARK}$/d`} /etc/default/tinyproxy 2>/dev/null || true
  printf '%s\\n' ${hook} >> /etc/default/tinyproxy
fi`,
        );
        const removeGuard = script(
            sh`nft delete table inet ${GUARD_TABLE} 2>/dev/null || true`,
            sh`rm -f ${args.guardPath} ${dropIn}`,
            sh`sed -i ${`/${HOOK_MARK}$/d`} /etc/default/tinyproxy 2>/dev/null || true`,
            sh`if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi`,
        );
        const guard = args.docs.command(
            `${name}-ipv6-guard`,
            { create: installGuard, update: installGuard, delete: removeGuard, stdin: this.guard },
            { parent: this, dependsOn: inherited },
        );

        // The new file is checked (complete, as rendered), then moved into place in one rename;
        // tinyproxy restarts only when the file changed. If it does not come back, the previous
        // file is put back and restarted, and the step fails naming the host.
        const install = script(
            sh`path=${args.configPath}`,
            receiveWhole(args.configPath, this.config, `${host}: the tinyproxy config arrived incomplete; nothing was changed`),
            sh`if cmp -s "$tmp" "$path"; then echo "tinyproxy: allowlist unchanged"; exit 0; fi`,
            sh`chmod 0644 "$tmp"`,
            sh`if [ -e "$path" ]; then cp -p "$path" "$path.bak"; else rm -f "$path.bak"; fi`,
            sh`mv "$tmp" "$path"`,
            // $(...) rather than a pipe into grep -q, which under pipefail can fail on SIGPIPE.
            sh`listening() { for _ in $(seq 50); do if [ -n "$(ss -Hltn ${`sport = :${args.port}`})" ]; then return 0; fi; sleep 0.2; done; return 1; }`,
            sh`if ! service tinyproxy restart || ! listening; then
  if [ -e "$path.bak" ]; then mv "$path.bak" "$path"; service tinyproxy restart || true; echo ${`${host}: tinyproxy did not start with the new config; the previous config was put back. See /var/log/tinyproxy/tinyproxy.log on ${host}.`} >&2
  else echo ${`${host}: tinyproxy did not start with the new config (there was no previous one to put back). See /var/log/tinyproxy/tinyproxy.log on ${host}.`} >&2; fi
  exit 1
fi`,
            sh`echo "tinyproxy: allowlist changed and restarted"`,
        );
        const allowlist = args.docs.command(
            `${name}-config`,
            { create: install, update: install, stdin: this.config },
            { parent: this, dependsOn: [...inherited, guard] },
        );
        // Proof from the client through the proxy. It runs again whenever the config changes.
        const proxyUrl = `http://${args.docs.hostname}:${args.port}`;
        const check = args.client.command(
            `${name}-proof`,
            {
                create: sh`code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 --retry 5 --retry-connrefused --retry-delay 1 -x ${proxyUrl} ${args.checkUrl})
if [ "$code" = 403 ]; then echo ${`${args.client.hostname} is not admitted by tinyproxy on ${args.docs.hostname} (HTTP 403)`} >&2; exit 1; fi
case "$code" in 2??|3??) echo "through ${proxyUrl}: HTTP $code";; *) echo ${`${args.checkUrl} through ${proxyUrl} answered HTTP`} "$code" >&2; exit 1;; esac`,
                triggers: [sha256(this.config + this.guard)],
            },
            { parent: this, dependsOn: [...inherited, allowlist] },
        );
        this.proof = check.stdout;
        this.registerOutputs({ proof: this.proof });
    }
}
