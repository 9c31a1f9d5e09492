"""Fixtures of the quality tests: a throwaway `qtest_<uuid>` schema per test and a private GX context.

master.transactions is shared and append-only, and other rooms write to it while we run, so bad rows are
never injected there (see support.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kernel.db import connect, migrate
from kernel.settings import Settings
from tests.expectations.support import QSchema, create_like


@pytest.fixture
def qschema(stack: Settings) -> Iterator[QSchema]:
    migrate(stack)
    name = f"qtest_{uuid.uuid4().hex[:12]}"
    with connect(stack, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        create_like(conn, name, "master.transactions", "transactions")
        create_like(conn, name, "speed.scored_transactions", "scored_transactions")
    try:
        yield QSchema(stack, name, datetime.now(UTC))
    finally:
        with connect(stack, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def gx_root(tmp_path: Path) -> Path:
    """A private GX project root: tests never write into the platform's generated context (.local/gx)."""
    return tmp_path / "gxproject"
