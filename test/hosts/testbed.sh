#!/usr/bin/env bash
# Over 300 lines: one script brings the whole testbed up and down in order (namespaces, links, holders, provisioning); what each host holds is provision.sh.
# Test hosts ("testbed") for the data-support program: real servers on this machine.
#
# Each host is a network namespace (ds-<name>) with a veth to one bridge that lives in its own
# namespace (ds-lan), plus its own mount, UTS, IPC and PID namespaces. The PID namespace's init
# is a small reaper ("holder"): killing it ends every process of the host, which makes teardown
# exact, and `pkill`/`start-stop-daemon` inside a host only see that host's processes, as on a
# real server. Nothing is ever added to the root network namespace.
#
# Usage: testbed.sh up | down | exec HOST [--user USER] [--] CMD... | info | dns NAME HOST
set -euo pipefail

readonly STATE=/run/ds-testbed
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly PATH_IN_HOST=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH="$PATH_IN_HOST:$PATH"

readonly HOSTS=(operator old new docs replica outsider web)
declare -A HOSTNAME_OF=(
  [operator]=operator.test [old]=ocp04.open-contracting.org [new]=ocp23.open-contracting.org
  [docs]=ocp19.open-contracting.org [replica]=ocp24.open-contracting.org
  [outsider]=outsider.test [web]=web.test
)
declare -A OCTET=([operator]=2 [old]=4 [new]=23 [docs]=19 [replica]=24 [outsider]=66 [web]=80)
ipv4() { echo "198.51.100.${OCTET[$1]}"; }
ipv6() { echo "2001:db8:d5::${OCTET[$1]}"; }

# The name the DNS gate watches: the operator resolves it through its own /etc/hosts.
readonly COLLECT_NAME=collect.kingfisher.open-contracting.org

# Directories that are private to each host: mount point -> directory under the host's state.
readonly PRIVATE_DIRS=(
  /etc:etc /home:home /root:root /var/spool/cron:spool-cron /data:data
  /var/lib/postgresql:pglib /var/lib/rabbitmq:rabbitmq /var/log:log /tmp:tmp
  /var/lib/data-support:data-support
  /usr/local/lib/data-support:data-support-lib
)

die() { echo "testbed: $*" >&2; exit 1; }
log() { [[ -n "${DS_VERBOSE:-}" ]] && echo "testbed: $*" >&2 || true; }

POLL_WHO="testbed"
# shellcheck source=poll.sh
source "$HERE/poll.sh"

# ---------------------------------------------------------------------------------------------
# preflight

# binary -> Debian package that provides it
declare -A PACKAGE_OF=(
  [ip]=iproute2 [bridge]=iproute2 [unshare]=util-linux [nsenter]=util-linux [runuser]=util-linux
  [setsid]=util-linux [sshd]=openssh-server [ssh]=openssh-client [ssh-keygen]=openssh-client
  [ssh-agent]=openssh-client [ssh-add]=openssh-client [tinyproxy]=tinyproxy
  [rabbitmq-server]=rabbitmq-server [cron]=cron [crontab]=cron [rsync]=rsync
  [pg_createcluster]=postgresql-common [pg_ctlcluster]=postgresql-common
  [/usr/lib/postgresql/15/bin/postgres]=postgresql-15 [psql]=postgresql-client-15
  [pg_isready]=postgresql-client-15 [curl]=curl [openssl]=openssl [/usr/bin/python3]=python3
  [useradd]=passwd [usermod]=passwd [start-stop-daemon]=dpkg [service]=init-system-helpers
)

preflight() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (it creates namespaces and mounts)"
  local bin missing=()
  for bin in "${!PACKAGE_OF[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$bin]} (for $bin)")
  done
  if ((${#missing[@]})); then
    die "missing Debian packages: $(printf '%s\n' "${missing[@]}" | sort -u | paste -sd, -)." \
      "Install them with apt-get install."
  fi
}

# ---------------------------------------------------------------------------------------------
# down: safe to run at any point, also after a half-failed up.

holder_pid() { cat "$STATE/hosts/$1/pid" 2>/dev/null || true; }

down() {
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  local ns pids pid
  # Kill each host's PID-namespace init: the kernel then kills everything in that host.
  for pid in $(cat "$STATE"/hosts/*/pid 2>/dev/null || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Stragglers (e.g. from an earlier run whose state dir is gone): any process in our netns.
  for ns in $(ip netns list | awk '$1 ~ /^ds-/ {print $1}'); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
  done
  for ns in $(ip netns list | awk '$1 ~ /^ds-/ {print $1}'); do
    poll 100 "processes of $ns to exit" test -z "$(ip netns pids "$ns" 2>/dev/null)" || true
    ip netns delete "$ns" 2>/dev/null || true
  done
  # We never mount anything under the state dir in the root mount namespace; be sure anyway.
  if [[ -d "$STATE" ]]; then
    findmnt -rno TARGET | grep -F "$STATE" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    if [[ -f "$STATE/created-data-dir" ]]; then rmdir /data 2>/dev/null || true; fi
    if [[ -f "$STATE/created-data-support-dir" ]]; then rmdir /var/lib/data-support 2>/dev/null || true; fi
    if [[ -f "$STATE/created-data-support-lib-dir" ]]; then rmdir /usr/local/lib/data-support 2>/dev/null || true; fi
    rm -rf --one-file-system "$STATE"
  fi
}

# ---------------------------------------------------------------------------------------------
# network: one bridge in ds-lan, one veth per host; all inside namespaces.

setup_network() {
  ip netns add ds-lan
  # The bridge namespace needs no IPv6 of its own (no link-local chatter, no DAD).
  ip netns exec ds-lan sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n ds-lan link add br0 type bridge
  ip -n ds-lan link set br0 up
  local h
  for h in "${HOSTS[@]}"; do
    ip netns add "ds-$h"
    ip -n ds-lan link add "v-$h" type veth peer name eth0 netns "ds-$h"
    ip -n ds-lan link set "v-$h" master br0 up
    ip -n "ds-$h" link set lo up
    ip -n "ds-$h" addr add "$(ipv4 "$h")/24" dev eth0
    # nodad: the address is usable at once, so services can bind to it immediately.
    ip -n "ds-$h" addr add "$(ipv6 "$h")/64" dev eth0 nodad
    ip -n "ds-$h" link set eth0 up
  done
}

# ---------------------------------------------------------------------------------------------
# per-host filesystem

etc_hosts() {
  local h=$1 o
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
  printf 'ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n\n# ds-testbed hosts\n'
  for o in "${HOSTS[@]}"; do
    printf '%s\t%s %s %s\n' "$(ipv4 "$o")" "${HOSTNAME_OF[$o]}" "${HOSTNAME_OF[$o]%%.*}" "$o"
    printf '%s\t%s %s %s\n' "$(ipv6 "$o")" "${HOSTNAME_OF[$o]}" "${HOSTNAME_OF[$o]%%.*}" "$o"
  done
  if [[ $h == operator ]]; then
    # The DNS gate: `testbed.sh dns NAME HOST` rewrites these two lines.
    printf '\n# ds-testbed dns\n%s\t%s\n%s\t%s\n' "$(ipv4 old)" "$COLLECT_NAME" "$(ipv6 old)" "$COLLECT_NAME"
  fi
}

prepare_host_dirs() {
  local h=$1 H="$STATE/hosts/$1"
  mkdir -p "$H"/{home,data,data-support,data-support-lib,pglib,rabbitmq,run/ds-testbed,run/lock}
  # A copy of the machine's /etc, so users, sshd, cron.d, PostgreSQL and tinyproxy are per host.
  cp -a /etc "$H/etc"
  rm -f "$H"/etc/ssh/ssh_host_*
  rm -rf "$H/etc/postgresql/15/main" # the machine's own (stopped) cluster; hosts create theirs
  echo "${HOSTNAME_OF[$h]}" >"$H/etc/hostname"
  etc_hosts "$h" >"$H/etc/hosts"
  # The host's own copy of the CA bundle (OpenSSL's default, Python's ssl): the machine's is untouched.
  # (A bundle that is a link, not Debian's usual file, becomes a file of the host's first.)
  if [[ $h == old || $h == new ]]; then
    local bundle="$H/etc/ssl/certs/ca-certificates.crt"
    if [[ -L $bundle ]]; then cp --remove-destination "$(readlink -f "$bundle")" "$bundle"; fi
    install -d "${bundle%/*}" && cat "$STATE/tls/ca.crt" >>"$bundle"
  fi
  install -d -m 700 "$H/root" && cp /etc/skel/.bashrc /etc/skel/.profile "$H/root/"
  install -d -m 1777 "$H/tmp"
  chmod 1777 "$H/run/lock"
  chown postgres:postgres "$H/pglib"
  chown rabbitmq:rabbitmq "$H/rabbitmq"
  install -d -m 755 "$H/spool-cron" && install -d -o root -g crontab -m 1730 "$H/spool-cron/crontabs"
  # The directory tree of /var/log (owners matter: postgresql, rabbitmq, tinyproxy), no files.
  rsync -a --exclude=/journal -f'+ */' -f'- *' /var/log/ "$H/log/"
}

# ---------------------------------------------------------------------------------------------
# holders: the PID-1 of each host; it makes the private mounts, then only reaps children.

start_holder() {
  local h=$1 H="$STATE/hosts/$1" upid
  setsid nsenter --net="/run/netns/ds-$h" \
    unshare --mount --uts --ipc --pid --fork --mount-proc --propagation private \
    "$BASH" "$STATE/bin/testbed.sh" _holder "$h" </dev/null >"$H/holder.log" 2>&1 &
  upid=$!
  poll 100 "holder of $h" test -e "$H/ready" ||
    die "host $h did not start: $(cat "$H/holder.log")"
  # unshare forked the namespace's init; that child's pid (in our namespace) is what we enter.
  cat "/proc/$upid/task/$upid/children" | awk '{print $1}' >"$H/pid"
  [[ -s "$H/pid" ]] || die "host $h: no init process"
}

# Runs as PID 1 inside the new namespaces (called through `testbed.sh _holder HOST`).
holder_main() {
  local h=$1 H="$STATE/hosts/$1" pair
  hostname "${HOSTNAME_OF[$h]}"
  for pair in "${PRIVATE_DIRS[@]}"; do
    mount --bind "$H/${pair#*:}" "${pair%%:*}"
  done
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
  if [[ $h == old || $h == new ]]; then
    # The docker stand-in, first on PATH (/usr/local/bin). A tmpfs of this host's own: a fresh
    # Debian machine has no docker client there to bind over, and this machine's /usr/local/bin
    # (a docker client, links to PostgreSQL's binaries) is not what a Salt-built server has.
    mount -t tmpfs -o mode=755 tmpfs /usr/local/bin
    install -m 755 "$STATE/bin/docker-standin.py" /usr/local/bin/docker
    # The pgBackRest stand-in, where PostgreSQL's archive_command finds it: pg_ctlcluster starts
    # the server without PATH, so /bin/sh searches its default path, /usr/local/sbin first. A
    # tmpfs of this host's own (the machine's /usr/local/sbin is left alone).
    mount -t tmpfs -o mode=755 tmpfs /usr/local/sbin
    install -m 755 "$STATE/bin/pgbackrest-standin.py" /usr/local/sbin/pgbackrest
  fi
  # /run is private too, but the state dir stays visible at the same path inside every host
  # (agent socket, scrapyd jobs file), so bind it into the host's /run before mounting that.
  mount --bind "$STATE" "$H/run/ds-testbed"
  mount --rbind "$H/run" /run
  touch "/run/ds-testbed/hosts/$h/ready"
  exec /usr/bin/python3 -c '
import os, signal
# PID 1 of the host: reap orphans (daemons double-fork) and do nothing else.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    signal.sigwaitinfo({signal.SIGCHLD})
'
}

# ---------------------------------------------------------------------------------------------
# exec

# host_cmd HOST USER CMD...: run CMD in HOST's namespaces as USER (in USER's home), clean env.
host_cmd() {
  local h=$1 user=$2 pid
  shift 2
  pid=$(holder_pid "$h")
  [[ -n "$pid" ]] || die "no such host or testbed not up: $h"
  # -r: the host's root directory (/, but for a testbed brought up inside a chroot, where entering
  # a mount namespace alone would leave the chroot).
  exec nsenter -t "$pid" -r -n -m -u -i -p -- env -i PATH="$PATH_IN_HOST" LANG=C.UTF-8 \
    TERM="${TERM:-dumb}" HOME=/root USER=root LOGNAME=root \
    "$BASH" "$STATE/bin/as-user.sh" "$user" "$@"
}

cmd_exec() {
  [[ $# -ge 1 ]] || die "usage: testbed.sh exec HOST [--user USER] [--] CMD..."
  local h=$1 user=root
  shift
  if [[ ${1:-} == --user ]]; then user=$2; shift 2; fi
  if [[ ${1:-} == -- ]]; then shift; fi
  [[ $# -ge 1 ]] || die "exec: no command"
  host_cmd "$h" "$user" "$@"
}

# run HOST CMD... (from inside this script: as root, output to the host's provision log)
in_host() {
  local h=$1
  shift
  ("host_cmd" "$h" root "$@")
}

# ---------------------------------------------------------------------------------------------
# up

secret() { openssl rand -hex 12; }

write_secrets() {
  umask 077
  cat >"$STATE/secrets.env" <<EOF
DS_PG_KINGFISHER_COLLECT_PASSWORD=$(secret)
DS_PG_PELICAN_BACKEND_PASSWORD=$(secret)
DS_RABBITMQ_USER=testbed
DS_RABBITMQ_PASSWORD=$(secret)
DS_SCRAPYD_USER=scrapyd
DS_SCRAPYD_PASSWORD=$(secret)
DS_SEED_ROWS=${DS_SEED_ROWS:-2000}
DS_NEW_STANZA=${DS_NEW_STANZA:-kingfisher-ocp23}
EOF
  umask 022
}

# A CA of the testbed and a certificate for the collect name (the Scrapyd stand-ins' HTTPS): the
# operator trusts the CA (NODE_EXTRA_CA_CERTS in testbed.ts operatorCommand), and so do the old and
# new servers (their private /etc's CA bundle, prepare_host_dirs), where the incremental copy asks
# the old server's Scrapyd itself (components/runbook/halt-jobs/oldServerIdle.ts), as real servers
# trust the public CAs. Nothing else does.
make_tls() {
  local d="$STATE/tls"
  install -d -m 755 "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=ds-testbed CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$COLLECT_NAME" \
    -keyout "$d/collect.key" -out "$d/collect.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\n' "$COLLECT_NAME" >"$d/collect.ext"
  openssl x509 -req -in "$d/collect.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
    -extfile "$d/collect.ext" -out "$d/collect.crt" 2>/dev/null
  chmod 600 "$d/ca.key" "$d/collect.key"
}

operator_key() {
  in_host operator bash -c 'install -d -m 700 /root/.ssh &&
    ssh-keygen -q -t ed25519 -N "" -C operator@ds-testbed -f /root/.ssh/id_ed25519' >/dev/null
  install -d -m 755 "$STATE/operator"
  cp "$STATE/hosts/operator/root/.ssh/id_ed25519.pub" "$STATE/operator/id_ed25519.pub"
  local h
  for h in "${HOSTS[@]}"; do
    [[ $h == web ]] && continue
    install -d -m 700 "$STATE/hosts/$h/root/.ssh"
    install -m 600 "$STATE/operator/id_ed25519.pub" "$STATE/hosts/$h/root/.ssh/authorized_keys"
  done
}

start_agent() {
  # The agent runs in the operator host; its socket is on the state dir, which has the same
  # path inside the operator and in the root namespace.
  in_host operator bash -c "ssh-agent -a $STATE/operator/agent.sock >/dev/null &&
    SSH_AUTH_SOCK=$STATE/operator/agent.sock ssh-add -q /root/.ssh/id_ed25519"
}

provision_all() {
  local h pids=() failed=()
  for h in "${HOSTS[@]}"; do
    # The trace shows the generated passwords: root-only, like secrets.env.
    install -m 600 /dev/null "$STATE/hosts/$h/provision.log"
    in_host "$h" bash "$STATE/bin/provision.sh" "$h" >"$STATE/hosts/$h/provision.log" 2>&1 &
    pids+=("$h:$!")
  done
  local p
  for p in "${pids[@]}"; do
    wait "${p#*:}" || failed+=("${p%%:*}")
  done
  for h in "${failed[@]}"; do
    echo "testbed: provisioning $h failed; last lines of $STATE/hosts/$h/provision.log:" >&2
    tail -n 25 "$STATE/hosts/$h/provision.log" >&2
  done
  ((${#failed[@]} == 0)) || exit 1
}

write_info() {
  local h hosts_json="" key
  for h in "${HOSTS[@]}"; do
    key=null
    if [[ -f "$STATE/hosts/$h/etc/ssh/ssh_host_ed25519_key.pub" ]]; then
      key="\"$(awk '{print $1" "$2}' "$STATE/hosts/$h/etc/ssh/ssh_host_ed25519_key.pub")\""
    fi
    hosts_json+="${hosts_json:+,}\"$h\":{\"hostname\":\"${HOSTNAME_OF[$h]}\",\"ipv4\":\"$(ipv4 "$h")\",\"ipv6\":\"$(ipv6 "$h")\",\"hostKey\":$key}"
  done
  # shellcheck disable=SC1091
  source "$STATE/secrets.env"
  umask 077
  cat >"$STATE/info.json" <<EOF
{
  "stateDir": "$STATE",
  "hosts": {$hosts_json},
  "operator": {"agentSocket": "$STATE/operator/agent.sock", "publicKey": "$(cut -d' ' -f1,2 "$STATE/operator/id_ed25519.pub")"},
  "scrapyd": {"url": "http://$(ipv4 old):6800", "username": "$DS_SCRAPYD_USER", "password": "$DS_SCRAPYD_PASSWORD", "jobsFile": "$STATE/hosts/old/scrapyd-jobs.json", "publicUrl": "https://$COLLECT_NAME", "newJobsFile": "$STATE/hosts/new/scrapyd-jobs.json", "caFile": "$STATE/tls/ca.crt"},
  "rabbitmq": {"url": "http://$(ipv4 old):15672", "username": "$DS_RABBITMQ_USER", "password": "$DS_RABBITMQ_PASSWORD"},
  "web": {"url": "http://$(ipv4 web)/", "body": "ds-testbed web ok\n"},
  "postgres": {"port": 5432, "passwords": {"kingfisher_collect": "$DS_PG_KINGFISHER_COLLECT_PASSWORD", "pelican_backend": "$DS_PG_PELICAN_BACKEND_PASSWORD"}},
  "standins": {"dockerLog": "/var/log/docker-standin.log", "scrapydDeployLog": "/var/log/scrapyd-deploy-standin.log", "scrapyLog": "/home/incremental/scrapy-standin.log", "scrapydLog": "/var/log/scrapyd-standin.log"},
  "seedRows": $DS_SEED_ROWS
}
EOF
  umask 022
}

up() {
  preflight
  down
  local t0=$SECONDS h
  install -d -m 755 "$STATE" "$STATE/bin" "$STATE/hosts"
  # The hosts run our scripts from the state dir, not from the work tree.
  cp "$HERE"/testbed.sh "$HERE"/provision.sh "$HERE"/poll.sh "$HERE"/as-user.sh "$HERE"/*-standin* "$STATE/bin/"
  chmod 755 "$STATE"/bin/*
  write_secrets
  make_tls
  # /data is a private mount point in each host; the machine has no /data, so make an empty one.
  if [[ ! -e /data ]]; then mkdir /data && touch "$STATE/created-data-dir"; fi
  # The program keeps its one-off markers here on each server: private to each host too.
  if [[ ! -e /var/lib/data-support ]]; then mkdir /var/lib/data-support && touch "$STATE/created-data-support-dir"; fi
  # And the transfer key's dispatcher (components/machinery/temporaryAccess.ts) here, on the old server.
  if [[ ! -e /usr/local/lib/data-support ]]; then mkdir /usr/local/lib/data-support && touch "$STATE/created-data-support-lib-dir"; fi
  setup_network
  # Copying /etc takes about a second per host: do the hosts in parallel.
  local pids=()
  for h in "${HOSTS[@]}"; do prepare_host_dirs "$h" & pids+=($!); done
  for h in "${pids[@]}"; do wait "$h" || die "preparing the hosts' directories failed"; done
  for h in "${HOSTS[@]}"; do start_holder "$h"; done
  log "namespaces ready after $((SECONDS - t0)) s"
  operator_key
  provision_all
  start_agent
  write_info
  log "up in $((SECONDS - t0)) s"
}

# dns NAME HOST: point NAME at HOST's addresses in the operator's /etc/hosts (the DNS gate).
cmd_dns() {
  [[ $# -eq 2 && -n "${OCTET[$2]:-}" ]] || die "usage: testbed.sh dns NAME HOST"
  local name=$1 h=$2 f="$STATE/hosts/operator/etc/hosts"
  [[ -f $f ]] || die "testbed not up"
  # Rewrite in place (same inode): the operator may have the file open.
  local rest
  rest=$(awk -v n="$name" '!($2 == n && NF == 2)' "$f")
  printf '%s\n%s\t%s\n%s\t%s\n' "$rest" "$(ipv4 "$h")" "$name" "$(ipv6 "$h")" "$name" >"$f"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  exec) shift && cmd_exec "$@" ;;
  info) [[ -f "$STATE/info.json" ]] || die "testbed not up"; cat "$STATE/info.json" ;;
  dns) shift && cmd_dns "$@" ;;
  _holder) holder_main "$2" ;;
  *) die "usage: testbed.sh up | down | exec HOST [--user USER] [--] CMD... | info | dns NAME HOST" ;;
esac
