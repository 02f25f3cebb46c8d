// Step 3 (gates): no Scrapyd job running or pending, no message in any RabbitMQ queue. Checked
// from the operator's machine against the public endpoints, as the runbook's browser checks are.
// A gate that fails stops the run (a failed create records no state): the next `up` checks again.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import { localCommand } from "./operator";
import { sh } from "./shell";

export interface Endpoint {
    url: string;
    username: string;
    password: string;
}

export interface JobsGateArgs {
    scrapyd: Endpoint & { project: string };
    rabbitmq: Endpoint & { vhost: string };
}

function credentials(endpoint: Endpoint): pulumi.Output<string> {
    return pulumi.secret(JSON.stringify({ username: endpoint.username, password: endpoint.password }));
}

export class JobsGate extends pulumi.ComponentResource {
    readonly passed: pulumi.Resource[];

    constructor(name: string, args: JobsGateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:gates:JobsGate", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const crawls = localCommand(
            `${name}-scrapyd`,
            {
                create: sh`node scripts/gate.mjs scrapyd ${args.scrapyd.url} ${args.scrapyd.project}`,
                stdin: credentials(args.scrapyd),
                gate: `no Scrapyd job of project ${args.scrapyd.project} is running or pending at ${args.scrapyd.url}`,
            },
            { parent: this, dependsOn: inherited },
        );
        const queues = localCommand(
            `${name}-rabbitmq`,
            {
                create: sh`node scripts/gate.mjs rabbitmq ${args.rabbitmq.url} ${args.rabbitmq.vhost}`,
                stdin: credentials(args.rabbitmq),
                gate: `every RabbitMQ queue in vhost ${args.rabbitmq.vhost} at ${args.rabbitmq.url} is empty (a queue whose count is unknown counts as busy)`,
            },
            { parent: this, dependsOn: [...inherited, crawls] },
        );
        this.passed = [queues];
        this.registerOutputs({});
    }
}
