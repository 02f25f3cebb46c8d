// Expected values written out by hand from the runbook (design.md, "The documented sequence"),
// never computed by the code under test (tools/sequence.ts maps names to steps for the program;
// the tests hold it to this list).

/** The main stack's stages in order, each with the resources that carry it out (with a replica). */
export const MAIN_STAGES: [string, string[]][] = [
    [
        "1 tinyproxy admits the new server (proven), the replica is admitted",
        [
            "data-support-replication-password",
            "data-support-tinyproxy-ipv6-guard",
            "data-support-tinyproxy-config",
            "data-support-replication-source",
            "data-support-tinyproxy-proof",
            "data-support-replication-max-worker-processes",
        ],
    ],
    // The gates come before the halt, while the queues' consumers still run (README, "Where we differ").
    ["3 gates: no Scrapyd job, no RabbitMQ message, asked before the halt", ["data-support-gates-scrapyd", "data-support-gates-rabbitmq"]],
    [
        // With the WAL gate: the new server must not archive into the old server's pgBackRest stanza.
        "2 docker uid check, new server's crons, old server's backups, crons and apps",
        ["data-support-halt-docker-uid-check", "data-support-halt-old-wal-archiving", "data-support-halt-wal-archiving-check", "data-support-halt-new-server", "data-support-halt-old-server"],
    ],
    ["3 gates asked again right after the halt", ["data-support-gates-after-halt-scrapyd", "data-support-gates-after-halt-rabbitmq"]],
    [
        "4 docker apps: migrations, then pull and start",
        [
            "data-support-docker-migrate-kingfisher-process",
            "data-support-docker-migrate-pelican-frontend",
            "data-support-docker-start-kingfisher-process",
            "data-support-docker-start-pelican-backend",
            "data-support-docker-start-pelican-frontend",
        ],
    ],
    ["5 DNS of the collect hostname points at the new server", ["data-support-collect-dns-dns"]],
    ["5 deploy the spiders", ["data-support-spiders-deploy"]],
    ["6 gates asked again right before the copy", ["data-support-gates-before-copy-scrapyd", "data-support-gates-before-copy-rabbitmq"]],
    ["6 stop the incremental user's crons and processes on the old and the new server", ["data-support-incremental-copy-stop-old-crons", "data-support-incremental-copy-stop-new-crons"]],
    ["6 copy kingfisher_collect, data/ and logs/, verified", ["data-support-incremental-copy-database", "data-support-incremental-copy-files"]],
    [
        "6 the incremental crons run on the new server",
        [
            "data-support-crawls-dominican_republic-read-access",
            "data-support-crawls-ecuador-read-access",
            "data-support-crawls-dominican_republic",
            "data-support-crawls-ecuador",
            "data-support-crawls-crontab",
        ],
    ],
    ["7 copy exchange_rates, verified", ["data-support-exchange-rates-copy"]],
    // The fixture has no jump host (data-support-transfer-jump-grant and -jump-revoke come with one).
    ["7 revoke the transfer key, then delete it on the new server", ["data-support-transfer-revoke", "data-support-transfer-forget"]],
    ["8 restore the exchange-rates cron and backups on the new server", ["data-support-restore-new-server"]],
];

/** Placed by their own dependencies: after step 1, before step 6's copies (numbered 1 in the runbook). */
export const PRESYNC = ["data-support-transfer-keypair", "data-support-transfer-grant", "data-support-incremental-copy-presync"];

/** Resource name -> the runbook's step number (with a replica; without one, the replication names are absent). */
export const MAIN_STEP_OF: Record<string, number> = {
    ...Object.fromEntries(MAIN_STAGES.flatMap(([label, names]) => names.map((n) => [n, Number(label.split(" ")[0])]))),
    ...Object.fromEntries(PRESYNC.map((n) => [n, 1])),
};

export const REPLICATION = ["data-support-replication-password", "data-support-replication-source", "data-support-replication-max-worker-processes"];
