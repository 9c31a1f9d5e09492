"""Lambda's other half: land the Kafka log into the immutable master dataset in Postgres, exactly once.

One Spark Structured Streaming query subscribes to the transactions topic and the labels (chargebacks)
topic, parses each record with the contract, and per micro-batch writes in ONE Postgres transaction:
valid transactions -> master.transactions, valid chargebacks -> master.chargebacks, everything else ->
quarantine.events (source='landing', raw bytes + reason), plus the (query, batch) marker and the batch's
metrics. Spark's checkpoint holds the Kafka offsets; the marker makes a replayed batch a no-op; the primary
keys make a re-produced event a no-op. The master tables are append-only (a trigger rejects UPDATE/DELETE).

Why a second streaming query (not a Dagster-run batch read with offsets kept in a table): it is the same
parse/validate/sink code and the same exactly-once argument as the speed layer, Spark keeps the offsets,
and the trigger decides the cadence: `ecom land` (trigger availableNow) lands everything new since the
last run and stops - what a Dagster asset runs before the dbt models - and `ecom land --continuous` keeps
landing every few seconds for a fresher batch layer. See docs/speed.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kernel.settings import Settings, as_component, get_settings
from streaming import transforms
from streaming.common import KafkaLag, check_checkpoint, latencies_ms, latency_percentiles
from streaming.landing.master import CHARGEBACK_COLUMNS, MASTER_COLUMNS
from streaming.sink import (
    QUARANTINE_COLUMNS,
    QUARANTINE_CONFLICT,
    PostgresBatchSink,
    TableWrite,
    quarantine_rows,
)

log = logging.getLogger("ecom.landing")
ENVELOPE = ["kafka_topic", "kafka_partition", "kafka_offset", "raw_payload", "reject_reason"]


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


def _rows(table: pa.Table, columns: list[str]):
    return zip(*[table.column(c).to_pylist() for c in columns], strict=True)


class LandingBatchWriter:
    """foreachBatch of the landing query (one Postgres transaction per batch)."""

    def __init__(self, cfg: LandingConfig, settings: Settings | None = None) -> None:
        self.cfg = cfg
        self.settings = settings or get_settings()
        # the sink writes as the landing writer's role (kernel/sql/080_component_roles.sql)
        self.sink = PostgresBatchSink(cfg.query_name, as_component(self.settings, "landing"))
        self.lag = KafkaLag(cfg.bootstrap_servers, cfg.topic_transactions)
        self.batches = 0

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        t0 = time.time()
        if self.sink.already_committed(batch_id):
            log.info(
                "%s batch %d: already committed (replay after restart), skipped",
                self.cfg.query_name,
                batch_id,
            )
            return
        env = transforms.kafka_envelope(batch_df).persist()
        try:
            tx = master_transactions(
                env.filter(F.col("kafka_topic") == self.cfg.topic_transactions)
            ).toArrow()
            cb = master_chargebacks(env.filter(F.col("kafka_topic") == self.cfg.topic_labels)).toArrow()
        finally:
            env.unpersist()
        tx_bad = tx.column("reject_reason").is_valid()
        cb_bad = cb.column("reject_reason").is_valid()
        tx_ok, cb_ok = tx.filter(pc.invert(tx_bad)), cb.filter(pc.invert(cb_bad))
        bad = pa.concat_tables([tx.filter(tx_bad).select(ENVELOPE), cb.filter(cb_bad).select(ENVELOPE)])
        tx_only = tx.filter(pc.equal(tx.column("kafka_topic"), self.cfg.topic_transactions))
        if tx_only.num_rows:
            self.lag.advance(
                tx_only.column("kafka_partition").to_numpy(zero_copy_only=False),
                tx_only.column("kafka_offset").to_numpy(zero_copy_only=False),
            )
        writes = [
            TableWrite("master.transactions", MASTER_COLUMNS, tx_ok),
            TableWrite("master.chargebacks", CHARGEBACK_COLUMNS, cb_ok),
            TableWrite(
                "quarantine.events",
                QUARANTINE_COLUMNS,
                quarantine_rows("landing", _rows(bad, ENVELOPE)),
                conflict=QUARANTINE_CONFLICT,
                counts_as_written=False,
            ),
        ]
        summary: dict[str, Any] = {}

        def metrics(written: dict[str, int]) -> dict[str, Any]:
            values = {
                "rows_in": tx.num_rows + cb.num_rows,
                "rows_written": written.get("master.transactions", 0) + written.get("master.chargebacks", 0),
                "rows_quarantined": written.get("quarantine.events", 0),
                "duration_ms": (time.time() - t0) * 1000.0,
                "kafka_lag": self.lag.lag(),
                **latency_percentiles(latencies_ms(tx_ok.column("kafka_timestamp"), time.time())),
            }
            summary.update(values)
            return values

        result = self.sink.commit(batch_id, writes, metrics)
        self.batches += 1
        if result.replayed:
            return
        log.info(
            "%s batch %d: in=%d transactions=%d chargebacks=%d quarantined=%d %.0fms lag=%s",
            self.cfg.query_name,
            batch_id,
            summary["rows_in"],
            result.written.get("master.transactions", 0),
            result.written.get("master.chargebacks", 0),
            summary["rows_quarantined"],
            summary["duration_ms"],
            summary["kafka_lag"],
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
