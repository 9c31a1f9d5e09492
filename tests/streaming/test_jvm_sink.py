"""The JVM engine's task sink (streaming/jvm TaskSink) against the Python one (query.write_scored_partition +
sink.PartitionWriter, the reference) on real Postgres and a real local Spark.

The same scored rows, written once by each (transaction ids and topics told apart by a prefix), must be
stored value for value the same: scored rows (NULLs, empty strings, quotes, commas, newlines, microsecond
timestamps, an n_items to round, doubles that must round-trip), the alerts of stored rows with their JSON
reasons, and the quarantined rows (raw bytes, text only for valid UTF-8, NUL removed). The tasks' counts
are the ones the Python tasks give. A second attempt of the batch counts every row stored by the batch
and inserts nothing; the same events delivered again in a later batch are stored once, with their first
score, and add no alert.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import types as T

from kernel.db import connect
from kernel.settings import as_component
from streaming.sink import PostgresBatchSink
from streaming.speed.query import (
    SPEED_COLUMNS,
    jvm_task_sink,
    speed_writes,
    write_in_jvm,
    write_scored_partition,
)
from streaming.speed.scoring import OUTPUT_SCHEMA

pytestmark = pytest.mark.stack

# what SpeedJvm.scoreInContext hands the sink (the columns it reads)
JVM_SCORED = T.StructType(
    [
        *(
            T.StructField(c, T.StringType())
            for c in ("transaction_id", "customer_id", "merchant_id", "terminal_id")
        ),
        T.StructField("event_ts", T.TimestampType()),
        T.StructField("currency", T.StringType()),
        T.StructField("amount", T.DoubleType()),
        *(
            T.StructField(c, T.StringType())
            for c in ("payment_method", "channel", "device_type", "ip_country")
        ),
        T.StructField("n_items", T.DoubleType()),
        T.StructField("fraud_score", T.DoubleType()),
        T.StructField("is_alert", T.BooleanType()),
        T.StructField("reasons", T.StringType()),
        T.StructField("kafka_topic", T.StringType()),
        T.StructField("kafka_partition", T.IntegerType()),
        T.StructField("kafka_offset", T.LongType()),
        T.StructField("kafka_timestamp", T.TimestampType()),
        T.StructField("raw_payload", T.BinaryType()),
        T.StructField("reject_reason", T.StringType()),
    ]
)
VERSION, THRESHOLD = "7", 0.8125


def _rows(prefix: str, topic: str) -> pd.DataFrame:
    """Eight scored rows (three alerts) and four rejects, as the JVM scorer hands them over."""
    when = datetime(2026, 11, 26, 21, 30, 1, 123456)
    good = []
    for i in range(8):
        good.append(
            {
                "transaction_id": f"{prefix}-{i}",
                "customer_id": ['c "quoted", with comma', "c1", "c\n2", "c3"][i % 4],
                "merchant_id": "" if i == 1 else f"m{i}",
                "terminal_id": f"t{i % 2}",
                "event_ts": when - timedelta(microseconds=7 * i),
                "currency": "EUR",
                "amount": [12.34, 0.1 + 0.2, 1e6 - 0.01, 5.0][i % 4],
                "payment_method": "card",
                "channel": "web",
                "device_type": "mobile",
                "ip_country": None if i == 2 else "DE",
                "n_items": [1.0, None, 2.5, 3.5][i % 4],  # NULL counts 1; halves round to even
                "fraud_score": [0.1, 1e-05, 0.9, 1 / 3, 0.8125, 2**-40, 0.99999999999, 0.5][i],
                "is_alert": i in (2, 4, 6),
                "reasons": '[{"feature": "n_items", "text": "3 \\"new\\" devices, 1,200 km away"}]'
                if i in (2, 4, 6)
                else None,
                "kafka_topic": topic,
                "kafka_partition": i % 3,
                "kafka_offset": 100 + i,
                "kafka_timestamp": when,
                "raw_payload": None,
                "reject_reason": None,
            }
        )
    bad = [
        {"kafka_offset": 200, "kafka_partition": 1, "raw_payload": b"{not json", "reject_reason": "not JSON"},
        {
            "kafka_offset": 201,
            "kafka_partition": 1,
            "raw_payload": b"\xff\xfe",
            "reject_reason": "invalid UTF-8",
        },
        {
            "kafka_offset": 202,
            "kafka_partition": 2,
            "raw_payload": b"a\x00b",
            "reject_reason": "NUL, 'quoted'",
        },
        {"kafka_offset": 203, "kafka_partition": 2, "raw_payload": b"", "reject_reason": "empty"},
    ]
    bad = [
        {**{f.name: None for f in JVM_SCORED.fields}, **b, "kafka_topic": topic, "kafka_timestamp": when}
        for b in bad
    ]
    return pd.DataFrame(good + bad, columns=[f.name for f in JVM_SCORED.fields])


def _python_table(frame: pd.DataFrame) -> pa.Table:
    """The same rows as the Python engine's scorer yields them (OUTPUT_SCHEMA)."""
    good = frame["reject_reason"].isna()
    out = frame.rename(columns={"event_ts": "event_time"}).assign(
        model_version=np.where(good, VERSION, None),
        threshold=np.where(good, THRESHOLD, np.nan),
        n_items=frame["n_items"].fillna(1.0).round().where(good),
    )
    out["event_time"] = pd.to_datetime(out["event_time"]).dt.tz_localize("UTC")
    out["kafka_timestamp"] = pd.to_datetime(out["kafka_timestamp"]).dt.tz_localize("UTC")
    out = out[[f.name for f in OUTPUT_SCHEMA.fields]]
    from pyspark.sql.pandas.types import to_arrow_schema

    return pa.Table.from_pandas(
        out, schema=to_arrow_schema(OUTPUT_SCHEMA, timezone="UTC"), preserve_index=False
    )


def _stored(settings, prefix: str, topic: str) -> tuple[list, list, list]:
    cols = ", ".join(c for c in [*SPEED_COLUMNS, "batch_id"])
    with connect(settings) as conn:
        scored = conn.execute(
            f"SELECT {cols} FROM speed.scored_transactions WHERE transaction_id LIKE %s ORDER BY transaction_id",
            (prefix + "-%",),
        ).fetchall()
        alerts = conn.execute(
            "SELECT transaction_id, customer_id, event_time, amount, fraud_score, threshold, model_version, "
            "reasons FROM speed.fraud_alerts WHERE transaction_id LIKE %s ORDER BY transaction_id",
            (prefix + "-%",),
        ).fetchall()
        quarantined = conn.execute(
            "SELECT source, kafka_partition, kafka_offset, raw_payload, raw_text, reason FROM quarantine.events "
            "WHERE kafka_topic = %s ORDER BY kafka_offset",
            (topic,),
        ).fetchall()
    return scored, alerts, quarantined


def _strip(rows: list, prefix: str) -> list:
    return [tuple(v.removeprefix(prefix) if isinstance(v, str) else v for v in r) for r in rows]


def _counts(row: dict) -> dict:
    keep = ("rows_in", "rows_written", "rows_quarantined", "alerts", "kafka_partitions", "kafka_ends")
    return {k: list(row[k]) if isinstance(row[k], list | tuple | np.ndarray) else row[k] for k in keep}


def test_the_jvm_task_sink_stores_what_the_python_sink_stores(stack, spark):
    settings = as_component(stack, "stream")
    run = uuid.uuid4().hex[:8]
    py, jv = f"py{run}", f"jvm{run}"
    sink = PostgresBatchSink(f"jvmsink_{run}", settings)
    writer = sink.partition_writer()

    py_counts = write_scored_partition(_python_table(_rows(py, f"topic-{py}")), writer, 11)
    frame = spark.createDataFrame(_rows(jv, f"topic-{jv}"), JVM_SCORED).coalesce(1)
    task = jvm_task_sink(spark, writer)
    jvm_counts = [r.asDict() for r in write_in_jvm(frame, task, 11, VERSION, THRESHOLD).collect()]
    assert len(jvm_counts) == 1
    assert _counts(jvm_counts[0]) == _counts(py_counts)
    assert _counts(py_counts) == {
        "rows_in": 12,
        "rows_written": 8,
        "rows_quarantined": 4,
        "alerts": 3,
        "kafka_partitions": [0, 1, 2],
        "kafka_ends": [107, 202, 204],
    }
    assert sum(jvm_counts[0]["latency_counts"]) == 12 and min(jvm_counts[0]["latency_ms"]) > 0

    py_rows, jv_rows = _stored(stack, py, f"topic-{py}"), _stored(stack, jv, f"topic-{jv}")
    for what, a, b in zip(("scored", "alerts", "quarantine"), py_rows, jv_rows, strict=True):
        assert len(a) == len(b) > 0, what
        assert _strip(b, jv) == _strip(a, py), what
    scored = {r[0].removeprefix(jv): r for r in jv_rows[0]}
    assert scored["-1"][1] == "c1" and scored["-1"][2] == "" and scored["-0"][1] == 'c "quoted", with comma'
    assert [scored[f"-{i}"][11] for i in range(4)] == [1, 1, 2, 4]  # n_items: NULL -> 1, 2.5 -> 2, 3.5 -> 4
    assert scored["-5"][12] == 2**-40 and scored["-3"][12] == 1 / 3  # doubles round-trip
    assert scored["-0"][4] == datetime(2026, 11, 26, 21, 30, 1, 123456, tzinfo=UTC)
    quarantined = jv_rows[2]
    assert [q[4] for q in quarantined] == ["{not json", None, "ab", ""]
    assert bytes(quarantined[1][3]) == b"\xff\xfe"

    # the batch's second attempt (a sibling task failed): nothing inserted, every row of the batch counted
    again = [r.asDict() for r in write_in_jvm(frame, task, 11, VERSION, THRESHOLD).collect()][0]
    assert (again["rows_written"], again["rows_quarantined"], again["alerts"]) == (8, 4, 0)
    # the same events delivered again in a later batch, scored otherwise: stored once, first score, no alert
    rescored = _rows(jv, f"topic-{jv}").assign(fraud_score=0.95, is_alert=True, reasons="[]")
    later = spark.createDataFrame(rescored, JVM_SCORED).coalesce(1)
    third = [r.asDict() for r in write_in_jvm(later, task, 12, VERSION, THRESHOLD).collect()][0]
    assert (third["rows_written"], third["alerts"]) == (0, 0)
    assert _stored(stack, jv, f"topic-{jv}") == jv_rows

    # the no-op sink (benchmark ceiling): counts only, nothing written
    noop = [r.asDict() for r in write_in_jvm(later, None, 13, VERSION, THRESHOLD).collect()][0]
    assert (noop["rows_in"], noop["rows_written"], noop["rows_quarantined"], noop["alerts"]) == (12, 0, 0, 8)


def test_both_sinks_write_the_same_tables_and_columns(spark):
    """The Python sink's tables and columns (speed_writes) are the JVM's (TaskSink.columns); a column added
    on one side only fails here."""
    jvm = spark._jvm.dev.ecomlambda.speed.TaskSink
    writes = {w.table: list(w.columns) for w in speed_writes(_python_table(_rows("x", "t")), 1)}
    assert set(writes) == {"speed.scored_transactions", "speed.fraud_alerts", "quarantine.events"}
    for table, columns in writes.items():
        assert list(jvm.columns(table)) == columns, table
