// What the benchmarks share: the median, and writing one benchmark's section of bench/results.md
// between its markers while leaving the other sections as they are.
import * as fs from "node:fs";
import * as path from "node:path";

export const RESULTS = path.join(__dirname, "results.md");

export function median(values: number[]): number {
    const s = [...values].sort((a, b) => a - b);
    const mid = Math.floor(s.length / 2);
    return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Replaces the section between `begin` and `end` (both included in `text`) of results.md, or adds it at the end. */
export function writeSection(begin: string, end: string, text: string): void {
    const current = fs.existsSync(RESULTS) ? fs.readFileSync(RESULTS, "utf8") : "# Benchmarks\n";
    const from = current.indexOf(begin);
    const to = current.indexOf(end);
    const next = from >= 0 && to > from ? current.slice(0, from) + text + current.slice(to + end.length) : `${current.trimEnd()}\n\n${text}\n`;
    fs.writeFileSync(RESULTS, next);
}
