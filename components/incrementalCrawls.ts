// Incremental crawls on the new main server (Set up incremental updates): per crawl a script
// bin/<spider>.sh and a cron entry OCDS_KINGFISHER_COLLECT_<IDENTIFIER> in the incremental user's
// crontab. Desired state: adding, changing or removing a crawl changes exactly its script and
// entry; an unchanged config changes nothing.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import type { Crawl } from "./config";
import type { Host } from "./host";
import { INCREMENTAL_CRON_PATTERN } from "./incrementalCopy";
import { managedFile } from "./managedFile";
import { sh, script } from "./shell";

export const MAILTO = "sysadmin@open-contracting.org";

/** The line Salt's cron module writes above the entries it manages (salt/modules/cron.py, TAG). */
export const SALT_CRON_TAG = "# Lines below here are managed by Salt, do not edit";

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
    return [`# SALT_CRON_IDENTIFIER:${cronId(crawl)}`, `15 0 ${crawl.day ?? "*"} * * ${crawlPaths(crawl, home).script}`];
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
        `DATABASE_URL=${databaseUrl(database)}`,
        ...Object.entries(crawl.settings).flatMap(([k, v]) => ["-s", `${k}=${v}`]),
    ];
}

/** Where a crawl's files live on the server. */
export function crawlPaths(crawl: Crawl, home: string) {
    return {
        script: `${home}/bin/${crawl.spider}.sh`,
        // Spider names hold no '.', so these never collide with another spider's script.
        cardinalScript: `${home}/bin/${crawl.spider}.cardinal.sh`,
        cardinalSettings: `${home}/cardinal/${crawl.spider}.ini`,
        cardinalResultSql: `${home}/cardinal/${crawl.spider}.result.sql`,
        cardinalScratch: `${home}/cardinal/scratch`,
    };
}

/** The tables that hold a crawl's data: the spider's own, and cardinal's when it is set. */
export function crawlTables(crawl: Crawl): string[] {
    return crawl.cardinal ? [crawl.spider, `${crawl.spider}_clean`, `${crawl.spider}_result`] : [crawl.spider];
}

const sqlList = (names: string[]) => names.map((n) => `'${n}'`).join(", ");

/**
 * SQL (for psql, with \gexec) that grants SELECT on those of `tables` that exist to `roles`.
 * Names are validated identifiers (config.ts) and are quoted again by format('%I').
 */
export function grantSql(tables: string[], roles: string[]): string {
    return `SELECT format('GRANT SELECT ON %I TO %I', c.relname, r) FROM pg_class c, unnest(ARRAY[${sqlList(roles)}]::text[]) r WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname IN (${sqlList(tables)}) ORDER BY 1 \\gexec`;
}

/** bin/<spider>.sh: every value is quoted by the shell helper. */
export function renderCrawlScript(crawl: Crawl, args: { home: string; database: string; proxyUrl: string }): string {
    const logDir = `${args.home}/logs/${crawl.spider}`;
    const paths = crawlPaths(crawl, args.home);
    const lines = [
        sh`#!/bin/sh`,
        sh`# Managed by data-support (Pulumi): ${cronId(crawl)}. Edit the stack config, not this file.`,
        sh`set -eu`,
        sh`export http_proxy=${args.proxyUrl} https_proxy=${args.proxyUrl} no_proxy=localhost`,
        sh`cd ${`${args.home}/kingfisher-collect`}`,
        sh`log_dir=${logDir}/$(date +%Y)`,
        sh`mkdir -p "$log_dir"`,
        sh`./.ve/bin/scrapy ${scrapyArgs(crawl, args.home, args.database)} --logfile="$log_dir/$(date +%Y-%m-%d).log"`,
    ];
    if (crawl.users.length > 0) {
        // Read access for `users`: the crawl creates the spider's table on its first run, so the
        // grant is applied after every crawl, to exactly this crawl's tables. Default privileges
        // (ALTER DEFAULT PRIVILEGES) would also cover later tables, but of every spider: too wide.
        lines.push(
            sh`printf '%s\\n' ${grantSql([crawl.spider], crawl.users)} | psql -X -q -v ON_ERROR_STOP=1 -d ${databaseUrl(args.database)}`,
        );
    }
    if (crawl.cardinal) lines.push(sh`${paths.cardinalScript}`);
    return script(...lines).text + "\n";
}

export function databaseUrl(database: string): string {
    return `postgresql://${database}@localhost:5432/${database}`;
}

/**
 * bin/<spider>.cardinal.sh, after the deploy repository's cardinal.sh: export the spider's data,
 * run ocdscardinal (prepare, then indicators), reload <spider>_clean, then the result-table SQL
 * (which holds the grants, so tables recreated here are readable again at once).
 */
export function renderCardinalScript(crawl: Crawl, args: { home: string; database: string }): string {
    const p = crawlPaths(crawl, args.home);
    const spider = crawl.spider;
    const psql = sh`psql -X -q -v ON_ERROR_STOP=1 -d ${databaseUrl(args.database)}`;
    return (
        script(
            sh`#!/bin/sh`,
            sh`# Managed by data-support (Pulumi): cardinal step of ${cronId(crawl)}.`,
            sh`set -eu`,
            sh`scratch=${p.cardinalScratch} settings=${p.cardinalSettings} cardinal=${`${args.home}/.cargo/bin/ocdscardinal`}`,
            sh`mkdir -p "$scratch"`,
            sh`${psql} -t -A -c ${`SELECT data FROM ${spider}`} -o ${`${p.cardinalScratch}/${spider}.jsonl`}`,
            sh`"$cardinal" prepare -s "$settings" -o ${`${p.cardinalScratch}/${spider}.out.jsonl`} -e ${`${p.cardinalScratch}/${spider}.err.csv`} ${`${p.cardinalScratch}/${spider}.jsonl`}`,
            sh`if [ -s ${`${p.cardinalScratch}/${spider}.err.csv`} ]; then echo ${`${spider}: cardinal found new errors; see ${p.cardinalScratch}/${spider}.err.csv`} >&2; exit 1; fi`,
            sh`"$cardinal" indicators -s "$settings" --map ${`${p.cardinalScratch}/${spider}.out.jsonl`} > ${`${p.cardinalScratch}/${spider}.json`}`,
            sh`${psql} -c BEGIN -c ${`DROP TABLE IF EXISTS ${spider}_clean`} -c ${`CREATE TABLE ${spider}_clean (data jsonb)`} -c ${`\\copy ${spider}_clean (data) FROM stdin CSV QUOTE e'\\x01' DELIMITER e'\\x02'`} -c ${`CREATE INDEX idx_${spider}_clean ON ${spider}_clean (cast(data->>'date' as text))`} -c END < ${`${p.cardinalScratch}/${spider}.out.jsonl`}`,
            sh`${psql} -f ${p.cardinalResultSql}`,
        ).text + "\n"
    );
}

/** cardinal/<spider>.result.sql: the result table, and read access for `users` to both tables. */
export function renderCardinalResultSql(crawl: Crawl): string {
    const lines = [
        `-- Managed by data-support (Pulumi): cardinal result table of ${cronId(crawl)}.`,
        `CREATE TABLE IF NOT EXISTS ${crawl.spider}_result (`,
        "    id serial PRIMARY KEY,",
        "    ocid text,",
        "    subject text,",
        "    code text,",
        "    result numeric,",
        "    buyer_id text,",
        "    procuring_entity_id text,",
        "    tenderer_id text,",
        "    created_at timestamp without time zone",
        ");",
        ...crawl.users.map((u) => `GRANT SELECT ON ${crawl.spider}_result, ${crawl.spider}_clean TO ${u};`),
        "",
    ];
    return lines.join("\n");
}

/** cardinal/<spider>.ini: the settings given in config, under a header. */
export function renderCardinalSettings(crawl: Crawl): string {
    const body = crawl.cardinal_settings ?? "";
    return `; Managed by data-support (Pulumi): ocdscardinal settings for ${crawl.spider}.\n${body}${body === "" || body.endsWith("\n") ? "" : "\n"}`;
}

export class IncrementalCrawls extends pulumi.ComponentResource {
    readonly crontab: pulumi.Output<string>;

    constructor(name: string, args: IncrementalCrawlsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:incremental:IncrementalCrawls", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const { newMain, user, home } = args;
        const after = { parent: this, dependsOn: [...inherited, ...args.after] };
        const files = args.crawls.flatMap((crawl) => {
            const id = `${name}-${crawl.identifier.toLowerCase()}`;
            const p = crawlPaths(crawl, home);
            const installed = [
                managedFile(newMain, id, { path: p.script, owner: user, mode: "0755", shellScript: true, content: renderCrawlScript(crawl, { home, database: args.database, proxyUrl: args.proxyUrl }) }, after),
            ];
            if (crawl.cardinal) {
                installed.push(
                    managedFile(newMain, `${id}-cardinal`, { path: p.cardinalScript, owner: user, mode: "0755", shellScript: true, content: renderCardinalScript(crawl, { home, database: args.database }) }, after),
                    managedFile(newMain, `${id}-cardinal-settings`, { path: p.cardinalSettings, owner: user, mode: "0644", content: renderCardinalSettings(crawl) }, after),
                    managedFile(newMain, `${id}-cardinal-result-sql`, { path: p.cardinalResultSql, owner: user, mode: "0644", content: renderCardinalResultSql(crawl) }, after),
                );
            }
            installed.push(this.readAccess(id, crawl, args, after));
            return installed;
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
            sh`if [ -z "$managed" ] && ! awk -v tag=${SALT_CRON_TAG} '$0 != tag && /[^[:space:]]/ { found = 1 } END { exit !found }' "$rest"; then`,
            sh`  if [ -s "$now" ]; then crontab -r -u ${user}; echo "crontab of ${user}: removed (no crawl left)"; else echo "crontab of ${user}: none, unchanged"; fi`,
            sh`  exit 0`,
            sh`fi`,
            // Salt's crontab header stays first: Salt's cron module reads what is above it as lines it
            // does not manage, so MAILTO goes below it, where Salt's set_cron_env keeps it.
            sh`{ if grep -qxF ${SALT_CRON_TAG} "$rest"; then echo ${SALT_CRON_TAG}; fi; echo ${`MAILTO=${MAILTO}`}; grep -vxF ${SALT_CRON_TAG} "$rest" || true; [ -z "$managed" ] || printf '%s\\n' "$managed"; } > "$next"`,
            sh`if cmp -s "$now" "$next"; then echo "crontab of ${user}: unchanged"; else crontab -u ${user} "$next"; echo "crontab of ${user}: installed"; fi`,
        );
        const crontab = newMain.command(
            `${name}-crontab`,
            { create: converge, update: converge, stdin: entries.join("\n") },
            { parent: this, dependsOn: [...inherited, ...args.after, ...files] },
        );
        this.crontab = crontab.stdout;
        this.registerOutputs({ crontab: this.crontab });
    }

    /**
     * Read access for the crawl's `users` to the crawl's tables that exist now; the crawl script
     * grants again after each run (tables created later). The roles this step granted are kept in
     * a file on the server, so a role that leaves the list has exactly those grants revoked, and
     * grants made by others (Salt's read groups) are left alone.
     */
    private readAccess(id: string, crawl: Crawl, args: IncrementalCrawlsArgs, opts: pulumi.CustomResourceOptions) {
        const host = args.newMain;
        const state = `${host.settings.stateDir}/grants/${args.database}.${crawl.spider}`;
        const tables = crawlTables(crawl);
        const psql = sh`runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -d ${args.database}`;
        const revokeSql = (keep: string[]) =>
            `SELECT format('REVOKE SELECT ON %I FROM %I', c.relname, r) FROM pg_class c, unnest(string_to_array(:'previous', ' ')) r WHERE r <> ALL (ARRAY[${sqlList(keep)}]::text[]) AND EXISTS (SELECT FROM pg_roles WHERE rolname = r) AND c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname IN (${sqlList(crawlTables({ ...crawl, cardinal: true }))}) ORDER BY 1 \\gexec`;
        // The crawl is named by its identifier, not its index: removing another crawl must not
        // change this one's command.
        const converge = script(
            sh`state=${state}`,
            sh`install -d -m 0700 ${state.replace(/\/[^/]+$/, "")}`,
            sh`missing=$(${psql} -c ${`SELECT string_agg(u, ' ') FROM unnest(ARRAY[${sqlList(crawl.users)}]::text[]) u WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = u)`})
if [ -n "$missing" ]; then echo ${`${host.hostname}: PostgreSQL role(s) missing:`} "$missing"${`; create them, or remove them from the users of crawl ${crawl.identifier} (data-support:incremental.crawls)`} >&2; exit 1; fi`,
            sh`previous=$(cat "$state" 2>/dev/null || true)`,
            sh`printf '%s\\n' ${revokeSql(crawl.users)} ${grantSql(tables, crawl.users)} | ${psql} -v previous="$previous" >/dev/null`,
            sh`printf '%s' ${crawl.users.join(" ")} > "$state"`,
            sh`printf '%s\\n' ${`${id}-read-access`} > "$state.owner"`,
            sh`echo ${`${crawl.spider}: read access for ${crawl.users.length > 0 ? crawl.users.join(", ") : "no role"}`}`,
        );
        const revokeAll = script(
            sh`state=${state}`,
            // A crawl renamed (same spider, another identifier): the new one owns the grants now.
            sh`if [ "$(cat "$state.owner" 2>/dev/null || echo ${`${id}-read-access`})" != ${`${id}-read-access`} ]; then echo ${`${crawl.spider}: read access kept, managed by`} "$(cat "$state.owner")"; exit 0; fi`,
            sh`previous=$(cat "$state" 2>/dev/null || true)`,
            sh`printf '%s\\n' ${revokeSql([])} | ${psql} -v previous="$previous" >/dev/null`,
            sh`rm -f "$state" "$state.owner"`,
        );
        return host.command(`${id}-read-access`, { create: converge, update: converge, delete: revokeAll }, opts);
    }
}
