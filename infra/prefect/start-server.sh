#!/usr/bin/env bash
# Start a Prefect server (API + UI) on 127.0.0.1 in the background; waits until /api/health answers.
# Usage: infra/prefect/start-server.sh            (port from PREFECT_PORT, default 4200)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
mkdir -p "$PREFECT_HOME"
prefect_bin="${PREFECT_BIN:-$TWEETMILL_ROOT/.venv/bin/prefect}"
pidfile="$PREFECT_HOME/server.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "prefect server already running (pid $(cat "$pidfile")) at $PREFECT_API_URL"; exit 0
fi
setsid "$prefect_bin" server start --host 127.0.0.1 --port "$PREFECT_SERVER_API_PORT" >"$PREFECT_HOME/server.log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 1 120); do
  if curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1; then
    echo "prefect server up at $PREFECT_API_URL (UI: http://127.0.0.1:$PREFECT_SERVER_API_PORT), pid $(cat "$pidfile")"; exit 0
  fi
  sleep 1
done
echo "prefect server did not answer in 120 s; see $PREFECT_HOME/server.log" >&2
exit 1
