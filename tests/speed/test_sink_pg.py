"""The speed sink on real Postgres: an event delivered twice upstream is stored once, with the first score,
and an alert only ever follows the stored row (a second, different score never adds an alert)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from ecom.db import connect
from streaming.speed.query import ALERT_COLUMNS, ALERT_OF_STORED_ROW
from streaming.speed.scoring import SPEED_COLUMNS
from streaming.speed.sink import PostgresBatchSink, TableWrite

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
