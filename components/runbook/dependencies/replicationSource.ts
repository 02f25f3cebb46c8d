// Step 1 (Dependencies, Replica) on the main server: the replica may connect for replication.
// A dedicated REPLICATION role with a generated password, a physical slot, and one `hostssl
// replication` line per replica address ("all" in pg_hba does not match replication).
// Desired state: removed cleanly (delete) when the replica leaves the config.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import * as random from "@pulumi/random";
import type { Host } from "../../machinery/host";
import { sh, script } from "../../machinery/shell";

export interface ReplicationSourceArgs {
    main: Host;
    replica: Host;
    role: string;
    slot: string;
    pgVersion: number;
}

/** The pg_hba.conf lines that admit the replica: /32 for IPv4, /128 for IPv6. */
export function replicationHbaLines(role: string, addresses: string[]): string[] {
    return addresses.map((a) => `hostssl replication ${role} ${a}/${a.includes(":") ? 128 : 32} scram-sha-256`);
}

export class ReplicationSource extends pulumi.ComponentResource {
    /** The replication role's password: secret from end to end. */
    readonly password: pulumi.Output<string>;
    /** The main's max_worker_processes: the standby must use the same value. */
    readonly maxWorkerProcesses: pulumi.Output<string>;

    constructor(name: string, args: ReplicationSourceArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:replication:ReplicationSource", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const password = new random.RandomPassword(`${name}-password`, { length: 40, special: false }, { parent: this, dependsOn: inherited });
        this.password = pulumi.secret(password.result);

        const cluster = `${args.pgVersion} main`;
        const hba = `/etc/postgresql/${args.pgVersion}/main/pg_hba.conf`;
        const begin = `# BEGIN data-support replication (${args.replica.hostname})`;
        const end = `# END data-support replication (${args.replica.hostname})`;
        const block = [begin, ...replicationHbaLines(args.role, args.replica.addresses), end].join("\n");
        // The role and slot the last apply made, so a renamed one can be dropped.
        const state = `${args.main.settings.stateDir}/replication`;
        // pg_hba.conf without any of our blocks, whatever replica each names: a main stack has one
        // replica, and the block of a replica renamed or replaced by another server must go with
        // it (else its addresses stay admitted, and the removal cannot release the slot).
        const withoutBlocks = sh`awk -v b=${"# BEGIN data-support replication ("} -v e=${"# END data-support replication ("} 'index($0, b) == 1 { skip = 1 } !skip { print } index($0, e) == 1 { skip = 0 }' ${hba} > "$tmp"`;
        const psql = sh`runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres`;
        // The password arrives on stdin, is read by the shell's `read` and handed to psql on its
        // stdin by printf (a builtin): it appears in no argv and no command text.
        const apply = script(
            sh`IFS= read -r pw`,
            sh`{ printf '%s\\n' "\\set pw $pw"; printf '%s\\n' ${`SELECT format(CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = '${args.role}') THEN 'ALTER ROLE %I WITH REPLICATION LOGIN PASSWORD %L' ELSE 'CREATE ROLE %I WITH REPLICATION LOGIN PASSWORD %L' END, '${args.role}', :'pw') \\gexec`} ${`SELECT pg_create_physical_replication_slot('${args.slot}') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '${args.slot}');`}; } | ${psql}`,
            sh`tmp=$(mktemp ${`${hba}.XXXXXX`})`,
            withoutBlocks,
            sh`printf '%s\\n' ${block} >> "$tmp"`,
            sh`if cmp -s "$tmp" ${hba}; then rm -f "$tmp"; else chown postgres:postgres "$tmp"; chmod 0640 "$tmp"; mv "$tmp" ${hba}; pg_ctlcluster ${cluster.split(" ")} reload; fi`,
            // A role or slot renamed in the config: the previous ones (kept in $state) go, once pg_hba
            // admits only the new role. A slot left behind would hold WAL on the main for ever.
            sh`state=${state}; prev=$(cat "$state" 2>/dev/null || true); read -r prev_role prev_slot <<< "$prev" || true`,
            sh`if [ -n "\${prev_slot:-}" ] && [ "$prev_slot" != ${args.slot} ]; then
  for _ in $(seq 50); do
    printf '%s\\n' ${"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = :'s' AND active;"} ${"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = :'s' AND NOT active;"} | ${psql} -v s="$prev_slot" >/dev/null 2>&1 || true
    left=$(printf '%s\\n' ${"SELECT count(*) FROM pg_replication_slots WHERE slot_name = :'s';"} | ${psql} -At -v s="$prev_slot"); [ "$left" = 0 ] && break; sleep 0.2
  done
  [ "$left" = 0 ] || { echo ${`${args.main.hostname}: the previous replication slot`} "$prev_slot" ${"is still in use; stop the standby that uses it, then run pulumi up again"} >&2; exit 1; }
fi`,
            sh`if [ -n "\${prev_role:-}" ] && [ "$prev_role" != ${args.role} ]; then printf '%s\\n' ${"SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE usename = :'r';"} ${'DROP ROLE IF EXISTS :"r";'} | ${psql} -v r="$prev_role" >/dev/null; fi`,
            sh`mkdir -p ${args.main.settings.stateDir}; printf '%s %s\\n' ${args.role} ${args.slot} > "$state"`,
            sh`echo ${`replication: role ${args.role}, slot ${args.slot}, pg_hba admits ${args.replica.addresses.join(" ")}`}`,
        );
        const remove = script(
            sh`tmp=$(mktemp ${`${hba}.XXXXXX`})`,
            withoutBlocks,
            sh`chown postgres:postgres "$tmp"; chmod 0640 "$tmp"; mv "$tmp" ${hba}; pg_ctlcluster ${cluster.split(" ")} reload`,
            // pg_hba is read at connect time only: end the replica's running connections, so the
            // slot is released (the replica cannot connect again) and can be dropped.
            sh`${psql} -c ${`SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE usename = '${args.role}'`} >/dev/null`,
            sh`for _ in $(seq 50); do busy=$(${psql} -At -c ${`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${args.slot}' AND active`}); [ "$busy" = 0 ] && break; sleep 0.2; done`,
            sh`printf '%s\\n' ${`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${args.slot}';`} ${`DROP ROLE IF EXISTS ${args.role};`} | ${psql}`,
            sh`rm -f ${state}`,
            sh`echo ${`replication: role ${args.role} and slot ${args.slot} removed; pg_hba no longer admits ${args.replica.hostname}`}`,
        );
        const source = args.main.command(
            `${name}-source`,
            { create: apply, update: apply, delete: remove, stdin: pulumi.interpolate`${this.password}\n` },
            { parent: this, dependsOn: inherited },
        );
        const workers = args.main.command(
            `${name}-max-worker-processes`,
            { create: sh`${psql} -At -c 'SHOW max_worker_processes'`, triggers: [args.main.hostname] },
            { parent: this, dependsOn: [...inherited, source] },
        );
        this.maxWorkerProcesses = workers.stdout.apply((s) => s.trim());
        this.registerOutputs({ maxWorkerProcesses: this.maxWorkerProcesses });
    }
}
