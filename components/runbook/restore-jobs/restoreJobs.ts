// Step 8 (Restore Salt and start jobs): on the new server, the exchange-rates cron and the
// PostgreSQL backups are back, exactly as the halt took them away, and so are the incremental user's
// Salt jobs other than crawls (the excluded-supplier cron), kept aside for the copy in step 6. The old
// server's jobs stay off.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import type { Host } from "../../machinery/host";
import { restoreCronEntries } from "../../machinery/cron";
import { incrementalJobsSaved } from "../copy-incremental-data/incrementalCopy";
import { sh, script } from "../../machinery/shell";

export interface RestoreJobsArgs {
    newMain: Host;
    dockerUser: string;
    /** The incremental user: its Salt jobs other than crawls were kept aside for the copy (step 6). */
    incrementalUser: string;
    backupsCron: string;
    after: pulumi.Resource[];
}

// Step 8, the last: nothing waits for it, so unlike the other steps it offers no `done`.
export class RestoreJobs extends pulumi.ComponentResource {
    constructor(name: string, args: RestoreJobsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:migration:RestoreJobs", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const { newMain } = args;
        const saved = `${newMain.migrationDir}/postgres_backups.cron`;
        newMain.oneOff(
            `${name}-new-server`,
            "restore-new-server",
            script(
                restoreCronEntries(args.dockerUser, `${newMain.migrationDir}/exchange-rates.cron`),
                restoreCronEntries(args.incrementalUser, incrementalJobsSaved(newMain)),
                sh`if [ -e ${saved} ] && [ ! -e ${args.backupsCron} ]; then cp -p ${saved} ${args.backupsCron}; fi`,
            ),
            { parent: this, dependsOn: [...inherited, ...args.after] },
        );
        this.registerOutputs({});
    }
}
