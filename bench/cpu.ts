// CPU work of the test hosts, read from /proc/stat: for bench/copy.ts.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";

// CPU work: old and new share this machine's cores, so how much CPU a method uses bounds how fast
// it can be here. The kernel's counters (/proc/stat) are the same in every namespace.

/** Ticks per second of /proc/stat (USER_HZ). */
const USER_HZ = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

export interface CpuSample {
    t: number;
    busy: number;
    steal: number;
}

function cpuSample(): CpuSample {
    // cpu  user nice system idle iowait irq softirq steal ...
    const f = fs.readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
    return { t: Date.now() / 1000, busy: (f[0] + f[1] + f[2] + f[5] + f[6]) / USER_HZ, steal: (f[7] ?? 0) / USER_HZ };
}

/** The whole machine's busy CPU time, sampled every 50 ms while `work` runs; core-seconds between two instants. */
export async function withCpu<T>(work: () => Promise<T>): Promise<{ value: T; busy: (from: number, to: number) => number; steal: number }> {
    const samples = [cpuSample()];
    const timer = setInterval(() => samples.push(cpuSample()), 50);
    let value: T;
    try {
        value = await work();
    } finally {
        clearInterval(timer);
        samples.push(cpuSample());
    }
    return { value, busy: (from, to) => cpuAt(samples, to) - cpuAt(samples, from), steal: samples[samples.length - 1].steal - samples[0].steal };
}

/**
 * The machine's busy rate (core-seconds per second) while the hosts are idle: other work on this
 * machine, subtracted from each run's figures so that they are the hosts' own work (at least).
 */
export async function idleRate(ms: number): Promise<number> {
    const a = cpuSample();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const b = cpuSample();
    return (b.busy - a.busy) / (b.t - a.t);
}

/** Busy core-seconds at instant t, interpolated between the samples around it. */
export function cpuAt(samples: CpuSample[], t: number): number {
    if (t <= samples[0].t) return samples[0].busy;
    for (let i = 1; i < samples.length; i++) {
        const a = samples[i - 1];
        const b = samples[i];
        if (t <= b.t) return b.t === a.t ? b.busy : a.busy + ((b.busy - a.busy) * (t - a.t)) / (b.t - a.t);
    }
    return samples[samples.length - 1].busy;
}
