// The frame both database copies share (kingfisher_collect, exchange_rates): never overwrite, copy,
// then prove the copy equal. A target that already holds data is left alone unless it equals the old
// server's (an earlier run loaded it, then lost its connection before it could record the step as
// done); then the copy runs, and both servers' fingerprints must be equal afterwards.
import type { TemporaryAccess } from "./temporaryAccess";
import { compareOrFail } from "./fingerprint";
import { sh, script, ShellText } from "./shell";
import { VERIFY_APPLICATION, verifyMeter, withProgress } from "./progress";

/**
 * The fingerprint query as the old server runs it for the transfer key: psql reading the SQL that
 * the grant fixed there (TemporaryAccess `input`); `tag` tells the queries of one database apart.
 */
export function remoteFingerprintCommand(database: string, tag: string): string {
    return `psql -X -At -v ON_ERROR_STOP=1 -v fingerprint=${tag} -d ${database}`;
}

export interface VerifiedCopyArgs {
    access: TemporaryAccess;
    database: string;
    /** Names this fingerprint on the old server (remoteFingerprintCommand). */
    fingerprintTag: string;
    /** SQL printing the fingerprint (for `psql -XAt`), run alike on both servers. */
    fingerprintSql: string;
    /** Shell printing how much the target holds already: 0 when it is empty. */
    held: ShellText;
    /** The refusal when the target holds something else, around the count: [before, after]. */
    refusal: [string, string];
    /** What was copied, for the messages: "kingfisher_collect", "exchange_rates". */
    subject: string;
    /** What the fingerprints cover, for a mismatch: "tables of kingfisher_collect". */
    compared: string;
    /** Which tables the fingerprint reads (SQL over pg_class c, pg_namespace n): the verification's progress total. */
    tables: string;
    /** The copy (and whatever must follow it before the comparison). */
    copy: ShellText[];
}

/** Lines of a one-off step's script; "$fp/new" holds the new server's fingerprint at the end. */
export function verifiedCopy(args: VerifiedCopyArgs): ShellText {
    const { access, database } = args;
    const psql = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", database];
    return script(
        sh`fp=$(mktemp -d); trap 'rm -rf "$fp"' EXIT`,
        sh`printf '%s' ${args.fingerprintSql} > "$fp/sql"`,
        // Both sides at once: each server hashes its own rows.
        sh`fingerprints() { ${access.ssh} ${`postgres@${access.target}`} ${remoteFingerprintCommand(database, args.fingerprintTag)} < /dev/null > "$fp/old" & old=$!; runuser -u postgres -- env ${`PGAPPNAME=${VERIFY_APPLICATION}`} ${psql} < "$fp/sql" > "$fp/new"; wait "$old"; }`,
        sh`held=$(${args.held})`,
        sh`if [ "$held" != 0 ]; then
  fingerprints
  if cmp -s "$fp/old" "$fp/new"; then echo ${`${args.subject}: already an equal copy of the old server's (an earlier run was cut off); recorded as done`}; exit 0; fi
  echo ${args.refusal[0]} "$held" ${args.refusal[1]} >&2; exit 1
fi`,
        ...args.copy,
        withProgress(verifyMeter(`${args.subject}: verifying (new server)`, database, args.tables), sh`fingerprints`),
        compareOrFail(sh`"$fp/old"`, sh`"$fp/new"`, args.compared),
    );
}
