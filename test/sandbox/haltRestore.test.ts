// Steps 2 and 8 run where they run: the halt's and the restore's shell text, taken from the
// program, edits real crontabs (Debian's cron `crontab`) and cron.d files in a sandbox.
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig } from "../support/fixtures";
import { canSandbox, runInSandbox, type SandboxUser } from "./sandbox";
import { commandOf, programCommands, type ProgramCommand } from "./scripts";

const skip = canSandbox() || undefined;
const DEPLOYER: SandboxUser = { name: "deployer", uid: 1005, home: "/home/deployer" };
const DIR = "/var/lib/data-support/ocp04-to-ocp23";

// The deployer's crontab as Salt writes it (design.md): MAILTO, then identified entries.
const DEPLOYER_CRONTAB = `MAILTO=sysadmin@open-contracting.org
# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_STALE_COLLECTIONS
0 3 1 * * cd /srv/deploy/kingfisher-process && docker compose run --rm cron python manage.py stale
# SALT_CRON_IDENTIFIER:PELICAN_BACKEND_UPDATE_EXCHANGE_RATES
17 */12 * * * cd /srv/deploy/pelican-backend && docker compose run --rm --name pelican-backend-cron cron python manage.py update-exchange-rates
# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_EMPTY_COLLECTIONS
0 4 1 * * cd /srv/deploy/kingfisher-process && docker compose run --rm cron python manage.py empty
`;
const BACKUPS = "MAILTO=root\n0 2 * * * postgres pgbackrest backup --stanza=kingfisher\n";

let commands: Map<string, ProgramCommand>;
before(async () => {
    if (skip) return;
    commands = await programCommands(mainConfig({ docker: { deployDir: "/srv/deploy", apps: ["kingfisher-process", "pelican-backend", "pelican-frontend"] } }));
});

const install = (user: string, text: string) => ({ script: `crontab -u ${user} - <<'CRONTAB'\n${text}CRONTAB` });
const list = (user: string) => ({ script: `crontab -l -u ${user}` });

test("halt on the new server: the exchange-rates entry goes (identifier and job line), kept aside; backups kept aside", { skip }, () => {
    const halt = commandOf(commands, "data-support-halt-new-server");
    const run = runInSandbox(
        [
            install("deployer", DEPLOYER_CRONTAB),
            { script: halt.create },
            list("deployer"),
            { script: `cat ${DIR}/exchange-rates.cron; echo ---; cat ${DIR}/postgres_backups.cron; echo ---; ls /etc/cron.d; cat ${DIR}/halt-new-server.done` },
        ],
        { users: [DEPLOYER], files: { "/etc/cron.d/postgres_backups": BACKUPS } },
    );
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[1].stdout, "halt-new-server: done on ocp23.open-contracting.org\n");
    assert.equal(
        run.steps[2].stdout,
        `MAILTO=sysadmin@open-contracting.org
# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_STALE_COLLECTIONS
0 3 1 * * cd /srv/deploy/kingfisher-process && docker compose run --rm cron python manage.py stale
# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_EMPTY_COLLECTIONS
0 4 1 * * cd /srv/deploy/kingfisher-process && docker compose run --rm cron python manage.py empty
`,
    );
    const [saved, backups, rest] = run.steps[3].stdout.split("---\n");
    assert.equal(
        saved,
        `# SALT_CRON_IDENTIFIER:PELICAN_BACKEND_UPDATE_EXCHANGE_RATES
17 */12 * * * cd /srv/deploy/pelican-backend && docker compose run --rm --name pelican-backend-cron cron python manage.py update-exchange-rates
`,
    );
    assert.equal(backups, BACKUPS);
    // /etc/cron.d is empty now; then the marker's date.
    assert.match(rest, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$/);
});

test("halt on the old server: backups and the exchange-rates entry stop, every compose app goes down as deployer", { skip }, () => {
    const halt = commandOf(commands, "data-support-halt-old-server");
    const run = runInSandbox(
        [install("deployer", DEPLOYER_CRONTAB), { script: halt.create }, list("deployer"), { script: `ls /etc/cron.d; cat ${DIR}/postgres_backups.cron; cat ${DIR}/halt-old-server.done` }],
        {
            users: [DEPLOYER],
            files: {
                "/etc/cron.d/postgres_backups": BACKUPS,
                "/srv/deploy/kingfisher-process/docker-compose.yaml": "services: {}\n",
                "/srv/deploy/pelican-backend/docker-compose.yaml": "services: {}\n",
                "/srv/deploy/pelican-frontend/docker-compose.yaml": "services: {}\n",
            },
        },
    );
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[1].stdout, "halt-old-server: done on ocp04.open-contracting.org\n");
    assert.deepEqual(run.calls, [
        "deployer@/srv/deploy/kingfisher-process: docker compose down",
        "deployer@/srv/deploy/pelican-backend: docker compose down",
        "deployer@/srv/deploy/pelican-frontend: docker compose down",
    ]);
    assert.doesNotMatch(run.steps[2].stdout, /PELICAN_BACKEND_UPDATE_EXCHANGE_RATES|update-exchange-rates/);
    assert.match(run.steps[2].stdout, /KINGFISHER_PROCESS_EMPTY_COLLECTIONS\n0 4 1 \* \* cd .* empty\n$/);
    // /etc/cron.d is empty now; the backups file kept aside; then the marker's date.
    assert.equal(run.steps[3].stdout.slice(0, BACKUPS.length), BACKUPS);
    assert.match(run.steps[3].stdout.slice(BACKUPS.length), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$/);
});

test("halt on the old server fails closed on an app whose compose file is missing, naming app and path; no marker", { skip }, () => {
    const halt = commandOf(commands, "data-support-halt-old-server");
    const run = runInSandbox([install("deployer", DEPLOYER_CRONTAB), { script: halt.create }, { script: `ls -A ${DIR}` }], {
        users: [DEPLOYER],
        files: {
            "/etc/cron.d/postgres_backups": BACKUPS,
            "/srv/deploy/kingfisher-process/docker-compose.yaml": "services: {}\n",
            "/srv/deploy/pelican-frontend/docker-compose.yaml": "services: {}\n",
        },
    });
    assert.equal(run.steps[1].code, 1);
    assert.equal(
        run.steps[1].stderr,
        "ocp04.open-contracting.org: cannot bring down Docker Compose app pelican-backend: /srv/deploy/pelican-backend/docker-compose.yaml is missing, so whatever it runs may still be running. Bring it down by hand (or fix docker.apps / docker.deployDir), then run pulumi up again.\n",
    );
    // The apps before it went down; none after it was tried.
    assert.deepEqual(run.calls, ["deployer@/srv/deploy/kingfisher-process: docker compose down"]);
    assert.doesNotMatch(run.steps[2].stdout, /halt-old-server\.done\n/);
});

test("halt with nothing to halt (no crontab, no backups file) succeeds and changes nothing", { skip }, () => {
    const halt = commandOf(commands, "data-support-halt-new-server");
    const run = runInSandbox([{ script: halt.create }, { script: `crontab -l -u deployer; echo "exit $?"; ls -A ${DIR}` }], { users: [DEPLOYER] });
    assert.equal(run.steps[0].code, 0, run.steps[0].stderr);
    assert.equal(run.steps[1].stdout, "exit 1\nhalt-new-server.done\nhalt-new-server.done.lock\n");
});

test("restore on the new server puts back exactly what the halt took, once, and leaves others' lines", { skip }, () => {
    const halt = commandOf(commands, "data-support-halt-new-server");
    const restore = commandOf(commands, "data-support-restore-new-server");
    const run = runInSandbox(
        [
            install("deployer", DEPLOYER_CRONTAB),
            { script: halt.create },
            // Someone adds a line while the jobs are halted: the restore keeps it.
            { script: `{ crontab -l -u deployer; echo '# added during the move'; echo '30 5 * * * true'; } | crontab -u deployer -` },
            { script: restore.create },
            // A restore that runs again from its start (no marker) adds nothing twice.
            { script: `rm ${DIR}/restore-new-server.done` },
            { script: restore.create },
            list("deployer"),
            { script: "cat /etc/cron.d/postgres_backups; stat -c %a /etc/cron.d/postgres_backups" },
        ],
        { users: [DEPLOYER], files: { "/etc/cron.d/postgres_backups": BACKUPS } },
    );
    for (const i of [1, 3, 5]) assert.equal(run.steps[i].code, 0, run.steps[i].stderr);
    assert.equal(
        run.steps[6].stdout,
        `MAILTO=sysadmin@open-contracting.org
# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_STALE_COLLECTIONS
0 3 1 * * cd /srv/deploy/kingfisher-process && docker compose run --rm cron python manage.py stale
# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_EMPTY_COLLECTIONS
0 4 1 * * cd /srv/deploy/kingfisher-process && docker compose run --rm cron python manage.py empty
# added during the move
30 5 * * * true
# SALT_CRON_IDENTIFIER:PELICAN_BACKEND_UPDATE_EXCHANGE_RATES
17 */12 * * * cd /srv/deploy/pelican-backend && docker compose run --rm --name pelican-backend-cron cron python manage.py update-exchange-rates
`,
    );
    assert.equal(run.steps[7].stdout, `${BACKUPS}644\n`);
});

test("restore leaves a backups file Salt already put back as it is", { skip }, () => {
    const halt = commandOf(commands, "data-support-halt-new-server");
    const restore = commandOf(commands, "data-support-restore-new-server");
    const run = runInSandbox(
        [{ script: halt.create }, { script: "echo '# from salt' > /etc/cron.d/postgres_backups" }, { script: restore.create }, { script: "cat /etc/cron.d/postgres_backups" }],
        { users: [DEPLOYER], files: { "/etc/cron.d/postgres_backups": BACKUPS } },
    );
    assert.equal(run.steps[2].code, 0, run.steps[2].stderr);
    assert.equal(run.steps[3].stdout, "# from salt\n");
});

test("the docker uid check passes on the configured uid and fails naming docker.uid otherwise", { skip }, () => {
    const check = commandOf(commands, "data-support-halt-docker-uid-check");
    const ok = runInSandbox([{ script: check.create }], { users: [DEPLOYER] });
    assert.equal(ok.steps[0].code, 0, ok.steps[0].stderr);
    assert.equal(ok.steps[0].stdout, "ocp23.open-contracting.org: deployer has uid 1005\n");
    const wrong = runInSandbox([{ script: check.create }], { users: [{ ...DEPLOYER, uid: 1006 }] });
    assert.equal(wrong.steps[0].code, 1);
    assert.equal(
        wrong.steps[0].stderr,
        "ocp23.open-contracting.org: deployer has uid 1006 in /etc/passwd, but data-support:docker.uid is 1005. Set docker.uid (pillar docker.uid) to the real uid, or fix the user, then run pulumi up again.\n",
    );
    const missing = runInSandbox([{ script: check.create }]);
    assert.equal(missing.steps[0].code, 1);
    assert.equal(missing.steps[0].stderr, "ocp23.open-contracting.org: user deployer does not exist; create it (Salt) before the migration\n");
});
