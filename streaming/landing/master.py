"""The master dataset's write path: event -> `master.transactions` row, and an exactly-once bulk insert.

The batch landing (streaming/landing/query.py) uses it for every micro-batch; tests and tools of other rooms use
`insert_master_rows` to seed the master dataset with simulated events. The insert is COPY into a temporary
table then `INSERT ... ON CONFLICT (transaction_id) DO NOTHING`, so running it twice on the same events
changes nothing (the table is append-only: a trigger rejects UPDATE/DELETE).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg

from events.contract import field_names
from kernel.db import copy_insert

KAFKA_COLUMNS = ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"]
MASTER_COLUMNS = [*field_names("transaction"), *KAFKA_COLUMNS]
CHARGEBACK_COLUMNS = [*field_names("chargeback"), "kafka_topic", "kafka_partition", "kafka_offset"]


def _ts(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def master_row(
    event: dict[str, Any],
    kafka_topic: str = "simulated",
    kafka_partition: int = 0,
    kafka_offset: int = 0,
    kafka_timestamp: datetime | str | None = None,
) -> tuple:
    """A contract-valid event dict -> a tuple in MASTER_COLUMNS order.

    Without Kafka coordinates (seeding from the simulator) the topic is 'simulated' and the produce time
    defaults to the event time; pass a distinct `kafka_offset` per row to keep them apart.
    """
    values: list[Any] = []
    for name in field_names("transaction"):
        value = event.get(name)
        if name == "line_items":
            value = value if isinstance(value, str) else json.dumps(value)
        elif name == "event_time":
            value = _ts(value)
        values.append(value)
    produced = _ts(kafka_timestamp) if kafka_timestamp is not None else _ts(event.get("event_time"))
    return (*values, kafka_topic, int(kafka_partition), int(kafka_offset), produced)


def chargeback_row(
    event: dict[str, Any], kafka_topic: str = "simulated", kafka_partition: int = 0, kafka_offset: int = 0
) -> tuple:
    """A contract-valid chargeback dict -> a tuple in CHARGEBACK_COLUMNS order."""
    values = [
        _ts(event.get(name)) if name == "reported_at" else event.get(name)
        for name in field_names("chargeback")
    ]
    return (*values, kafka_topic, int(kafka_partition), int(kafka_offset))


def insert_master_rows(conn: psycopg.Connection, rows: Iterable[Sequence[Any]]) -> int:
    """Insert MASTER_COLUMNS tuples (see `master_row`) into master.transactions exactly once.

    Commits unless the connection is already inside a transaction block the caller manages
    (`with conn.transaction(): ...`). Returns how many rows were new.
    """
    with conn.transaction(), conn.cursor() as cur:
        return copy_insert(cur, "master.transactions", MASTER_COLUMNS, rows)


def insert_chargeback_rows(conn: psycopg.Connection, rows: Iterable[Sequence[Any]]) -> int:
    """Insert CHARGEBACK_COLUMNS tuples into master.chargebacks exactly once."""
    with conn.transaction(), conn.cursor() as cur:
        return copy_insert(cur, "master.chargebacks", CHARGEBACK_COLUMNS, rows)
