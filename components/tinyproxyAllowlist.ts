// Step 1 (Dependencies, Tinyproxy): the docs server's tinyproxy admits the new server, and keeps
// the addresses still in use. Desired state: converges on every `pulumi up`.
import * as crypto from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import type { Host } from "./host";
import { sh, script } from "./shell";

export interface AllowedEntry {
    address: string;
    comment: string;
}

export interface TinyproxyAllowlistArgs {
    docs: Host;
    port: number;
    configPath: string;
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

export class TinyproxyAllowlist extends pulumi.ComponentResource {
    readonly config: string;
    /** The proof: the HTTP status the new server got through the proxy. */
    readonly proof: pulumi.Output<string>;

    constructor(name: string, args: TinyproxyAllowlistArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:tinyproxy:TinyproxyAllowlist", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        this.config = renderTinyproxyConf(args.port, args.allow);
        const expected = 2 + args.allow.length;
        // The new file is checked, then moved into place in one rename; tinyproxy restarts only
        // when the file changed. The previous file is kept as .bak for a manual rollback.
        const install = script(
            sh`path=${args.configPath}`,
            sh`tmp=$(mktemp "$path.XXXXXX")`,
            sh`trap 'rm -f "$tmp"' EXIT`,
            sh`cat > "$tmp"`,
            sh`test "$(grep -c '^Allow ' "$tmp")" -eq ${expected} || { echo "tinyproxy config check failed: expected ${expected} Allow lines" >&2; exit 1; }`,
            sh`grep -qx ${`Port ${args.port}`} "$tmp" || { echo "tinyproxy config check failed: no Port line" >&2; exit 1; }`,
            sh`if cmp -s "$tmp" "$path"; then echo "tinyproxy: allowlist unchanged"; exit 0; fi`,
            sh`chmod 0644 "$tmp"`,
            sh`if [ -e "$path" ]; then cp -p "$path" "$path.bak"; fi`,
            sh`mv "$tmp" "$path"`,
            sh`service tinyproxy restart`,
            sh`echo "tinyproxy: allowlist changed and restarted"`,
        );
        const allowlist = args.docs.command(
            `${name}-config`,
            { create: install, update: install, stdin: this.config },
            { parent: this, dependsOn: inherited },
        );
        // Proof from the client through the proxy. It runs again whenever the config changes.
        const proxyUrl = `http://${args.docs.hostname}:${args.port}`;
        const check = args.client.command(
            `${name}-proof`,
            {
                create: sh`code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 --retry 5 --retry-connrefused --retry-delay 1 -x ${proxyUrl} ${args.checkUrl})
if [ "$code" = 403 ]; then echo ${`${args.client.hostname} is not admitted by tinyproxy on ${args.docs.hostname} (HTTP 403)`} >&2; exit 1; fi
case "$code" in 2??|3??) echo "through ${proxyUrl}: HTTP $code";; *) echo ${`${args.checkUrl} through ${proxyUrl} answered HTTP`} "$code" >&2; exit 1;; esac`,
                triggers: [crypto.createHash("sha256").update(this.config).digest("hex")],
            },
            { parent: this, dependsOn: [...inherited, allowlist] },
        );
        this.proof = check.stdout;
        this.registerOutputs({ proof: this.proof });
    }
}
