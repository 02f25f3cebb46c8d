#!/usr/bin/env node
// The gates of the migration, run on the operator's machine by `pulumi up` (local.Command).
// A gate that finds work in progress exits 1 with one message saying what runs and how to cancel
// it; nothing after the gate runs, and the next `pulumi up` checks again.
// Credentials arrive as JSON on stdin ({"username": ..., "password": ...}), never in argv.
//
//   node scripts/gate.mjs scrapyd <base-url> <project> [--connect <address>]
//   node scripts/gate.mjs rabbitmq <base-url> <vhost> [--connect <address>]
//   node scripts/gate.mjs dns <hostname> <ipv4> [<ipv6>]
//
// --connect: the address to connect to, whatever DNS says of the URL's name (the old server: once
// DNS of the collect hostname moved, the name would lead to the new, idle server). The URL's name
// is still the one sent in TLS (SNI), checked against the certificate, and sent as the HTTP Host
// header, so virtual hosts and certificates work as they do for the public name.
import * as http from "node:http";
import * as https from "node:https";
import { isIP } from "node:net";
import { lookup } from "node:dns/promises";

const TIMEOUT_MS = 30_000;

function fail(message) {
    process.stderr.write(`${message}\n`);
    process.exit(1);
}

async function readCredentials() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString("utf8");
    try {
        const { username, password } = JSON.parse(text);
        if (typeof username !== "string" || typeof password !== "string") throw new Error();
        return { username, password };
    } catch {
        fail("gate: expected {\"username\",\"password\"} as JSON on stdin");
    }
}

// One GET; resolves {status, text}. `connect` replaces only the name lookup of the URL's host.
function get(url, headers, connect) {
    const target = new URL(url);
    const client = target.protocol === "https:" ? https : http;
    const family = connect ? isIP(connect) : 0;
    const lookupOld = connect
        ? (_hostname, options, callback) => {
              // Node asks for every address (options.all) when it may try several (autoSelectFamily).
              if (options?.all) callback(null, [{ address: connect, family }]);
              else callback(null, connect, family);
          }
        : undefined;
    return new Promise((resolve, reject) => {
        const request = client.get(url, { headers, lookup: lookupOld, timeout: TIMEOUT_MS }, (response) => {
            const chunks = [];
            response.on("data", (chunk) => chunks.push(chunk));
            response.on("end", () => resolve({ status: response.statusCode, text: Buffer.concat(chunks).toString("utf8") }));
            response.on("error", reject);
        });
        request.on("timeout", () => request.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
        request.on("error", reject);
    });
}

async function getJson(url, credentials, what, connect) {
    const auth = Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64");
    const where = connect ? `${url} (at ${connect})` : url;
    let response;
    try {
        response = await get(url, { Authorization: `Basic ${auth}` }, connect);
    } catch (error) {
        fail(`${what} gate: cannot reach ${where}: ${error.code ? `${error.code}: ` : ""}${error.message}. Check the URL in config and that the service is up, then run pulumi up again.`);
    }
    if (response.status === 401 || response.status === 403) {
        fail(`${what} gate: ${where} refused the credentials (HTTP ${response.status}). Set the right username and password in config (pulumi config set --secret --path ...).`);
    }
    if (response.status < 200 || response.status > 299) fail(`${what} gate: ${where} answered HTTP ${response.status}; the gate cannot tell what is running, so it stops here.`);
    try {
        return JSON.parse(response.text);
    } catch {
        fail(`${what} gate: ${where} did not answer JSON; the gate cannot tell what is running, so it stops here.`);
    }
}

// Every project on the server (listprojects.json), then each one's jobs (listjobs.json?project=P):
// a crawl of any project writes while the old server is being halted, not only one of `project`.
// Scrapyd's JSON API: https://scrapyd.readthedocs.io/en/stable/api.html (listprojects.json answers
// {"status": "ok", "projects": [...]}; listjobs.json {"status": "ok", "pending", "running", "finished"}).
async function scrapyd(baseUrl, project, connect) {
    const credentials = await readCredentials();
    const base = baseUrl.replace(/\/$/, "");
    const where = connect ? `${base} (at ${connect})` : base;
    const listing = await getJson(`${base}/listprojects.json`, credentials, "Scrapyd", connect);
    if (listing.status !== "ok" || !Array.isArray(listing.projects) || !listing.projects.every((p) => typeof p === "string")) {
        fail(`Scrapyd gate: ${where}/listprojects.json answered ${JSON.stringify(listing).slice(0, 300)}; without the list of projects the gate fails closed.`);
    }
    // The configured project is asked even if the listing leaves it out.
    const projects = [...new Set([project, ...listing.projects])];
    const jobs = [];
    for (const p of projects) {
        const url = `${base}/listjobs.json?project=${encodeURIComponent(p)}`;
        const body = await getJson(url, credentials, "Scrapyd", connect);
        if (body.status !== "ok" || !Array.isArray(body.pending) || !Array.isArray(body.running)) {
            fail(`Scrapyd gate: ${url} answered ${JSON.stringify(body).slice(0, 300)}; without the job lists the gate fails closed.`);
        }
        jobs.push(...body.running.map((j) => ({ ...j, project: p, state: "running" })), ...body.pending.map((j) => ({ ...j, project: p, state: "pending" })));
    }
    if (jobs.length > 0) {
        const lines = jobs.map((j) => `  - ${j.state}: project ${j.project}, spider ${j.spider ?? "?"}, job ${j.id ?? "?"}${j.start_time ? `, since ${j.start_time}` : ""}`);
        const cancels = jobs.map((j) => `  curl -u USER ${base}/cancel.json -d project=${j.project} -d job=${j.id ?? "JOB_ID"}`);
        fail(
            `Scrapyd gate: ${jobs.length} crawl(s) are running or pending at ${where}:\n${lines.join("\n")}\n` +
                `Wait for them to finish, or have their owners cancel them (${base}/jobs), e.g.:\n${cancels.join("\n")}\nthen run pulumi up again.`,
        );
    }
    console.log(`Scrapyd gate: no crawl is running or pending at ${where} (project(s): ${projects.join(", ")}).`);
}

async function rabbitmq(baseUrl, vhost, connect) {
    const credentials = await readCredentials();
    // disable_stats + enable_queue_totals: counts straight from the queues, not the statistics
    // database, which lags by seconds (design.md).
    const url = `${baseUrl.replace(/\/$/, "")}/api/queues/${encodeURIComponent(vhost)}?disable_stats=true&enable_queue_totals=true`;
    const queues = await getJson(url, credentials, "RabbitMQ", connect);
    if (!Array.isArray(queues)) fail(`RabbitMQ gate: ${url} did not answer a list of queues; the gate fails closed.`);
    const unknown = queues.filter((q) => typeof q.messages !== "number");
    const busy = queues.filter((q) => typeof q.messages === "number" && q.messages > 0);
    if (busy.length > 0 || unknown.length > 0) {
        const lines = [
            ...busy.map((q) => `  - ${q.name}: ${q.messages} message(s)`),
            ...unknown.map((q) => `  - ${q.name}: message count unknown (counted as busy)`),
        ];
        fail(
            `RabbitMQ gate: queues in vhost ${vhost} at ${baseUrl}${connect ? ` (at ${connect})` : ""} are not empty:\n${lines.join("\n")}\n` +
                `A Kingfisher Process job is still working. Wait for it, or have its owner cancel it ` +
                `(python manage.py cancelcollection <collection_id>, https://kingfisher-process.readthedocs.io/en/latest/cli.html#cancelcollection), then run pulumi up again.`,
        );
    }
    console.log(`RabbitMQ gate: ${queues.length} queue(s) in vhost ${vhost}, all empty.`);
}

async function dns(hostname, ipv4, ipv6) {
    let found;
    try {
        found = await lookup(hostname, { all: true, verbatim: true });
    } catch (error) {
        fail(`DNS gate: ${hostname} does not resolve here (${error.code}). Point it at ${[ipv4, ipv6].filter(Boolean).join(" and ")}, wait for DNS to propagate, then run pulumi up again.`);
    }
    const v4 = found.filter((a) => a.family === 4).map((a) => a.address);
    const v6 = found.filter((a) => a.family === 6).map((a) => a.address);
    const v4ok = v4.length > 0 && v4.every((a) => a === ipv4);
    // An AAAA record is not required, but one that exists must be the new server's.
    const v6ok = v6.every((a) => ipv6 !== undefined && normalise6(a) === normalise6(ipv6));
    if (!v4ok || !v6ok) {
        fail(
            `DNS gate: ${hostname} resolves to ${[...v4, ...v6].join(", ") || "nothing"}, not only to the new server (${[ipv4, ipv6].filter(Boolean).join(", ")}). ` +
                `Update the DNS records, wait for them to propagate (TTL), then run pulumi up again.`,
        );
    }
    console.log(`DNS gate: ${hostname} resolves to ${[...v4, ...v6].join(", ")}.`);
}

function normalise6(address) {
    // Expand "::" so that 2001:db8::23 and 2001:db8:0:0:0:0:0:23 compare equal.
    const [head, tail] = address.toLowerCase().split("::");
    const h = head ? head.split(":") : [];
    const t = tail !== undefined && tail !== "" ? tail.split(":") : [];
    const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill("0");
    return [...h, ...fill, ...t].map((p) => p.replace(/^0+(?=.)/, "")).join(":");
}

const [kind, ...rest] = process.argv.slice(2);
const gates = { scrapyd, rabbitmq, dns };
if (!gates[kind]) fail(`usage: gate.mjs scrapyd|rabbitmq|dns ...`);
const at = rest.indexOf("--connect");
let connect;
if (at >= 0) {
    connect = rest[at + 1];
    if (!connect || isIP(connect) === 0) fail(`gate: --connect needs an IP address`);
    rest.splice(at, 2);
}
await gates[kind](...(kind === "dns" ? rest : [...rest.slice(0, 2), connect]));
