#!/usr/bin/python3
"""scrapyd-deploy-standin.py: a STAND-IN for scrapyd-client's `scrapyd-deploy` (installed as
~incremental/kingfisher-collect/.ve/bin/scrapyd-deploy on the old and new test hosts).
The real one builds an egg of the project in the working directory and uploads it to Scrapyd's
addversion.json; this one only records its arguments (argv after `scrapyd-deploy`), working
directory, user and time as one JSON line in /var/log/scrapyd-deploy-standin.log, prints what the
real one prints on success, and exits 0. It fails like the real one outside a Scrapy project
(no scrapy.cfg in the working directory or its parents).
"""
import datetime
import json
import os
import pwd
import sys

cwd = os.getcwd()
entry = {
    "argv": sys.argv[1:],
    "cwd": cwd,
    "user": pwd.getpwuid(os.getuid()).pw_name,
    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
}
directory, found = cwd, False
while True:
    if os.path.isfile(os.path.join(directory, "scrapy.cfg")):
        found = True
        break
    if os.path.dirname(directory) == directory:
        break
    directory = os.path.dirname(directory)
entry["exit"] = 0 if found else 1
with open("/var/log/scrapyd-deploy-standin.log", "a", encoding="utf-8") as f:
    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
if not found:
    print("Error: no Scrapy project found in this location", file=sys.stderr)
    sys.exit(1)
target = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "default"
print(f"Packing version (ds-testbed stand-in)\nDeploying to project \"kingfisher\" in target {target}")
print('Server response (200):\n{"status": "ok", "project": "kingfisher", "spiders": 2}')
