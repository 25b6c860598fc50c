#!/usr/bin/env bash
# Makes sure a Docker engine answers `docker info`, starting one if it can.
#
#   bash infra/docker/ensure-engine.sh
#
# Quiet and exit 0 when an engine answers (already, or after this script started one).
# Otherwise, on Debian as root: installs Debian's docker.io package if dockerd is missing
# (apt-get update once, then apt-get install -y --no-install-recommends docker.io), starts
# dockerd in the background in its own session (it outlives this script, make and the CI job
# step that ran it; log: /var/log/streams-dockerd.log) and waits up to 60 s for it.
# Anywhere else it prints why no engine is available and exits 1.
# Needs no stdin, no systemd. Idempotent: a dockerd that is already starting is waited for,
# never started twice.
#
# Environment:
#   STREAMS_DOCKERD_FLAGS  extra dockerd flags (default none; the defaults, overlay2 storage and
#                          cgroupfs on cgroup v1 with iptables, work on this project's machines).
#                          If dockerd dies at start with the defaults, one retry is made with
#                          --iptables=false --ip6tables=false (port publishing then uses
#                          docker-proxy, which is enough for -p host:container on 127.0.0.1).
#   STREAMS_DOCKERD_LOG    log file (default /var/log/streams-dockerd.log)
#   STREAMS_DOCKERD_WAIT   seconds to wait for the engine (default 60)
set -uo pipefail

LOG="${STREAMS_DOCKERD_LOG:-/var/log/streams-dockerd.log}"
WAIT="${STREAMS_DOCKERD_WAIT:-60}"
PIDFILE=/var/run/docker.pid
me="ensure-engine.sh"

fail() { echo "$me: no Docker engine: $*" >&2; exit 1; }
engine_ok() { timeout 20 docker info >/dev/null 2>&1; }

command -v docker >/dev/null 2>&1 || [ "$(id -u)" = 0 ] ||
  fail "the docker client is not installed and this user is not root"
if command -v docker >/dev/null 2>&1 && engine_ok; then
  exit 0
fi

# --- Can we start one ourselves? -------------------------------------------------------------
if [ -n "${DOCKER_HOST:-}" ] && [[ "$DOCKER_HOST" != unix:///var/run/docker.sock ]]; then
  fail "DOCKER_HOST=$DOCKER_HOST does not answer, and a local dockerd would not be used by it; unset DOCKER_HOST or start that engine"
fi
[ "$(uname -s)" = Linux ] || fail "not Linux ($(uname -s)); start Docker Desktop or another engine yourself"
[ "$(id -u)" = 0 ] || fail "docker info fails and this user ($(id -un)) is not root, so dockerd cannot be started here; start the engine (e.g. 'sudo systemctl start docker') or add yourself to the docker group"
[ -f /etc/debian_version ] || fail "docker info fails and this is not Debian, so this script won't install an engine; install and start Docker yourself"

# --- Install dockerd if missing ---------------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "dockerd is missing and apt-get is not available"
  apt_log="$(mktemp /tmp/streams-apt-docker.XXXXXX.log)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io; } \
       >"$apt_log" 2>&1 </dev/null; then
    tail -n 20 "$apt_log" >&2
    fail "apt-get install docker.io failed (full log: $apt_log)"
  fi
  rm -f "$apt_log"
  command -v dockerd >/dev/null 2>&1 || fail "docker.io installed but dockerd is not on PATH ($PATH)"
fi
command -v docker >/dev/null 2>&1 || fail "dockerd is installed but there is no docker client on PATH"

# --- Start dockerd (unless one is already starting) -------------------------------------------
# One caller at a time (parallel make jobs); the lock's descriptor is not passed on to dockerd.
exec 8>/run/streams-ensure-engine.lock 2>/dev/null || exec 8>/tmp/streams-ensure-engine.lock
flock -w "$((WAIT + 30))" 8 || fail "another ensure-engine.sh holds the lock"
engine_ok && exit 0
dockerd_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = dockerd ] &&
    echo "$pid"
}

start_dockerd() {  # args: extra flags
  mkdir -p "$(dirname "$LOG")"
  echo "=== $(date -u +%FT%TZ) $me: starting dockerd $* ${STREAMS_DOCKERD_FLAGS:-}" >>"$LOG"
  # setsid -f: a new session, forked, so it is no child of this shell, make or the CI step
  # and gets no SIGHUP/SIGINT from their terminal or process group; stdin from /dev/null.
  # Every other inherited descriptor is closed first: a pipe or lock held open by a long-lived
  # dockerd would make whoever waits on it (a CI log reader, a flock) wait forever.
  (
    for fd in "/proc/$BASHPID/fd/"*; do
      fd="${fd##*/}"
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
    done
    # shellcheck disable=SC2086
    exec setsid -f nohup dockerd "$@" ${STREAMS_DOCKERD_FLAGS:-} >>"$LOG" 2>&1 </dev/null
  )
}

wait_engine() {  # returns 0 when up, 1 when dockerd died, 2 on timeout
  local deadline=$((SECONDS + WAIT)) seen=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    engine_ok && return 0
    if dockerd_pid >/dev/null; then
      seen=1
    elif [ "$seen" = 1 ] || [ $((SECONDS + WAIT - deadline)) -ge 5 ]; then
      # It had started and is gone, or it never appeared within 5 s.
      pgrep -x dockerd >/dev/null 2>&1 || return 1
    fi
    sleep 0.5
  done
  return 2
}

if ! dockerd_pid >/dev/null && ! pgrep -x dockerd >/dev/null 2>&1; then
  start_dockerd
fi
wait_engine; rc=$?
if [ "$rc" = 1 ]; then
  # Died at start: retry once without iptables (sandboxes without netfilter).
  start_dockerd --iptables=false --ip6tables=false
  wait_engine; rc=$?
fi
case "$rc" in
  0) exit 0 ;;
  1) tail -n 15 "$LOG" >&2; fail "dockerd exited during start-up (log: $LOG)" ;;
  *) tail -n 15 "$LOG" >&2; fail "dockerd did not answer 'docker info' within ${WAIT}s (log: $LOG)" ;;
esac
