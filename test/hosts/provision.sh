#!/usr/bin/env bash
# Over 300 lines: the facts of the Salt-built servers, host after host, each with the deploy-repository file it comes from; old and new share most of them.
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
  if [[ $HOST == old || $HOST == new ]]; then wal_archiving; fi
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
-- A read-only role of the crawl's users (pillar/kingfisher_main.sls: DOMINICAN_REPUBLIC users: dgcp;
-- Salt's postgres states create the roles of the pillar's postgres.users on the server they deploy).
CREATE ROLE dgcp LOGIN;
-- salt/kingfisher/collect/incremental.sls: with a cardinal crawl, kingfisher_collect loads the
-- reference CSV files with a server-side COPY.
GRANT pg_read_server_files TO kingfisher_collect;
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
  # salt/lib.sls create_user: home /home/<user>, shell /bin/bash. incremental and summarize are
  # python_apps users, collect is kingfisher_collect.user (pillar/kingfisher_main.sls); deployer is
  # docker.user with docker.uid 1005 (pillar/kingfisher_main.sls, salt/docker_apps).
  useradd --create-home --shell /bin/bash incremental
  useradd --create-home --shell /bin/bash --uid 1005 deployer
  useradd --create-home --shell /bin/bash collect
  useradd --create-home --shell /bin/bash summarize
  local home=/home/incremental
  # salt/kingfisher/collect/incremental.sls "allow /home/incremental access": mode 755, so that
  # postgres reads the reference CSV files (COPY ... FROM a file on the server).
  chmod 755 "$home"
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
  # incremental.sls: .pgpass, mode 400.
  install -o incremental -g incremental -m 400 /dev/null "$home/.pgpass"
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

# The crons Salt installs on a main server, as salt/modules/cron.py writes a crontab: its header
# line, the environment (salt/lib.sls set_cron_env: MAILTO), then each entry under a
# `# SALT_CRON_IDENTIFIER:<ID>` comment. `minute: random` is drawn once by Salt; fixed here.
salt_crons() {
  # salt/pelican/backend/init.sls (PELICAN_BACKEND_UPDATE_EXCHANGE_RATES, hour */12, minute random)
  # and salt/kingfisher/process/init.sls (the monthly clean-ups of kingfisher_process, day 1 at
  # 03:00, 03:15, 03:30); both set MAILTO for docker.user.
  local select="psql -U kingfisher_process -h localhost kingfisher_process -q -t -c"
  local delete="/usr/bin/docker compose --progress=quiet run --rm --name"
  runuser -u deployer -- crontab - <<EOF
# Lines below here are managed by Salt, do not edit
MAILTO=sysadmin@open-contracting.org
# SALT_CRON_IDENTIFIER:PELICAN_BACKEND_UPDATE_EXCHANGE_RATES
27 */12 * * * cd /data/deploy/pelican-backend; /usr/bin/docker compose --progress=quiet run --rm --name pelican-backend-cron -e LOG_LEVEL=WARNING cron python manage.py update-exchange-rates
# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_STALE_COLLECTIONS
0 3 1 * * cd /data/deploy/kingfisher-process; $select "SELECT id FROM collection c WHERE c.deleted_at IS NULL AND c.store_end_at < date_trunc('day', NOW() - interval '1 year') AND EXISTS(SELECT FROM collection d WHERE d.source_id = c.source_id AND d.transform_type = '' AND d.id > c.id AND d.deleted_at IS NULL AND d.store_end_at < date_trunc('day', NOW() - interval '1 year')) ORDER BY id DESC" | xargs -I{} $delete kingfisher-process-cron-stale -e LOG_LEVEL=WARNING cron python manage.py deletecollection -v0 -f {}
# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_UNFINISHED_COLLECTIONS
15 3 1 * * cd /data/deploy/kingfisher-process; $select "SELECT id FROM collection WHERE deleted_at IS NULL AND store_start_at < date_trunc('day', NOW() - interval '2 month') AND store_end_at IS NULL ORDER BY id DESC" | xargs -I{} $delete kingfisher-process-cron-unfinished -e LOG_LEVEL=WARNING cron python manage.py deletecollection -v0 -f {}
# SALT_CRON_IDENTIFIER:KINGFISHER_PROCESS_EMPTY_COLLECTIONS
30 3 1 * * cd /data/deploy/kingfisher-process; $select "SELECT id FROM collection WHERE deleted_at IS NULL AND store_end_at < date_trunc('day', NOW() - interval '2 month') AND COALESCE(NULLIF(cached_releases_count, 0), NULLIF(cached_records_count, 0), cached_compiled_releases_count) = 0 ORDER BY id DESC" | xargs -I{} $delete kingfisher-process-cron-empty -e LOG_LEVEL=WARNING cron python manage.py deletecollection -v0 -f {}
EOF
  # salt/postgres/backup.sls (postgres.backup.type pgbackrest, with cron), stanza from the pillar.
  cat >/etc/cron.d/postgres_backups <<EOF
MAILTO=root
# Daily incremental backup
15 05 * * 0-2,4-6 postgres pgbackrest backup --stanza=$(stanza)
# Weekly full backup
15 05 * * 3 postgres pgbackrest backup --stanza=$(stanza) --type=full 2>&1 | grep -v "unable to remove file.*We encountered an internal error\. Please try again\.\|expire command encountered 1 error.s., check the log file for details"
EOF
}

# pillar/kingfisher_main.sls postgres.backup.stanza is kingfisher-2023, and the same pillar file
# deploys the old and the new main server. The old server keeps it; the new one is given a stanza
# of its own (DS_NEW_STANZA), as the program's WAL gate asks before a migration starts (a test
# puts the commit's value back on new and sees the gate stop).
stanza() {
  case $HOST in
    new) echo "$DS_NEW_STANZA" ;;
    *) echo kingfisher-2023 ;;
  esac
}

# salt/postgres/files/conf/shared.conf, its pgBackRest part (postgres.backup.type pgbackrest), in
# conf.d/030_<postgres.configuration.name>.conf; the pgtune part of that file is left out. The
# archive command runs the pgBackRest stand-in (/usr/local/sbin/pgbackrest on old and new).
wal_archiving() {
  cat >/etc/postgresql/15/main/conf.d/030_kingfisher-main1.conf <<EOF
### pgBackRest
wal_level = logical
archive_mode = on
archive_command = 'pgbackrest --stanza=$(stanza) archive-push %p'
max_wal_senders = 4
EOF
  install -m 666 /dev/null /var/log/pgbackrest-standin.log
}

# ---------------------------------------------------------------------------------------------
# incremental crawls, cardinal and reference tables (salt/kingfisher/collect/incremental.sls with
# pillar/kingfisher_main.sls python_apps.kingfisher_collect.crawls; the same on old and new)

readonly KC_HOME=/home/incremental
readonly SENTRY_DSN=https://public@sentry.example.invalid/1

# salt/kingfisher/collect/files/cron.sh as Jinja renders it for one crawl (`{%- if %}` eats the
# newline before it; Salt keeps the template's final newline, salt/utils/templates.py):
# crawl_script SPIDER CRAWL_TIME SPIDER_ARGUMENTS CARDINAL(yes|no) [PROXY(yes|no)]
crawl_script() {
  local spider=$1 crawl_time=$2 spider_arguments=$3 cardinal=$4 proxy_spiders= scratch=$KC_HOME/bi/scratch
  # `-s PROXY_SPIDERS={% if 'proxy' in crawl %}{{ crawl.spider }}{% endif %}`
  if [[ ${5:-no} == yes ]]; then proxy_spiders=$spider; fi
  cat <<EOF
#!/bin/sh
# shellcheck disable=SC1083

set -eu

cd $KC_HOME/kingfisher-collect

env http_proxy=http://ocp19.open-contracting.org:8888 https_proxy=http://ocp19.open-contracting.org:8888 no_proxy=localhost,sentry.io,standard.open-contracting.org .ve/bin/scrapy crawl \\
    $spider${spider_arguments:+ $spider_arguments} \\
    -a crawl_time=${crawl_time}T00:00:00 \\
    -s FILES_STORE=$KC_HOME/data \\
    -s DATABASE_URL=postgresql://kingfisher_collect@localhost:5432/kingfisher_collect \\
    -s PROXY_SPIDERS=$proxy_spiders \\
    -s SENTRY_DSN=$SENTRY_DSN \\
    --logfile="$KC_HOME/logs/$spider-\$(date +%F).log"

# shellcheck disable=all
EOF
  [[ $cardinal == yes ]] || return 0
  cat <<EOF
psql -U kingfisher_collect -h localhost -t -c 'SELECT data FROM $spider' -o $scratch/$spider.jsonl

$KC_HOME/.cargo/bin/ocdscardinal prepare \\
    -s $KC_HOME/bi/settings/$spider.ini \\
    -o $scratch/$spider.out.jsonl \\
    -e $scratch/$spider.err.csv \\
    $scratch/$spider.jsonl

if [ -s $scratch/$spider.err.csv ]; then
    echo "$scratch/$spider.jsonl contains new errors"
    exit 1
fi

$KC_HOME/.cargo/bin/ocdscardinal indicators \\
    -s $KC_HOME/bi/settings/$spider.ini \\
    --map \\
    $scratch/$spider.out.jsonl \\
    > $scratch/$spider.json

# This appends to the CSV file, to keep flags consistent over time. Delete it manually if results are incorrect.
$KC_HOME/bin/manage.py json-to-csv -q $scratch/$spider.json $scratch/$spider.csv

psql -U kingfisher_collect -h localhost -q \\
    -c "BEGIN" \\
    -c "DROP TABLE IF EXISTS ${spider}_clean" \\
    -c "CREATE TABLE ${spider}_clean (data jsonb)" \\
    -c "\\copy ${spider}_clean (data) FROM stdin CSV QUOTE e'\\x01' DELIMITER e'\\x02'" \\
    -c "CREATE INDEX idx_${spider}_clean ON ${spider}_clean (cast(data->>'date' as text))" \\
    -c "END" \\
    < $scratch/$spider.out.jsonl

psql -U kingfisher_collect -h localhost -q \\
    -c "BEGIN" \\
    -c "DROP TABLE IF EXISTS ${spider}_result" \\
    -f $KC_HOME/bi/sql/${spider}_result.sql \\
    -c "\\copy ${spider}_result (ocid, subject, code, result, buyer_id, procuring_entity_id, tenderer_id, created_at) FROM stdin DELIMITER ',' CSV HEADER" \\
    -c "END" \\
    < $scratch/$spider.csv
EOF
}

# salt/kingfisher/collect/files/sql/result.sql as Jinja renders it: result_sql SPIDER [USER...]
# (`{%- for %}` and `{%- endfor %}` eat the newline before them; the final newline stays).
result_sql() {
  local spider=$1 user
  shift
  cat <<EOF
CREATE TABLE IF NOT EXISTS ${spider}_result (
    id serial PRIMARY KEY, -- an auto-incrementing ID that has no semantics
    ocid text, -- matches /ocid in the compiled release JSON
    -- the indicator's scope, one of OCID, Buyer, ProcuringEntity, Tenderer
    subject text,
    code text, -- the indicator's code
    result numeric, -- an individual indicator result
    buyer_id text, -- matches /buyer/id in the JSON
    procuring_entity_id text, -- matches /tender/procuringEntity/id in the JSON
    tenderer_id text, -- matches /bids/details[]/tenderers[]/id in the JSON
    created_at timestamp without time zone -- the time when this row was added
);
EOF
  for user in "$@"; do printf '    GRANT SELECT ON %s_result TO %s;\n' "$spider" "$user"; done
}

# Reference data of the cardinal crawls. Salt's CSV files (salt/kingfisher/collect/files/data/)
# are large; these keep their headers and a few rows of the same shape.
reference_csv() {
  case $1 in
    codelist) printf '%s\n' 'codelist,code,code_es' 'method,open,abierto' 'method,selective,selectivo' 'method,direct,directo' ;;
    indicator) printf '%s\n' 'code,category,title,description,category_es,title_es,description_es' \
      'R003,Competition,Short submission period,The submission period is too short.,Competencia,Periodo para recibir ofertas corto,El período para recibir ofertas es muy corto.' \
      'R018,Competition,Single bid received,Only one tenderer submitted a bid.,Competencia,Una sola oferta recibida,Solo un oferente presentó una oferta.' ;;
    cpc) printf '%s\n' 'code,description,description_es' '0,"Agriculture, forestry and fishery products","Productos de la agricultura, la silvicultura y la pesca"' '01,"Products of agriculture, horticulture and market gardening","Productos de la agricultura, la horticultura y la jardinería"' ;;
    unspsc) printf '%s\n' 'code,description,description_es' '10,Live Plant and Animal Material and Accessories and Supplies,"Material Vivo Vegetal y Animal, Accesorios y Suministros"' '11,Mineral and Textile and Inedible Plant and Animal Materials,"Material Mineral, Textil y Vegetal y Animal No Comestible"' ;;
  esac
}

# salt/kingfisher/collect/files/sql/<basename>.sql as rendered with path=<bi/sql>/<basename>.csv.
reference_sql() {
  local path=$KC_HOME/bi/sql/$1.csv
  case $1 in
    codelist) cat <<EOF
DROP TABLE IF EXISTS codelist;

CREATE TABLE codelist (
    id serial PRIMARY KEY,
    codelist text,
    code text,
    code_es text,
    UNIQUE (codelist, code)
);

COPY codelist (
    codelist, code, code_es
) FROM '$path' DELIMITER ',' CSV HEADER;
EOF
    ;;
    indicator) cat <<EOF
DROP TABLE IF EXISTS indicator;

CREATE TABLE indicator (
    id serial PRIMARY KEY,
    code text UNIQUE,
    category text,
    title text,
    description text,
    category_es text,
    title_es text,
    description_es text
);

COPY indicator (
    code, category, title, description, category_es, title_es, description_es
) FROM '$path' DELIMITER ',' CSV HEADER;
EOF
    ;;
    cpc) cat <<EOF
DROP TABLE IF EXISTS cpc;

CREATE TABLE cpc (
    id serial PRIMARY KEY,
    code text UNIQUE, -- leading zeros
    description text,
    description_es text
);

COPY cpc (
    code, description, description_es
) FROM '$path' DELIMITER ',' CSV HEADER;
EOF
    ;;
    unspsc) cat <<EOF
DROP TABLE IF EXISTS unspsc;

CREATE TABLE unspsc (
    id serial PRIMARY KEY,
    code integer UNIQUE,
    description text,
    description_es text
);

COPY unspsc (
    code, description, description_es
) FROM '$path' DELIMITER ',' CSV HEADER;
EOF
    ;;
    excluded_supplier) cat <<'EOF'
CREATE TABLE IF NOT EXISTS excluded_supplier (
    id serial PRIMARY KEY,
    identifier text UNIQUE -- like "DO-RPE-1542"
);
EOF
    ;;
  esac
}

# incremental.sls, the crawls of pillar/kingfisher_main.sls at the commit: DOMINICAN_REPUBLIC
# (cardinal, users dgcp) daily and MEXICO_NUEVO_LEON daily; salt/cron/ with the pillar's `cron:`
# for incremental: bin/do_excluded_supplier.sh (salt/cron/files/) daily at 01:<random>.
salt_incremental() {
  local b as_kc=(runuser -u incremental --)
  "${as_kc[@]}" mkdir -p "$KC_HOME/bi/sql" "$KC_HOME/bi/settings" "$KC_HOME/bi/scratch"
  crawl_script dominican_republic_api 2023-07-13 '-a compile_releases=true -a force_version=1.1 -a ignore_version=true' yes \
    >"$KC_HOME/bin/dominican_republic_api.sh"
  crawl_script mexico_nuevo_leon 2025-05-05 '-a compile_releases=true' no >"$KC_HOME/bin/mexico_nuevo_leon.sh"
  cat >"$KC_HOME/bin/do_excluded_supplier.sh" <<'EOF'
#!/usr/bin/env bash

set -euo pipefail

# https://datosabiertos.dgcp.gob.do/opendata/tablas
curl -sSk https://api.dgcp.gob.do/opendata/proveedores/proveedores_inhabilitados.csv |
    # The first column is the RPE.
    grep -Eo '^[0-9]+,' |
    # Sort numerically and uniquely.
    sort -nu |
    # Prefix the identifier scheme.
    sed -E 's/^(.+),$/DO-RPE-\1/' |
    # Replace the table in a transaction.
    psql -U kingfisher_collect -h localhost -q -c "BEGIN; DELETE FROM excluded_supplier; COPY excluded_supplier (identifier) FROM stdin; END;"
EOF
  chown incremental:incremental "$KC_HOME"/bin/*.sh
  chmod 755 "$KC_HOME"/bin/*.sh
  # salt/kingfisher/collect/files/cardinal/dominican_republic_api.ini (its first settings).
  cat >"$KC_HOME/bi/settings/dominican_republic_api.ini" <<'EOF'
no_price_comparison_procurement_methods = Sorteo de Obras

[defaults]
currency = DOP
item_classification_scheme = UNSPSC
bid_status = valid
party_roles = true
EOF
  result_sql dominican_republic_api dgcp >"$KC_HOME/bi/sql/dominican_republic_api_result.sql"
  # incremental.sls: bin/manage.py of cardinal-rs (json-to-csv), with any cardinal crawl.
  install -o incremental -g incremental -m 755 "$BIN/manage-standin.py" "$KC_HOME/bin/manage.py"
  for b in codelist indicator cpc unspsc; do
    reference_csv "$b" >"$KC_HOME/bi/sql/$b.csv"
  done
  for b in codelist indicator cpc unspsc excluded_supplier; do
    reference_sql "$b" >"$KC_HOME/bi/sql/$b.sql"
  done
  chown -R incremental:incremental "$KC_HOME/bi"
  # incremental.sls "run <bi/sql>/<basename>.sql", as incremental through .pgpass.
  for b in codelist indicator cpc unspsc excluded_supplier; do
    "${as_kc[@]}" psql -X -q -v ON_ERROR_STOP=1 -U kingfisher_collect -h localhost -f "$KC_HOME/bi/sql/$b.sql" kingfisher_collect
  done
  "${as_kc[@]}" crontab - <<EOF
# Lines below here are managed by Salt, do not edit
MAILTO=sysadmin@open-contracting.org
# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_DOMINICAN_REPUBLIC
15 0 * * * $KC_HOME/bin/dominican_republic_api.sh
# SALT_CRON_IDENTIFIER:OCDS_KINGFISHER_COLLECT_MEXICO_NUEVO_LEON
15 0 * * * $KC_HOME/bin/mexico_nuevo_leon.sh
# SALT_CRON_IDENTIFIER:DOMINICAN_REPUBLIC_EXCLUDED_SUPPLIER
42 1 * * * $KC_HOME/bin/do_excluded_supplier.sh
EOF
}

# A Salt deploy of the crawls on this host (run by the tests after `pulumi up`, as
# `provision.sh salt-deploy-crawls`): incremental.sls over the pillar fragment the program outputs,
# read as JSON on stdin: {"crawls": <python_apps.kingfisher_collect.crawls>, "cardinal_ini":
# {<spider>: <salt/kingfisher/collect/files/cardinal/<spider>.ini>}}; the private pillar's
# SENTRY_DSN and the proxy URL are this file's. Like file.managed, a file is written only when its
# bytes differ (then `mode: 755` for the scripts, as the state sets it); like cron.present, an
# entry under its identifier is added or its line replaced only when it differs (set_cron_env
# likewise for MAILTO). Prints `changed: <what>` for each change, nothing when there is none.
salt_deploy_crawls() {
  local json new identifier spider crawl_time args cardinal proxy day users
  json=$(mktemp) new=$(mktemp)
  cat >"$json"
  salt_cron_env
  while IFS=$'\x1f' read -r identifier spider crawl_time args cardinal proxy day users; do
    crawl_script "$spider" "$crawl_time" "$args" "$cardinal" "$proxy" >"$new"
    salt_file "$new" "$KC_HOME/bin/$spider.sh" 755
    if [[ $cardinal == yes ]]; then
      python3 -c 'import json, sys; sys.stdout.write(json.load(open(sys.argv[1]))["cardinal_ini"][sys.argv[2]])' "$json" "$spider" >"$new"
      salt_file "$new" "$KC_HOME/bi/settings/$spider.ini"
      # shellcheck disable=SC2086 # one word per user
      result_sql "$spider" $users >"$new"
      salt_file "$new" "$KC_HOME/bi/sql/${spider}_result.sql"
    fi
    salt_cron "OCDS_KINGFISHER_COLLECT_$identifier" "15 0 ${day:-*} * * $KC_HOME/bin/$spider.sh"
  done < <(python3 -c '
import json, sys
for c in json.load(open(sys.argv[1]))["crawls"]:
    print("\x1f".join([c["identifier"], c["spider"], str(c["crawl_time"]), c.get("spider_arguments", ""),
        "yes" if c.get("cardinal") else "no", "yes" if "proxy" in c else "no", str(c.get("day", "")), " ".join(c.get("users", []))]))
' "$json")
  rm -f "$json" "$new"
}

# salt_file SRC DEST [MODE]: file.managed of DEST (owner incremental) with SRC's bytes.
salt_file() {
  if ! cmp -s "$1" "$2"; then
    install -o incremental -g incremental -m "${3:-644}" "$1" "$2"
    echo "changed: $2"
  elif [[ -n ${3:-} && $(stat -c %a "$2") != "$3" ]]; then
    chmod "$3" "$2"
    echo "changed: mode of $2"
  fi
}

# salt_cron ID LINE: cron.present of the incremental user's entry ID.
salt_cron() {
  local now next
  now=$(mktemp) next=$(mktemp)
  crontab -l -u incremental >"$now" 2>/dev/null || true
  python3 -c '
import sys
lines, tag, line = open(sys.argv[1]).read().splitlines(), "# SALT_CRON_IDENTIFIER:" + sys.argv[2], sys.argv[3]
if tag in lines and lines.index(tag) + 1 < len(lines):
    lines[lines.index(tag) + 1] = line
else:
    lines += [tag, line]
print("\n".join(lines))
' "$now" "$1" "$2" >"$next"
  if ! cmp -s "$now" "$next"; then crontab -u incremental "$next"; echo "changed: crontab entry $1"; fi
  rm -f "$now" "$next"
}

# set_cron_env (salt/lib.sls): MAILTO in the incremental user's crontab.
salt_cron_env() {
  if ! crontab -l -u incremental 2>/dev/null | grep -qxF 'MAILTO=sysadmin@open-contracting.org'; then
    { echo 'MAILTO=sysadmin@open-contracting.org'; crontab -l -u incremental 2>/dev/null || true; } | crontab -u incremental -
    echo "changed: crontab MAILTO"
  fi
}

# What bin/do_excluded_supplier.sh would have loaded (the public list needs the internet): on old
# the list of its last run; on new, deployed days before, the list of another day.
excluded_suppliers() {
  local from=$1 to=$2
  runuser -u incremental -- psql -X -q -v ON_ERROR_STOP=1 -U kingfisher_collect -h localhost kingfisher_collect \
    -c "BEGIN; DELETE FROM excluded_supplier; INSERT INTO excluded_supplier (identifier) SELECT 'DO-RPE-' || g FROM generate_series($from, $to) g; END;"
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

-- What the DOMINICAN_REPUBLIC crawl and its cardinal steps left (bin/dominican_republic_api.sh).
CREATE TABLE dominican_republic_api (data jsonb);
INSERT INTO dominican_republic_api (data)
SELECT jsonb_build_object('ocid', 'ocds-6550wx-' || g, 'date', (date '2024-01-01' + g)::text) FROM generate_series(1, 30) g;
CREATE TABLE dominican_republic_api_clean (data jsonb);
INSERT INTO dominican_republic_api_clean SELECT data FROM dominican_republic_api;
CREATE INDEX idx_dominican_republic_api_clean ON dominican_republic_api_clean (cast(data->>'date' as text));
\i /home/incremental/bi/sql/dominican_republic_api_result.sql
INSERT INTO dominican_republic_api_result (ocid, subject, code, result, created_at)
SELECT 'ocds-6550wx-' || g, 'OCID', 'R003', g % 2, timestamp '2024-06-01' FROM generate_series(1, 30) g;

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
  # salt/tinyproxy/files/tinyproxy.conf as Salt renders it with pillar/tinyproxy.sls (its settings
  # in its order; the template's explanatory comments are left out). The pillar's allow list at
  # the commit is the main server of the time (ocp23) and ocp27, each an IPv4 and an IPv6 address
  # written bare; documentation addresses stand for them here. Jinja (no trim_blocks) leaves a
  # blank line around each Allow of the loop.
  cat >/etc/tinyproxy/tinyproxy.conf <<'EOF'
User tinyproxy
Group tinyproxy
Port 8888
#Listen 192.168.0.1
#Bind 192.168.0.1
#BindSame yes
Timeout 600
DefaultErrorFile "/usr/share/tinyproxy/default.html"
StatFile "/usr/share/tinyproxy/stats.html"
Logfile "/var/log/tinyproxy/tinyproxy.log"
LogLevel Info
PidFile "/run/tinyproxy/tinyproxy.pid"
MaxClients 100
MinSpareServers 5
MaxSpareServers 20
StartServers 10
MaxRequestsPerChild 0
Allow 127.0.0.1
Allow ::1

Allow 203.0.113.23

Allow 2001:db8:23::2

Allow 203.0.113.27

Allow 2001:db8:27::2

#Allow 192.168.0.0/16
#Allow 172.16.0.0/12
#Allow 10.0.0.0/8
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

if [[ $HOST == salt-deploy-crawls ]]; then
  salt_deploy_crawls
  exit 0
fi

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
    # The runbook deploys the new server before the migration: Salt has installed the same
    # crawls, cardinal files and reference tables there.
    salt_incremental
    excluded_suppliers 1500 1540
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
    salt_incremental
    excluded_suppliers 1500 1560
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
