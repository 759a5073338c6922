# Source me: closed-network Prefect settings for tweetmill (no telemetry, state in the project folder).
: "${TWEETMILL_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export PREFECT_HOME="${PREFECT_HOME:-$TWEETMILL_ROOT/.prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DO_NOT_TRACK=1
export PREFECT_SERVER_API_HOST=127.0.0.1
export PREFECT_SERVER_API_PORT="${PREFECT_PORT:-4200}"
export PREFECT_API_URL="http://127.0.0.1:${PREFECT_SERVER_API_PORT}/api"
