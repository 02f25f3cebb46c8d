// What "equal" means after a copy, computed the same way on both servers and compared.
import { sh, ShellText } from "./shell";

/**
 * SQL (for `psql -XAt`) printing one line per table: `schema.table|rows|md5`, where md5 is taken
 * over the md5 of every row's text, in the order of those digests (as bytea, so no collation is
 * involved: both servers sort alike whatever their locale). Per-row digests keep memory small.
 *
 * The row's text is exact, and it is most of the cost (JSON text out of every jsonb value). The
 * binary hash of jsonb (`jsonb_hash_extended`) costs 2.7x less on the benchmark's rows, but it was
 * tried and dropped: it skips where arrays and objects begin and end, so {"a": {"b": 1}, "c": 2} and
 * {"a": {"b": 1, "c": 2}}, or ["tender"] and "tender", hash alike (test/e2e/copyFaults.test.ts).
 */
export const TABLES_FINGERPRINT_SQL = `SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(h, ''''::bytea ORDER BY h), ''''::bytea)) FROM (SELECT decode(md5(t::text), ''hex'') AS h FROM %I.%I t) r', n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY n.nspname, c.relname \\gexec
`;

/** SQL printing `rows|md5` over the given columns of one table, ordered by the first column. */
export function columnsFingerprintSql(table: string, columns: string[]): string {
    const row = `(${columns.join(", ")})`;
    return `SELECT count(*), md5(coalesce(string_agg(md5(${row}::text), '' ORDER BY ${columns[0]}), '')) FROM ${table};\n`;
}

/**
 * Shell listing a directory tree: one line per entry (type, size for files, path), then a
 * sha256 per file; sorted bytewise so both servers list in the same order.
 */
export function treeFingerprint(dir: string): ShellText {
    return sh`cd ${dir} && { find . -mindepth 1 \\( -type f -printf 'f %s %P\\n' \\) -o \\( -type d -printf 'd - %P\\n' \\) -o -printf '%y - %P\\n' | LC_ALL=C sort; find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; }`;
}

/** Fails with `what` when the two files differ, showing the first differences. */
export function compareOrFail(left: ShellText, right: ShellText, what: string): ShellText {
    return sh`if ! cmp -s ${left} ${right}; then echo ${`verification failed: ${what} differ (old < > new):`} >&2; diff ${left} ${right} | head -n 20 >&2; exit 1; fi`;
}
