#!/usr/bin/python3
"""scrapyd-standin.py: a STAND-IN for Scrapyd's JSON API (the crawl server behind
collect.kingfisher.open-contracting.org), run on the old test host. Real Scrapyd needs real
spiders; this one speaks the endpoints the runbook touches, behind HTTP basic auth like production
(401 without or with wrong credentials):

  GET  /daemonstatus.json
  GET  /listprojects.json                   -> {"node_name", "status": "ok", "projects": [...]}
  GET  /listjobs.json[?project=P]           -> {"node_name", "status": "ok", "pending", "running", "finished"}
  POST /addversion.json (project, version, egg)  -> records the upload, {"status": "ok", "spiders": N}
  POST /cancel.json (project, job)           -> removes the job from the jobs file

Shapes as Scrapyd's API documentation gives them (https://scrapyd.readthedocs.io/en/stable/api.html:
listprojects.json, listjobs.json; each job carries its "project", as Scrapyd 1.4+ lists it).

The jobs come from a JSON file that tests edit ({"pending": [...], "running": [...], "finished": [...],
optionally "projects": [...]}; read on every request). A job's "project" defaults to kingfisher; the
projects are those listed (default ["kingfisher"]) and those of the jobs, as a job exists only in a
project that was deployed. Every request is logged as a JSON line.

With --tls-port, it also serves HTTPS there as the public name does in production (a reverse proxy
with virtual hosts): the certificate of --cert/--key, and only for --vhost: a request whose TLS
name (SNI) or Host header is another name gets 421 Misdirected Request.
Usage: DS_SCRAPYD_USER=u DS_SCRAPYD_PASSWORD=p scrapyd-standin.py --port 6800 --jobs FILE --log FILE
       [--tls-port 443 --cert FILE --key FILE --vhost NAME]
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
import ssl
import threading
import urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=6800)
parser.add_argument("--jobs", required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--tls-port", type=int)
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--vhost")
options = parser.parse_args()
EXPECTED = "Basic " + base64.b64encode(
    f"{os.environ['DS_SCRAPYD_USER']}:{os.environ['DS_SCRAPYD_PASSWORD']}".encode()).decode()
NODE = socket.gethostname()


def read_jobs():
    with open(options.jobs, encoding="utf-8") as f:
        jobs = json.load(f)
    return {key: list(jobs.get(key, [])) for key in ("pending", "running", "finished")}


def read_projects():
    with open(options.jobs, encoding="utf-8") as f:
        jobs = json.load(f)
    projects = list(jobs.get("projects", ["kingfisher"]))
    for state in ("pending", "running", "finished"):
        for job in jobs.get(state, []):
            if job.get("project", "kingfisher") not in projects:
                projects.append(job.get("project", "kingfisher"))
    return projects


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

    def misdirected(self):
        """On the TLS port: only the virtual host's name, in SNI and in Host, is served."""
        if not isinstance(self.connection, ssl.SSLSocket) or not options.vhost:
            return False
        sni = getattr(self.connection, "ds_sni", None)
        host = (self.headers.get("Host") or "").split(":")[0]
        if sni == options.vhost and host == options.vhost:
            return False
        self.answer(421, {"status": "error", "message": f"misdirected: SNI {sni!r}, Host {host!r}, served {options.vhost!r}"},
                    {"sni": sni, "host": host})
        return True

    def do_GET(self):
        if self.misdirected() or not self.authorized():
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        jobs = read_jobs()
        if url.path == "/daemonstatus.json":
            self.answer(200, {"node_name": NODE, "status": "ok", "pending": len(jobs["pending"]),
                              "running": len(jobs["running"]), "finished": len(jobs["finished"])})
        elif url.path == "/listprojects.json":
            self.answer(200, {"node_name": NODE, "status": "ok", "projects": read_projects()})
        elif url.path == "/listjobs.json":
            project = query.get("project", [None])[0]
            listed = {state: [{**job, "project": job.get("project", "kingfisher")} for job in jobs[state]
                              if project is None or job.get("project", "kingfisher") == project]
                      for state in jobs}
            self.answer(200, {"node_name": NODE, "status": "ok", **listed})
        else:
            self.answer(404, {"node_name": NODE, "status": "error", "message": f"no such resource: {url.path}"})

    def do_POST(self):
        if self.misdirected() or not self.authorized():
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


if options.tls_port:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(options.cert, options.key)
    names = {}

    def remember_sni(sock, name, _context):
        names[id(sock)] = name

    context.sni_callback = remember_sni

    class TlsServer(Server):
        def get_request(self):
            sock, address = super().get_request()
            tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            return tls, address

        def finish_request(self, request, client_address):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
            request.ds_sni = names.pop(id(request), None)
            super().finish_request(request, client_address)

    tls_server = TlsServer(("::", options.tls_port), Handler)
    threading.Thread(target=tls_server.serve_forever, daemon=True).start()

Server(("::", options.port), Handler).serve_forever()
