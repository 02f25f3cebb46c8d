// Shell for editing a user's crontab the way Salt writes it: each managed entry is the line after
// a `# SALT_CRON_IDENTIFIER:<ID>` comment. Crontabs are always installed with `crontab` itself,
// so cron's own parser accepts them, and lines we do not manage are left as they are.
import { sh, ShellText } from "./shell";

/**
 * Removes the entries whose identifier matches `idPattern` (an extended regex) from `user`'s
 * crontab. The removed lines (comment and entry) are appended to `savedTo` when given.
 */
export function removeCronEntries(user: string, idPattern: string, savedTo?: string): ShellText {
    return sh`cron_now=$(mktemp) cron_new=$(mktemp)
{ crontab -l -u ${user} 2>/dev/null || true; } > "$cron_now"
awk -v re=${`^# SALT_CRON_IDENTIFIER:(${idPattern})$`} -v saved=${savedTo ?? "/dev/null"} '
  skip { print >> saved; skip = 0; next }
  $0 ~ re { print >> saved; skip = 1; next }
  { print }' "$cron_now" > "$cron_new"
if ! cmp -s "$cron_now" "$cron_new"; then crontab -u ${user} "$cron_new"; fi
rm -f "$cron_now" "$cron_new"`;
}

/** Appends saved entries (from removeCronEntries) back to `user`'s crontab, unless already there. */
export function restoreCronEntries(user: string, savedFrom: string): ShellText {
    return sh`if [ -s ${savedFrom} ]; then
  cron_new=$(mktemp)
  { crontab -l -u ${user} 2>/dev/null || true; } > "$cron_new"
  if ! grep -qxF -f ${savedFrom} "$cron_new"; then cat ${savedFrom} >> "$cron_new"; crontab -u ${user} "$cron_new"; fi
  rm -f "$cron_new"
fi`;
}
