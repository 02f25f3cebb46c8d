// The transfer key (TemporaryAccess) where it runs: the key pair made on the new server, the grant
// on the old server's authorized_keys (restrict, command= the dispatcher, from=, expiry-time in
// the old server's own time zone), its removal, and the detached remover left for when it expires
// (no systemd in the sandbox, as on the test hosts).
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig } from "../support/fixtures";
import { canSandbox, runInSandbox, type SandboxUser, type Step } from "./sandbox";
import { commandOf, programCommands, REMOVER_STARTED, type ProgramCommand } from "./scripts";

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

// sshd runs this instead of whatever the key asks (installed by the grant).
const DISPATCHER = "/usr/local/lib/data-support/ocp04-to-ocp23/transfer-command";
// The old server's own zone (no daylight saving time: +05:30 all year): sshd reads expiry-time in it.
const ZONE = "Asia/Kolkata";
const ZONE_OFFSET_MS = 5.5 * 3600_000;

let commands: Map<string, ProgramCommand>;
let twoHours: Map<string, ProgramCommand>;
before(async () => {
    if (skip) return;
    commands = await programCommands(mainConfig());
    twoHours = await programCommands(mainConfig({ transfer: { keyHours: 2 } }));
});

const show = (file: string): Step => ({ script: `stat -c '%U:%G %a' ${file} ${file.replace(/\/[^/]+$/, "")}; cat ${file}` });
const expiryOf = (line: string) => /expiry-time="(\d{12})"/.exec(line)?.[1] ?? "";
/** YYYYMMDDHHMM in UTC, as `date -u +%Y%m%d%H%M` prints it. */
const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-T:]/g, "").slice(0, 12);

function grantRun(keepNewline: boolean, extra: Step[] = [], program = commands) {
    const keypair = commandOf(program, "data-support-transfer-keypair");
    const grant = commandOf(program, "data-support-transfer-grant");
    const before = Date.now();
    const run = runInSandbox(
        [
            { script: keypair.create },
            { script: grant.create, stdinFrom: { step: 0, keepNewline } },
            show("/home/incremental/.ssh/authorized_keys"),
            show("/var/lib/postgresql/.ssh/authorized_keys"),
            // The options must parse as sshd reads them: ssh-keygen -l reads authorized_keys lines.
            { script: "ssh-keygen -l -f /home/incremental/.ssh/authorized_keys | wc -l" },
            { script: `${REMOVER_STARTED}; pgrep -a -f '^/bin/sh -c sleep'` },
            ...extra,
        ],
        { users: [INCREMENTAL], files: FILES, timeZone: ZONE },
    );
    return { run, before, after: Date.now() };
}

function assertGranted(run: ReturnType<typeof grantRun>["run"], before: number, after: number, hours = 12) {
    assert.equal(run.steps[0].code, 0, run.steps[0].stderr);
    const pubkey = run.steps[0].stdout.trimEnd();
    assert.match(pubkey, new RegExp(`^ssh-ed25519 AAAA[A-Za-z0-9+/]+=* ${COMMENT}$`));
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[1].stdout, `ocp04.open-contracting.org: accepts ${COMMENT} for postgres, incremental for ${hours} h, for the copies only, then removes it\n`);
    const [incMeta, incDirMeta, ...incLines] = run.steps[2].stdout.trimEnd().split("\n");
    assert.equal(incMeta, "incremental:incremental 600");
    assert.equal(incDirMeta, "incremental:incremental 700");
    assert.equal(incLines.length, 2, incLines.join("\n"));
    assert.equal(incLines[0], OTHER_KEY);
    const expiry = expiryOf(incLines[1]);
    assert.equal(incLines[1], `restrict,command="${DISPATCHER}",from="198.51.100.23,2001:db8:d5::23",expiry-time="${expiry}" ${pubkey}`);
    // `hours` from when the grant ran (the minute it ran in, between the clock before and after),
    // as the old server's clock reads in its own zone.
    const from = stamp(before + hours * 3600_000 + ZONE_OFFSET_MS);
    const to = stamp(after + hours * 3600_000 + ZONE_OFFSET_MS);
    assert.ok(expiry >= from && expiry <= to, `expiry ${expiry}, expected ${from} to ${to}`);
    const [pgMeta, pgDirMeta, ...pgLines] = run.steps[3].stdout.trimEnd().split("\n");
    assert.equal(pgMeta, "postgres:postgres 600");
    assert.equal(pgDirMeta, "postgres:postgres 700");
    assert.deepEqual(pgLines, [incLines[1]]);
    assert.equal(run.steps[4].stdout, "2\n");
    // The remover waits detached for the hours (12 h: 43200 s; 2 h: 7200 s), then removes this key's lines.
    const timers = run.steps[5].stdout.trimEnd().split("\n");
    assert.equal(timers.length, 1, timers.join("\n"));
    assert.match(timers[0], new RegExp(`^\\d+ /bin/sh -c sleep ${hours === 12 ? "43200" : "7200"}; .*grep -vF ${COMMENT.replaceAll(".", "\\.")}`));
}

test("grant: each user accepts the key with restrict, from= the new server's addresses and a 12 h expiry; others' keys stay", { skip }, () => {
    const { run, before, after } = grantRun(true);
    assertGranted(run, before, after);
});

test("transfer.keyHours: the key is accepted for that many hours, and the remover waits as long", { skip }, () => {
    const { run, before, after } = grantRun(true, [], twoHours);
    assertGranted(run, before, after, 2);
});

test("the dispatcher sshd runs for the key is installed and refuses a command that is not a copy's; `true` (the key check) runs", { skip }, () => {
    const { run } = grantRun(true, [
        { script: `stat -c '%U %a' ${DISPATCHER}; bash -n ${DISPATCHER} && echo parses` },
        { script: `SSH_ORIGINAL_COMMAND='rm -rf /' runuser -u incremental -- ${DISPATCHER}` },
        { script: `SSH_ORIGINAL_COMMAND=true runuser -u incremental -- ${DISPATCHER}` },
    ]);
    assert.equal(run.steps[6].stdout, "root 755\nparses\n");
    assert.equal(run.steps[7].code, 1);
    assert.match(run.steps[7].stderr, /^incremental@[^:]+: the data-support transfer key may run only the migration's copies; refused: rm -rf \/\n$/);
    assert.deepEqual([run.steps[8].code, run.steps[8].stdout, run.steps[8].stderr], [0, "", ""]);
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
    ["the remover the grant left", "", () => `${REMOVER_STARTED}; mapfile -d '' -t argv < /proc/$pid/cmdline; kill $pid; /bin/sh -c "\${argv[2]#sleep 43200; }"`],
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

test("forget deletes the private key, its public half and known_hosts on the new server, once; the key pair then makes no new key", { skip }, () => {
    const keypair = commandOf(commands, "data-support-transfer-keypair");
    const forget = commandOf(commands, "data-support-transfer-forget");
    const dir = "/var/lib/data-support/ocp04-to-ocp23";
    const run = runInSandbox([
        { script: keypair.create },
        { script: `touch ${dir}/other; ls -A ${dir}` },
        { script: forget.create },
        { script: `ls -A ${dir}` },
        { script: keypair.create },
        { script: `ls -A ${dir}` },
        { script: forget.create },
    ]);
    assert.equal(run.steps[0].code, 0, run.steps[0].stderr);
    assert.equal(run.steps[1].stdout, "known_hosts\nother\ntransfer_ed25519\ntransfer_ed25519.pub\n");
    assert.equal(run.steps[2].code, 0, run.steps[2].stderr);
    assert.equal(run.steps[2].stdout, "ocp23.open-contracting.org: the transfer key is deleted\nforget-transfer-key: done on ocp23.open-contracting.org\n");
    // Only the key's three files go; the marker says it was forgotten.
    assert.equal(run.steps[3].stdout, "forget-transfer-key.done\nforget-transfer-key.done.lock\nother\n");
    // A later update of the key pair (say, a changed comment) must not make a key nothing deletes.
    assert.deepEqual([run.steps[4].code, run.steps[4].stdout, run.steps[4].stderr], [0, "", "ocp23.open-contracting.org: the transfer key was used and deleted; no new one\n"]);
    assert.equal(run.steps[5].stdout, "forget-transfer-key.done\nforget-transfer-key.done.lock\nother\n");
    assert.match(run.steps[6].stdout, /^forget-transfer-key: already done on ocp23\.open-contracting\.org at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$/);
});
