// Over 300 lines: every failure path of the gate (scripts/gate.mjs), one test each, against one local server.
// The gates (scripts/gate.mjs) against a local HTTP server on 127.0.0.1 that answers as Scrapyd or
// RabbitMQ would, or does not: every way a gate must fail closed, with its message, and the
// requests it makes (path, query, basic auth). Expected messages are written out.
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { canSandbox, runInSandbox } from "../sandbox/sandbox";

const GATE = path.resolve(__dirname, "../../scripts/gate.mjs");
const CREDENTIALS = JSON.stringify({ username: "scrape", password: "pa:ss wörd" });
// base64("scrape:pa:ss wörd") in UTF-8, worked out by hand: the gate must send exactly this.
const AUTH = "Basic c2NyYXBlOnBhOnNzIHfDtnJk";

interface Answer {
    status?: number;
    body?: string;
    /** Never answer (the gate's time-out). */
    hang?: boolean;
}
interface Endpoint {
    /** The base URL the gate is given: one path prefix per test, so tests run side by side. */
    base: string;
    /** What the gate asked for, the prefix taken off. */
    requests: { url: string; authorization?: string }[];
}
const endpoints = new Map<string, { answer: (url: string) => Answer; requests: Endpoint["requests"] }>();
let server: http.Server;
let origin = "";

before(async () => {
    server = http.createServer((req, res) => {
        const [, id, ...rest] = (req.url ?? "").split("/");
        const endpoint = endpoints.get(id);
        const url = `/${rest.join("/")}`;
        endpoint?.requests.push({ url, authorization: req.headers.authorization });
        const a = endpoint ? endpoint.answer(url) : { status: 404 };
        if (a.hang) return; // left open until the server closes
        res.writeHead(a.status ?? 200, { "content-type": "application/json" });
        res.end(a.body ?? "");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
    server.closeAllConnections();
    server.close();
});

function endpoint(answer: (url: string) => Answer): Endpoint {
    const id = `t${endpoints.size}`;
    const requests: Endpoint["requests"] = [];
    endpoints.set(id, { answer, requests });
    return { base: `${origin}/${id}`, requests };
}

function serve(body: unknown, status = 200): Endpoint {
    return endpoint(() => ({ status, body: typeof body === "string" ? body : JSON.stringify(body) }));
}

/** Scrapyd: listprojects.json names `projects`; listjobs.json (any project) answers `body` with `status`. */
function scrapydServe(body: unknown, projects: unknown = ["kingfisher"], status = 200): Endpoint {
    return endpoint((url) =>
        url === "/listprojects.json"
            ? { body: JSON.stringify({ status: "ok", projects }) }
            : { status, body: typeof body === "string" ? body : JSON.stringify(body) },
    );
}

interface GateResult {
    code: number;
    stdout: string;
    stderr: string;
}

// The gate module itself (runGate), loaded once: most tests run it in this process, as the command
// would (what it prints when it passes, its message and exit 1 when it does not).
type Resolve = (name: string, options: unknown) => Promise<{ address: string; family: number }[]>;
let gateModule: { runGate: (argv: string[], options: { stdin: () => Promise<string>; timeoutMs: number; resolve?: Resolve }) => Promise<string>; GateFailure: typeof Error };
before(async () => {
    gateModule = await import(pathToFileURL(GATE).href);
});

/** Runs the gate in this process; `timeoutMs` shortens its time-out for a service that never answers. */
async function gate(args: string[], stdin = CREDENTIALS, timeoutMs = 60_000, resolve?: Resolve): Promise<GateResult> {
    try {
        const line = await gateModule.runGate(args, { stdin: async () => stdin, timeoutMs, resolve });
        return { code: 0, stdout: `${line}\n`, stderr: "" };
    } catch (error) {
        if (!(error instanceof gateModule.GateFailure)) throw error;
        return { code: 1, stdout: "", stderr: `${error.message}\n` };
    }
}

/** Runs the gate as `pulumi up` does: `node scripts/gate.mjs ...`, credentials on stdin. */
function cli(args: string[], stdin = CREDENTIALS, env: Record<string, string> = {}): Promise<GateResult> {
    return new Promise((resolve) => {
        const child = execFile(process.execPath, [GATE, ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) => {
            resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr });
        });
        child.stdin?.end(stdin);
    });
}


const JOBS_URL = (base: string) => `${base}/listjobs.json?project=kingfisher`;
// The Scrapyd gate's first request: every project on the server.
const PROJECTS_URL = (base: string) => `${base}/listprojects.json`;

const RABBIT_ADVICE =
    "A Kingfisher Process job is still working. Wait for it, or have its owner cancel it (python manage.py cancelcollection <collection_id>, https://kingfisher-process.readthedocs.io/en/latest/cli.html#cancelcollection), then run pulumi up again.\n";

// The tests run side by side (each spawns node): one endpoint each, no shared state.
describe("gates", { concurrency: 4 }, () => {

    test("scrapyd: no job running or pending passes; the request names the project and carries the credentials", async () => {
        const { base, requests } = scrapydServe({ status: "ok", pending: [], running: [], finished: [{ id: "old", spider: "x" }] });
        const r = await gate(["scrapyd", `${base}/`, "kingfisher"]);
        assert.deepEqual(r, { code: 0, stdout: `Scrapyd gate: no crawl is running or pending at ${base} (project(s): kingfisher).\n`, stderr: "" });
        assert.deepEqual(requests, [
            { url: "/listprojects.json", authorization: AUTH },
            { url: "/listjobs.json?project=kingfisher", authorization: AUTH },
        ]);
    });

    test("scrapyd: a running job fails the gate, naming it and how to cancel it", async () => {
        const { base } = scrapydServe({ status: "ok", pending: [], running: [{ id: "j1", spider: "ecuador_sercop_bulk", start_time: "2026-11-30 10:00:00" }], finished: [] });
        const r = await gate(["scrapyd", base, "kingfisher"]);
        assert.equal(r.code, 1);
        assert.equal(
            r.stderr,
            `Scrapyd gate: 1 crawl(s) are running or pending at ${base}:\n` +
                "  - running: project kingfisher, spider ecuador_sercop_bulk, job j1, since 2026-11-30 10:00:00\n" +
                `Wait for them to finish, or have their owners cancel them (${base}/jobs), e.g.:\n` +
                `  curl -u USER ${base}/cancel.json -d project=kingfisher -d job=j1\n` +
                "then run pulumi up again.\n",
        );
    });

    test("scrapyd: a pending job alone fails the gate", async () => {
        const { base } = scrapydServe({ status: "ok", pending: [{ id: "j2", spider: "moldova" }], running: [], finished: [] });
        const r = await gate(["scrapyd", base, "kingfisher"]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /^Scrapyd gate: 1 crawl\(s\) are running or pending at .*:\n {2}- pending: project kingfisher, spider moldova, job j2\n/);
    });

    test("scrapyd: running and pending are both listed; a job without spider or id still counts", async () => {
        const { base } = scrapydServe({ status: "ok", pending: [{}], running: [{ id: "j3", spider: "a" }], finished: [] });
        const r = await gate(["scrapyd", base, "kingfisher"]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /2 crawl\(s\) are running.*\n {2}- running: project kingfisher, spider a, job j3\n {2}- pending: project kingfisher, spider \?, job \?\n/);
        assert.match(r.stderr, /\n {2}curl -u USER .*\/cancel\.json -d project=kingfisher -d job=j3\n {2}curl -u USER .*\/cancel\.json -d project=kingfisher -d job=JOB_ID\n/);
    });

    test("scrapyd: every project the server lists is asked; a job of another project holds the gate too", async () => {
        const { base, requests } = endpoint((url) => {
            if (url === "/listprojects.json") return { body: JSON.stringify({ status: "ok", projects: ["kingfisher", "other"] }) };
            return url === "/listjobs.json?project=other"
                ? { body: JSON.stringify({ status: "ok", pending: [], running: [{ id: "o1", spider: "s" }], finished: [] }) }
                : { body: JSON.stringify({ status: "ok", pending: [], running: [], finished: [] }) };
        });
        const r = await gate(["scrapyd", base, "kingfisher"]);
        assert.equal(r.code, 1);
        assert.equal(
            r.stderr,
            `Scrapyd gate: 1 crawl(s) are running or pending at ${base}:\n` +
                "  - running: project other, spider s, job o1\n" +
                `Wait for them to finish, or have their owners cancel them (${base}/jobs), e.g.:\n` +
                `  curl -u USER ${base}/cancel.json -d project=other -d job=o1\n` +
                "then run pulumi up again.\n",
        );
        assert.deepEqual(
            requests.map((q) => q.url),
            ["/listprojects.json", "/listjobs.json?project=kingfisher", "/listjobs.json?project=other"],
        );
    });

    test("scrapyd: the configured project is asked even when the listing leaves it out, once when it names it", async () => {
        const left = scrapydServe({ status: "ok", pending: [], running: [], finished: [] }, ["other"]);
        const r = await gate(["scrapyd", left.base, "kingfisher"]);
        assert.equal(r.stdout, `Scrapyd gate: no crawl is running or pending at ${left.base} (project(s): kingfisher, other).\n`);
        assert.deepEqual(left.requests.map((q) => q.url), ["/listprojects.json", "/listjobs.json?project=kingfisher", "/listjobs.json?project=other"]);
        const named = scrapydServe({ status: "ok", pending: [], running: [], finished: [] }, ["other", "kingfisher"]);
        assert.equal((await gate(["scrapyd", named.base, "kingfisher"])).code, 0);
        assert.deepEqual(named.requests.map((q) => q.url), ["/listprojects.json", "/listjobs.json?project=kingfisher", "/listjobs.json?project=other"]);
    });

    for (const [what, listing] of [
        ["no projects key", { status: "ok" }],
        ["status error", { status: "error", projects: ["kingfisher"] }],
        ["projects not a list", { status: "ok", projects: "kingfisher" }],
        ["a project that is not a string", { status: "ok", projects: ["kingfisher", 5] }],
        ["a list, not an object", []],
    ] as const) {
        test(`scrapyd: a listing of projects without the list (${what}) fails closed before any job list`, async () => {
            const { base, requests } = serve(listing);
            const r = await gate(["scrapyd", base, "kingfisher"]);
            assert.equal(r.code, 1);
            assert.equal(r.stderr, `Scrapyd gate: ${base}/listprojects.json answered ${JSON.stringify(listing)}; without the list of projects the gate fails closed.\n`);
            assert.deepEqual(requests.map((q) => q.url), ["/listprojects.json"]);
        });
    }

    for (const [what, body] of [
        ["status error", { status: "error", message: "project not found" }],
        ["no pending list", { status: "ok", running: [] }],
        ["no running list", { status: "ok", pending: [] }],
        ["pending not a list", { status: "ok", pending: 0, running: [] }],
        ["a list, not an object", []],
    ] as const) {
        test(`scrapyd: an answer without the job lists (${what}) fails closed`, async () => {
            const { base } = scrapydServe(body);
            const r = await gate(["scrapyd", base, "kingfisher"]);
            assert.equal(r.code, 1);
            assert.equal(r.stderr, `Scrapyd gate: ${JOBS_URL(base)} answered ${JSON.stringify(body)}; without the job lists the gate fails closed.\n`);
        });
    }

    const RABBIT_URL = (base: string) => `${base}/api/queues/%2F?disable_stats=true&enable_queue_totals=true`;

    test("rabbitmq: every queue empty passes; counts are asked of the queues themselves (no stats)", async () => {
        const { base, requests } = serve([{ name: "a", messages: 0 }, { name: "b", messages: 0 }]);
        const r = await gate(["rabbitmq", base, "/"]);
        assert.deepEqual(r, { code: 0, stdout: "RabbitMQ gate: 2 queue(s) in vhost /, all empty.\n", stderr: "" });
        assert.deepEqual(requests, [{ url: "/api/queues/%2F?disable_stats=true&enable_queue_totals=true", authorization: AUTH }]);
    });

    test("rabbitmq: no queue at all passes", async () => {
        const { base, requests } = serve([]);
        const r = await gate(["rabbitmq", base, "kingfisher vhost"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "RabbitMQ gate: 0 queue(s) in vhost kingfisher vhost, all empty.\n");
        assert.equal(requests[0].url, "/api/queues/kingfisher%20vhost?disable_stats=true&enable_queue_totals=true");
    });


    test("rabbitmq: a queue with messages fails the gate, naming it", async () => {
        const { base } = serve([{ name: "a", messages: 0 }, { name: "process_file", messages: 3 }]);
        const r = await gate(["rabbitmq", base, "/"]);
        assert.equal(r.code, 1);
        assert.equal(r.stderr, `RabbitMQ gate: queues in vhost / at ${base} are not empty:\n  - process_file: 3 message(s)\n${RABBIT_ADVICE}`);
    });

    for (const [what, queue] of [
        ["missing", { name: "fresh" }],
        ["null", { name: "fresh", messages: null }],
        ["a string", { name: "fresh", messages: "0" }],
    ] as const) {
        test(`rabbitmq: a queue whose count is ${what} is unknown, and unknown fails closed`, async () => {
            const { base } = serve([{ name: "a", messages: 0 }, queue]);
            const r = await gate(["rabbitmq", base, "/"]);
            assert.equal(r.code, 1);
            assert.equal(r.stderr, `RabbitMQ gate: queues in vhost / at ${base} are not empty:\n  - fresh: message count unknown (counted as busy)\n${RABBIT_ADVICE}`);
        });
    }

    test("rabbitmq: an answer that is not a list of queues fails closed", async () => {
        const { base } = serve({ error: "Object Not Found", reason: "Not Found" });
        const r = await gate(["rabbitmq", base, "/"]);
        assert.equal(r.code, 1);
        assert.equal(r.stderr, `RabbitMQ gate: ${RABBIT_URL(base)} did not answer a list of queues; the gate fails closed.\n`);
    });

    for (const [kind, url] of [
        ["scrapyd", PROJECTS_URL],
        ["rabbitmq", RABBIT_URL],
    ] as const) {
        const what = kind === "scrapyd" ? "Scrapyd" : "RabbitMQ";
        const arg = kind === "scrapyd" ? "kingfisher" : "/";
        test(`${kind}: malformed JSON fails closed`, async () => {
            const { base } = serve('{"status": "ok", "pending": [');
            const r = await gate([kind, base, arg]);
            assert.equal(r.code, 1);
            assert.equal(r.stderr, `${what} gate: ${url(base)} did not answer JSON; the gate cannot tell what is running, so it stops here.\n`);
        });
        for (const status of [401, 403]) {
            test(`${kind}: HTTP ${status} says the credentials were refused`, async () => {
                const { base } = serve("{}", status);
                const r = await gate([kind, base, arg]);
                assert.equal(r.code, 1);
                assert.equal(r.stderr, `${what} gate: ${url(base)} refused the credentials (HTTP ${status}). Set the right username and password in config (pulumi config set --secret --path ...).\n`);
            });
        }
        for (const status of [500, 404, 302]) {
            test(`${kind}: HTTP ${status} fails closed`, async () => {
                const { base } = serve('{"status": "ok", "pending": [], "running": []}', status);
                const r = await gate([kind, base, arg]);
                assert.equal(r.code, 1);
                assert.equal(r.stderr, `${what} gate: ${url(base)} answered HTTP ${status}; the gate cannot tell what is running, so it stops here.\n`);
            });
        }
        test(`${kind}: a service that does not answer in time fails the gate`, async () => {
            const { base } = endpoint(() => ({ hang: true }));
            const r = await gate([kind, base, arg], CREDENTIALS, 1000);
            assert.equal(r.code, 1);
            assert.equal(r.stderr, `${what} gate: cannot reach ${url(base)}: no answer within 1 s. Check the URL in config and that the service is up, then run pulumi up again.\n`);
        });
        test(`${kind}: a service that refuses the connection fails the gate`, async () => {
            // A port just freed: nothing listens there.
            const probe = http.createServer();
            await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
            const port = (probe.address() as AddressInfo).port;
            await new Promise((resolve) => probe.close(resolve));
            const r = await gate([kind, `http://127.0.0.1:${port}`, arg]);
            assert.equal(r.code, 1);
            assert.match(r.stderr, new RegExp(`^${what} gate: cannot reach http://127\\.0\\.0\\.1:${port}/\\S*: ECONNREFUSED: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\. Check the URL`));
        });
        for (const stdin of ["", "not json", '{"username": "u"}', '{"username": "u", "password": 5}', "null"]) {
            test(`${kind}: credentials ${JSON.stringify(stdin)} on stdin are refused before any request`, async () => {
                const { base, requests } = serve([]);
                const r = await gate([kind, base, arg], stdin);
                assert.equal(r.code, 1);
                assert.equal(r.stderr, 'gate: expected {"username","password"} as JSON on stdin\n');
                assert.deepEqual(requests, []);
            });
        }
    }

    // The same failures at a project's job list, after the listing of projects passed.
    test("scrapyd: malformed JSON, refused credentials and HTTP errors at listjobs.json fail closed too", async () => {
        const bad = scrapydServe('{"status": "ok", "pending": [');
        assert.equal((await gate(["scrapyd", bad.base, "kingfisher"])).stderr, `Scrapyd gate: ${JOBS_URL(bad.base)} did not answer JSON; the gate cannot tell what is running, so it stops here.\n`);
        const refused = scrapydServe("{}", ["kingfisher"], 403);
        assert.equal(
            (await gate(["scrapyd", refused.base, "kingfisher"])).stderr,
            `Scrapyd gate: ${JOBS_URL(refused.base)} refused the credentials (HTTP 403). Set the right username and password in config (pulumi config set --secret --path ...).\n`,
        );
        const broken = scrapydServe('{"status": "ok", "pending": [], "running": []}', ["kingfisher"], 500);
        assert.equal((await gate(["scrapyd", broken.base, "kingfisher"])).stderr, `Scrapyd gate: ${JOBS_URL(broken.base)} answered HTTP 500; the gate cannot tell what is running, so it stops here.\n`);
    });

    test("--connect: the gate connects to the given address whatever the URL's name resolves to, and says so", async () => {
        // .invalid never resolves (RFC 6761): only --connect reaches the server.
        const { base, requests } = scrapydServe({ status: "ok", pending: [], running: [], finished: [] });
        const named = base.replace("127.0.0.1", "collect.example.invalid");
        const r = await gate(["scrapyd", named, "kingfisher", "--connect", "127.0.0.1"]);
        assert.deepEqual(r, { code: 0, stdout: `Scrapyd gate: no crawl is running or pending at ${named} (at 127.0.0.1) (project(s): kingfisher).\n`, stderr: "" });
        assert.equal(requests.length, 2);
        const q = serve([{ name: "process_file", messages: 1 }]);
        const qNamed = q.base.replace("127.0.0.1", "rabbitmq.example.invalid");
        assert.equal(
            (await gate(["rabbitmq", qNamed, "/", "--connect", "127.0.0.1"])).stderr,
            `RabbitMQ gate: queues in vhost / at ${qNamed} (at 127.0.0.1) are not empty:\n  - process_file: 1 message(s)\n${RABBIT_ADVICE}`,
        );
    });

    test("--connect without an address, or with a name, stops before any request", async () => {
        for (const args of [["scrapyd", "http://collect.example.invalid", "kingfisher", "--connect"], ["rabbitmq", "http://rabbitmq.example.invalid", "/", "--connect", "ocp04.example.org"]]) {
            assert.deepEqual(await gate(args), { code: 1, stdout: "", stderr: "gate: --connect needs an IP address\n" });
        }
    });

    test("an unknown gate, or none, prints the usage", async () => {
        for (const args of [[], ["ftp", "http://127.0.0.1:9"]]) {
            const r = await gate(args);
            assert.equal(r.code, 1);
            assert.equal(r.stderr, "usage: gate.mjs scrapyd|rabbitmq|dns ...\n");
        }
    });

    // The command itself: what it prints, its exit code, stdin, and the time-out from the environment.
    test("command: a gate that passes prints its line and exits 0", async () => {
        const { base, requests } = scrapydServe({ status: "ok", pending: [], running: [], finished: [] });
        assert.deepEqual(await cli(["scrapyd", base, "kingfisher"]), { code: 0, stdout: `Scrapyd gate: no crawl is running or pending at ${base} (project(s): kingfisher).\n`, stderr: "" });
        assert.deepEqual(requests, [
            { url: "/listprojects.json", authorization: AUTH },
            { url: "/listjobs.json?project=kingfisher", authorization: AUTH },
        ]);
    });

    test("command: a gate that does not pass prints its message on stderr and exits 1", async () => {
        const { base } = serve([{ name: "process_file", messages: 3 }]);
        assert.deepEqual(await cli(["rabbitmq", base, "/"]), { code: 1, stdout: "", stderr: `RabbitMQ gate: queues in vhost / at ${base} are not empty:\n  - process_file: 3 message(s)\n${RABBIT_ADVICE}` });
    });

    test("command: credentials that are not JSON, and no gate named, exit 1 with their message", async () => {
        assert.deepEqual(await cli(["scrapyd", "http://127.0.0.1:9", "kingfisher"], "user:pass"), { code: 1, stdout: "", stderr: 'gate: expected {"username","password"} as JSON on stdin\n' });
        assert.deepEqual(await cli([]), { code: 1, stdout: "", stderr: "usage: gate.mjs scrapyd|rabbitmq|dns ...\n" });
    });

    test("command: DATA_SUPPORT_GATE_TIMEOUT_MS bounds the wait for a service that does not answer", async () => {
        const { base } = endpoint(() => ({ hang: true }));
        const r = await cli(["scrapyd", base, "kingfisher"], CREDENTIALS, { DATA_SUPPORT_GATE_TIMEOUT_MS: "1000" });
        assert.equal(r.code, 1);
        assert.equal(r.stderr, `Scrapyd gate: cannot reach ${PROJECTS_URL(base)}: no answer within 1 s. Check the URL in config and that the service is up, then run pulumi up again.\n`);
    });
});

// More answers, each for a detail of the gate's reading.
test("scrapyd: status other than ok fails closed even with both job lists", async () => {
    const { base } = scrapydServe({ status: "error", pending: [], running: [] });
    assert.equal((await gate(["scrapyd", base, "kingfisher"])).stderr, `Scrapyd gate: ${JOBS_URL(base)} answered {"status":"error","pending":[],"running":[]}; without the job lists the gate fails closed.\n`);
});

test("scrapyd: a long answer is quoted up to 300 characters", async () => {
    const body = { status: "error", message: "x".repeat(400) };
    const { base } = scrapydServe(body);
    assert.equal((await gate(["scrapyd", base, "kingfisher"])).stderr, `Scrapyd gate: ${JOBS_URL(base)} answered ${`{"status":"error","message":"${"x".repeat(400)}`.slice(0, 300)}; without the job lists the gate fails closed.\n`);
});

test("scrapyd and rabbitmq: a base URL with a trailing slash gives the same URLs and hints", async () => {
    const s = scrapydServe({ status: "ok", pending: [], running: [{ id: "j1", spider: "a" }], finished: [] });
    const r = await gate(["scrapyd", `${s.base}/`, "kingfisher"]);
    assert.deepEqual(s.requests.map((q) => q.url), ["/listprojects.json", "/listjobs.json?project=kingfisher"]);
    assert.ok(r.stderr.includes(`at ${s.base}:\n`), r.stderr);
    assert.ok(r.stderr.includes(`(${s.base}/jobs), e.g.:\n  curl -u USER ${s.base}/cancel.json -d project=kingfisher -d job=j1\n`), r.stderr);
    const q = serve([]);
    assert.equal((await gate(["rabbitmq", `${q.base}/`, "/"])).code, 0);
    assert.equal(q.requests[0].url, "/api/queues/%2F?disable_stats=true&enable_queue_totals=true");
});

test("rabbitmq: every busy and unknown queue is listed, one per line; a count given as text is unknown", async () => {
    const { base } = serve([{ name: "a", messages: 2 }, { name: "b", messages: 0 }, { name: "c", messages: 5 }, { name: "d", messages: "3" }]);
    assert.equal(
        (await gate(["rabbitmq", base, "/"])).stderr,
        `RabbitMQ gate: queues in vhost / at ${base} are not empty:\n  - a: 2 message(s)\n  - c: 5 message(s)\n  - d: message count unknown (counted as busy)\n${RABBIT_ADVICE}`,
    );
});

test("credentials: a username that is not a string is refused", async () => {
    const { base, requests } = serve([]);
    assert.equal((await gate(["rabbitmq", base, "/"], '{"username": 5, "password": "p"}')).stderr, 'gate: expected {"username","password"} as JSON on stdin\n');
    assert.deepEqual(requests, []);
});

// The DNS gate in this process, with names of its own (the real resolver is the sandbox test's
// below): IPv6 addresses compare as addresses, however they are written.
const answers = (...addresses: string[]): Resolve => async () => addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
const DNS_ADVICE = "Update the DNS records, wait for them to propagate (TTL), then run pulumi up again.";
for (const [found, configured] of [
    ["2001:db8:0:0:0:0:0:23", "2001:db8::23"],
    ["2001:db8::23", "2001:db8:0:0:0:0:0:23"],
    ["2001:0db8::0023", "2001:DB8::23"],
    ["2001:db8::", "2001:db8:0:0:0:0:0:0"],
    ["::1", "0:0:0:0:0:0:0:1"],
    ["2001:db8:1::", "2001:db8:1:0::0"],
] as const) {
    test(`dns: AAAA ${found} is the new server's ${configured}`, async () => {
        const r = await gate(["dns", "collect.test", "198.51.100.23", configured], "", 1000, answers("198.51.100.23", found));
        assert.deepEqual(r, { code: 0, stdout: `DNS gate: collect.test resolves to 198.51.100.23, ${found}.\n`, stderr: "" });
    });
}
for (const [found, configured] of [
    ["2001:db8::23", "2001:db8::24"],
    ["2001:db8::23:0", "2001:db8::23"],
    ["2001:db8::", "2001:db8::1"],
    ["2001:db8:0:0:0:0:0:23", "2001:db8::1:23"],
    ["2001:db8::1:0:0:23", "2001:db8:1::23"],
    // Leading zeros go from each group only, not from inside it; groups stay apart.
    ["2001:db8::23", "21:db8::23"],
    ["2001:db8::1:23", "2001:db8::12:3"],
] as const) {
    test(`dns: AAAA ${found} is not ${configured}`, async () => {
        const r = await gate(["dns", "collect.test", "198.51.100.23", configured], "", 1000, answers("198.51.100.23", found));
        assert.deepEqual(r, { code: 1, stdout: "", stderr: `DNS gate: collect.test resolves to 198.51.100.23, ${found}, not only to the new server (198.51.100.23, ${configured}). ${DNS_ADVICE}\n` });
    });
}

test("dns: no address at all, an AAAA only, and a name that does not resolve", async () => {
    assert.equal((await gate(["dns", "collect.test", "198.51.100.23"], "", 1000, answers())).stderr, `DNS gate: collect.test resolves to nothing, not only to the new server (198.51.100.23). ${DNS_ADVICE}\n`);
    assert.equal((await gate(["dns", "collect.test", "198.51.100.23", "2001:db8::23"], "", 1000, answers("2001:db8::23"))).code, 1);
    const missing: Resolve = async () => {
        throw Object.assign(new Error("getaddrinfo ENOTFOUND collect.test"), { code: "ENOTFOUND" });
    };
    assert.equal(
        (await gate(["dns", "collect.test", "198.51.100.23", "2001:db8::23"], "", 1000, missing)).stderr,
        "DNS gate: collect.test does not resolve here (ENOTFOUND). Point it at 198.51.100.23 and 2001:db8::23, wait for DNS to propagate, then run pulumi up again.\n",
    );
    assert.equal(
        (await gate(["dns", "collect.test", "198.51.100.23"], "", 1000, missing)).stderr,
        "DNS gate: collect.test does not resolve here (ENOTFOUND). Point it at 198.51.100.23, wait for DNS to propagate, then run pulumi up again.\n",
    );
});

// The DNS gate in the sandbox (test/sandbox/sandbox.ts): a private /etc/hosts says what names
// resolve to, and no network answers anything else. One sandbox, one step per case.
const dnsSkip = canSandbox() || undefined;
const HOSTS = `127.0.0.1 localhost
198.51.100.23 v4only.test
198.51.100.23 both.test
2001:db8:0:0:0:0:0:23 both.test
198.51.100.23 oldv6.test
2001:db8::4 oldv6.test
198.51.100.4 old.test
198.51.100.23 mixed.test
198.51.100.4 mixed.test
`;
const DNS_CASES: [string[], number, string][] = [
    [["v4only.test", "198.51.100.23"], 0, "DNS gate: v4only.test resolves to 198.51.100.23.\n"],
    [["v4only.test", "198.51.100.23", "2001:db8::23"], 0, "DNS gate: v4only.test resolves to 198.51.100.23.\n"],
    // The same IPv6 address written another way (zeros, case, leading zeros) is the same address.
    [["both.test", "198.51.100.23", "2001:DB8::0023"], 0, "DNS gate: both.test resolves to 198.51.100.23, 2001:db8::23.\n"],
    [["both.test", "198.51.100.23"], 1, "DNS gate: both.test resolves to 198.51.100.23, 2001:db8::23, not only to the new server (198.51.100.23). Update the DNS records, wait for them to propagate (TTL), then run pulumi up again.\n"],
    [["oldv6.test", "198.51.100.23", "2001:db8::23"], 1, "DNS gate: oldv6.test resolves to 198.51.100.23, 2001:db8::4, not only to the new server (198.51.100.23, 2001:db8::23). Update the DNS records, wait for them to propagate (TTL), then run pulumi up again.\n"],
    [["oldv6.test", "198.51.100.23", "2001:db8::4:0"], 1, "DNS gate: oldv6.test resolves to 198.51.100.23, 2001:db8::4, not only to the new server (198.51.100.23, 2001:db8::4:0). Update the DNS records, wait for them to propagate (TTL), then run pulumi up again.\n"],
    [["old.test", "198.51.100.23", "2001:db8::23"], 1, "DNS gate: old.test resolves to 198.51.100.4, not only to the new server (198.51.100.23, 2001:db8::23). Update the DNS records, wait for them to propagate (TTL), then run pulumi up again.\n"],
    [["mixed.test", "198.51.100.23"], 1, "DNS gate: mixed.test resolves to 198.51.100.23, 198.51.100.4, not only to the new server (198.51.100.23). Update the DNS records, wait for them to propagate (TTL), then run pulumi up again.\n"],
];

test("dns: the name must resolve to the new server's addresses only; any AAAA must be the new server's", { skip: dnsSkip }, () => {
    const run = runInSandbox(
        DNS_CASES.map(([args]) => ({ script: `${process.execPath} ${GATE} dns ${args.join(" ")}` })),
        { hosts: HOSTS },
    );
    DNS_CASES.forEach(([args, code, message], i) => {
        const step = run.steps[i];
        assert.equal(step.code, code, `${args.join(" ")}: ${step.stderr}`);
        assert.equal(code === 0 ? step.stdout : step.stderr, message, args.join(" "));
    });
});

// In this process too (IP literals resolve to themselves, whatever /etc/hosts says).
test("dns: an address resolves to itself: the gate passes on it and fails on another", async () => {
    assert.deepEqual(await gate(["dns", "198.51.100.23", "198.51.100.23", "2001:db8::23"], ""), { code: 0, stdout: "DNS gate: 198.51.100.23 resolves to 198.51.100.23.\n", stderr: "" });
    assert.deepEqual(await gate(["dns", "2001:db8:0::23", "198.51.100.23", "2001:DB8::23"], ""), {
        code: 1,
        stdout: "",
        stderr: "DNS gate: 2001:db8:0::23 resolves to 2001:db8:0::23, not only to the new server (198.51.100.23, 2001:DB8::23). Update the DNS records, wait for them to propagate (TTL), then run pulumi up again.\n",
    });
});

test("dns: a name that does not resolve fails the gate, saying where to point it", { skip: dnsSkip }, () => {
    const run = runInSandbox([{ script: `${process.execPath} ${GATE} dns nowhere.test 198.51.100.23 2001:db8::23` }], { hosts: HOSTS });
    assert.equal(run.steps[0].code, 1);
    assert.match(
        run.steps[0].stderr,
        /^DNS gate: nowhere\.test does not resolve here \((ENOTFOUND|EAI_AGAIN)\)\. Point it at 198\.51\.100\.23 and 2001:db8::23, wait for DNS to propagate, then run pulumi up again\.\n$/,
    );
});

test("scrapyd: a long listing of projects is quoted up to 300 characters", async () => {
    const { base } = endpoint(() => ({ body: JSON.stringify({ status: "ok", projects: "x".repeat(400) }) }));
    // `{"status":"ok","projects":"` is 27 characters: 273 x follow.
    assert.equal(
        (await gate(["scrapyd", base, "kingfisher"])).stderr,
        `Scrapyd gate: ${base}/listprojects.json answered {"status":"ok","projects":"${"x".repeat(273)}; without the list of projects the gate fails closed.\n`,
    );
});

test("--connect may come before the URL and the project", async () => {
    const { base, requests } = scrapydServe({ status: "ok", pending: [], running: [], finished: [] });
    const named = base.replace("127.0.0.1", "collect.example.invalid");
    assert.deepEqual(await gate(["scrapyd", "--connect", "127.0.0.1", named, "kingfisher"]), {
        code: 0,
        stdout: `Scrapyd gate: no crawl is running or pending at ${named} (at 127.0.0.1) (project(s): kingfisher).\n`,
        stderr: "",
    });
    assert.deepEqual(requests.map((q) => q.url), ["/listprojects.json", "/listjobs.json?project=kingfisher"]);
});

test("an https URL is spoken to in TLS: a plain HTTP server there is not reached, and the gate fails", async () => {
    const { base, requests } = scrapydServe({ status: "ok", pending: [], running: [], finished: [] });
    const tls = base.replace("http:", "https:");
    const r = await gate(["scrapyd", tls, "kingfisher"]);
    assert.equal(r.code, 1);
    // OpenSSL's own words for an answer that is not TLS.
    assert.match(r.stderr, new RegExp(`^Scrapyd gate: cannot reach ${tls.replaceAll(".", "\\.")}/listprojects\\.json: EPROTO: write EPROTO [\\s\\S]*wrong version number[\\s\\S]*\\. Check the URL in config and that the service is up, then run pulumi up again\\.\\n$`));
    assert.deepEqual(requests, []);
});
