// data-support: the Open Contracting Partnership's data support main server (stack `main`) and
// its replica (stack `replica`), from the runbook "Data support". See README.md.
import * as pulumi from "@pulumi/pulumi";
import { loadStackConfig, type MainConfig, type ReplicaConfig } from "./components/config";
import { Host } from "./components/machinery/host";
import { MainServer } from "./components/mainServer";
import { ReplicaServer, type ReplicaServerArgs } from "./components/replicaServer";

// Validated before any resource is registered: bad config ends here with one message.
const cfg = loadStackConfig(pulumi.runtime.allConfig());

function mainOutputs(cfg: MainConfig) {
    const main = new MainServer("data-support", cfg);
    return {
        newServer: { hostname: main.hostname, ipv4: main.ipv4, ipv6: main.ipv6 ?? "" },
        postgresHostname: main.postgresHostname,
        rbcNotice: main.rbcNotice,
        pillar: main.pillar,
        // Read by the replica stack through a StackReference.
        replication: main.replicationPassword
            ? {
                  role: cfg.postgres.replication.role,
                  slot: cfg.postgres.replication.slot,
                  password: main.replicationPassword,
                  maxWorkerProcesses: main.maxWorkerProcesses,
              }
            : undefined,
    };
}

/** What the replica needs of the main: from explicit config, or the main stack's outputs. */
function mainSource(cfg: ReplicaConfig): ReplicaServerArgs["main"] {
    if (cfg.main) {
        const m = cfg.main;
        return { hostname: m.hostname, ipv4: m.ipv4, role: m.role, slot: m.slot, password: pulumi.secret(m.password), maxWorkerProcesses: String(m.maxWorkerProcesses) };
    }
    const mainStack = new pulumi.StackReference(cfg.mainStack);
    const server = mainStack.requireOutput("newServer") as pulumi.Output<{ hostname: string; ipv4: string }>;
    const replication = mainStack.getOutput("replication").apply((r) => {
        // A RunError: pulumi up prints the message alone (prefixed 'error serializing property "stdin"'), no stack.
        if (!r) throw new pulumi.RunError(`${cfg.mainStack} has no replication output: add servers.replica to the main stack's config and run pulumi up -s main first`);
        return r as { role: string; slot: string; password: string; maxWorkerProcesses: string };
    });
    return {
        hostname: server.hostname,
        ipv4: server.ipv4,
        role: replication.role,
        slot: replication.slot,
        password: pulumi.secret(replication.password),
        maxWorkerProcesses: replication.maxWorkerProcesses,
    };
}

function replicaOutputs(cfg: ReplicaConfig) {
    const settings = { stateDir: cfg.paths.stateDir, migrationId: cfg.migrationId, privateKey: cfg.ssh.privateKey, agentSocketPath: cfg.ssh.agentSocketPath };
    const replica = new Host("replica", cfg.servers.replica, settings);
    const server = new ReplicaServer("data-support-replica", { replica, pgVersion: cfg.postgres.version, main: mainSource(cfg) });
    return { replica: { hostname: replica.hostname, ipv4: replica.ipv4, ipv6: replica.ipv6 ?? "" }, status: server.status };
}

const outputs = cfg.role === "main" ? mainOutputs(cfg) : replicaOutputs(cfg);
export = outputs;
