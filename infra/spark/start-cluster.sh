#!/usr/bin/env bash
# Start a Spark standalone cluster on 127.0.0.1 from the pyspark install: one master and N workers, each a JVM
# started with spark-class, logs and PIDs under one state folder. Prints the master URL once every worker has
# registered. Workers run the Python of this venv (they share the machine, so they share the venv and its models).
#
# Settings (environment):
#   SPARK_STATE_DIR          logs, PIDs and work folders          (default /tmp/tweetmill-spark)
#   SPARK_MASTER_PORT        master RPC port                       (default 7077)
#   SPARK_MASTER_WEBUI_PORT  master web UI (and /json status) port (default 8080)
#   SPARK_WORKERS            number of workers                     (default 1)
#   SPARK_WORKER_CORES       cores per worker                      (default 2)
#   SPARK_WORKER_MEMORY      memory per worker, e.g. 2g            (default 2g; at least an executor's memory)
#   SPARK_GPUS               GPUs of this machine to offer GPU stages (default 0), shared out among the workers;
#                            runs then set spark.executor.resource.gpu.amount (docs/spark.md, "GPUs")
#   SPARK_EXECUTOR_MEMORY    the executors' memory the runs ask for (default: spark.executor.memory below)
#   PYTHON                   the venv's python                     (default <repo>/.venv/bin/python)
#   SPARK_START_TIMEOUT      seconds to wait for the workers       (default 180)
# Stop it with stop-cluster.sh and the same SPARK_STATE_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/../daemons.sh"
PYTHON="${PYTHON:-$repo/.venv/bin/python}"
state="${SPARK_STATE_DIR:-/tmp/tweetmill-spark}"
port="${SPARK_MASTER_PORT:-7077}"
webui="${SPARK_MASTER_WEBUI_PORT:-8080}"
workers="${SPARK_WORKERS:-1}"
cores="${SPARK_WORKER_CORES:-2}"
memory="${SPARK_WORKER_MEMORY:-2g}"
timeout="${SPARK_START_TIMEOUT:-180}"
gpus="${SPARK_GPUS:-0}"

# An executor must fit in a worker: otherwise the master never starts one, and a job waits for resources forever.
executor_memory="${SPARK_EXECUTOR_MEMORY:-$(awk '$1 == "spark.executor.memory" {print $2}' "$here/spark-defaults.conf")}"
if ! "$PYTHON" - "$memory" "$executor_memory" <<'PY'
import re, sys
def mb(size):
    number, unit = re.fullmatch(r"(\d+)([kmgt]?)b?", size.strip().lower()).groups()
    return int(number) * {"k": 1 / 1024, "": 1 / 1024 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}[unit]
sys.exit(0 if mb(sys.argv[1]) >= mb(sys.argv[2]) else 1)
PY
then
  echo "SPARK_WORKER_MEMORY=$memory is less than an executor's memory ($executor_memory, spark.executor.memory in" \
       "$here/spark-defaults.conf or SPARK_EXECUTOR_MEMORY): no executor could start; give workers more, or run" \
       "with engine_options {executor_memory: $memory} and SPARK_EXECUTOR_MEMORY=$memory here" >&2
  exit 1
fi

SPARK_HOME="$("$PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
export SPARK_HOME SPARK_CONF_DIR="$here" SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$PYTHON"

mkdir -p "$state"
refuse_if_running "$state" "a cluster"

master="spark://127.0.0.1:$port"
# spark-class execs the JVM, so $! is the daemon's own PID.
nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
  --host 127.0.0.1 --port "$port" --webui-port "$webui" >"$state/master.log" 2>&1 </dev/null &
echo $! >"$state/master.pid"
for i in $(seq 1 "$workers"); do
  mkdir -p "$state/work-$i"
  # Worker i offers GPUs i-1, i-1+workers, ... (indexes as torch and nvidia-smi number them), named by a discovery
  # script of its own: two workers never offer the same GPU.
  addresses="$(seq -s ' ' $((i - 1)) "$workers" $((gpus - 1)) 2>/dev/null || true)"
  worker_opts="${SPARK_WORKER_OPTS:-}"
  if [ -n "$addresses" ]; then
    printf '#!/usr/bin/env bash\necho %s\n' \
      "'{\"name\": \"gpu\", \"addresses\": [$(printf '"%s",' $addresses | sed 's/,$//')]}'" >"$state/gpus-$i.sh"
    chmod +x "$state/gpus-$i.sh"
    worker_opts="$worker_opts -Dspark.worker.resource.gpu.amount=$(wc -w <<<"$addresses")"
    worker_opts="$worker_opts -Dspark.worker.resource.gpu.discoveryScript=$state/gpus-$i.sh"
  fi
  SPARK_WORKER_OPTS="$worker_opts" nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
    --host 127.0.0.1 --cores "$cores" --memory "$memory" --work-dir "$state/work-$i" --webui-port 0 \
    "$master" >"$state/worker-$i.log" 2>&1 </dev/null &
  echo $! >"$state/worker-$i.pid"
done

# Ready when the master's status page lists every worker as alive.
if ! "$PYTHON" - "$webui" "$workers" "$timeout" <<'PY'
import json, sys, time, urllib.request
webui, wanted, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui}/json/", timeout=5) as r:
            if json.load(r).get("aliveworkers", 0) >= wanted:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(1)
sys.exit(1)
PY
then
  echo "the cluster did not come up within ${timeout}s; see the logs in $state" >&2
  "$here/stop-cluster.sh" >/dev/null 2>&1 || true
  exit 1
fi
echo "$master"
