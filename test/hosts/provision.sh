#!/usr/bin/env bash
# provision.sh HOST: runs as root inside one test host (its own /etc, /home, /run, ...) and makes
# it look like the server it plays: real services started the Debian way (`service X start`,
# pg_createcluster/pg_ctlcluster), the users, files and crons Salt would have put there, and seed
# data on the old server. Called by `testbed.sh up`; output goes to the host's provision.log.
set -euo pipefail
set -x

readonly HOST=$1
readonly STATE=/run/ds-testbed
readonly BIN=$STATE/bin
# shellcheck disable=SC1091
source "$STATE/secrets.env"
readonly FQDN=$(hostname)
readonly IPV4=$(ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
readonly IPV6=$(ip -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1)
readonly COLLECT_NAME=collect.kingfisher.open-contracting.org

POLL_WHO="provision $HOST"
# shellcheck source=poll.sh
source "$BIN/poll.sh"
port_open() { timeout 1 bash -c ": >/dev/tcp/$1/$2"; }
psql_as_postgres() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# ---------------------------------------------------------------------------------------------

common() {
  # This machine's /etc has a login user that no server of the platform has.
  if getent passwd cloudsdk >/dev/null; then userdel cloudsdk; fi
}

start_sshd() {
  ssh-keygen -q -t ed25519 -N '' -C "root@$FQDN" -f /etc/ssh/ssh_host_ed25519_key
  cat >/etc/ssh/sshd_config.d/ds-testbed.conf <<'EOF'
# ds-testbed: one fresh ed25519 host key per host (pinned by the harness); root by key only.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
EOF
  service ssh start
  poll 50 "sshd" port_open 127.0.0.1 22
}

start_cron() {
  service cron start
  poll 50 "cron" test -s /run/crond.pid
}

# PostgreSQL 15 cluster "main", as pg_createcluster makes it, plus TLS and the host's addresses.
start_postgresql() {
  pg_createcluster 15 main >/dev/null
  local etc=/etc/postgresql/15/main
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=$FQDN" -addext "subjectAltName=DNS:$FQDN,DNS:localhost,IP:$IPV4,IP:$IPV6" \
    -keyout "$etc/server.key" -out "$etc/server.crt" 2>/dev/null
  chown postgres:postgres "$etc/server.key" "$etc/server.crt"
  chmod 600 "$etc/server.key"
  cat >"$etc/conf.d/ds-testbed.conf" <<EOF
# ds-testbed: listen on localhost and this host's addresses, TLS with a self-signed certificate.
listen_addresses = 'localhost,$IPV4,$IPV6'
ssl = on
ssl_cert_file = '$etc/server.crt'
ssl_key_file = '$etc/server.key'
EOF
  pg_ctlcluster 15 main start
  poll 100 "PostgreSQL" pg_isready -q -h "$IPV4"
}

# Roles and databases of the platform, as Salt creates them on a main server.
app_databases() {
  psql_as_postgres <<EOF
CREATE ROLE kingfisher_collect LOGIN PASSWORD '$DS_PG_KINGFISHER_COLLECT_PASSWORD';
CREATE DATABASE kingfisher_collect OWNER kingfisher_collect;
CREATE ROLE pelican_backend LOGIN PASSWORD '$DS_PG_PELICAN_BACKEND_PASSWORD';
CREATE DATABASE pelican_backend OWNER pelican_backend;
EOF
  # "The initial migrations for Pelican backend, which create the exchange_rates table, are run
  # by Salt": the table exists on both servers.
  psql_as_postgres -d pelican_backend <<'EOF'
SET ROLE pelican_backend;
CREATE TABLE exchange_rates (
  id bigserial PRIMARY KEY,
  valid_on date UNIQUE NOT NULL,
  rates jsonb NOT NULL,
  created timestamp,
  modified timestamp
);
EOF
}

users() {
  useradd --create-home --shell /bin/bash incremental
  useradd --create-home --shell /bin/bash --uid 1005 deployer
  local home=/home/incremental
  runuser -u incremental -- mkdir -p "$home"/{data,logs,bin} "$home/kingfisher-collect/.ve/bin"
  install -o incremental -g incremental -m 755 "$BIN/scrapy-standin.py" "$home/kingfisher-collect/.ve/bin/scrapy"
  install -o incremental -g incremental -m 755 "$BIN/scrapyd-deploy-standin.py" "$home/kingfisher-collect/.ve/bin/scrapyd-deploy"
  runuser -u incremental -- mkdir -p "$home/.cargo/bin"
  install -o incremental -g incremental -m 755 "$BIN/ocdscardinal-standin.py" "$home/.cargo/bin/ocdscardinal"
  cat >"$home/kingfisher-collect/scrapy.cfg" <<EOF
[settings]
default = kingfisher_scrapy.settings

[deploy:kingfisher]
url = http://localhost:6800/
project = kingfisher
EOF
  chown incremental:incremental "$home/kingfisher-collect/scrapy.cfg"
  install -o incremental -g incremental -m 600 /dev/null "$home/.pgpass"
  echo "localhost:5432:kingfisher_collect:kingfisher_collect:$DS_PG_KINGFISHER_COLLECT_PASSWORD" >"$home/.pgpass"
  # Stand-in logs that any user may append to.
  install -m 666 /dev/null /var/log/docker-standin.log
  install -m 666 /dev/null /var/log/scrapyd-deploy-standin.log
}

# /data/deploy/<app>/{docker-compose.yaml,.env}, owned by the docker user.
docker_apps() {
  local app service
  for app in kingfisher-process pelican-backend pelican-frontend; do
    case $app in
      pelican-frontend) service=web ;;
      *) service=cron ;;
    esac
    install -d -o deployer -g deployer /data/deploy "/data/deploy/$app"
    cat >"/data/deploy/$app/docker-compose.yaml" <<EOF
# Managed by Salt (ds-testbed copy). Run by the docker stand-in; no container ever starts here.
services:
  $service:
    image: "ghcr.io/open-contracting/$app:latest"
    env_file: .env
    restart: unless-stopped
EOF
    cat >"/data/deploy/$app/.env" <<EOF
DATABASE_URL=postgresql://$(echo "$app" | tr - _)@$FQDN:5432/$(echo "$app" | tr - _)
RABBIT_URL=amqp://localhost:5672
EOF
    chown deployer:deployer "/data/deploy/$app/docker-compose.yaml" "/data/deploy/$app/.env"
    chmod 600 "/data/deploy/$app/.env"
  done
}

# The crons Salt installs on a main server, in the format Salt's cron states write.
salt_crons() {
  runuser -u deployer -- crontab - <<'EOF'
# Lines below here are managed by Salt, do not edit
# SALT_CRON_IDENTIFIER:PELICAN_BACKEND_UPDATE_EXCHANGE_RATES
0 */12 * * * cd /data/deploy/pelican-backend && docker compose run --rm --name pelican-backend-update-exchange-rates cron python manage.py update-exchange-rates
EOF
  cat >/etc/cron.d/postgres_backups <<'EOF'
# This file is managed by Salt (ds-testbed copy): pgBackRest backups of the main cluster.
MAILTO=root
15 2 * * 0 postgres pgbackrest backup --stanza=kingfisher --type=full
15 2 * * 1-6 postgres pgbackrest backup --stanza=kingfisher --type=diff
EOF
}

# ---------------------------------------------------------------------------------------------
# old: seed data and the incremental crawls

incremental_crawl_script() {
  local spider=$1 crawl_time=$2
  cat <<EOF
#!/bin/sh
# Managed by Salt (ds-testbed copy): incremental crawl of $spider.
set -e
cd /home/incremental/kingfisher-collect
mkdir -p /home/incremental/logs/$spider/\$(date +%Y)
env http_proxy=http://ocp19.open-contracting.org:8888 https_proxy=http://ocp19.open-contracting.org:8888 \\
  .ve/bin/scrapy crawl $spider -a crawl_time=${crawl_time}T00:00:00 \\
  -s FILES_STORE=/home/incremental/data \\
  -s DATABASE_URL=postgresql://kingfisher_collect@localhost:5432/kingfisher_collect \\
  --logfile=/home/incremental/logs/$spider/\$(date +%Y)/\$(date +%F).log
EOF
}

incremental_crons() {
  local home=/home/incremental
  incremental_crawl_script dominican_republic_api 2024-01-01 >"$home/bin/dominican_republic_api.sh"
  incremental_crawl_script ecuador_sercop_bulk 2024-01-01 >"$home/bin/ecuador_sercop_bulk.sh"
  chown incremental:incremental "$home"/bin/*.sh
  chmod 755 "$home"/bin/*.sh
  runuser -u incremental -- crontab - <<'EOF'
# Lines below here are managed by Salt, do not edit
MAILTO=sysadmin@open-contracting.org
# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_DOMINICAN_REPUBLIC
15 0 * * * /home/incremental/bin/dominican_republic_api.sh
# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_ECUADOR
15 0 1 * * /home/incremental/bin/ecuador_sercop_bulk.sh
EOF
}

seed_database() {
  local rows=$DS_SEED_ROWS
  psql_as_postgres -d kingfisher_collect <<EOF
SET ROLE kingfisher_collect;
CREATE SEQUENCE crawl_batch_seq START 100;
CREATE TABLE crawl (
  id serial PRIMARY KEY,
  spider text NOT NULL,
  batch bigint NOT NULL DEFAULT nextval('crawl_batch_seq'),
  started timestamp NOT NULL,
  finished timestamp
);
CREATE TABLE release (
  id bigserial PRIMARY KEY,
  crawl_id integer NOT NULL REFERENCES crawl (id),
  ocid text NOT NULL,
  release_date date NOT NULL,
  title text,
  data jsonb NOT NULL
);
CREATE INDEX release_ocid_idx ON release (ocid);
CREATE INDEX release_crawl_date_idx ON release (crawl_id, release_date);
CREATE TABLE file_item (
  id bigserial PRIMARY KEY,
  release_id bigint NOT NULL REFERENCES release (id),
  path text NOT NULL,
  size integer NOT NULL
);
CREATE UNIQUE INDEX file_item_path_idx ON file_item (path);

INSERT INTO crawl (spider, started, finished)
SELECT s, timestamp '2024-01-01' + g * interval '1 day', timestamp '2024-01-01 06:00' + g * interval '1 day'
FROM unnest(ARRAY['dominican_republic_api', 'ecuador_sercop_bulk']) AS s, generate_series(0, 9) AS g;

INSERT INTO release (crawl_id, ocid, release_date, title, data)
SELECT 1 + g % 20, 'ocds-213czf-' || lpad(g::text, 8, '0'), date '2024-01-01' + g % 366,
       CASE WHEN g % 7 = 0 THEN 'Adquisición de bienes n° ' || g ELSE 'Tender ' || g END,
       jsonb_build_object('ocid', 'ocds-213czf-' || g, 'tag', jsonb_build_array('compiled'),
                          'tender', jsonb_build_object('value', g * 10.5, 'currency', 'DOP', 'hash', md5(g::text)))
FROM generate_series(1, $rows) AS g;

INSERT INTO file_item (release_id, path, size)
SELECT g, 'data/dominican_republic_api/' || g || '.json', 100 + g % 900
FROM generate_series(1, $rows / 2) AS g;
ANALYZE;
EOF
  psql_as_postgres -d pelican_backend <<'EOF'
SET ROLE pelican_backend;
INSERT INTO exchange_rates (valid_on, rates, created, modified)
SELECT date '2024-01-01' + g,
       jsonb_build_object('USD', 1, 'EUR', round((0.9 + (g % 10) / 100.0)::numeric, 4), 'DOP', 58 + g % 3),
       timestamp '2024-01-01 01:00' + g * interval '1 day', timestamp '2024-01-01 01:00' + g * interval '1 day'
FROM generate_series(0, 299) AS g;
EOF
}

seed_files() {
  local home=/home/incremental n d i
  { set +x; } 2>/dev/null # thousands of files: keep the provision log readable
  n=$((DS_SEED_ROWS / 100 + 5))
  for spider in dominican_republic_api ecuador_sercop_bulk; do
    for d in 20240101_001500 20240201_001500; do
      mkdir -p "$home/data/$spider/$d/nested dir"
      for ((i = 1; i <= n; i++)); do
        printf '{"ocid": "ocds-%s-%d", "n": %d}\n' "$spider" "$i" "$i" >"$home/data/$spider/$d/$i.json"
      done
      echo '{"titre": "données été"}' >"$home/data/$spider/$d/données été.json"
      echo '{"name": "file with spaces"}' >"$home/data/$spider/$d/nested dir/file with spaces.json"
      printf '' >"$home/data/$spider/$d/nested dir/empty file"
    done
    mkdir -p "$home/logs/$spider/2024"
    for d in 2024-01-01 2024-02-01; do
      printf '%s 00:15:00 [scrapy.core.engine] INFO: Spider opened\n%s 01:00:00 [scrapy.core.engine] INFO: Closing spider (finished)\n' "$d" "$d" \
        >"$home/logs/$spider/2024/$d.log"
    done
  done
  mkdir -p "$home/logs/journée spéciale"
  head -c 200000 /dev/urandom >"$home/logs/journée spéciale/binary blob.bin"
  chown -R incremental:incremental "$home/data" "$home/logs"
  set -x
}

# RabbitMQ with its management plugin; the first boot creates the user from rabbitmq.conf.
start_rabbitmq() {
  echo 'NODENAME=rabbit@localhost' >/etc/rabbitmq/rabbitmq-env.conf
  echo '[rabbitmq_management].' >/etc/rabbitmq/enabled_plugins
  cat >/etc/rabbitmq/rabbitmq.conf <<EOF
# ds-testbed: management API on 15672 (all IPv4 addresses of this host), one admin user.
management.tcp.ip = 0.0.0.0
management.tcp.port = 15672
default_user = $DS_RABBITMQ_USER
default_pass = $DS_RABBITMQ_PASSWORD
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
EOF
  chmod 640 /etc/rabbitmq/rabbitmq.conf && chgrp rabbitmq /etc/rabbitmq/rabbitmq.conf
  # The init script waits (rabbitmqctl wait) until the node has booted.
  service rabbitmq-server start
  poll 300 "RabbitMQ management API" \
    curl -fsS -u "$DS_RABBITMQ_USER:$DS_RABBITMQ_PASSWORD" "http://$IPV4:15672/api/overview"
}

# Scrapyd on old (and, idle, on new: Salt deploys it there too). Port 6800 as Scrapyd listens; 443
# as the public name serves it (TLS with the testbed CA's certificate for the collect name, virtual
# host), so a gate that asked the name's current address instead of the old server would see new's.
start_scrapyd() {
  echo '{"pending": [], "running": [], "finished": []}' >"$STATE/hosts/$HOST/scrapyd-jobs.json"
  DS_SCRAPYD_USER=$DS_SCRAPYD_USER DS_SCRAPYD_PASSWORD=$DS_SCRAPYD_PASSWORD \
    setsid -f /usr/bin/python3 "$BIN/scrapyd-standin.py" --port 6800 \
    --jobs "$STATE/hosts/$HOST/scrapyd-jobs.json" --log /var/log/scrapyd-standin.log \
    --tls-port 443 --cert "$STATE/tls/collect.crt" --key "$STATE/tls/collect.key" --vhost "$COLLECT_NAME" \
    </dev/null >>/var/log/scrapyd-standin.out 2>&1
  poll 50 "Scrapyd stand-in" port_open 127.0.0.1 6800
  poll 50 "Scrapyd stand-in (TLS)" port_open 127.0.0.1 443
}

# ---------------------------------------------------------------------------------------------
# docs and web

start_tinyproxy() {
  # Like production's config (the deploy repository's salt/tinyproxy/files/tinyproxy.conf):
  # loopback first, then one Allow per admitted address (none yet), CONNECT only to 443 and 563.
  cat >/etc/tinyproxy/tinyproxy.conf <<'EOF'
User tinyproxy
Group tinyproxy
Port 8888
Timeout 600
DefaultErrorFile "/usr/share/tinyproxy/default.html"
StatFile "/usr/share/tinyproxy/stats.html"
Logfile "/var/log/tinyproxy/tinyproxy.log"
LogLevel Info
PidFile "/run/tinyproxy/tinyproxy.pid"
MaxClients 100
Allow 127.0.0.1
Allow ::1
ViaProxyName "tinyproxy"
ConnectPort 443
ConnectPort 563
EOF
  service tinyproxy start
  poll 50 "tinyproxy" port_open 127.0.0.1 8888
}

start_web() {
  mkdir -p /run/web
  printf 'ds-testbed web ok\n' >/run/web/index.html
  setsid -f /usr/bin/python3 -m http.server 80 --bind :: --directory /run/web \
    </dev/null >>/var/log/web.log 2>&1
  poll 50 "web server" port_open 127.0.0.1 80
}

# ---------------------------------------------------------------------------------------------

# One step per line: bash ignores `set -e` inside functions called from `a && b` lists.
common
case $HOST in
  operator | outsider)
    start_sshd
    ;;
  replica)
    start_sshd
    start_cron
    start_postgresql
    ;;
  docs)
    start_sshd
    start_tinyproxy
    ;;
  web)
    start_web
    ;;
  new)
    start_sshd
    start_cron
    start_postgresql
    app_databases
    users
    docker_apps
    salt_crons
    # Salt manages incremental's crontab on the new server too; no crawl is present yet.
    runuser -u incremental -- crontab - </dev/null
    start_scrapyd
    ;;
  old)
    start_sshd
    start_cron
    # RabbitMQ boots in the background (Erlang is slow to start) while the rest is set up.
    start_rabbitmq &
    rabbit=$!
    start_postgresql
    app_databases
    users
    docker_apps
    salt_crons
    incremental_crons
    seed_database
    seed_files
    start_scrapyd
    wait "$rabbit"
    ;;
  *)
    echo "provision: unknown host $HOST" >&2
    exit 1
    ;;
esac
echo "provision $HOST: done"
