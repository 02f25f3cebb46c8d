// scripts/gate.mjs against a local HTTP server: with --connect, the gate connects to the given
// address whatever the URL's name resolves to (here: nothing), and still sends that name as Host;
// the Scrapyd gate asks every project that listprojects.json names.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { REPO } from "../../tools/program";

interface Seen {
    hosts: string[];
    paths: string[];
}

async function gate(args: (port: number) => string[], answer: (url: string) => unknown): Promise<{ code: number | null; stdout: string; stderr: string; seen: Seen }> {
    return gateAnswering(args, (req, res) => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify(answer(req.url ?? "")));
    });
}

/** The gate against a server that answers as `respond` says (status, body, a cut connection). */
async function gateAnswering(args: (port: number) => string[], respond: http.RequestListener): Promise<{ code: number | null; stdout: string; stderr: string; seen: Seen }> {
    const seen: Seen = { hosts: [], paths: [] };
    const server = http.createServer((req, res) => {
        seen.hosts.push(req.headers.host ?? "");
        seen.paths.push(req.url ?? "");
        respond(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const child = spawn(process.execPath, [path.join(REPO, "scripts", "gate.mjs"), ...args(port)], { stdio: ["pipe", "pipe", "pipe"] });
    child.stdin.end(JSON.stringify({ username: "u", password: "p" }));
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    server.close();
    return { code, stdout, stderr, seen };
}

const jobs = (running: unknown[] = []) => ({ status: "ok", pending: [], running, finished: [] });

test("--connect: the gate reaches the given address for a name that does not resolve, sending the name as Host", async () => {
    // .invalid never resolves (RFC 6761): only --connect can reach the server.
    const r = await gate((port) => ["scrapyd", `http://collect.example.invalid:${port}`, "kingfisher", "--connect", "127.0.0.1"], (url) =>
        url === "/listprojects.json" ? { status: "ok", projects: ["kingfisher"] } : jobs(),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.seen.paths, ["/listprojects.json", "/listjobs.json?project=kingfisher"]);
    assert.ok(r.seen.hosts.every((h) => /^collect\.example\.invalid:\d+$/.test(h)), r.seen.hosts.join(", "));
    assert.match(r.stdout, /no crawl is running or pending at http:\/\/collect\.example\.invalid:\d+ \(at 127\.0\.0\.1\)/);
});

test("a running job in a project other than the configured one fails the gate, naming project, spider, job and its cancel command", async () => {
    const r = await gate((port) => ["scrapyd", `http://collect.example.invalid:${port}`, "kingfisher", "--connect", "127.0.0.1"], (url) => {
        if (url === "/listprojects.json") return { status: "ok", projects: ["kingfisher", "other"] };
        return url === "/listjobs.json?project=other" ? jobs([{ id: "j9", spider: "mexico_inai" }]) : jobs();
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /running: project other, spider mexico_inai, job j9/);
    assert.match(r.stderr, /cancel\.json -d project=other -d job=j9/);
    assert.deepEqual(r.seen.paths, ["/listprojects.json", "/listjobs.json?project=kingfisher", "/listjobs.json?project=other"]);
});

test("a listing without projects fails closed", async () => {
    const r = await gate((port) => ["scrapyd", `http://127.0.0.1:${port}`, "kingfisher"], () => ({ status: "ok" }));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /without the list of projects the gate fails closed/);
});

test("--connect must be an IP address", async () => {
    const r = await gate(() => ["rabbitmq", "http://rabbitmq.example.invalid", "/", "--connect", "ocp04.example.org"], () => []);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--connect needs an IP address/);
    assert.deepEqual(r.seen.paths, []);
});

test("with --connect, a failure after the connection names the URL and the address asked", async () => {
    const r = await gateAnswering((port) => ["rabbitmq", `http://rabbitmq.example.invalid:${port}`, "/", "--connect", "127.0.0.1"], (_req, res) => {
        res.statusCode = 500;
        res.end("oops");
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^RabbitMQ gate: http:\/\/rabbitmq\.example\.invalid:\d+\/api\/queues\/%2F\?disable_stats=true&enable_queue_totals=true \(at 127\.0\.0\.1\) answered HTTP 500; the gate cannot tell what is running, so it stops here\.\n$/);
});

test("a connection cut in the middle of an answer's body fails the gate (it does not wait for the rest)", async () => {
    const r = await gateAnswering((port) => ["scrapyd", `http://127.0.0.1:${port}`, "kingfisher"], (_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
        res.write('{"status": "ok", "projects": [');
        setTimeout(() => res.socket?.destroy(), 50);
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Scrapyd gate: cannot reach http:\/\/127\.0\.0\.1:\d+\/listprojects\.json: ECONNRESET: aborted\. Check the URL in config and that the service is up, then run pulumi up again\.\n$/);
});

test("an answer outside 2xx fails the gate even when its body would pass (a redirect is not followed)", async () => {
    const r = await gateAnswering((port) => ["scrapyd", `http://127.0.0.1:${port}`, "kingfisher"], (req, res) => {
        res.writeHead(302, { "content-type": "application/json", location: "/elsewhere" });
        res.end(JSON.stringify(req.url === "/listprojects.json" ? { status: "ok", projects: ["kingfisher"] } : jobs()));
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Scrapyd gate: http:\/\/127\.0\.0\.1:\d+\/listprojects\.json answered HTTP 302; the gate cannot tell what is running, so it stops here\.\n$/);
    assert.deepEqual(r.seen.paths, ["/listprojects.json"]);
});
