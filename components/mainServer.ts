// The `main` stack: a data support main server, composed in the runbook's documented order
// (design.md, "The documented sequence", steps 1 to 9). Each step depends on the one before, so
// `pulumi up` runs them in that order and stops at the first that fails; a re-run continues there.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./machinery/dependencies";
import type { MainConfig } from "./config";
import { Host } from "./machinery/host";
import { TinyproxyAllowlist, type AllowedEntry } from "./runbook/dependencies/tinyproxyAllowlist";
import { ReplicationSource } from "./runbook/dependencies/replicationSource";
import { HaltJobs } from "./runbook/halt-jobs/haltJobs";
import { JobsGate, oldServerIdleFor, type JobsGateArgs } from "./runbook/halt-jobs/jobsGate";
import { DockerApps } from "./runbook/docker-apps/dockerApps";
import { DnsGate } from "./runbook/kingfisher-collect/dnsGate";
import { SpiderDeploy } from "./runbook/kingfisher-collect/spiders";
import { TemporaryAccess } from "./machinery/temporaryAccess";
import { IncrementalCopy, incrementalTransfers } from "./runbook/copy-incremental-data/incrementalCopy";
import { IncrementalCrawls } from "./runbook/incremental-updates/incrementalCrawls";
import { ExchangeRatesCopy, exchangeRatesTransfers } from "./runbook/pelican-backend/exchangeRatesCopy";
import { RestoreJobs } from "./runbook/restore-jobs/restoreJobs";
import { crawlsPillar, replicaPillar, tinyproxyPillar } from "./pillar";

/** The tinyproxy allow list: the new server's addresses, then those that must stay. */
export function allowList(cfg: MainConfig): AllowedEntry[] {
    const server = cfg.servers.newMain;
    const own = [server.ipv4, server.ipv6].filter((a): a is string => a !== undefined).map((address) => ({ address, comment: `${server.hostname} (data support main)` }));
    return [...own, ...cfg.tinyproxy.keep];
}

/** What RBC Group must be told (runbook: Dependents). */
export function rbcNotice(cfg: MainConfig): string {
    const s = cfg.servers.newMain;
    return [
        "Hello RBC Group,",
        "",
        `The Open Contracting Partnership's data support PostgreSQL server has moved to a new server.`,
        `Please connect to ${cfg.postgres.publicHostname} (port 5432, TLS required).`,
        `It now resolves to ${s.hostname}: IPv4 ${s.ipv4}${s.ipv6 ? `, IPv6 ${s.ipv6}` : ""}.`,
        `If your firewall allows outgoing connections by address, please allow these addresses.`,
        "",
        "Thank you,",
        "Open Contracting Partnership",
    ].join("\n");
}

const PELICAN_BACKEND_DATABASE = "pelican_backend";

export class MainServer extends pulumi.ComponentResource {
    readonly hostname: string;
    readonly ipv4: string;
    readonly ipv6: string | undefined;
    readonly postgresHostname: string;
    readonly rbcNotice: string;
    readonly pillar: { tinyproxy: string; crawls: string; replica: string };
    readonly replicationPassword: pulumi.Output<string> | undefined;
    readonly maxWorkerProcesses: pulumi.Output<string> | undefined;

    constructor(name: string, cfg: MainConfig, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:main:MainServer", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const settings = {
            stateDir: cfg.paths.stateDir,
            migrationId: cfg.migrationId,
            privateKey: cfg.ssh.privateKey,
            agentSocketPath: cfg.ssh.agentSocketPath,
        };
        const oldMain = new Host("oldMain", cfg.servers.oldMain, settings);
        const newMain = new Host("newMain", cfg.servers.newMain, settings);
        const docs = new Host("docs", cfg.servers.docs, settings);
        const allow = allowList(cfg);
        const incremental = cfg.incremental;

        // 1. Dependencies: tinyproxy admits the new server (proven from it); the replica, if any.
        const proxy = new TinyproxyAllowlist(
            `${name}-tinyproxy`,
            {
                docs,
                port: cfg.tinyproxy.port,
                configPath: cfg.tinyproxy.configPath,
                guardPath: cfg.tinyproxy.configPath.replace(/[^/]+$/, "data-support-ipv6-guard.sh"),
                allow,
                client: newMain,
                checkUrl: cfg.tinyproxy.checkUrl,
            },
            { parent: this, dependsOn: inherited },
        );
        let replication: ReplicationSource | undefined;
        if (cfg.servers.replica) {
            replication = new ReplicationSource(
                `${name}-replication`,
                {
                    main: newMain,
                    replica: new Host("replica", cfg.servers.replica, settings),
                    role: cfg.postgres.replication.role,
                    slot: cfg.postgres.replication.slot,
                    pgVersion: cfg.postgres.version,
                },
                { parent: this, dependsOn: inherited },
            );
        }
        const dependencies: pulumi.Resource[] = replication ? [proxy, replication] : [proxy];

        // The transfer key is granted early, so data/ and logs/ can be pre-synced while the old
        // server is still live; it is revoked once steps 6 and 7 are done. It may run only the
        // commands of those copies, listed by the copy components themselves.
        const incrementalKey = incrementalTransfers(incremental);
        const access = new TemporaryAccess(
            `${name}-transfer`,
            {
                from: newMain,
                to: oldMain,
                users: [
                    { name: "postgres", home: "/var/lib/postgresql" },
                    { name: incremental.user, home: incremental.home },
                ],
                hours: cfg.transfer.keyHours,
                commands: [...incrementalKey.commands, ...exchangeRatesTransfers(PELICAN_BACKEND_DATABASE)],
                trees: incrementalKey.trees,
            },
            { parent: this, dependsOn: dependencies },
        );

        // The incremental copy (step 6) is built here, so that the gates can wait for its pre-sync:
        // the pre-sync runs while the old server is live, and the gates then come right before the
        // halt. Its copy steps wait for the last gates, which exist only further down: a promise.
        let releaseCopy!: (gate: pulumi.Resource) => void;
        const beforeCopy = new Promise<pulumi.Resource>((resolve) => (releaseCopy = resolve));
        const gateArgs: JobsGateArgs = {
            scrapyd: { ...cfg.gates.scrapyd },
            rabbitmq: { ...cfg.gates.rabbitmq },
            connect: oldMain.ipv4,
            consumers: { hostname: oldMain.hostname, user: cfg.docker.user, deployDir: cfg.docker.deployDir, apps: cfg.docker.apps },
        };
        const copy = new IncrementalCopy(
            `${name}-incremental-copy`,
            {
                oldMain,
                newMain,
                access,
                user: incremental.user,
                home: incremental.home,
                database: incremental.database,
                halted: [beforeCopy],
                // The before-copy gates, once passed, are in the state; the copies ask again themselves.
                oldServerIdle: oldServerIdleFor(gateArgs, "by the incremental copy (step 6) itself, as it began"),
            },
            { parent: this, dependsOn: inherited },
        );

        // 3, before 2. Gates: nothing crawls, nothing is queued, asked while the queues' consumers
        // (Kingfisher Process and Pelican, which the halt brings down) still run, so queued
        // messages can drain. The runbook halts first and then waits for empty queues, which with
        // the consumers down may never come (README, "Where we differ from the runbook").
        const gates = new JobsGate(`${name}-gates`, gateArgs, { parent: this, dependsOn: [...dependencies, copy.presync] });

        // 2. Halt.
        const halt = new HaltJobs(
            `${name}-halt`,
            {
                oldMain,
                newMain,
                dockerUser: cfg.docker.user,
                dockerUid: cfg.docker.uid,
                deployDir: cfg.docker.deployDir,
                apps: cfg.docker.apps,
                backupsCron: cfg.paths.postgresBackupsCron,
            },
            { parent: this, dependsOn: gates.passed },
        );
        // 3, again: whatever arrived between the gates and the halt (a crawl scheduled, a message
        // published) is caught here, before anything is started or copied.
        const halted = gates.askAgain("after-halt", `right after the halt of ${oldMain.hostname}`, halt.done);

        // 4. Docker apps on the new server.
        const docker = new DockerApps(
            `${name}-docker`,
            { newMain, user: cfg.docker.user, deployDir: cfg.docker.deployDir, apps: cfg.docker.apps, migrations: cfg.docker.migrations },
            { parent: this, dependsOn: halted },
        );

        // 5. Kingfisher Collect: DNS gate, then the spiders.
        const dns = new DnsGate(`${name}-collect-dns`, { hostname: cfg.gates.collectHostname, target: newMain }, { parent: this, dependsOn: docker.done });
        const spiders = new SpiderDeploy(
            `${name}-spiders`,
            { newMain, user: incremental.user, checkout: `${incremental.home}/kingfisher-collect` },
            { parent: this, dependsOn: dns.passed },
        );

        // 6. Incremental data (the copy built above), then the crawls run on the new server only.
        // The copy is what cannot be undone (after it the old server's crawls are gone for good),
        // and a run stopped by the DNS gate or a failure may resume days later: the gates are asked
        // once more right before it. That re-check, once passed, is in the state: the copies ask the
        // same question again themselves whenever they run (oldServerIdleFor above).
        releaseCopy(gates.askAgain("before-copy", `right before the incremental copy (step 6)`, spiders.done)[0]);
        const crawls = new IncrementalCrawls(
            `${name}-crawls`,
            {
                newMain,
                user: incremental.user,
                home: incremental.home,
                database: incremental.database,
                proxyUrl: `http://${docs.hostname}:${cfg.tinyproxy.port}`,
                sentryDsn: incremental.sentryDsn,
                crawls: incremental.crawls,
                after: copy.done,
            },
            { parent: this, dependsOn: inherited },
        );

        // 7. Pelican backend: exchange rates.
        const rates = new ExchangeRatesCopy(`${name}-exchange-rates`, { newMain, access, database: PELICAN_BACKEND_DATABASE, after: [crawls] }, { parent: this, dependsOn: inherited });
        const revoked = access.revokeAfter([...copy.done, ...rates.done]);

        // 8. Restore jobs on the new server.
        new RestoreJobs(
            `${name}-restore`,
            { newMain, dockerUser: cfg.docker.user, incrementalUser: incremental.user, backupsCron: cfg.paths.postgresBackupsCron, after: [...rates.done, revoked] },
            { parent: this, dependsOn: inherited },
        );

        // 9. Outputs.
        this.hostname = newMain.hostname;
        this.ipv4 = newMain.ipv4;
        this.ipv6 = newMain.ipv6;
        this.postgresHostname = cfg.postgres.publicHostname;
        this.rbcNotice = rbcNotice(cfg);
        this.pillar = {
            tinyproxy: tinyproxyPillar(allow),
            crawls: crawlsPillar(incremental.crawls),
            replica: replicaPillar(cfg.servers.replica),
        };
        this.replicationPassword = replication?.password;
        this.maxWorkerProcesses = replication?.maxWorkerProcesses;
        this.registerOutputs({ hostname: this.hostname, postgresHostname: this.postgresHostname });
    }
}
