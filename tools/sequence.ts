// The runbook's documented sequence (design.md, "The documented sequence") and which resources, by
// name, carry out each step. One list: the order tests check the graph against it, and the offline
// runbook takes its step numbers from it.

export interface Stage {
    /** The runbook's step number. */
    step: number;
    /** What this part of the step does. */
    what: string;
    /** The resources (by name) that carry it out. */
    names: RegExp;
    /** Set when the runbook has no such step: why we added it. */
    addition?: string;
}

export interface Sequence {
    /** Step number -> title, in the runbook's words. */
    titles: Record<number, string>;
    /** In order: each stage waits for every stage before it. */
    stages: Stage[];
    /** Stages outside that chain, placed by their own dependencies. */
    extra: Stage[];
}

// Each stage of `main` must wait for every resource of every stage before it (test/unit/order.test.ts).
const MAIN_STAGES: Stage[] = [
    { step: 1, what: "tinyproxy admits the new server (proven), the replica is admitted", names: /^data-support-(tinyproxy|replication)-/ },
    {
        step: 3,
        what: "gates: no Scrapyd job, no RabbitMQ message, asked before the halt",
        names: /^data-support-gates-(scrapyd|rabbitmq)$/,
        addition:
            "the runbook halts first (step 2 brings down Kingfisher Process and Pelican, the queues' consumers) and then waits for empty queues, which may never come; the gates are asked while the consumers still run, so queued messages drain.",
    },
    { step: 2, what: "docker uid check, new server's crons, old server's backups, crons and apps", names: /^data-support-halt-/ },
    {
        step: 3,
        what: "gates asked again right after the halt",
        names: /^data-support-gates-after-halt-(scrapyd|rabbitmq)$/,
        addition:
            "whatever arrived between the gates and the halt (a crawl scheduled, a message published) stops the run here, with a guide: bring the consumers up on the old server, let the queues drain, bring them down again, run pulumi up again.",
    },
    { step: 4, what: "docker apps: migrations, then pull and start", names: /^data-support-docker-/ },
    { step: 5, what: "DNS of the collect hostname points at the new server", names: /^data-support-collect-dns-/ },
    { step: 5, what: "deploy the spiders", names: /^data-support-spiders-/ },
    {
        step: 6,
        what: "gates asked again right before the copy",
        names: /^data-support-gates-before-copy-(scrapyd|rabbitmq)$/,
        addition:
            "a run stopped by a later gate (DNS) or a failure may resume days later: whatever started on the old server meanwhile stops the run before the copy, which cannot be undone.",
    },
    { step: 6, what: "stop the incremental user's crons and processes on the old and the new server", names: /^data-support-incremental-copy-stop-(old|new)-crons$/ },
    { step: 6, what: "copy kingfisher_collect, data/ and logs/, verified", names: /^data-support-incremental-copy-(database|files)$/ },
    { step: 6, what: "the incremental crons run on the new server", names: /^data-support-crawls-/ },
    { step: 7, what: "copy exchange_rates, verified", names: /^data-support-exchange-rates-/ },
    {
        step: 7,
        what: "revoke the transfer key, then delete it on the new server",
        names: /^data-support-transfer-(revoke|jump-revoke|forget)$/,
        addition: "the key that let the new server copy straight from the old one is removed from the old server once the copies are done, then deleted on the new server.",
    },
    { step: 8, what: "restore the exchange-rates cron and backups on the new server", names: /^data-support-restore-/ },
];

/** After step 1 and before step 6's copy, beside the halt: the transfer key and a first copy. */
export const PRESYNC: Stage = {
    step: 1,
    what: "transfer key, and a first copy of data/ and logs/ while the old server is live",
    names: /^data-support-(transfer-(keypair|grant|jump-grant)|incremental-copy-presync)$/,
    addition:
        "the new server gets a key the old server accepts for postgres and incremental only, for the copies' own commands only (sshd forces a dispatcher), for transfer.keyHours (12 by default), so steps 6 and 7 copy straight from old to new; data/ and logs/ are copied once before the halt, so the copy in step 6 moves only what changed.",
};

export const SEQUENCES: Record<"main" | "replica", Sequence> = {
    main: {
        titles: {
            1: "Dependencies",
            2: "Update Salt and halt jobs",
            3: "Gates",
            4: "Docker apps",
            5: "Kingfisher Collect",
            6: "Incremental data",
            7: "Pelican backend",
            8: "Restore Salt and start jobs",
            9: "Outputs",
        },
        stages: MAIN_STAGES,
        extra: [PRESYNC],
    },
    replica: {
        titles: { 1: "Create a data support replica server", 2: "Outputs" },
        stages: [{ step: 1, what: "the replica follows the main server as a hot standby", names: /^data-support-replica-/ }],
        extra: [],
    },
};

/** The stage a resource belongs to, or undefined when no stage names it. */
export function stageOf(sequence: Sequence, resourceName: string): Stage | undefined {
    return [...sequence.stages, ...sequence.extra].find((s) => s.names.test(resourceName));
}

/** The step that lists the stack's outputs: the last one. */
export function outputsStep(sequence: Sequence): number {
    return Math.max(...Object.keys(sequence.titles).map(Number));
}
