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
    const seen: Seen = { hosts: [], paths: [] };
    const server = http.createServer((req, res) => {
        seen.hosts.push(req.headers.host ?? "");
        seen.paths.push(req.url ?? "");
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify(answer(req.url ?? "")));
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
