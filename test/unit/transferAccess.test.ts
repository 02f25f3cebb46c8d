// The transfer key's resources (TemporaryAccess) as the engine sees them: which one is replaced
// delete-first, what each waits for, where the jump host's grant connects, and the ssh command the
// copies use, with and without a jump host. Expected values written out. Where the scripts run:
// test/sandbox/transferKey.test.ts, transferDispatcher.test.ts, transferJump.test.ts.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { HOST_KEY, KEYS, mainConfig, withReplica } from "../support/fixtures";
import { runProgram, type ProgramRun } from "../../tools/program";

const BASTION = "bastion.open-contracting.org";
function behindJumpHost(jumpHostKey?: string): Record<string, any> {
    const config = mainConfig();
    config.servers.oldMain.ssh = { user: "root", port: 2200, hostKey: HOST_KEY, jumpHost: { host: BASTION, port: 2222, user: "jump", ...(jumpHostKey ? { hostKey: jumpHostKey } : {}) } };
    return config;
}

const nameOf = (urn: string) => urn.split("::").pop();
const find = (run: ProgramRun, name: string) => {
    const found = run.resources.find((r) => r.name === name);
    assert.ok(found, `no resource ${name}`);
    return found;
};
const waitsFor = (run: ProgramRun, name: string) => find(run, name).dependencies.map(nameOf).sort();
const deleteFirst = (run: ProgramRun) =>
    run.resources
        .filter((r) => r.deleteBeforeReplace)
        .map((r) => r.name)
        .sort();
const TA = "data-support:main:MainServer$data-support:migration:TemporaryAccess::data-support-transfer";
const parentOf = (run: ProgramRun, name: string) => find(run, name).parent.split("::").slice(2).join("::");

test("only the transfer grant is replaced delete-first: its revoke (by the key's comment) must run before a new grant", async () => {
    const run = await runProgram(withReplica(mainConfig()));
    assert.deepEqual(deleteFirst(run), ["data-support-transfer-grant"]);
});

test("the grant waits for what the transfer waits for (steps 1) and for the key pair, and sits under TemporaryAccess", async () => {
    const run = await runProgram(withReplica(mainConfig()));
    assert.deepEqual(waitsFor(run, "data-support-transfer-grant"), [
        "data-support-replication-max-worker-processes",
        "data-support-replication-password",
        "data-support-replication-source",
        "data-support-tinyproxy-config",
        "data-support-tinyproxy-ipv6-guard",
        "data-support-tinyproxy-proof",
        "data-support-transfer-keypair",
    ]);
    assert.equal(parentOf(run, "data-support-transfer-grant"), TA);
    assert.deepEqual(waitsFor(run, "data-support-transfer-revoke"), ["data-support-exchange-rates-copy", "data-support-incremental-copy-database", "data-support-incremental-copy-files"]);
    assert.deepEqual(waitsFor(run, "data-support-transfer-forget"), ["data-support-transfer-revoke"]);
});

test("behind a jump host: its grant is replaced delete-first too, after the old server's grant; the revokes go old, jump host, then the private key", async () => {
    const run = await runProgram(behindJumpHost(KEYS.ed25519));
    assert.deepEqual(deleteFirst(run), ["data-support-transfer-grant", "data-support-transfer-jump-grant"]);
    assert.deepEqual(waitsFor(run, "data-support-transfer-jump-grant"), [
        "data-support-tinyproxy-config",
        "data-support-tinyproxy-ipv6-guard",
        "data-support-tinyproxy-proof",
        "data-support-transfer-grant",
        "data-support-transfer-keypair",
    ]);
    assert.deepEqual(waitsFor(run, "data-support-transfer-jump-revoke"), ["data-support-transfer-revoke"]);
    assert.deepEqual(waitsFor(run, "data-support-transfer-forget"), ["data-support-transfer-jump-revoke"]);
    for (const name of ["data-support-transfer-jump-grant", "data-support-transfer-jump-revoke"]) {
        assert.equal(parentOf(run, name), TA);
        // Straight to the jump host, as its own user and with its own pinned key (no proxy).
        assert.deepEqual(find(run, name).inputs.connection, { dialErrorLimit: 10, host: BASTION, hostKey: KEYS.ed25519, perDialTimeout: 15, port: 2222, user: "jump" });
    }
});

const SSH = "ssh -i /var/lib/data-support/ocp04-to-ocp23/transfer_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=/var/lib/data-support/ocp04-to-ocp23/known_hosts -o ConnectTimeout=30";
const TAIL = "-o ServerAliveInterval=15 -o ServerAliveCountMax=4 -o Compression=no -c aes128-gcm@openssh.com";
const GUIDE = `echo 'ocp04.open-contracting.org does not accept the transfer key of ocp23.open-contracting.org for incremental (it expires 12 h after it was granted, or it was removed). Grant it again: pulumi up --replace "$(pulumi stack --show-urns | grep -o '\\''urn:pulumi:[^ ]*::data-support-transfer-grant'\\'')"`;
/** The key check at the start of the pre-sync: the ssh command every copy uses, then the guide. */
async function presyncCheck(config: Record<string, any>): Promise<string | undefined> {
    const run = await runProgram(config);
    return (find(run, "data-support-incremental-copy-presync").inputs.create as string).split("\n").find((l) => l.startsWith("if ! ssh"));
}

test("the copies' ssh: the key, pinned known_hosts, the old server's port; without a jump host no ProxyCommand", async () => {
    assert.equal(
        await presyncCheck(mainConfig()),
        `if ! ${SSH} -o StrictHostKeyChecking=yes -p 22 ${TAIL} incremental@198.51.100.4 true 2>/dev/null; then ${GUIDE}, then run pulumi up again.' >&2; exit 1; fi`,
    );
});

test("the copies' ssh behind a jump host: the old server's port, a ProxyCommand to the jump host's user and port with the same key, pinned", async () => {
    const jumpGuide = ` --replace "$(pulumi stack --show-urns | grep -o '\\''urn:pulumi:[^ ]*::data-support-transfer-jump-grant'\\'')"`;
    assert.equal(
        await presyncCheck(behindJumpHost(KEYS.ed25519)),
        `if ! ${SSH} -o StrictHostKeyChecking=yes -p 2200 -o ProxyCommand='${SSH} -o StrictHostKeyChecking=yes -p 2222 -W %h:%p jump@${BASTION}' ${TAIL} incremental@198.51.100.4 true 2>/dev/null; then ${GUIDE}${jumpGuide}, then run pulumi up again.' >&2; exit 1; fi`,
    );
    // A jump host without a pinned key: accepted on first use (the old server's stays pinned).
    assert.equal(
        await presyncCheck(behindJumpHost()),
        `if ! ${SSH} -o StrictHostKeyChecking=yes -p 2200 -o ProxyCommand='${SSH} -o StrictHostKeyChecking=accept-new -p 2222 -W %h:%p jump@${BASTION}' ${TAIL} incremental@198.51.100.4 true 2>/dev/null; then ${GUIDE}${jumpGuide}, then run pulumi up again.' >&2; exit 1; fi`,
    );
});

test("an old server without a pinned host key: the copies' ssh accepts it on first use", async () => {
    const config = mainConfig();
    config.servers.oldMain.ssh = { user: "root", port: 22 };
    assert.equal(
        await presyncCheck(config),
        `if ! ${SSH} -o StrictHostKeyChecking=accept-new -p 22 ${TAIL} incremental@198.51.100.4 true 2>/dev/null; then ${GUIDE}, then run pulumi up again.' >&2; exit 1; fi`,
    );
});

test("a new server without IPv6: the DNS gate and the transfer key's from= name its IPv4 address alone", async () => {
    const config = mainConfig();
    delete config.servers.newMain.ipv6;
    const run = await runProgram(config);
    assert.equal(find(run, "data-support-collect-dns-dns").inputs.create, "node scripts/gate.mjs dns collect.kingfisher.open-contracting.org 198.51.100.23");
    assert.match(find(run, "data-support-transfer-grant").inputs.create, /^sources=198\.51\.100\.23; /m);
});
