// The Salt pillar fragments the stack's config stands for, rendered so that the Salt repository
// (pillar/tinyproxy.sls, kingfisher_main.sls, kingfisher_replica.sls) can be kept in step.
import YAML from "yaml";
import type { Crawl } from "./config";
import { pillarSpiderArguments } from "./runbook/incremental-updates/incrementalCrawls";
import type { AllowedEntry } from "./runbook/dependencies/tinyproxyAllowlist";

function render(doc: YAML.Document): string {
    return doc.toString({ lineWidth: 0 });
}

/**
 * An allow entry as the pillar must hold it. Salt's template writes each entry as it is
 * (`Allow {{ ip }}`, salt/tinyproxy/files/tinyproxy.conf at deploy afaedf6b), and tinyproxy 1.11
 * reads a bare IPv6 address as a range that admits every IPv6 client: the entry carries its /128.
 */
export function pillarAllowEntry(address: string): string {
    return address.includes(":") && !address.includes("/") ? `${address}/128` : address;
}

/** pillar/tinyproxy.sls: the allow list, a comment naming each host. */
export function tinyproxyPillar(allow: AllowedEntry[]): string {
    const doc = new YAML.Document({ tinyproxy: { allow: allow.map((a) => pillarAllowEntry(a.address)) } });
    const list = doc.getIn(["tinyproxy", "allow"], true) as YAML.YAMLSeq;
    list.items.forEach((item, i) => {
        (item as YAML.Scalar).commentBefore = ` ${allow[i].comment}`;
    });
    return render(doc);
}

/**
 * pillar/kingfisher_main.sls: python_apps.kingfisher_collect.crawls. The Sentry DSN the scripts
 * carry is not here: it is a secret, in the private pillar (kingfisher_collect.env.SENTRY_DSN), and
 * must equal the stack's incremental.sentryDsn. A cardinal crawl's settings file is the deploy
 * repository's salt/kingfisher/collect/files/cardinal/<spider>.ini, equal to cardinal_settings.
 */
export function crawlsPillar(crawls: Crawl[]): string {
    const rendered = crawls.map((c) => {
        const entry: Record<string, unknown> = { identifier: c.identifier, spider: c.spider, crawl_time: c.crawl_time };
        // The same string the program's crawl script pastes in, as Salt's template does.
        const args = pillarSpiderArguments(c);
        if (args !== undefined) entry.spider_arguments = args;
        if (c.cardinal) entry.cardinal = true;
        if (c.users.length > 0) entry.users = c.users;
        if (c.day !== undefined) entry.day = c.day;
        // cron.sh tests only `'proxy' in crawl`: written only when true (a `proxy: false` would count).
        if (c.proxy) entry.proxy = true;
        // Not in the pillar at the runbook's commit; the deploy repository added it later as a
        // mapping that its template iterates (`-s KEY=VALUE` per item), so a mapping it is.
        if (Object.keys(c.settings).length > 0) entry.settings = { ...c.settings };
        return entry;
    });
    return render(new YAML.Document({ python_apps: { kingfisher_collect: { crawls: rendered } } }));
}

/**
 * pillar/kingfisher_main.sls: postgres.replica_ipv4/ipv6, which salt/postgres/files/pg_hba.conf
 * renders as `hostssl replication replica <ip>/32` (or /128) lines. Nothing else: the replica's own
 * pillar file was removed from the deploy repository before the runbook's commit.
 */
export function replicaPillar(replica: { hostname: string; ipv4: string; ipv6?: string } | undefined): string {
    if (!replica) return render(new YAML.Document({ postgres: { replica_ipv4: [], replica_ipv6: [] } }));
    return render(new YAML.Document({ postgres: { replica_ipv4: [replica.ipv4], replica_ipv6: replica.ipv6 ? [replica.ipv6] : [] } }));
}
