// The transfer key (TemporaryAccess) where it runs: the key pair made on the new server, the grant
// on the old server's authorized_keys (restrict, from=, expiry-time), its removal, and the
// detached remover left for when it expires (no systemd in the sandbox, as on the test hosts).
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig } from "../support/fixtures";
import { canSandbox, runInSandbox, type SandboxUser, type Step } from "./sandbox";
import { commandOf, programCommands, type ProgramCommand } from "./scripts";

const skip = canSandbox() || undefined;
const INCREMENTAL: SandboxUser = { name: "incremental", uid: 1010, home: "/home/incremental" };
const COMMENT = "data-support-ocp04-to-ocp23@ocp23.open-contracting.org";
const OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBsK0ULbHWaUxRxAtP+rNtpYUFrDF1ZS5I6+uc8bXQ9E someone@laptop";
// One grant keeps one line per key: a line left by an earlier grant of this key is replaced.
const STALE = `restrict,from="192.0.2.1",expiry-time="202001010000" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBsK0ULbHWaUxRxAtP+rNtpYUFrDF1ZS5I6+uc8bXQ9E ${COMMENT}`;
const FILES = {
    "/home/incremental/.ssh/authorized_keys": `${OTHER_KEY}\n${STALE}\n`,
    "/var/lib/postgresql/.ssh/authorized_keys": `${STALE}\n`,
};

let commands: Map<string, ProgramCommand>;
before(async () => {
    if (skip) return;
    commands = await programCommands(mainConfig());
});

const show = (file: string): Step => ({ script: `stat -c '%U:%G %a' ${file} ${file.replace(/\/[^/]+$/, "")}; cat ${file}` });
const expiryOf = (line: string) => /expiry-time="(\d{12})"/.exec(line)?.[1] ?? "";
/** YYYYMMDDHHMM in UTC, as `date -u +%Y%m%d%H%M` prints it. */
const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-T:]/g, "").slice(0, 12);

function grantRun(keepNewline: boolean, extra: Step[] = []) {
    const keypair = commandOf(commands, "data-support-transfer-keypair");
    const grant = commandOf(commands, "data-support-transfer-grant");
    const before = Date.now();
    const run = runInSandbox(
        [
            { script: keypair.create },
            { script: grant.create, stdinFrom: { step: 0, keepNewline } },
            show("/home/incremental/.ssh/authorized_keys"),
            show("/var/lib/postgresql/.ssh/authorized_keys"),
            // The options must parse as sshd reads them: ssh-keygen -l reads authorized_keys lines.
            { script: "ssh-keygen -l -f /home/incremental/.ssh/authorized_keys | wc -l" },
            { script: "pgrep -a -f '^/bin/sh -c sleep'" },
            ...extra,
        ],
        { users: [INCREMENTAL], files: FILES },
    );
    return { run, before, after: Date.now() };
}

function assertGranted(run: ReturnType<typeof grantRun>["run"], before: number, after: number) {
    assert.equal(run.steps[0].code, 0, run.steps[0].stderr);
    const pubkey = run.steps[0].stdout.trimEnd();
    assert.match(pubkey, new RegExp(`^ssh-ed25519 AAAA[A-Za-z0-9+/]+=* ${COMMENT}$`));
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[1].stdout, `ocp04.open-contracting.org: accepts ${COMMENT} for postgres, incremental for 12 h, then removes it\n`);
    const [incMeta, incDirMeta, ...incLines] = run.steps[2].stdout.trimEnd().split("\n");
    assert.equal(incMeta, "incremental:incremental 600");
    assert.equal(incDirMeta, "incremental:incremental 700");
    assert.equal(incLines.length, 2, incLines.join("\n"));
    assert.equal(incLines[0], OTHER_KEY);
    const expiry = expiryOf(incLines[1]);
    assert.equal(incLines[1], `restrict,from="198.51.100.23,2001:db8:d5::23",expiry-time="${expiry}" ${pubkey}`);
    // 12 hours from when the grant ran (the minute it ran in, between the clock before and after).
    assert.ok(expiry >= stamp(before + 12 * 3600_000) && expiry <= stamp(after + 12 * 3600_000), `expiry ${expiry}`);
    const [pgMeta, pgDirMeta, ...pgLines] = run.steps[3].stdout.trimEnd().split("\n");
    assert.equal(pgMeta, "postgres:postgres 600");
    assert.equal(pgDirMeta, "postgres:postgres 700");
    assert.deepEqual(pgLines, [incLines[1]]);
    assert.equal(run.steps[4].stdout, "2\n");
    // The remover waits detached for 12 h (43200 s), then removes this key's lines.
    const timers = run.steps[5].stdout.trimEnd().split("\n");
    assert.equal(timers.length, 1, timers.join("\n"));
    assert.match(timers[0], new RegExp(`^\\d+ /bin/sh -c sleep 43200; .*grep -vF ${COMMENT.replaceAll(".", "\\.")}`));
}

test("grant: each user accepts the key with restrict, from= the new server's addresses and a 12 h expiry; others' keys stay", { skip }, () => {
    const { run, before, after } = grantRun(true);
    assertGranted(run, before, after);
});

// The provider hands the key pair's stdout over with its final newline removed.
test("grant with the key as the provider hands it over (stdout without its final newline)", { skip }, () => {
    const { run, before, after } = grantRun(false);
    assertGranted(run, before, after);
});

test("a grant run again (update) keeps one line per user and one remover", { skip }, () => {
    const grant = commandOf(commands, "data-support-transfer-grant");
    const { run } = grantRun(true, [
        { script: grant.update ?? "false", stdinFrom: { step: 0, keepNewline: true } },
        { script: "grep -c data-support- /home/incremental/.ssh/authorized_keys /var/lib/postgresql/.ssh/authorized_keys; pgrep -f '^/bin/sh -c sleep' | wc -l" },
    ]);
    assert.equal(run.steps[6].code, 0, run.steps[6].stderr);
    assert.equal(run.steps[7].stdout, "/home/incremental/.ssh/authorized_keys:1\n/var/lib/postgresql/.ssh/authorized_keys:1\n1\n");
});

test("a key on stdin that is not the transfer key is refused and nothing changes", { skip }, () => {
    const grant = commandOf(commands, "data-support-transfer-grant");
    const run = runInSandbox([{ script: grant.create, stdin: `${OTHER_KEY}\n` }, { script: "cat /home/incremental/.ssh/authorized_keys" }], { users: [INCREMENTAL], files: FILES });
    assert.equal(run.steps[0].code, 1);
    assert.equal(run.steps[0].stderr, "unexpected public key on stdin\n");
    assert.equal(run.steps[1].stdout, FILES["/home/incremental/.ssh/authorized_keys"]);
});

for (const [what, name, pick] of [
    ["the revoke step", "data-support-transfer-revoke", (c: ProgramCommand) => c.create],
    ["deleting the grant", "data-support-transfer-grant", (c: ProgramCommand) => c.delete],
    // What the detached remover runs when the 12 h are up (by /bin/sh, dash on Debian).
    ["the remover the grant left", "", () => `pid=$(pgrep -f '^/bin/sh -c sleep'); mapfile -d '' -t argv < /proc/$pid/cmdline; kill $pid; /bin/sh -c "\${argv[2]#sleep 43200; }"`],
] as const) {
    test(`${what} removes the key's lines for every user and leaves other keys, owner and mode`, { skip }, () => {
        const revoke = pick(name ? commandOf(commands, name) : { create: "" });
        assert.ok(revoke);
        const { run } = grantRun(true, [{ script: revoke }, show("/home/incremental/.ssh/authorized_keys"), show("/var/lib/postgresql/.ssh/authorized_keys")]);
        assert.equal(run.steps[6].code, 0, run.steps[6].stderr);
        assert.equal(run.steps[7].stdout, `incremental:incremental 600\nincremental:incremental 700\n${OTHER_KEY}\n`);
        assert.equal(run.steps[8].stdout, "postgres:postgres 600\npostgres:postgres 700\n");
    });
}

test("the key pair: made once, known_hosts pins the old server's host key, delete removes all three files", { skip }, () => {
    const keypair = commandOf(commands, "data-support-transfer-keypair");
    const dir = "/var/lib/data-support/ocp04-to-ocp23";
    const run = runInSandbox([
        { script: keypair.create },
        { script: keypair.create },
        { script: `cat ${dir}/known_hosts; stat -c '%a' ${dir} ${dir}/transfer_ed25519` },
        { script: keypair.delete ?? "false" },
        { script: `ls -A ${dir}` },
    ]);
    assert.equal(run.steps[0].code, 0, run.steps[0].stderr);
    assert.equal(run.steps[1].stdout, run.steps[0].stdout, "a second run must not make a new key");
    assert.equal(run.steps[2].stdout, "198.51.100.4 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIPLfgb8NCsq8iWwOKD94KbEioHv1Pou5MsJjvBtNZ01\n700\n600\n");
    assert.equal(run.steps[3].code, 0, run.steps[3].stderr);
    assert.equal(run.steps[4].stdout, "");
});
