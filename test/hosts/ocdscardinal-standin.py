#!/usr/bin/python3
"""ocdscardinal-standin.py: a STAND-IN for ocdscardinal (a Rust tool, installed by cargo as
~incremental/.cargo/bin/ocdscardinal; not packaged for Debian). It speaks the command line the
cardinal step uses: `prepare -s SETTINGS -o OUT -e ERRORS IN` copies IN to OUT and writes an empty
ERRORS file; `indicators -s SETTINGS --map IN` prints a JSON object. Each call is appended as one
JSON line (argv, user) to ~/ocdscardinal-standin.log.
"""
import json
import os
import pwd
import shutil
import sys

args = sys.argv[1:]
with open(os.path.join(os.path.expanduser("~"), "ocdscardinal-standin.log"), "a", encoding="utf-8") as f:
    f.write(json.dumps({"argv": args, "user": pwd.getpwuid(os.getuid()).pw_name}) + "\n")


def option(name):
    return args[args.index(name) + 1]


if args[:1] == ["prepare"]:
    shutil.copyfile(args[-1], option("-o"))
    open(option("-e"), "w").close()
elif args[:1] == ["indicators"]:
    print(json.dumps({"OCID": {}, "Meta": {"settings": option("-s")}}))
else:
    sys.exit(f"ocdscardinal stand-in: unknown command {args[:1]}")
