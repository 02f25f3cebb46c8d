// One definition of "busy" in two places: the gates (scripts/gate.mjs, node, on the operator's
// machine) and the check the incremental copy runs itself on the new server
// (components/runbook/halt-jobs/oldServerIdle.ts, Python). The same table of answers goes through
// both, each against a stand-in HTTP server on loopback reached through a name that does not
// resolve (.invalid, RFC 6761) and the connect address 127.0.0.1, as the old server is reached:
// both must say idle, busy or fail closed alike, and ask for the same URLs with the same
// credentials. Then what only the copy's check does: both services in one run, the guide, TLS.
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { OLD_SERVER_IDLE_PROGRAM, oldServerIdleCheck } from "../../components/runbook/halt-jobs/oldServerIdle";

const GATE = path.resolve(__dirname, "../../scripts/gate.mjs");
const USER = { username: "scrape", password: "pa:ss wörd" };
// base64("scrape:pa:ss wörd") in UTF-8, worked out by hand: both must send exactly this.
const AUTH = "Basic c2NyYXBlOnBhOnNzIHfDtnJk";

type Verdict = "idle" | "busy" | "closed";
interface Reply {
    status?: number;
    body: string;
}
const json = (value: unknown): Reply => ({ body: JSON.stringify(value) });
const idleJobs = json({ status: "ok", pending: [], running: [], finished: [] });

interface ScrapydCase {
    name: string;
    projects: Reply;
    /** listjobs.json?project=P: what each project answers (idle when absent). */
    jobs?: Record<string, Reply>;
    verdict: Verdict;
    /** What both messages say (gate.mjs says "gate", the copy's check "check"). */
    says?: RegExp;
}
interface RabbitCase {
    name: string;
    queues: Reply;
    verdict: Verdict;
    says?: RegExp;
}

// The configured project is "kingfisher" throughout.
const SCRAPYD: ScrapydCase[] = [
    { name: "no job running or pending (finished ones do not count)", projects: json({ status: "ok", projects: ["kingfisher"] }), jobs: { kingfisher: json({ status: "ok", pending: [], running: [], finished: [{ id: "f", spider: "x" }] }) }, verdict: "idle" },
    { name: "a running job", projects: json({ status: "ok", projects: ["kingfisher"] }), jobs: { kingfisher: json({ status: "ok", pending: [], running: [{ id: "j1", spider: "moldova" }], finished: [] }) }, verdict: "busy", says: /- running: project kingfisher, spider moldova, job j1\n/ },
    { name: "a pending job alone", projects: json({ status: "ok", projects: ["kingfisher"] }), jobs: { kingfisher: json({ status: "ok", pending: [{ id: "j2", spider: "chile" }], running: [] }) }, verdict: "busy", says: /- pending: project kingfisher, spider chile, job j2\n/ },
    { name: "a job in another project", projects: json({ status: "ok", projects: ["kingfisher", "kingfisher archive/1"] }), jobs: { "kingfisher archive/1": json({ status: "ok", pending: [], running: [{ id: "d4", spider: "mexico_inai" }] }) }, verdict: "busy", says: /- running: project kingfisher archive\/1, spider mexico_inai, job d4\n/ },
    { name: "the configured project left out of the listing still asked", projects: json({ status: "ok", projects: ["other"] }), jobs: { kingfisher: json({ status: "ok", pending: [], running: [{ id: "k" }] }) }, verdict: "busy", says: /- running: project kingfisher, spider \?, job k\n/ },
    { name: "a listing without projects", projects: json({ status: "ok" }), verdict: "closed", says: /without the list of projects the (gate|check) fails closed/ },
    { name: "a listing whose status is not ok", projects: json({ status: "error", projects: [] }), verdict: "closed", says: /without the list of projects the (gate|check) fails closed/ },
    { name: "a listing with a project that is not a string", projects: json({ status: "ok", projects: [1] }), verdict: "closed", says: /without the list of projects the (gate|check) fails closed/ },
    { name: "job lists without running", projects: json({ status: "ok", projects: ["kingfisher"] }), jobs: { kingfisher: json({ status: "ok", pending: [] }) }, verdict: "closed", says: /without the job lists the (gate|check) fails closed/ },
    { name: "job lists whose status is not ok", projects: json({ status: "ok", projects: ["kingfisher"] }), jobs: { kingfisher: json({ status: "error", pending: [], running: [] }) }, verdict: "closed", says: /without the job lists the (gate|check) fails closed/ },
    { name: "credentials refused (HTTP 401)", projects: { status: 401, body: "" }, verdict: "closed", says: /refused the credentials \(HTTP 401\)/ },
    { name: "HTTP 500 at listjobs.json", projects: json({ status: "ok", projects: ["kingfisher"] }), jobs: { kingfisher: { status: 500, body: "{}" } }, verdict: "closed", says: /answered HTTP 500; the (gate|check) cannot tell what is running/ },
    { name: "an answer that is not JSON", projects: { body: "<html>" }, verdict: "closed", says: /did not answer JSON/ },
    { name: "NaN, which JSON does not have", projects: json({ status: "ok", projects: ["kingfisher"] }), jobs: { kingfisher: { body: '{"status": "ok", "pending": [], "running": [], "n": NaN}' } }, verdict: "closed", says: /did not answer JSON/ },
];

const RABBIT: RabbitCase[] = [
    { name: "no queue at all", queues: json([]), verdict: "idle" },
    { name: "every queue empty", queues: json([{ name: "a", messages: 0 }, { name: "b", messages: 0 }]), verdict: "idle" },
    { name: "a queue with messages", queues: json([{ name: "a", messages: 0 }, { name: "kingfisher_process_api", messages: 2 }]), verdict: "busy", says: /- kingfisher_process_api: 2 message\(s\)\n/ },
    { name: "a queue without a count (statistics not there yet)", queues: json([{ name: "fresh" }]), verdict: "busy", says: /- fresh: message count unknown \(counted as busy\)/ },
    { name: "a count given as text", queues: json([{ name: "d", messages: "3" }]), verdict: "busy", says: /- d: message count unknown/ },
    { name: "a count that is null", queues: json([{ name: "n", messages: null }]), verdict: "busy", says: /- n: message count unknown/ },
    { name: "a count that is a boolean", queues: json([{ name: "t", messages: true }]), verdict: "busy", says: /- t: message count unknown/ },
    { name: "an answer that is not a list", queues: json({ error: "x" }), verdict: "closed", says: /did not answer a list of queues; the (gate|check) fails closed/ },
    { name: "credentials refused (HTTP 403)", queues: { status: 403, body: "" }, verdict: "closed", says: /refused the credentials \(HTTP 403\)/ },
    { name: "an answer that is not JSON", queues: { body: "not json" }, verdict: "closed", says: /did not answer JSON/ },
];

// One stand-in server; each run gets a path prefix of its own, so runs go side by side.
interface Seen {
    url: string;
    authorization?: string;
    host?: string;
}
const routes = new Map<string, { answer: (url: string) => Reply | "hang"; seen: Seen[] }>();
let server: http.Server;
let port = 0;

function route(answer: (url: string) => Reply | "hang"): { prefix: string; seen: Seen[] } {
    const prefix = `r${routes.size}`;
    const seen: Seen[] = [];
    routes.set(prefix, { answer, seen });
    return { prefix, seen };
}

const handler: http.RequestListener = (req, res) => {
    const [, prefix, ...rest] = (req.url ?? "").split("/");
    const r = routes.get(prefix);
    const url = `/${rest.join("/")}`;
    r?.seen.push({ url, authorization: req.headers.authorization, host: req.headers.host });
    const a = r ? r.answer(url) : { status: 404, body: "" };
    if (a === "hang") return;
    res.writeHead(a.status ?? 200, { "content-type": "application/json" });
    res.end(a.body);
};

before(async () => {
    server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
});

after(() => {
    server.closeAllConnections();
    server.close();
});

const scrapydAnswer = (c: ScrapydCase) => (url: string) => (url === "/listprojects.json" ? c.projects : c.jobs?.[decodeURIComponent(url.replace(/^\/listjobs\.json\?project=/, ""))] ?? idleJobs);
const idleRabbit = () => json([{ name: "a", messages: 0 }]);
const idleScrapyd = (url: string) => (url === "/listprojects.json" ? json({ status: "ok", projects: ["kingfisher"] }) : idleJobs);

interface Outcome {
    code: number;
    out: string;
}

let gateModule: { runGate: (argv: string[], o: { stdin: () => Promise<string>; timeoutMs: number }) => Promise<string>; GateFailure: typeof Error };
before(async () => {
    gateModule = await import(pathToFileURL(GATE).href);
});

async function viaGate(argv: string[]): Promise<Outcome> {
    try {
        return { code: 0, out: await gateModule.runGate([...argv, "--connect", "127.0.0.1"], { stdin: async () => JSON.stringify(USER), timeoutMs: 10_000 }) };
    } catch (error) {
        if (!(error instanceof gateModule.GateFailure)) throw error;
        return { code: 1, out: error.message };
    }
}

function run(argv: string[], stdin: string, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
        const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], env });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("close", (code) => resolve({ code, stdout, stderr }));
        child.stdin.end(stdin);
    });
}

const CREDS = JSON.stringify({ scrapyd: USER, rabbitmq: USER });
const url = (name: string, prefix: string) => `http://${name}.example.invalid:${port}/${prefix}`;

/** The copy's check, the program alone (python3 -c PROGRAM ...), connecting to 127.0.0.1. */
async function viaCheck(scrapyd: string, rabbitmq: string, opts: { stdin?: string; timeout?: string; vhost?: string } = {}) {
    const r = await run(["python3", "-c", OLD_SERVER_IDLE_PROGRAM, scrapyd, "kingfisher", rabbitmq, opts.vhost ?? "/", "127.0.0.1", ...(opts.timeout ? [opts.timeout] : [])], opts.stdin ?? CREDS);
    return { code: r.code ?? -1, out: `${r.stdout}${r.stderr}` };
}

describe("the same cases, the same verdicts: scripts/gate.mjs and the copy's own check", { concurrency: 4 }, () => {
    for (const c of SCRAPYD) {
        test(`scrapyd: ${c.name}: ${c.verdict}`, async () => {
            const g = route(scrapydAnswer(c));
            const p = route(scrapydAnswer(c));
            const rabbit = route(idleRabbit);
            const gate = await viaGate(["scrapyd", url("collect", g.prefix), "kingfisher"]);
            const check = await viaCheck(url("collect", p.prefix), url("rabbitmq", rabbit.prefix));
            for (const [who, o] of [["gate.mjs", gate], ["the copy's check", check]] as const) {
                assert.equal(o.code, c.verdict === "idle" ? 0 : 1, `${who}: ${o.out}`);
                if (c.verdict === "busy") assert.match(o.out, /Scrapyd (gate|check): \d+ crawl\(s\) are running or pending/, `${who}: ${o.out}`);
                if (c.says) assert.match(o.out, c.says, `${who}: ${o.out}`);
            }
            // The same requests, with the same credentials and the URL's name as Host.
            assert.deepEqual(p.seen, g.seen);
            assert.ok(p.seen.every((s) => s.authorization === AUTH && s.host === `collect.example.invalid:${port}`), JSON.stringify(p.seen));
        });
    }
    for (const c of RABBIT) {
        test(`rabbitmq: ${c.name}: ${c.verdict}`, async () => {
            const g = route(() => c.queues);
            const p = route(() => c.queues);
            const scrapyd = route(idleScrapyd);
            const gate = await viaGate(["rabbitmq", url("rabbitmq", g.prefix), "ocds data/1"]);
            const check = await viaCheck(url("collect", scrapyd.prefix), url("rabbitmq", p.prefix), { vhost: "ocds data/1" });
            for (const [who, o] of [["gate.mjs", gate], ["the copy's check", check]] as const) {
                assert.equal(o.code, c.verdict === "idle" ? 0 : 1, `${who}: ${o.out}`);
                if (c.says) assert.match(o.out, c.says, `${who}: ${o.out}`);
            }
            assert.deepEqual(p.seen, g.seen);
            assert.deepEqual(p.seen.map((s) => s.url), ["/api/queues/ocds%20data%2F1?disable_stats=true&enable_queue_totals=true"]);
        });
    }
});

test("the copy's check: idle says what it asked, one line; its requests are written out", async () => {
    const s = route(idleScrapyd);
    const q = route(() => json([]));
    const r = await viaCheck(`${url("collect", s.prefix)}/`, url("rabbitmq", q.prefix));
    assert.deepEqual(r, {
        code: 0,
        out: `old server idle: no crawl is running or pending at ${url("collect", s.prefix)} (at 127.0.0.1) (project(s): kingfisher); 0 queue(s) in vhost /, all empty.\n`,
    });
    assert.deepEqual(s.seen.map((x) => x.url), ["/listprojects.json", "/listjobs.json?project=kingfisher"]);
    assert.deepEqual(q.seen.map((x) => x.url), ["/api/queues/%2F?disable_stats=true&enable_queue_totals=true"]);
});

test("the copy's check: both services busy are both reported; in the command, the guide follows and the exit is 1", async () => {
    const s = route((u) => (u === "/listprojects.json" ? json({ status: "ok", projects: ["kingfisher"] }) : json({ status: "ok", pending: [], running: [{ id: "c0", spider: "moldova", start_time: "2026-11-27 09:00:00" }] })));
    const q = route(() => json([{ name: "kingfisher_process_api", messages: 1 }]));
    const check = oldServerIdleCheck(
        { scrapyd: { url: url("collect", s.prefix), project: "kingfisher", ...USER }, rabbitmq: { url: url("rabbitmq", q.prefix), vhost: "/", ...USER }, connect: "127.0.0.1" },
        "THE GUIDE\n  line two",
    );
    // The shell the remote command runs (dash, as POSIX sh; the servers run it in bash).
    const r = await run(["sh", "-c", `${check.text}\necho "went on" >&2`], CREDS);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.equal(
        r.stderr,
        [
            "The old server is not idle; nothing has been changed.",
            `Scrapyd check: 1 crawl(s) are running or pending at ${url("collect", s.prefix)} (at 127.0.0.1):`,
            "  - running: project kingfisher, spider moldova, job c0, since 2026-11-27 09:00:00",
            `Wait for them to finish, or have their owners cancel them (${url("collect", s.prefix)}/jobs).`,
            `RabbitMQ check: queues in vhost / at ${url("rabbitmq", q.prefix)} (at 127.0.0.1) are not empty:`,
            "  - kingfisher_process_api: 1 message(s)",
            "A Kingfisher Process job is still working. Wait for it, or have its owner cancel it (python manage.py cancelcollection <collection_id>).",
            "THE GUIDE",
            "  line two",
            "",
        ].join("\n"),
    );
    // The credentials are not in the command text.
    assert.ok(!check.text.includes("pa:ss") && !check.text.includes("c2NyYXBl"), "no credential in the command text");
});

test("the copy's check: credentials that are not on stdin as expected stop it before any request", async () => {
    const s = route(idleScrapyd);
    const q = route(idleRabbit);
    for (const stdin of ["", "{}", JSON.stringify({ scrapyd: USER }), JSON.stringify({ scrapyd: { username: 5, password: "p" }, rabbitmq: USER })]) {
        const r = await viaCheck(url("collect", s.prefix), url("rabbitmq", q.prefix), { stdin });
        assert.deepEqual(r, { code: 1, out: 'old server check: expected {"scrapyd": {"username", "password"}, "rabbitmq": {...}} as JSON on stdin\n' }, stdin);
    }
    assert.deepEqual([...s.seen, ...q.seen], []);
});

test("the copy's check: a service that does not answer in time fails closed", async () => {
    const s = route(() => "hang");
    const q = route(idleRabbit);
    const r = await viaCheck(url("collect", s.prefix), url("rabbitmq", q.prefix), { timeout: "0.5" });
    assert.equal(r.code, 1);
    assert.match(r.out, new RegExp(`Scrapyd check: cannot reach ${url("collect", s.prefix).replaceAll(".", "\\.")}/listprojects\\.json \\(at 127\\.0\\.0\\.1\\): timed out\\. Check the URL in config`));
    server.closeAllConnections();
});

describe("the copy's check over TLS", () => {
    let dir = "";
    let tls: https.Server;
    let tlsPort = 0;
    const openssl = (...args: string[]) => assert.equal(spawnSync("openssl", args, { cwd: dir }).status, 0, `openssl ${args.join(" ")}`);
    before(async () => {
        // A CA and a certificate for the public name, as the old server's Scrapyd serves it.
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "idle-tls-"));
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.crt");
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=collect.example.invalid", "-keyout", "s.key", "-out", "s.csr");
        fs.writeFileSync(path.join(dir, "s.ext"), "subjectAltName=DNS:collect.example.invalid\n");
        openssl("x509", "-req", "-in", "s.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "s.ext", "-out", "s.crt");
        tls = https.createServer({ key: fs.readFileSync(path.join(dir, "s.key")), cert: fs.readFileSync(path.join(dir, "s.crt")) }, handler);
        await new Promise<void>((resolve) => tls.listen(0, "127.0.0.1", resolve));
        tlsPort = (tls.address() as AddressInfo).port;
    });
    after(() => {
        tls.closeAllConnections();
        tls.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });
    const check = (name: string, prefix: string, rabbitPrefix: string, env: NodeJS.ProcessEnv) =>
        run(["python3", "-c", OLD_SERVER_IDLE_PROGRAM, `https://${name}:${tlsPort}/${prefix}`, "kingfisher", url("rabbitmq", rabbitPrefix), "/", "127.0.0.1"], CREDS, env);

    test("the URL's name is the TLS name: a certificate for it from a trusted CA passes; an untrusted CA, or another name, fails closed", async () => {
        const s = route(idleScrapyd);
        const q = route(idleRabbit);
        // OpenSSL's default verify paths honour SSL_CERT_FILE: the test's CA stands for the public ones.
        const trusted = { ...process.env, SSL_CERT_FILE: path.join(dir, "ca.crt") };
        const ok = await check("collect.example.invalid", s.prefix, q.prefix, trusted);
        assert.equal(ok.code, 0, ok.stderr);
        assert.deepEqual(s.seen.map((x) => x.host), [`collect.example.invalid:${tlsPort}`, `collect.example.invalid:${tlsPort}`]);
        const untrusted = await check("collect.example.invalid", s.prefix, q.prefix, { ...process.env, SSL_CERT_FILE: "/dev/null" });
        assert.equal(untrusted.code, 1);
        assert.match(untrusted.stderr, /Scrapyd check: cannot reach .*CERTIFICATE_VERIFY_FAILED/);
        const otherName = await check("other.example.invalid", s.prefix, q.prefix, trusted);
        assert.equal(otherName.code, 1);
        assert.match(otherName.stderr, /Scrapyd check: cannot reach https:\/\/other\.example\.invalid:\d+\/r\d+\/listprojects\.json \(at 127\.0\.0\.1\): .*(Hostname mismatch|doesn't match)/);
        assert.equal(s.seen.length, 2, "no request after a failed handshake");
    });
});
