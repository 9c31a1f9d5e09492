"""The only side effect of the streaming queries: one Postgres transaction per micro-batch.

Exactly once = Spark's replay + an idempotent sink. In one transaction the sink
1. inserts the (query_name, batch_id) marker into speed.batch_commits; if it is already there the batch was
   committed before a crash and this is Spark replaying it: roll back, nothing to do;
2. COPYs each table's rows into a temp table and `INSERT ... ON CONFLICT DO NOTHING` into the target
   (a transaction id already present, e.g. produced twice upstream, is not written twice);
3. writes the batch's metrics row into ops.stream_batches;
and commits. A crash anywhere before COMMIT leaves nothing behind, and Spark replays the same offsets.
If Postgres is briefly unreachable the whole transaction is retried with exponential backoff; when the
retries run out the query fails and a restart replays the batch (nothing is lost either way).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa

from kernel.db import connect, copy_insert
from kernel.settings import Settings, get_settings

log = logging.getLogger("ecom.speed.sink")

QUARANTINE_COLUMNS = [
    "source",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "raw_payload",
    "raw_text",
    "reason",
]
QUARANTINE_CONFLICT = "(source, kafka_topic, kafka_partition, kafka_offset) WHERE kafka_offset IS NOT NULL"
METRIC_COLUMNS = [
    "query_name",
    "batch_id",
    "rows_in",
    "rows_written",
    "rows_quarantined",
    "duration_ms",
    "kafka_lag",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "model_version",
]


@dataclass
class TableWrite:
    """Rows for one target table (tuples in `columns` order)."""

    table: str
    columns: Sequence[str]
    rows: Iterable[Sequence[Any]] | pa.Table  # tuples in `columns` order, or an Arrow table with them
    conflict: str = "(transaction_id)"
    counts_as_written: bool = True  # quarantined rows are reported apart
    where: str | None = None  # fixed SQL filter over the copied rows (alias t), see copy_insert


@dataclass
class BatchResult:
    batch_id: int
    replayed: bool
    written: dict[str, int] = field(default_factory=dict)
    attempts: int = 1


def quarantine_rows(source: str, rows: Iterable[tuple]) -> list[tuple]:
    """(topic, partition, offset, raw bytes, reason) -> quarantine.events tuples (raw_text only if valid UTF-8)."""
    out = []
    for topic, partition, offset, raw, reason in rows:
        raw = bytes(raw or b"")
        try:
            text = raw.decode("utf-8").replace("\x00", "")  # Postgres text cannot hold NUL
        except UnicodeDecodeError:
            text = None
        out.append((source, topic, partition, offset, raw, text, reason))
    return out


class PostgresBatchSink:
    """Commits micro-batches of one query to Postgres, exactly once (see module docstring)."""

    def __init__(
        self,
        query_name: str,
        settings: Settings | None = None,
        max_attempts: int = 8,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.query_name = query_name
        self.settings = settings or get_settings()
        self.max_attempts = max_attempts
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self.settings)
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def already_committed(self, batch_id: int) -> bool:
        """True when this batch's marker exists (lets the caller skip computing a replayed batch)."""

        def check() -> bool:
            conn = self._connection()
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT 1 FROM speed.batch_commits WHERE query_name = %s AND batch_id = %s",
                    (self.query_name, batch_id),
                )
                found = cur.fetchone() is not None
            conn.rollback()
            return found

        return self._retrying(check)[0]

    def commit(
        self,
        batch_id: int,
        writes: Sequence[TableWrite],
        metrics: Callable[[dict[str, int]], dict[str, Any]] | None = None,
    ) -> BatchResult:
        """Write every table's rows + marker + metrics in one transaction; a replayed batch is a no-op.

        `metrics(written)` is called inside the transaction, just before COMMIT, with the rows written per
        table, and returns the ops.stream_batches values (so commit latency is measured at commit time).
        Row iterables are materialised once so a retry can re-send them.
        """
        materialised = [(w, w.rows if isinstance(w.rows, pa.Table) else list(w.rows)) for w in writes]

        def attempt() -> BatchResult:
            conn = self._connection()
            written: dict[str, int] = {}
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "INSERT INTO speed.batch_commits (query_name, batch_id, rows_written) VALUES (%s, %s, 0) "
                        "ON CONFLICT DO NOTHING",
                        (self.query_name, batch_id),
                    )
                    if cur.rowcount == 0:
                        conn.rollback()
                        return BatchResult(batch_id, replayed=True)
                    for w, rows in materialised:
                        written[w.table] = (
                            copy_insert(cur, w.table, w.columns, rows, w.conflict, w.where)
                            if len(rows)
                            else 0
                        )
                    n_written = sum(
                        n
                        for (w, _), n in zip(materialised, written.values(), strict=True)
                        if w.counts_as_written
                    )
                    cur.execute(
                        "UPDATE speed.batch_commits SET rows_written = %s WHERE query_name = %s AND batch_id = %s",
                        (n_written, self.query_name, batch_id),
                    )
                    if metrics is not None:
                        values = {"query_name": self.query_name, "batch_id": batch_id, **metrics(written)}
                        cols = [c for c in METRIC_COLUMNS if c in values]
                        cur.execute(
                            f"INSERT INTO ops.stream_batches ({', '.join(cols)}) "
                            f"VALUES ({', '.join(['%s'] * len(cols))}) ON CONFLICT DO NOTHING",
                            [values[c] for c in cols],
                        )
                conn.commit()
            except BaseException:
                if not conn.closed and not conn.broken:
                    conn.rollback()
                raise
            return BatchResult(batch_id, replayed=False, written=written)

        result, attempts = self._retrying(attempt)
        result.attempts = attempts
        return result

    def _retrying(self, fn: Callable[[], Any]) -> tuple[Any, int]:
        delay = self.first_backoff_s
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn(), attempt
            except psycopg.OperationalError as exc:
                self.close()
                if attempt == self.max_attempts:
                    raise
                log.warning(
                    "%s: Postgres unavailable (%s); retry %d/%d in %.1fs",
                    self.query_name,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    attempt,
                    self.max_attempts - 1,
                    delay,
                )
                time.sleep(delay)
                delay = min(self.max_backoff_s, delay * 2)
        raise AssertionError("unreachable")
