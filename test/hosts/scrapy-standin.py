#!/usr/bin/python3
"""scrapy-standin.py: a STAND-IN for Kingfisher Collect's `scrapy` (installed as
~incremental/kingfisher-collect/.ve/bin/scrapy on the test hosts). Real crawls need the internet;
this one speaks only the command line: it appends its arguments (argv after `scrapy`), working
directory, user and time as one JSON line to ~/scrapy-standin.log and exits 0. Like Kingfisher
Collect's DatabaseStore extension, given `-s DATABASE_URL=...` and `-a crawl_time=...` it creates
the spider's table (`data jsonb`) if missing and stores one compiled release in it (through psql).
"""
import datetime
import json
import os
import pwd
import subprocess
import sys

home = os.path.expanduser("~")
entry = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "user": pwd.getpwuid(os.getuid()).pw_name,
    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "http_proxy": os.environ.get("http_proxy"),
    "https_proxy": os.environ.get("https_proxy"),
    "no_proxy": os.environ.get("no_proxy"),
}
with open(os.path.join(home, "scrapy-standin.log"), "a", encoding="utf-8") as f:
    f.write(json.dumps(entry, ensure_ascii=False) + "\n")

args = sys.argv[1:]
settings = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-s" and i + 1 < len(args))
spider_args = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-a" and i + 1 < len(args))
if args[:1] == ["crawl"] and "DATABASE_URL" in settings and "crawl_time" in spider_args:
    table = args[1]
    release = json.dumps({"ocid": f"ocds-standin-{table}", "date": spider_args["crawl_time"]})
    sql = f"CREATE TABLE IF NOT EXISTS {table} (data jsonb);\nINSERT INTO {table} (data) VALUES ('{release}');\n"
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", settings["DATABASE_URL"]], input=sql, text=True, check=True)
