// Where each resource sits in the tree, and what makes the docker uid check run again: a resource
// whose parent changes gets another URN, and the engine would replace it in users' state (design.md:
// resource names and types never change). Expected values written out.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { mainConfig, withReplica } from "../support/fixtures";
import { runProgram } from "../../tools/program";
import { inheritedDependsOn } from "../../components/machinery/dependencies";

const M = "data-support:main:MainServer$data-support:";
// Name -> the parent's URN without its "urn:pulumi:<stack>::<project>::" head.
const PARENTS: [string, string][] = [
    ["data-support-collect-dns-dns", M + "gates:DnsGate::data-support-collect-dns"],
    ["data-support-crawls-crontab", M + "incremental:IncrementalCrawls::data-support-crawls"],
    ["data-support-crawls-dominican_republic", M + "incremental:IncrementalCrawls::data-support-crawls"],
    ["data-support-crawls-dominican_republic-read-access", M + "incremental:IncrementalCrawls::data-support-crawls"],
    ["data-support-crawls-ecuador", M + "incremental:IncrementalCrawls::data-support-crawls"],
    ["data-support-crawls-ecuador-read-access", M + "incremental:IncrementalCrawls::data-support-crawls"],
    ["data-support-docker-migrate-kingfisher-process", M + "docker:DockerApps::data-support-docker"],
    ["data-support-docker-migrate-pelican-frontend", M + "docker:DockerApps::data-support-docker"],
    ["data-support-docker-start-kingfisher-process", M + "docker:DockerApps::data-support-docker"],
    ["data-support-docker-start-pelican-backend", M + "docker:DockerApps::data-support-docker"],
    ["data-support-docker-start-pelican-frontend", M + "docker:DockerApps::data-support-docker"],
    ["data-support-exchange-rates-copy", M + "pelican:ExchangeRatesCopy::data-support-exchange-rates"],
    ["data-support-gates-after-halt-rabbitmq", M + "gates:JobsGate::data-support-gates"],
    ["data-support-gates-after-halt-scrapyd", M + "gates:JobsGate::data-support-gates"],
    ["data-support-gates-before-copy-rabbitmq", M + "gates:JobsGate::data-support-gates"],
    ["data-support-gates-before-copy-scrapyd", M + "gates:JobsGate::data-support-gates"],
    ["data-support-gates-rabbitmq", M + "gates:JobsGate::data-support-gates"],
    ["data-support-gates-scrapyd", M + "gates:JobsGate::data-support-gates"],
    ["data-support-halt-docker-uid-check", M + "migration:HaltJobs::data-support-halt"],
    ["data-support-halt-new-server", M + "migration:HaltJobs::data-support-halt"],
    ["data-support-halt-old-server", M + "migration:HaltJobs::data-support-halt"],
    ["data-support-halt-old-wal-archiving", M + "migration:HaltJobs::data-support-halt"],
    ["data-support-halt-wal-archiving-check", M + "migration:HaltJobs::data-support-halt"],
    ["data-support-incremental-copy-database", M + "incremental:IncrementalCopy::data-support-incremental-copy"],
    ["data-support-incremental-copy-files", M + "incremental:IncrementalCopy::data-support-incremental-copy"],
    ["data-support-incremental-copy-presync", M + "incremental:IncrementalCopy::data-support-incremental-copy"],
    ["data-support-incremental-copy-stop-new-crons", M + "incremental:IncrementalCopy::data-support-incremental-copy"],
    ["data-support-incremental-copy-stop-old-crons", M + "incremental:IncrementalCopy::data-support-incremental-copy"],
    ["data-support-replication-max-worker-processes", M + "replication:ReplicationSource::data-support-replication"],
    ["data-support-replication-password", M + "replication:ReplicationSource::data-support-replication"],
    ["data-support-replication-source", M + "replication:ReplicationSource::data-support-replication"],
    ["data-support-restore-new-server", M + "migration:RestoreJobs::data-support-restore"],
    ["data-support-spiders-deploy", M + "collect:SpiderDeploy::data-support-spiders"],
    ["data-support-tinyproxy-config", M + "tinyproxy:TinyproxyAllowlist::data-support-tinyproxy"],
    ["data-support-tinyproxy-ipv6-guard", M + "tinyproxy:TinyproxyAllowlist::data-support-tinyproxy"],
    ["data-support-tinyproxy-proof", M + "tinyproxy:TinyproxyAllowlist::data-support-tinyproxy"],
    ["data-support-transfer-forget", M + "migration:TemporaryAccess::data-support-transfer"],
    ["data-support-transfer-grant", M + "migration:TemporaryAccess::data-support-transfer"],
    ["data-support-transfer-keypair", M + "migration:TemporaryAccess::data-support-transfer"],
    ["data-support-transfer-revoke", M + "migration:TemporaryAccess::data-support-transfer"],
];

test("every resource of the main stack (with a replica) has the parent written out here", async () => {
    const run = await runProgram(withReplica(mainConfig()));
    const got = run.resources.map((r) => [r.name, r.parent.split("::").slice(2).join("::")]).sort(([a], [b]) => a.localeCompare(b));
    assert.deepEqual(got, [...PARENTS].sort(([a], [b]) => a.localeCompare(b)));
});

test("the docker uid check runs again when docker.user or docker.uid changes (its triggers)", async () => {
    const run = await runProgram(mainConfig({ docker: { ...mainConfig().docker, user: "deployer2", uid: 1234 } }));
    const check = run.resources.find((r) => r.name === "data-support-halt-docker-uid-check");
    assert.deepEqual(check?.inputs.triggers, ["deployer2", 1234]);
});

test("inheritedDependsOn: nothing, a list, one resource; anything else is refused", () => {
    // A stand-in resource: what pulumi.Resource.isInstance looks for.
    const one = { __pulumiResource: true } as unknown as pulumi.Resource;
    assert.deepEqual(inheritedDependsOn(undefined), []);
    assert.deepEqual(inheritedDependsOn({}), []);
    assert.deepEqual(inheritedDependsOn({ dependsOn: [one] }), [one]);
    const single = inheritedDependsOn({ dependsOn: one });
    assert.equal(single.length, 1);
    assert.equal(single[0], one);
    assert.throws(() => inheritedDependsOn({ dependsOn: Promise.resolve([one]) }), /^Error: components take dependsOn as a plain list of resources$/);
});

/** A replica stack told its main in config (no StackReference). */
const replicaStack = () => ({
    role: "replica",
    servers: { replica: { hostname: "ocp24.open-contracting.org", ipv4: "198.51.100.24", ssh: { hostKey: mainConfig().servers.newMain.ssh.hostKey } } },
    main: { hostname: "ocp23.open-contracting.org", ipv4: "198.51.100.23", password: "replication-password-0123", maxWorkerProcesses: 8 },
});

test("the replica stack: its one command under the ReplicaServer", async () => {
    const run = await runProgram(replicaStack(), { stack: "replica" });
    assert.deepEqual(
        run.resources.map((r) => [r.name, r.parent, r.dependencies]),
        [["data-support-replica-standby", "urn:pulumi:replica::data-support::data-support:replica:ReplicaServer::data-support-replica", []]],
    );
});

test("each component's outputs, as the engine keeps them in the stack's state", async () => {
    // Each command's stdout names the command; the main's max_worker_processes as psql prints it.
    const execute = async (r: { name: string; inputs: Record<string, unknown> }) => ({
        id: `${r.name}-id`,
        state: { ...r.inputs, stdout: r.name === "data-support-replication-max-worker-processes" ? "16\n" : `${r.name} stdout`, stderr: "" },
    });
    const main = await runProgram(withReplica(mainConfig()), { execute });
    assert.deepEqual(main.componentOutputs, {
        "data-support": { hostname: "ocp23.open-contracting.org", postgresHostname: "postgres.kingfisher.open-contracting.org" },
        "data-support-collect-dns": {},
        "data-support-crawls": { crontab: "data-support-crawls-crontab stdout" },
        "data-support-docker": {},
        "data-support-exchange-rates": {},
        "data-support-gates": {},
        "data-support-halt": {},
        "data-support-incremental-copy": {},
        // Trimmed: the replica stack writes it into postgresql.conf as a number.
        "data-support-replication": { maxWorkerProcesses: "16" },
        "data-support-restore": {},
        "data-support-spiders": {},
        "data-support-tinyproxy": { proof: "data-support-tinyproxy-proof stdout" },
        "data-support-transfer": {},
    });
    assert.equal(main.outputs.replication && (main.outputs.replication as any).maxWorkerProcesses, "16");
    const replica = await runProgram(replicaStack(), { stack: "replica", execute });
    assert.deepEqual(replica.componentOutputs, { "data-support-replica": { status: "data-support-replica-standby stdout" } });
});

test("the main stack's rbcNotice: what RBC Group is told, written out, with and without IPv6", async () => {
    const notice = (ipv6: string) =>
        [
            "Hello RBC Group,",
            "",
            "The Open Contracting Partnership's data support PostgreSQL server has moved to a new server.",
            "Please connect to postgres.kingfisher.open-contracting.org (port 5432, TLS required).",
            `It now resolves to ocp23.open-contracting.org: IPv4 198.51.100.23${ipv6}.`,
            "If your firewall allows outgoing connections by address, please allow these addresses.",
            "",
            "Thank you,",
            "Open Contracting Partnership",
        ].join("\n");
    assert.equal((await runProgram(mainConfig())).outputs.rbcNotice, notice(", IPv6 2001:db8:d5::23"));
    const noIpv6 = mainConfig();
    delete noIpv6.servers.newMain.ipv6;
    assert.equal((await runProgram(noIpv6)).outputs.rbcNotice, notice(""));
});

test("the tinyproxy proof runs again when the allow list changes, and only then (its triggers)", async () => {
    const triggersOf = async (config: Record<string, any>) => (await runProgram(config)).resources.find((r) => r.name === "data-support-tinyproxy-proof")?.inputs.triggers;
    const first = await triggersOf(mainConfig());
    assert.equal(first.length, 1);
    assert.match(first[0], /^[0-9a-f]{64}$/);
    assert.deepEqual(await triggersOf(mainConfig()), first);
    const more = mainConfig();
    more.tinyproxy.keep.push({ address: "198.51.100.11", comment: "ocp11 (collect)" });
    assert.notDeepEqual(await triggersOf(more), first);
});
