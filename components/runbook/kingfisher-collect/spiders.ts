// Step 5 (Kingfisher Collect): once DNS points at the new server, deploy the spiders to its
// Scrapyd with scrapyd-deploy from the Kingfisher Collect checkout. One-off.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import type { Host } from "../../machinery/host";
import { asUser, sh } from "../../machinery/shell";

export interface SpiderDeployArgs {
    newMain: Host;
    user: string;
    checkout: string;
}

export class SpiderDeploy extends pulumi.ComponentResource {
    readonly done: pulumi.Resource[];

    constructor(name: string, args: SpiderDeployArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:collect:SpiderDeploy", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const deploy = args.newMain.oneOff(
            `${name}-deploy`,
            "deploy-spiders",
            asUser(args.user, sh`cd ${args.checkout} && ./.ve/bin/scrapyd-deploy kingfisher`),
            { parent: this, dependsOn: inherited },
        );
        this.done = [deploy];
        this.registerOutputs({});
    }
}
