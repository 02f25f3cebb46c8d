// What "equal" means after a copy, computed the same way on both servers and compared.
import { sh, ShellText } from "./shell";

/**
 * How each row is read for its digest:
 * - "text": the row's text (`t::text`), exact to the byte.
 * - "jsonb-hash": the same, except that each jsonb column is replaced by PostgreSQL's 64-bit hash of
 *   its binary form (`jsonb_hash_extended`), so no JSON text is produced. On the benchmark's JSONB rows
 *   this costs 2.7x less CPU (bench/results.md). Its one blind spot: numbers equal in value but written
 *   with other trailing zeros (1.5 and 1.50) hash alike; pg_dump and psql keep them as written.
 */
export type RowReading = "text" | "jsonb-hash";

/**
 * SQL (for `psql -XAt`) printing one line per table: `schema.table|rows|md5`, where md5 is taken
 * over the md5 of every row, in the order of those digests (as bytea, so no collation is involved:
 * both servers sort alike whatever their locale). Per-row digests keep memory small on large tables.
 */
export function tablesFingerprintSql(reading: RowReading): string {
    const column =
        reading === "text"
            ? "format('t.%I', a.attname)"
            : "CASE WHEN a.atttypid = 'jsonb'::regtype THEN format('jsonb_hash_extended(t.%I, 0)', a.attname) ELSE format('t.%I', a.attname) END";
    return `SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(h, ''''::bytea ORDER BY h), ''''::bytea)) FROM (SELECT decode(md5(ROW(%s)::text), ''hex'') AS h FROM %I.%I t) r',
  n.nspname || '.' || c.relname,
  (SELECT string_agg(${column}, ', ' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY n.nspname, c.relname \\gexec
`;
}

/** What the copy step compares on both servers. */
export const TABLES_FINGERPRINT_SQL = tablesFingerprintSql("jsonb-hash");
/** The exact, slower reading: for tests and benchmarks, to check the copy independently of the step's own check. */
export const TABLES_EXACT_FINGERPRINT_SQL = tablesFingerprintSql("text");

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
