"""Helpers of the quality tests: generated clean events and a throwaway schema holding table copies.

master.transactions is shared and append-only, and other rooms write to it while we run, so bad rows are
never injected there: each test gets `qtest_<uuid>` with tables shaped LIKE the real ones (NOT NULL and
primary keys dropped so nulls and duplicates *can* be inserted), filled with contract-valid generated
events, and the suites are pointed at it through `Targets.in_schema`. The schema is dropped afterwards.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from events.contract import enum_values, field_names, validate_transaction
from expectations.catalog import Targets
from kernel.db import connect
from kernel.settings import Settings
from streaming.landing.master import MASTER_COLUMNS, master_row

SPEED_COLUMNS = [
    "transaction_id", "customer_id", "merchant_id", "terminal_id", "event_time", "currency", "amount",
    "payment_method", "channel", "device_type", "ip_country", "n_items", "fraud_score", "is_alert",
    "model_version", "kafka_partition", "kafka_offset", "kafka_timestamp", "batch_id", "committed_at",
]  # fmt: skip


def make_events(n: int, seed: int, now: datetime) -> list[dict[str, Any]]:
    """n contract-valid transaction events, dated in the hour before `now` (checked against the contract)."""
    rng = random.Random(seed)
    enums = enum_values("transaction")
    events = []
    for i in range(n):
        items = [
            {
                "product_id": f"P{rng.randrange(1, 500):05d}",
                "quantity": rng.randint(1, 4),
                "unit_price": round(rng.uniform(1, 300), 2),
            }
            for _ in range(rng.randint(1, 4))
        ]
        amount = round(sum(li["quantity"] * li["unit_price"] for li in items), 2)
        event = {
            "schema_version": 1,
            "transaction_id": f"q-{seed}-{i}-{uuid.uuid4().hex[:8]}",
            "customer_id": f"C{rng.randrange(1, 200):06d}",
            "merchant_id": f"M{rng.randrange(1, 50):04d}",
            "terminal_id": f"T{rng.randrange(1, 80):05d}",
            "event_time": (now - timedelta(minutes=rng.uniform(1, 60))).isoformat(),
            "currency": rng.choice(enums["currency"]),
            "amount": amount,
            "payment_method": rng.choice(enums["payment_method"]),
            "channel": rng.choice(enums["channel"]),
            "device_id": f"D{rng.randrange(1, 10**6):07d}",
            "device_type": rng.choice(enums["device_type"]),
            "ip_address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "ip_country": rng.choice(["US", "GB", "DE", "CA", "FR"]),
            "ip_city": "Testville",
            "ip_lat": round(rng.uniform(-60, 60), 4),
            "ip_lon": round(rng.uniform(-120, 120), 4),
            "line_items": items,
        }
        assert set(event) == set(field_names("transaction"))
        assert validate_transaction(event) == [], validate_transaction(event)
        events.append(event)
    return events


@dataclass
class QSchema:
    """A throwaway schema with master/speed-shaped tables, and helpers to fill it."""

    settings: Settings
    name: str
    now: datetime
    seq: int = 0
    ids: list[str] = field(default_factory=list)

    @property
    def targets(self) -> Targets:
        return Targets.in_schema(self.name)

    def insert_master(self, rows: list[tuple], landed_at: datetime | None = None) -> None:
        cols = [*MASTER_COLUMNS, "landed_at", "landed_seq"]
        out = []
        for row in rows:
            self.seq += 1
            out.append((*row, landed_at or self.now, self.seq))
        values = ", ".join(["%s"] * len(cols))
        sql = f"INSERT INTO {self.name}.transactions ({', '.join(cols)}) VALUES ({values})"
        with connect(self.settings) as conn, conn.cursor() as cur:
            cur.executemany(sql, out)

    def insert_events(self, events: list[dict[str, Any]], landed_at: datetime | None = None) -> None:
        rows = [master_row(e, kafka_topic="qtest", kafka_offset=i) for i, e in enumerate(events)]
        self.insert_master(rows, landed_at)
        self.ids += [e["transaction_id"] for e in events]

    def insert_speed(
        self, events: list[dict[str, Any]], score: float = 0.1, model_version: str = "1"
    ) -> None:
        rows = []
        for i, e in enumerate(events):
            rows.append(
                (
                    e["transaction_id"], e["customer_id"], e["merchant_id"], e["terminal_id"],
                    datetime.fromisoformat(e["event_time"]), e["currency"], e["amount"], e["payment_method"],
                    e["channel"], e["device_type"], e["ip_country"], len(e["line_items"]), score, score > 0.5,
                    model_version, 0, i, datetime.fromisoformat(e["event_time"]), 1, self.now,
                )
            )  # fmt: skip
        with connect(self.settings) as conn, conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.name}.scored_transactions ({', '.join(SPEED_COLUMNS)}) "
                f"VALUES ({', '.join(['%s'] * len(SPEED_COLUMNS))})",
                rows,
            )

    def execute(self, sql: str, params: Any = None) -> None:
        with connect(self.settings) as conn:
            conn.execute(sql, params)


def create_like(conn, schema: str, source: str, table: str) -> None:
    # LIKE copies column types and (always) NOT NULL; no PK, defaults or indexes: bad rows must fit in
    conn.execute(f"CREATE TABLE {schema}.{table} (LIKE {source})")
    cols = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema=%s AND table_name=%s",
        (schema, table),
    ).fetchall()
    for (col,) in cols:
        conn.execute(f'ALTER TABLE {schema}.{table} ALTER COLUMN "{col}" DROP NOT NULL')


def results_for(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(
            'SELECT suite, expectation, "column", severity, success, observed_value, details '
            "FROM quality.expectation_results WHERE run_id = %s",
            (run_id,),
        )
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def dumps(x: Any) -> str:
    return json.dumps(x, default=str)
