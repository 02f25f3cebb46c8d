// Step 5 (gate): "Once DNS has propagated". The collect hostname must resolve, as the operator
// sees it, to the new server's addresses only. Fails until then; the next `up` checks again.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import type { Host } from "../../machinery/host";
import { localCommand } from "../../machinery/operator";
import { sh } from "../../machinery/shell";

export interface DnsGateArgs {
    hostname: string;
    target: Host;
}

export class DnsGate extends pulumi.ComponentResource {
    readonly passed: pulumi.Resource[];

    constructor(name: string, args: DnsGateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:gates:DnsGate", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const check = localCommand(
            `${name}-dns`,
            {
                create: sh`node scripts/gate.mjs dns ${args.hostname} ${args.target.addresses}`,
                gate:
                    `${args.hostname} resolves, as the operator's machine sees it, to ${args.target.ipv4} only` +
                    (args.target.ipv6 ? `, and any AAAA record to ${args.target.ipv6}` : `, with no AAAA record`),
            },
            { parent: this, dependsOn: inherited },
        );
        this.passed = [check];
        this.registerOutputs({});
    }
}
