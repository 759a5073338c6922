#!/usr/bin/env bash
# Stop what start-job-server.sh started (worker pool and its workers, then the job service), each by the PID
# recorded in BEAM_STATE_DIR (default /tmp/tweetmill-beam). Logs are kept.
set -uo pipefail

state="${BEAM_STATE_DIR:-/tmp/tweetmill-beam}"

stop_pid() {
  local pidfile="$1" pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    pkill -TERM -P "$pid" 2>/dev/null  # the pool's worker processes
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

for name in worker-pool job-server; do
  if [[ -e "$state/$name.pid" ]]; then
    stop_pid "$state/$name.pid"
  fi
done
