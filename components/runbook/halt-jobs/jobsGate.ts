// Step 3 (gates): no Scrapyd job running or pending (in any project), no message in any RabbitMQ
// queue. Asked three times (README, "Where we differ from the runbook"): before the halt, while the
// queues' consumers (Kingfisher Process, Pelican) still run, so that queued messages can drain;
// again right after the halt, for anything that arrived in between (then the consumers are down,
// and the failure says how to bring them up, let the queues drain and bring them down again); and
// again right before the incremental copy, because a run stopped by a later gate or a failure may
// resume days later, and whatever started on the old server meanwhile must end before it is copied. Checked from the operator's machine, as the runbook's browser checks are, but at the old
// server's address whatever DNS says: the collect hostname moves to the new server in step 5, and
// a run started (or resumed) after DNS moved would ask the new, idle server and pass while the old
// one still crawls. The URL's name stays the TLS name (SNI, certificate) and the HTTP Host.
// A gate that fails stops the run (a failed create records no state): the next `up` checks again.
// A gate that passed is in the state and is not asked again, whatever edit follows (PASSED below);
// the incremental copy, the step that cannot be undone, asks the same question itself whenever it
// runs (oldServerIdle.ts), so a run that fails after the last re-check and resumes later is covered.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import { localCommand } from "../../machinery/operator";
import { asUser, sh, ShellText } from "../../machinery/shell";
import { oldServerIdleCheck, oldServerIdleStdin } from "./oldServerIdle";

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
    /** The old server's Docker Compose apps (the queues' consumers): the re-checks' guide names them. */
    consumers: { hostname: string; user: string; deployDir: string; apps: string[] };
}

/**
 * What to do when a re-check after the halt finds work: the halt has brought the consumers down, so
 * queued messages would never drain. Bring them up, let the queues drain, bring them down again.
 */
export function consumersGuide(when: string, c: JobsGateArgs["consumers"]): string {
    const compose = (verb: string) => c.apps.map((app) => `    ${asUser(c.user, sh`cd ${`${c.deployDir}/${app}`} && docker compose ${new ShellText(verb)}`).text}`).join("\n");
    return [
        `This gate was asked again ${when}: the work above arrived after the gates first passed, and the halt (step 2) has brought down the queues' consumers on ${c.hostname} (its Docker Compose apps), so queued messages cannot drain. Nothing after this gate has run. On ${c.hostname}, as root:`,
        `  1. bring the apps back up:`,
        compose("up -d"),
        `  2. wait until no crawl runs and every queue is empty (the gate's URLs above);`,
        `  3. bring them down again:`,
        compose("down"),
        `  4. run pulumi up again.`,
    ].join("\n");
}

/**
 * The update of a gate that passed: nothing. @pulumi/command 1.2.1 runs `create` again on any change
 * of input when `update` is unset (provider/pkg/provider/local/commandController.go, Update), and a
 * re-check's command text holds the consumers' guide, which names the Docker apps: editing
 * `docker.apps` after the migration would ask the old server again (and fail once it is gone). A
 * passed gate is not asked again by a resumed run either (it is in the state), and an edit of the
 * config says nothing new about the old server; the step that cannot be undone asks for itself
 * whenever it runs (the copy: oldServerIdle.ts). A gate that did not pass has no state (a failed
 * create records nothing), so it is created, and asked, again.
 */
const PASSED = sh`true`;

/** The gates' question as the incremental copy asks it itself, with the re-checks' guide (oldServerIdle.ts). */
export function oldServerIdleFor(args: JobsGateArgs, why: string): { check: ShellText; stdin: pulumi.Output<string> } {
    return { check: oldServerIdleCheck(args, consumersGuide(why, args.consumers)), stdin: oldServerIdleStdin(args) };
}

function credentials(endpoint: Endpoint): pulumi.Output<string> {
    return pulumi.secret(JSON.stringify({ username: endpoint.username, password: endpoint.password }));
}

export class JobsGate extends pulumi.ComponentResource {
    readonly passed: pulumi.Resource[];

    private readonly args: JobsGateArgs;
    private readonly baseName: string;

    constructor(name: string, args: JobsGateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:gates:JobsGate", name, {}, opts);
        this.args = args;
        this.baseName = name;
        this.passed = this.ask(name, undefined, inheritedDependsOn(opts));
        this.registerOutputs({});
    }

    /**
     * The same two gates asked again once `after` is done, as resources `<name>-<when>-scrapyd` and
     * `-rabbitmq`; a failure ends with the consumers' guide. Like every gate, a failed one records
     * nothing, so the next `up` asks it again.
     */
    askAgain(when: string, why: string, after: pulumi.Resource[]): pulumi.Resource[] {
        return this.ask(`${this.baseName}-${when}`, { why, guide: consumersGuide(why, this.args.consumers) }, after);
    }

    private ask(name: string, again: { why: string; guide: string } | undefined, dependsOn: pulumi.Resource[]): pulumi.Resource[] {
        const { args } = this;
        const said = again ? `; asked again ${again.why}` : "";
        const orGuide = (gate: ShellText) => (again ? sh`${gate} || { printf '%s\\n' ${again.guide} >&2; exit 1; }` : gate);
        const crawls = localCommand(
            `${name}-scrapyd`,
            {
                create: orGuide(sh`node scripts/gate.mjs scrapyd ${args.scrapyd.url} ${args.scrapyd.project} --connect ${args.connect}`),
                update: PASSED,
                stdin: credentials(args.scrapyd),
                gate: `no Scrapyd job of any project (listprojects.json, with ${args.scrapyd.project}) is running or pending at ${args.scrapyd.url}, asked at ${args.connect} (the old server) whatever DNS says${said}`,
            },
            { parent: this, dependsOn },
        );
        const queues = localCommand(
            `${name}-rabbitmq`,
            {
                create: orGuide(sh`node scripts/gate.mjs rabbitmq ${args.rabbitmq.url} ${args.rabbitmq.vhost} --connect ${args.connect}`),
                update: PASSED,
                stdin: credentials(args.rabbitmq),
                gate: `every RabbitMQ queue in vhost ${args.rabbitmq.vhost} at ${args.rabbitmq.url}, asked at ${args.connect} (the old server), is empty (a queue whose count is unknown counts as busy)${said}`,
            },
            { parent: this, dependsOn: [...dependsOn, crawls] },
        );
        return [queues];
    }
}
