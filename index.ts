// data-support: the Open Contracting Partnership's data support main server (stack `main`) and
// its replica (stack `replica`), from the runbook "Data support". See README.md.
import * as pulumi from "@pulumi/pulumi";
import { loadStackConfig, type MainConfig, type ReplicaConfig } from "./components/config";
import { Host } from "./components/host";
import { MainServer } from "./components/mainServer";
import { ReplicaServer } from "./components/replicaServer";

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

function replicaOutputs(cfg: ReplicaConfig) {
    const settings = { stateDir: cfg.paths.stateDir, migrationId: cfg.migrationId, privateKey: cfg.ssh.privateKey, agentSocketPath: cfg.ssh.agentSocketPath };
    const replica = new Host("replica", cfg.servers.replica, settings);
    const mainStack = new pulumi.StackReference(cfg.mainStack);
    const server = new ReplicaServer("data-support-replica", {
        replica,
        pgVersion: cfg.postgres.version,
        main: {
            hostname: mainStack.requireOutput("newServer").apply((s) => (s as { hostname: string }).hostname),
            ipv4: mainStack.requireOutput("newServer").apply((s) => (s as { ipv4: string }).ipv4),
            role: mainStack.requireOutput("replication").apply((r) => (r as { role: string }).role),
            slot: mainStack.requireOutput("replication").apply((r) => (r as { slot: string }).slot),
            password: pulumi.secret(mainStack.requireOutput("replication").apply((r) => (r as { password: string }).password)),
            maxWorkerProcesses: mainStack.requireOutput("replication").apply((r) => (r as { maxWorkerProcesses: string }).maxWorkerProcesses),
        },
    });
    return { replica: { hostname: replica.hostname, ipv4: replica.ipv4, ipv6: replica.ipv6 ?? "" }, status: server.status };
}

const outputs = cfg.role === "main" ? mainOutputs(cfg) : replicaOutputs(cfg);
export = outputs;
