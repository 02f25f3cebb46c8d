// The main's side of replication where it runs (ReplicationSource): its pg_hba.conf edit, with
// Salt's own lines kept as they are, another replica's block replaced, the reload only on a change,
// the role and slot recorded, and the removal. `psql` and `pg_ctlcluster` are recording stand-ins
// (no PostgreSQL runs in the sandbox); the SQL itself runs against the real PostgreSQL 15 of the test
// hosts (test/e2e/replica.test.ts). Expected values written out.
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig, withReplica } from "../support/fixtures";
import { canSandbox, POSTGRES_USERS, runInSandbox } from "./sandbox";
import { commandOf, programCommands, type ProgramCommand } from "./scripts";

const skip = canSandbox() || undefined;
const HBA = "/etc/postgresql/15/main/pg_hba.conf";
// As salt/postgres/files/pg_hba.conf (deploy afaedf6b) leaves it, before any replica.
const SALT_HBA = `local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
hostssl all             all             0.0.0.0/0               scram-sha-256
`;
const OUR_BLOCK = `# BEGIN data-support replication (ocp24.open-contracting.org)
hostssl replication replica 198.51.100.24/32 scram-sha-256
hostssl replication replica 2001:db8:d5::24/128 scram-sha-256
# END data-support replication (ocp24.open-contracting.org)
`;

let source: ProgramCommand;
before(async () => {
    if (skip) return;
    source = commandOf(await programCommands(withReplica(mainConfig())), "data-support-replication-source");
});

function run(hba: string, steps: { script: string; stdin?: string }[], state?: string) {
    return runInSandbox([...steps, { script: `cat ${HBA}; stat -c '%U:%G %a' ${HBA}; cat /var/lib/data-support/replication 2>/dev/null || echo 'no state'` }], {
        users: POSTGRES_USERS,
        tmpfs: ["/etc/postgresql"],
        files: { [HBA]: hba, ...(state ? { "/var/lib/data-support/replication": state } : {}) },
        recorders: ["pg_ctlcluster"],
        psql: "0\n",
    });
}

test("apply: Salt's lines kept, our block after them, reload once; a second apply changes nothing", { skip }, () => {
    const result = run(SALT_HBA, [{ script: source.create, stdin: source.stdin }, { script: source.create, stdin: source.stdin }]);
    for (const step of result.steps.slice(0, 2)) assert.equal(step.code, 0, step.stderr);
    assert.equal(result.steps[2].stdout, `${SALT_HBA}${OUR_BLOCK}postgres:postgres 640\nreplica replica1\n`);
    assert.deepEqual(result.calls.filter((c) => c.includes("pg_ctlcluster")), ["root@/: pg_ctlcluster 15 main reload"]);
    // The password went to psql on its stdin only: no call's argv holds it.
    assert.ok(source.stdin?.trim().length, "the source has the password on stdin");
    assert.ok(result.calls.every((c) => !c.includes(source.stdin!.trim())), result.calls.join("\n"));
});

test("apply: another replica's block (a replica replaced) is replaced by ours; lines after it kept", { skip }, () => {
    const other = "# BEGIN data-support replication (ocp99.open-contracting.org)\nhostssl replication replica 198.51.100.99/32 scram-sha-256\n# END data-support replication (ocp99.open-contracting.org)\n";
    const after = "host    kingfisher_collect  kingfisher_collect  10.0.0.1/32  scram-sha-256\n";
    const result = run(`${SALT_HBA}${other}${after}`, [{ script: source.create, stdin: source.stdin }]);
    assert.equal(result.steps[0].code, 0, result.steps[0].stderr);
    assert.equal(result.steps[1].stdout, `${SALT_HBA}${after}${OUR_BLOCK}postgres:postgres 640\nreplica replica1\n`);
    assert.deepEqual(result.calls.filter((c) => c.includes("pg_ctlcluster")), ["root@/: pg_ctlcluster 15 main reload"]);
});

test("delete: our block gone, Salt's lines as they were, reload, the record removed", { skip }, () => {
    const result = run(`${SALT_HBA}${OUR_BLOCK}`, [{ script: source.delete! }], "replica replica1\n");
    assert.equal(result.steps[0].code, 0, result.steps[0].stderr);
    assert.equal(result.steps[1].stdout, `${SALT_HBA}postgres:postgres 640\nno state\n`);
    assert.deepEqual(result.calls.filter((c) => c.includes("pg_ctlcluster")), ["root@/: pg_ctlcluster 15 main reload"]);
});
