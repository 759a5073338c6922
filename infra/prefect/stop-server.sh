#!/usr/bin/env bash
# Stop the Prefect server started by start-server.sh (by its PID).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
pidfile="$PREFECT_HOME/server.pid"
[ -f "$pidfile" ] || { echo "no server pid file"; exit 0; }
pid="$(cat "$pidfile")"
kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
rm -f "$pidfile"
echo "stopped prefect server (pid $pid)"
