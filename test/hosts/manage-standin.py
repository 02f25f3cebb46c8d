#!/usr/bin/python3
"""manage-standin.py: a STAND-IN for cardinal-rs's manage.py (Salt downloads it from GitHub to
~incremental/bin/manage.py; this machine has no internet). It speaks the one command the crawl
script uses, `json-to-csv [-q] IN.json OUT.csv`, as manage.py does for indicator results of scope
OCID: reads ocdscardinal's `indicators --map` output (`{"OCID": {ocid: {code: result}}, "Maps":
{...}}`), appends a row per result not already in OUT (ocid, subject, code, result, buyer_id,
procuring_entity_id, tenderer_id, created_at), with the header when OUT is new. Each call is one
JSON line (argv, user) in ~/manage-standin.log.
"""
import csv
import datetime
import json
import os
import pwd
import sys

args = sys.argv[1:]
with open(os.path.join(os.path.expanduser("~"), "manage-standin.log"), "a", encoding="utf-8") as f:
    f.write(json.dumps({"argv": args, "user": pwd.getpwuid(os.getuid()).pw_name}) + "\n")

if args[:1] != ["json-to-csv"]:
    sys.exit(f"manage.py stand-in: unknown command {args[:1]}")
paths = [a for a in args[1:] if a not in ("-q", "--quiet")]
if len(paths) != 2:
    sys.exit("usage: manage.py json-to-csv [-q] infile outfile")
infile, outfile = paths
fields = ["ocid", "subject", "code", "result", "buyer_id", "procuring_entity_id", "tenderer_id", "created_at"]
exists = os.path.exists(outfile)
seen = set()
if exists:
    with open(outfile, encoding="utf-8") as f:
        seen = {(row["ocid"], row["code"]) for row in csv.DictReader(f, fieldnames=fields)}
with open(infile, encoding="utf-8") as f:
    data = json.load(f)
data["Maps"]  # manage.py reads it unconditionally: a KeyError without it, as there
created_at = datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
rows = [
    {"ocid": ocid, "subject": "OCID", "code": code, "result": result, "created_at": created_at}
    for ocid, results in data.get("OCID", {}).items()
    for code, result in results.items()
    if (ocid, code) not in seen
]
if "-q" not in args and "--quiet" not in args:
    print(f"Writing {len(rows)} rows")
with open(outfile, "a", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
    if not exists:
        writer.writeheader()
    writer.writerows(rows)
