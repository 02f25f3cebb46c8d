#!/usr/bin/env node
// The gates of the migration, run on the operator's machine by `pulumi up` (local.Command).
// A gate that finds work in progress exits 1 with one message saying what runs and how to cancel
// it; nothing after the gate runs, and the next `pulumi up` checks again.
// Credentials arrive as JSON on stdin ({"username": ..., "password": ...}), never in argv.
//
//   node scripts/gate.mjs scrapyd <base-url> <project>
//   node scripts/gate.mjs rabbitmq <base-url> <vhost>
//   node scripts/gate.mjs dns <hostname> <ipv4> [<ipv6>]
//
// The tests import it (runGate) and run it as a command; the command is what `pulumi up` runs.
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
        return fail("gate: expected {\"username\",\"password\"} as JSON on stdin");
    }
}

async function getJson(context, url, credentials, what) {
    const auth = Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64");
    let response;
    try {
        response = await fetch(url, { headers: { Authorization: `Basic ${auth}` }, signal: AbortSignal.timeout(context.timeoutMs) });
    } catch (error) {
        return fail(`${what} gate: cannot reach ${url}: ${error.cause?.message ?? error.message}. Check the URL in config and that the service is up, then run pulumi up again.`);
    }
    if (response.status === 401 || response.status === 403) {
        fail(`${what} gate: ${url} refused the credentials (HTTP ${response.status}). Set the right username and password in config (pulumi config set --secret --path ...).`);
    }
    if (!response.ok) fail(`${what} gate: ${url} answered HTTP ${response.status}; the gate cannot tell what is running, so it stops here.`);
    try {
        return await response.json();
    } catch {
        return fail(`${what} gate: ${url} did not answer JSON; the gate cannot tell what is running, so it stops here.`);
    }
}

async function scrapyd(context, baseUrl, project) {
    const credentials = await readCredentials(context);
    const url = `${baseUrl.replace(/\/$/, "")}/listjobs.json?project=${encodeURIComponent(project)}`;
    const body = await getJson(context, url, credentials, "Scrapyd");
    if (body.status !== "ok" || !Array.isArray(body.pending) || !Array.isArray(body.running)) {
        fail(`Scrapyd gate: ${url} answered ${JSON.stringify(body).slice(0, 300)}; without the job lists the gate fails closed.`);
    }
    const jobs = [...body.running.map((j) => ({ ...j, state: "running" })), ...body.pending.map((j) => ({ ...j, state: "pending" }))];
    if (jobs.length > 0) {
        const lines = jobs.map((j) => `  - ${j.state}: spider ${j.spider ?? "?"}, job ${j.id ?? "?"}${j.start_time ? `, since ${j.start_time}` : ""}`);
        fail(
            `Scrapyd gate: ${jobs.length} crawl(s) of project ${project} are running or pending at ${baseUrl}:\n${lines.join("\n")}\n` +
                `Wait for them to finish, or have their owners cancel them (${baseUrl.replace(/\/$/, "")}/jobs, or ` +
                `curl -u USER ${baseUrl.replace(/\/$/, "")}/cancel.json -d project=${project} -d job=JOB_ID), then run pulumi up again.`,
        );
    }
    return `Scrapyd gate: no crawl of project ${project} is running or pending.`;
}

async function rabbitmq(context, baseUrl, vhost) {
    const credentials = await readCredentials(context);
    // disable_stats + enable_queue_totals: counts straight from the queues, not the statistics
    // database, which lags by seconds (design.md).
    const url = `${baseUrl.replace(/\/$/, "")}/api/queues/${encodeURIComponent(vhost)}?disable_stats=true&enable_queue_totals=true`;
    const queues = await getJson(context, url, credentials, "RabbitMQ");
    if (!Array.isArray(queues)) fail(`RabbitMQ gate: ${url} did not answer a list of queues; the gate fails closed.`);
    const unknown = queues.filter((q) => typeof q.messages !== "number");
    const busy = queues.filter((q) => typeof q.messages === "number" && q.messages > 0);
    if (busy.length > 0 || unknown.length > 0) {
        const lines = [
            ...busy.map((q) => `  - ${q.name}: ${q.messages} message(s)`),
            ...unknown.map((q) => `  - ${q.name}: message count unknown (counted as busy)`),
        ];
        fail(
            `RabbitMQ gate: queues in vhost ${vhost} at ${baseUrl} are not empty:\n${lines.join("\n")}\n` +
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
 * it does not. `stdin` gives the credentials' text; `timeoutMs` how long a service may take to
 * answer (a gate that hangs fails too; the tests shorten it); `resolve` is node's dns lookup (the
 * tests give names of their own).
 */
export async function runGate(argv, { stdin = async () => "", timeoutMs = 30_000, resolve = lookup } = {}) {
    const [kind, ...args] = argv;
    if (!Object.hasOwn(gates, kind)) fail(`usage: gate.mjs scrapyd|rabbitmq|dns ...`);
    return gates[kind]({ stdin, timeoutMs, lookup: resolve }, ...args);
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
