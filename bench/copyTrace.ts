// Timing a script on a test host from the inside: bash xtrace timestamps ($EPOCHREALTIME) per
// command, and the phases of a step (check, copy, verify...) cut from them. For bench/copy.ts.
import { run, type HostName } from "../test/hosts/testbed";

export interface TraceEvent {
    t: number;
    cmd: string;
}

/** Runs `script` with an xtrace line (`+<epoch seconds> command`) per command, and a last `: bench-end`. */
export async function traced(host: HostName, script: string, user?: string): Promise<{ events: TraceEvent[]; stdout: string; stderr: string }> {
    const text = `PS4='+\${EPOCHREALTIME} '\nset -x\n${script}\n: bench-end`;
    const r = await run(host, text, { user });
    if (r.code !== 0) throw new Error(`${host}: exit ${r.code} in a timed command:\n${script.slice(0, 600)}\n--- stderr (end) ---\n${r.stderr.slice(-4000)}`);
    return { events: traceEvents(r.stderr), stdout: r.stdout, stderr: r.stderr };
}

/** The `+<epoch seconds> command` lines of an xtrace (one `+` per nesting level). */
export function traceEvents(stderr: string): TraceEvent[] {
    return stderr.split("\n").flatMap((line) => {
        const m = /^\++(\d+[.,]\d+) (.*)$/.exec(line);
        return m ? [{ t: Number(m[1].replace(",", ".")), cmd: m[2] }] : [];
    });
}

/**
 * Where a phase starts: null, the first traced command; a pattern, the first command (from the
 * previous phase's start on) that matches it; afterLast, the command right after the last one
 * in the whole trace that matches (e.g. the verification after the last rsync, wherever the step
 * sets up its temporary files).
 */
export type Bound = RegExp | null | { afterLast: RegExp };

/** Splits a traced run into phases, all ending at `: bench-end`: each phase's start and end (epoch seconds). */
export function phaseSpans(events: TraceEvent[], bounds: [string, Bound][]): { name: string; start: number; end: number }[] {
    const starts: number[] = [];
    let from = 0;
    for (const [name, bound] of bounds) {
        let i: number;
        if (bound === null) i = from;
        else if (bound instanceof RegExp) i = events.findIndex((e, k) => k >= from && bound.test(e.cmd));
        else {
            let last = events.length - 1;
            while (last >= 0 && !bound.afterLast.test(events[last].cmd)) last--;
            i = last < 0 ? -1 : last + 1;
        }
        if (i < 0 || i >= events.length || i < from) throw new Error(`phase ${name}: no traced command where it starts (${String(bound instanceof RegExp ? bound : bound?.afterLast)})`);
        starts.push(events[i].t);
        from = i;
    }
    const end = [...events].reverse().find((e) => e.cmd === ": bench-end");
    if (!end) throw new Error("no `: bench-end` in the trace");
    return bounds.map(([name], k) => ({ name, start: starts[k], end: k + 1 < starts.length ? starts[k + 1] : end.t }));
}

/** Seconds per phase and the total. */
export function phases(events: TraceEvent[], bounds: [string, Bound][]): Record<string, number> & { total: number } {
    const spans = phaseSpans(events, bounds);
    const out: Record<string, number> = {};
    for (const x of spans) out[x.name] = x.end - x.start;
    return Object.assign(out, { total: spans[spans.length - 1].end - spans[0].start });
}
