// The WAL archiving check where it runs (HaltJobs, before anything is halted): the old server's
// archive_command read, handed to the new server's check as the provider hands stdout to stdin, and
// the check's answer for each state of the new server's archiving. `psql` is a recording stand-in
// that answers each call in turn (no PostgreSQL runs in the sandbox); the same check runs against the
// real PostgreSQL 15 and a pgBackRest stand-in on the test hosts (test/e2e/gates.test.ts). The
// archive_command is Salt's (salt/postgres/files/conf/shared.conf at deploy afaedf6b:
// `pgbackrest --stanza=<postgres.backup.stanza> archive-push %p`). Expected values written out.
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig } from "../support/fixtures";
import { canSandbox, POSTGRES_USERS, runInSandbox } from "./sandbox";
import { commandOf, programCommands, type ProgramCommand } from "./scripts";

const skip = canSandbox() || undefined;
const SETTINGS = "postgres@/: psql -X -At -v ON_ERROR_STOP=1 -c SELECT current_setting('archive_mode') || ' ' || current_setting('archive_command')";
const ARCHIVER =
    "postgres@/: psql -X -At -v ON_ERROR_STOP=1 -c SELECT failed_count || ' failure(s), the last at ' || last_failed_time || ' of ' || coalesce(last_failed_wal, '?') FROM pg_stat_archiver WHERE last_failed_time IS NOT NULL AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)";
const OLD = "on pgbackrest --stanza=kingfisher-2023 archive-push %p\n";

let read: ProgramCommand;
let check: ProgramCommand;
before(async () => {
    if (skip) return;
    const commands = await programCommands(mainConfig());
    read = commandOf(commands, "data-support-halt-old-wal-archiving");
    check = commandOf(commands, "data-support-halt-wal-archiving-check");
});

/** The old server's read, then the new server's check with its stdout on stdin; psql answers in turn. */
function run(answers: string[]) {
    return runInSandbox([{ script: read.create }, { script: check.create, stdinFrom: { step: 0 } }], { users: POSTGRES_USERS, psql: answers });
}

test("the new server archives into a stanza of its own, without failures: the check passes, naming both stanzas", { skip }, () => {
    const result = run([OLD, "on pgbackrest --stanza=kingfisher-ocp23 archive-push %p\n", ""]);
    assert.equal(result.steps[0].stdout, OLD);
    assert.equal(result.steps[1].code, 0, result.steps[1].stderr);
    assert.equal(result.steps[1].stdout, "ocp23.open-contracting.org: WAL archived into stanza kingfisher-ocp23; the old server's is kingfisher-2023\n");
    assert.deepEqual(result.calls, [SETTINGS, SETTINGS, ARCHIVER]);
});

test("the new server archives into the old server's stanza (the runbook's pillar as it is): the check stops, naming the pillar key", { skip }, () => {
    const result = run([OLD, OLD, ""]);
    assert.equal(result.steps[1].code, 1);
    assert.equal(result.steps[1].stdout, "");
    assert.equal(
        result.steps[1].stderr,
        "ocp23.open-contracting.org: PostgreSQL archives its WAL into the pgBackRest stanza kingfisher-2023 (archive_command), the stanza of the old server ocp04.open-contracting.org: pgBackRest refuses the WAL of another cluster, and WAL piles up in pg_wal. In the new server's pillar, set postgres.backup.stanza to a stanza of its own (e.g. kingfisher-<year>), deploy the new server with Salt, create the stanza (as postgres: pgbackrest --stanza=<name> stanza-create), then run pulumi up again.\n",
    );
    // It stops before asking the archiver.
    assert.deepEqual(result.calls, [SETTINGS, SETTINGS]);
});

test("archiving fails on the new server: the check stops, quoting pg_stat_archiver", { skip }, () => {
    const failing = "3 failure(s), the last at 2026-12-01 21:04:05.123+00 of 000000010000000000000007\n";
    const result = run([OLD, "on pgbackrest --stanza=kingfisher-ocp23 archive-push %p\n", failing]);
    assert.equal(result.steps[1].code, 1);
    assert.equal(
        result.steps[1].stderr,
        "ocp23.open-contracting.org: WAL archiving fails (pg_stat_archiver: 3 failure(s), the last at 2026-12-01 21:04:05.123+00 of 000000010000000000000007), so WAL piles up in pg_wal. Check the stanza in archive_command (pillar postgres.backup.stanza) exists (as postgres: pgbackrest --stanza=<name> check), or fix the repository, then run pulumi up again.\n",
    );
    assert.deepEqual(result.calls, [SETTINGS, SETTINGS, ARCHIVER]);
});

test("archiving off on the new server: nothing to pile up, the check passes at once", { skip }, () => {
    const result = run([OLD, "off (disabled)\n"]);
    assert.equal(result.steps[1].code, 0, result.steps[1].stderr);
    assert.equal(result.steps[1].stdout, "ocp23.open-contracting.org: WAL archiving is off\n");
    assert.deepEqual(result.calls, [SETTINGS, SETTINGS]);
});

test("archiving off on the old server, a stanza on the new: the check passes, the old server's stanza none", { skip }, () => {
    const result = run(["off (disabled)\n", "on pgbackrest --stanza=kingfisher-ocp23 archive-push %p\n", ""]);
    assert.equal(result.steps[1].code, 0, result.steps[1].stderr);
    assert.equal(result.steps[1].stdout, "ocp23.open-contracting.org: WAL archived into stanza kingfisher-ocp23; the old server's is none\n");
});
