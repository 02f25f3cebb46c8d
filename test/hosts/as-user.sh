#!/usr/bin/env bash
# as-user.sh USER CMD...: runs inside a test host (from `testbed.sh exec`); starts CMD as USER in
# USER's home directory, as a login on a real server would. stdin and the exit code pass through.
set -euo pipefail
user=$1
shift
home=$(getent passwd "$user" | cut -d: -f6) || { echo "testbed: no user $user on $(hostname)" >&2; exit 1; }
cd "$home" 2>/dev/null || cd /
if [[ $user == root ]]; then exec "$@"; fi
exec runuser -u "$user" -- "$@"
