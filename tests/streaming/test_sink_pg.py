"""The speed sink on real Postgres and a real local Spark: each task writes its own rows, the driver marks the batch.

- an event delivered twice upstream is stored once, with the first score, and an alert only ever follows the
  stored row (a second, different score never adds an alert);
- a scored frame as the scorer hands it over (pandas, Spark's naive UTC timestamps) is COPYed value for value;
- a batch that failed half-way (one task committed, its sibling failed) and is replayed stores every row once,
  its marker and metrics count every row of the batch (also those the first attempt stored), and once the marker
  is there the batch is final: a replay that computes something else writes nothing (fails without the marker).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from kernel.db import connect
from streaming.sink import TASK_COUNTS_SCHEMA, BatchCounts, PostgresBatchSink
from streaming.speed.query import SPEED_COLUMNS, _scored_table, score_and_write, speed_writes
from streaming.speed.scoring import OUTPUT_SCHEMA

pytestmark = pytest.mark.stack


def _scored_rows(
    tids: list[str], score: float = 0.1, alert: bool = False, version: str = "1", topic: str = "t"
) -> pd.DataFrame:
    """Rows as the scorer yields them (OUTPUT_SCHEMA columns; naive timestamps in UTC as Spark hands them)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for i, tid in enumerate(tids):
        rows.append(
            {
                "transaction_id": tid,
                "customer_id": f"c{i % 3}",
                "merchant_id": "m1",
                "terminal_id": "t1",
                "event_time": now - timedelta(seconds=i),
                "currency": "EUR",
                "amount": 12.5 + i,
                "payment_method": "card",
                "channel": "web",
                "device_type": "mobile",
                "ip_country": "DE",
                "n_items": 1,
                "fraud_score": score,
                "is_alert": alert,
                "model_version": version,
                "threshold": 0.5,
                "reasons": '[{"text": "test"}]',
                "kafka_topic": topic,
                "kafka_partition": 0,
                "kafka_offset": i,
                "kafka_timestamp": now,
                "raw_payload": None,
                "reject_reason": None,
            }
        )
    return pd.DataFrame(rows, columns=[f.name for f in OUTPUT_SCHEMA.fields])


def _malformed(topic: str, offset: int) -> pd.DataFrame:
    row = {f.name: None for f in OUTPUT_SCHEMA.fields}
    row.update(
        kafka_topic=topic,
        kafka_partition=1,
        kafka_offset=offset,
        kafka_timestamp=datetime.now(UTC).replace(tzinfo=None),
        raw_payload=b"{not json",
        reject_reason="not JSON",
    )
    return pd.DataFrame([row], columns=[f.name for f in OUTPUT_SCHEMA.fields])


def _write(sink: PostgresBatchSink, batch_id: int, frame: pd.DataFrame) -> dict[str, int]:
    return sink.partition_writer().write(speed_writes(_scored_table([frame]), batch_id))


def test_a_second_delivery_scored_as_an_alert_adds_no_alert(stack):
    sink = PostgresBatchSink(f"sinktest_{uuid.uuid4().hex[:8]}", stack)
    quiet, loud = f"sink-{uuid.uuid4().hex}", f"sink-{uuid.uuid4().hex}"
    first = _write(sink, 0, _scored_rows([quiet], 0.1, False))
    again = _write(sink, 1, _scored_rows([quiet], 0.9, True))  # same event again, now "anomalous"
    loud_written = _write(sink, 2, _scored_rows([loud], 0.9, True))  # a genuine alert still lands
    with connect(stack) as conn:
        scored = dict(
            conn.execute(
                "SELECT transaction_id, fraud_score FROM speed.scored_transactions WHERE transaction_id = ANY(%s)",
                ([quiet, loud],),
            ).fetchall()
        )
        alerts = [
            r[0]
            for r in conn.execute(
                "SELECT transaction_id FROM speed.fraud_alerts WHERE transaction_id = ANY(%s)",
                ([quiet, loud],),
            ).fetchall()
        ]
    assert scored == {quiet: 0.1, loud: 0.9}
    assert alerts == [loud]
    assert first["speed.scored_transactions"] == 1
    assert again == {"speed.scored_transactions": 0, "speed.fraud_alerts": 0, "quarantine.events": 0}
    assert loud_written["speed.fraud_alerts"] == 1


def test_a_scored_frame_is_copied_value_for_value(stack):
    """NULLs, empty strings, quotes, commas, newlines, JSON, timestamps (naive UTC from Spark -> timestamptz),
    booleans and floats arrive as they left the scorer."""
    tid = f"arrow-{uuid.uuid4().hex}"
    frame = _scored_rows([tid], score=1e-05, alert=True, version="7")
    when = datetime(2026, 11, 26, 21, 30, 1, 123456)
    frame.loc[0, ["customer_id", "merchant_id", "terminal_id", "ip_country"]] = [
        'c "quoted", with comma',
        "",
        "t\n1",
        None,
    ]
    frame.loc[
        0, ["event_time", "kafka_timestamp", "amount", "n_items", "kafka_partition", "kafka_offset"]
    ] = [
        when,
        when,
        12.34,
        3,
        2,
        99,
    ]
    frame.loc[0, "reasons"] = '[{"text": "3 \\"new\\" devices, 1,200 km away"}]'
    sink = PostgresBatchSink(f"sinktest_{uuid.uuid4().hex[:8]}", stack)
    written = _write(sink, 5, frame)
    assert written["speed.scored_transactions"] == 1 and written["speed.fraud_alerts"] == 1
    with connect(stack) as conn:
        got = conn.execute(
            f"SELECT {', '.join(SPEED_COLUMNS)}, batch_id FROM speed.scored_transactions WHERE transaction_id = %s",
            (tid,),
        ).fetchone()
        got_reasons = conn.execute(
            "SELECT reasons FROM speed.fraud_alerts WHERE transaction_id = %s", (tid,)
        ).fetchone()[0]
    back = dict(zip([*SPEED_COLUMNS, "batch_id"], got, strict=True))
    utc = when.replace(tzinfo=UTC)
    assert back == {
        "transaction_id": tid,
        "customer_id": 'c "quoted", with comma',
        "merchant_id": "",
        "terminal_id": "t\n1",
        "event_time": utc,
        "currency": "EUR",
        "amount": back["amount"],
        "payment_method": "card",
        "channel": "web",
        "device_type": "mobile",
        "ip_country": None,
        "n_items": 3,
        "fraud_score": 1e-05,
        "is_alert": True,
        "model_version": "7",
        "kafka_partition": 2,
        "kafka_offset": 99,
        "kafka_timestamp": utc,
        "batch_id": 5,
    }
    assert float(back["amount"]) == 12.34
    assert got_reasons == [{"text": '3 "new" devices, 1,200 km away'}]


def _stored(stack, tids: list[str], batch_id: int) -> tuple[int, int, int]:
    with connect(stack) as conn:
        rows = conn.execute(
            "SELECT count(*), count(DISTINCT transaction_id), count(*) FILTER (WHERE batch_id = %s) "
            "FROM speed.scored_transactions WHERE transaction_id = ANY(%s)",
            (batch_id, tids),
        ).fetchone()
    return tuple(int(v) for v in rows)


def _record(stack, query: str) -> tuple[list, list]:
    with connect(stack) as conn:
        markers = conn.execute(
            "SELECT batch_id, rows_written FROM speed.batch_commits WHERE query_name = %s ORDER BY 1",
            (query,),
        ).fetchall()
        metrics = conn.execute(
            "SELECT batch_id, rows_in, rows_written, rows_quarantined FROM ops.stream_batches "
            "WHERE query_name = %s ORDER BY 1",
            (query,),
        ).fetchall()
    return markers, metrics


def _metrics(counts: BatchCounts) -> dict:
    return {
        "rows_in": counts.rows_in,
        "rows_written": counts.rows_written,
        "rows_quarantined": counts.rows_quarantined,
        "duration_ms": 1.0,
        **counts.latency,
    }


def test_a_batch_replayed_after_a_partial_failure_is_counted_once_and_then_final(stack, spark, tmp_path):
    query, topic = f"sinktest_{uuid.uuid4().hex[:8]}", f"sinktest_{uuid.uuid4().hex[:8]}"
    sink = PostgresBatchSink(query, stack)
    writer = sink.partition_writer()
    run = uuid.uuid4().hex[:8]
    first_half = [f"p0-{run}-{i}" for i in range(20)]
    second_half = [f"p1-{run}-{i}" for i in range(20)]
    tids = first_half + second_half
    # two Spark partitions: task 0 = first half + a malformed event, task 1 = second half + a malformed event;
    # every fifth row an alert
    halves = [
        pd.concat(
            [_scored_rows(first_half, 0.9, True, topic=topic), _malformed(topic, 1000)], ignore_index=True
        ),
        pd.concat(
            [_scored_rows(second_half, 0.9, True, topic=topic), _malformed(topic, 1001)], ignore_index=True
        ),
    ]
    for half in halves:
        half["is_alert"] = [i % 5 == 0 for i in range(len(half))]
        half.loc[half["reject_reason"].notna(), "is_alert"] = None
    n_alerts = sum(int(h["is_alert"].fillna(False).sum()) for h in halves)

    integral = {f.name for f in OUTPUT_SCHEMA.fields if f.dataType.typeName() in ("integer", "long")}

    def frame(parts: list[pd.DataFrame]):
        def row(r: dict) -> tuple:
            def value(f: str, v):
                if v is None or (not isinstance(v, bytes) and pd.isna(v)):
                    return None
                if isinstance(v, pd.Timestamp):
                    return v.to_pydatetime()
                return int(v) if f in integral else v

            return tuple(value(f, r[f]) for f in OUTPUT_SCHEMA.names)

        records = [[row(r) for r in p.astype(object).to_dict("records")] for p in parts]
        # parallelize slices a list into equal contiguous ranges: one task per part
        assert len({len(r) for r in records}) == 1
        rdd = spark.sparkContext.parallelize([r for part in records for r in part], len(parts))
        return spark.createDataFrame(rdd, OUTPUT_SCHEMA)

    failing = tmp_path / "fail-task-1"
    failing.touch()
    settings = stack

    def tasks_of(df, batch_id: int, fail_flag: Path):
        write = score_and_write(lambda batches: batches, writer, batch_id)  # the rows come scored already

        def partition(batches):
            from pyspark import TaskContext

            if TaskContext.get().partitionId() == 1 and fail_flag.exists():
                # fail only after task 0 committed: a partial failure, as a kill -9 between two tasks leaves
                deadline = time.time() + 60
                while time.time() < deadline:
                    with connect(settings) as conn:
                        n = conn.execute(
                            "SELECT count(*) FROM speed.scored_transactions WHERE transaction_id = ANY(%s)",
                            (first_half,),
                        ).fetchone()[0]
                    if n == len(first_half):
                        break
                    time.sleep(0.1)
                raise RuntimeError("injected failure of task 1")
            yield from write(batches)

        return lambda: df.mapInPandas(partition, TASK_COUNTS_SCHEMA)

    df = frame(halves)
    with pytest.raises(Exception, match="injected failure"):
        sink.write_batch(7, tasks_of(df, 7, failing), _metrics)
    assert _stored(stack, first_half, 7) == (20, 20, 20)
    assert _stored(stack, second_half, 7) == (0, 0, 0)
    assert _record(stack, query) == ([], [])  # no marker: the batch is not committed

    failing.unlink()
    result = sink.write_batch(7, tasks_of(df, 7, failing), _metrics)  # Spark's replay of batch 7
    assert result.computed and not result.replayed and result.tasks == 2
    assert _stored(stack, tids, 7) == (40, 40, 40)
    # the marker and the metrics count every row of the batch once: also the 20 the first attempt stored
    assert _record(stack, query) == ([(7, 40)], [(7, 42, 40, 2)])
    with connect(stack) as conn:
        alerts = conn.execute(
            "SELECT count(*), count(DISTINCT transaction_id) FROM speed.fraud_alerts WHERE transaction_id = ANY(%s)",
            (tids,),
        ).fetchone()
        quarantined = conn.execute(
            "SELECT count(*) FROM quarantine.events WHERE source = 'stream' AND kafka_topic = %s", (topic,)
        ).fetchone()[0]
    assert tuple(alerts) == (n_alerts, n_alerts) and quarantined == 2

    # the batch is final now. Spark replays it again (a crash after the marker, before its own commit log), and
    # this time the recomputation differs: two rows it did not have before (e.g. the topic was recreated) and
    # another champion's scores. The marker makes it a no-op; the keys alone would store the new rows under a
    # batch whose record says 40 rows.
    late = [f"new-{run}-{i}" for i in range(2)]
    other = [
        _scored_rows(first_half + late[:1], 0.99, True, version="2", topic=topic),
        _scored_rows(second_half + late[1:], 0.99, True, version="2", topic=topic),
    ]
    result = sink.write_batch(7, tasks_of(frame(other), 7, failing), _metrics)
    assert _stored(stack, tids + late, 7) == (40, 40, 40)  # without the marker: 42 under a batch that says 40
    assert _record(stack, query) == ([(7, 40)], [(7, 42, 40, 2)])
    with connect(stack) as conn:
        after = conn.execute(
            "SELECT count(*) FROM speed.fraud_alerts WHERE transaction_id = ANY(%s)", (tids + late,)
        ).fetchone()[0]
    assert after == n_alerts
    assert result.replayed and not result.computed
    sink.close()
