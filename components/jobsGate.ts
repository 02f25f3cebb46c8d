// Step 3 (gates): no Scrapyd job running or pending (in any project), no message in any RabbitMQ
// queue. Checked from the operator's machine, as the runbook's browser checks are, but at the old
// server's address whatever DNS says: the collect hostname moves to the new server in step 5, and
// a run started (or resumed) after DNS moved would ask the new, idle server and pass while the old
// one still crawls. The URL's name stays the TLS name (SNI, certificate) and the HTTP Host.
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
    /** The old server's address: both gates connect there, whatever the URLs' names resolve to. */
    connect: string;
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
                create: sh`node scripts/gate.mjs scrapyd ${args.scrapyd.url} ${args.scrapyd.project} --connect ${args.connect}`,
                stdin: credentials(args.scrapyd),
                gate: `no Scrapyd job of any project (listprojects.json, with ${args.scrapyd.project}) is running or pending at ${args.scrapyd.url}, asked at ${args.connect} (the old server) whatever DNS says`,
            },
            { parent: this, dependsOn: inherited },
        );
        const queues = localCommand(
            `${name}-rabbitmq`,
            {
                create: sh`node scripts/gate.mjs rabbitmq ${args.rabbitmq.url} ${args.rabbitmq.vhost} --connect ${args.connect}`,
                stdin: credentials(args.rabbitmq),
                gate: `every RabbitMQ queue in vhost ${args.rabbitmq.vhost} at ${args.rabbitmq.url}, asked at ${args.connect} (the old server), is empty (a queue whose count is unknown counts as busy)`,
            },
            { parent: this, dependsOn: [...inherited, crawls] },
        );
        this.passed = [queues];
        this.registerOutputs({});
    }
}
