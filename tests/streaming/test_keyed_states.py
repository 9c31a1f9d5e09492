"""KeyedStates: a state key's customers stored so a micro-batch decodes and re-encodes only the ids it
touches (pure; no Spark)."""

from __future__ import annotations

import orjson
import pandas as pd

from ml.features import CustomerState, customer_context
from streaming.speed.state import KeyedStates, _customer_last_ms


def _tx(rows):
    df = pd.DataFrame(
        rows,
        columns=["transaction_id", "customer_id", "event_time", "amount", "device_id", "ip_country"],
    )
    df["event_time"] = pd.to_datetime(df["event_time"], utc=True)
    df["ip_lat"], df["ip_lon"] = 48.1, 11.6
    return df


def _walk(value, tx):
    stored = KeyedStates(value, CustomerState, _customer_last_ms)
    ctx, touched = customer_context(tx, stored.get(tx["customer_id"].unique()))
    return ctx, stored.dump(touched), stored


def test_state_split_over_batches_gives_the_same_context_as_one_walk():
    rows = [
        (f"t{i}", f"c{i % 3}", f"2026-01-01T00:{i:02d}:00Z", 10.0 + i, f"d{i % 2}", "DE") for i in range(30)
    ]
    whole, _ = customer_context(_tx(rows))
    value = None
    parts = []
    for lo in range(0, 30, 7):
        ctx, value, _ = _walk(value, _tx(rows[lo : lo + 7]))
        parts.append(ctx)
    split = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(split, whole.reset_index(drop=True))


def test_a_batch_decodes_only_its_own_customers_and_keeps_the_others_bytes():
    rows = [(f"t{i}", f"c{i}", f"2026-01-01T00:{i:02d}:00Z", 10.0, "d", "DE") for i in range(50)]
    _, value, _ = _walk(None, _tx(rows))
    stored = KeyedStates(value, CustomerState, _customer_last_ms)
    assert len(stored) == 50
    got = stored.get(["c3", "nobody"])
    assert list(got) == ["c3"] and got["c3"].n == 1
    before = {r["id"]: r["state"] for r in stored.table.to_pylist()}
    _, value2, _ = _walk(value, _tx([("t99", "c3", "2026-01-01T02:00:00Z", 99.0, "d", "DE")]))
    after = {
        r["id"]: r["state"] for r in KeyedStates(value2, CustomerState, _customer_last_ms).table.to_pylist()
    }
    assert set(after) == set(before)
    assert [k for k in after if after[k] != before[k]] == ["c3"]


def test_idle_customers_are_dropped_at_the_horizon_and_an_empty_state_is_none():
    rows = [
        ("t1", "old", "2026-01-01T00:00:00Z", 5.0, "d", "DE"),
        ("t2", "new", "2026-03-01T00:00:00Z", 5.0, "d", "DE"),
    ]
    stored = KeyedStates(None, CustomerState, _customer_last_ms)
    _, touched = customer_context(_tx(rows), {})
    horizon = int(pd.Timestamp("2026-02-01", tz="UTC").timestamp() * 1000)
    kept = KeyedStates(stored.dump(touched, horizon), CustomerState, _customer_last_ms)
    assert kept.table["id"].to_pylist() == ["new"]
    assert stored.dump(touched, horizon_ms=2**62) is None


def test_a_state_saved_in_the_first_layout_still_loads_and_is_rewritten():
    _, touched = customer_context(_tx([("t1", "c1", "2026-01-01T00:00:00Z", 5.0, "d", "DE")]), {})
    legacy = orjson.dumps({k: v.to_dict() for k, v in touched.items()})
    stored = KeyedStates(legacy, CustomerState, _customer_last_ms)
    assert stored.get(["c1"])["c1"].n == 1
    rewritten = stored.dump({})
    assert rewritten[:1] != b"{"
    assert KeyedStates(rewritten, CustomerState, _customer_last_ms).get(["c1"])["c1"].n == 1
