"""Prefect flows and the CLI. Importing this package sets closed-network defaults before Prefect loads."""

import os
from pathlib import Path

# No telemetry, and Prefect's state in the working folder unless the user chose otherwise.
os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Without PREFECT_API_URL, Prefect starts a temporary local server; on a busy 2-core box that can take a minute.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
