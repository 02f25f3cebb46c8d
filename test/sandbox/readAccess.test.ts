// A crawl's read access where it runs (IncrementalCrawls, `<crawl>-read-access`): the roles it
// checks for, the statements it feeds psql (the legacy grants revoked, the roles that left revoked,
// the result granted), the files that record what it granted and which crawl owns them, and its
// removal. `psql` is a recording stand-in (no PostgreSQL runs in the sandbox); the statements run
// against the real PostgreSQL 15 of the test hosts in test/e2e/crawls.test.ts and
// configEdits.test.ts. Expected values written out.
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig } from "../support/fixtures";
import { canSandbox, POSTGRES_USERS, runInSandbox } from "./sandbox";
import { commandOf, programCommands, type ProgramCommand } from "./scripts";

const skip = canSandbox() || undefined;
const NAME = "data-support-crawls-dominican_republic-read-access";
const GRANTS = "/var/lib/data-support/grants";
const STATE = `${GRANTS}/kingfisher_collect.dominican_republic_api_result`;
// What an earlier version kept: the roles it granted the raw table and _clean, and its owner.
const LEGACY = `${GRANTS}/kingfisher_collect.dominican_republic_api`;

// The statements, as psql reads them from the pipe.
const REVOKE_LEGACY = String.raw`SELECT format('REVOKE SELECT ON %I FROM %I', c.relname, r) FROM pg_class c, unnest(string_to_array(:'legacy', ' ')) r WHERE r <> ALL (ARRAY[]::text[]) AND EXISTS (SELECT FROM pg_roles WHERE rolname = r) AND c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname IN ('dominican_republic_api', 'dominican_republic_api_clean') ORDER BY 1 \gexec`;
const REVOKE_RESULT_KEEPING_USERS = String.raw`SELECT format('REVOKE SELECT ON %I FROM %I', c.relname, r) FROM pg_class c, unnest(string_to_array(:'legacy' || ' ' || :'previous', ' ')) r WHERE r <> ALL (ARRAY['dgcp', 'bi']::text[]) AND EXISTS (SELECT FROM pg_roles WHERE rolname = r) AND c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname IN ('dominican_republic_api_result') ORDER BY 1 \gexec`;
const REVOKE_RESULT_ALL = String.raw`SELECT format('REVOKE SELECT ON %I FROM %I', c.relname, r) FROM pg_class c, unnest(string_to_array(:'legacy' || ' ' || :'previous', ' ')) r WHERE r <> ALL (ARRAY[]::text[]) AND EXISTS (SELECT FROM pg_roles WHERE rolname = r) AND c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname IN ('dominican_republic_api_result') ORDER BY 1 \gexec`;
const GRANT_USERS = String.raw`SELECT format('GRANT SELECT ON %I TO %I', c.relname, r) FROM pg_class c, unnest(ARRAY['dgcp', 'bi']::text[]) r WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname IN ('dominican_republic_api_result') ORDER BY 1 \gexec`;
const GRANT_NONE = String.raw`SELECT format('GRANT SELECT ON %I TO %I', c.relname, r) FROM pg_class c, unnest(ARRAY[]::text[]) r WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname IN ('dominican_republic_api_result') ORDER BY 1 \gexec`;
// The calls psql gets: the check for missing roles, then the statements with what was recorded.
const PSQL = "postgres@/: psql -X -q -At -v ON_ERROR_STOP=1 -d kingfisher_collect";
const MISSING_USERS = `${PSQL} -c SELECT string_agg(u, ' ') FROM unnest(ARRAY['dgcp', 'bi']::text[]) u WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = u)`;

let cardinal: ProgramCommand;
let plain: ProgramCommand;
before(async () => {
    if (skip) return;
    const cfg = mainConfig();
    cfg.incremental.crawls[0] = { ...cfg.incremental.crawls[0], cardinal: true, cardinal_settings: "[defaults]\n", users: ["dgcp", "bi"] };
    cardinal = commandOf(await programCommands(cfg), NAME);
    // The fixture's crawl as it is: no cardinal, users ["dgcp"].
    plain = commandOf(await programCommands(mainConfig()), NAME);
});

const show = { script: `cd ${GRANTS} && for f in *; do printf '%s: %s\\n' "$f" "$(cat "$f")"; done` };

function run(steps: { script: string }[], files: Record<string, string>, psql = "") {
    return runInSandbox([...steps, show], { users: POSTGRES_USERS, files, psql });
}

test("a cardinal crawl: the legacy grants and the roles that left are revoked, its users granted, the record rewritten", { skip }, () => {
    const result = run([{ script: cardinal.create }], {
        [STATE]: "dgcp old",
        [LEGACY]: "dgcp gone",
        [`${LEGACY}.owner`]: `${NAME}\n`,
    });
    assert.equal(result.steps[0].code, 0, result.steps[0].stderr);
    assert.equal(result.steps[0].stdout, "dominican_republic_api_result: read access for dgcp, bi\n");
    assert.deepEqual(result.calls, [MISSING_USERS, `${PSQL} -v previous=dgcp old -v legacy=dgcp gone`]);
    assert.deepEqual(result.psqlInput, [`${REVOKE_LEGACY}\n${REVOKE_RESULT_KEEPING_USERS}\n${GRANT_USERS}\n`]);
    // The legacy record and its owner are gone; the roles granted now and the owner recorded.
    assert.equal(result.steps[1].stdout, `kingfisher_collect.dominican_republic_api_result: dgcp bi\nkingfisher_collect.dominican_republic_api_result.owner: ${NAME}\n`);
});

test("a role missing: one error naming the host, the roles and the config key; nothing granted or recorded", { skip }, () => {
    const result = run([{ script: cardinal.create }], { [STATE]: "dgcp" }, "bi\n");
    assert.equal(result.steps[0].code, 1);
    assert.equal(
        result.steps[0].stderr,
        "ocp23.open-contracting.org: PostgreSQL role(s) missing: bi; create them, or remove them from the users of crawl DOMINICAN_REPUBLIC (data-support:incremental.crawls)\n",
    );
    assert.deepEqual(result.calls, [MISSING_USERS]);
    assert.deepEqual(result.psqlInput, []);
    assert.equal(result.steps[1].stdout, "kingfisher_collect.dominican_republic_api_result: dgcp\n");
});

test("a crawl without cardinal: its users get nothing (Salt's result.sql is cardinal's); what was granted is revoked", { skip }, () => {
    // Cardinal turned off: the record holds the roles granted while it was on.
    const result = run([{ script: plain.create }], { [STATE]: "dgcp", [`${STATE}.owner`]: `${NAME}\n` });
    assert.equal(result.steps[0].code, 0, result.steps[0].stderr);
    assert.equal(result.steps[0].stdout, "dominican_republic_api_result: read access for no role\n");
    assert.deepEqual(result.calls, [`${PSQL} -c SELECT string_agg(u, ' ') FROM unnest(ARRAY[]::text[]) u WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = u)`, `${PSQL} -v previous=dgcp -v legacy=`]);
    assert.deepEqual(result.psqlInput, [`${REVOKE_LEGACY}\n${REVOKE_RESULT_ALL}\n${GRANT_NONE}\n`]);
    assert.equal(result.steps[1].stdout, `kingfisher_collect.dominican_republic_api_result: \nkingfisher_collect.dominican_republic_api_result.owner: ${NAME}\n`);
});

test("delete: every role it granted is revoked and its records go; a second delete is harmless", { skip }, () => {
    const result = run([{ script: cardinal.delete! }, { script: cardinal.delete! }], { [STATE]: "dgcp bi", [`${STATE}.owner`]: `${NAME}\n` });
    assert.equal(result.steps[0].code, 0, result.steps[0].stderr);
    assert.equal(result.steps[1].code, 0, result.steps[1].stderr);
    assert.deepEqual(result.calls, [`${PSQL} -v previous=dgcp bi -v legacy=`, `${PSQL} -v previous= -v legacy=`]);
    assert.deepEqual(result.psqlInput, [`${REVOKE_LEGACY}\n${REVOKE_RESULT_ALL}\n`, `${REVOKE_LEGACY}\n${REVOKE_RESULT_ALL}\n`]);
    // Nothing left but the directory (the show step's glob matches nothing).
    assert.equal(result.steps[2].stdout, "*: \n");
});

test("delete when another crawl owns the grants now (an identifier renamed): nothing revoked, the records kept", { skip }, () => {
    const other = "data-support-crawls-dr-read-access";
    const result = run([{ script: cardinal.delete! }], { [STATE]: "dgcp bi", [`${STATE}.owner`]: `${other}\n` });
    assert.equal(result.steps[0].code, 0, result.steps[0].stderr);
    assert.equal(result.steps[0].stdout, "dominican_republic_api_result: read access kept, managed by another crawl\n");
    assert.deepEqual(result.calls, []);
    assert.deepEqual(result.psqlInput, []);
    assert.equal(result.steps[1].stdout, `kingfisher_collect.dominican_republic_api_result: dgcp bi\nkingfisher_collect.dominican_republic_api_result.owner: ${other}\n`);
});
