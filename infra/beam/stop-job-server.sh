#!/usr/bin/env bash
# Stop what start-job-server.sh started (worker pool and its workers, then the job service), each by the PID
# recorded in BEAM_STATE_DIR (default /tmp/tweetmill-beam). Logs are kept.
set -uo pipefail

state="${BEAM_STATE_DIR:-/tmp/tweetmill-beam}"

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../daemons.sh"

if [[ -e "$state/worker-pool.pid" ]]; then
  pkill -TERM -P "$(cat "$state/worker-pool.pid")" 2>/dev/null  # the pool's worker processes
  stop_pid "$state/worker-pool.pid"
fi
if [[ -e "$state/job-server.pid" ]]; then
  stop_pid "$state/job-server.pid"
fi
