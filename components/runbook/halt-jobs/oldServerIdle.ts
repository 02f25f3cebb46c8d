// The gates' question, asked by the irreversible step itself (the incremental copy, step 6): is the
// old server idle? A re-check gate that passed is in the Pulumi state, so a run that failed right
// after it and resumes days later would not ask it again; a check inside the step's own command
// has no state that can say "already asked", and runs whenever the step does (README, "Where we
// differ from the runbook").
//
// What "busy" means is the gates' own definition (scripts/gate.mjs, which names this file); keep
// the two together, and test/unit/oldServerIdle.test.ts runs the same table of cases through both:
// - Scrapyd: listprojects.json must answer {"status": "ok", "projects": [strings]}; the configured
//   project and every listed one are asked with listjobs.json?project=P, which must answer
//   {"status": "ok", "pending": [...], "running": [...]}; any job running or pending is busy.
// - RabbitMQ: /api/queues/<vhost>?disable_stats=true&enable_queue_totals=true must answer a list;
//   a queue whose `messages` is a number above 0 is busy, one whose count is missing or not a
//   number is unknown, and unknown counts as busy.
// - Anything else (no answer in time, a refused connection, HTTP 401/403 or any non-2xx, an answer
//   that is not JSON or not of that shape) fails closed.
// Both connect to the old server's address whatever DNS says, with the URL's name as TLS name
// (SNI, checked against the certificate) and HTTP Host.
//
// It runs on the new server, not the operator's machine, so it cannot use node: Python 3 alone,
// from the standard library. python3 is on every server Salt builds (deploy afaedf6b:
// salt/core/init.sls installs python3-apt, which needs python3; salt/kingfisher/init.sls
// python3-pip; Kingfisher Collect runs on it). curl is there too (salt/core/customization.sls), but
// it would need the credentials handed over to a second process and the JSON read by a third;
// http.client keeps them in one process that never prints them.
//
// Credentials arrive on stdin only ({"scrapyd": {"username", "password"}, "rabbitmq": {...}}),
// marked secret; never in argv or the command text.
import * as pulumi from "@pulumi/pulumi";
import { sh, ShellText } from "../../machinery/shell";

// Command text, so users' state: a change updates every step that runs it.
export const OLD_SERVER_IDLE_PROGRAM = String.raw`import base64, http.client, json, socket, ssl, sys, urllib.parse
scrapyd_url, project, rabbitmq_url, vhost, connect = sys.argv[1:6]
timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 30.0
problems = []
class Closed(Exception):
    pass
def reject(constant):
    raise ValueError(constant)
try:
    creds = json.loads(sys.stdin.read())
    auths = {}
    for k in ("scrapyd", "rabbitmq"):
        u, p = creds[k]["username"], creds[k]["password"]
        if not isinstance(u, str) or not isinstance(p, str):
            raise ValueError(k)
        auths[k] = "Basic " + base64.b64encode(("%s:%s" % (u, p)).encode()).decode()
except Exception:
    sys.exit('old server check: expected {"scrapyd": {"username", "password"}, "rabbitmq": {...}} as JSON on stdin')
class Connection(http.client.HTTPSConnection):
    # The URL's name stays the TLS name (SNI, certificate) and the Host header; the socket goes to connect.
    def connect(self):
        sock = socket.create_connection((connect, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
class PlainConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.create_connection((connect, self.port), self.timeout)
def get(what, url, auth):
    where = "%s (at %s)" % (url, connect)
    target = urllib.parse.urlsplit(url)
    try:
        if target.scheme == "https":
            c = Connection(target.hostname, target.port, timeout=timeout, context=ssl.create_default_context())
        else:
            c = PlainConnection(target.hostname, target.port, timeout=timeout)
        path = target.path or "/"
        c.request("GET", path + ("?" + target.query if target.query else ""), headers={"Authorization": auth})
        r = c.getresponse()
        status, text = r.status, r.read().decode("utf-8", "replace")
        c.close()
    except Exception as e:
        raise Closed("%s check: cannot reach %s: %s. Check the URL in config and that the service is up, then run pulumi up again." % (what, where, e))
    if status in (401, 403):
        raise Closed("%s check: %s refused the credentials (HTTP %d). Set the right username and password in config (pulumi config set --secret --path ...)." % (what, where, status))
    if status < 200 or status > 299:
        raise Closed("%s check: %s answered HTTP %d; the check cannot tell what is running, so it stops here." % (what, where, status))
    try:
        return json.loads(text, parse_constant=reject)
    except ValueError:
        raise Closed("%s check: %s did not answer JSON; the check cannot tell what is running, so it stops here." % (what, where))
def quote(value):
    return urllib.parse.quote(value, safe="!'()*")
def is_list(value):
    return isinstance(value, list)
def known(job, key):
    return "?" if job.get(key) is None else job[key]
def scrapyd():
    base = scrapyd_url[:-1] if scrapyd_url.endswith("/") else scrapyd_url
    listing = get("Scrapyd", base + "/listprojects.json", auths["scrapyd"])
    if not isinstance(listing, dict) or listing.get("status") != "ok" or not is_list(listing.get("projects")) or not all(isinstance(p, str) for p in listing["projects"]):
        raise Closed("Scrapyd check: %s/listprojects.json (at %s) answered %s; without the list of projects the check fails closed." % (base, connect, json.dumps(listing)[:300]))
    projects = list(dict.fromkeys([project] + listing["projects"]))
    jobs = []
    for p in projects:
        url = "%s/listjobs.json?project=%s" % (base, quote(p))
        body = get("Scrapyd", url, auths["scrapyd"])
        if not isinstance(body, dict) or body.get("status") != "ok" or not is_list(body.get("pending")) or not is_list(body.get("running")):
            raise Closed("Scrapyd check: %s (at %s) answered %s; without the job lists the check fails closed." % (url, connect, json.dumps(body)[:300]))
        for state in ("running", "pending"):
            for j in body[state]:
                j = j if isinstance(j, dict) else {}
                jobs.append("  - %s: project %s, spider %s, job %s%s" % (state, p, known(j, "spider"), known(j, "id"), ", since %s" % j["start_time"] if j.get("start_time") else ""))
    if jobs:
        problems.append("Scrapyd check: %d crawl(s) are running or pending at %s (at %s):\n%s\nWait for them to finish, or have their owners cancel them (%s/jobs)." % (len(jobs), base, connect, "\n".join(jobs), base))
        return ""
    return "no crawl is running or pending at %s (at %s) (project(s): %s)" % (base, connect, ", ".join(projects))
def number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
def rabbitmq():
    base = rabbitmq_url[:-1] if rabbitmq_url.endswith("/") else rabbitmq_url
    url = "%s/api/queues/%s?disable_stats=true&enable_queue_totals=true" % (base, quote(vhost))
    queues = get("RabbitMQ", url, auths["rabbitmq"])
    if not is_list(queues):
        raise Closed("RabbitMQ check: %s (at %s) did not answer a list of queues; the check fails closed." % (url, connect))
    queues = [q if isinstance(q, dict) else {} for q in queues]
    lines = ["  - %s: %s message(s)" % (q.get("name"), q["messages"]) for q in queues if number(q.get("messages")) and q["messages"] > 0]
    lines += ["  - %s: message count unknown (counted as busy)" % q.get("name") for q in queues if not number(q.get("messages"))]
    if lines:
        problems.append("RabbitMQ check: queues in vhost %s at %s (at %s) are not empty:\n%s\nA Kingfisher Process job is still working. Wait for it, or have its owner cancel it (python manage.py cancelcollection <collection_id>)." % (vhost, base, connect, "\n".join(lines)))
        return ""
    return "%d queue(s) in vhost %s, all empty" % (len(queues), vhost)
said = []
for check in (scrapyd, rabbitmq):
    try:
        said.append(check())
    except Closed as e:
        problems.append(str(e))
if problems:
    sys.stderr.write("The old server is not idle; nothing has been changed.\n%s\n" % "\n".join(problems))
    sys.exit(1)
print("old server idle: %s; %s." % tuple(said))
`;

export interface OldServerIdleArgs {
    scrapyd: { url: string; project: string; username: string; password: string };
    rabbitmq: { url: string; vhost: string; username: string; password: string };
    /** The old server's address: asked there whatever the URLs' names resolve to. */
    connect: string;
}

/** The credentials, as the check reads them on stdin: secret. */
export function oldServerIdleStdin(args: OldServerIdleArgs): pulumi.Output<string> {
    return pulumi.secret(
        JSON.stringify({
            scrapyd: { username: args.scrapyd.username, password: args.scrapyd.password },
            rabbitmq: { username: args.rabbitmq.username, password: args.rabbitmq.password },
        }),
    );
}

/**
 * Shell that asks the old server's Scrapyd and RabbitMQ, reading the credentials from stdin (it
 * reads all of stdin: put it first), and when anything runs or is queued, or cannot be told, prints
 * what and `guide` and exits 1.
 */
export function oldServerIdleCheck(args: OldServerIdleArgs, guide: string): ShellText {
    return sh`python3 -c ${OLD_SERVER_IDLE_PROGRAM} ${args.scrapyd.url} ${args.scrapyd.project} ${args.rabbitmq.url} ${args.rabbitmq.vhost} ${args.connect} || { printf '%s\\n' ${guide} >&2; exit 1; }`;
}
