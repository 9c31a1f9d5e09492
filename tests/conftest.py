"""Session-wide fixtures: one local stack shared by every test that needs services.

`stack` makes sure Postgres, Kafka, MLflow and Dagster are up and migrated. If the stack was already
healthy when the session began (a developer's running stack), it is reused and left running; if this
session started it, this session stops it at the end (unless ECOM_KEEP_STACK=1).
"""

from __future__ import annotations

import os

import pytest

from kernel.settings import Settings, get_settings
from stack import services as stack_mod


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings):
    already_up = all(st["healthy"] for st in stack_mod.status(settings))
    stack_mod.up(settings, progress=lambda msg: print(f"[stack] {msg}"))
    yield settings
    if not already_up and os.environ.get("ECOM_KEEP_STACK") != "1":
        stack_mod.down(settings, progress=lambda msg: print(f"[stack] {msg}"))


@pytest.fixture(scope="session")
def spark():
    """One in-process Spark session per test process (speed, landing, floor probe and reliability tests)."""
    from kernel.spark import get_spark

    return get_spark("ecom-tests")


# rooms in pipeline order: a fresh stack then fills the way the platform does (events before the speed
# layer, the batch layer before what reads its marts), and the fault-injection suites run last
ROOM_ORDER = [
    "kernel",
    "stack",
    "events",
    "streaming",
    "bench",
    "orchestration",
    "ml",
    "analytics",
    "expectations",
    "dashboards",
    "ecom",
    "architecture",
    "security",
    "reliability",
]


def _room_rank(item) -> int:
    parts = item.nodeid.split("/")
    room = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    return ROOM_ORDER.index(room) if room in ROOM_ORDER else len(ROOM_ORDER)


def pytest_collection_modifyitems(config, items):
    """Order tests by room (stable within a room); every `stack` test gets the shared stack."""
    items.sort(key=_room_rank)
    for item in items:
        if item.get_closest_marker("stack") and "stack" not in item.fixturenames:
            item.fixturenames.append("stack")
