// The incremental user's crontab where it runs: the old server's crons stop (entries and the
// processes they started), and the new server's crontab converges on the configured crawls,
// leaving lines others put there. Real `crontab` (Debian's cron), real pkill.
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig } from "../support/fixtures";
import { canSandbox, runInSandbox, type SandboxUser } from "./sandbox";
import { commandOf, programCommands, type ProgramCommand } from "./scripts";

const skip = canSandbox() || undefined;
const INCREMENTAL: SandboxUser = { name: "incremental", uid: 1010, home: "/home/incremental" };
const DIR = "/var/lib/data-support/ocp04-to-ocp23";

// As Salt leaves it on the old server (design.md): MAILTO, the crawls, and a line of its own.
const OLD_CRONTAB = `MAILTO=sysadmin@open-contracting.org
# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_DOMINICAN_REPUBLIC
15 0 * * * /home/incremental/bin/dominican_republic_api.sh
# SALT_CRON_IDENTIFIER:DOMINICAN_REPUBLIC_EXCLUDED_SUPPLIER
21 1 * * * /home/incremental/bin/do_excluded_supplier.sh
# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_ECUADOR
15 0 1 * * /home/incremental/bin/ecuador_sercop_bulk.sh
`;
const ENTRIES = `# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_DOMINICAN_REPUBLIC
15 0 * * * /home/incremental/bin/dominican_republic_api.sh
# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_ECUADOR
15 0 1 * * /home/incremental/bin/ecuador_sercop_bulk.sh`;

let commands: Map<string, ProgramCommand>;
let noCrawls: Map<string, ProgramCommand>;
before(async () => {
    if (skip) return;
    commands = await programCommands(mainConfig());
    noCrawls = await programCommands(mainConfig({ incremental: { crawls: [] } }));
});

const install = (text: string) => ({ script: `crontab -u incremental - <<'CRONTAB'\n${text}CRONTAB` });
const list = { script: "crontab -l -u incremental; echo \"exit $?\"" };
// What the psql stand-in answers, and the call it must get: as postgres, the sessions of the role
// the crawls write as ended (the statement itself runs against real PostgreSQL in test/e2e).
const SESSIONS_ENDED = "2 session(s) of kingfisher_collect ended\n";
const TERMINATE =
    "postgres@/: psql -X -At -v ON_ERROR_STOP=1 -d postgres -c SELECT count(pg_terminate_backend(pid)) || ' session(s) of kingfisher_collect ended' FROM pg_stat_activity WHERE datname = 'kingfisher_collect' AND usename = 'kingfisher_collect'";

test("stopping the old server's crons: every Salt job of the user goes (identifier and job line), kept aside; other lines stay", { skip }, () => {
    const stop = commandOf(commands, "data-support-incremental-copy-stop-old-crons");
    const run = runInSandbox([install(`${OLD_CRONTAB}# mine\n5 5 * * * /usr/local/bin/report.sh\n`), { script: stop.create }, list, { script: `cat ${DIR}/incremental.cron` }], {
        users: [INCREMENTAL],
        psql: SESSIONS_ENDED,
    });
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[1].stdout, `${SESSIONS_ENDED}stop-incremental-crons: done on ocp04.open-contracting.org\n`);
    assert.deepEqual(run.calls, [TERMINATE]);
    // On the old server the excluded-supplier job stops too: it writes kingfisher_collect.
    assert.equal(
        run.steps[2].stdout,
        `MAILTO=sysadmin@open-contracting.org
# mine
5 5 * * * /usr/local/bin/report.sh
exit 0
`,
    );
    assert.equal(run.steps[3].stdout, OLD_CRONTAB.replace("MAILTO=sysadmin@open-contracting.org\n", ""));
});

test("stopping the old server's crons ends every process of the incremental user, and only those", { skip }, () => {
    const stop = commandOf(commands, "data-support-incremental-copy-stop-old-crons");
    // A crawl script and a scrapy process of the incremental user, a process of root with the
    // same pattern, and another process of the incremental user: all but root's must end (what a
    // crawl started need not carry its name). bash for `exec -a`: dash has no -a (with it the
    // scrapy stand-in never started, and the wait below ran its full minute, then counted this
    // step's own command line).
    const crawl = "#!/bin/sh\nwhile :; do sleep 1; done\n";
    const run = runInSandbox(
        [
            {
                script: [
                    "runuser -u incremental -- setsid -f /bin/sh /home/incremental/bin/ecuador_sercop_bulk.sh",
                    "runuser -u incremental -- setsid -f /bin/bash -c 'exec -a \"scrapy crawl ecuador_sercop_bulk\" sleep 1000'",
                    "setsid -f /bin/sh /home/incremental/bin/ecuador_sercop_bulk.sh",
                    "runuser -u incremental -- setsid -f sleep 1001",
                    // Not this step's own `bash -c <script>`, whose argv holds the names too.
                    "count() { ps -eo args= | grep -v '^bash -c' | grep -cE '[e]cuador_sercop_bulk|[s]leep 1001'; }",
                    "for _ in $(seq 600); do [ \"$(count)\" = 4 ] && break; sleep 0.1; done; count",
                ].join("\n"),
            },
            { script: stop.create },
            // [e] and [s]: the probe's own command line does not match.
            { script: "ps -eo user:12=,args= | grep -E '[e]cuador_sercop_bulk|[s]leep 1001' | sort" },
        ],
        { users: [INCREMENTAL], files: { "/home/incremental/bin/ecuador_sercop_bulk.sh": crawl }, psql: SESSIONS_ENDED },
    );
    assert.equal(run.steps[0].stdout, "4\n", "the four processes must run before the step");
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[2].stdout, "root         /bin/sh /home/incremental/bin/ecuador_sercop_bulk.sh\n");
});

test("stopping the new server's crons: the crawls' entries and the user's other Salt jobs go, each kept aside in its own file; other lines stay", { skip }, () => {
    const stop = commandOf(commands, "data-support-incremental-copy-stop-new-crons");
    // Salt installed the same crontab on the new server as on the old.
    const run = runInSandbox(
        [
            install(`${OLD_CRONTAB}# mine\n5 5 * * * /usr/local/bin/report.sh\n`),
            { script: stop.create },
            list,
            { script: `cat ${DIR}/incremental-crawls.cron; echo ---; cat ${DIR}/incremental-jobs.cron; echo ---; ls ${DIR}` },
            // Run again: the marker holds, nothing is taken twice.
            { script: stop.create },
            { script: `cat ${DIR}/incremental-crawls.cron ${DIR}/incremental-jobs.cron | wc -l` },
        ],
        { users: [INCREMENTAL], psql: SESSIONS_ENDED },
    );
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[1].stdout, `${SESSIONS_ENDED}stop-incremental-crons: done on ocp23.open-contracting.org\n`);
    assert.deepEqual(run.calls, [TERMINATE]);
    assert.equal(
        run.steps[2].stdout,
        `MAILTO=sysadmin@open-contracting.org
# mine
5 5 * * * /usr/local/bin/report.sh
exit 0
`,
    );
    assert.equal(
        run.steps[3].stdout,
        `${ENTRIES}
---
# SALT_CRON_IDENTIFIER:DOMINICAN_REPUBLIC_EXCLUDED_SUPPLIER
21 1 * * * /home/incremental/bin/do_excluded_supplier.sh
---
incremental-crawls.cron
incremental-jobs.cron
stop-incremental-crons.done
stop-incremental-crons.done.lock
`,
    );
    assert.equal(run.steps[4].code, 0, run.steps[4].stderr);
    assert.match(run.steps[4].stdout, /^stop-incremental-crons: already done on ocp23\.open-contracting\.org at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$/);
    assert.equal(run.steps[5].stdout, "6\n");
});

test("stopping the new server's crons ends every process of the incremental user, not root's", { skip }, () => {
    const stop = commandOf(commands, "data-support-incremental-copy-stop-new-crons");
    const run = runInSandbox(
        [
            {
                script: [
                    "runuser -u incremental -- setsid -f sleep 1001",
                    "setsid -f sleep 1002",
                    "for _ in $(seq 600); do [ \"$(pgrep -c -x sleep)\" = 2 ] && break; sleep 0.1; done; pgrep -c -x sleep",
                ].join("\n"),
            },
            { script: stop.create },
            { script: "ps -eo user:12=,args= | grep -E '^[a-z]+ +sleep 100' | sort" },
        ],
        { users: [INCREMENTAL], psql: SESSIONS_ENDED },
    );
    assert.equal(run.steps[0].stdout, "2\n", "both processes must run before the step");
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[2].stdout, "root         sleep 1002\n");
});

test("the new server's crontab: MAILTO first, others' lines kept, the configured crawls last; unchanged the second time", { skip }, () => {
    const crontab = commandOf(commands, "data-support-crawls-crontab");
    assert.equal(crontab.stdin, ENTRIES);
    // Salt's line for a crawl since removed from config, and a line of someone else.
    const before = `# mine
5 5 * * * /usr/local/bin/report.sh
# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_OLD_ONE
15 0 * * * /home/incremental/bin/old_one.sh
MAILTO=someone@example.org
`;
    const run = runInSandbox([install(before), { script: crontab.create, stdin: crontab.stdin }, list, { script: crontab.update ?? "false", stdin: crontab.stdin }], {
        users: [INCREMENTAL],
    });
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[1].stdout, "crontab of incremental: installed\n");
    assert.equal(
        run.steps[2].stdout,
        `MAILTO=sysadmin@open-contracting.org
# mine
5 5 * * * /usr/local/bin/report.sh
${ENTRIES}
exit 0
`,
    );
    assert.equal(run.steps[3].stdout, "crontab of incremental: unchanged\n");
});

test("the last crawl removed: entries go, MAILTO stays with others' lines; with none left the crontab is removed", { skip }, () => {
    const crontab = commandOf(noCrawls, "data-support-crawls-crontab");
    assert.equal(crontab.stdin, "");
    const others = `MAILTO=sysadmin@open-contracting.org\n# SALT_CRON_IDENTIFIER:DOMINICAN_REPUBLIC_EXCLUDED_SUPPLIER\n21 1 * * * /home/incremental/bin/do_excluded_supplier.sh\n`;
    const run = runInSandbox(
        [
            install(OLD_CRONTAB),
            { script: crontab.update ?? "false", stdin: "" },
            list,
            install(`MAILTO=sysadmin@open-contracting.org\n${ENTRIES}\n`),
            { script: crontab.update ?? "false", stdin: "" },
            list,
            { script: crontab.update ?? "false", stdin: "" },
        ],
        { users: [INCREMENTAL] },
    );
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    assert.equal(run.steps[2].stdout, `${others}exit 0\n`);
    assert.equal(run.steps[4].stdout, "crontab of incremental: removed (no crawl left)\n");
    assert.equal(run.steps[5].stdout, "exit 1\n");
    assert.equal(run.steps[6].stdout, "crontab of incremental: none, unchanged\n");
});

test("a crawl script is installed whole with its owner and mode, unchanged the second time, refused when cut off", { skip }, () => {
    const file = commandOf(commands, "data-support-crawls-ecuador");
    // The script holds the Sentry DSN: stdin is its sha256, a newline, then the script.
    const [hash, ...rest] = (file.stdin ?? "").split("\n");
    const content = rest.join("\n");
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.ok(content.startsWith("#!/bin/sh\n# shellcheck disable=SC1083\n"), content);
    assert.ok(content.includes("-s SENTRY_DSN=https://canarysentry5e3d@o1.ingest.sentry.example/4242 \\\n"), content);
    const run = runInSandbox(
        [
            { script: file.create, stdin: file.stdin },
            { script: "stat -c '%U %a' /home/incremental/bin /home/incremental/bin/ecuador_sercop_bulk.sh; cat /home/incremental/bin/ecuador_sercop_bulk.sh" },
            { script: file.update ?? "false", stdin: file.stdin },
            // Cut off inside the script, and inside the hash line.
            { script: file.update ?? "false", stdin: (file.stdin ?? "").slice(0, -40) },
            { script: file.update ?? "false", stdin: (file.stdin ?? "").slice(0, 40) },
            { script: file.delete ?? "false" },
            { script: "ls -A /home/incremental/bin" },
        ],
        { users: [INCREMENTAL] },
    );
    assert.equal(run.steps[0].code, 0, run.steps[0].stderr);
    assert.equal(run.steps[0].stdout, "/home/incremental/bin/ecuador_sercop_bulk.sh: installed\n");
    assert.equal(run.steps[1].stdout, `incremental 755\nincremental 755\n${content}`);
    assert.equal(run.steps[2].stdout, "/home/incremental/bin/ecuador_sercop_bulk.sh: unchanged\n");
    for (const cut of [run.steps[3], run.steps[4]]) {
        assert.equal(cut.code, 1);
        assert.equal(cut.stderr, "ocp23.open-contracting.org: /home/incremental/bin/ecuador_sercop_bulk.sh arrived incomplete; the old file is unchanged\n");
    }
    assert.equal(run.steps[6].stdout, "");
});
