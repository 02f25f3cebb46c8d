// The data on the test hosts before each run of bench/copy.ts, and the checks after it.
import { type HostName, type Testbed } from "../test/hosts/testbed";
import { psql, sh } from "../test/support/hosts";
import { TABLES_FINGERPRINT_SQL, treeFingerprint } from "../components/machinery/fingerprint";
import { CALIBRATION_ROWS, createTablesSql, insertRowsSql, SETTLE_SQL } from "./copyData";
import { DB, HOME } from "./copyRunbook";
import type { Steps } from "./copySteps";

/** The program's transfer key (keypair on new, granted on old), and the crawls' crons off on old. */
export async function programAccess(steps: Steps): Promise<void> {
    const pub = await sh(steps.keypair.host, steps.keypair.create);
    await sh(steps.grant.host, steps.grant.create, { input: pub });
    await sh(steps.stopCrons.host, steps.stopCrons.create);
}

/** What the runbook's sysadmin has: the new server's incremental key accepted by incremental@old. */
export async function runbookAccess(tb: Testbed): Promise<void> {
    const pub = await sh("new", "install -d -m 700 ~/.ssh && ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/id_ed25519 && cat ~/.ssh/id_ed25519.pub", { user: "incremental" });
    await sh("old", "install -d -m 700 ~/.ssh && cat >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys", { user: "incremental", input: pub });
    await sh("new", "cat > ~/.ssh/known_hosts", { user: "incremental", input: `${tb.hosts.old.hostname} ${tb.hosts.old.hostKey}\n` });
}

export async function generateDatabase(targetMb: number): Promise<{ rows: number; mb: number; dumpMb?: number }> {
    const size = async () => Number((await sh("old", psql(DB), { input: `SELECT pg_database_size('${DB}');` })).trim());
    await sh("old", psql(DB), { input: createTablesSql() });
    const before = await size();
    const calibration = Math.min(CALIBRATION_ROWS, Math.max(1000, Math.round(targetMb * 200)));
    await sh("old", psql(DB), { input: insertRowsSql(0, calibration) });
    const perRow = Math.max(1, ((await size()) - before) / calibration);
    const rest = Math.max(0, Math.round((targetMb * 2 ** 20 - (await size())) / perRow));
    // One INSERT per table per million rows keeps each statement's memory small.
    for (let from = calibration; from < calibration + rest; from += 1_000_000) {
        await sh("old", psql(DB), { input: insertRowsSql(from, Math.min(1_000_000, calibration + rest - from)) });
    }
    await sh("old", psql(DB), { input: SETTLE_SQL });
    const rows = Number((await sh("old", psql(DB), { input: "SELECT (SELECT count(*) FROM bench_release) + (SELECT count(*) FROM bench_record) + (SELECT count(*) FROM bench_compiled_release);" })).trim());
    return { rows, mb: (await size()) / 2 ** 20 };
}

/** Both sides' table fingerprints (rows and md5 per table) and index definitions must be equal. */
export async function verifyDatabase(oldPrint: string): Promise<void> {
    const newPrint = await databasePrint("new");
    if (newPrint !== oldPrint) throw new Error(`kingfisher_collect on new differs from old:\n--- old\n${oldPrint}\n--- new\n${newPrint}`);
}

export async function databasePrint(host: HostName): Promise<string> {
    const tables = await sh(host, psql(DB), { input: TABLES_FINGERPRINT_SQL });
    const indexes = await sh(host, psql(DB), { input: "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexdef;" });
    return `${tables}${indexes}`;
}

export async function resetNewDatabase(steps: Steps): Promise<void> {
    await sh("new", `cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS ${DB} WITH (FORCE)' -c 'CREATE DATABASE ${DB} OWNER kingfisher_collect' -c CHECKPOINT && rm -f ${steps.database.marker} ${HOME}/kingfisher_collect.sql && sync`);
    await sh("old", `cd / && runuser -u postgres -- psql -X -q -c CHECKPOINT && rm -f ${HOME}/kingfisher_collect.sql && sync`);
}

export async function filesPrint(host: HostName): Promise<string> {
    const [data, logs] = await Promise.all([sh(host, treeFingerprint(`${HOME}/data`).text), sh(host, treeFingerprint(`${HOME}/logs`).text)]);
    return `${data}\n${logs}`;
}

export async function verifyFiles(): Promise<void> {
    const [o, n] = await Promise.all([filesPrint("old"), filesPrint("new")]);
    if (o !== n) throw new Error("data/ or logs/ on new differ from old");
}

export async function emptyNewFiles(steps: Steps): Promise<void> {
    await sh("new", `rm -rf ${HOME}/data ${HOME}/logs && install -d -o incremental -g incremental -m 755 ${HOME}/data ${HOME}/logs && rm -f ${steps.files.marker} ${steps.presync.marker} "$(dirname ${steps.files.marker})"/manifest-*.jsonl && sync`);
}
