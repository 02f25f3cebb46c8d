// Commands on the test hosts that must succeed: the one helper the end-to-end tests share.
import * as assert from "node:assert/strict";
import { run, type HostName } from "../hosts/testbed";

/** Runs `script` on `host` (as root, or as `opts.user`), fails the test unless it exits 0, and returns its stdout. */
export async function sh(host: HostName, script: string, opts: { input?: string; user?: string } = {}): Promise<string> {
    const r = await run(host, script, opts);
    assert.equal(r.code, 0, `${host}${opts.user ? ` (as ${opts.user})` : ""}: ${script}\n${r.stderr}`);
    return r.stdout;
}

/** psql as postgres on a host, into `db`: bare rows out, stopping at the first error. */
export const psql = (db: string) => `cd / && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -d ${db}`;

/** Waits (a bounded loop on the host) until the new server is loading rows of kingfisher_collect. */
export const whileLoading = () =>
    sh("new", `for _ in $(seq 1200); do n=$(${psql("kingfisher_collect")} -c "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy" 2>/dev/null || echo 0); [ "$n" -gt 1000 ] && break; sleep 0.05; done`);

/**
 * Shell printing every table of `db` in full, as COPY writes it (a `== schema.table` line, then its
 * rows sorted by their text in the C collation): a comparison of the data independent of the copy
 * step's own fingerprint (components/machinery/fingerprint.ts), compared byte for byte by the tests.
 */
export const tablesDump = (db: string) =>
    `${psql(db)} -c "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1" | while read -r t; do echo "== $t"; ${psql(db)} -c "COPY (SELECT * FROM $t x ORDER BY x::text COLLATE \\"C\\") TO STDOUT"; done`;

/** Shell printing the copied columns of exchange_rates, as COPY writes them, by valid_on (unique). */
export const exchangeRatesDump = (db = "pelican_backend") => `${psql(db)} -c "COPY (SELECT valid_on, rates, created, modified FROM exchange_rates ORDER BY valid_on) TO STDOUT"`;

/** The docker stand-in's calls on a host (test/hosts/docker-standin.py), one line each: "<user> <cwd>: docker <argv>". */
export const dockerCalls = async (host: HostName): Promise<string[]> =>
    (await sh(host, "cat /var/log/docker-standin.log 2>/dev/null || true"))
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .map((c) => `${c.user} ${c.cwd}: docker ${c.argv.join(" ")}`);
