// Step 2 (Update Salt and halt jobs). One-off. On the new server: the docker user's uid is the
// configured one; the exchange-rates cron and PostgreSQL backups stop (kept aside for step 8).
// On the old server: backups stop, the exchange-rates cron stops, every Docker Compose app goes down.
//
// The runbook only names /etc/cron.d/postgres_backups and `docker compose down` on the old server.
// It leaves the old deployer's exchange-rates cron in place, which would start a pelican-backend
// container (`docker compose run`) and write exchange_rates while step 7 copies it; so it is
// stopped here too (README, "Where we differ from the runbook").
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import type { Host } from "./host";
import { removeCronEntries } from "./cron";
import { asUser, sh, script } from "./shell";

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

        // On the new server, what is taken away is kept in the migration directory, so that step 8
        // puts back exactly what Salt had deployed.
        const haltNew = newMain.oneOff(
            `${name}-new-server`,
            "halt-new-server",
            script(
                removeCronEntries(args.dockerUser, EXCHANGE_RATES_CRON_ID, `${newMain.migrationDir}/exchange-rates.cron`),
                sh`if [ -e ${args.backupsCron} ]; then mv ${args.backupsCron} ${`${newMain.migrationDir}/postgres_backups.cron`}; fi`,
            ),
            { parent: this, dependsOn: [...inherited, uidCheck] },
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
