"""Lambda's other half: land the Kafka log into the immutable master dataset in Postgres, exactly once.

One Spark Structured Streaming query subscribes to the transactions topic and the labels (chargebacks)
topic, parses each record with the contract, and per micro-batch each Spark task writes its own rows in one
Postgres transaction: valid transactions -> master.transactions, valid chargebacks -> master.chargebacks,
everything else -> quarantine.events (source='landing', raw bytes + reason); after every task succeeded the
driver writes the (query, batch) marker and the batch's metrics (streaming/sink.py). Spark's checkpoint holds
the Kafka offsets; the marker makes a replayed batch a no-op; the primary keys make a row an earlier attempt
stored, or a re-produced event, a no-op. The master tables are append-only (a trigger rejects UPDATE/DELETE).

Why a second streaming query (not a Dagster-run batch read with offsets kept in a table): it is the same
parse/validate/sink code and the same exactly-once argument as the speed layer, Spark keeps the offsets,
and the trigger decides the cadence: `ecom land` (trigger availableNow) lands everything new since the
last run and stops - what a Dagster asset runs before the dbt models - and `ecom land --continuous` keeps
landing every few seconds for a fresher batch layer. See docs/speed.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from kernel.settings import Settings, as_component, get_settings
from streaming import transforms
from streaming.common import KafkaLag, check_checkpoint, latencies_ms
from streaming.landing.master import CHARGEBACK_COLUMNS, MASTER_COLUMNS
from streaming.sink import (
    QUARANTINE_COLUMNS,
    QUARANTINE_CONFLICT,
    QUARANTINE_KEY,
    TASK_COUNTS_ARROW,
    TASK_COUNTS_SCHEMA,
    BatchCounts,
    PartitionWriter,
    PostgresBatchSink,
    TableWrite,
    quarantine_rows,
    task_counts,
)

log = logging.getLogger("ecom.landing")
ENVELOPE = ["kafka_topic", "kafka_partition", "kafka_offset", "raw_payload", "reject_reason"]
# a master row stored by this delivery (any attempt of its batch), not by an earlier delivery of the same event
DELIVERY = ("transaction_id", "kafka_topic", "kafka_partition", "kafka_offset")


@dataclass
class LandingConfig:
    topic_transactions: str
    topic_labels: str
    query_name: str
    checkpoint: Path
    bootstrap_servers: str
    max_offsets_per_trigger: int
    trigger: dict[str, Any]
    sink: str = "postgres"

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        topic_transactions: str | None = None,
        topic_labels: str | None = None,
        query_name: str = "landing",
        checkpoint: str | Path | None = None,
        continuous: bool = False,
        trigger: str | None = None,
    ) -> LandingConfig:
        s = settings or get_settings()
        trig = {"processingTime": trigger or "5 seconds"} if continuous else {"availableNow": True}
        return cls(
            topic_transactions=topic_transactions or s.kafka.topic_transactions,
            topic_labels=topic_labels or s.kafka.topic_labels,
            query_name=query_name,
            checkpoint=Path(checkpoint) if checkpoint else s.spark.checkpoint_dir / query_name,
            bootstrap_servers=s.kafka.bootstrap_servers,
            max_offsets_per_trigger=s.spark.max_offsets_per_trigger,
            trigger=trig,
        )


def master_transactions(envelope: DataFrame) -> DataFrame:
    """Kafka envelope of the transactions topic -> MASTER_COLUMNS + raw_payload/reject_reason. Pure."""
    tx = transforms.flatten_transactions(transforms.parse_events(envelope, "transaction"))
    cols = [F.col("event_ts").alias("event_time") if c == "event_time" else F.col(c) for c in MASTER_COLUMNS]
    return tx.select(*cols, "raw_payload", "reject_reason")


def master_chargebacks(envelope: DataFrame) -> DataFrame:
    """Kafka envelope of the labels topic -> CHARGEBACK_COLUMNS + raw_payload/reject_reason. Pure."""
    cb = transforms.flatten_chargebacks(transforms.parse_events(envelope, "chargeback"))
    cols = [
        F.col("reported_ts").alias("reported_at") if c == "reported_at" else F.col(c)
        for c in CHARGEBACK_COLUMNS
    ]
    return cb.select(*cols, "raw_payload", "reject_reason")


def landing_writes(table: pa.Table, columns: list[str], target: str) -> list[TableWrite]:
    """One task's parsed rows of one topic -> the master rows it writes and the quarantine rows. Pure."""
    bad = table.column("reject_reason").is_valid()
    ok, rejected = table.filter(pc.invert(bad)), table.filter(bad)
    return [
        TableWrite(target, columns, ok, stored_by=DELIVERY),
        TableWrite(
            "quarantine.events",
            QUARANTINE_COLUMNS,
            quarantine_rows("landing", zip(*[rejected.column(c).to_pylist() for c in ENVELOPE], strict=True)),
            conflict=QUARANTINE_CONFLICT,
            stored_by=QUARANTINE_KEY,
        ),
    ]


def land_partition(
    writer: PartitionWriter, frame: DataFrame, columns: list[str], target: str, kafka_lag: bool
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function landing one topic's `frame`: each task writes its rows in one transaction of its
    own and yields one row of TASK_COUNTS_SCHEMA (no row reaches the driver). `kafka_lag`: report the Kafka
    positions it read (the lag is that of the transactions topic)."""
    schema = to_arrow_schema(frame.schema, timezone="UTC")

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        table = pa.Table.from_batches(list(batches), schema=schema)
        t0 = time.time()
        written = writer.write(landing_writes(table, columns, target))
        ok = table.filter(pc.invert(table.column("reject_reason").is_valid()))
        positions = table if kafka_lag else table.slice(0, 0)
        counts = task_counts(
            rows_in=table.num_rows,
            rows_written=written.get(target, 0),
            rows_quarantined=written.get("quarantine.events", 0),
            alerts=0,
            write_ms=(time.time() - t0) * 1000.0,
            kafka_partition=positions.column("kafka_partition").to_numpy(zero_copy_only=False),
            kafka_offset=positions.column("kafka_offset").to_numpy(zero_copy_only=False),
            latencies_ms=latencies_ms(ok.column("kafka_timestamp"), time.time())
            if "kafka_timestamp" in ok.column_names
            else np.array([]),
        )
        yield pa.RecordBatch.from_pylist([counts], schema=TASK_COUNTS_ARROW)

    return partition


class LandingBatchWriter:
    """foreachBatch of the landing query: each task lands its rows; the marker after all of them."""

    def __init__(self, cfg: LandingConfig, settings: Settings | None = None) -> None:
        self.cfg = cfg
        self.settings = settings or get_settings()
        # the sink writes as the landing writer's role (kernel/sql/080_component_roles.sql)
        self.sink = PostgresBatchSink(cfg.query_name, as_component(self.settings, "landing"))
        self.writer = self.sink.partition_writer()
        self.lag = KafkaLag(cfg.bootstrap_servers, cfg.topic_transactions)
        self.batches = 0

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        t0 = time.time()
        env = transforms.kafka_envelope(batch_df)
        seen: dict[str, Any] = {}

        def tasks() -> DataFrame:
            env.persist()
            seen["persisted"] = True
            tx = master_transactions(env.filter(F.col("kafka_topic") == self.cfg.topic_transactions))
            cb = master_chargebacks(env.filter(F.col("kafka_topic") == self.cfg.topic_labels))
            land_tx = land_partition(self.writer, tx, MASTER_COLUMNS, "master.transactions", kafka_lag=True)
            land_cb = land_partition(
                self.writer, cb, CHARGEBACK_COLUMNS, "master.chargebacks", kafka_lag=False
            )
            return tx.mapInArrow(land_tx, TASK_COUNTS_SCHEMA).unionByName(
                cb.mapInArrow(land_cb, TASK_COUNTS_SCHEMA)
            )

        def metrics(counts: BatchCounts) -> dict[str, Any]:
            self.lag.advance(counts.kafka_partitions, counts.kafka_ends)
            values = {
                "rows_in": counts.rows_in,
                "rows_written": counts.rows_written,
                "rows_quarantined": counts.rows_quarantined,
                "duration_ms": (time.time() - t0) * 1000.0,
                "kafka_lag": self.lag.lag(),
                **counts.latency,
            }
            seen["values"] = values
            return values

        try:
            result = self.sink.write_batch(batch_id, tasks, metrics)
        finally:
            if seen.get("persisted"):
                env.unpersist()
        self.batches += 1
        if not result.computed:
            log.info(
                "%s batch %d: already committed (replay after restart), skipped",
                self.cfg.query_name,
                batch_id,
            )
            return
        if result.replayed:
            return
        v = seen["values"]
        log.info(
            "%s batch %d: in=%d written=%d quarantined=%d in %d tasks %.0fms lag=%s",
            self.cfg.query_name,
            batch_id,
            v["rows_in"],
            v["rows_written"],
            v["rows_quarantined"],
            result.tasks,
            v["duration_ms"],
            v["kafka_lag"],
        )


def start_landing_query(spark: SparkSession, cfg: LandingConfig, settings: Settings | None = None):
    """Start the landing query (returns the StreamingQuery; availableNow stops by itself when caught up)."""
    s = settings or get_settings()
    check_checkpoint(cfg, s)
    cfg.checkpoint.mkdir(parents=True, exist_ok=True)
    raw = transforms.read_kafka(
        spark,
        f"{cfg.topic_transactions},{cfg.topic_labels}",
        cfg.bootstrap_servers,
        cfg.max_offsets_per_trigger,
    )
    return (
        raw.writeStream.queryName(cfg.query_name)
        .option("checkpointLocation", str(cfg.checkpoint))
        .trigger(**cfg.trigger)
        .foreachBatch(LandingBatchWriter(cfg, s))
        .start()
    )
