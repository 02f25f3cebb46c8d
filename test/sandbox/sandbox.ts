// A throwaway environment for the shell text the program sends to servers: the script runs as root
// in private mount, PID and network namespaces (unshare), with tmpfs over every path it may touch,
// users added to private copies of /etc/passwd, /etc/group and /etc/shadow (bind-mounted over the
// real ones), and stand-ins on PATH only where nothing real can run here (systemctl, service when
// asked, docker, scrapyd-deploy). Real cron `crontab`, flock, ssh-keygen, nft (in the private
// network namespace) and tinyproxy do the rest. When the steps end, the namespaces end with
// everything they started; nothing is left on this machine but the work directory, removed too.
//
// Needs root (CI runs as root); `canSandbox()` says why not when it cannot run.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface SandboxUser {
    name: string;
    uid: number;
    home: string;
}

export interface Step {
    /** The shell text, run by bash as the remote command is (root's login shell on the servers). */
    script: string;
    /** What arrives on stdin; none when undefined (stdin is /dev/null). */
    stdin?: string;
    /**
     * Stdin is an earlier step's stdout, as the provider hands one command's stdout to another:
     * with its one final newline removed (pulumi-command 1.2.1, provider/pkg/provider/remote/
     * commandOutputs.go: strings.TrimSuffix(stdout, "\n")), unless `keepNewline`.
     */
    stdinFrom?: { step: number; keepNewline?: boolean };
}

export interface StepResult {
    code: number;
    stdout: string;
    stderr: string;
}

export interface SandboxOptions {
    users?: SandboxUser[];
    /** More directories that get an empty tmpfs. */
    tmpfs?: string[];
    /** Files to create before the steps: path -> content (parents are created; mode 0644, root). */
    files?: Record<string, string>;
    /** `service` is a recording stand-in that fails (exit 1) instead of starting the real service. */
    serviceFails?: boolean;
    /** A private /etc/hosts: what names resolve to in the sandbox (it has no network, so no DNS). */
    hosts?: string;
    /**
     * `psql` is a recording stand-in that prints this text (no PostgreSQL runs in the sandbox; the
     * statements themselves run against the real PostgreSQL of the test hosts, test/e2e). A list:
     * the nth call prints the nth text, the last for any call after it. What a pipe feeds it is
     * kept too (`psqlInput`).
     */
    psql?: string | string[];
    /**
     * Commands replaced by a recording stand-in (say pg_dump and psql, where no PostgreSQL runs):
     * it prints on its stdout who ran it, each argument on a line, where its stdin comes from (a
     * file's path, /dev/null, or "a pipe") and what it holds.
     */
    recorders?: string[];
    /** The system's time zone in the sandbox (a zone of /usr/share/zoneinfo over /etc/localtime). */
    timeZone?: string;
}

export interface SandboxRun {
    steps: StepResult[];
    /** Stand-in invocations in order: `<name> <args...>` as `user@cwd: name args`. */
    calls: string[];
    /** What each psql stand-in call read from a pipe (`psql` option), in order: SQL fed to it. */
    psqlInput: string[];
}

/**
 * The postgres user, for steps that run `runuser -u postgres`: none to add where PostgreSQL's
 * packages (installed by .ci/run) have added it to the machine's /etc/passwd, which the sandbox copies.
 */
export const POSTGRES_USERS: SandboxUser[] = spawnSync("getent", ["passwd", "postgres"]).status === 0 ? [] : [{ name: "postgres", uid: 101, home: "/var/lib/postgresql" }];

/** Empty when the sandbox can run here; else why not (for `skip`). */
export function canSandbox(): string {
    if (process.platform !== "linux") return "the sandbox needs Linux namespaces";
    if (process.getuid?.() !== 0) return "the sandbox needs root (unshare, mount); CI runs as root";
    for (const tool of ["unshare", "crontab", "flock", "nft", "tinyproxy", "ss", "ssh-keygen", "runuser", "ip", "curl", "dash"]) {
        if (spawnSync("sh", ["-c", `command -v ${tool}`], { env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" } }).status !== 0) {
            return `${tool} is not installed (see .ci/run)`;
        }
    }
    return "";
}

/** Paths every run gets a tmpfs over: what the program's scripts write, and where stand-ins live. */
// /etc/default: the tinyproxy guard's hook goes into /etc/default/tinyproxy where systemd is absent.
// /usr/local/lib: the transfer key's dispatcher (the test hosts share the machine's, so nothing of a
// sandbox may land there).
const DEFAULT_TMPFS = ["/home", "/var/lib", "/var/spool/cron", "/var/log", "/etc/cron.d", "/etc/default", "/etc/tinyproxy", "/etc/systemd/system", "/run", "/srv", "/usr/local/bin", "/usr/local/lib", "/usr/local/sbin"];

// Stand-ins, named stand-ins: they record how they were called (user, directory, argv) and do
// nothing else. `service tinyproxy restart` runs the real tinyproxy unless told to fail.
const RECORDER = `#!/bin/sh
printf '%s@%s: %s\\n' "$(id -un)" "$PWD" "$(basename "$0") $*" >> __CALLS__
`;
// The recorders (options.recorders): who ran them, each argument, and their stdin, on their stdout.
const RECORDING = `#!/bin/bash
printf '%s@%s: %s\\n' "$(id -un)" "$PWD" "$(basename "$0") $*" >> __CALLS__
printf 'stand-in %s as %s\\n' "$(basename "$0")" "$(id -un)"
for arg in "$@"; do printf 'arg: %s\\n' "$arg"; done
from=$(readlink /proc/$$/fd/0); case "$from" in pipe:*) from="a pipe" ;; esac
printf 'stdin from %s:\\n' "$from"
cat
`;
const SERVICE = `#!/bin/sh
printf '%s@%s: %s\\n' "$(id -un)" "$PWD" "service $*" >> __CALLS__
if [ -e __WORK__/service-fails ]; then echo "service stand-in: told to fail" >&2; exit 1; fi
if [ "$1 $2" = "tinyproxy restart" ]; then
  if [ -e /run/tinyproxy/tinyproxy.pid ]; then kill "$(cat /run/tinyproxy/tinyproxy.pid)" 2>/dev/null || true; while [ -e /run/tinyproxy/tinyproxy.pid ] && kill -0 "$(cat /run/tinyproxy/tinyproxy.pid)" 2>/dev/null; do sleep 0.05; done; fi
  install -d -o tinyproxy -g tinyproxy /run/tinyproxy /var/log/tinyproxy
  exec /usr/bin/tinyproxy -c /etc/tinyproxy/tinyproxy.conf
fi
`;

/** Runs `steps` one after another in one sandbox; each step's exit code and output are kept. */
export function runInSandbox(steps: Step[], options: SandboxOptions = {}): SandboxRun {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "ds-sandbox-"));
    fs.chmodSync(work, 0o755);
    try {
        const calls = path.join(work, "calls.log");
        fs.writeFileSync(calls, "", { mode: 0o666 });
        fs.chmodSync(calls, 0o666);
        // What psql read from a pipe, by call number; psql runs as postgres too (runuser).
        const psqlIn = path.join(work, "psql-in");
        fs.mkdirSync(psqlIn, { mode: 0o777 });
        fs.chmodSync(psqlIn, 0o777);
        if (options.serviceFails) fs.writeFileSync(path.join(work, "service-fails"), "");
        const standIns = path.join(work, "stand-ins");
        fs.mkdirSync(standIns);
        const put = (name: string, text: string) => fs.writeFileSync(path.join(standIns, name), text.replaceAll("__CALLS__", calls).replaceAll("__WORK__", work), { mode: 0o755 });
        for (const name of ["systemctl", "docker", "systemd-run"]) put(name, RECORDER);
        put("service", SERVICE);
        for (const name of options.recorders ?? []) put(name, RECORDING);
        if (options.psql !== undefined) {
            const answers = typeof options.psql === "string" ? [options.psql] : options.psql;
            answers.forEach((answer, i) => fs.writeFileSync(path.join(work, `psql.out.${i}`), answer));
            // The calls so far: the number of the next one (anyone may write it, as psql-in).
            fs.writeFileSync(path.join(work, "psql.count"), "0");
            fs.chmodSync(path.join(work, "psql.count"), 0o666);
            // Only a pipe is read: the statements a script feeds psql (`printf ... | psql`); a file
            // or /dev/null on stdin is the step's own.
            put(
                "psql",
                `${RECORDER}n=$(cat __WORK__/psql.count); echo $((n + 1)) > __WORK__/psql.count
case "$(readlink /proc/$$/fd/0)" in pipe:*) cat > "__WORK__/psql-in/$n" ;; esac
if [ "$n" -ge ${answers.length} ]; then n=${answers.length - 1}; fi
cat "__WORK__/psql.out.$n"
`,
            );
        }
        steps.forEach((step, i) => {
            fs.writeFileSync(path.join(work, `step${i}.sh`), step.script);
            if (step.stdin !== undefined) fs.writeFileSync(path.join(work, `step${i}.in`), step.stdin);
        });
        if (options.hosts !== undefined) fs.writeFileSync(path.join(work, "hosts"), options.hosts);
        const files = path.join(work, "files");
        fs.mkdirSync(files);
        const fileLines = Object.entries(options.files ?? {}).map(([target, content], i) => {
            fs.writeFileSync(path.join(files, String(i)), content);
            return `mkdir -p "$(dirname '${target}')"; cp ${files}/${i} '${target}'`;
        });
        const users = options.users ?? [];
        const tmpfs = [...DEFAULT_TMPFS, ...(options.tmpfs ?? [])];
        const driver = [
            "set -eu",
            // No mount made here may reach the real root (unshare --mount makes them private too).
            "mount --make-rprivate /",
            // A mount point missing here (say /etc/systemd/system on a machine without systemd) is
            // made empty first: the one trace a run leaves outside the work directory.
            ...tmpfs.map((p) => `[ -d '${p}' ] || mkdir -p '${p}'; mount -t tmpfs -o mode=0755 sandbox '${p}'`),
            `cp ${standIns}/* /usr/local/bin/`,
            ...["passwd", "group", "shadow"].map((f) => `cp /etc/${f} ${work}/${f}`),
            ...users.flatMap((u) => [
                `echo '${u.name}:x:${u.uid}:${u.uid}::${u.home}:/bin/bash' >> ${work}/passwd`,
                `echo '${u.name}:x:${u.uid}:' >> ${work}/group`,
                `echo '${u.name}:*:20000:0:99999:7:::' >> ${work}/shadow`,
            ]),
            ...["passwd", "group", "shadow"].map((f) => `mount --bind ${work}/${f} /etc/${f}`),
            ...(options.hosts === undefined ? [] : [`mount --bind ${work}/hosts /etc/hosts`]),
            // /etc/localtime is a symlink on Debian: the bind goes over the file it points to, in this namespace only.
            ...(options.timeZone === undefined ? [] : [`mount --bind /usr/share/zoneinfo/${options.timeZone} /etc/localtime`]),
            ...users.map((u) => `mkdir -p '${u.home}' && chown ${u.uid}:${u.uid} '${u.home}'`),
            "mkdir -p /var/spool/cron/crontabs && chown root:crontab /var/spool/cron/crontabs && chmod 1730 /var/spool/cron/crontabs",
            "mkdir -p /var/lib/postgresql && chown postgres:postgres /var/lib/postgresql",
            ...fileLines,
            "ip link set lo up",
            "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8",
            "cd /",
            "set +e",
            ...steps.map((step, i) => {
                const from = step.stdinFrom;
                const feed = from ? (from.keepNewline ? `cp ${work}/step${from.step}.out ${work}/step${i}.in; ` : `sed -z '$ s/\\n$//' ${work}/step${from.step}.out > ${work}/step${i}.in; `) : "";
                const input = step.stdin === undefined && !from ? "/dev/null" : `${work}/step${i}.in`;
                return `${feed}bash -c "$(cat ${work}/step${i}.sh)" < ${input} > ${work}/step${i}.out 2> ${work}/step${i}.err; echo $? > ${work}/step${i}.code`;
            }),
        ].join("\n");
        fs.writeFileSync(path.join(work, "driver.sh"), driver);
        const result = spawnSync("unshare", ["--mount", "--pid", "--net", "--fork", "--mount-proc", "bash", path.join(work, "driver.sh")], { encoding: "utf8", timeout: 120_000 });
        if (result.status !== 0) throw new Error(`sandbox failed (${result.status ?? result.signal}): ${result.stderr}`);
        const read = (name: string) => fs.readFileSync(path.join(work, name), "utf8");
        return {
            steps: steps.map((_, i) => ({ code: Number(read(`step${i}.code`)), stdout: read(`step${i}.out`), stderr: read(`step${i}.err`) })),
            calls: read("calls.log").split("\n").filter(Boolean),
            psqlInput: fs.readdirSync(psqlIn).sort((a, b) => Number(a) - Number(b)).map((n) => read(`psql-in/${n}`)),
        };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}
