// The dependency graph of a program run: what each resource waits for, and one order that
// respects it. The order tests and the offline runbook read it.
import type { Registered } from "./program";

export class Graph {
    private readonly byUrn = new Map<string, Registered>();
    private readonly children = new Map<string, string[]>();
    private readonly closure = new Map<string, Set<string>>();

    constructor(readonly resources: Registered[]) {
        for (const r of resources) {
            this.byUrn.set(r.urn, r);
            this.children.set(r.parent, [...(this.children.get(r.parent) ?? []), r.urn]);
        }
    }

    /** Custom resources behind a URN: itself, or every custom resource under a component. */
    private expand(urn: string): string[] {
        if (this.byUrn.has(urn)) return [urn];
        return (this.children.get(urn) ?? []).flatMap((c) => this.expand(c));
    }

    /** The custom resources `urn` waits for directly (a component stands for all under it). */
    dependsOn(urn: string): string[] {
        return [...new Set((this.byUrn.get(urn)?.dependencies ?? []).flatMap((d) => this.expand(d)))];
    }

    /** Every custom resource that `urn` waits for, directly or through others. */
    waitsFor(urn: string): Set<string> {
        const cached = this.closure.get(urn);
        if (cached) return cached;
        const out = new Set<string>();
        this.closure.set(urn, out);
        for (const d of this.dependsOn(urn)) {
            out.add(d);
            for (const dd of this.waitsFor(d)) out.add(dd);
        }
        return out;
    }

    named(re: RegExp): Registered[] {
        return this.resources.filter((r) => re.test(r.name));
    }

    /**
     * Every resource after all it waits for (a topological order). Of those ready at once, the
     * lowest `rank` goes first, then the one registered first: the same run gives the same order.
     */
    order(rank: (r: Registered) => number): Registered[] {
        const position = new Map(this.resources.map((r, i) => [r.urn, i]));
        const placed = new Set<string>();
        const out: Registered[] = [];
        while (out.length < this.resources.length) {
            const ready = this.resources.filter((r) => !placed.has(r.urn) && this.dependsOn(r.urn).every((d) => placed.has(d)));
            if (ready.length === 0) throw new Error("the dependency graph has a cycle");
            ready.sort((a, b) => rank(a) - rank(b) || position.get(a.urn)! - position.get(b.urn)!);
            placed.add(ready[0].urn);
            out.push(ready[0]);
        }
        return out;
    }
}
