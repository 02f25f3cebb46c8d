// Injection, config side (issue 9): every config string fed each hostile payload is either
// rejected by validation, or (see test/e2e/injection.test.ts) arrives verbatim on the test hosts.
// Here: the field x payload table, and the gate credentials and vhost, which only the operator's
// machine sees, checked verbatim against a local HTTP server.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as http from "node:http";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { parseStackConfig } from "../../components/config";
import { HOST_KEY, mainConfig, withReplica } from "../support/fixtures";
import { PAYLOADS, stringLeaves, withLeaf } from "../support/hostile";
import { REPO } from "../../tools/program";

/** The fixture with every optional string key filled, so every field is tried. */
function fullConfig(): Record<string, any> {
    const cfg = withReplica(mainConfig());
    cfg.incremental.crawls[0].spider_arguments = { note: "x" };
    cfg.incremental.crawls[0].settings = { CLOSESPIDER_ITEMCOUNT: "10" };
    cfg.incremental.crawls[1].cardinal = true;
    cfg.incremental.crawls[1].cardinal_settings = "[defaults]\n";
    cfg.gates.rabbitmq.vhost = "/";
    cfg.servers.newMain.ssh.jumpHost = { host: "bastion.open-contracting.org", user: "root", hostKey: HOST_KEY };
    cfg.ssh = { agentSocketPath: "/run/user/1000/ssh-agent.socket" };
    return cfg;
}

/** Fields whose hostile values validation accepts: the e2e test proves they arrive verbatim. */
export const ACCEPTED_ELSEWHERE = /^(tinyproxy\.keep\.\d+\.comment|incremental\.crawls\.\d+\.(spider_arguments\.\w+|settings\.\w+|cardinal_settings)|gates\.(scrapyd|rabbitmq)\.(username|password|vhost))$/;

test("every config string x hostile payload: rejected, or in a field proven to carry it verbatim", (t) => {
    const cfg = fullConfig();
    const leaves = stringLeaves(cfg);
    let rejected = 0;
    const accepted = new Map<string, number>();
    for (const leaf of leaves) {
        for (const payload of PAYLOADS) {
            try {
                parseStackConfig(withLeaf(cfg, leaf, payload));
            } catch {
                rejected++;
                continue;
            }
            const field = leaf.join(".");
            assert.match(field, ACCEPTED_ELSEWHERE, `${field} accepts ${JSON.stringify(payload)} but no test shows it arrives verbatim`);
            accepted.set(field, (accepted.get(field) ?? 0) + 1);
        }
    }
    t.diagnostic(`injection: ${leaves.length} fields x ${PAYLOADS.length} payloads = ${leaves.length * PAYLOADS.length}; rejected by validation ${rejected}; accepted ${[...accepted.values()].reduce((a, b) => a + b, 0)} in ${accepted.size} fields (${[...accepted].map(([f, n]) => `${f}: ${n}`).join(", ")})`);
    assert.ok(rejected > 0 && accepted.size > 0);
});

/** Runs a gate against a local server; returns what the server received. */
async function gateSees(kind: "scrapyd" | "rabbitmq", credentials: { username: string; password: string }, last: string) {
    const seen: { auth?: string; url?: string } = {};
    const server = http.createServer((req, res) => {
        seen.auth = Buffer.from((req.headers.authorization ?? "").replace(/^Basic /, ""), "base64").toString("utf8");
        seen.url = req.url;
        res.setHeader("content-type", "application/json");
        const scrapyd = req.url === "/listprojects.json" ? { status: "ok", projects: ["kingfisher"] } : { status: "ok", pending: [], running: [], finished: [] };
        res.end(kind === "scrapyd" ? JSON.stringify(scrapyd) : "[]");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const child = spawn(process.execPath, [path.join(REPO, "scripts", "gate.mjs"), kind, `http://127.0.0.1:${port}`, last], { stdio: ["pipe", "pipe", "pipe"] });
    child.stdin.end(JSON.stringify(credentials));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    server.close();
    return { code, ...seen };
}

test("gate credentials and the RabbitMQ vhost reach the service verbatim, whatever they hold", async (t) => {
    let checked = 0;
    for (const payload of PAYLOADS) {
        const username = payload.replace(/[:\s]/g, "_"); // usernames cannot hold ':' or spaces (basic auth)
        const scrapyd = await gateSees("scrapyd", { username, password: payload }, "kingfisher");
        assert.equal(scrapyd.code, 0);
        assert.equal(scrapyd.auth, `${username}:${payload}`);
        const rabbit = await gateSees("rabbitmq", { username, password: payload }, payload);
        assert.equal(rabbit.code, 0);
        assert.equal(rabbit.auth, `${username}:${payload}`);
        assert.equal(decodeURIComponent(rabbit.url!.replace(/^\/api\/queues\//, "").replace(/\?.*$/, "")), payload);
        checked += 3;
    }
    t.diagnostic(`gates: ${checked} hostile values arrived verbatim (password and username in basic auth, vhost in the path)`);
});
