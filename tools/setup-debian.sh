#!/usr/bin/env bash
# Everything the rehearsal and the tests need on a fresh Debian 12 machine, as root: the Debian
# packages of the test hosts' real services, then the project's npm packages. The README's two
# commands and .ci/run start with it; run again, it only checks (nothing to install twice).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "setup: run as root: the test hosts are Linux namespaces (and apt-get installs their services)" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]' 2> /dev/null || echo 0)
if [ "$major" -lt 20 ]; then
    echo "setup: Node.js 20 or later is needed (found: $(node --version 2> /dev/null || echo none); Debian 12's own nodejs is 18). Install Node.js 20 (nodejs.org or NodeSource), then run this again." >&2
    exit 1
fi

# The test hosts' real services (design.md, "How we test without a cloud"); Go and x/crypto build
# test/support/provider-ssh, the provider's own SSH library, offline.
packages=(
    openssh-server openssh-client tinyproxy rabbitmq-server cron rsync
    postgresql-15 postgresql-client-15 iproute2 curl openssl procps util-linux dash python3 nftables tzdata
    golang-go golang-golang-x-crypto-dev
)
installed=$(dpkg-query -W -f '${db:Status-Abbrev}\n' "${packages[@]}" 2> /dev/null | grep -c '^ii' || true)
if [ "$installed" -ne "${#packages[@]}" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${packages[@]}"
else
    echo "setup: the Debian packages are installed"
fi

# npm ci once per package-lock.json (it removes and reinstalls node_modules every time).
stamp=node_modules/.data-support-setup
lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2> /dev/null || true)" != "$lock" ]; then
    npm ci
    echo "$lock" > "$stamp"
else
    echo "setup: node_modules matches package-lock.json"
fi
