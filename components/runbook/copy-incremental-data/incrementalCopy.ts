// Step 6 (Copy incremental data): the incremental crons stop on the old server, with any process
// they started; then the kingfisher_collect database and the incremental user's data/ and logs/
// go straight from old to new (TemporaryAccess), and are verified equal. One-off.
//
// Faster and safer than the runbook's dump file + rsync -z + psql -f: pg_dump streams into psql
// over one SSH connection (dump and load overlap), the load is one transaction (a failure leaves
// the target as it was), and data/ and logs/ are pre-synced while the old server is still live,
// so the copy after the halt only moves what changed.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import type { Host } from "../../machinery/host";
import type { TemporaryAccess, TransferCommand, TransferTree } from "../../machinery/temporaryAccess";
import { removeCronEntries } from "../../machinery/cron";
import { compareOrFail, TABLES_FINGERPRINT_SQL } from "../../machinery/fingerprint";
import { remoteFingerprintCommand, verifiedCopy } from "../../machinery/verifiedCopy";
import { manifestContent, treeManifest } from "../../machinery/treeManifest";
import { sh, script, ShellText } from "../../machinery/shell";
import { databaseLoadMeter, filesMeter, tableBytesCommand, treeSize, USER_TABLES, withProgress } from "../../machinery/progress";

export const INCREMENTAL_CRON_PATTERN = "OCDS_KINGFISHER_COLLECT_[A-Z0-9_]+";

const treesOf = (home: string) => [`${home}/data`, `${home}/logs`];
const dumpCommand = (database: string) => `pg_dump --format=plain ${database}`;

/** What the transfer key must be allowed to run on the old server for these copies, word for word. */
export function incrementalTransfers(a: { user: string; home: string; database: string }): { commands: TransferCommand[]; trees: TransferTree[] } {
    return {
        commands: [
            { user: "postgres", command: dumpCommand(a.database) },
            { user: "postgres", command: remoteFingerprintCommand(a.database, "tables"), input: TABLES_FINGERPRINT_SQL },
            // The manifest reads its previous digests on stdin (only a cache: every file is listed).
            ...treesOf(a.home).map((dir) => ({ user: a.user, command: treeManifest(dir).text, passStdin: true })),
            // The totals of the progress lines (components/machinery/progress.ts): bytes of table data, size of the trees.
            { user: "postgres", command: tableBytesCommand(a.database, USER_TABLES) },
            { user: a.user, command: treeSize(treesOf(a.home)).text },
        ],
        trees: treesOf(a.home).map((dir) => ({ user: a.user, dir: `${dir}/` })),
    };
}

/**
 * Every entry Salt puts in the incremental user's crontab: the crawls, and the pillar's `cron:`
 * jobs for that user (salt/cron/ at deploy afaedf6b: DOMINICAN_REPUBLIC_EXCLUDED_SUPPLIER, which
 * rewrites excluded_supplier in kingfisher_collect). All of them write what step 6 copies.
 */
export const INCREMENTAL_USER_CRON_PATTERN = "[A-Z0-9_]+";

/**
 * Tables that Salt itself loads into kingfisher_collect on the server it deploys, when a crawl has
 * `cardinal` (salt/kingfisher/collect/incremental.sls at afaedf6b): the reference data
 * from its own CSV files, and excluded_supplier (created empty, then filled daily by the
 * excluded-supplier cron). The new server holds them before the copy.
 *
 * They are replaced by the old server's, in the copy's own transaction (README, "Where we differ"):
 * - the copy stays "new equals old, every table", so the verification covers every table of old;
 * - excluded_supplier on old is the list of the old server's last run, the one its results were
 *   made with; new's may be empty (its cron has not run yet) or from another day;
 * - Salt does not fight it: it reloads the reference tables only when their CSV or SQL files change
 *   (`onchanges`), and then from the repository, as it would have on the old server; the
 *   excluded_supplier SQL is CREATE TABLE IF NOT EXISTS;
 * - a failed copy rolls the drop back with the rest, so new keeps Salt's tables.
 * Any other table on the target still stops the copy (never overwrite).
 */
export const SALT_LOADED_TABLES = ["codelist", "indicator", "cpc", "unspsc", "excluded_supplier"];

/** Where the new server keeps the incremental user's Salt jobs other than crawls during the copy. */
export function incrementalJobsSaved(newMain: Host): string {
    return `${newMain.migrationDir}/incremental-jobs.cron`;
}

export interface IncrementalCopyArgs {
    oldMain: Host;
    newMain: Host;
    access: TemporaryAccess;
    user: string;
    home: string;
    database: string;
    /** The halt (steps 2 and 3) must be done before the final copy (may be given before it exists: a promise). */
    halted: pulumi.Input<pulumi.Resource>[];
    /**
     * The gates' question asked by each copy itself, first thing, whenever it runs (oldServerIdle.ts):
     * shell that reads all of stdin, and its stdin (the credentials, secret).
     */
    oldServerIdle: { check: ShellText; stdin: pulumi.Input<string> };
}

export class IncrementalCopy extends pulumi.ComponentResource {
    readonly done: pulumi.Resource[];
    /** The first copy while the old server is live: the gates wait for it, so that they and the halt follow each other closely. */
    readonly presync: pulumi.Resource;

    constructor(name: string, args: IncrementalCopyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:incremental:IncrementalCopy", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const { oldMain, newMain, access } = args;
        const dirs = treesOf(args.home);
        // --delete: what was removed or renamed on old since the pre-sync goes on new too, so the
        // trees converge (new's data/ and logs/ hold only copies of old's until step 6 is done).
        // One subshell of rsyncs joined with &&: its status is the first failure's, whether it
        // runs under set -e (which ignores all but the last of an && list) or inside `if !`.
        const rsyncAll = (flags: string[]): ShellText =>
            new ShellText(
                `(${dirs.map((dir) => sh`rsync -a ${flags} --rsh=${access.ssh.text} ${`${args.user}@${access.target}:${dir}/`} ${`${dir}/`}`.text).join(" &&\n")})`,
            );

        // Live progress of the transfers: bytes and files on new against old's.
        const rsyncWithProgress = (what: string, rsync: ShellText): ShellText =>
            withProgress(filesMeter(what, dirs, sh`${access.ssh} ${`${args.user}@${access.target}`} ${treeSize(dirs).text}`), rsync);

        // Both sides' manifests of each tree, computed at the same time, each side reusing the
        // digests of its own previous manifest (kept on the new server) for unchanged files.
        const cache = (side: "old" | "new", i: number) => `${newMain.migrationDir}/manifest-${side}-${i}.jsonl`;
        const manifests = (i: number): ShellText =>
            script(
                sh`for f in ${cache("old", i)} ${cache("new", i)}; do [ -e "$f" ] || : > "$f"; done`,
                sh`${access.ssh} ${`${args.user}@${access.target}`} ${treeManifest(dirs[i]).text} < ${cache("old", i)} > ${`${cache("old", i)}.next`} & remote=$!`,
                sh`${treeManifest(dirs[i])} < ${cache("new", i)} > ${`${cache("new", i)}.next`}`,
                sh`wait "$remote"`,
                sh`mv ${`${cache("old", i)}.next`} ${cache("old", i)}; mv ${`${cache("new", i)}.next`} ${cache("new", i)}`,
            );

        // Pre-sync while the old server is live: the copy after the halt moves only what changed.
        // The manifests hash every file now, so that after the halt only changed files are hashed.
        const presync = newMain.oneOff(`${name}-presync`, "presync-incremental-files", script(access.check(args.user), rsyncWithProgress("pre-sync of data/ and logs/", rsyncAll(["--delete"])), ...dirs.map((_, i) => manifests(i))), {
            parent: this,
            dependsOn: [...inherited, access.granted],
        });

        // The runbook's "stop any processes started by the cron jobs", on both servers: Salt has
        // installed the same crontab on the new server, whose jobs would write the database being
        // loaded. Every process of the incremental user stops, not only the crawl scripts: what
        // they started (scrapy, psql, ocdscardinal, the excluded-supplier curl | psql) keeps
        // running when its parent is killed, in the script's process group or not. Nothing else
        // runs as that user here: the pre-sync is done, and the spiders were deployed before.
        // Frozen first, then ended: killed one by one, a pipeline whose producer dies first sees
        // EOF and commits what it has (seen on the test hosts: `... | psql -c 'BEGIN; DELETE FROM
        // excluded_supplier; COPY ... FROM stdin; END;'` committed an empty excluded_supplier).
        // Frozen, nothing can commit; the sessions of the role the crawls write as are ended
        // (their open transactions roll back; a server process otherwise runs on until its
        // statement ends), then the frozen processes are killed. Readers (their own roles, like a
        // crawl's users) are left alone.
        const stopAll = script(
            // Three passes: a child forked while the first pass ran is frozen by the next.
            sh`for _ in 1 2 3; do pkill -STOP -u ${args.user} || true; done`,
            sh`cd / && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -d postgres -c ${`SELECT count(pg_terminate_backend(pid)) || ' session(s) of ${args.database} ended' FROM pg_stat_activity WHERE datname = '${args.database}' AND usename = '${args.database}'`}`,
            sh`pkill -KILL -u ${args.user} || true`,
            sh`for _ in $(seq 10); do pgrep -u ${args.user} > /dev/null || break; sleep 1; done`,
            sh`if pgrep -u ${args.user} > /dev/null; then echo ${`processes of ${args.user} survive SIGKILL:`} >&2; ps -o pid,stat,args -u ${args.user} >&2; exit 1; fi`,
        );
        const stopOld = oldMain.oneOff(
            `${name}-stop-old-crons`,
            "stop-incremental-crons",
            // On the old server they never come back.
            script(removeCronEntries(args.user, INCREMENTAL_USER_CRON_PATTERN, `${oldMain.migrationDir}/incremental.cron`), stopAll),
            { parent: this, dependsOn: [...inherited, ...args.halted, presync] },
        );
        // On the new server: the crawls' entries are IncrementalCrawls' to install after the copy;
        // the user's other Salt jobs are kept aside and put back by step 8 (RestoreJobs).
        const stopNew = newMain.oneOff(
            `${name}-stop-new-crons`,
            "stop-incremental-crons",
            script(
                removeCronEntries(args.user, INCREMENTAL_CRON_PATTERN, `${newMain.migrationDir}/incremental-crawls.cron`),
                removeCronEntries(args.user, INCREMENTAL_USER_CRON_PATTERN, incrementalJobsSaved(newMain)),
                stopAll,
            ),
            { parent: this, dependsOn: [...inherited, ...args.halted, presync] },
        );
        const stop = [stopOld, stopNew];

        // The two copies are the point of no return: they replace what is on new with old's data,
        // and once they are done the migration goes on to make new the only server. Each asks
        // first, inside its own command, whether the old server is idle (the gates' question,
        // oldServerIdle.ts), so a run resumed after a failure here asks again whatever the state
        // says (the before-copy gates, once passed, are in the state). The stops above do not ask:
        // they touch no Scrapyd job and no queued message, the crons they remove are kept aside
        // on old, and the processes they end would be ended by any later run too.
        const db = args.database;
        const saltTables = SALT_LOADED_TABLES.map((t) => `'${t}'`).join(", ");
        const dropSaltTables = `DROP TABLE IF EXISTS ${SALT_LOADED_TABLES.map((t) => `public.${t}`).join(", ")};`;
        const psqlNew = sh`runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d ${db}`;
        const copyDatabase = newMain.oneOff(
            `${name}-database`,
            "copy-kingfisher-collect",
            script(
                args.oldServerIdle.check,
                access.check("postgres"),
                verifiedCopy({
                    access,
                    database: db,
                    fingerprintTag: "tables",
                    fingerprintSql: TABLES_FINGERPRINT_SQL,
                    held: sh`runuser -u postgres -- psql -X -At -d ${db} -c ${`SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND NOT (schemaname = 'public' AND tablename IN (${saltTables}))`}`,
                    refusal: [
                        `${newMain.hostname}: database ${db} already has`,
                        `table(s) besides those Salt loads (${SALT_LOADED_TABLES.join(", ")}) that differ from the old server's; refusing to overwrite them. Empty it (or drop and re-create it) if they are not needed, then run pulumi up again.`,
                    ],
                    subject: db,
                    compared: `tables of ${db}`,
                    tables: USER_TABLES,
                    copy: [
                        // One transaction that commits only if the whole dump arrived: COMMIT is sent after
                        // pg_dump succeeds. psql --single-transaction would commit a dump cut off between
                        // two tables (or at a row boundary: psql ends a COPY at EOF as if it were complete).
                        // More memory for the index builds of this one session speeds the load up.
                        withProgress(
                            databaseLoadMeter(`${db}: loading`, db, sh`${access.ssh} ${`postgres@${access.target}`} ${tableBytesCommand(db, USER_TABLES)}`),
                            script(
                                // Salt's own tables go in the same transaction: a failed load leaves them in place.
                                sh`{ echo 'BEGIN;'; echo "SET LOCAL maintenance_work_mem = '512MB';"; echo ${dropSaltTables}; ${access.ssh} ${`postgres@${access.target}`} ${dumpCommand(db)} && echo 'COMMIT;'; } | ${psqlNew} > /dev/null`,
                                sh`runuser -u postgres -- psql -X -q -d ${db} -c ANALYZE`,
                            ),
                        ),
                    ],
                }),
                sh`echo "${db}: $(wc -l < "$fp/new") table(s) copied and verified equal"`,
            ),
            { parent: this, dependsOn: [...inherited, ...stop] },
            { stdin: args.oldServerIdle.stdin },
        );

        const copyFiles = newMain.oneOff(
            `${name}-files`,
            "copy-incremental-files",
            script(
                args.oldServerIdle.check,
                // The key is checked only when rsync fails: the window after the halt stays short.
                sh`rsync_status=0`,
                rsyncWithProgress("copy of data/ and logs/", sh`${rsyncAll(["--delete"])} || rsync_status=$?`),
                sh`if [ "$rsync_status" != 0 ]; then ${access.check(args.user)}; exit 1; fi`,
                sh`fp=$(mktemp -d); trap 'rm -rf "$fp"' EXIT`,
                // Equal trees: the same paths and types, and for files the same size and sha256 (a
                // digest from the pre-sync is reused while a file's size and mtime are unchanged).
                ...dirs.map((dir, i) =>
                    script(
                        manifests(i),
                        sh`${manifestContent(sh`${cache("old", i)}`)} > "$fp/old${i}"`,
                        sh`${manifestContent(sh`${cache("new", i)}`)} > "$fp/new${i}"`,
                        compareOrFail(sh`"$fp/old${i}"`, sh`"$fp/new${i}"`, `the trees ${dir}`),
                    ),
                ),
                sh`echo ${`${dirs.join(" and ")}: copied and verified equal`}`,
            ),
            { parent: this, dependsOn: [...inherited, ...stop] },
            { stdin: args.oldServerIdle.stdin },
        );
        this.done = [copyDatabase, copyFiles];
        this.presync = presync;
        this.registerOutputs({});
    }
}
