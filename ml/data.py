"""Where the fraud model's data comes from: the master dataset, the shop simulator, or a labelled file as replayed.

Thin adapters only: they return two frames in the shape ml.features expects, `transactions` (contract
columns, tz-aware `event_time`, float `amount`) and `chargebacks` (transaction_id, customer_id, terminal_id
of the disputed transaction, reported_at, fraud_scenario).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings
from ml.features import BASELINE_COLUMNS, INPUT_COLUMNS

log = logging.getLogger("ecom.ml.data")

# the master dataset columns training reads: exactly what the feature code reads
TX_COLUMNS = INPUT_COLUMNS
CB_COLUMNS = ["transaction_id", "customer_id", "terminal_id", "reported_at", "fraud_scenario"]


def tidy_transactions(tx: pd.DataFrame) -> pd.DataFrame:
    """Transactions as the feature code reads them: UTC event times, float amounts and coordinates,
    sorted by (event_time, transaction_id)."""
    tx = tx.copy()
    tx["event_time"] = pd.to_datetime(tx["event_time"], utc=True, format="ISO8601")
    tx["amount"] = pd.to_numeric(tx["amount"]).astype(float)
    for col in ("ip_lat", "ip_lon"):
        tx[col] = pd.to_numeric(tx[col], errors="coerce").astype(float)
    return tx.sort_values(["event_time", "transaction_id"], kind="mergesort").reset_index(drop=True)


def _empty_chargebacks() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="datetime64[ns, UTC]" if c == "reported_at" else object) for c in CB_COLUMNS}
    )


def frames_from_events(
    pairs: Iterable[tuple[dict[str, Any], dict[str, Any] | None]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(event, label-or-None) pairs (the simulator's `history()`) -> (transactions, chargebacks)."""
    events, labels = [], []
    for event, label in pairs:
        events.append({c: event.get(c) for c in TX_COLUMNS})
        if label:
            labels.append(
                {
                    "transaction_id": label["transaction_id"],
                    "customer_id": label.get("customer_id", event["customer_id"]),
                    "terminal_id": event["terminal_id"],
                    "reported_at": label["reported_at"],
                    "fraud_scenario": label.get("fraud_scenario", "reported"),
                }
            )
    tx = tidy_transactions(pd.DataFrame(events, columns=TX_COLUMNS))
    cb = pd.DataFrame(labels, columns=CB_COLUMNS) if labels else _empty_chargebacks()
    cb["reported_at"] = pd.to_datetime(cb["reported_at"], utc=True, format="ISO8601")
    return tx, cb


def simulated_history(
    seed: int = 7,
    n_customers: int = 2000,
    n_products: int = 300,
    n_merchants: int = 50,
    days: int = 60,
    **kw: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labelled history from the shop simulator (events.simulator), as (transactions, chargebacks)."""
    from events.simulator import ShopSimulator, SimConfig

    sim = ShopSimulator(
        SimConfig(
            seed=seed,
            n_customers=n_customers,
            n_products=n_products,
            n_merchants=n_merchants,
            days=days,
            **kw,
        )
    )
    return frames_from_events(sim.history())


def load_master(
    settings: Settings | None = None, since: datetime | None = None, until: datetime | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The batch layer's immutable truth: master.transactions (event_time in [since, until)) + chargebacks."""
    from kernel.db import connect

    s = settings or get_settings()
    where, params = [], []
    if since is not None:
        where.append("event_time >= %s")
        params.append(since)
    if until is not None:
        where.append("event_time < %s")
        params.append(until)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    cols = ", ".join(TX_COLUMNS)
    with connect(s) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {cols} FROM master.transactions {clause}", params)
        tx = pd.DataFrame(cur.fetchall(), columns=TX_COLUMNS)
    cb = load_chargebacks(s)
    return tidy_transactions(tx), cb


def load_chargebacks(
    settings: Settings | None = None, reported_since: datetime | None = None
) -> pd.DataFrame:
    """Chargebacks joined to their transaction's terminal (all of them, or those reported since a time)."""
    from kernel.db import connect

    s = settings or get_settings()
    sql = (
        "SELECT c.transaction_id, c.customer_id, t.terminal_id, c.reported_at, c.fraud_scenario "
        "FROM master.chargebacks c JOIN master.transactions t USING (transaction_id)"
    )
    params: list[Any] = []
    if reported_since is not None:
        sql += " WHERE c.reported_at >= %s"
        params.append(reported_since)
    with connect(s) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        cb = pd.DataFrame(cur.fetchall(), columns=CB_COLUMNS)
    if cb.empty:
        return _empty_chargebacks()
    cb["reported_at"] = pd.to_datetime(cb["reported_at"], utc=True)
    return cb


def load_baselines(settings: Settings | None = None) -> pd.DataFrame | None:
    """marts.customer_baselines as BASELINE_COLUMNS, for ml.features.fill_from_baselines.

    None (no fill: a cold start, never a failure) when the batch layer has not built the table yet, or built
    it with another definition (a table from before a column existed: rebuilt by the next `ecom batch`)."""
    from kernel.db import connect

    s = settings or get_settings()
    with connect(s) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('marts.customer_baselines') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = 'customer_baselines'"
        )
        missing = set(BASELINE_COLUMNS) - {r[0] for r in cur.fetchall()}
        if missing:
            log.warning(
                "marts.customer_baselines lacks %s (built by an older model): no cold-start fill until "
                "`ecom batch` rebuilds it",
                sorted(missing),
            )
            return None
        cur.execute(f"SELECT {', '.join(BASELINE_COLUMNS)} FROM marts.customer_baselines")
        df = pd.DataFrame(cur.fetchall(), columns=BASELINE_COLUMNS)
    df["last_seen_at"] = pd.to_datetime(df["last_seen_at"], utc=True)
    return df


def input_example(enriched: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """A few rows of model input for MLflow (line_items as JSON text: a plain signature type)."""
    ex = enriched.head(n).copy()
    # MLflow signatures only take tz-naive datetimes; the contract's form (ISO 8601 text) keeps the offset
    ex["event_time"] = pd.to_datetime(ex["event_time"], utc=True).map(lambda t: t.isoformat())
    if "line_items" in ex.columns:
        ex["line_items"] = ex["line_items"].map(lambda v: v if isinstance(v, str) else json.dumps(v))
    return ex


def model_input(enriched: pd.DataFrame) -> pd.DataFrame:
    """The columns a fraud model reads: contract inputs + context (extra columns are dropped)."""
    from ml.features import CONTEXT_COLUMNS

    return enriched[[c for c in INPUT_COLUMNS if c in enriched.columns] + CONTEXT_COLUMNS]


def replayed_history(
    path: Path, columns: dict[str, str], label_delay_days: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A labelled CSV/Parquet as `ecom replay` lands it: (transactions, chargebacks) of the very events and
    labels replay sends (its column mapping and defaults, its fixed label delay), without Kafka.

    A row replay would dead-letter raises: a file fit for training has none."""
    from events.replay import ColumnMapping, ordered_events

    bad: list[tuple[int, str]] = []
    pairs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for table in ordered_events(
            path,
            ColumnMapping(dict(columns)),
            lambda line, _raw, reason: bad.append((line, reason)),
            Path(tmp),
            label_delay_days=label_delay_days,
        ):
            labels = table.column("label").to_pylist()
            for value, label in zip(table.column("value").to_pylist(), labels, strict=True):
                pairs.append((orjson.loads(value), orjson.loads(label) if label is not None else None))
    if bad:
        line, reason = bad[0]
        raise EcomError(f"{path}: {len(bad)} rows replay would dead-letter (line {line}: {reason})")
    return frames_from_events(pairs)
