// Issue 8, part 3: what `pulumi preview` pays for our code. Runs the main stack's program under the
// SDK's mocks (nothing executes) with 1, 50 and 500 crawls, each run in a fresh Node process as the
// CLI would start one, and measures wall time and peak memory. Writes its section of
// bench/results.md between markers, leaving the other sections alone.
//
//   npm run bench:program                       (sizes 1,50,500; 5 runs each)
//   node --import tsx bench/programCost.ts --sizes 1,50,500 --runs 5 [--no-write]
import { execFileSync } from "node:child_process";
import * as os from "node:os";
import * as path from "node:path";
import { mainConfig } from "../test/support/fixtures";
import { runProgram } from "../tools/program";
import { median, RESULTS, writeSection } from "./results";

const BEGIN = "<!-- program-cost:begin -->";
const END = "<!-- program-cost:end -->";
const TARGET_MS = 2000;

interface Sample {
    crawls: number;
    resources: number;
    /** runProgram: load index.ts and register everything (what our code costs). */
    programMs: number;
    /** The whole process, from spawn to exit (Node, tsx and the Pulumi SDK's start-up included). */
    processMs: number;
    /** Peak resident set of the process, and how much of it came during runProgram. */
    maxRssMb: number;
    programRssMb: number;
}

/** `n` valid crawls: unique upper-case identifiers and snake-case spiders, a mix of the optional keys. */
function crawls(n: number): Record<string, unknown>[] {
    return Array.from({ length: n }, (_, i) => ({
        identifier: `CRAWL_${i}`,
        spider: `spider_${i}`,
        crawl_time: new Date(Date.UTC(2024, 0, 1 + i)).toISOString().slice(0, 10),
        ...(i % 2 === 0 ? { spider_arguments: "-a compile_releases=true" } : {}),
        ...(i % 3 === 0 ? { day: 1 + (i % 28) } : {}),
        ...(i % 5 === 0 ? { users: ["dgcp"] } : {}),
    }));
}

/** In the child: one preview of the main stack with `n` crawls. */
async function child(n: number): Promise<void> {
    const config = mainConfig({ incremental: { ...mainConfig().incremental, crawls: crawls(n) } });
    const rssBefore = process.resourceUsage().maxRSS;
    const start = process.hrtime.bigint();
    const run = await runProgram(config, { preview: true });
    const programMs = Number(process.hrtime.bigint() - start) / 1e6;
    const maxRss = process.resourceUsage().maxRSS;
    process.stdout.write(JSON.stringify({ crawls: n, resources: run.resources.length, programMs, maxRssMb: maxRss / 1024, programRssMb: (maxRss - rssBefore) / 1024 }) + "\n");
}

function spawnOnce(n: number): Sample {
    const start = process.hrtime.bigint();
    const out = execFileSync(process.execPath, ["--import", "tsx", __filename, "--child", String(n)], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    const processMs = Number(process.hrtime.bigint() - start) / 1e6;
    const line = out.trim().split("\n").pop()!;
    return { ...JSON.parse(line), processMs };
}

const fmt = (x: number, digits = 0) => x.toFixed(digits);

function option(name: string, fallback: string): string {
    const i = process.argv.indexOf(name);
    return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function section(sizes: number[], runs: number, samples: Sample[], load: number): string {
    const by = (n: number) => samples.filter((s) => s.crawls === n);
    const med = (n: number, key: keyof Sample) => median(by(n).map((s) => s[key]));
    const summary = sizes.map(
        (n) =>
            `| ${n} | ${by(n)[0].resources} | ${fmt(med(n, "programMs"))} | ${fmt(med(n, "processMs"))} | ${fmt(med(n, "maxRssMb"), 1)} | ${fmt(med(n, "programRssMb"), 1)} |`,
    );
    const raw = sizes.map(
        (n) =>
            `| ${n} | ${by(n).map((s) => fmt(s.programMs)).join(", ")} | ${by(n).map((s) => fmt(s.processMs)).join(", ")} | ${by(n).map((s) => fmt(s.maxRssMb, 1)).join(", ")} |`,
    );

    const lines = [
        BEGIN,
        "## Program cost (pulumi preview of our code, under the SDK's mocks)",
        "",
        `- Date: ${new Date().toISOString()}`,
        `- Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model.trim() ?? "unknown CPU"}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, Linux ${os.release()} (uname -r), Node ${process.version}; load average ${fmt(load, 2)} at the start (other work on the machine shows in the figures)`,
        `- Command: \`npm run bench:program\` (\`node --import tsx bench/programCost.ts --sizes ${sizes.join(",")} --runs ${runs}\`)`,
        "- Method: the main stack (fixture config, no replica) with N generated crawls, through `runProgram` in preview mode",
        "  with the pure mock; each run in a fresh Node process, sizes interleaved. *Program* is `runProgram` (load index.ts,",
        "  validate config, register every resource); *process* adds Node, tsx and the Pulumi SDK's start-up. Peak memory is",
        "  the process's maxRSS; *during program* is how much it grew while `runProgram` ran.",
        "",
        "Medians:",
        "",
        "| crawls | resources | program (ms) | process (ms) | peak RSS (MiB) | RSS growth during program (MiB) |",
        "|---:|---:|---:|---:|---:|---:|",
        ...summary,
        "",
        `Raw figures (${runs} runs each, in run order):`,
        "",
        "| crawls | program (ms) | process (ms) | peak RSS (MiB) |",
        "|---:|---|---|---|",
        ...raw,
        "",
        ...verdict(sizes, med),
        END,
    ];
    return lines.join("\n");
}

/** Linear growth: the cost of one more crawl measured between the smallest size and each larger one. */
function verdict(sizes: number[], med: (n: number, key: keyof Sample) => number): string[] {
    const [small, ...larger] = [...sizes].sort((a, b) => a - b);
    const perCrawl = larger.map((n) => ({ n, ms: (med(n, "programMs") - med(small, "programMs")) / (n - small), mb: (med(n, "maxRssMb") - med(small, "maxRssMb")) / (n - small) }));
    const out = ["Growth per crawl (median of the larger size minus median of the smallest, divided by the extra crawls):", ""];
    for (const p of perCrawl) out.push(`- ${small} to ${p.n} crawls: ${fmt(p.ms, 2)} ms and ${fmt(p.mb, 3)} MiB per crawl`);
    if (perCrawl.length >= 2) {
        const first = perCrawl[0];
        const last = perCrawl[perCrawl.length - 1];
        const ratio = last.ms / first.ms;
        // Within a factor of 2 either way counts as linear: the small sizes' differences are a few ms of noise.
        out.push(
            `- Time per crawl at ${last.n} vs at ${first.n}: ${fmt(ratio, 2)}x, ${ratio > 0.5 && ratio < 2 ? "linear growth (target met)" : "not linear (target missed)"}`,
        );
    }
    if (sizes.includes(50)) {
        const ms = med(50, "programMs");
        out.push(`- 50 crawls: ${fmt(ms)} ms for our code (target under ${TARGET_MS} ms: ${ms < TARGET_MS ? "met" : "missed"}); ${fmt(med(50, "processMs"))} ms with process start-up (${med(50, "processMs") < TARGET_MS ? "also under" : "over"} ${TARGET_MS} ms)`);
    }
    return out;
}

async function main(): Promise<void> {
    const childSize = option("--child", "");
    if (childSize !== "") return child(Number(childSize));
    const sizes = option("--sizes", "1,50,500").split(",").map(Number);
    const runs = Number(option("--runs", "5"));
    const samples: Sample[] = [];
    const load = os.loadavg()[0];
    // Sizes interleaved, so a drift in the machine's load spreads over all of them.
    for (let r = 0; r < runs; r++) {
        for (const n of sizes) {
            const s = spawnOnce(n);
            samples.push(s);
            process.stderr.write(`run ${r + 1}/${runs}, ${n} crawls: program ${fmt(s.programMs)} ms, process ${fmt(s.processMs)} ms, peak RSS ${fmt(s.maxRssMb, 1)} MiB\n`);
        }
    }
    const text = section(sizes, runs, samples, load);
    process.stdout.write(text.split("\n").filter((l) => !l.startsWith("<!--")).join("\n") + "\n");
    if (!process.argv.includes("--no-write")) {
        writeSection(BEGIN, END, text);
        process.stderr.write(`written to ${path.relative(process.cwd(), RESULTS)}\n`);
    }
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
