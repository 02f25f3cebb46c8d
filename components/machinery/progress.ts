// Live progress of long work (the database copies, the file transfers, the verification): while a
// body of shell runs, a reporter in the background prints one line to stderr at least every 10 s
// with what is done, the rate, and where the total is known, the percentage and the time left.
// The provider streams a step's output while it runs, so in `pulumi up` the operator sees these
// lines live and can tell a slow copy from a hung one. One short line per 10 s keeps the stored
// output small (about 30 kB for an hour-long copy).
//
// Written as plain shell, awk and psql (on every server already): `pv` is not installed by the
// deploy repository, and rsync's --info=progress2 would print many lines a second into the state.
import { sh, ShellText, script } from "./shell";

/** At most this many seconds between two progress lines (a sample takes well under a second). */
export const PROGRESS_EVERY_S = 9;

export interface Meter {
    /** Names the work at the start of every line, e.g. "kingfisher_collect: loading". */
    what: string;
    /** What `sample` counts: "bytes" (shown as kB, MB, GB) or a plain noun ("rows", "files"). */
    unit: string;
    /** Shell run once before the body; may set variables that `total` and `sample` use. */
    setup?: ShellText;
    /** Shell printing the total once, before the body; omitted (or printing nothing) when unknown. */
    total?: ShellText;
    /** Shell printing the amount done so far, optionally followed by a detail for the line. */
    sample: ShellText;
}

// Formats one line from "<seconds> <done at start> <total or -> <done> [detail...]"; with final=1,
// the last line, without time left.
const FORMAT = String.raw`function amount(n) {
  if (unit != "bytes") return sprintf(n == int(n) ? "%d %s" : "%.1f %s", n, unit)
  split("B kB MB GB TB", u, " "); i = 1
  while (n >= 1000 && i < 5) { n /= 1000; i++ }
  return i == 1 ? sprintf("%d B", n) : sprintf("%.1f %s", n, u[i])
}
function duration(s) {
  s = int(s + 0.5)
  if (s < 60) return s " s"
  if (s < 3600) return sprintf("%d min %02d s", s / 60, s % 60)
  return sprintf("%d h %02d min", s / 3600, (s % 3600) / 60)
}
NF < 4 { print what ": done [" duration($1) "]"; next }
{
  t = $1; first = $2; total = $3; done = $4 + 0; detail = ""
  for (i = 5; i <= NF; i++) detail = detail (i > 5 ? " " : "") $i
  rate = t > 0 ? (done - first) / t : 0
  if (rate < 0) rate = 0
  line = what ": " amount(done)
  if (total != "-" && total > 0) {
    pct = 100 * done / total; if (pct > 100) pct = 100
    line = line " of " amount(total) sprintf(" (%d%%)", pct)
  }
  line = line ", " amount(rate) "/s"
  if (!final && total != "-" && total > done && rate > 0) line = line ", about " duration((total - done) / rate) " left"
  line = line " [" duration(t) "]"
  if (final) line = line "; done"
  else if (detail != "") line = line "; " detail
  print line
}`;

/**
 * Shell that runs `body` with a reporter beside it. The reporter stops when the body ends, and
 * also, within a second, when the step's shell exits early (a failure under `set -e`), so it never
 * outlives the step or holds its SSH session open.
 */
export function withProgress(meter: Meter, body: ShellText): ShellText {
    const quiet = (s: ShellText) => sh`{ ${s}; } 2>/dev/null`;
    return script(
        meter.setup ?? sh`:`,
        sh`progress_total=$(${quiet(meter.total ?? sh`true`)} || true); progress_total=\${progress_total:--}`,
        sh`progress_first=$(${quiet(meter.sample)} | cut -d' ' -f1 || true); progress_first=\${progress_first:-0}`,
        sh`progress_line() { awk -v final="$1" -v what=${meter.what} -v unit=${meter.unit} ${FORMAT}; }; progress_t0=$(date +%s)`,
        sh`{
  progress_last=$progress_t0
  while sleep 1 < /dev/null > /dev/null 2>&1; do
    kill -0 $$ 2> /dev/null || exit 0
    now=$(date +%s); [ $((now - progress_last)) -ge ${PROGRESS_EVERY_S} ] || continue; progress_last=$now
    s=$(${quiet(meter.sample)}) || continue
    echo "$((now - progress_t0)) $progress_first $progress_total $s" | progress_line 0
  done
} >&2 & progress=$!`,
        body,
        sh`kill "$progress" 2> /dev/null || true; wait "$progress" 2> /dev/null || true`,
        // One last line when the body is done: no gap longer than the interval between two phases.
        sh`progress_s=$(${quiet(meter.sample)}) || progress_s=; echo "$(($(date +%s) - progress_t0)) $progress_first $progress_total $progress_s" | progress_line 1 >&2 || true`,
    );
}

/**
 * The load of a database on the new server: bytes written (the database's growth on disk) against
 * the old server's table data (heap and TOAST, as `total` prints it), and the rows of the table
 * being loaded (pg_stat_progress_copy). Indexes are built after the rows, so the count may pass
 * the total near the end; it is shown as 100 %.
 */
export function databaseLoadMeter(what: string, database: string, total: ShellText): Meter {
    const psql = sh`runuser -u postgres -- psql -X -At -q -F ' ' -d ${database}`;
    return {
        what,
        unit: "bytes",
        setup: sh`progress_base=$(${psql} -c 'SELECT pg_database_size(current_database())' 2> /dev/null || echo 0)`,
        total,
        sample: sh`${psql} -c "SELECT pg_database_size(current_database()) - $progress_base, coalesce((SELECT 'rows of the table being loaded: ' || sum(tuples_processed) FROM pg_stat_progress_copy WHERE datname = current_database() HAVING count(*) > 0), '')"`,
    };
}

/**
 * SQL (for `psql -q`) printing the bytes of table data (heap and TOAST, no indexes) of `where`'s
 * tables. pg_table_size takes a share lock on each table: a progress total never waits behind a
 * lock for more than a second (it is then unknown), so it cannot hold the copy up.
 */
export function tableBytesSql(where: string): string {
    return `SET lock_timeout = '1s'; SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND ${where}`;
}

/**
 * The command (as the old server runs it for the transfer key, word for word: its dispatcher allows
 * it) printing the bytes of table data of `where`'s tables in `database`.
 */
export function tableBytesCommand(database: string, where: string): string {
    return sh`psql -X -At -q -d ${database} -c ${tableBytesSql(where)}`.text;
}

/** The exchange_rates table, for tableBytesSql. */
export const EXCHANGE_RATES_TABLE = "c.oid = 'exchange_rates'::regclass";

/** The tables a fingerprint covers: every user table. */
export const USER_TABLES = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'";

/** The application name of the session that fingerprints the new server's tables (the meter finds it by this). */
export const VERIFY_APPLICATION = "data-support-verify";

/**
 * The verification of a database on the new server: bytes its fingerprinting session has read
 * (the backend's rchar) against the bytes of the tables it reads, and the table it is on.
 */
export function verifyMeter(what: string, database: string, where: string): Meter {
    const psql = sh`runuser -u postgres -- psql -X -At -q -F ' ' -d ${database}`;
    return {
        what,
        unit: "bytes",
        total: sh`${psql} -c ${tableBytesSql(where)}`,
        sample: sh`set -- $(${psql} -c ${`SELECT pid, coalesce(substring(query from '^SELECT ''([^'']*)'''), '') FROM pg_stat_activity WHERE application_name = '${VERIFY_APPLICATION}' AND datname = current_database() LIMIT 1`}); [ -n "\${1:-}" ] && echo "$(awk '$1 == "rchar:" { print $2 }' /proc/$1/io) \${2:+now on $2}"`,
    };
}

/** Shell printing "<bytes> <files>" of the trees `dirs` (what `filesMeter` counts). */
export function treeSize(dirs: string[]): ShellText {
    return sh`echo "$(du -sbc ${dirs} | tail -n 1 | cut -f1) $(find ${dirs} -type f | wc -l)"`;
}

/** The file transfers into `dirs` on the new server: bytes and files there, against the old server's `treeSize` (printed by `oldSize`). */
export function filesMeter(what: string, dirs: string[], oldSize: ShellText): Meter {
    return {
        what,
        unit: "bytes",
        setup: sh`progress_old=$({ ${oldSize}; } 2> /dev/null || true); set -- $progress_old; progress_files=\${2:-}`,
        total: sh`set -- $progress_old; echo "\${1:-}"`,
        sample: sh`set -- $(${treeSize(dirs)}); echo "$1 files: $2\${progress_files:+ of $progress_files}"`,
    };
}
