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
