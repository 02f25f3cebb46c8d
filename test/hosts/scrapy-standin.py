#!/usr/bin/python3
"""scrapy-standin.py: a STAND-IN for Kingfisher Collect's `scrapy` (installed as
~incremental/kingfisher-collect/.ve/bin/scrapy on the test hosts). Real crawls need the internet;
this one speaks only the command line: it appends its arguments (argv after `scrapy`), working
directory, user and time as one JSON line to ~/scrapy-standin.log and exits 0.
"""
import datetime
import json
import os
import pwd
import sys

home = os.path.expanduser("~")
entry = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "user": pwd.getpwuid(os.getuid()).pw_name,
    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "http_proxy": os.environ.get("http_proxy"),
}
with open(os.path.join(home, "scrapy-standin.log"), "a", encoding="utf-8") as f:
    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
