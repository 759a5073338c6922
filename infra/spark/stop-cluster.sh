#!/usr/bin/env bash
# Stop the standalone cluster that start-cluster.sh started: workers first (each takes its executors down), then
# the master, each by the PID recorded in SPARK_STATE_DIR (default /tmp/tweetmill-spark). Logs are kept.
set -uo pipefail

state="${SPARK_STATE_DIR:-/tmp/tweetmill-spark}"

stop_pid() {
  local pidfile="$1" pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid"
    fi
  fi
  rm -f "$pidfile"
}

shopt -s nullglob
for pidfile in "$state"/worker-*.pid; do
  stop_pid "$pidfile"
done
if [[ -e "$state/master.pid" ]]; then
  stop_pid "$state/master.pid"
fi
