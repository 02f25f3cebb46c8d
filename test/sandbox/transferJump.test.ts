// The transfer key behind a jump host, and its timer where systemd runs, in the sandbox: the key
// pair pins both host keys at their ports, the old server's grant takes from= the jump host's
// addresses as the old server resolves them (a private /etc/hosts), the jump host's grant lets the
// key through to the old server's SSH port only, and its revokes remove it. With /run/systemd/system
// present the grants hand their remover to systemd-run (a stand-in that keeps its arguments; the
// test then runs them as the timer would). What only a real systemd can show is left to the servers:
// that the timer fires after the hours, and that `systemctl stop`/`reset-failed` clear a unit of an
// earlier grant so that systemd-run accepts the unit name again (the test hosts run no systemd).
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { HOST_KEY, KEYS, mainConfig } from "../support/fixtures";
import { canSandbox, runInSandbox, type SandboxUser, type Step } from "./sandbox";
import { commandOf, programCommands, REMOVER_STARTED, type ProgramCommand } from "./scripts";

const skip = canSandbox() || undefined;
const JUMP: SandboxUser = { name: "jump", uid: 1020, home: "/home/jump" };
const INCREMENTAL: SandboxUser = { name: "incremental", uid: 1010, home: "/home/incremental" };
const BASTION = "bastion.open-contracting.org";
const COMMENT = "data-support-ocp04-to-ocp23@ocp23.open-contracting.org";
const DISPATCHER = "/usr/local/lib/data-support/ocp04-to-ocp23/transfer-command";
const OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBsK0ULbHWaUxRxAtP+rNtpYUFrDF1ZS5I6+uc8bXQ9E someone@laptop";
// As the old server resolves the jump host (the key arrives from these addresses).
const HOSTS = `127.0.0.1 localhost\n203.0.113.7 ${BASTION}\n2001:db8:7::7 ${BASTION}\n`;

let jumped: Map<string, ProgramCommand>;
let plain: Map<string, ProgramCommand>;
before(async () => {
    if (skip) return;
    const config = mainConfig();
    config.servers.oldMain.ssh = { user: "root", port: 2200, hostKey: HOST_KEY, jumpHost: { host: BASTION, port: 2222, user: "jump", hostKey: KEYS.ed25519 } };
    jumped = await programCommands(config);
    plain = await programCommands(mainConfig());
});

const keypair = (): Step => ({ script: commandOf(jumped, "data-support-transfer-keypair").create });
const grantOf = (name: string, program = jumped): Step => ({ script: commandOf(program, name).create, stdinFrom: { step: 0 } });
const keyLines = (file: string): Step => ({ script: `stat -c '%U:%G %a' ${file}; grep -h data-support- ${file} | sed -E 's/expiry-time="[0-9]{12}"/expiry-time="EXPIRY"/'` });
const JUMP_KEYS = "/home/jump/.ssh/authorized_keys";

test("behind a jump host the key pair pins the old server's key at its port and the jump host's at its", { skip }, () => {
    const run = runInSandbox([keypair(), { script: "cat /var/lib/data-support/ocp04-to-ocp23/known_hosts" }]);
    assert.equal(run.steps[0].code, 0, run.steps[0].stderr);
    assert.equal(run.steps[1].stdout, `[198.51.100.4]:2200 ${HOST_KEY}\n[${BASTION}]:2222 ${KEYS.ed25519}\n`);
});

test("nothing pinned is nothing written: a jump host without hostKey, an old server without one (accepted on first use)", { skip }, async () => {
    const unpinnedJump = mainConfig();
    unpinnedJump.servers.oldMain.ssh = { user: "root", port: 2200, hostKey: HOST_KEY, jumpHost: { host: BASTION, port: 2222, user: "jump" } };
    const unpinnedOld = mainConfig();
    unpinnedOld.servers.oldMain.ssh = { user: "root", port: 22 };
    const known = "cat /var/lib/data-support/ocp04-to-ocp23/known_hosts; echo end";
    const run = runInSandbox([
        { script: commandOf(await programCommands(unpinnedJump), "data-support-transfer-keypair").create },
        { script: known },
        { script: "rm -rf /var/lib/data-support" },
        { script: commandOf(await programCommands(unpinnedOld), "data-support-transfer-keypair").create },
        { script: known },
    ]);
    assert.equal(run.steps[0].code, 0, run.steps[0].stderr);
    assert.equal(run.steps[1].stdout, `[198.51.100.4]:2200 ${HOST_KEY}\nend\n`);
    assert.equal(run.steps[3].code, 0, run.steps[3].stderr);
    assert.equal(run.steps[4].stdout, "end\n");
});

test("the old server's grant accepts the key from the jump host's addresses, as the old server resolves them", { skip }, () => {
    const run = runInSandbox([keypair(), grantOf("data-support-transfer-grant"), keyLines("/home/incremental/.ssh/authorized_keys")], { users: [INCREMENTAL], hosts: HOSTS });
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    const pubkey = run.steps[0].stdout.trimEnd();
    assert.equal(run.steps[2].stdout, `incremental:incremental 600\nrestrict,command="${DISPATCHER}",from="2001:db8:7::7,203.0.113.7",expiry-time="EXPIRY" ${pubkey}\n`);
});

test("a jump host the old server cannot resolve stops the grant with a message, before any key is written", { skip }, () => {
    const run = runInSandbox([keypair(), grantOf("data-support-transfer-grant"), { script: "ls -A /home/incremental" }], { users: [INCREMENTAL], hosts: "127.0.0.1 localhost\n" });
    assert.deepEqual([run.steps[1].code, run.steps[1].stdout, run.steps[1].stderr], [1, "", `cannot resolve the jump host ${BASTION} on ocp04.open-contracting.org\n`]);
    assert.equal(run.steps[2].stdout, "");
});

test("the jump host's grant: a forwarding to the old server's SSH port only, from the new server, for 12 h; others' keys stay", { skip }, () => {
    const run = runInSandbox([keypair(), grantOf("data-support-transfer-jump-grant"), keyLines(JUMP_KEYS), { script: `grep -vc data-support- ${JUMP_KEYS}; stat -c '%U %a' /home/jump/.ssh` }, { script: `${REMOVER_STARTED}; pgrep -a -f '^/bin/sh -c sleep'` }], {
        users: [JUMP],
        files: { [JUMP_KEYS]: `${OTHER_KEY}\n` },
    });
    assert.deepEqual([run.steps[1].code, run.steps[1].stdout, run.steps[1].stderr], [0, `${BASTION}: lets ${COMMENT} through to 198.51.100.4:2200 for 12 h\n`, ""]);
    const pubkey = run.steps[0].stdout.trimEnd();
    assert.equal(run.steps[2].stdout, `jump:root 600\nrestrict,port-forwarding,permitopen="198.51.100.4:2200",command="/bin/false",from="198.51.100.23,2001:db8:d5::23",expiry-time="EXPIRY" ${pubkey}\n`);
    assert.equal(run.steps[3].stdout, "1\njump 700\n");
    assert.match(run.steps[4].stdout, new RegExp(`^\\d+ /bin/sh -c sleep 43200; f="\\$\\(getent passwd jump \\| cut -d: -f6\\)/\\.ssh/authorized_keys"; .*grep -vF ${COMMENT.replaceAll(".", "\\.")}[^\\n]*\\n$`));
});

test("a jump host without the configured user stops its grant with a message naming both", { skip }, () => {
    const run = runInSandbox([keypair(), grantOf("data-support-transfer-jump-grant")]);
    assert.deepEqual([run.steps[1].code, run.steps[1].stdout, run.steps[1].stderr], [1, "", `${BASTION}: no user jump\n`]);
});

for (const [what, pick] of [
    ["the jump host's revoke", (p: Map<string, ProgramCommand>) => commandOf(p, "data-support-transfer-jump-revoke").create],
    ["deleting the jump host's grant", (p: Map<string, ProgramCommand>) => commandOf(p, "data-support-transfer-jump-grant").delete ?? "false"],
    ["the remover the jump host's grant left", () => `${REMOVER_STARTED}; mapfile -d '' -t argv < /proc/$pid/cmdline; kill $pid; /bin/sh -c "\${argv[2]#sleep 43200; }"`],
] as const) {
    test(`${what} removes the key's line and leaves other keys`, { skip }, () => {
        const run = runInSandbox([keypair(), grantOf("data-support-transfer-jump-grant"), { script: pick(jumped) }, { script: `stat -c '%U %a' ${JUMP_KEYS}; cat ${JUMP_KEYS}` }], {
            users: [JUMP],
            files: { [JUMP_KEYS]: `${OTHER_KEY}\n` },
        });
        assert.equal(run.steps[2].code, 0, run.steps[2].stderr);
        assert.equal(run.steps[3].stdout, `jump 600\n${OTHER_KEY}\n`);
    });
}

test("once revoked after the copies, the jump host's grant does not open it again", { skip }, () => {
    const run = runInSandbox([keypair(), { script: commandOf(jumped, "data-support-transfer-jump-revoke").create }, grantOf("data-support-transfer-jump-grant"), { script: `cat ${JUMP_KEYS}` }], {
        users: [JUMP],
        files: { [JUMP_KEYS]: `${OTHER_KEY}\n` },
    });
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.deepEqual([run.steps[2].code, run.steps[2].stdout], [0, `${BASTION}: the transfer key was revoked after the copies; not granted again\n`]);
    assert.equal(run.steps[3].stdout, `${OTHER_KEY}\n`);
});

// systemd-run stand-in: keeps its arguments (NUL-separated) for the test to read and run.
const SYSTEMD = `mkdir -p /run/systemd/system
printf '#!/bin/bash\\nprintf "%%s\\\\0" "$@" > /run/systemd-run.args\\n' > /usr/local/bin/systemd-run`;
const TIMER_ARGS = `mapfile -d '' -t a < /run/systemd-run.args; printf '%s\\n' "\${a[@]:0:5}"`;
const FIRE = `mapfile -d '' -t a < /run/systemd-run.args; "\${a[@]:3}"`;

test("where systemd runs, the grant's remover goes to a transient timer (systemd-run) after the hours; fired, it removes the key and the dispatcher", { skip }, () => {
    const keys = "/home/incremental/.ssh/authorized_keys";
    const run = runInSandbox(
        [
            keypair(),
            { script: SYSTEMD },
            grantOf("data-support-transfer-grant", plain),
            { script: TIMER_ARGS },
            { script: `pgrep -c -f '^/bin/sh -c sleep'; grep -c data-support- ${keys}` },
            { script: FIRE },
            { script: `cat ${keys}; ls /usr/local/lib/data-support` },
        ],
        { users: [INCREMENTAL], files: { [keys]: `${OTHER_KEY}\n` } },
    );
    assert.equal(run.steps[2].code, 0, run.steps[2].stderr);
    assert.equal(run.steps[3].stdout, "--quiet\n--unit=data-support-revoke-ocp04-to-ocp23\n--on-active=12h\n/bin/sh\n-c\n");
    // No detached sleep besides the timer.
    assert.equal(run.steps[4].stdout, "0\n1\n");
    // A timer of an earlier grant is stopped first: systemd-run refuses a unit name in use.
    assert.deepEqual(run.calls, ["root@/: systemctl stop data-support-revoke-ocp04-to-ocp23.timer", "root@/: systemctl reset-failed data-support-revoke-ocp04-to-ocp23"]);
    assert.equal(run.steps[5].code, 0, run.steps[5].stderr);
    assert.equal(run.steps[6].stdout, `${OTHER_KEY}\n`);
});

test("where systemd runs, the jump host's grant hands its remover to systemd-run too; fired, it removes the key", { skip }, () => {
    const run = runInSandbox([keypair(), { script: SYSTEMD }, grantOf("data-support-transfer-jump-grant"), { script: TIMER_ARGS }, { script: FIRE }, { script: `cat ${JUMP_KEYS}; pgrep -c -f '^/bin/sh -c sleep'` }], {
        users: [JUMP],
        files: { [JUMP_KEYS]: `${OTHER_KEY}\n` },
    });
    assert.equal(run.steps[2].code, 0, run.steps[2].stderr);
    assert.equal(run.steps[3].stdout, "--quiet\n--unit=data-support-revoke-ocp04-to-ocp23\n--on-active=12h\n/bin/sh\n-c\n");
    assert.deepEqual(run.calls, ["root@/: systemctl stop data-support-revoke-ocp04-to-ocp23.timer", "root@/: systemctl reset-failed data-support-revoke-ocp04-to-ocp23"]);
    assert.equal(run.steps[4].code, 0, run.steps[4].stderr);
    assert.equal(run.steps[5].stdout, `${OTHER_KEY}\n0\n`);
});
