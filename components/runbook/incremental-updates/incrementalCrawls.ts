// Incremental crawls on the new main server (Set up incremental updates): per crawl a script
// bin/<spider>.sh and a cron entry OCDS_KINGFISHER_COLLECT_<IDENTIFIER> in the incremental user's
// crontab. Desired state: adding, changing or removing a crawl changes exactly its script and
// entry; an unchanged config changes nothing.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import type { Crawl } from "../../config";
import type { Host } from "../../machinery/host";
import { INCREMENTAL_CRON_PATTERN } from "../copy-incremental-data/incrementalCopy";
import { managedFile } from "../../machinery/managedFile";
import { quote, sh, script } from "../../machinery/shell";

export const MAILTO = "sysadmin@open-contracting.org";

/** The line Salt's cron module writes above the entries it manages (salt/modules/cron.py, TAG). */
export const SALT_CRON_TAG = "# Lines below here are managed by Salt, do not edit";

export interface IncrementalCrawlsArgs {
    newMain: Host;
    user: string;
    home: string;
    database: string;
    proxyUrl: string;
    /** A secret: it reaches the server only inside the crawl scripts, sent on stdin. */
    sentryDsn: string | undefined;
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

/** Salt's no_proxy for the crawls (salt/kingfisher/collect/files/cron.sh at deploy afaedf6b). */
export const NO_PROXY = "localhost,sentry.io,standard.open-contracting.org";

/**
 * The crawl's spider arguments as the pillar holds them (one string, each `-a key=value` pair
 * shell-quoted) and as Salt's template pastes them into the command line.
 */
export function pillarSpiderArguments(crawl: Crawl): string | undefined {
    const pairs = Object.entries(crawl.spider_arguments);
    return pairs.length > 0 ? pairs.map(([k, v]) => `-a ${quote(`${k}=${v}`)}`).join(" ") : undefined;
}

/** Where a crawl's files live on the server: where salt/kingfisher/collect/incremental.sls puts them. */
export function crawlPaths(crawl: Crawl, home: string) {
    return {
        script: `${home}/bin/${crawl.spider}.sh`,
        cardinalSettings: `${home}/bi/settings/${crawl.spider}.ini`,
        cardinalResultSql: `${home}/bi/sql/${crawl.spider}_result.sql`,
        cardinalScratch: `${home}/bi/scratch`,
    };
}

/** The table the crawl's `users` may read: Salt's result.sql grants SELECT on it, and on nothing else. */
export function grantedTables(crawl: Crawl): string[] {
    return crawl.cardinal ? [`${crawl.spider}_result`] : [];
}

const sqlList = (names: string[]) => names.map((n) => `'${n}'`).join(", ");

/**
 * SQL (for psql, with \gexec) that grants SELECT on those of `tables` that exist to `roles`.
 * Names are validated identifiers (config.ts) and are quoted again by format('%I').
 */
export function grantSql(tables: string[], roles: string[]): string {
    return `SELECT format('GRANT SELECT ON %I TO %I', c.relname, r) FROM pg_class c, unnest(ARRAY[${sqlList(roles)}]::text[]) r WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname IN (${sqlList(tables)}) ORDER BY 1 \\gexec`;
}

export interface CrawlScriptArgs {
    home: string;
    database: string;
    proxyUrl: string;
    sentryDsn: string;
}

/**
 * bin/<spider>.sh, byte for byte as Salt renders salt/kingfisher/collect/files/cron.sh (deploy
 * afaedf6b) from the pillar fragment this program outputs (pillar.ts), so that neither a Salt
 * deploy nor the next `pulumi up` rewrites the other's file. Jinja details followed: `{%- if %}`
 * eats the newline before it, Salt keeps the template's final newline (salt/utils/templates.py,
 * render_jinja_tmpl). Values go through the shell helper, which leaves the validated ones
 * (spider, dates, paths, the DSN) bare, as the template writes them, and quotes anything else.
 * `settings` is not in the template at that commit; the deploy repository later put its `-s`
 * lines after DATABASE_URL, and so do we (with settings, the file is not Salt's at afaedf6b).
 */
export function renderCrawlScript(crawl: Crawl, args: CrawlScriptArgs): string {
    const { home, database } = args;
    const spider = crawl.spider;
    // Paths below are written bare, as the template writes them: config.ts allows only characters
    // the shell takes literally in home, spider and database; this holds it.
    for (const v of [home, spider, database]) if (quote(v) !== v) throw new Error(`not a plain shell word: ${v}`);
    const scratch = crawlPaths(crawl, home).cardinalScratch;
    const spiderArguments = pillarSpiderArguments(crawl);
    const settings = Object.entries(crawl.settings).map(([k, v]) => sh`    -s ${`${k}=${v}`} \\`.text);
    const lines = [
        "#!/bin/sh",
        "# shellcheck disable=SC1083",
        "",
        "set -eu",
        "",
        sh`cd ${`${home}/kingfisher-collect`}`.text,
        "",
        sh`env ${`http_proxy=${args.proxyUrl}`} ${`https_proxy=${args.proxyUrl}`} ${`no_proxy=${NO_PROXY}`} .ve/bin/scrapy crawl \\`.text,
        `    ${sh`${spider}`.text}${spiderArguments === undefined ? "" : ` ${spiderArguments}`} \\`,
        sh`    -a ${`crawl_time=${crawl.crawl_time}T00:00:00`} \\`.text,
        sh`    -s ${`FILES_STORE=${home}/data`} \\`.text,
        sh`    -s ${`DATABASE_URL=${databaseUrl(database)}`} \\`.text,
        ...settings,
        sh`    -s ${`PROXY_SPIDERS=${crawl.proxy ? spider : ""}`} \\`.text,
        sh`    -s ${`SENTRY_DSN=${args.sentryDsn}`} \\`.text,
        // Inside double quotes, as the template has it: $(date +%F) runs when the crawl does.
        `    --logfile="${home}/logs/${spider}-$(date +%F).log"`,
        "",
        "# shellcheck disable=all",
    ];
    if (crawl.cardinal) {
        const p = crawlPaths(crawl, home);
        const psql = sh`psql -U ${database} -h localhost`.text;
        const cardinal = `${home}/.cargo/bin/ocdscardinal`;
        lines.push(
            `${psql} -t -c ${sh`${`SELECT data FROM ${spider}`}`.text} -o ${scratch}/${spider}.jsonl`,
            "",
            `${cardinal} prepare \\`,
            `    -s ${p.cardinalSettings} \\`,
            `    -o ${scratch}/${spider}.out.jsonl \\`,
            `    -e ${scratch}/${spider}.err.csv \\`,
            `    ${scratch}/${spider}.jsonl`,
            "",
            `if [ -s ${scratch}/${spider}.err.csv ]; then`,
            `    echo "${scratch}/${spider}.jsonl contains new errors"`,
            "    exit 1",
            "fi",
            "",
            `${cardinal} indicators \\`,
            `    -s ${p.cardinalSettings} \\`,
            "    --map \\",
            `    ${scratch}/${spider}.out.jsonl \\`,
            `    > ${scratch}/${spider}.json`,
            "",
            "# This appends to the CSV file, to keep flags consistent over time. Delete it manually if results are incorrect.",
            `${home}/bin/manage.py json-to-csv -q ${scratch}/${spider}.json ${scratch}/${spider}.csv`,
            "",
            `${psql} -q \\`,
            '    -c "BEGIN" \\',
            `    -c "DROP TABLE IF EXISTS ${spider}_clean" \\`,
            `    -c "CREATE TABLE ${spider}_clean (data jsonb)" \\`,
            `    -c "\\copy ${spider}_clean (data) FROM stdin CSV QUOTE e'\\x01' DELIMITER e'\\x02'" \\`,
            `    -c "CREATE INDEX idx_${spider}_clean ON ${spider}_clean (cast(data->>'date' as text))" \\`,
            '    -c "END" \\',
            `    < ${scratch}/${spider}.out.jsonl`,
            "",
            `${psql} -q \\`,
            '    -c "BEGIN" \\',
            `    -c "DROP TABLE IF EXISTS ${spider}_result" \\`,
            `    -f ${p.cardinalResultSql} \\`,
            `    -c "\\copy ${spider}_result (ocid, subject, code, result, buyer_id, procuring_entity_id, tenderer_id, created_at) FROM stdin DELIMITER ',' CSV HEADER" \\`,
            '    -c "END" \\',
            `    < ${scratch}/${spider}.csv`,
        );
    }
    return lines.join("\n") + "\n";
}

export function databaseUrl(database: string): string {
    return `postgresql://${database}@localhost:5432/${database}`;
}

/**
 * bi/sql/<spider>_result.sql, as Salt renders salt/kingfisher/collect/files/sql/result.sql with the
 * crawl's spider and users: the result table, and SELECT on it (only on it) for each user.
 */
export function renderCardinalResultSql(crawl: Crawl): string {
    return [
        `CREATE TABLE IF NOT EXISTS ${crawl.spider}_result (`,
        "    id serial PRIMARY KEY, -- an auto-incrementing ID that has no semantics",
        "    ocid text, -- matches /ocid in the compiled release JSON",
        "    -- the indicator's scope, one of OCID, Buyer, ProcuringEntity, Tenderer",
        "    subject text,",
        "    code text, -- the indicator's code",
        "    result numeric, -- an individual indicator result",
        "    buyer_id text, -- matches /buyer/id in the JSON",
        "    procuring_entity_id text, -- matches /tender/procuringEntity/id in the JSON",
        "    tenderer_id text, -- matches /bids/details[]/tenderers[]/id in the JSON",
        "    created_at timestamp without time zone -- the time when this row was added",
        ");",
        ...crawl.users.map((u) => `    GRANT SELECT ON ${crawl.spider}_result TO ${u};`),
    ].join("\n") + "\n";
}

/**
 * bi/settings/<spider>.ini: Salt copies salt/kingfisher/collect/files/cardinal/<spider>.ini as it
 * is, so the program writes `cardinal_settings` as it is (config.ts requires it with cardinal).
 */
export function renderCardinalSettings(crawl: Crawl): string {
    return crawl.cardinal_settings ?? "";
}

export class IncrementalCrawls extends pulumi.ComponentResource {
    readonly crontab: pulumi.Output<string>;

    constructor(name: string, args: IncrementalCrawlsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:incremental:IncrementalCrawls", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const { newMain, user, home } = args;
        const after = { parent: this, dependsOn: [...inherited, ...args.after] };
        const sentryDsn = args.sentryDsn;
        if (args.crawls.length > 0 && sentryDsn === undefined) throw new Error("incremental.sentryDsn is required with crawls (config.ts checks it)");
        const files = args.crawls.flatMap((crawl) => {
            const id = `${name}-${crawl.identifier.toLowerCase()}`;
            const p = crawlPaths(crawl, home);
            const content = renderCrawlScript(crawl, { home, database: args.database, proxyUrl: args.proxyUrl, sentryDsn: sentryDsn ?? "" });
            // The script holds the Sentry DSN, as Salt's does: its content is a secret (stdin).
            const installed = [managedFile(newMain, id, { path: p.script, owner: user, mode: "0755", shellScript: true, secret: true, content }, after)];
            if (crawl.cardinal) {
                // Earlier versions also wrote bin/<spider>.cardinal.sh (resource <id>-cardinal); the
                // cardinal steps are in bin/<spider>.sh now, as in Salt's, so that resource is gone
                // and the next `up` deletes it with its file.
                installed.push(
                    // bi/scratch is where the script works (incremental.sls makes it with the others).
                    managedFile(newMain, `${id}-cardinal-settings`, { path: p.cardinalSettings, owner: user, mode: "0644", content: renderCardinalSettings(crawl), alsoDirs: [`${home}/bi`, p.cardinalScratch] }, after),
                    managedFile(newMain, `${id}-cardinal-result-sql`, { path: p.cardinalResultSql, owner: user, mode: "0644", content: renderCardinalResultSql(crawl), alsoDirs: [`${home}/bi`] }, after),
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
     * Read access as Salt's result.sql gives it: SELECT on <spider>_result, and only that, for the
     * crawl's `users` when it is a cardinal crawl. The crawl script grants it again each time it
     * rebuilds the table (result.sql); this step grants it at once on the table the copy brought,
     * and revokes what it granted from a role that leaves the list. The roles it granted are kept in
     * a file on the server, so grants made by others are left alone. Earlier versions also granted
     * the spider's table and <spider>_clean, and kept their roles in another file (`legacy`): those
     * grants, which Salt never makes, are revoked, and that file goes.
     */
    private readAccess(id: string, crawl: Crawl, args: IncrementalCrawlsArgs, opts: pulumi.CustomResourceOptions) {
        const host = args.newMain;
        const dir = `${host.settings.stateDir}/grants`;
        const legacy = `${dir}/${args.database}.${crawl.spider}`;
        const state = `${dir}/${args.database}.${crawl.spider}_result`;
        const result = `${crawl.spider}_result`;
        const users = grantedTables(crawl).length > 0 ? crawl.users : [];
        const psql = sh`runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -d ${args.database}`;
        const revokeSql = (roles: string, tables: string[], keep: string[]) =>
            `SELECT format('REVOKE SELECT ON %I FROM %I', c.relname, r) FROM pg_class c, unnest(string_to_array(${roles}, ' ')) r WHERE r <> ALL (ARRAY[${sqlList(keep)}]::text[]) AND EXISTS (SELECT FROM pg_roles WHERE rolname = r) AND c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname IN (${sqlList(tables)}) ORDER BY 1 \\gexec`;
        const revoke = (keep: string[]) => [
            revokeSql(":'legacy'", [crawl.spider, `${crawl.spider}_clean`], []),
            revokeSql(":'legacy' || ' ' || :'previous'", [result], keep),
        ];
        const owner = `${id}-read-access`;
        const read = script(sh`previous=$(cat ${state} 2>/dev/null || true) legacy=$(cat ${legacy} 2>/dev/null || true)`);
        // The crawl is named by its identifier, not its index: removing another crawl must not
        // change this one's command.
        const converge = script(
            sh`install -d -m 0700 ${dir}`,
            sh`missing=$(${psql} -c ${`SELECT string_agg(u, ' ') FROM unnest(ARRAY[${sqlList(users)}]::text[]) u WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = u)`})
if [ -n "$missing" ]; then echo ${`${host.hostname}: PostgreSQL role(s) missing:`} "$missing"${`; create them, or remove them from the users of crawl ${crawl.identifier} (data-support:incremental.crawls)`} >&2; exit 1; fi`,
            read,
            sh`printf '%s\\n' ${revoke(users)} ${grantSql([result], users)} | ${psql} -v previous="$previous" -v legacy="$legacy" >/dev/null`,
            sh`printf '%s' ${users.join(" ")} > ${state}; rm -f ${legacy} ${`${legacy}.owner`}`,
            sh`printf '%s\\n' ${owner} > ${`${state}.owner`}`,
            sh`echo ${`${result}: read access for ${users.length > 0 ? users.join(", ") : "no role"}`}`,
        );
        const revokeAll = script(
            // A crawl renamed (same spider, another identifier): the new one owns the grants now.
            sh`if [ "$(cat ${`${state}.owner`} 2>/dev/null || cat ${`${legacy}.owner`} 2>/dev/null || echo ${owner})" != ${owner} ]; then echo ${`${result}: read access kept, managed by another crawl`}; exit 0; fi`,
            read,
            sh`printf '%s\\n' ${revoke([])} | ${psql} -v previous="$previous" -v legacy="$legacy" >/dev/null`,
            sh`rm -f ${state} ${legacy} ${`${state}.owner`} ${`${legacy}.owner`}`,
        );
        return host.command(`${id}-read-access`, { create: converge, update: converge, delete: revokeAll }, opts);
    }
}
