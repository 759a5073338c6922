#!/usr/bin/env bash
# Stop the standalone cluster that start-cluster.sh started: workers first (each takes its executors down), then
# the master, each by the PID recorded in SPARK_STATE_DIR (default /tmp/tweetmill-spark). Logs are kept.
set -uo pipefail

state="${SPARK_STATE_DIR:-/tmp/tweetmill-spark}"

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../daemons.sh"

shopt -s nullglob
for pidfile in "$state"/worker-*.pid; do
  stop_pid "$pidfile"
done
if [[ -e "$state/master.pid" ]]; then
  stop_pid "$state/master.pid"
fi
