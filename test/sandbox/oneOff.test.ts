// One-off steps where they run: each records its completion on the server and holds a lock while
// it runs, so it runs once; one that failed half-way runs again from its start; one still
// running from an earlier run is waited for. Steps 4 and 5 (docker apps, spiders) as examples,
// with `docker` and `scrapyd-deploy` as recording stand-ins.
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { mainConfig } from "../support/fixtures";
import { canSandbox, runInSandbox, type SandboxUser } from "./sandbox";
import { commandOf, programCommands, type ProgramCommand } from "./scripts";

const skip = canSandbox() || undefined;
const DEPLOYER: SandboxUser = { name: "deployer", uid: 1005, home: "/home/deployer" };
const INCREMENTAL: SandboxUser = { name: "incremental", uid: 1010, home: "/home/incremental" };
const DIR = "/var/lib/data-support/ocp04-to-ocp23";
const DATE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

let commands: Map<string, ProgramCommand>;
before(async () => {
    if (skip) return;
    commands = await programCommands(mainConfig({ docker: { deployDir: "/srv/deploy" } }));
});

test("docker apps: migrations then pull and up, as deployer in each app's directory; each step once", { skip }, () => {
    const names = [
        "data-support-docker-migrate-kingfisher-process",
        "data-support-docker-migrate-pelican-frontend",
        "data-support-docker-start-kingfisher-process",
        "data-support-docker-start-pelican-backend",
        "data-support-docker-start-pelican-frontend",
    ];
    const scripts = names.map((n) => ({ script: commandOf(commands, n).create }));
    const run = runInSandbox([...scripts, ...scripts, { script: `ls ${DIR}` }], {
        users: [DEPLOYER],
        files: Object.fromEntries(["kingfisher-process", "pelican-backend", "pelican-frontend"].map((app) => [`/srv/deploy/${app}/docker-compose.yaml`, "services: {}\n"])),
    });
    for (const step of run.steps) assert.equal(step.code, 0, step.stderr);
    assert.deepEqual(run.calls, [
        "deployer@/srv/deploy/kingfisher-process: docker compose run --rm --name django-migrate cron python manage.py migrate",
        "deployer@/srv/deploy/pelican-frontend: docker compose run --rm --name django-migrate web python manage.py migrate",
        "deployer@/srv/deploy/kingfisher-process: docker compose pull",
        "deployer@/srv/deploy/kingfisher-process: docker compose up -d",
        "deployer@/srv/deploy/pelican-backend: docker compose pull",
        "deployer@/srv/deploy/pelican-backend: docker compose up -d",
        "deployer@/srv/deploy/pelican-frontend: docker compose pull",
        "deployer@/srv/deploy/pelican-frontend: docker compose up -d",
    ]);
    assert.equal(run.steps[0].stdout, "migrate-kingfisher-process: done on ocp23.open-contracting.org\n");
    const again = run.steps[5].stdout.trimEnd().split(" ");
    assert.equal(again.slice(0, -1).join(" "), "migrate-kingfisher-process: already done on ocp23.open-contracting.org at");
    assert.match(again.at(-1) ?? "", DATE);
    assert.equal(
        run.steps[10].stdout,
        [
            "migrate-kingfisher-process.done",
            "migrate-kingfisher-process.done.lock",
            "migrate-pelican-frontend.done",
            "migrate-pelican-frontend.done.lock",
            "start-kingfisher-process.done",
            "start-kingfisher-process.done.lock",
            "start-pelican-backend.done",
            "start-pelican-backend.done.lock",
            "start-pelican-frontend.done",
            "start-pelican-frontend.done.lock",
            "",
        ].join("\n"),
    );
});

test("a one-off step that failed leaves no marker and runs again from its start on the next run", { skip }, () => {
    const deploy = commandOf(commands, "data-support-spiders-deploy");
    const run = runInSandbox(
        [
            // No checkout yet: `cd` fails inside the step.
            { script: deploy.create },
            { script: `ls ${DIR}` },
            // The checkout arrives, with a recording stand-in for scrapyd-deploy.
            { script: "install -d -o incremental /home/incremental/kingfisher-collect/.ve/bin && install -m 0755 /srv/scrapyd-deploy /home/incremental/kingfisher-collect/.ve/bin/" },
            { script: deploy.create },
            { script: `cat /home/incremental/deployed; cat ${DIR}/deploy-spiders.done` },
        ],
        { users: [INCREMENTAL], files: { "/srv/scrapyd-deploy": '#!/bin/sh\necho "$(id -un)@$PWD: scrapyd-deploy $*" > /home/incremental/deployed\n' } },
    );
    assert.notEqual(run.steps[0].code, 0);
    assert.match(run.steps[0].stderr, /kingfisher-collect: No such file or directory/);
    assert.equal(run.steps[1].stdout, "deploy-spiders.done.lock\n");
    assert.equal(run.steps[3].code, 0, run.steps[3].stderr);
    assert.equal(run.steps[3].stdout, "deploy-spiders: done on ocp23.open-contracting.org\n");
    const [deployed, marker] = run.steps[4].stdout.trimEnd().split("\n");
    assert.equal(deployed, "incremental@/home/incremental/kingfisher-collect: scrapyd-deploy kingfisher");
    assert.match(marker, DATE);
});

test("a one-off step still running from an earlier run is waited for, then not run again", { skip }, () => {
    const start = commandOf(commands, "data-support-docker-start-pelican-backend");
    // The earlier run holds the lock (as its shell would) and finishes while this one waits.
    const run = runInSandbox(
        [
            { script: `install -d -m 0700 ${DIR}; mkfifo /run/release; (exec 9> ${DIR}/start-pelican-backend.done.lock; flock 9; read _ < /run/release; date -u +%Y-%m-%dT%H:%M:%SZ > ${DIR}/start-pelican-backend.done) & echo started` },
            {
                script: [
                    "cat > /run/step.sh",
                    "bash /run/step.sh > /run/out 2> /run/err & step=$!",
                    // Wait until the step says it waits, then look: nothing ran, no marker yet.
                    "for _ in $(seq 600); do grep -q waiting /run/err && break; sleep 0.1; done",
                    `echo "waiting: $(cat /run/err)"; ls ${DIR}`,
                    "echo go > /run/release; wait $step; echo \"exit $?\"; cat /run/out",
                ].join("\n"),
                stdin: start.create,
            },
        ],
        { users: [DEPLOYER] },
    );
    assert.equal(run.steps[1].code, 0, run.steps[1].stderr);
    const lines = run.steps[1].stdout.trimEnd().split("\n");
    assert.equal(lines[0], "waiting: start-pelican-backend: still running on ocp23.open-contracting.org from an earlier run; waiting for it");
    assert.deepEqual(lines.slice(1, 2), ["start-pelican-backend.done.lock"]);
    assert.equal(lines[2], "exit 0");
    assert.match(lines[3], /^start-pelican-backend: already done on ocp23\.open-contracting\.org at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(run.calls, []);
});
