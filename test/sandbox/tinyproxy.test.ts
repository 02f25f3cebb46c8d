// Step 1's tinyproxy config and IPv6 guard where they run: the real tinyproxy (Debian's package)
// and the real nft, in the sandbox's own network namespace, with the program's shell text. Only
// `service` is a stand-in (it starts the real tinyproxy, or fails when told to).
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig } from "../support/fixtures";
import { canSandbox, runInSandbox, type Step } from "./sandbox";
import { commandOf, programCommands, type ProgramCommand } from "./scripts";

const skip = canSandbox() || undefined;

const CONF = `# Managed by data-support (Pulumi): edit the stack config, not this file.
User tinyproxy
Group tinyproxy
Port 8888
Timeout 600
DefaultErrorFile "/usr/share/tinyproxy/default.html"
StatFile "/usr/share/tinyproxy/stats.html"
LogFile "/var/log/tinyproxy/tinyproxy.log"
LogLevel Info
PidFile "/run/tinyproxy/tinyproxy.pid"
MaxClients 100
# With any Allow line, every other client is denied (HTTP 403).
Allow 127.0.0.1
Allow ::1
# ocp23.open-contracting.org (data support main)
Allow 198.51.100.23
# ocp23.open-contracting.org (data support main)
Allow 2001:db8:d5::23/128
# ocp10 (collect)
Allow 198.51.100.10
ViaProxyName "tinyproxy"
ConnectPort 443
ConnectPort 563
`;
// The guard is a script that reads tinyproxy.conf each time tinyproxy starts or reloads (so an
// allow list Salt renders later takes effect too): its Port, and its IPv6 Allow lines, a bare
// address read as that one address (/128), ::1 always.
const GUARD = String.raw`#!/bin/sh
# Managed by data-support (Pulumi): the IPv6 guard of tinyproxy, made from tinyproxy.conf's own
# Port and Allow lines each time tinyproxy starts or reloads.
set -eu
conf=/etc/tinyproxy/tinyproxy.conf
port=$(awk '$1 == "Port" { p = $2 } END { print (p == "" ? 8888 : p) }' "$conf")
case $port in '' | *[!0-9]*) echo "$conf: Port $port is not a number; the IPv6 guard is unchanged" >&2; exit 1 ;; esac
# Each IPv6 entry once, a bare address as itself (/128); ::1 always.
elements=$(awk '$1 == "Allow" && $2 ~ /:/ && $2 ~ /^[0-9A-Fa-f:.]+(\/[0-9]+)?$/ { a = $2; if (a !~ /\//) a = a "/128"; if (!(a in seen)) { seen[a] = 1; list = list (list == "" ? "" : ", ") a } } END { if (!("::1/128" in seen)) list = list (list == "" ? "" : ", ") "::1/128"; print list }' "$conf")
nft -f - <<EOF
table inet data_support_tinyproxy
delete table inet data_support_tinyproxy
table inet data_support_tinyproxy {
    set allowed6 {
        type ipv6_addr
        flags interval
        auto-merge
        elements = { $elements }
    }
    chain input {
        type filter hook input priority filter - 10; policy accept;
        meta nfproto ipv6 tcp dport $port ip6 saddr != @allowed6 reject with tcp reset
    }
}
EOF
echo "tinyproxy IPv6 guard: port $port, admitted $elements"
`;
const GUARD_PATH = "/etc/tinyproxy/data-support-ipv6-guard.sh";
// Without systemd, Debian's init script sources /etc/default/tinyproxy with its action in $1.
const HOOK = 'case "${1:-}" in start | restart | reload | force-reload) /bin/sh /etc/tinyproxy/data-support-ipv6-guard.sh > /dev/null || exit 1 ;; esac # data-support: IPv6 guard of tinyproxy\n';
const DROP_IN = "/etc/systemd/system/tinyproxy.service.d/data-support-ipv6-guard.conf";
const OLD_CONF = CONF.replace("# ocp10 (collect)\nAllow 198.51.100.10\n", "");

let commands: Map<string, ProgramCommand>;
before(async () => {
    if (skip) return;
    commands = await programCommands(mainConfig());
});

test("the program sends the config and the guard written out here", { skip }, () => {
    assert.equal(commandOf(commands, "data-support-tinyproxy-config").stdin, CONF);
    assert.equal(commandOf(commands, "data-support-tinyproxy-ipv6-guard").stdin, GUARD);
});

// The addresses of the sandbox's loopback stand for the clients: the new server, and outsiders.
const ADDRESSES: Step = { script: "ip addr add 198.51.100.23/32 dev lo; ip addr add 198.51.100.99/32 dev lo; ip addr add 2001:db8:d5::23/128 dev lo nodad; ip addr add 2001:db8:d5::99/128 dev lo nodad" };
/** The HTTP status (000: no answer) of a request through the proxy from `source` to `proxy`. */
const through = (source: string, proxy: string): Step => ({
    script: `curl -s -o /dev/null -w '%{http_code}\\n' --max-time 60 --interface ${source} -x http://${proxy}:8888 http://upstream.invalid/ || true`,
});

test("guard, then config: the real tinyproxy admits the listed clients; outsiders get 403 (IPv4) or a reset (IPv6)", { skip }, () => {
    const guard = commandOf(commands, "data-support-tinyproxy-ipv6-guard");
    const config = commandOf(commands, "data-support-tinyproxy-config");
    const run = runInSandbox(
        [
        // With systemd (its runtime directory): the guard runs before each start and reload.
        { script: `${ADDRESSES.script}; mkdir -p /run/systemd/system` },
        { script: guard.create, stdin: guard.stdin },
        { script: config.create, stdin: config.stdin },
        { script: `cat ${GUARD_PATH}; stat -c %a ${GUARD_PATH}; echo ---; cat ${DROP_IN}; echo ---; cat /etc/tinyproxy/tinyproxy.conf; stat -c %a /etc/tinyproxy/tinyproxy.conf` },
        { script: "nft list set inet data_support_tinyproxy allowed6 | tr -s ' \\n\\t' ' ' | grep -o 'elements = {[^}]*}'" },
        // IPv6 first: Debian 12's tinyproxy 1.11.1 checks the first IPv6 connection after an IPv4
        // one against a wrong address (tinyproxy/tinyproxy#495); seen here, it refused the new server.
        through("2001:db8:d5::23", "[2001:db8:d5::23]"),
        through("2001:db8:d5::99", "[2001:db8:d5::23]"),
        through("198.51.100.23", "198.51.100.23"),
        through("198.51.100.99", "198.51.100.23"),
        // Unchanged config: no restart.
        { script: config.update ?? "false", stdin: config.stdin },
        ],
        // The docs server's config before this step: Salt's, without the collect server.
        { files: { "/etc/tinyproxy/tinyproxy.conf": OLD_CONF } },
    );
    for (const i of [0, 1, 2, 9]) assert.equal(run.steps[i].code, 0, `step ${i}: ${run.steps[i].stderr}`);
    assert.equal(run.steps[1].stdout, "tinyproxy IPv6 guard: port 8888, admitted ::1/128, 2001:db8:d5::23/128\n");
    assert.equal(run.steps[2].stdout, "tinyproxy: allowlist changed and restarted\n");
    assert.equal(
        run.steps[3].stdout,
        `${GUARD}755\n---\n[Service]\nExecStartPre=/bin/sh ${GUARD_PATH}\nExecReload=/bin/sh ${GUARD_PATH}\n---\n${CONF}644\n`,
    );
    assert.equal(run.steps[4].stdout.trim(), "elements = { ::1, 2001:db8:d5::23 }");
    // Admitted: tinyproxy answers itself (the upstream does not resolve here), never 403.
    assert.match(run.steps[5].stdout, /^5\d\d\n$/);
    assert.equal(run.steps[6].stdout, "000\n");
    assert.match(run.steps[7].stdout, /^5\d\d\n$/);
    assert.equal(run.steps[8].stdout, "403\n");
    assert.equal(run.steps[9].stdout, "tinyproxy: allowlist unchanged\n");
    assert.deepEqual(run.calls, ["root@/: systemctl daemon-reload", "root@/: service tinyproxy restart"]);
});

test("the guard reads tinyproxy.conf as Salt renders it: its Port, a bare IPv6 Allow as that one address, each entry once", { skip }, () => {
    const guard = commandOf(commands, "data-support-tinyproxy-ipv6-guard");
    const salt = "Port 3128\nAllow 127.0.0.1\nAllow 2001:db8:d5::23\nAllow 2001:db8:d5::23/128\nAllow 2001:db8:10::/64\nAllow 198.51.100.10\nAllow collect.example.org\n";
    const run = runInSandbox(
        [
            { script: guard.create, stdin: guard.stdin },
            { script: "nft list table inet data_support_tinyproxy | tr -s ' \\n\\t' ' ' | grep -oE 'elements = \\{[^}]*\\}|dport [0-9]+'" },
            // A Port that is not a number leaves the guard as it was, and says so.
            { script: `sed -i 's/^Port .*/Port x1/' /etc/tinyproxy/tinyproxy.conf; /bin/sh ${GUARD_PATH}` },
            { script: "nft list table inet data_support_tinyproxy | tr -s ' \\n\\t' ' ' | grep -oE 'dport [0-9]+'" },
        ],
        { files: { "/etc/tinyproxy/tinyproxy.conf": salt } },
    );
    assert.equal(run.steps[0].code, 0, run.steps[0].stderr);
    assert.equal(run.steps[0].stdout, "tinyproxy IPv6 guard: port 3128, admitted 2001:db8:d5::23/128, 2001:db8:10::/64, ::1/128\n");
    assert.equal(run.steps[1].stdout, "elements = { ::1, 2001:db8:10::/64, 2001:db8:d5::23 }\ndport 3128\n");
    assert.equal(run.steps[2].code, 1);
    assert.equal(run.steps[2].stderr, "/etc/tinyproxy/tinyproxy.conf: Port x1 is not a number; the IPv6 guard is unchanged\n");
    assert.equal(run.steps[3].stdout, "dport 3128\n");
});

test("a config that arrives incomplete changes nothing", { skip }, () => {
    const config = commandOf(commands, "data-support-tinyproxy-config");
    const run = runInSandbox(
        [{ script: config.create, stdin: (config.stdin ?? "").slice(0, -20) }, { script: "ls -A /etc/tinyproxy; cat /etc/tinyproxy/tinyproxy.conf" }],
        { files: { "/etc/tinyproxy/tinyproxy.conf": OLD_CONF } },
    );
    assert.equal(run.steps[0].code, 1);
    assert.equal(run.steps[0].stderr, "ocp19.open-contracting.org: the tinyproxy config arrived incomplete; nothing was changed\n");
    assert.equal(run.steps[1].stdout, `tinyproxy.conf\n${OLD_CONF}`);
    assert.deepEqual(run.calls, []);
});

test("tinyproxy not starting with the new config: the previous file is put back and the step fails naming the host", { skip }, () => {
    const config = commandOf(commands, "data-support-tinyproxy-config");
    const run = runInSandbox([{ script: config.create, stdin: config.stdin }, { script: "ls -A /etc/tinyproxy; cat /etc/tinyproxy/tinyproxy.conf" }], {
        files: { "/etc/tinyproxy/tinyproxy.conf": OLD_CONF },
        serviceFails: true,
    });
    assert.equal(run.steps[0].code, 1);
    assert.equal(
        run.steps[0].stderr,
        "service stand-in: told to fail\nservice stand-in: told to fail\nocp19.open-contracting.org: tinyproxy did not start with the new config; the previous config was put back. See /var/log/tinyproxy/tinyproxy.log on ocp19.open-contracting.org.\n",
    );
    assert.equal(run.steps[1].stdout, `tinyproxy.conf\n${OLD_CONF}`);
    assert.deepEqual(run.calls, ["root@/: service tinyproxy restart", "root@/: service tinyproxy restart"]);
});

test("tinyproxy not starting, with no previous config: the step fails and says there was none", { skip }, () => {
    const config = commandOf(commands, "data-support-tinyproxy-config");
    const run = runInSandbox([{ script: config.create, stdin: config.stdin }], { serviceFails: true });
    assert.equal(run.steps[0].code, 1);
    assert.match(run.steps[0].stderr, /ocp19\.open-contracting\.org: tinyproxy did not start with the new config \(there was no previous one to put back\)\./);
    assert.deepEqual(run.calls, ["root@/: service tinyproxy restart"]);
});

test("a guard that arrives incomplete changes nothing; without systemd its hook goes into /etc/default/tinyproxy once; deleting the guard removes table, script and hook", { skip }, () => {
    const guard = commandOf(commands, "data-support-tinyproxy-ipv6-guard");
    const run = runInSandbox(
        [
            { script: guard.create, stdin: GUARD.slice(0, -30) },
            { script: "nft list tables; ls -A /etc/tinyproxy" },
            { script: guard.create, stdin: guard.stdin },
            { script: guard.update ?? "false", stdin: guard.stdin },
            { script: "cat /etc/default/tinyproxy" },
            { script: guard.delete ?? "false" },
            { script: "nft list tables; ls -A /etc/tinyproxy; cat /etc/default/tinyproxy" },
        ],
        { files: { "/etc/tinyproxy/tinyproxy.conf": CONF, "/etc/default/tinyproxy": "# Debian's own\nFLAGS=\n" } },
    );
    assert.equal(run.steps[0].code, 1);
    assert.equal(run.steps[0].stderr, "ocp19.open-contracting.org: the IPv6 guard arrived incomplete; nothing was changed\n");
    assert.equal(run.steps[1].stdout, "tinyproxy.conf\n");
    for (const i of [2, 3, 5]) assert.equal(run.steps[i].code, 0, `step ${i}: ${run.steps[i].stderr}`);
    assert.equal(run.steps[4].stdout, `# Debian's own\nFLAGS=\n${HOOK}`);
    assert.equal(run.steps[6].stdout, "tinyproxy.conf\n# Debian's own\nFLAGS=\n");
    assert.deepEqual(run.calls, []);
});
