// Step 6 (Copy incremental data): the incremental crons stop on the old server, with any process
// they started; then the kingfisher_collect database and the incremental user's data/ and logs/
// go straight from old to new (TemporaryAccess), and are verified equal. One-off.
//
// Faster and safer than the runbook's dump file + rsync -z + psql -f: pg_dump streams into psql
// over one SSH connection (dump and load overlap), the load is one transaction (a failure leaves
// the target as it was), and data/ and logs/ are pre-synced while the old server is still live,
// so the copy after the halt only moves what changed.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import type { Host } from "./host";
import type { TemporaryAccess, TransferCommand, TransferTree } from "./temporaryAccess";
import { removeCronEntries } from "./cron";
import { compareOrFail, TABLES_FINGERPRINT_SQL } from "./fingerprint";
import { remoteFingerprintCommand, verifiedCopy } from "./verifiedCopy";
import { manifestContent, treeManifest } from "./treeManifest";
import { sh, script, ShellText } from "./shell";
import { databaseLoadMeter, filesMeter, tableBytesCommand, treeSize, USER_TABLES, withProgress } from "./progress";

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
            // The totals of the progress lines (components/progress.ts): bytes of table data, size of the trees.
            { user: "postgres", command: tableBytesCommand(a.database, USER_TABLES) },
            { user: a.user, command: treeSize(treesOf(a.home)).text },
        ],
        trees: treesOf(a.home).map((dir) => ({ user: a.user, dir: `${dir}/` })),
    };
}

export interface IncrementalCopyArgs {
    oldMain: Host;
    newMain: Host;
    access: TemporaryAccess;
    user: string;
    home: string;
    database: string;
    /** The halt (steps 2 and 3) must be done before the final copy. */
    halted: pulumi.Resource[];
}

export class IncrementalCopy extends pulumi.ComponentResource {
    readonly done: pulumi.Resource[];

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

        // The runbook's "stop any processes started by the cron jobs": the crawl scripts and the
        // scrapy processes they run, of the incremental user only. TERM, then KILL after 60 s.
        const stop = oldMain.oneOff(
            `${name}-stop-old-crons`,
            "stop-incremental-crons",
            script(
                removeCronEntries(args.user, INCREMENTAL_CRON_PATTERN, `${oldMain.migrationDir}/incremental.cron`),
                sh`pattern=${`${args.home}/bin/|scrapy crawl`}`,
                sh`pkill -TERM -u ${args.user} -f "$pattern" || true`,
                sh`for _ in $(seq 60); do pgrep -u ${args.user} -f "$pattern" > /dev/null || break; sleep 1; done`,
                sh`pkill -KILL -u ${args.user} -f "$pattern" || true`,
            ),
            { parent: this, dependsOn: [...inherited, ...args.halted, presync] },
        );

        const db = args.database;
        const psqlNew = sh`runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d ${db}`;
        const copyDatabase = newMain.oneOff(
            `${name}-database`,
            "copy-kingfisher-collect",
            script(
                access.check("postgres"),
                verifiedCopy({
                    access,
                    database: db,
                    fingerprintTag: "tables",
                    fingerprintSql: TABLES_FINGERPRINT_SQL,
                    held: sh`runuser -u postgres -- psql -X -At -d ${db} -c ${"SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"}`,
                    refusal: [`${newMain.hostname}: database ${db} already has`, "table(s) that differ from the old server's; refusing to overwrite them. Empty it (or drop and re-create it) if they are not needed, then run pulumi up again."],
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
                                sh`{ echo 'BEGIN;'; echo "SET LOCAL maintenance_work_mem = '512MB';"; ${access.ssh} ${`postgres@${access.target}`} ${dumpCommand(db)} && echo 'COMMIT;'; } | ${psqlNew} > /dev/null`,
                                sh`runuser -u postgres -- psql -X -q -d ${db} -c ANALYZE`,
                            ),
                        ),
                    ],
                }),
                sh`echo "${db}: $(wc -l < "$fp/new") table(s) copied and verified equal"`,
            ),
            { parent: this, dependsOn: [...inherited, stop] },
        );

        const copyFiles = newMain.oneOff(
            `${name}-files`,
            "copy-incremental-files",
            script(
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
            { parent: this, dependsOn: [...inherited, stop] },
        );
        this.done = [copyDatabase, copyFiles];
        this.registerOutputs({});
    }
}
