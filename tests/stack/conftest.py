"""The private stack of the launcher's life-cycle tests: other ports, a state folder of its own."""

from __future__ import annotations

import shutil
import socket
import uuid

import pytest

from kernel.settings import REPO_ROOT, load_settings
from stack import services as stack_mod


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_settings(monkeypatch):
    state = REPO_ROOT / ".local" / "test-stacks" / uuid.uuid4().hex[:8]
    state.mkdir(parents=True)
    env = {
        "ECOM_STATE_DIR": str(state),
        "ECOM_PG_PORT": str(_free_port()),
        "ECOM_KAFKA_BOOTSTRAP": f"127.0.0.1:{_free_port()}",
        "ECOM_KAFKA_CONTROLLER_PORT": str(_free_port()),
        "ECOM_MLFLOW_PORT": str(_free_port()),
        "MLFLOW_TRACKING_URI": "",
        "ECOM_DAGSTER_PORT": str(_free_port()),
        "ECOM_DAGSTER_CODE_SERVER_PORT": str(_free_port()),
        "DAGSTER_HOME": str(state / "dagster"),
        "ECOM_PORT_WAIT_S": "3",  # a port that stays taken fails fast here
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("ECOM_PG_PASSWORD", raising=False)
    s = load_settings()
    yield s
    stack_mod.down(s, progress=lambda m: None)
    shutil.rmtree(state, ignore_errors=True)
