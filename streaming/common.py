"""What the speed layer and the batch landing share: batch-level metrics and the checkpoint guard.

Both queries read the same Kafka log with the same transforms (`streaming.transforms`) and write through the
same exactly-once sink (`streaming.sink`); the helpers here are the rest they have in common (the latency
histogram is how a sink task reports its rows' produce -> commit latency without sending rows). Nothing here
knows which of the two queries it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
from pyspark.sql import SparkSession

from kernel.errors import EcomError
from kernel.settings import Settings
from kernel.stats import percentiles

log = logging.getLogger("ecom.streaming")


class QueryIdentity(Protocol):
    """The fields of a query's config the checkpoint guard reads (StreamConfig and LandingConfig have them)."""

    sink: str
    checkpoint: Path
    query_name: str


class KafkaLag:
    """Records behind the log end after a batch: end offsets (one metadata call) minus positions consumed."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.positions: dict[int, int] = {}
        self._admin = None

    def advance(self, partitions: np.ndarray, ends: np.ndarray) -> None:
        """Record positions consumed: `ends[i]` = the next offset after what was read of `partitions[i]`."""
        for p, end in zip(partitions.tolist(), ends.tolist(), strict=True):
            self.positions[int(p)] = max(self.positions.get(int(p), 0), int(end))

    def lag(self) -> int | None:
        try:
            from kernel.kafka import admin_client, end_offsets

            if self._admin is None:
                self._admin = admin_client(self.bootstrap_servers)
            ends = end_offsets(self.bootstrap_servers, [self.topic], timeout=10, admin=self._admin)[
                self.topic
            ]
            return int(sum(max(0, end - self.positions.get(p, end)) for p, end in ends.items()))
        except Exception as exc:  # metrics must never fail a batch
            log.debug("kafka lag unavailable: %s", exc)
            return None


def latencies_ms(kafka_ts: pa.ChunkedArray, now_s: float) -> np.ndarray:
    ts = kafka_ts.cast(pa.timestamp("us", tz="UTC")).to_numpy(zero_copy_only=False).astype("datetime64[us]")
    return now_s * 1000.0 - ts.astype(np.int64) / 1000.0


def latency_percentiles(values: np.ndarray) -> dict[str, float | None]:
    """`latency_p50_ms` / `_p95_ms` / `_p99_ms` of a batch, as `pipeline_metrics` stores them."""
    return {f"latency_{k}_ms": v for k, v in percentiles(values).items()}


def latency_histogram(values_ms: np.ndarray) -> tuple[list[int], list[int]]:
    """Latencies rounded to whole ms as (value, count) pairs: what a task sends the driver instead of rows."""
    if len(values_ms) == 0:
        return [], []
    values, counts = np.unique(
        np.rint(np.asarray(values_ms, dtype=np.float64)).astype(np.int64), return_counts=True
    )
    return values.tolist(), counts.tolist()


def latency_percentiles_of_histogram(values_ms: list[int], counts: list[int]) -> dict[str, float | None]:
    """`latency_percentiles` of the rows the tasks' histograms describe (merged; the same nearest rank)."""
    return latency_percentiles(
        np.repeat(np.asarray(values_ms, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    )


def check_checkpoint(cfg: QueryIdentity, settings: Settings | None = None) -> None:
    """Refuse a fresh checkpoint for a query name that already committed batches (its batch ids restart at 0
    and would be taken for replays, i.e. silently skipped)."""
    if cfg.sink != "postgres":
        return
    offsets = cfg.checkpoint / "offsets"
    if offsets.is_dir() and any(offsets.iterdir()):
        return
    from kernel.db import connect

    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM speed.batch_commits WHERE query_name = %s", (cfg.query_name,))
        n = cur.fetchone()[0]
    if n:
        raise EcomError(
            f"query '{cfg.query_name}' already committed {n} batches but checkpoint {cfg.checkpoint} is new; "
            "restore that checkpoint or start under a new --query-name"
        )


@contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set one Spark SQL conf for the duration of the block, then restore what was there."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)
