"""Shared test fixtures. Tests that need ../shared/data skip with a reason when it is absent (a user's clone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = Path(os.environ.get("TWEETMILL_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared data folder ({SHARED_DATA}), which only exists on the team's machines and CI")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server on 127.0.0.1 (started by infra/prefect/start-server.sh), for the whole session."""
    import subprocess
    import sys

    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_PORT": str(port),
        "PREFECT_BIN": str(Path(sys.executable).parent / "prefect"),
    }
    subprocess.run([str(REPO / "infra/prefect/start-server.sh")], env=env, check=True, timeout=180,
                   capture_output=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        yield {"url": url, "home": home, "env": {"PREFECT_API_URL": url, "PREFECT_HOME": str(home)}}
    finally:
        subprocess.run([str(REPO / "infra/prefect/stop-server.sh")], env=env, timeout=60, capture_output=True)
