// Step 4 (Docker apps) on the new server, as the docker user, in each app's directory: the
// Django migrations first (kingfisher-process through `cron`, pelican-frontend through `web`),
// then pull the images and start each app. One-off.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import type { Host } from "../../machinery/host";
import { asUser, sh } from "../../machinery/shell";

export interface DockerAppsArgs {
    newMain: Host;
    user: string;
    deployDir: string;
    apps: string[];
    migrations: { app: string; service: string }[];
}

export class DockerApps extends pulumi.ComponentResource {
    readonly done: pulumi.Resource[];

    constructor(name: string, args: DockerAppsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:docker:DockerApps", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const host = args.newMain;
        let previous: pulumi.Resource[] = [];
        for (const { app, service } of args.migrations) {
            const step = host.oneOff(
                `${name}-migrate-${app}`,
                `migrate-${app}`,
                asUser(args.user, sh`cd ${`${args.deployDir}/${app}`} && docker compose run --rm --name django-migrate ${service} python manage.py migrate`),
                { parent: this, dependsOn: [...inherited, ...previous] },
            );
            previous = [step];
        }
        for (const app of args.apps) {
            const step = host.oneOff(
                `${name}-start-${app}`,
                `start-${app}`,
                asUser(args.user, sh`cd ${`${args.deployDir}/${app}`} && docker compose pull && docker compose up -d`),
                { parent: this, dependsOn: [...inherited, ...previous] },
            );
            previous = [step];
        }
        this.done = previous;
        this.registerOutputs({});
    }
}
