#!/usr/bin/env bash
# Take a screenshot of a curate flow run's page in the real Prefect UI with headless Chromium.
# Needs: `apt-get install chromium`. Writes docs/prefect-flow-run.png.
#   bash docs/screenshot-prefect-ui.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PREFECT_HOME="$(mktemp -d)" PREFECT_PORT="${PREFECT_PORT:-4311}"
bash infra/prefect/start-server.sh
source infra/prefect/env.sh
trap 'bash infra/prefect/stop-server.sh >/dev/null' EXIT
work="$(mktemp -d)"
.venv/bin/tweetmill demo --output "$work/demo" -n 3000 >/dev/null
run_id="$(.venv/bin/python - <<'PY'
import asyncio
from prefect.client.orchestration import get_client
async def main():
    async with get_client() as c:
        runs = await c.read_flow_runs()
        print([r for r in runs if r.state and r.state.is_completed()][0].id)
asyncio.run(main())
PY
)"
url="http://127.0.0.1:${PREFECT_PORT}/runs/flow-run/${run_id}"
echo "screenshot of $url"
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1500,1000 \
  --virtual-time-budget=15000 --screenshot="$root/docs/prefect-flow-run.png" "$url" 2>/dev/null
echo "wrote docs/prefect-flow-run.png"
