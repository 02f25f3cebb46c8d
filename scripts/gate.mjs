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
//
// The tests import it (runGate) and run it as a command; the command is what `pulumi up` runs.
//
// What "busy" means is one definition with components/runbook/halt-jobs/oldServerIdle.ts, the same
// question in Python that the incremental copy asks itself on the new server (a passed gate is in
// the state; the copy asks whenever it runs): a Scrapyd job running or pending in the configured
// project or any that listprojects.json names; a RabbitMQ queue with messages, or whose count is
// missing or not a number (unknown is busy); and any answer that cannot be read fails closed.
// Change both together: test/unit/oldServerIdle.test.ts runs the same cases through both.
import * as http from "node:http";
import * as https from "node:https";
import { isIP } from "node:net";
import { lookup } from "node:dns/promises";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** A gate that does not pass: its message, for the operator. */
export class GateFailure extends Error {}

function fail(message) {
    throw new GateFailure(message);
}

async function readCredentials(context) {
    const text = await context.stdin();
    try {
        const { username, password } = JSON.parse(text);
        if (typeof username !== "string" || typeof password !== "string") throw new Error();
        return { username, password };
    } catch {
        fail("gate: expected {\"username\",\"password\"} as JSON on stdin");
    }
}

// One GET; resolves {status, text}. `connect` replaces only the name lookup of the URL's host.
function get(url, headers, connect, timeoutMs) {
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
        const request = client.get(url, { headers, lookup: lookupOld, timeout: timeoutMs }, (response) => {
            const chunks = [];
            response.on("data", (chunk) => chunks.push(chunk));
            response.on("end", () => resolve({ status: response.statusCode, text: Buffer.concat(chunks).toString("utf8") }));
            response.on("error", reject);
        });
        request.on("timeout", () => request.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
        request.on("error", reject);
    });
}

async function getJson(context, url, credentials, what, connect) {
    const auth = Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64");
    const where = connect ? `${url} (at ${connect})` : url;
    let response;
    try {
        response = await get(url, { Authorization: `Basic ${auth}` }, connect, context.timeoutMs);
    } catch (error) {
        return fail(`${what} gate: cannot reach ${where}: ${error.code ? `${error.code}: ` : ""}${error.message}. Check the URL in config and that the service is up, then run pulumi up again.`);
    }
    if (response.status === 401 || response.status === 403) {
        fail(`${what} gate: ${where} refused the credentials (HTTP ${response.status}). Set the right username and password in config (pulumi config set --secret --path ...).`);
    }
    if (response.status < 200 || response.status > 299) fail(`${what} gate: ${where} answered HTTP ${response.status}; the gate cannot tell what is running, so it stops here.`);
    try {
        return JSON.parse(response.text);
    } catch {
        return fail(`${what} gate: ${where} did not answer JSON; the gate cannot tell what is running, so it stops here.`);
    }
}

// Every project on the server (listprojects.json), then each one's jobs (listjobs.json?project=P):
// a crawl of any project writes while the old server is being halted, not only one of `project`.
// Scrapyd's JSON API: https://scrapyd.readthedocs.io/en/stable/api.html (listprojects.json answers
// {"status": "ok", "projects": [...]}; listjobs.json {"status": "ok", "pending", "running", "finished"}).
async function scrapyd(context, baseUrl, project, connect) {
    const credentials = await readCredentials(context);
    const base = baseUrl.replace(/\/$/, "");
    const where = connect ? `${base} (at ${connect})` : base;
    const listing = await getJson(context, `${base}/listprojects.json`, credentials, "Scrapyd", connect);
    if (listing.status !== "ok" || !Array.isArray(listing.projects) || !listing.projects.every((p) => typeof p === "string")) {
        fail(`Scrapyd gate: ${where}/listprojects.json answered ${JSON.stringify(listing).slice(0, 300)}; without the list of projects the gate fails closed.`);
    }
    // The configured project is asked even if the listing leaves it out.
    const projects = [...new Set([project, ...listing.projects])];
    const jobs = [];
    for (const p of projects) {
        const url = `${base}/listjobs.json?project=${encodeURIComponent(p)}`;
        const body = await getJson(context, url, credentials, "Scrapyd", connect);
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
    return `Scrapyd gate: no crawl is running or pending at ${where} (project(s): ${projects.join(", ")}).`;
}

async function rabbitmq(context, baseUrl, vhost, connect) {
    const credentials = await readCredentials(context);
    // disable_stats + enable_queue_totals: counts straight from the queues, not the statistics
    // database, which lags by seconds (design.md).
    const url = `${baseUrl.replace(/\/$/, "")}/api/queues/${encodeURIComponent(vhost)}?disable_stats=true&enable_queue_totals=true`;
    const queues = await getJson(context, url, credentials, "RabbitMQ", connect);
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
    return `RabbitMQ gate: ${queues.length} queue(s) in vhost ${vhost}, all empty.`;
}

async function dns(context, hostname, ipv4, ipv6) {
    let found;
    try {
        found = await context.lookup(hostname, { all: true, verbatim: true });
    } catch (error) {
        return fail(`DNS gate: ${hostname} does not resolve here (${error.code}). Point it at ${[ipv4, ipv6].filter(Boolean).join(" and ")}, wait for DNS to propagate, then run pulumi up again.`);
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
    return `DNS gate: ${hostname} resolves to ${[...v4, ...v6].join(", ")}.`;
}

function normalise6(address) {
    // Expand "::" so that 2001:db8::23 and 2001:db8:0:0:0:0:0:23 compare equal.
    const [head, tail] = address.toLowerCase().split("::");
    const h = head ? head.split(":") : [];
    const t = tail !== undefined && tail !== "" ? tail.split(":") : [];
    const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill("0");
    return [...h, ...fill, ...t].map((p) => p.replace(/^0+(?=.)/, "")).join(":");
}

const gates = { scrapyd, rabbitmq, dns };

/**
 * Runs one gate: resolves with the line it prints when it passes, rejects with a GateFailure when
 * it does not. `argv` as the command takes it (--connect included); `stdin` gives the credentials'
 * text; `timeoutMs` how long a service may take to answer (a gate that hangs fails too; the tests
 * shorten it); `resolve` is node's dns lookup (the tests give names of their own).
 */
export async function runGate(argv, { stdin = async () => "", timeoutMs = 30_000, resolve = lookup } = {}) {
    const [kind, ...rest] = argv;
    if (!Object.hasOwn(gates, kind)) fail(`usage: gate.mjs scrapyd|rabbitmq|dns ...`);
    const at = rest.indexOf("--connect");
    let connect;
    if (at >= 0) {
        connect = rest[at + 1];
        if (!connect || isIP(connect) === 0) fail(`gate: --connect needs an IP address`);
        rest.splice(at, 2);
    }
    const context = { stdin, timeoutMs, lookup: resolve };
    return gates[kind](context, ...(kind === "dns" ? rest : [...rest.slice(0, 2), connect]));
}

async function processStdin() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return Buffer.concat(chunks).toString("utf8");
}

// Run as a command (not imported): exit 1 with the message on stderr when the gate does not pass.
// Real paths on both sides: node gives this module its real path, argv[1] as it was typed.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
    try {
        console.log(await runGate(process.argv.slice(2), { stdin: processStdin, timeoutMs: Number(process.env.DATA_SUPPORT_GATE_TIMEOUT_MS) || 30_000 }));
    } catch (error) {
        if (!(error instanceof GateFailure)) throw error;
        process.stderr.write(`${error.message}\n`);
        process.exit(1);
    }
}
