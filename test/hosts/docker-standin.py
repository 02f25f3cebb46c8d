#!/usr/bin/python3
"""docker-standin.py: a STAND-IN for the Docker CLI (no Docker engine runs on the test hosts).

Speaks the subset of the real `docker` command line that the data-support runbook uses:
`docker compose version` and `docker compose <run|pull|up|down|ps> ...`. Like the real one it
finds the Compose file in the working directory or its parents (compose.yaml, compose.yml,
docker-compose.yaml, docker-compose.yml), or takes `-f FILE`, and fails with
"no configuration file provided: not found" (exit 1) when there is none. Anything else is
refused with exit code 2. Every call, refused or not, is appended as one JSON line
{argv, cwd, user, uid, time, compose_file, exit} to /var/log/docker-standin.log; argv is the
arguments after `docker`.
"""
import datetime
import json
import os
import pwd
import sys

LOG = "/var/log/docker-standin.log"
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
COMPOSE_COMMANDS = {"run", "pull", "up", "down", "ps"}
# Compose's global options that take a value (the rest are flags).
VALUED_GLOBALS = {"-f", "--file", "-p", "--project-name", "--env-file", "--profile", "--project-directory", "--ansi", "--progress"}


def record(exit_code, compose_file=None):
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    entry = {
        "argv": sys.argv[1:],
        "cwd": cwd,
        "user": user,
        "uid": uid,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "compose_file": compose_file,
        "exit": exit_code,
    }
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def finish(code, message=None, compose_file=None):
    record(code, compose_file)
    if message:
        print(message, file=sys.stderr)
    sys.exit(code)


def find_compose_file(explicit):
    if explicit:
        path = os.path.abspath(explicit)
        return path if os.path.isfile(path) else None
    directory = os.getcwd()
    while True:
        for name in COMPOSE_NAMES:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def main():
    args = sys.argv[1:]
    if not args or args[0] != "compose":
        name = args[0] if args else ""
        finish(2, f"docker: '{name}' is not a docker command supported by the ds-testbed stand-in (only `docker compose ...`)")
    rest = args[1:]
    explicit = None
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        option = rest[i].split("=", 1)[0]
        if option in ("-f", "--file"):
            explicit = rest[i].split("=", 1)[1] if "=" in rest[i] else (rest[i + 1] if i + 1 < len(rest) else None)
        i += 1 if ("=" in rest[i] or option not in VALUED_GLOBALS) else 2
    command = rest[i] if i < len(rest) else None
    if command == "version":
        record(0)
        print("Docker Compose version v2.29.7 (ds-testbed stand-in)")
        sys.exit(0)
    if command not in COMPOSE_COMMANDS:
        finish(2, f"unknown docker command: \"compose {command or ''}\" (the ds-testbed stand-in accepts run, pull, up, down, ps, version)")
    compose_file = find_compose_file(explicit)
    if compose_file is None:
        finish(1, "no configuration file provided: not found")
    if command == "ps":
        print("NAME      IMAGE     COMMAND   SERVICE   CREATED   STATUS    PORTS")
    finish(0, compose_file=compose_file)


if __name__ == "__main__":
    main()
