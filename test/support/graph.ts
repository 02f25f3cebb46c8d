// The dependency graph of a program run: which resources each one (transitively) waits for.
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

    /** Every custom resource that `urn` waits for, directly or through others. */
    waitsFor(urn: string): Set<string> {
        const cached = this.closure.get(urn);
        if (cached) return cached;
        const out = new Set<string>();
        this.closure.set(urn, out);
        for (const dep of this.byUrn.get(urn)?.dependencies ?? []) {
            for (const d of this.expand(dep)) {
                out.add(d);
                for (const dd of this.waitsFor(d)) out.add(dd);
            }
        }
        return out;
    }

    named(re: RegExp): Registered[] {
        return this.resources.filter((r) => re.test(r.name));
    }
}
