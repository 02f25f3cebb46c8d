// Step 2 (Update Salt and halt jobs). One-off. On the new server: the docker user's uid is the
// configured one; the exchange-rates cron and PostgreSQL backups stop (kept aside for step 8).
// On the old server: backups stop, the exchange-rates cron stops, every Docker Compose app goes down.
//
// The runbook only names /etc/cron.d/postgres_backups and `docker compose down` on the old server.
// It leaves the old deployer's exchange-rates cron in place, which would start a pelican-backend
// container (`docker compose run`) and write exchange_rates while step 7 copies it; so it is
// stopped here too (README, "Where we differ from the runbook").
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import type { Host } from "../../machinery/host";
import { removeCronEntries } from "../../machinery/cron";
import { noteForRunbook } from "../../machinery/runbookNotes";
import { asUser, sh, script, ShellText } from "../../machinery/shell";

export const EXCHANGE_RATES_CRON_ID = "PELICAN_BACKEND_UPDATE_EXCHANGE_RATES";

export interface HaltJobsArgs {
    oldMain: Host;
    newMain: Host;
    dockerUser: string;
    dockerUid: number;
    deployDir: string;
    apps: string[];
    backupsCron: string;
}

export class HaltJobs extends pulumi.ComponentResource {
    readonly done: pulumi.Resource[];

    constructor(name: string, args: HaltJobsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:migration:HaltJobs", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const { oldMain, newMain } = args;

        const uidCheck = newMain.command(
            `${name}-docker-uid-check`,
            {
                create: sh`uid=$(id -u ${args.dockerUser} 2>/dev/null) || { echo ${`${newMain.hostname}: user ${args.dockerUser} does not exist; create it (Salt) before the migration`} >&2; exit 1; }
if [ "$uid" != ${String(args.dockerUid)} ]; then echo ${`${newMain.hostname}: ${args.dockerUser} has uid`} "$uid" ${`in /etc/passwd, but data-support:docker.uid is ${args.dockerUid}. Set docker.uid (pillar docker.uid) to the real uid, or fix the user, then run pulumi up again.`} >&2; exit 1; fi
echo ${`${newMain.hostname}: ${args.dockerUser} has uid ${args.dockerUid}`}`,
                triggers: [args.dockerUser, args.dockerUid],
            },
            { parent: this, dependsOn: inherited },
        );

        // WAL archiving (salt/postgres/files/conf/shared.conf at deploy afaedf6b: with pgBackRest
        // backups, `archive_mode = on` and `archive_command = 'pgbackrest --stanza=<pillar
        // postgres.backup.stanza> archive-push %p'`). The same pillar file deploys the old and the
        // new main server, so unless its stanza was changed the new cluster archives into the old
        // cluster's stanza: pgBackRest refuses WAL of another cluster, archiving fails, and WAL
        // piles up in the new server's pg_wal. Changing the archive command would fight Salt (its
        // next deploy puts it back), so this is a gate: it stops before anything is halted and
        // says what to change in the pillar.
        const archiveSql = "SELECT current_setting('archive_mode') || ' ' || current_setting('archive_command')";
        const oldArchive = oldMain.command(
            `${name}-old-wal-archiving`,
            { create: sh`cd / && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -c ${archiveSql}` },
            { parent: this, dependsOn: inherited },
        );
        const stanzaOf = `sed -n 's/.*--stanza=\\([^ ]*\\).*/\\1/p'`;
        noteForRunbook(`${name}-wal-archiving-check`, {
            kind: "gate",
            condition: "the new server's PostgreSQL does not archive WAL into the old server's pgBackRest stanza, and its archiving does not fail (WAL would pile up in pg_wal)",
        });
        const walGate = newMain.command(
            `${name}-wal-archiving-check`,
            {
                create: script(
                    sh`old=$(cat)`,
                    sh`new=$(cd / && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -c ${archiveSql})`,
                    new ShellText(`old_stanza=$(printf '%s\\n' "$old" | ${stanzaOf}); new_stanza=$(printf '%s\\n' "$new" | ${stanzaOf})`),
                    sh`case "$new" in 'off '*) echo ${`${newMain.hostname}: WAL archiving is off`}; exit 0 ;; esac`,
                    sh`if [ -n "$new_stanza" ] && [ "$new_stanza" = "$old_stanza" ]; then
  echo ${`${newMain.hostname}: PostgreSQL archives its WAL into the pgBackRest stanza`} "$new_stanza" ${`(archive_command), the stanza of the old server ${oldMain.hostname}: pgBackRest refuses the WAL of another cluster, and WAL piles up in pg_wal. In the new server's pillar, set postgres.backup.stanza to a stanza of its own (e.g. kingfisher-<year>), deploy the new server with Salt, create the stanza (as postgres: pgbackrest --stanza=<name> stanza-create), then run pulumi up again.`} >&2
  exit 1
fi`,
                    // Archiving that fails (no stanza yet, repository unreachable) keeps every WAL segment.
                    sh`failing=$(cd / && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -c ${"SELECT failed_count || ' failure(s), the last at ' || last_failed_time || ' of ' || coalesce(last_failed_wal, '?') FROM pg_stat_archiver WHERE last_failed_time IS NOT NULL AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)"})`,
                    sh`if [ -n "$failing" ]; then echo ${`${newMain.hostname}: WAL archiving fails (pg_stat_archiver:`} "$failing"${`), so WAL piles up in pg_wal. Check the stanza in archive_command (pillar postgres.backup.stanza) exists (as postgres: pgbackrest --stanza=<name> check), or fix the repository, then run pulumi up again.`} >&2; exit 1; fi`,
                    sh`echo ${`${newMain.hostname}: WAL archived into stanza`} "$new_stanza"${`; the old server's is`} "\${old_stanza:-none}"`,
                ),
                stdin: oldArchive.stdout,
            },
            { parent: this, dependsOn: inherited },
        );

        // On the new server, what is taken away is kept in the migration directory, so that step 8
        // puts back exactly what Salt had deployed.
        const haltNew = newMain.oneOff(
            `${name}-new-server`,
            "halt-new-server",
            script(
                removeCronEntries(args.dockerUser, EXCHANGE_RATES_CRON_ID, `${newMain.migrationDir}/exchange-rates.cron`),
                sh`if [ -e ${args.backupsCron} ]; then mv ${args.backupsCron} ${`${newMain.migrationDir}/postgres_backups.cron`}; fi`,
            ),
            { parent: this, dependsOn: [...inherited, uidCheck, walGate] },
        );

        // Fails closed: an app whose compose file is missing, or whose `down` fails, may still be
        // running and writing; the run stops, naming the app and the path, instead of passing it.
        const composeDown = args.apps.map((app) => {
            const dir = `${args.deployDir}/${app}`;
            const file = `${dir}/docker-compose.yaml`;
            return script(
                sh`if [ ! -f ${file} ]; then echo ${`${oldMain.hostname}: cannot bring down Docker Compose app ${app}: ${file} is missing, so whatever it runs may still be running. Bring it down by hand (or fix docker.apps / docker.deployDir), then run pulumi up again.`} >&2; exit 1; fi`,
                sh`if ! ${asUser(args.dockerUser, sh`cd ${dir} && docker compose down`)}; then echo ${`${oldMain.hostname}: docker compose down failed for app ${app} in ${dir} (output above). Bring it down by hand, then run pulumi up again.`} >&2; exit 1; fi`,
            );
        });
        const haltOld = oldMain.oneOff(
            `${name}-old-server`,
            "halt-old-server",
            script(
                sh`if [ -e ${args.backupsCron} ]; then mv ${args.backupsCron} ${`${oldMain.migrationDir}/postgres_backups.cron`}; fi`,
                removeCronEntries(args.dockerUser, EXCHANGE_RATES_CRON_ID, `${oldMain.migrationDir}/exchange-rates.cron`),
                ...composeDown,
            ),
            { parent: this, dependsOn: [...inherited, haltNew] },
        );
        this.done = [haltOld];
        this.registerOutputs({});
    }
}
