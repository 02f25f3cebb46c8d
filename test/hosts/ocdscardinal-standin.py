#!/usr/bin/python3
"""ocdscardinal-standin.py: a STAND-IN for ocdscardinal (a Rust tool, installed by cargo as
~incremental/.cargo/bin/ocdscardinal; not packaged for Debian). It speaks the command line the
cardinal step uses: `prepare -s SETTINGS -o OUT -e ERRORS IN` writes each JSON line of IN to OUT
(blank lines and psql's leading space dropped, as a JSON reader would) and an empty ERRORS file;
`indicators -s SETTINGS --map IN` prints a JSON object shaped like ocdscardinal's: one R003 result
per ocid of IN under "OCID", and "Maps". Each call is appended as one JSON line (argv, user) to
~/ocdscardinal-standin.log.
"""
import json
import os
import pwd
import sys

args = sys.argv[1:]
with open(os.path.join(os.path.expanduser("~"), "ocdscardinal-standin.log"), "a", encoding="utf-8") as f:
    f.write(json.dumps({"argv": args, "user": pwd.getpwuid(os.getuid()).pw_name}) + "\n")


def option(name):
    return args[args.index(name) + 1]


def releases(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


if args[:1] == ["prepare"]:
    with open(option("-o"), "w", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in releases(args[-1]))
    open(option("-e"), "w").close()
elif args[:1] == ["indicators"]:
    ocids = [json.loads(line).get("ocid") for line in releases(args[-1])]
    print(json.dumps({"OCID": {ocid: {"R003": 1.0} for ocid in ocids if ocid}, "Maps": {}, "Meta": {"settings": option("-s")}}))
else:
    sys.exit(f"ocdscardinal stand-in: unknown command {args[:1]}")
