"""The only side effect of the streaming queries: rows written from the executors, a batch marker from the driver.

Exactly once = Spark's replay + an idempotent write per row + a batch marker:
1. driver: if the (query_name, batch_id) marker is in speed.batch_commits, the batch committed before a crash and
   Spark is replaying it: nothing is computed or written again (the caller still runs its stateful part);
2. executors: each Spark task writes its own partition's rows in ONE Postgres transaction of its own
   (`PartitionWriter`): per table COPY into a temp table + `INSERT ... ON CONFLICT DO NOTHING`
   (`kernel.db.copy_insert`), so a row that an earlier attempt of the same batch already stored (a task that
   committed before its sibling failed, or before a `kill -9`) or that was delivered twice upstream is not
   written again. A task hands the driver its counts, never its rows (`TASK_COUNTS_SCHEMA`);
3. driver, after every task of the batch succeeded: the marker and the batch's metrics row in one transaction.

A task's `written` counts the rows of its partition that are stored for THIS batch (`TableWrite.stored_by`),
whether this attempt or an earlier one inserted them, so the marker of a batch replayed after a partial
failure still accounts for all of its rows, once. What the marker adds to the per-row keys: a batch it marks
is final. A replay of that batch id computes and writes nothing, even when its recomputation would differ
from the first run (other rows than the first time, e.g. after the topic was recreated; another champion);
and a fresh checkpoint under a query name with markers is refused (`streaming.common.check_checkpoint`).

If Postgres is briefly unreachable a task's transaction (and the driver's marker transaction) is retried with
exponential backoff; when the retries run out the batch fails and a restart replays it (nothing lost).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from kernel.db import connect, copy_insert
from kernel.settings import Settings, get_settings
from streaming.common import latency_histogram, latency_percentiles_of_histogram

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
QUARANTINE_KEY = ("source", "kafka_topic", "kafka_partition", "kafka_offset")
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
# what one Spark task returns to the driver: its counts, the Kafka positions it consumed (for the lag) and a
# histogram of its rows' produce -> commit latency in whole ms (value, count): numbers, never rows
TASK_COUNTS_SCHEMA = T.StructType(
    [
        *(T.StructField(n, T.LongType()) for n in ("rows_in", "rows_written", "rows_quarantined", "alerts")),
        T.StructField("write_ms", T.DoubleType()),
        T.StructField("kafka_partitions", T.ArrayType(T.IntegerType())),
        *(
            T.StructField(n, T.ArrayType(T.LongType()))
            for n in ("kafka_ends", "latency_ms", "latency_counts")
        ),
    ]
)
TASK_COUNTS_ARROW = to_arrow_schema(TASK_COUNTS_SCHEMA, timezone="UTC")
_SQL_ARRAY_TYPES = {"string": "text", "int32": "integer", "int64": "bigint"}


@dataclass
class TableWrite:
    """Rows for one target table (tuples in `columns` order, or an Arrow table holding those columns)."""

    table: str
    columns: Sequence[str]
    rows: Iterable[Sequence[Any]] | pa.Table
    conflict: str = "(transaction_id)"
    where: str | None = None  # fixed SQL filter over the copied rows (alias t), see copy_insert
    # columns that say "this delivery, in this batch" (e.g. transaction_id + batch_id): `written` counts the rows
    # stored with these values, i.e. also those an earlier attempt of the batch inserted; None = rows inserted now
    stored_by: Sequence[str] | None = None


@dataclass
class BatchResult:
    batch_id: int
    replayed: bool  # the marker was there: this run's write is not the batch's record
    computed: bool = True  # False: the marker was there before the tasks, nothing was computed or written
    values: dict[str, Any] = field(default_factory=dict)  # the metrics row written with the marker
    tasks: int = 0
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


def retrying(
    fn: Callable[[], Any],
    what: str,
    max_attempts: int = 8,
    first_backoff_s: float = 0.5,
    max_backoff_s: float = 10.0,
    on_failure: Callable[[], None] = lambda: None,
) -> tuple[Any, int]:
    """Run `fn` until it does not raise psycopg.OperationalError (Postgres down), with exponential backoff."""
    delay = first_backoff_s
    for attempt in range(1, max_attempts + 1):
        try:
            return fn(), attempt
        except psycopg.OperationalError as exc:
            on_failure()
            if attempt == max_attempts:
                raise
            log.warning(
                "%s: Postgres unavailable (%s); retry %d/%d in %.1fs",
                what,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                attempt,
                max_attempts - 1,
                delay,
            )
            time.sleep(delay)
            delay = min(max_backoff_s, delay * 2)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------ executor side
# one connection per Python worker process and database (Spark reuses its Python workers across tasks and
# batches, so a batch pays no connection set-up)
_WORKER_CONNECTIONS: dict[str, psycopg.Connection] = {}


def _worker_connection(settings: Settings) -> psycopg.Connection:
    key = settings.postgres.dsn()
    conn = _WORKER_CONNECTIONS.get(key)
    if conn is None or conn.closed or conn.broken:
        conn = _WORKER_CONNECTIONS[key] = connect(settings)
    return conn


def _drop_worker_connection(settings: Settings) -> None:
    conn = _WORKER_CONNECTIONS.pop(settings.postgres.dsn(), None)
    if conn is not None and not conn.closed:
        conn.close()


def _key_arrays(w: TableWrite, rows: pa.Table | list) -> tuple[list[list], list[str]]:
    cols = list(w.stored_by or ())
    if isinstance(rows, pa.Table):
        arrays = [rows.column(c).to_pylist() for c in cols]
        types = [_SQL_ARRAY_TYPES[str(rows.schema.field(c).type)] for c in cols]
        return arrays, types
    index = [list(w.columns).index(c) for c in cols]
    arrays = [[row[i] for row in rows] for i in index]
    types = ["bigint" if all(isinstance(v, int) for v in a if v is not None) else "text" for a in arrays]
    return arrays, types


def _stored_count(cur: psycopg.Cursor, w: TableWrite, rows: pa.Table | list) -> int:
    """How many of `rows` are stored with the same `stored_by` values (each stored row counted once)."""
    arrays, types = _key_arrays(w, rows)
    cols = ", ".join(w.stored_by or ())
    unnest = ", ".join(f"%s::{t}[]" for t in types)
    cur.execute(
        f"SELECT count(*) FROM {w.table} WHERE ({cols}) IN (SELECT * FROM unnest({unnest}) AS r({cols}))",
        arrays,
    )
    return int(cur.fetchone()[0])


def _write_table(cur: psycopg.Cursor, w: TableWrite) -> int:
    rows = w.rows if isinstance(w.rows, pa.Table) else list(w.rows)
    n = rows.num_rows if isinstance(rows, pa.Table) else len(rows)
    if n == 0:
        return 0
    inserted = copy_insert(cur, w.table, w.columns, rows, w.conflict, w.where)
    if w.stored_by is None or inserted == n:
        return inserted
    return _stored_count(cur, w, rows)  # some were there already: count those this batch stored before


@dataclass(frozen=True)
class PartitionWriter:
    """Executor side: writes one Spark task's rows in one transaction of its own. Pickled into the task's closure
    (it carries the settings, so executors connect where the driver's settings say)."""

    settings: Settings
    max_attempts: int = 8
    first_backoff_s: float = 0.5
    max_backoff_s: float = 10.0

    def write(self, writes: Sequence[TableWrite]) -> dict[str, int]:
        """Write every table's rows in one transaction; returns rows written per table (see TableWrite)."""
        materialised = [
            w if isinstance(w.rows, pa.Table) else TableWrite(**{**w.__dict__, "rows": list(w.rows)})
            for w in writes
        ]

        def attempt() -> dict[str, int]:
            conn = _worker_connection(self.settings)
            try:
                with conn.cursor() as cur:
                    written = {w.table: _write_table(cur, w) for w in materialised}
                conn.commit()
            except BaseException:
                if not conn.closed and not conn.broken:
                    conn.rollback()
                raise
            return written

        return retrying(
            attempt,
            "sink task",
            self.max_attempts,
            self.first_backoff_s,
            self.max_backoff_s,
            on_failure=lambda: _drop_worker_connection(self.settings),
        )[0]


def task_counts(
    rows_in: int,
    rows_written: int,
    rows_quarantined: int,
    alerts: int,
    write_ms: float,
    kafka_partition: np.ndarray,
    kafka_offset: np.ndarray,
    latencies_ms: np.ndarray,
) -> dict[str, Any]:
    """One task's row of TASK_COUNTS_SCHEMA (as a dict)."""
    partitions = np.unique(kafka_partition) if len(kafka_partition) else np.array([], dtype=np.int64)
    ends = [int(kafka_offset[kafka_partition == p].max()) + 1 for p in partitions]
    values, counts = latency_histogram(latencies_ms)
    return {
        "rows_in": int(rows_in),
        "rows_written": int(rows_written),
        "rows_quarantined": int(rows_quarantined),
        "alerts": int(alerts),
        "write_ms": float(write_ms),
        "kafka_partitions": [int(p) for p in partitions],
        "kafka_ends": ends,
        "latency_ms": values,
        "latency_counts": counts,
    }


@dataclass
class BatchCounts:
    """The tasks' counts of one batch, added up on the driver."""

    tasks: int
    rows_in: int
    rows_written: int
    rows_quarantined: int
    alerts: int
    write_ms_max: float
    kafka_partitions: np.ndarray
    kafka_ends: np.ndarray
    latency: dict[str, float | None]

    @classmethod
    def of(cls, tasks: Sequence[Any]) -> BatchCounts:
        def total(name: str) -> int:
            return int(sum(t[name] for t in tasks))

        def flat(name: str) -> list[int]:
            return [v for t in tasks for v in (t[name] or [])]

        return cls(
            tasks=len(tasks),
            rows_in=total("rows_in"),
            rows_written=total("rows_written"),
            rows_quarantined=total("rows_quarantined"),
            alerts=total("alerts"),
            write_ms_max=max((float(t["write_ms"]) for t in tasks), default=0.0),
            kafka_partitions=np.asarray(flat("kafka_partitions"), dtype=np.int64),
            kafka_ends=np.asarray(flat("kafka_ends"), dtype=np.int64),
            latency=latency_percentiles_of_histogram(flat("latency_ms"), flat("latency_counts")),
        )


# ------------------------------------------------------------------------------------------ driver side
class PostgresBatchSink:
    """Driver side of one query's exactly-once sink: the marker check, the tasks' write job, the marker."""

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

    def partition_writer(self) -> PartitionWriter:
        """What the query's partition function writes through (pickled to the executors)."""
        return PartitionWriter(self.settings, self.max_attempts, self.first_backoff_s, self.max_backoff_s)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self.settings)
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def _retrying(self, fn: Callable[[], Any]) -> tuple[Any, int]:
        return retrying(
            fn, self.query_name, self.max_attempts, self.first_backoff_s, self.max_backoff_s, self.close
        )

    def already_committed(self, batch_id: int) -> bool:
        """True when this batch's marker exists (the batch is final: compute and write nothing)."""

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

    def write_batch(
        self,
        batch_id: int,
        tasks: Callable[[], Any],
        metrics: Callable[[BatchCounts], dict[str, Any]],
    ) -> BatchResult:
        """Run a batch's write job and mark the batch committed once every task succeeded.

        `tasks()` returns a DataFrame of TASK_COUNTS_SCHEMA whose partition function writes through
        `partition_writer()`; it is not called when the batch's marker exists. `metrics(counts)` returns the
        ops.stream_batches values (rows_written among them, which the marker records too).
        """
        if self.already_committed(batch_id):
            return BatchResult(batch_id, replayed=True, computed=False)
        counts = BatchCounts.of([r.asDict() for r in tasks().collect()])
        values = {"query_name": self.query_name, "batch_id": batch_id, **metrics(counts)}

        def attempt() -> bool:
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "INSERT INTO speed.batch_commits (query_name, batch_id, rows_written) "
                        "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        (self.query_name, batch_id, int(values.get("rows_written", 0))),
                    )
                    if cur.rowcount == 0:  # committed meanwhile by another run of this batch: keep that one
                        conn.rollback()
                        return False
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
            return True

        marked, attempts = self._retrying(attempt)
        return BatchResult(
            batch_id, replayed=not marked, values=values, tasks=counts.tasks, attempts=attempts
        )
