// The transfer key's dispatcher (the command= sshd forces for the key, installed by the grant) where
// it runs: each command the copy steps send, word for word, runs for its own user with the stdin it
// must have (its fixed input file, the caller's stdin, or /dev/null), and is refused for the other
// user; rsync's sender runs only for the incremental user's data/ and logs/; anything else is
// refused with the dispatcher's message. sshd is played by `as-key` (the user's shell running the
// dispatcher in the user's home, SSH_ORIGINAL_COMMAND set); pg_dump and psql are recording
// stand-ins (no PostgreSQL runs here); python3 (the tree manifest), du, find and rsync are real.
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as os from "node:os";
import { mainConfig } from "../support/fixtures";
import { treeManifest } from "../../components/machinery/treeManifest";
import { canSandbox, runInSandbox, type SandboxRun, type SandboxUser, type Step } from "./sandbox";
import { commandOf, programCommands } from "./scripts";

const skip = canSandbox() || undefined;
const INCREMENTAL: SandboxUser = { name: "incremental", uid: 1010, home: "/home/incremental" };
const DIR = "/usr/local/lib/data-support/ocp04-to-ocp23";
const DISPATCHER = `${DIR}/transfer-command`;
const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

// The copies' commands as the copy steps send them (incrementalTransfers, exchangeRatesTransfers),
// written out. The tree manifest's Python program (2324 characters, tested in treeManifest.test.ts)
// is pinned by its digest instead of a copy of it.
const MANIFEST_PROGRAM_SHA256 = "d405712a87d86277e69d3a60adc5b069c280f1a9022e65cc80e8e9638956a88a";
const manifestProgram = (() => {
    const text = treeManifest("/x").text;
    return text.slice("python3 -c '".length, -"' /x".length);
})();
const DUMP = "pg_dump --format=plain kingfisher_collect";
const TABLES_FINGERPRINT = "psql -X -At -v ON_ERROR_STOP=1 -v fingerprint=tables -d kingfisher_collect";
const MANIFEST_DATA = `python3 -c '${manifestProgram}' /home/incremental/data`;
const MANIFEST_LOGS = `python3 -c '${manifestProgram}' /home/incremental/logs`;
const TABLE_BYTES = String.raw`psql -X -At -q -d kingfisher_collect -c 'SET lock_timeout = '\''1s'\''; SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('\''r'\'', '\''p'\'') AND n.nspname NOT IN ('\''pg_catalog'\'', '\''information_schema'\'') AND n.nspname NOT LIKE '\''pg\_toast%'\'''`;
const TREE_SIZE = `echo "$(du -sbc /home/incremental/data /home/incremental/logs | tail -n 1 | cut -f1) $(find /home/incremental/data /home/incremental/logs -type f | wc -l)"`;
const RATES_EXPORT = String.raw`psql -X -v ON_ERROR_STOP=1 -d pelican_backend -c '\copy exchange_rates (valid_on, rates, created, modified) to stdout'`;
const RATES_FINGERPRINT = "psql -X -At -v ON_ERROR_STOP=1 -v fingerprint=exchange_rates -d pelican_backend";
const RATES_BYTES = String.raw`psql -X -At -q -d pelican_backend -c 'SET lock_timeout = '\''1s'\''; SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('\''r'\'', '\''p'\'') AND c.oid = '\''exchange_rates'\''::regclass'`;

// The SQL the grant fixes on the old server: the fingerprints read it, never the caller's stdin.
const TABLES_SQL = String.raw`SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(h, ''''::bytea ORDER BY h), ''''::bytea)) FROM (SELECT decode(md5(t::text), ''hex'') AS h FROM %I.%I t) r', n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
ORDER BY n.nspname, c.relname \gexec
`;
const RATES_SQL = "SELECT count(*), md5(coalesce(string_agg(md5((valid_on, rates, created, modified)::text), '' ORDER BY valid_on), '')) FROM exchange_rates;\n";

// What every caller sends on stdin: the manifests' cache of digests (a digest no file has: it shows
// the manifest read it), and a statement that must never reach psql.
const CACHED = "c".repeat(64);
const MTIME = "1700000000000000000";
const CALLER = `f\t3\t${CACHED}\t"a.json"\t${MTIME}\nf\t4\t${CACHED}\t"b.log"\t${MTIME}\nDROP TABLE crawl;\n`;

const standIn = (name: string, user: string, args: string[], from: string, stdin: string) =>
    `stand-in ${name} as ${user}\n${args.map((a) => `arg: ${a}\n`).join("")}stdin from ${from}:\n${stdin}`;
const refusal = (user: string, command: string) => `${user}@${os.hostname()}: the data-support transfer key may run only the migration's copies; refused: ${command.slice(0, 200)}\n`;

interface Allowed {
    what: string;
    user: "postgres" | "incremental";
    command: string;
    /** The whole stdout when it ran for its user (a regular expression where sizes depend on the filesystem). */
    stdout: string | RegExp;
}
const ALLOWED: Allowed[] = [
    { what: "the dump", user: "postgres", command: DUMP, stdout: standIn("pg_dump", "postgres", ["--format=plain", "kingfisher_collect"], "/dev/null", "") },
    {
        what: "the tables' fingerprint",
        user: "postgres",
        command: TABLES_FINGERPRINT,
        stdout: standIn("psql", "postgres", ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-v", "fingerprint=tables", "-d", "kingfisher_collect"], `${DIR}/input-0`, TABLES_SQL),
    },
    {
        what: "the tables' bytes",
        user: "postgres",
        command: TABLE_BYTES,
        stdout: standIn(
            "psql",
            "postgres",
            ["-X", "-At", "-q", "-d", "kingfisher_collect", "-c", String.raw`SET lock_timeout = '1s'; SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`],
            "/dev/null",
            "",
        ),
    },
    // The caller's stdin goes through: the cached digest is reused for the unchanged file.
    { what: "data/'s manifest", user: "incremental", command: MANIFEST_DATA, stdout: `f\t3\t${CACHED}\t"a.json"\t${MTIME}\n` },
    { what: "logs/'s manifest", user: "incremental", command: MANIFEST_LOGS, stdout: `f\t4\t${CACHED}\t"b.log"\t${MTIME}\n` },
    { what: "the trees' size", user: "incremental", command: TREE_SIZE, stdout: /^\d+ 2\n$/ },
    {
        what: "the exchange rates' export",
        user: "postgres",
        command: RATES_EXPORT,
        stdout: standIn("psql", "postgres", ["-X", "-v", "ON_ERROR_STOP=1", "-d", "pelican_backend", "-c", String.raw`\copy exchange_rates (valid_on, rates, created, modified) to stdout`], "/dev/null", ""),
    },
    {
        what: "the exchange rates' fingerprint",
        user: "postgres",
        command: RATES_FINGERPRINT,
        stdout: standIn("psql", "postgres", ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-v", "fingerprint=exchange_rates", "-d", "pelican_backend"], `${DIR}/input-1`, RATES_SQL),
    },
    {
        what: "the exchange rates' bytes",
        user: "postgres",
        command: RATES_BYTES,
        stdout: standIn(
            "psql",
            "postgres",
            ["-X", "-At", "-q", "-d", "pelican_backend", "-c", String.raw`SET lock_timeout = '1s'; SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND c.oid = 'exchange_rates'::regclass`],
            "/dev/null",
            "",
        ),
    },
];
const other = (user: string) => (user === "postgres" ? "incremental" : "postgres");

// rsync as the copy runs it (`rsync -a --delete --rsh=<ssh> incremental@old:<dir>/ <dir>/`), sshd
// played by key-ssh: rsync calls it as `key-ssh -l USER HOST COMMAND...`.
const rsyncFrom = (user: string, source: string, into: string) =>
    `rsync -a --delete --rsh=/usr/local/sbin/key-ssh ${user}@old:${q(source)} ${into}/; echo "exit $?"; find ${into} -mindepth 1 -printf '%P %s %u\\n' 2>/dev/null | sort`;
const RSYNC: { what: string; script: string }[] = [
    { what: "data/ as incremental", script: rsyncFrom("incremental", "/home/incremental/data/", "/srv/data") },
    { what: "logs/ as incremental", script: rsyncFrom("incremental", "/home/incremental/logs/", "/srv/logs") },
    { what: "data/ as postgres", script: rsyncFrom("postgres", "/home/incremental/data/", "/srv/pg") },
    { what: "a sibling (bin/)", script: rsyncFrom("incremental", "/home/incremental/bin/", "/srv/bin") },
    { what: "data/../", script: rsyncFrom("incremental", "/home/incremental/data/../", "/srv/up") },
];
// Refused whoever asks: no shell, no other statement, nothing appended, no rsync receiver (it would
// write on the old server), no sender that deletes what it sent, no extra path.
const REFUSED: [string, string][] = [
    ["postgres", "rm -rf /"],
    ["postgres", "psql -d kingfisher_collect -c 'DROP TABLE crawl'"],
    ["postgres", `${DUMP}; id`],
    ["postgres", `${DUMP} `],
    ["postgres", "psql -X -At -v ON_ERROR_STOP=1 -v fingerprint=tables -d postgres"],
    ["postgres", ""],
    ["incremental", "cat .ssh/authorized_keys"],
    ["incremental", "rsync --server -logDtpre.iLsfxCIvu . /home/incremental/data/"],
    ["incremental", "rsync --server --sender --remove-source-files . /home/incremental/data/"],
    ["incremental", "rsync --server --sender -logDtpre.iLsfxCIvu . /home/incremental/data/ /etc/"],
    ["incremental", "rsync --server --sender -logDtpre.iLsfxCIvu . /home/incremental/data"],
];

const SETUP = `set -e
install -d -o incremental -g incremental /home/incremental/data /home/incremental/logs /home/incremental/bin
printf '{}\\n' > /home/incremental/data/a.json; printf 'log\\n' > /home/incremental/logs/b.log; printf 'bin\\n' > /home/incremental/bin/c.sh
chown incremental: /home/incremental/*/*; touch -d @1700000000 /home/incremental/data/a.json /home/incremental/logs/b.log
cat > /usr/local/sbin/as-key <<'EOF'
#!/bin/bash
# sshd stand-in for the transfer key: the user's shell runs the forced command in the user's home.
user=$1; shift
cd "$(getent passwd "$user" | cut -d: -f6)" 2>/dev/null || cd /
SSH_ORIGINAL_COMMAND="$*" exec runuser -u "$user" -- /bin/bash -c ${DISPATCHER}
EOF
cat > /usr/local/sbin/key-ssh <<'EOF'
#!/bin/bash
# ssh stand-in for rsync --rsh: -l USER HOST COMMAND... (ssh joins the words with spaces).
[ "$1" = -l ] || exit 2
user=$2; shift 3
exec /usr/local/sbin/as-key "$user" "$*"
EOF
chmod 0755 /usr/local/sbin/as-key /usr/local/sbin/key-ssh`;

const asKey = (user: string, command: string): Step => ({ script: `printf '%s' ${q(CALLER)} | as-key ${user} ${q(command)}` });

let run: SandboxRun;
const FIRST = 3;
const at = (i: number) => run.steps[FIRST + i];
before(async () => {
    if (skip) return;
    const commands = await programCommands(mainConfig());
    run = runInSandbox(
        [
            { script: commandOf(commands, "data-support-transfer-keypair").create },
            { script: commandOf(commands, "data-support-transfer-grant").create, stdinFrom: { step: 0 } },
            { script: SETUP },
            ...ALLOWED.map((a) => asKey(a.user, a.command)),
            ...ALLOWED.map((a) => asKey(other(a.user), a.command)),
            ...RSYNC.map((r) => ({ script: r.script })),
            ...REFUSED.map(([user, command]) => asKey(user, command)),
            // A user the key is not granted for (the grant writes no branch for it).
            asKey("nobody", "true"),
        ],
        { users: [INCREMENTAL], recorders: ["pg_dump", "psql"] },
    );
    for (const i of [0, 1, 2]) assert.equal(run.steps[i].code, 0, run.steps[i].stderr);
});

test("the manifest program the dispatcher allows is the one written out here (its digest)", { skip }, () => {
    assert.equal(createHash("sha256").update(manifestProgram).digest("hex"), MANIFEST_PROGRAM_SHA256);
});

for (const [i, a] of ALLOWED.entries()) {
    test(`${a.what} runs for ${a.user}, with its own stdin`, { skip }, () => {
        const step = at(i);
        assert.equal(step.stderr, "");
        assert.equal(step.code, 0);
        if (typeof a.stdout === "string") assert.equal(step.stdout, a.stdout);
        else assert.match(step.stdout, a.stdout);
    });
    test(`${a.what} is refused for ${other(a.user)}`, { skip }, () => {
        const step = at(ALLOWED.length + i);
        assert.deepEqual([step.code, step.stdout, step.stderr], [1, "", refusal(other(a.user), a.command)]);
    });
}

test("the stand-ins ran only for the allowed commands, each as its user", { skip }, () => {
    assert.deepEqual(
        run.calls.map((c) => c.slice(0, 80)),
        [
            "postgres@/var/lib/postgresql: pg_dump --format=plain kingfisher_collect",
            "postgres@/var/lib/postgresql: psql -X -At -v ON_ERROR_STOP=1 -v fingerprint=tabl",
            "postgres@/var/lib/postgresql: psql -X -At -q -d kingfisher_collect -c SET lock_t",
            "postgres@/var/lib/postgresql: psql -X -v ON_ERROR_STOP=1 -d pelican_backend -c \\",
            "postgres@/var/lib/postgresql: psql -X -At -v ON_ERROR_STOP=1 -v fingerprint=exch",
            "postgres@/var/lib/postgresql: psql -X -At -q -d pelican_backend -c SET lock_time",
        ],
    );
});

const rsyncAt = (i: number) => at(2 * ALLOWED.length + i);
test("rsync's sender runs for incremental's data/ and logs/: the copy gets the files", { skip }, () => {
    assert.deepEqual([rsyncAt(0).stdout, rsyncAt(0).stderr], ["exit 0\na.json 3 incremental\n", ""]);
    assert.deepEqual([rsyncAt(1).stdout, rsyncAt(1).stderr], ["exit 0\nb.log 4 incremental\n", ""]);
});

for (const [i, r] of RSYNC.entries()) {
    if (i < 2) continue;
    test(`rsync of ${r.what} is refused and copies nothing`, { skip }, () => {
        const step = rsyncAt(i);
        // rsync reports the closed connection (exit 12) after the dispatcher's refusal.
        assert.equal(step.stdout, "exit 12\n");
        const user = r.what.endsWith("as postgres") ? "postgres" : "incremental";
        assert.ok(step.stderr.startsWith(`${user}@${os.hostname()}: the data-support transfer key may run only the migration's copies; refused: rsync --server --sender -`), step.stderr);
    });
}

for (const [i, [user, command]] of REFUSED.entries()) {
    test(`refused for ${user}: ${JSON.stringify(command)}`, { skip }, () => {
        const step = at(2 * ALLOWED.length + RSYNC.length + i);
        assert.deepEqual([step.code, step.stdout, step.stderr], [1, "", refusal(user, command)]);
    });
}

test("`true` (the key check) is refused for a user the key was not granted for", { skip }, () => {
    const step = at(2 * ALLOWED.length + RSYNC.length + REFUSED.length);
    assert.deepEqual([step.code, step.stdout, step.stderr], [1, "", refusal("nobody", "true")]);
});
