"""The speed sink on real Postgres: an event delivered twice upstream is stored once, with the first score,
and an alert only ever follows the stored row (a second, different score never adds an alert)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from kernel.db import connect
from streaming.sink import PostgresBatchSink, TableWrite
from streaming.speed.query import ALERT_COLUMNS, ALERT_OF_STORED_ROW
from streaming.speed.scoring import SPEED_COLUMNS

pytestmark = pytest.mark.stack


def _writes(batch_id: int, tid: str, score: float, alert: bool, version: str) -> list[TableWrite]:
    now = datetime.now(UTC)
    row = {
        "transaction_id": tid,
        "customer_id": "c1",
        "merchant_id": "m1",
        "terminal_id": "t1",
        "event_time": now,
        "currency": "EUR",
        "amount": 12.5,
        "payment_method": "card",
        "channel": "web",
        "device_type": "mobile",
        "ip_country": "DE",
        "n_items": 1,
        "fraud_score": score,
        "is_alert": alert,
        "model_version": version,
        "kafka_partition": 0,
        "kafka_offset": batch_id,
        "kafka_timestamp": now,
    }
    alert_row = {**row, "threshold": 0.5, "reasons": '[{"text": "test"}]'}
    return [
        TableWrite(
            "speed.scored_transactions",
            SPEED_COLUMNS + ["batch_id"],
            [[row[c] for c in SPEED_COLUMNS] + [batch_id]],
        ),
        TableWrite(
            "speed.fraud_alerts",
            ALERT_COLUMNS,
            [[alert_row[c] for c in ALERT_COLUMNS]] if alert else [],
            counts_as_written=False,
            where=ALERT_OF_STORED_ROW,
        ),
    ]


def test_a_second_delivery_scored_as_an_alert_adds_no_alert(stack):
    sink = PostgresBatchSink(f"sinktest_{uuid.uuid4().hex[:8]}", stack)
    quiet, loud = f"sink-{uuid.uuid4().hex}", f"sink-{uuid.uuid4().hex}"
    try:
        sink.commit(0, _writes(0, quiet, 0.1, False, "1"))
        sink.commit(1, _writes(1, quiet, 0.9, True, "1"))  # same event again, now "anomalous"
        sink.commit(2, _writes(2, loud, 0.9, True, "1"))  # a genuine alert still lands
    finally:
        sink.close()
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


def test_an_arrow_batch_is_copied_value_for_value(stack):
    """The stream hands the sink Arrow tables (CSV COPY by Arrow's writer): NULLs, empty strings, quotes,
    commas, JSON, timestamps, booleans and floats arrive as the tuple path would write them."""
    import pyarrow as pa

    now = datetime(2026, 11, 26, 21, 30, 1, 123456, tzinfo=UTC)
    tid = f"arrow-{uuid.uuid4().hex}"
    row = {
        "transaction_id": tid,
        "customer_id": 'c "quoted", with comma',
        "merchant_id": "",
        "terminal_id": "t\n1",
        "event_time": now,
        "currency": "EUR",
        "amount": 12.34,
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
        "kafka_timestamp": now,
        "batch_id": 5,
    }
    types = {"n_items": pa.int32(), "kafka_partition": pa.int32(), "ip_country": pa.string()}
    scored = pa.table({c: pa.array([v], types.get(c)) for c, v in row.items()})
    reasons = '[{"text": "3 \\"new\\" devices, 1,200 km away"}]'
    alert = pa.table(
        {
            **{c: scored.column(c) for c in ALERT_COLUMNS if c in row},
            "threshold": [0.5],
            "reasons": [reasons],
        }
    ).select(ALERT_COLUMNS)
    sink = PostgresBatchSink(f"sinktest_{uuid.uuid4().hex[:8]}", stack)
    try:
        result = sink.commit(
            0,
            [
                TableWrite("speed.scored_transactions", SPEED_COLUMNS + ["batch_id"], scored),
                TableWrite("speed.fraud_alerts", ALERT_COLUMNS, alert, counts_as_written=False),
            ],
        )
    finally:
        sink.close()
    assert result.written == {"speed.scored_transactions": 1, "speed.fraud_alerts": 1}
    with connect(stack) as conn:
        got = conn.execute(
            f"SELECT {', '.join(SPEED_COLUMNS)}, batch_id FROM speed.scored_transactions WHERE transaction_id = %s",
            (tid,),
        ).fetchone()
        got_reasons = conn.execute(
            "SELECT reasons FROM speed.fraud_alerts WHERE transaction_id = %s", (tid,)
        ).fetchone()[0]
    back = dict(zip([*SPEED_COLUMNS, "batch_id"], got, strict=True))
    assert back == {**row, "amount": back["amount"]} and float(back["amount"]) == 12.34
    assert got_reasons == [{"text": '3 "new" devices, 1,200 km away'}]
