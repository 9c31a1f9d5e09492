"""Postgres edges of the analytics room: the atomic table swap and reading the warehouse."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from analytics import io
from kernel.db import connect

pytestmark = pytest.mark.stack


@pytest.fixture
def schema(settings):
    name = f"analytics_test_{uuid.uuid4().hex[:8]}"
    with connect(settings, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    with connect(settings, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def test_replace_table_swaps_atomically_and_readers_never_see_a_partial_table(settings, schema):
    old = pd.DataFrame({"k": range(10), "v": 1.0})
    new = pd.DataFrame({"k": range(50_000), "v": 2.0, "t": pd.Timestamp("2024-01-01 10:00:00.123456")})
    with connect(settings) as conn:
        io.replace_table(conn, schema, "t", old)
        conn.commit()

    seen: list[tuple] = []

    def reader() -> None:
        with connect(settings, autocommit=True) as rconn:
            while len(seen) < 200:
                seen.append(rconn.execute(f'SELECT count(*), min(v), max(v) FROM "{schema}".t').fetchone())

    with connect(settings) as conn:
        conn.execute("SELECT 1")  # an open transaction around the swap: nothing is visible before commit
        io.replace_table(conn, schema, "t", new)
        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.5)
        conn.commit()
        t.join(timeout=60)
    # every read saw the whole old table or the whole new one
    assert seen and set(seen) <= {(10, 1.0, 1.0), (50_000, 2.0, 2.0)}
    assert seen[-1] == (50_000, 2.0, 2.0)
    with connect(settings) as conn:
        back = io.read_table(conn, schema, "t")
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()[0]
    assert back["t"].iloc[0] == pd.Timestamp("2024-01-01 10:00:00.123456")  # microseconds kept
    assert tables == 1  # no leftover temp tables


def _land_one_transaction(conn, customer_id: str, when: datetime) -> str:
    """One contract-shaped row in the master dataset under a customer id of this test only."""
    tid = f"an-test-{uuid.uuid4().hex}"
    conn.execute(
        "INSERT INTO master.transactions (transaction_id, schema_version, customer_id, merchant_id, terminal_id, "
        "event_time, currency, amount, payment_method, channel, device_id, device_type, line_items, kafka_topic, "
        "kafka_partition, kafka_offset, kafka_timestamp) VALUES (%s, 1, %s, 'M1', 'T1', "
        "%s, 'EUR', 23.5, 'card', 'web', 'd1', 'desktop', %s::jsonb, 'analytics-test', "
        "0, 0, now())",
        (
            tid,
            customer_id,
            when,
            '[{"product_id": "PA", "quantity": 2, "unit_price": 10.0}, '
            '{"product_id": "PB", "quantity": 1, "unit_price": 3.5}]',
        ),
    )
    return tid


def _build_order_lines(settings) -> None:
    """dbt itself builds fct_order_lines and what it needs (the snapshot included) in `settings`' database."""
    import os
    import subprocess

    from kernel.settings import service_env

    out = subprocess.run(
        [
            str(settings.venv_bin / "dbt"),
            "build",
            "--select",
            "+fct_order_lines",
            "--exclude-resource-type",
            "test",
            "--project-dir",
            str(settings.dbt.project_dir),
            "--profiles-dir",
            str(settings.dbt.profiles_dir),
            "--target-path",
            f"target/test-analytics-{settings.postgres.db}",
        ],
        env={**os.environ, **service_env(settings)},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-2000:]


@pytest.mark.slow
def test_reads_the_order_lines_model_in_the_canonical_shape(settings):
    """Order lines come from the dbt model (marts.fct_order_lines), never re-derived from the master
    dataset: before the batch layer has built it there is one clear error, after it the landed line items
    are read in the canonical shape. In a scratch database, so the shared marts are not rebuilt."""
    from kernel.errors import EcomError
    from orchestration.scratch import scratch_database

    customer = f"an-test-{uuid.uuid4().hex[:10]}"
    when = datetime.now(timezone(timedelta(hours=2))).replace(microsecond=500_000) - timedelta(days=1)
    with scratch_database(f"ecom_analytics_io_{uuid.uuid4().hex[:8]}", settings) as scratch:
        with connect(scratch) as conn:
            tid = _land_one_transaction(conn, customer, when)
            conn.commit()
            with pytest.raises(EcomError, match=r"marts\.fct_order_lines does not exist yet.*ecom batch"):
                io.read_lines_from_db(conn)
        _build_order_lines(scratch)
        with connect(scratch) as conn:
            lines, src = io.read_lines_from_db(conn)
    assert src == "marts.fct_order_lines"
    assert list(lines.columns) == list(io.CANONICAL)
    mine = lines[lines["customer_id"] == customer].sort_values("product_id").reset_index(drop=True)
    assert mine["order_id"].tolist() == [tid, tid]
    assert mine["product_id"].tolist() == ["PA", "PB"]
    assert mine["amount"].tolist() == [20.0, 3.5]
    assert mine["quantity"].tolist() == [2.0, 1.0]
    utc_naive = pd.Timestamp(when).tz_convert("UTC").tz_localize(None)
    assert (mine["order_time"] == utc_naive).all()  # UTC, naive, microseconds kept
