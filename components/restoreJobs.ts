// Step 8 (Restore Salt and start jobs): on the new server, the exchange-rates cron and the
// PostgreSQL backups are back, exactly as the halt took them away. The old server's jobs stay off.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import type { Host } from "./host";
import { restoreCronEntries } from "./cron";
import { sh, script } from "./shell";

export interface RestoreJobsArgs {
    newMain: Host;
    dockerUser: string;
    backupsCron: string;
    after: pulumi.Resource[];
}

export class RestoreJobs extends pulumi.ComponentResource {
    readonly done: pulumi.Resource[];

    constructor(name: string, args: RestoreJobsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:migration:RestoreJobs", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const { newMain } = args;
        const saved = `${newMain.migrationDir}/postgres_backups.cron`;
        const restore = newMain.oneOff(
            `${name}-new-server`,
            "restore-new-server",
            script(
                restoreCronEntries(args.dockerUser, `${newMain.migrationDir}/exchange-rates.cron`),
                sh`if [ -e ${saved} ] && [ ! -e ${args.backupsCron} ]; then cp -p ${saved} ${args.backupsCron}; fi`,
            ),
            { parent: this, dependsOn: [...inherited, ...args.after] },
        );
        this.done = [restore];
        this.registerOutputs({});
    }
}
