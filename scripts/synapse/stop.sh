#!/usr/bin/env bash
# stop.sh DIR -- stop the Synapse that start.sh started in DIR (same as the shared 1.67 kit's stop.sh).
#
# Kills only the PID in DIR/synapse.pid, and only after checking (via /proc) that it is a
# `synapse.app.homeserver` process running DIR/homeserver.yaml. SIGTERM, waits up to 30 s for it
# to exit (SIGKILL after that). Removes DIR/synapse.pid and DIR/RUNNING.json; keeps all data,
# so a later start.sh DIR continues with the same database, users and rooms.
# Exit 0 when nothing is running (idempotent).
set -Eeuo pipefail

die() { trap - ERR; echo "stop.sh: ERROR: $*" >&2; exit 1; }
trap 'die "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

if [ $# -ne 1 ] || [ -z "$1" ]; then echo "usage: stop.sh DIR" >&2; exit 2; fi
if [ ! -d "$1" ]; then echo "synapse not running ($1 does not exist)"; exit 0; fi
DIR=$(cd -- "$1" && pwd -P)
CFG=$DIR/homeserver.yaml
PIDFILE=$DIR/synapse.pid
RUNNING=$DIR/RUNNING.json

exec 9>>"$DIR/.kit.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 120 9 || die "timed out waiting for $DIR/.kit.lock (a start.sh on $DIR still running?)"
fi

alive() {   # process exists and is not a zombie
  local state
  state=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

if [ ! -s "$PIDFILE" ]; then
  rm -f -- "$RUNNING"
  echo "synapse not running in $DIR (no pid file)"; exit 0
fi
PID=$(head -c 32 -- "$PIDFILE" | tr -dc 0-9)
if [ -z "$PID" ] || ! alive "$PID"; then
  rm -f -- "$PIDFILE" "$RUNNING"
  echo "synapse not running in $DIR (stale pid file removed)"; exit 0
fi
CMD=$(tr '\0' '\n' < "/proc/$PID/cmdline" 2>/dev/null || true)
if ! grep -qxF 'synapse.app.homeserver' <<<"$CMD" || ! grep -qxF -- "$CFG" <<<"$CMD"; then
  # The PID was reused by an unrelated process: Synapse is not running. Never kill it.
  rm -f -- "$PIDFILE" "$RUNNING"
  echo "synapse not running in $DIR (pid $PID is not its Synapse: $(tr '\n' ' ' <<<"$CMD" | head -c 120); not killed, stale pid file removed)"
  exit 0
fi

kill -TERM "$PID" 2>/dev/null || true
for _ in $(seq 1 120); do alive "$PID" || break; sleep 0.25; done
if alive "$PID"; then
  echo "stop.sh: pid $PID still running 30 s after SIGTERM; sending SIGKILL" >&2
  kill -KILL "$PID" 2>/dev/null || true
  for _ in $(seq 1 40); do alive "$PID" || break; sleep 0.25; done
  if alive "$PID"; then die "pid $PID survived SIGKILL"; fi
fi
rm -f -- "$PIDFILE" "$RUNNING"
echo "synapse stopped (pid $PID, $DIR)"
