// Incremental crawls on the new main server (Set up incremental updates): per crawl a script
// bin/<spider>.sh and a cron entry OCDS_KINGFISHER_COLLECT_<IDENTIFIER> in the incremental user's
// crontab. Desired state: adding, changing or removing a crawl changes exactly its script and
// entry; an unchanged config changes nothing.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import type { Crawl } from "./config";
import type { Host } from "./host";
import { INCREMENTAL_CRON_PATTERN } from "./incrementalCopy";
import { sh, script } from "./shell";

export const MAILTO = "sysadmin@open-contracting.org";

export interface IncrementalCrawlsArgs {
    newMain: Host;
    user: string;
    home: string;
    database: string;
    proxyUrl: string;
    crawls: Crawl[];
    /** The copy of incremental data must be done before crawls run on the new server. */
    after: pulumi.Resource[];
}

/** The cron entry id of a crawl. */
export function cronId(crawl: Crawl): string {
    return `OCDS_KINGFISHER_COLLECT_${crawl.identifier}`;
}

/** The crontab lines of a crawl, as Salt writes them: at 00:15, daily or on `day` of the month. */
export function cronEntry(crawl: Crawl, home: string): string[] {
    return [`# SALT_CRON_IDENTIFIER:${cronId(crawl)}`, `15 0 ${crawl.day ?? "*"} * * ${home}/bin/${crawl.spider}.sh`];
}

/** The scrapy argument vector of a crawl, as the script passes it. */
export function scrapyArgs(crawl: Crawl, home: string, database: string): string[] {
    return [
        "crawl",
        crawl.spider,
        "-a",
        `crawl_time=${crawl.crawl_time}T00:00:00`,
        ...Object.entries(crawl.spider_arguments).flatMap(([k, v]) => ["-a", `${k}=${v}`]),
        "-s",
        `FILES_STORE=${home}/data`,
        "-s",
        `DATABASE_URL=postgresql://${database}@localhost:5432/${database}`,
        ...Object.entries(crawl.settings).flatMap(([k, v]) => ["-s", `${k}=${v}`]),
    ];
}

/** bin/<spider>.sh: every value is quoted by the shell helper. */
export function renderCrawlScript(crawl: Crawl, args: { home: string; database: string; proxyUrl: string }): string {
    const logDir = `${args.home}/logs/${crawl.spider}`;
    return script(
        sh`#!/bin/sh`,
        sh`# Managed by data-support (Pulumi): ${cronId(crawl)}. Edit the stack config, not this file.`,
        sh`set -eu`,
        sh`export http_proxy=${args.proxyUrl} https_proxy=${args.proxyUrl}`,
        sh`cd ${`${args.home}/kingfisher-collect`}`,
        sh`log_dir=${logDir}/$(date +%Y)`,
        sh`mkdir -p "$log_dir"`,
        sh`exec ./.ve/bin/scrapy ${scrapyArgs(crawl, args.home, args.database)} --logfile="$log_dir/$(date +%Y-%m-%d).log"`,
    ).text + "\n";
}

export class IncrementalCrawls extends pulumi.ComponentResource {
    readonly crontab: pulumi.Output<string>;

    constructor(name: string, args: IncrementalCrawlsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:incremental:IncrementalCrawls", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const { newMain, user, home } = args;
        const scripts = args.crawls.map((crawl) => {
            const path = `${home}/bin/${crawl.spider}.sh`;
            const install = script(
                sh`install -d -m 0755 -o ${user} -g ${user} ${`${home}/bin`}`,
                sh`tmp=$(mktemp ${`${path}.XXXXXX`}); trap 'rm -f "$tmp"' EXIT`,
                sh`cat > "$tmp"`,
                sh`sh -n "$tmp"`,
                sh`chown ${user}: "$tmp"; chmod 0755 "$tmp"`,
                sh`if cmp -s "$tmp" ${path}; then echo ${`${path}: unchanged`}; else mv "$tmp" ${path}; echo ${`${path}: installed`}; fi`,
            );
            return newMain.command(
                `${name}-${crawl.identifier.toLowerCase()}`,
                {
                    create: install,
                    update: install,
                    delete: sh`rm -f ${path}`,
                    stdin: renderCrawlScript(crawl, { home, database: args.database, proxyUrl: args.proxyUrl }),
                },
                { parent: this, dependsOn: [...inherited, ...args.after] },
            );
        });
        const entries = args.crawls.flatMap((crawl) => cronEntry(crawl, home));
        // The crontab: MAILTO first, then lines we do not manage (kept as they are), then the
        // crawls. When no crawl and no other line is left, the crontab is removed altogether, so the
        // server looks as it did before any crawl was set up ("no crontab for incremental").
        const converge = script(
            sh`now=$(mktemp) rest=$(mktemp) next=$(mktemp); trap 'rm -f "$now" "$rest" "$next"' EXIT`,
            sh`{ crontab -l -u ${user} 2>/dev/null || true; } > "$now"`,
            sh`awk -v re=${`^# SALT_CRON_IDENTIFIER:(${INCREMENTAL_CRON_PATTERN})$`} 'skip { skip = 0; next } $0 ~ re { skip = 1; next } /^MAILTO=/ { next } { print }' "$now" > "$rest"`,
            sh`managed=$(cat)`,
            sh`if [ -z "$managed" ] && ! grep -q '[^[:space:]]' "$rest"; then`,
            sh`  if [ -s "$now" ]; then crontab -r -u ${user}; echo "crontab of ${user}: removed (no crawl left)"; else echo "crontab of ${user}: none, unchanged"; fi`,
            sh`  exit 0`,
            sh`fi`,
            sh`{ echo ${`MAILTO=${MAILTO}`}; cat "$rest"; [ -z "$managed" ] || printf '%s\\n' "$managed"; } > "$next"`,
            sh`if cmp -s "$now" "$next"; then echo "crontab of ${user}: unchanged"; else crontab -u ${user} "$next"; echo "crontab of ${user}: installed"; fi`,
        );
        const crontab = newMain.command(
            `${name}-crontab`,
            { create: converge, update: converge, stdin: entries.join("\n") },
            { parent: this, dependsOn: [...inherited, ...args.after, ...scripts] },
        );
        this.crontab = crontab.stdout;
        this.registerOutputs({ crontab: this.crontab });
    }
}

