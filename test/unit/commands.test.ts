// Every remote command gets the design's defaults, and the program itself runs nothing.
import { test } from "node:test";
import * as assert from "node:assert/strict";
// The CommonJS module object itself, so that its functions can be replaced for the test.
const childProcess = require("node:child_process");
import { mainConfig, withReplica } from "../support/fixtures";
import { runProgram } from "../../tools/program";

test("remote commands: no environment, no previous output in env, host key pinned", async () => {
    const run = await runProgram(withReplica(mainConfig()));
    const commands = run.resources.filter((r) => r.type.startsWith("command:"));
    assert.ok(commands.length > 20);
    for (const c of commands) {
        assert.equal(c.inputs.environment, undefined, `${c.name}: environment is set`);
        assert.equal(c.inputs.addPreviousOutputInEnv, false, `${c.name}: addPreviousOutputInEnv must be false`);
        if (c.type === "command:remote:Command") {
            assert.match(c.inputs.connection.hostKey, /^ssh-ed25519 /, `${c.name}: host key not pinned`);
            assert.match(c.inputs.create, /^set -euo pipefail; cd \/\n/, `${c.name}: create must start with the strict prelude`);
        }
    }
});

/** The warnings one run of the program gives (pulumi.log.warn), in order. */
async function warningsOf(config: Record<string, any>): Promise<string[]> {
    const warnings: string[] = [];
    const log = require("@pulumi/pulumi/log");
    const original = log.warn;
    log.warn = (message: string) => {
        warnings.push(message);
        return Promise.resolve();
    };
    try {
        await runProgram(config);
    } finally {
        log.warn = original;
    }
    return warnings;
}

test("a missing host key is warned about once a run, naming the key to set and how", async () => {
    const config = mainConfig();
    delete config.servers.docs.ssh.hostKey;
    const expected = [
        "data-support:servers.docs.ssh.hostKey is not set: the SSH host key of ocp19.open-contracting.org will NOT be checked. " +
            `Pin it: pulumi config set --path 'data-support:servers.docs.ssh.hostKey' "$(ssh-keyscan -t ed25519 ocp19.open-contracting.org | cut -d' ' -f2-)"`,
    ];
    // Twice in one process: each run (each `pulumi up`) warns again.
    assert.deepEqual(await warningsOf(config), expected);
    assert.deepEqual(await warningsOf(config), expected);
    // With every key pinned, nothing.
    assert.deepEqual(await warningsOf(mainConfig()), []);
});

test("a jump host without its host key: warned about under its own key, with its port", async () => {
    const config = mainConfig();
    config.servers.oldMain.ssh.jumpHost = { host: "bastion.open-contracting.org", port: 2222, user: "jump" };
    assert.deepEqual(await warningsOf(config), [
        "data-support:servers.oldMain.ssh.jumpHost.hostKey is not set: the SSH host key of bastion.open-contracting.org will NOT be checked. " +
            `Pin it: pulumi config set --path 'data-support:servers.oldMain.ssh.jumpHost.hostKey' "$(ssh-keyscan -p 2222 -t ed25519 bastion.open-contracting.org | cut -d' ' -f2-)"`,
    ]);
});

test("preview runs nothing: the program spawns no process and only registers resources", async () => {
    const spawned: string[] = [];
    const names = ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"] as const;
    const originals = names.map((n) => (childProcess as any)[n]);
    names.forEach((n) => {
        (childProcess as any)[n] = (...args: unknown[]) => {
            spawned.push(`${n} ${String(args[0])}`);
            throw new Error("the program must not run processes");
        };
    });
    const executed: string[] = [];
    try {
        const run = await runProgram(withReplica(mainConfig()), {
            preview: true,
            execute: async (r) => {
                executed.push(r.name);
                return { id: "", state: {} };
            },
        });
        assert.ok(run.resources.length > 20);
    } finally {
        names.forEach((n, i) => ((childProcess as any)[n] = originals[i]));
    }
    assert.deepEqual(spawned, []);
    // Under preview the mocks are asked to register (to plan), never to execute a command: the
    // harness's executor runs nothing when preview is set (see test/support/harness.ts).
    assert.ok(executed.length > 0);
});

test("managed files: the directories each creates, owned by the crawls' user, and no other", async () => {
    const config = mainConfig();
    Object.assign(config.incremental.crawls[0], { cardinal: true, cardinal_settings: "[defaults]\n" });
    const run = await runProgram(config);
    const dirsLine = (name: string) => {
        const found = run.resources.find((r) => r.name === name);
        assert.ok(found, name);
        return found.inputs.create.split("\n")[1];
    };
    // Salt's layout (deploy afaedf6b, salt/kingfisher/collect/incremental.sls: ~/bin, and ~/bi/sql, ~/bi/settings, ~/bi/scratch).
    assert.deepEqual(
        ["data-support-crawls-dominican_republic", "data-support-crawls-ecuador", "data-support-crawls-dominican_republic-cardinal-settings", "data-support-crawls-dominican_republic-cardinal-result-sql"].map(dirsLine),
        [
            "install -d -m 0755 -o incremental -g incremental /home/incremental/bin",
            "install -d -m 0755 -o incremental -g incremental /home/incremental/bin",
            "install -d -m 0755 -o incremental -g incremental /home/incremental/bi/settings /home/incremental/bi /home/incremental/bi/scratch",
            "install -d -m 0755 -o incremental -g incremental /home/incremental/bi/sql /home/incremental/bi",
        ],
    );
});

// The copies' ssh to the old server with the transfer key (the fixture's migration), written out once.
const TRANSFER_SSH =
    "ssh -i /var/lib/data-support/ocp04-to-ocp23/transfer_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=/var/lib/data-support/ocp04-to-ocp23/known_hosts " +
    "-o ConnectTimeout=30 -o StrictHostKeyChecking=yes -p 22 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 -o Compression=no -c aes128-gcm@openssh.com";

test("exchange rates copy: the old rows streamed into one transaction, committed only when the export ends", async () => {
    const run = await runProgram(mainConfig());
    const copy = run.resources.find((r) => r.name === "data-support-exchange-rates-copy");
    assert.ok(copy);
    const ssh = `${TRANSFER_SSH} postgres@198.51.100.4`;
    const lines = copy.inputs.create.split("\n").filter((l: string) => l.includes("COPY exchange_rates"));
    assert.deepEqual(lines, [
        `{ printf '%s\\n' 'BEGIN;' 'COPY exchange_rates (valid_on, rates, created, modified) FROM stdin;'; ${ssh} 'psql -X -v ON_ERROR_STOP=1 -d pelican_backend -c '\\''\\copy exchange_rates (valid_on, rates, created, modified) to stdout'\\''' && printf '%s\\n' '\\.' 'COMMIT;'; } | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d pelican_backend`,
    ]);
});

test("incremental copy presync: one rsync per tree (data/, logs/) from old as the crawls' user, joined with &&", async () => {
    const run = await runProgram(mainConfig());
    const presync = run.resources.find((r) => r.name === "data-support-incremental-copy-presync");
    assert.ok(presync);
    const rsh = `--rsh='${TRANSFER_SSH}'`;
    assert.deepEqual(
        presync.inputs.create.split("\n").filter((l: string) => l.includes("rsync -a")),
        [
            `(rsync -a '--delete' ${rsh} incremental@198.51.100.4:/home/incremental/data/ /home/incremental/data/ &&`,
            `rsync -a '--delete' ${rsh} incremental@198.51.100.4:/home/incremental/logs/ /home/incremental/logs/)`,
        ],
    );
});

test("incremental copy of the database: Salt's five tables left out of the check and dropped before the dump, in one transaction", async () => {
    const run = await runProgram(mainConfig());
    const copy = run.resources.find((r) => r.name === "data-support-incremental-copy-database");
    assert.ok(copy);
    const lines: string[] = copy.inputs.create.split("\n");
    // Salt's loaded tables (salt/kingfisher/collect/incremental.sls at deploy afaedf6b), written out.
    assert.ok(
        lines.includes(
            "held=$(runuser -u postgres -- psql -X -At -d kingfisher_collect -c 'SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('\\''pg_catalog'\\'', '\\''information_schema'\\'') " +
                "AND NOT (schemaname = '\\''public'\\'' AND tablename IN ('\\''codelist'\\'', '\\''indicator'\\'', '\\''cpc'\\'', '\\''unspsc'\\'', '\\''excluded_supplier'\\''))')",
        ),
        "the held-tables check",
    );
    const load = lines.filter((l) => l.startsWith("{ echo 'BEGIN;'"));
    assert.equal(load.length, 1);
    assert.ok(
        load[0].startsWith(
            `{ echo 'BEGIN;'; echo "SET LOCAL maintenance_work_mem = '512MB';"; echo 'DROP TABLE IF EXISTS public.codelist, public.indicator, public.cpc, public.unspsc, public.excluded_supplier;'; ssh -i /var/lib/data-support/ocp04-to-ocp23/transfer_ed25519 `,
        ),
        load[0],
    );
});

test("incremental copy of files: both rsyncs delete on new what old no longer has", async () => {
    const run = await runProgram(mainConfig());
    const copy = run.resources.find((r) => r.name === "data-support-incremental-copy-files");
    assert.ok(copy);
    const rsyncs = copy.inputs.create.split("\n").filter((l: string) => l.includes("rsync -a"));
    assert.deepEqual(rsyncs.map((l: string) => l.match(/rsync -a ('--delete' )?--rsh=.* (incremental@198\.51\.100\.4:\S+ \S+?)\)?( &&| \|\|.*)?$/)?.slice(1, 3)), [
        ["'--delete' ", "incremental@198.51.100.4:/home/incremental/data/ /home/incremental/data/"],
        ["'--delete' ", "incremental@198.51.100.4:/home/incremental/logs/ /home/incremental/logs/"],
    ]);
});
