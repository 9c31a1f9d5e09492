"""marts.customer_baselines is ml.features' CustomerState in SQL: dbt builds the real model on real Postgres
over simulated rows, and every customer's numbers equal `ml.features.customer_baselines` on the same rows,
bit for bit (last 50 amounts' median and nearest-rank p95, 20 most recent devices and countries, mean IP
position summed in the walk's order, UTC hour counts, count, last event). Then the speed layer's cold-start
fill over those SQL baselines makes a walk that starts at the cut (a fresh stream state) give the full
walk's customer context.

Runs in a scratch database (the master dataset is append-only; the shared marts are not rebuilt).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from kernel.db import connect
from kernel.settings import Settings, service_env
from ml.data import frames_from_events, load_baselines
from ml.features import (
    AMOUNT_HISTORY,
    BASELINE_COLUMNS,
    COUNTRY_MEMORY,
    CUSTOMER_CONTEXT_COLUMNS,
    DEVICE_MEMORY,
    customer_baselines,
    customer_context,
    fill_from_baselines,
    history_context,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]

START = datetime(2019, 3, 4, tzinfo=UTC)  # years in the past: nothing may depend on the wall clock
DAYS = 40


def _events() -> list[dict]:
    """The simulator's shop, plus one customer who stresses every memory: more than AMOUNT_HISTORY amounts,
    DEVICE_MEMORY devices and COUNTRY_MEMORY countries, unlocated rows, and ties in event time whose ids
    sort differently by code point than in a natural-language collation."""
    from events.simulator import ShopSimulator, SimConfig

    sim = ShopSimulator(
        SimConfig(seed=5, n_customers=1500, n_products=40, n_merchants=30, days=DAYS, start=START)
    )
    events = [e for e, _ in sim.history()]
    template = events[0]
    rng = np.random.default_rng(11)
    countries = ["DE", "FR", "US", "GB", "IT", "ES", "NL", "BE", "AT", "PL", "SE", "DK", "FI"]
    countries += ["NO", "IE", "PT", "CZ", "HU", "GR", "RO", "BG", "HR", "SK", "SI", "LT", "CA"]
    heavy = []
    for i in range(140):
        # three events share each timestamp; about 80 before the cut, 60 after (the increment walks on)
        t = START + timedelta(minutes=int(i // 3) * 1200 + 1)
        located = rng.random() > 0.15
        heavy.append(
            {
                **template,
                "transaction_id": f"bl-{['B', 'a', '_A'][i % 3]}-{i:03d}",
                "customer_id": "bl-heavy",
                "event_time": t.isoformat().replace("+00:00", "Z"),
                "amount": round(float(rng.lognormal(3.5, 1.0)), 2),
                "device_id": f"bl-dev-{rng.integers(0, 31)}",
                "ip_country": None if rng.random() < 0.1 else countries[int(rng.integers(0, 26))],
                "ip_lat": float(rng.uniform(-60, 70)) if located else None,
                "ip_lon": float(rng.uniform(-170, 170)) if located else None,
            }
        )
    return events + heavy


def _build(settings: Settings) -> None:
    """dbt builds customer_baselines and everything under it, then runs the model's own tests."""
    base = [
        "--project-dir",
        str(settings.dbt.project_dir),
        "--profiles-dir",
        str(settings.dbt.profiles_dir),
        "--target-path",
        f"target/test-baselines-{settings.postgres.db}",
    ]
    env = {**os.environ, **service_env(settings)}
    try:
        for args in (
            ["build", "--select", "+customer_baselines", "--exclude-resource-type", "test"],
            ["test", "--select", "customer_baselines"],
        ):
            out = subprocess.run(
                [str(settings.venv_bin / "dbt"), *args, *base], env=env, capture_output=True, text=True
            )
            assert out.returncode == 0, out.stdout[-3000:]
    finally:
        shutil.rmtree(settings.dbt.project_dir / base[-1], ignore_errors=True)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | np.ndarray) or isinstance(b, list | np.ndarray):
        return list(a) == list(b)
    return a == b


@pytest.fixture(scope="module")
def built(settings):
    from orchestration.scratch import scratch_database
    from streaming.landing.master import insert_master_rows, master_row

    events = _events()
    tx_all, _ = frames_from_events((e, None) for e in events)
    cut = pd.Timestamp(START + timedelta(days=DAYS * 0.6))
    early = [e for e in events if pd.Timestamp(e["event_time"]) < cut]
    with scratch_database(f"ecom_baselines_{uuid.uuid4().hex[:8]}", settings) as scratch:
        with connect(scratch) as conn:
            insert_master_rows(conn, [master_row(e, kafka_offset=i) for i, e in enumerate(early)])
        _build(scratch)
        sql = load_baselines(scratch)
        # the rest of the history lands; an increment walks on from the state the first build left
        with connect(scratch) as conn:
            later = [(i, e) for i, e in enumerate(events) if pd.Timestamp(e["event_time"]) >= cut]
            insert_master_rows(conn, [master_row(e, kafka_offset=i) for i, e in later])
        _build(scratch)
        sql_all = load_baselines(scratch)
    return {"tx": tx_all, "cut": cut, "sql": sql, "sql_all": sql_all}


def _mismatches(sql: pd.DataFrame | None, tx: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """(the Python walk's baselines over `tx`, every (customer, column) where the SQL's differ)."""
    assert sql is not None, "load_baselines found no usable marts.customer_baselines"
    _, state = history_context(tx)
    expected = customer_baselines(state.customers).set_index("customer_id").sort_index()
    got = sql.set_index("customer_id").sort_index()
    assert list(got.index) == list(expected.index) and len(got) > 100
    return expected, [
        (cid, col, got.at[cid, col], expected.at[cid, col])
        for cid in expected.index
        for col in BASELINE_COLUMNS[1:]
        if not _same(got.at[cid, col], expected.at[cid, col])
    ]


def test_sql_baselines_equal_the_feature_codes_on_the_same_rows(built) -> None:
    tx, cut = built["tx"], built["cut"]
    expected, mismatches = _mismatches(built["sql"], tx[tx["event_time"] < cut])
    assert not mismatches, f"{len(mismatches)} SQL != Python values, e.g. {mismatches[:5]}"
    # the data reaches past every memory, so a different window or rule could not pass unnoticed
    heavy = expected.loc["bl-heavy"]
    assert heavy["n_transactions"] > AMOUNT_HISTORY
    assert len(heavy["usual_device_ids"]) == DEVICE_MEMORY
    assert len(heavy["usual_countries"]) == COUNTRY_MEMORY
    assert expected["median_amount"].nunique() > 100


def test_an_increment_walks_on_to_the_feature_codes_numbers(built) -> None:
    """The rest of the history landed after the first build: the increment carried each returning
    customer's state forward over its new transactions only (customer_baselines.sql) and every number
    equals the Python walk over the whole history, the heavy customer's memories (last 50 amounts, 20
    devices and countries, the coordinate sums) included."""
    expected, mismatches = _mismatches(built["sql_all"], built["tx"])
    assert not mismatches, f"{len(mismatches)} SQL != Python values, e.g. {mismatches[:5]}"
    heavy, before = expected.loc["bl-heavy"], built["sql"].set_index("customer_id").loc["bl-heavy"]
    assert heavy["n_transactions"] - before["n_transactions"] > AMOUNT_HISTORY // 2
    assert before["n_transactions"] > AMOUNT_HISTORY and len(before["usual_device_ids"]) == DEVICE_MEMORY


def test_cold_start_fill_over_sql_baselines_gives_the_full_walks_context(built) -> None:
    """A stream state that starts at the cut (fresh checkpoint, or customers forgotten after STATE_TTL) plus
    the batch layer's baselines built before the cut: each returning customer's first event gets the context
    of a walk over the whole history. Customers idle for a day at the cut, so the short windows are empty in
    both walks."""
    tx, cut, sql = built["tx"], built["cut"], built["sql"]
    full, _ = history_context(tx)
    later = tx[tx["event_time"] >= cut]
    fresh, _ = customer_context(later)
    enriched = fill_from_baselines(pd.concat([later, fresh], axis=1), sql)
    last_before = tx[tx["event_time"] < cut].groupby("customer_id")["event_time"].max()
    idle = last_before[last_before < cut - pd.Timedelta(days=1)].index
    first_after = later[later["customer_id"].isin(idle)].drop_duplicates("customer_id").index
    assert len(first_after) >= 20
    got = enriched.loc[first_after, CUSTOMER_CONTEXT_COLUMNS]
    pd.testing.assert_frame_equal(got, full.loc[first_after, CUSTOMER_CONTEXT_COLUMNS])
    # and the fill is what made them equal: the fresh walk alone calls every one of them a first purchase
    assert (fresh.loc[first_after, "cust_n_prior"] == 0).all()
