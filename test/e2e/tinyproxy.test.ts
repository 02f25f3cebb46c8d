// Step 1 (Dependencies, Tinyproxy) on the test hosts: the allowlist is desired state. Adding an
// address admits it, removing it shuts it out again, and an unchanged config touches nothing.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { down, pointName, up, type HostName, type Testbed } from "../hosts/testbed";
import { assertApplied, Harness, testbedConfig } from "../support/harness";
import { sh } from "../support/hosts";

let tb: Testbed;
let harness: Harness;

before(async () => {
    tb = await up();
    await pointName("collect.kingfisher.open-contracting.org", "new");
    harness = new Harness(tb);
    assertApplied(harness.apply(testbedConfig(tb)));
});

after(async () => {
    await down();
});


/** The HTTP status `host` gets through the proxy, by address family ("000": no connection). */
async function through(host: HostName): Promise<{ v4: string; v6: string }> {
    const get = (proxy: string) => sh(host, `curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -x http://${proxy}:8888 ${tb.web.url} 2>/dev/null || true`);
    return { v4: await get(tb.hosts.docs.ipv4), v6: await get(`[${tb.hosts.docs.ipv6}]`) };
}

const tinyproxyPid = () => sh("docs", "cat /run/tinyproxy/tinyproxy.pid");
const withOutsider = () =>
    testbedConfig(tb, {
        tinyproxy: {
            port: 8888,
            checkUrl: tb.web.url,
            keep: [
                { address: tb.hosts.outsider.ipv4, comment: "outsider (kept for this test)" },
                { address: tb.hosts.outsider.ipv6, comment: "outsider (kept for this test)" },
            ],
        },
    });

test("the rendered config is installed whole: loopback first, then the new server's addresses", async () => {
    const allow = (await sh("docs", "grep '^Allow ' /etc/tinyproxy/tinyproxy.conf")).trim().split("\n");
    assert.deepEqual(allow, ["Allow 127.0.0.1", "Allow ::1", `Allow ${tb.hosts.new.ipv4}`, `Allow ${tb.hosts.new.ipv6}/128`]);
    assert.deepEqual(await through("new"), { v4: "200", v6: "200" });
    assert.deepEqual(await through("outsider"), { v4: "403", v6: "000" });
});

test("an address added to tinyproxy.keep is admitted, over IPv4 and IPv6", async () => {
    const pid = await tinyproxyPid();
    const result = assertApplied(harness.apply(withOutsider()));
    const acted = result.steps.filter((s) => s.action !== "same").map((s) => `${s.action} ${s.name}`);
    // The guard reads tinyproxy.conf itself when tinyproxy restarts: its own script is unchanged.
    assert.deepEqual(acted.sort(), ["delete-replaced data-support-tinyproxy-proof", "replace data-support-tinyproxy-proof", "update data-support-tinyproxy-config"]);
    assert.notEqual(await tinyproxyPid(), pid, "tinyproxy restarted with the new config");
    assert.deepEqual(await through("outsider"), { v4: "200", v6: "200" });
    assert.deepEqual(await through("new"), { v4: "200", v6: "200" });
});

test("an unchanged config changes nothing: no command runs, tinyproxy is not restarted", async () => {
    const pid = await tinyproxyPid();
    const result = assertApplied(harness.apply(withOutsider()));
    assert.deepEqual(result.steps.filter((s) => s.action !== "same"), []);
    assert.equal(await tinyproxyPid(), pid);
});

test("the same file sent again is recognised as unchanged on the server: no restart", async () => {
    // What a `pulumi up --refresh` or a lost state would do: the install runs, finds the same file.
    const pid = await tinyproxyPid();
    harness.reset("main");
    const result = assertApplied(harness.apply(withOutsider()));
    const config = result.steps.find((s) => s.name === "data-support-tinyproxy-config");
    assert.match(config?.stdout ?? "", /allowlist unchanged/);
    assert.equal(await tinyproxyPid(), pid);
});

test("an address removed from the config is shut out again; the rest stay admitted", async () => {
    assertApplied(harness.apply(testbedConfig(tb)));
    assert.deepEqual(await through("outsider"), { v4: "403", v6: "000" });
    assert.deepEqual(await through("new"), { v4: "200", v6: "200" });
    assert.doesNotMatch(await sh("docs", "cat /etc/tinyproxy/tinyproxy.conf; nft list table inet data_support_tinyproxy"), new RegExp(tb.hosts.outsider.ipv4.replace(/\./g, "\\.") + "|" + tb.hosts.outsider.ipv6));
});

/** tinyproxy.conf as Salt's template renders it (salt/tinyproxy/files/tinyproxy.conf at deploy afaedf6b, its settings): the pillar's entries bare. */
const saltConf = (allow: string[]) =>
    [
        "User tinyproxy", "Group tinyproxy", "Port 8888", "Timeout 600",
        'DefaultErrorFile "/usr/share/tinyproxy/default.html"', 'StatFile "/usr/share/tinyproxy/stats.html"',
        'Logfile "/var/log/tinyproxy/tinyproxy.log"', "LogLevel Info", 'PidFile "/run/tinyproxy/tinyproxy.pid"', "MaxClients 100",
        "Allow 127.0.0.1", "Allow ::1", ...allow.flatMap((a) => ["", `Allow ${a}`]), "",
        'ViaProxyName "tinyproxy"', "ConnectPort 443", "ConnectPort 563", "",
    ].join("\n");
/** A Salt deploy of the docs server: the config rendered, tinyproxy restarted (its state watches the file). */
const saltDeploy = (allow: string[]) =>
    sh("docs", `cat > /etc/tinyproxy/tinyproxy.conf && service tinyproxy restart > /dev/null && for _ in $(seq 50); do [ -n "$(ss -Hltn 'sport = :8888')" ] && break; sleep 0.2; done`, { input: saltConf(allow) });

test("an allow list Salt renders later takes effect in the IPv6 guard when tinyproxy restarts; an outsider is still refused over IPv6", async () => {
    await saltDeploy([tb.hosts.new.ipv4, tb.hosts.new.ipv6, tb.hosts.outsider.ipv6]);
    // The guard lets the address Salt added reach tinyproxy ("000" is the guard's reset); what
    // tinyproxy 1.11 answers a bare IPv6 entry is its own (403 was seen here).
    assert.notEqual((await through("outsider")).v6, "000", "the guard admits the address Salt added");
    assert.match(await sh("docs", "nft list table inet data_support_tinyproxy"), new RegExp(tb.hosts.outsider.ipv6));
    // Salt writes IPv6 entries bare, which tinyproxy 1.11 reads as every IPv6 client: the guard
    // reads the one address, so an address off the list stays refused over IPv6.
    await saltDeploy([tb.hosts.new.ipv4, tb.hosts.new.ipv6]);
    assert.deepEqual(await through("outsider"), { v4: "403", v6: "000" });
    // The new server: admitted by tinyproxy over IPv4, and let through by the guard over IPv6 (what
    // tinyproxy 1.11.1 then answers right after an IPv4 request is its bug #495, seen as 403 here).
    const fromNew = await through("new");
    assert.equal(fromNew.v4, "200");
    assert.notEqual(fromNew.v6, "000", "the guard admits the new server");
    const guard = await sh("docs", "nft list table inet data_support_tinyproxy");
    assert.match(guard, new RegExp(tb.hosts.new.ipv6.replace(/\./g, "\\.")));
    assert.doesNotMatch(guard, new RegExp(tb.hosts.outsider.ipv6));
});
