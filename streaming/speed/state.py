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
import pyarrow as pa
import pyarrow.compute as pc
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


def utc_event_time(ts: pd.Series) -> pd.Series:
    """Spark's `event_ts` as pandas hands it over (naive UTC under the session's UTC zone) -> tz-aware UTC,
    the form ml.features reads. Shared by the keyed state and scoring.py."""
    ts = pd.to_datetime(ts)
    return ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")


class KeyedStates:
    """The customers (terminals) of one state key, stored so a batch pays only for the ids it touches.

    The state value is an Arrow IPC stream of (id, last_ms, state) rows, `state` being one id's orjson
    `to_dict()`. Loading reads the table (no per-id work); `get` decodes only the ids of this batch;
    `dump` re-encodes only those, keeps every other row's bytes as they are, and drops ids idle since
    before `horizon_ms`. (A bucket holds thousands of customers; decoding all of them every micro-batch
    was the speed layer's largest fixed cost.) A value in the first layout (one orjson dict of every id)
    still loads, and is rewritten in this layout on the next save.
    """

    SCHEMA = pa.schema([("id", pa.string()), ("last_ms", pa.int64()), ("state", pa.binary())])

    def __init__(self, raw: bytes | None, kind: type, last_ms) -> None:
        self.kind = kind
        self.last_ms = last_ms
        self.legacy: dict = {}
        if not raw:
            self.table = self.SCHEMA.empty_table()
        elif raw[:1] == b"{":
            self.legacy = {k: kind.from_dict(v) for k, v in orjson.loads(raw).items()}
            self.table = self.SCHEMA.empty_table()
        else:
            self.table = pa.ipc.open_stream(raw).read_all()

    def __len__(self) -> int:
        return self.table.num_rows + len(self.legacy)

    def get(self, ids) -> dict:
        """Decoded state of the given ids that exist (new ids are simply absent)."""
        keys = {str(i) for i in ids}
        wanted = pa.array(sorted(keys), pa.string())
        out = {k: v for k, v in self.legacy.items() if k in keys}
        if self.table.num_rows:
            hit = self.table.filter(pc.is_in(self.table["id"], value_set=wanted))
            for k, blob in zip(hit["id"].to_pylist(), hit["state"].to_pylist(), strict=True):
                out[k] = self.kind.from_dict(orjson.loads(blob))
        return out

    def dump(self, updated: dict, horizon_ms: int | None = None) -> bytes | None:
        """The new state value: `updated` re-encoded, the rest untouched, idle ids dropped (None: empty)."""
        rest = self.table
        if updated and rest.num_rows:
            rest = rest.filter(
                pc.invert(pc.is_in(rest["id"], value_set=pa.array(list(updated), pa.string())))
            )
        carried = {k: v for k, v in self.legacy.items() if k not in updated}
        fresh = {**carried, **updated}
        new = pa.table(
            {
                "id": list(fresh),
                "last_ms": [self.last_ms(v) for v in fresh.values()],
                "state": [orjson.dumps(v.to_dict()) for v in fresh.values()],
            },
            schema=self.SCHEMA,
        )
        table = pa.concat_tables([rest, new]) if rest.num_rows else new
        if horizon_ms is not None and table.num_rows:
            last = table["last_ms"]
            table = table.filter(pc.or_kleene(pc.is_null(last), pc.greater_equal(last, horizon_ms)))
        if not table.num_rows:
            return None
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.SCHEMA) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()


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
        stored = KeyedStates(state.get[0] if state.exists else None, kind, last_ms)
        tx = pdf.assign(event_time=utc_event_time(pdf["event_ts"]))
        ctx, touched = context(tx, stored.get(tx[id_column].unique()))
        watermark = _watermark(state)
        horizon = watermark - STATE_TTL_MS if watermark is not None and watermark > 0 else None
        value = stored.dump(touched, horizon)
        if value is None:
            state.remove()
        else:
            state.update((value,))
        yield pd.concat([pdf, ctx[columns].astype("float64")], axis=1)

    return fn


def _customer_last_ms(st: CustomerState):
    return None if st.last_t is None else st.last_t // 1_000_000


def _terminal_last_ms(st: TerminalState):
    times = [w.times[-1] for w in st.windows.values() if w.times]
    return max(times) // 1_000_000 if times else None


def state_key(id_column: str, buckets: int):
    key = F.col(id_column) if buckets <= 0 else F.pmod(F.xxhash64(id_column), F.lit(buckets)).cast("string")
    return F.when(F.col("reject_reason").isNull(), key).otherwise(F.lit(REJECTED_KEY))


def _apply(df: DataFrame, id_column: str, buckets: int, kind, context, columns, last_ms) -> DataFrame:
    out_schema = T.StructType(
        [f for f in df.schema.fields if f.name != "state_key"]
        + [T.StructField(c, T.DoubleType(), True) for c in columns]
    )
    keyed = df.withColumn("state_key", state_key(id_column, buckets))
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
        stored = KeyedStates(
            self.state.get()[0] if self.state.exists() else None, TerminalState, _terminal_last_ms
        )
        tx = pdf.assign(event_time=utc_event_time(pdf["event_ts"]))
        ctx, touched = terminal_context(tx, stored.get(tx["terminal_id"].unique()))
        newest = max((_terminal_last_ms(v) or 0) for v in touched.values()) if touched else 0
        value = stored.dump(touched, newest - STATE_TTL_MS)
        if value is None:
            self.state.clear()
        else:
            self.state.update((value,))
        yield pd.concat([pdf, ctx[TERMINAL_CONTEXT_COLUMNS].astype("float64")], axis=1)

    def close(self) -> None:
        pass


def with_terminal_context(df: DataFrame, buckets: int = 0) -> DataFrame:
    """Adds TERMINAL_CONTEXT_COLUMNS (terminal volume over 1 h / 24 h) from keyed state."""
    out_schema = T.StructType(
        [f for f in df.schema.fields if f.name != "state_key"]
        + [T.StructField(c, T.DoubleType(), True) for c in TERMINAL_CONTEXT_COLUMNS]
    )
    keyed = df.withColumn("state_key", state_key("terminal_id", buckets))
    return keyed.groupBy("state_key").transformWithStateInPandas(
        statefulProcessor=TerminalProcessor(),
        outputStructType=out_schema,
        outputMode="Append",
        timeMode="None",
    )


# ------------------------------------------------------------------------------------------ the JVM engine
STATE_ENGINES = ("jvm", "python")
# the JVM processors expire state on processing time (Spark's only TTL), so Spark schedules a no-data
# micro-batch after every batch: without this an idle query spins through empty batches and an
# availableNow one never ends (TTL eviction still runs at the end of every batch with data)
JVM_STATE_CONF = {"spark.sql.streaming.noDataMicroBatches.enabled": "false"}
# event-time order: held rows leave on timers, which fire in no-data batches too (one per trigger interval
# while idle); the watermark of several sources is their minimum (Spark's default, set so that a changed
# default cannot turn it into the fastest partition's)
ORDERED_STATE_CONF = {
    "spark.sql.streaming.noDataMicroBatches.enabled": "true",
    "spark.sql.streaming.multipleWatermarkPolicy": "min",
}
SPEED_ORDERS = ("arrival", "event_time")


def with_jvm_context(df: DataFrame, ttl_ms: int = STATE_TTL_MS, hold_idle_ms: int | None = None) -> DataFrame:
    """df + CUSTOMER_CONTEXT_COLUMNS + TERMINAL_CONTEXT_COLUMNS computed in the JVM (streaming/jvm's
    `SpeedJvm.withContext`: transformWithState by customer_id, then by terminal_id, RocksDB state, TTL).

    The same numbers as `with_customer_context` / `with_terminal_context` (the JVM walk is proven equal to
    ml.features' by tests/streaming/test_jvm_parity.py), with no Python between Kafka and scoring. State is
    keyed by the id itself (no buckets: the JVM has no per-call cost to amortise) and expires `ttl_ms` after
    a key's last event on the processing-time clock; no event-time watermark is needed. The session must
    run with JVM_STATE_CONF while the query starts.

    `hold_idle_ms` (not None): event-time order. `df` must carry the query's event-time watermark (one
    source per Kafka partition, streaming.speed.query); the customer processor holds each row until the
    watermark has passed it (or has stood still for `hold_idle_ms`), so the terminal state walks events in
    event-time order across partitions. The query then runs with ORDERED_STATE_CONF instead."""
    jvm = df.sparkSession._jvm.dev.ecomlambda.speed.SpeedJvm
    if hold_idle_ms is None:
        return DataFrame(jvm.withContext(df._jdf, int(ttl_ms)), df.sparkSession)
    return DataFrame(jvm.withContext(df._jdf, int(ttl_ms), int(hold_idle_ms)), df.sparkSession)
