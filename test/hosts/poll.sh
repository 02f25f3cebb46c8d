# poll TRIES WHAT CMD...: readiness check with bounded retries, 0.1 s apart (never a bare sleep).
# Sourced by testbed.sh and provision.sh; POLL_WHO names the caller in the timeout message.
poll() {
  local tries=$1 what=$2 i
  shift 2
  for ((i = 0; i < tries; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "${POLL_WHO:-testbed}: timed out waiting for $what" >&2
  return 1
}
