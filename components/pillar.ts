// The Salt pillar fragments the stack's config stands for, rendered so that the Salt repository
// (pillar/tinyproxy.sls, kingfisher_main.sls, kingfisher_replica.sls) can be kept in step.
import YAML from "yaml";
import type { Crawl } from "./config";
import { quote } from "./shell";
import type { AllowedEntry } from "./tinyproxyAllowlist";

function render(doc: YAML.Document): string {
    return doc.toString({ lineWidth: 0 });
}

/** pillar/tinyproxy.sls: the allow list, a comment naming each host. */
export function tinyproxyPillar(allow: AllowedEntry[]): string {
    const doc = new YAML.Document({ tinyproxy: { allow: allow.map((a) => a.address) } });
    const list = doc.getIn(["tinyproxy", "allow"], true) as YAML.YAMLSeq;
    list.items.forEach((item, i) => {
        (item as YAML.Scalar).commentBefore = ` ${allow[i].comment}`;
    });
    return render(doc);
}

/** pillar/kingfisher_main.sls: python_apps.kingfisher_collect.crawls. */
export function crawlsPillar(crawls: Crawl[]): string {
    const rendered = crawls.map((c) => {
        const entry: Record<string, unknown> = { identifier: c.identifier, spider: c.spider, crawl_time: c.crawl_time };
        const args = Object.entries(c.spider_arguments);
        if (args.length > 0) entry.spider_arguments = args.map(([k, v]) => `-a ${quote(`${k}=${v}`)}`).join(" ");
        if (c.cardinal) entry.cardinal = true;
        if (c.users.length > 0) entry.users = c.users;
        if (c.day !== undefined) entry.day = c.day;
        const settings = Object.entries(c.settings);
        if (settings.length > 0) entry.settings = settings.map(([k, v]) => `-s ${quote(`${k}=${v}`)}`).join(" ");
        return entry;
    });
    return render(new YAML.Document({ python_apps: { kingfisher_collect: { crawls: rendered } } }));
}

/** pillar/kingfisher_main.sls (postgres.replica_ipv4/ipv6) and kingfisher_replica.sls's host. */
export function replicaPillar(replica: { hostname: string; ipv4: string; ipv6?: string } | undefined): string {
    if (!replica) return render(new YAML.Document({ postgres: { replica_ipv4: [], replica_ipv6: [] } }));
    return render(
        new YAML.Document({
            postgres: { replica_ipv4: [replica.ipv4], replica_ipv6: replica.ipv6 ? [replica.ipv6] : [] },
            kingfisher_replica: { hostname: replica.hostname },
        }),
    );
}
