"""Per-customer and per-terminal short-window state of the speed layer (Spark `applyInPandasWithState`).

The numbers come from `ml.features` (the trainer's code, imported, not copied): `customer_context` and
`terminal_context` walk a batch's rows in event-time order with a small per-key state and return each row's
context from strictly earlier events. Here Spark keeps that state between micro-batches in its
checkpointed state store, so a replayed batch starts from exactly the state it had the first time.

Keying. Spark calls the Python function once per group key per batch, and that per-call cost dominates at
high event rates. So rows are grouped by a *state key*: the customer (or terminal) id itself, or, with
`buckets > 0`, a hash bucket of it whose state holds all of its customers (fewer, larger calls). Either
way each customer's state is the same `CustomerState`, so the results do not depend on the keying.

Watermark. The query sets an event-time watermark; a key's state forgets customers (terminals) whose last
event is older than the watermark minus `STATE_TTL` (their habits then come back from the batch layer's
baselines, see scoring.py). Late events are never dropped: they are scored against the state as it is.
Rejected events (contract violations) pass through untouched, so quarantine needs no second Kafka read.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle

from ml.features import (
    CUSTOMER_CONTEXT_COLUMNS,
    TERMINAL_CONTEXT_COLUMNS,
    CustomerState,
    TerminalState,
    customer_context,
    terminal_context,
)

STATE_TTL_MS = 35 * 86400 * 1000  # longer than every window and chargeback lookback in ml.features
STATE_SCHEMA = T.StructType([T.StructField("blob", T.BinaryType(), nullable=False)])
REJECTED_KEY = "__rejected__"


def _utc(ts: pd.Series) -> pd.Series:
    ts = pd.to_datetime(ts)
    return ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")


def _load(state: GroupState, kind: type) -> dict:
    if not state.exists:
        return {}
    raw = orjson.loads(state.get[0])
    return {k: kind.from_dict(v) for k, v in raw.items()}


def _save(state: GroupState, entries: dict, last_ms, watermark_ms: int | None) -> None:
    if watermark_ms is not None and watermark_ms > 0:
        horizon = watermark_ms - STATE_TTL_MS
        entries = {k: v for k, v in entries.items() if last_ms(v) is None or last_ms(v) >= horizon}
    if entries:
        state.update((orjson.dumps({k: v.to_dict() for k, v in entries.items()}),))
    else:
        state.remove()


def _watermark(state: GroupState) -> int | None:
    try:
        return int(state.getCurrentWatermarkMs())
    except Exception:  # no watermark in the plan (static tests)
        return None


def _context_fn(kind: type, context, columns: list[str], id_column: str, last_ms):
    def fn(key: tuple, pdfs: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        pdf = pd.concat(list(pdfs), ignore_index=True)
        if key[0] == REJECTED_KEY:
            yield pdf.assign(**{c: np.nan for c in columns})
            return
        entries = _load(state, kind)
        tx = pdf.assign(event_time=_utc(pdf["event_ts"]))
        ctx, entries = context(tx, entries)
        _save(state, entries, last_ms, _watermark(state))
        yield pd.concat([pdf, ctx[columns].astype("float64")], axis=1)

    return fn


def _customer_last_ms(st: CustomerState):
    return None if st.last_t is None else st.last_t // 1_000_000


def _terminal_last_ms(st: TerminalState):
    times = [w.times[-1] for w in st.windows.values() if w.times]
    return max(times) // 1_000_000 if times else None


def _state_key(id_column: str, buckets: int):
    key = F.col(id_column) if buckets <= 0 else F.pmod(F.xxhash64(id_column), F.lit(buckets)).cast("string")
    return F.when(F.col("reject_reason").isNull(), key).otherwise(F.lit(REJECTED_KEY))


def _apply(df: DataFrame, id_column: str, buckets: int, kind, context, columns, last_ms) -> DataFrame:
    out_schema = T.StructType(
        [f for f in df.schema.fields if f.name != "state_key"]
        + [T.StructField(c, T.DoubleType(), True) for c in columns]
    )
    keyed = df.withColumn("state_key", _state_key(id_column, buckets))
    fn = _context_fn(kind, context, columns, id_column, last_ms)

    def with_key_dropped(key, pdfs, state):
        yield from fn(key, (p.drop(columns=["state_key"]) for p in pdfs), state)

    return keyed.groupBy("state_key").applyInPandasWithState(
        with_key_dropped, out_schema, STATE_SCHEMA, "append", GroupStateTimeout.NoTimeout
    )


def with_customer_context(df: DataFrame, buckets: int = 0) -> DataFrame:
    """Adds CUSTOMER_CONTEXT_COLUMNS (velocity, usual amount/devices/countries/place/hours) from keyed state."""
    return _apply(
        df,
        "customer_id",
        buckets,
        CustomerState,
        customer_context,
        CUSTOMER_CONTEXT_COLUMNS,
        _customer_last_ms,
    )


class TerminalProcessor(StatefulProcessor):
    """transformWithStateInPandas processor: per-terminal (or per-bucket) window state in one ValueState.

    Spark allows one applyInPandasWithState per query, so the second keyed state (terminals) uses Spark 4's
    transformWithState API. It runs without a time mode (late events are never dropped); a terminal is
    forgotten once it has been idle for STATE_TTL in event time (relative to the newest event of its key).
    """

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.state = handle.getValueState("terminals", STATE_SCHEMA)

    def handleInputRows(self, key, rows, timerValues) -> Iterator[pd.DataFrame]:
        pdf = pd.concat(list(rows), ignore_index=True).drop(columns=["state_key"])
        if key[0] == REJECTED_KEY:
            yield pdf.assign(**{c: np.nan for c in TERMINAL_CONTEXT_COLUMNS})
            return
        entries = {}
        if self.state.exists():
            entries = {k: TerminalState.from_dict(v) for k, v in orjson.loads(self.state.get()[0]).items()}
        tx = pdf.assign(event_time=_utc(pdf["event_ts"]))
        ctx, entries = terminal_context(tx, entries)
        newest = max((_terminal_last_ms(v) or 0) for v in entries.values()) if entries else 0
        entries = {k: v for k, v in entries.items() if (_terminal_last_ms(v) or 0) >= newest - STATE_TTL_MS}
        self.state.update((orjson.dumps({k: v.to_dict() for k, v in entries.items()}),))
        yield pd.concat([pdf, ctx[TERMINAL_CONTEXT_COLUMNS].astype("float64")], axis=1)

    def close(self) -> None:
        pass


def with_terminal_context(df: DataFrame, buckets: int = 0) -> DataFrame:
    """Adds TERMINAL_CONTEXT_COLUMNS (terminal volume over 1 h / 24 h) from keyed state."""
    out_schema = T.StructType(
        [f for f in df.schema.fields if f.name != "state_key"]
        + [T.StructField(c, T.DoubleType(), True) for c in TERMINAL_CONTEXT_COLUMNS]
    )
    keyed = df.withColumn("state_key", _state_key("terminal_id", buckets))
    return keyed.groupBy("state_key").transformWithStateInPandas(
        statefulProcessor=TerminalProcessor(),
        outputStructType=out_schema,
        outputMode="Append",
        timeMode="None",
    )
