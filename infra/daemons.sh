# Shared by the start/stop scripts of services that run as background processes with PID files in a state folder
# (infra/spark, infra/beam). Source it; it defines functions only.

# refuse_if_running STATE WHAT: exit 1 if a process recorded in STATE/*.pid is alive; remove stale PID files.
refuse_if_running() {
  local state="$1" what="$2" pidfile
  for pidfile in "$state"/*.pid; do
    if [[ -e "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "$what is already running from $state ($(basename "$pidfile") alive); stop it first" >&2
      exit 1
    fi
    rm -f "$pidfile"
  done
}

# stop_pid PIDFILE: stop that process (TERM, up to 30 s, then KILL) and remove the file.
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
