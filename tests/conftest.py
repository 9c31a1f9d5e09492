"""Session-wide fixtures: one local stack shared by every test that needs services.

`stack` makes sure Postgres, Kafka, MLflow and Dagster are up and migrated. If the stack was already
healthy when the session began (a developer's running stack), it is reused and left running; if this
session started it, this session stops it at the end (unless ECOM_KEEP_STACK=1).
"""

from __future__ import annotations

import os

import pytest

from ecom import stack as stack_mod
from ecom.settings import Settings, get_settings


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


def pytest_collection_modifyitems(config, items):
    """Every test marked `stack` gets the shared stack, even if it does not ask for the fixture by name."""
    for item in items:
        if item.get_closest_marker("stack") and "stack" not in item.fixturenames:
            item.fixturenames.append("stack")
