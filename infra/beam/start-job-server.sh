#!/usr/bin/env bash
# Start a Beam portable job service and an SDK worker pool on 127.0.0.1, the two services a portable runner (Flink,
# Spark, or Beam's own Python job service, used here) talks to: the job service takes pipelines, the pool starts a
# worker process (this venv's Python) for each worker the job asks for. Logs and PIDs go under one state folder.
# Prints the engine's pipeline_args for them, one per line, once both answer.
#
# Workers read stage settings from their own environment, not the driver's: export TWEETMILL_PII_KEY (and any
# other key a stage reads) before starting the pool. tweetmill never puts it into a pipeline, which runners store.
#
# Settings (environment):
#   BEAM_STATE_DIR          logs, PIDs and staged files      (default /tmp/tweetmill-beam)
#   BEAM_JOB_PORT           job service port                 (default 8099)
#   BEAM_WORKER_POOL_PORT   worker pool port                 (default 50000)
#   PYTHON                  the venv's python                (default <repo>/.venv/bin/python)
#   BEAM_START_TIMEOUT      seconds to wait for both         (default 60)
# Stop them with stop-job-server.sh and the same BEAM_STATE_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/../daemons.sh"
PYTHON="${PYTHON:-$repo/.venv/bin/python}"
state="${BEAM_STATE_DIR:-/tmp/tweetmill-beam}"
job_port="${BEAM_JOB_PORT:-8099}"
pool_port="${BEAM_WORKER_POOL_PORT:-50000}"
timeout="${BEAM_START_TIMEOUT:-60}"

mkdir -p "$state/staging"
refuse_if_running "$state" "a job server"

nohup "$PYTHON" -m apache_beam.runners.portability.local_job_service_main --port "$job_port" \
  --staging_dir "$state/staging" >"$state/job-server.log" 2>&1 </dev/null &
echo $! >"$state/job-server.pid"
# The pool starts each worker as `python` from PATH: this venv's.
PATH="$(dirname "$PYTHON"):$PATH" nohup "$PYTHON" -m apache_beam.runners.worker.worker_pool_main \
  --service_port "$pool_port" --use_process >"$state/worker-pool.log" 2>&1 </dev/null &
echo $! >"$state/worker-pool.pid"

if ! "$PYTHON" - "$job_port" "$pool_port" "$timeout" <<'PY'
import socket, sys, time
ports, timeout = [int(p) for p in sys.argv[1:3]], float(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        for port in ports:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
PY
then
  echo "the job server or the worker pool did not come up within ${timeout}s; see the logs in $state" >&2
  "$here/stop-job-server.sh" >/dev/null 2>&1 || true
  exit 1
fi
echo "--job_endpoint=127.0.0.1:$job_port"
echo "--environment_type=EXTERNAL"
echo "--environment_config=127.0.0.1:$pool_port"
