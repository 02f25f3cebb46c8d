#!/usr/bin/python3
"""pgbackrest-standin.py: a STAND-IN for pgBackRest (installed as /usr/local/sbin/pgbackrest on the
old and new test hosts; no backup repository exists here). It speaks only the command line that the
deploy repository's Salt states use (salt/postgres/files/conf/shared.conf:
`pgbackrest --stanza=<stanza> archive-push %p`; salt/postgres/backup.sls: `pgbackrest backup
--stanza=<stanza> [--type=full]`): it appends one JSON line per call (command, stanza, the WAL path
asked to be archived, user, time) to /var/log/pgbackrest-standin.log and exits 0, so PostgreSQL
counts the segment as archived. With /etc/pgbackrest-standin.fail present it exits 1 instead, as a
pgBackRest that cannot reach its repository would (PostgreSQL then keeps the WAL in pg_wal).
"""
import datetime
import json
import os
import pwd
import sys

args = sys.argv[1:]
stanza = next((a.split("=", 1)[1] for a in args if a.startswith("--stanza=")), None)
positional = [a for a in args if not a.startswith("--")]
failing = os.path.exists("/etc/pgbackrest-standin.fail")
entry = {
    "command": positional[0] if positional else None,
    "stanza": stanza,
    "path": positional[1] if len(positional) > 1 else None,
    "argv": args,
    "user": pwd.getpwuid(os.getuid()).pw_name,
    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "exit": 1 if failing else 0,
}
with open("/var/log/pgbackrest-standin.log", "a", encoding="utf-8") as f:
    f.write(json.dumps(entry) + "\n")
if failing:
    print(f"pgbackrest-standin: failing on purpose (/etc/pgbackrest-standin.fail) for stanza {stanza}", file=sys.stderr)
    sys.exit(1)
