#!/usr/bin/python3
"""scrapyd-standin.py: a STAND-IN for Scrapyd's JSON API (the crawl server behind
collect.kingfisher.open-contracting.org), run on the old test host. Real Scrapyd needs real
spiders; this one speaks the endpoints the runbook touches, behind HTTP basic auth like production
(401 without or with wrong credentials):

  GET  /daemonstatus.json
  GET  /listjobs.json[?project=kingfisher]  -> {"node_name", "status": "ok", "pending", "running", "finished"}
  POST /addversion.json (project, version, egg)  -> records the upload, {"status": "ok", "spiders": N}
  POST /cancel.json (project, job)           -> removes the job from the jobs file

The jobs come from a JSON file that tests edit ({"pending": [...], "running": [...], "finished": [...]};
read on every request). Every request is logged as a JSON line.
Usage: DS_SCRAPYD_USER=u DS_SCRAPYD_PASSWORD=p scrapyd-standin.py --port 6800 --jobs FILE --log FILE
"""
import argparse
import base64
import datetime
import email.parser
import email.policy
import http.server
import json
import os
import socket
import urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=6800)
parser.add_argument("--jobs", required=True)
parser.add_argument("--log", required=True)
options = parser.parse_args()
EXPECTED = "Basic " + base64.b64encode(
    f"{os.environ['DS_SCRAPYD_USER']}:{os.environ['DS_SCRAPYD_PASSWORD']}".encode()).decode()
NODE = socket.gethostname()


def read_jobs():
    with open(options.jobs, encoding="utf-8") as f:
        jobs = json.load(f)
    return {key: list(jobs.get(key, [])) for key in ("pending", "running", "finished")}


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "Scrapyd-standin/1.5"

    def log_message(self, format, *args):  # one JSON line per request instead of stderr
        pass

    def record(self, status, extra=None):
        entry = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(), "method": self.command,
                 "path": self.path, "client": self.client_address[0], "status": status}
        entry.update(extra or {})
        with open(options.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def answer(self, status, body, extra=None):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="Scrapyd"')
        self.send_header("Content-Type", "application/json" if status != 401 else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.record(status, extra)

    def authorized(self):
        if self.headers.get("Authorization") == EXPECTED:
            return True
        self.answer(401, b"Unauthorized")
        return False

    def form(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
            fields = {}
            for part in message.iter_parts():
                fields[part.get_param("name", header="content-disposition")] = part.get_payload(decode=True)
            return fields
        return {k: v[0].encode() for k, v in urllib.parse.parse_qs(raw.decode()).items()}

    def do_GET(self):
        if not self.authorized():
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        jobs = read_jobs()
        if url.path == "/daemonstatus.json":
            self.answer(200, {"node_name": NODE, "status": "ok", "pending": len(jobs["pending"]),
                              "running": len(jobs["running"]), "finished": len(jobs["finished"])})
        elif url.path == "/listjobs.json":
            project = query.get("project", ["kingfisher"])[0]
            if project != "kingfisher":
                jobs = {"pending": [], "running": [], "finished": []}
            self.answer(200, {"node_name": NODE, "status": "ok", **jobs})
        else:
            self.answer(404, {"node_name": NODE, "status": "error", "message": f"no such resource: {url.path}"})

    def do_POST(self):
        if not self.authorized():
            return
        path = urllib.parse.urlsplit(self.path).path
        fields = self.form()
        if path == "/addversion.json":
            missing = [k for k in ("project", "version", "egg") if k not in fields]
            if missing:
                self.answer(200, {"node_name": NODE, "status": "error", "message": f"'{missing[0]}' parameter is required"})
                return
            self.answer(200, {"node_name": NODE, "status": "ok", "project": fields["project"].decode(),
                              "version": fields["version"].decode(), "spiders": 2},
                        {"project": fields["project"].decode(), "version": fields["version"].decode(),
                         "egg_bytes": len(fields["egg"])})
        elif path == "/cancel.json":
            job = fields.get("job", b"").decode()
            jobs, prevstate = read_jobs(), None
            for state in ("pending", "running"):
                kept = [j for j in jobs[state] if j.get("id") != job]
                if len(kept) != len(jobs[state]):
                    prevstate, jobs[state] = state, kept
            with open(options.jobs, "w", encoding="utf-8") as f:
                json.dump(jobs, f)
            self.answer(200, {"node_name": NODE, "status": "ok", "prevstate": prevstate}, {"job": job})
        else:
            self.answer(404, {"node_name": NODE, "status": "error", "message": f"no such resource: {path}"})


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6  # dual stack: IPv4 and IPv6 addresses of the host, and loopback

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


Server(("::", options.port), Handler).serve_forever()
