// The `replica` stack: (re)points the replica at the current main server as a hot standby.
// Base backup from the main through the replication slot, standby settings, start, then proof
// that WAL streams. A change of main (hostname, address) replaces the standby: the replica is
// re-pointed with no manual step. It never wipes a primary.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./machinery/dependencies";
import { Host } from "./machinery/host";
import { sh, script } from "./machinery/shell";

export interface ReplicaServerArgs {
    replica: Host;
    pgVersion: number;
    main: {
        hostname: pulumi.Input<string>;
        ipv4: pulumi.Input<string>;
        role: pulumi.Input<string>;
        slot: pulumi.Input<string>;
        password: pulumi.Input<string>;
        maxWorkerProcesses: pulumi.Input<string>;
    };
}

export class ReplicaServer extends pulumi.ComponentResource {
    readonly status: pulumi.Output<string>;

    constructor(name: string, args: ReplicaServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:replica:ReplicaServer", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const { replica, pgVersion } = args;
        const data = `/var/lib/postgresql/${pgVersion}/main`;
        const conf = `/etc/postgresql/${pgVersion}/main/conf.d/data-support-standby.conf`;
        const cluster = [String(pgVersion), "main"];
        // Everything the main provides arrives on stdin as one JSON line (the password is secret),
        // so no value reaches the command text and a change of main changes only stdin + triggers.
        const stdin = pulumi
            .all([args.main.hostname, args.main.ipv4, args.main.role, args.main.slot, args.main.password, args.main.maxWorkerProcesses])
            .apply(([hostname, ipv4, role, slot, password, workers]) => JSON.stringify({ hostname, ipv4, role, slot, password, workers }) + "\n");
        const field = (key: string) => sh`$(printf '%s' "$main" | python3 -c ${`import json,sys; print(json.load(sys.stdin)[${JSON.stringify(key)}])`})`;
        const repoint = script(
            sh`IFS= read -r main`,
            sh`host=${field("ipv4")} role=${field("role")} slot=${field("slot")} password=${field("password")} workers=${field("workers")} main_name=${field("hostname")}`,
            // Refuse to wipe a primary: only a standby, or a cluster with no database of its own, is replaced.
            sh`if [ -d ${data} ] && [ ! -e ${`${data}/standby.signal`} ]; then
  own=$(runuser -u postgres -- psql -X -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')" 2>/dev/null || echo unknown)
  if [ "$own" != 0 ]; then echo ${`${replica.hostname}: ${data} is not a standby (no standby.signal) and holds databases; refusing to wipe a primary. If it is really to become a replica, move it away yourself, then run pulumi up again.`} >&2; exit 1; fi
fi`,
            sh`pgpass=/var/lib/postgresql/.pgpass`,
            sh`umask 077; printf '%s:5432:replication:%s:%s\\n' "$host" "$role" "$password" > "$pgpass"; chown postgres: "$pgpass"; chmod 0600 "$pgpass"`,
            sh`pg_ctlcluster ${cluster} stop || true`,
            sh`rm -rf ${`${data}.new`}; install -d -m 0700 -o postgres -g postgres ${`${data}.new`}`,
            sh`runuser -u postgres -- pg_basebackup -h "$host" -U "$role" -S "$slot" -X stream -D ${`${data}.new`} -d "sslmode=require application_name=${replica.hostname.split(".")[0]}" -w --no-password --checkpoint=fast`,
            sh`touch ${`${data}.new/standby.signal`}; chown postgres: ${`${data}.new/standby.signal`}`,
            sh`rm -rf ${`${data}.old`}; if [ -d ${data} ]; then mv ${data} ${`${data}.old`}; fi; mv ${`${data}.new`} ${data}`,
            sh`install -d -o postgres -g postgres ${`/etc/postgresql/${pgVersion}/main/conf.d`}`,
            sh`printf '%s\\n' "# Managed by data-support (Pulumi): standby of $main_name" "primary_conninfo = 'host=$host port=5432 user=$role sslmode=require application_name=${replica.hostname.split(".")[0]}'" "primary_slot_name = '$slot'" "hot_standby = on" "hot_standby_feedback = on" "max_worker_processes = $workers" > ${conf}`,
            sh`chown postgres: ${conf}`,
            sh`pg_ctlcluster ${cluster} start`,
            sh`for _ in $(seq 60); do s=$(runuser -u postgres -- psql -X -At -d postgres -c 'SELECT status FROM pg_stat_wal_receiver' 2>/dev/null || true); [ "$s" = streaming ] && break; sleep 1; done`,
            sh`if [ "$s" != streaming ]; then echo ${`${replica.hostname}: the standby does not stream WAL from`} "$main_name ($host); see /var/log/postgresql/postgresql-${pgVersion}-main.log" >&2; exit 1; fi`,
            sh`rm -rf ${`${data}.old`}`,
            sh`echo "${replica.hostname}: streaming from $main_name"`,
        );
        const standby = replica.command(
            `${name}-standby`,
            { create: repoint, stdin: pulumi.secret(stdin), triggers: [args.main.hostname, args.main.ipv4] },
            { parent: this, dependsOn: inherited },
        );
        this.status = standby.stdout;
        this.registerOutputs({ status: this.status });
    }
}
