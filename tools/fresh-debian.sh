#!/usr/bin/env bash
# Runs one of the README's commands in a fresh clone on a fresh Debian 12: a debootstrap'ed
# minbase system (none of the test packages), with only this machine's Node.js, npm settings and
# CA certificates copied in, as a newcomer's machine would have them. For checking that the README's
# commands install everything they need (issue #17); as root, on Debian 12.
#   bash tools/fresh-debian.sh 'bash tools/setup-debian.sh && npm run rehearse'
#   bash tools/fresh-debian.sh --new ...   (a new system, not the one kept from the last run)
# The system is kept in /var/tmp/data-support-fresh (about 1.5 GB with the packages installed).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "fresh-debian: run as root (debootstrap, chroot)" >&2; exit 1; }
R=/var/tmp/data-support-fresh
if [ "${1:-}" = --new ]; then shift; umount -R "$R" 2> /dev/null || true; rm -rf "$R"; fi
[ $# = 1 ] || { echo "usage: bash tools/fresh-debian.sh [--new] 'COMMAND'" >&2; exit 2; }

if [ ! -x "$R/usr/bin/apt-get" ]; then
    command -v debootstrap > /dev/null || { apt-get update && apt-get install -y debootstrap; }
    rm -rf "$R"
    debootstrap --variant=minbase --include=ca-certificates,git bookworm "$R" http://deb.debian.org/debian
fi
mounted() { mountpoint -q "$1"; }
# A real machine's root is a mount point (the testbed makes it a slave mount).
mounted "$R" || mount --bind "$R" "$R"
trap 'umount -R "$R" 2> /dev/null || true' EXIT
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys" && mount --make-rslave "$R/sys"
mount --rbind /dev "$R/dev" && mount --make-rslave "$R/dev"
mount -t tmpfs -o mode=0755 tmpfs "$R/run" && mkdir -p "$R/run/lock"
# What the machine has before the README's command: Node.js 20 and npm, and the workplace's own
# CA certificates and npm settings (as on the CI machine).
cp "$(command -v node)" "$R/usr/bin/node"
rm -rf "$R/usr/lib/node_modules/npm" && mkdir -p "$R/usr/lib/node_modules"
cp -a "$(dirname "$(readlink -f "$(command -v npm)")")/.." "$R/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/bin/npm"
cp /etc/resolv.conf "$R/etc/resolv.conf"
cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/" 2> /dev/null || true
cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
for f in /root/.npmrc /etc/npmrc /usr/etc/npmrc; do [ ! -f "$f" ] || { mkdir -p "$R$(dirname "$f")"; cp "$f" "$R$f"; }; done
# No init system in a chroot: package scripts must not start daemons (they would start in this
# machine's own network namespace); the test hosts start their own.
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d" && chmod 755 "$R/usr/sbin/policy-rc.d"
chmod 1777 "$R/tmp"

rm -rf "$R/root/data-support" && git clone -q . "$R/root/data-support"
echo "fresh-debian: $(git log --oneline -1 HEAD) in $R, running: $1"
chroot "$R" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb LANG=C.UTF-8 \
    bash -c "cd /root/data-support && $1"
