"""Assembles the speed-layer query: Kafka -> parse/validate -> keyed window state -> score -> Postgres.

    read_kafka -> speed_transactions (parse, validate, keep what scoring reads) -> watermark ->
        customer state -> terminal state -> foreachBatch(
        skip if the batch marker exists -> mapInPandas(each task: score its rows with this batch's champion,
        write them in one Postgres transaction of its own: scored rows + alerts of stored rows + quarantine;
        yield its counts) -> driver: marker + metrics in one transaction, after every task succeeded)

Everything that varies per deployment or per test (topic, checkpoint, query name, trigger, model name,
sink) is a parameter with its default from settings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from kernel.errors import EcomError
from kernel.settings import Settings, as_component, get_settings
from streaming import transforms
from streaming.common import KafkaLag, check_checkpoint, latencies_ms, session_conf
from streaming.sink import (
    QUARANTINE_COLUMNS,
    QUARANTINE_CONFLICT,
    QUARANTINE_KEY,
    TASK_COUNTS_SCHEMA,
    BatchCounts,
    PartitionWriter,
    PostgresBatchSink,
    TableWrite,
    quarantine_rows,
    task_counts,
)
from streaming.speed.scoring import (
    OUTPUT_SCHEMA,
    SPEED_COLUMNS,
    ChampionCache,
    make_scorer,
    score_in_jvm,
)
from streaming.speed.state import (
    JVM_STATE_CONF,
    ORDERED_STATE_CONF,
    SPEED_ORDERS,
    STATE_ENGINES,
    with_customer_context,
    with_jvm_context,
    with_terminal_context,
)

log = logging.getLogger("ecom.speed")

ALERT_COLUMNS = [
    "transaction_id",
    "customer_id",
    "event_time",
    "amount",
    "fraud_score",
    "threshold",
    "model_version",
    "reasons",
]


ALERT_OF_STORED_ROW = (
    "EXISTS (SELECT 1 FROM speed.scored_transactions s "
    "WHERE s.transaction_id = t.transaction_id AND s.is_alert AND s.model_version = t.model_version)"
)


@dataclass
class StreamConfig:
    """One speed-layer query's parameters (defaults from settings)."""

    topic: str
    query_name: str
    checkpoint: Path
    bootstrap_servers: str
    max_offsets_per_trigger: int
    trigger: dict[str, Any]
    model_name: str
    # hash buckets keying the state: None = what the checkpoint recorded, else settings (see
    # resolve_state_buckets); Spark partitions of the state (a new checkpoint only, see start_speed_query)
    state_buckets: int | None = None
    state_partitions: int = 1
    # where the keyed state runs ("jvm" | "python", streaming.speed.state.STATE_ENGINES): None = what the
    # checkpoint recorded, else settings (see resolve_state_engine)
    state_engine: str | None = None
    # the order the keyed state walks events in ("arrival" | "event_time", SPEED_ORDERS): None = what the
    # checkpoint recorded, else settings (see resolve_speed_order); event-time order reads `partitions`
    # Kafka partitions as one source each (resolved against the topic and the checkpoint at start)
    order: str | None = None
    hold_idle_ms: int = 5000
    partitions: int | None = None
    watermark_delay: str = "10 minutes"
    sink: str = "postgres"  # or "noop": same query, nothing written (the benchmark's ceiling)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        topic: str | None = None,
        query_name: str = "speed",
        checkpoint: str | Path | None = None,
        trigger: str | None = None,
        available_now: bool = False,
        model_name: str | None = None,
        max_offsets_per_trigger: int | None = None,
        **kw: Any,
    ) -> StreamConfig:
        s = settings or get_settings()
        if available_now:
            trig: dict[str, Any] = {"availableNow": True}
        else:
            trig = {"processingTime": trigger or s.spark.trigger_interval}
        kw.setdefault("hold_idle_ms", s.spark.speed_hold_idle_ms)
        return cls(
            topic=topic or s.kafka.topic_transactions,
            query_name=query_name,
            checkpoint=Path(checkpoint) if checkpoint else s.spark.checkpoint_dir / query_name,
            bootstrap_servers=s.kafka.bootstrap_servers,
            max_offsets_per_trigger=max_offsets_per_trigger or s.spark.max_offsets_per_trigger,
            trigger=trig,
            model_name=model_name or s.mlflow.model_name,
            **{"state_partitions": s.spark.state_partitions, **kw},
        )


def enriched_stream(spark: SparkSession, cfg: StreamConfig) -> DataFrame:
    """The streaming DataFrame up to (not including) scoring: parsed rows with customer + terminal context.

    `cfg.state_buckets` must be resolved (start_speed_query does it against the checkpoint)."""
    if cfg.state_buckets is None or cfg.state_engine is None:
        raise EcomError("state layout not resolved: start the query with start_speed_query")
    if cfg.order == "event_time":
        parsed = _partitions_in_event_time(spark, cfg)
    else:
        raw = transforms.read_kafka(spark, cfg.topic, cfg.bootstrap_servers, cfg.max_offsets_per_trigger)
        parsed = transforms.speed_transactions(raw)
    # only rejected rows need their bytes downstream (quarantine); don't ship every payload through state
    parsed = parsed.withColumn(
        "raw_payload", F.when(F.col("reject_reason").isNotNull(), F.col("raw_payload"))
    )
    if cfg.state_engine == "jvm":  # no Python before scoring; the state expires on its own TTL
        return with_jvm_context(parsed, hold_idle_ms=cfg.hold_idle_ms if cfg.order == "event_time" else None)
    watermarked = transforms.with_event_watermark(parsed, cfg.watermark_delay).drop("watermark_ts")
    return with_terminal_context(with_customer_context(watermarked, cfg.state_buckets), cfg.state_buckets)


def _partitions_in_event_time(spark: SparkSession, cfg: StreamConfig) -> DataFrame:
    """The parsed rows of every Kafka partition, each partition its own source with a zero-delay watermark
    on its valid rows' event time: with Spark's default `multipleWatermarkPolicy` (min) the query's
    watermark is the lowest of the partitions' highest event times, below which no partition written in
    event-time order can still deliver a row. Rejected rows do not move it. Each source reads at most its
    share of `max_offsets_per_trigger`."""
    if not cfg.partitions:
        raise EcomError(
            "event-time order needs the topic's partition count: start the query with start_speed_query"
        )
    share = -(-cfg.max_offsets_per_trigger // cfg.partitions) if cfg.max_offsets_per_trigger else None
    frames = []
    for p in range(cfg.partitions):
        raw = transforms.read_kafka(
            spark, cfg.topic, cfg.bootstrap_servers, share, assign=json.dumps({cfg.topic: [p]})
        )
        parsed = transforms.speed_transactions(raw)
        order_ts = F.when(F.col("reject_reason").isNull(), F.col("event_ts"))
        frames.append(parsed.withColumn("order_ts", order_ts).withWatermark("order_ts", "0 seconds"))
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union.drop("order_ts")


def _scored_table(frames: list[pd.DataFrame]) -> pa.Table:
    """A task's scored pandas frames -> one Arrow table of OUTPUT_SCHEMA (timestamps tz-aware UTC)."""
    schema = to_arrow_schema(OUTPUT_SCHEMA, timezone="UTC")
    if not frames:
        return schema.empty_table()
    return pa.Table.from_pandas(pd.concat(frames, ignore_index=True), schema=schema, preserve_index=False)


def speed_writes(table: pa.Table, batch_id: int) -> list[TableWrite]:
    """One task's scored rows -> what it writes: scored rows, alerts of stored rows, quarantine. Pure."""
    rejected = table.column("reject_reason").is_valid()
    good = table.filter(pc.invert(rejected))
    bad = table.filter(rejected)
    good = good.append_column("batch_id", pa.array(np.full(good.num_rows, batch_id, dtype=np.int64)))
    alerts = good.filter(good.column("is_alert"))
    quarantine = zip(
        *[
            bad.column(c).to_pylist()
            for c in ("kafka_topic", "kafka_partition", "kafka_offset", "raw_payload")
        ],
        bad.column("reject_reason").to_pylist(),
        strict=True,
    )
    return [
        TableWrite(
            "speed.scored_transactions",
            SPEED_COLUMNS + ["batch_id"],
            good,
            stored_by=("transaction_id", "batch_id"),  # this event, stored by this batch (any attempt)
        ),
        # an event delivered twice upstream is scored twice but stored once (the first score); its alert
        # follows the stored row, never the second score
        TableWrite("speed.fraud_alerts", ALERT_COLUMNS, alerts, where=ALERT_OF_STORED_ROW),
        TableWrite(
            "quarantine.events",
            QUARANTINE_COLUMNS,
            quarantine_rows("stream", quarantine),
            conflict=QUARANTINE_CONFLICT,
            stored_by=QUARANTINE_KEY,
        ),
    ]


def write_scored_partition(table: pa.Table, writer: PartitionWriter | None, batch_id: int) -> dict[str, Any]:
    """Executor side: write one task's scored rows in one transaction (none with the no-op sink); its counts."""
    t0 = time.time()
    writes = speed_writes(table, batch_id)
    written = writer.write(writes) if writer is not None else {}
    rejected = table.column("reject_reason").is_valid()
    return task_counts(
        rows_in=table.num_rows,
        rows_written=written.get("speed.scored_transactions", 0),
        rows_quarantined=written.get("quarantine.events", 0),
        alerts=written.get("speed.fraud_alerts", 0)
        if writer is not None
        else pc.sum(pc.and_kleene(table.column("is_alert"), pc.invert(rejected))).as_py() or 0,
        write_ms=(time.time() - t0) * 1000.0,
        kafka_partition=table.column("kafka_partition").to_numpy(zero_copy_only=False),
        kafka_offset=table.column("kafka_offset").to_numpy(zero_copy_only=False),
        latencies_ms=latencies_ms(table.column("kafka_timestamp"), time.time()),
    )


def score_and_write(
    scorer: Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]],
    writer: PartitionWriter | None,
    batch_id: int,
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The mapInPandas function of one batch: each task scores its rows and writes them itself (one Postgres
    transaction per task), then yields one row of TASK_COUNTS_SCHEMA; no scored row leaves the executor."""

    def partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        table = _scored_table([f for f in scorer(batches) if len(f)])
        yield pd.DataFrame([write_scored_partition(table, writer, batch_id)])

    return partition


def write_in_jvm(scored: DataFrame, sink: Any, batch_id: int, version: str, threshold: float) -> DataFrame:
    """The JVM engine's tasks (streaming/jvm TaskSink.writeScored, the twin of `write_scored_partition`):
    each task writes its JVM-scored rows in one Postgres transaction of its own and yields one row of
    TASK_COUNTS_SCHEMA; no row leaves the executor and none passes through Python. `sink`: `jvm_task_sink`
    (None: the no-op sink, counts only)."""
    jvm = scored.sparkSession._jvm.dev.ecomlambda.speed.TaskSink
    return DataFrame(
        jvm.writeScored(scored._jdf, sink, batch_id, str(version), float(threshold)), scored.sparkSession
    )


def jvm_task_sink(spark: SparkSession, writer: PartitionWriter | None) -> Any:
    """The JVM twin of `writer` (same database, role and retries), or None for the no-op sink."""
    if writer is None:
        return None
    pg = writer.settings.postgres
    return spark._jvm.dev.ecomlambda.speed.TaskSink(
        pg.jdbc_url(), pg.user, pg.password, writer.max_attempts, writer.first_backoff_s, writer.max_backoff_s
    )


class SpeedBatchWriter:
    """The foreachBatch function: score this batch with the current champion and commit it exactly once."""

    def __init__(
        self,
        spark: SparkSession,
        cfg: StreamConfig,
        settings: Settings | None = None,
        champions: ChampionCache | None = None,
        on_batch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.spark = spark
        self.cfg = cfg
        self.settings = settings or get_settings()
        self.champions = champions or ChampionCache(spark, self.settings, cfg.model_name)
        # the sink writes as the stream writer's role (kernel/sql/080_component_roles.sql)
        sink_settings = as_component(self.settings, "stream")
        self.sink = PostgresBatchSink(cfg.query_name, sink_settings) if cfg.sink == "postgres" else None
        self.writer = self.sink.partition_writer() if self.sink is not None else None
        self.jvm_sink = None  # the JVM engine's twin of `writer` (jvm_task_sink), made at its first batch
        self.lag = KafkaLag(cfg.bootstrap_servers, cfg.topic)
        self.on_batch = on_batch

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        t0 = time.time()
        seen: dict[str, Any] = {}

        def tasks() -> DataFrame:
            bc = seen["champion"] = self.champions.current()
            if self.cfg.state_engine == "jvm":  # context, scoring, reasons and the write in the JVM
                scored = score_in_jvm(batch_df, *self.champions.jvm())
                if self.jvm_sink is None and self.writer is not None:
                    self.jvm_sink = jvm_task_sink(self.spark, self.writer)
                return write_in_jvm(scored, self.jvm_sink, batch_id, bc.version, bc.threshold)
            scorer = make_scorer(bc.champion, bc.baselines, bc.chargebacks)
            return batch_df.mapInPandas(score_and_write(scorer, self.writer, batch_id), TASK_COUNTS_SCHEMA)

        def metrics(counts: BatchCounts) -> dict[str, Any]:
            seen["computed_at"] = time.time()
            self.lag.advance(counts.kafka_partitions, counts.kafka_ends)
            values = {
                "rows_in": counts.rows_in,
                "rows_written": counts.rows_written,
                "rows_quarantined": counts.rows_quarantined,
                "duration_ms": (time.time() - t0) * 1000.0,
                "kafka_lag": self.lag.lag(),
                "model_version": seen["champion"].version,
                **counts.latency,
            }
            seen["summary"] = {
                "query": self.cfg.query_name,
                "batch_id": batch_id,
                "rows_in": counts.rows_in,
                "alerts": counts.alerts,
                "quarantined": counts.rows_quarantined,
                "model_version": seen["champion"].version,
                "tasks": counts.tasks,
                "task_write_ms": counts.write_ms_max,
                # the stages that run the query, scoring and the tasks' own writes
                "compute_ms": (seen["computed_at"] - t0) * 1000.0,
                **values,
            }
            return values

        if self.sink is None:  # no-op sink (benchmark ceiling): the same tasks, nothing written
            counts = BatchCounts.of([r.asDict() for r in tasks().collect()])
            metrics(counts)
            summary = {**seen["summary"], "rows_written": 0, "duration_ms": (time.time() - t0) * 1000.0}
            self._report(summary)
            return
        result = self.sink.write_batch(batch_id, tasks, metrics)
        if not result.computed:
            # Spark replays a batch whose marker committed before the crash. Its rows are in already; still
            # run the stateful part so the state store advances exactly as the first time (Spark 4 also
            # checks that every state partition committed), but score and write nothing.
            batch_df.write.format("noop").mode("overwrite").save()
            log.info(
                "%s batch %d: already committed (replay after restart), skipped",
                self.cfg.query_name,
                batch_id,
            )
            return
        if result.replayed:
            log.info("%s batch %d: marked committed meanwhile, kept that", self.cfg.query_name, batch_id)
            return
        self._report({**seen["summary"], "duration_ms": (time.time() - t0) * 1000.0})

    def _report(self, s: dict[str, Any]) -> None:
        def ms(v: Any) -> str:
            return "-" if v is None else f"{v:.0f}"

        # event-time order runs a no-data batch per trigger interval while idle (its timers): those that
        # released nothing are logged at debug, not once a second
        idle = self.cfg.order == "event_time" and not s["rows_in"]
        log.log(
            logging.DEBUG if idle else logging.INFO,
            "%s batch %d: in=%d written=%s quarantined=%d alerts=%d model=v%s %sms (compute %sms) lag=%s "
            "latency p50/p95/p99=%s/%s/%s ms",
            s["query"],
            s["batch_id"],
            s["rows_in"],
            s.get("rows_written"),
            s["quarantined"],
            s["alerts"],
            s["model_version"],
            ms(s.get("duration_ms")),
            ms(s.get("compute_ms")),
            s.get("kafka_lag"),
            ms(s.get("latency_p50_ms")),
            ms(s.get("latency_p95_ms")),
            ms(s.get("latency_p99_ms")),
        )
        if self.on_batch is not None:
            self.on_batch(s)


STATE_LAYOUT_FILE = "ecom-state.json"
# the only bucket count checkpoints had before it was recorded beside them
UNRECORDED_STATE_BUCKETS = 8


def resolve_state_buckets(
    requested: int | None, recorded: int | None, has_history: bool, default: int
) -> int:
    """The bucket count a query must use with its checkpoint. Pure.

    The buckets are the keys of the state store: a restarted query with another count would look its
    customers up under other keys and silently start them from nothing. So a checkpoint keeps the count it
    was created with; asking for another is an error. A checkpoint from before the count was recorded
    used the then default (8) unless it was asked for explicitly.
    """
    if requested is not None and requested < 0:
        raise EcomError(f"--state-buckets must be >= 0 (got {requested})")
    if recorded is not None:
        if requested is not None and requested != recorded:
            raise EcomError(
                f"this checkpoint keys its state by {recorded} bucket(s), not {requested}; restart without "
                "--state-buckets (or with that count), or use a new checkpoint under a new --query-name"
            )
        return recorded
    if requested is not None:
        return requested
    return UNRECORDED_STATE_BUCKETS if has_history else default


def resolve_state_engine(requested: str | None, recorded: str | None, has_history: bool, default: str) -> str:
    """The engine of a query's keyed state ("jvm" | "python") for its checkpoint. Pure.

    The two engines keep different state (JVM processors by id, Python buckets of ids), so a checkpoint
    keeps the engine it was created with; asking for the other is an error. A checkpoint from before the
    engine was recorded ran the Python state.
    """
    return _resolve_recorded(
        requested,
        recorded,
        has_history,
        default,
        choices=STATE_ENGINES,
        names=("--state-engine", "ECOM_SPEED_STATE_ENGINE"),
        unrecorded="python",
        refusal="keeps its keyed state in the {recorded} engine, not {requested}",
    )


def resolve_speed_order(requested: str | None, recorded: str | None, has_history: bool, default: str) -> str:
    """The order a query's keyed state walks events in ("arrival" | "event_time") for its checkpoint. Pure.

    Event-time order reads each Kafka partition as its own source and holds rows in the state, so a
    checkpoint keeps the order it was created with; asking for the other is an error. A checkpoint from
    before the order was recorded ran in arrival order."""
    return _resolve_recorded(
        requested,
        recorded,
        has_history,
        default,
        choices=SPEED_ORDERS,
        names=("--order", "ECOM_SPEED_ORDER"),
        unrecorded="arrival",
        refusal="walks events in {recorded} order, not {requested}",
    )


def _resolve_recorded(
    requested: str | None,
    recorded: str | None,
    has_history: bool,
    default: str,
    choices: tuple[str, ...],
    names: tuple[str, str],
    unrecorded: str,
    refusal: str,
) -> str:
    """A choice a checkpoint keeps for life: what it recorded (`unrecorded` for a checkpoint with history
    from before the record), else what was asked for, else the default; asking a recorded checkpoint for
    another is an error. Pure."""
    flag, env = names
    for name, value in ((flag, requested), (env, default)):
        if value is not None and value not in choices:
            raise EcomError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    if recorded is None and has_history:
        recorded = unrecorded
    if recorded is not None:
        if requested is not None and requested != recorded:
            raise EcomError(
                f"this checkpoint {refusal.format(recorded=recorded, requested=requested)}; restart without "
                f"{flag} (or with that one), or use a new checkpoint under a new --query-name"
            )
        return recorded
    return requested or default


def resolve_order_partitions(recorded: int | None, topic_now: int, topic: str) -> int:
    """The Kafka partitions an event-time checkpoint reads, one source each: the count it was created with
    (its offsets hold one range per source), which the topic must still have. Pure."""
    if topic_now < 1:
        raise EcomError(
            f"Kafka topic {topic!r} does not exist yet: create it (ecom up does) before the stream"
        )
    if recorded is not None and recorded != topic_now:
        raise EcomError(
            f"this checkpoint reads {recorded} Kafka partition(s) of {topic!r} in event-time order and the "
            f"topic now has {topic_now}; use a new checkpoint under a new --query-name"
        )
    return topic_now


@dataclass(frozen=True)
class StateLayout:
    """How a checkpoint keys its state (recorded in <checkpoint>/ecom-state.json)."""

    buckets: int
    engine: str
    order: str = "arrival"
    partitions: int | None = None  # event-time order: the Kafka partitions read as one source each


def checkpoint_state_layout(cfg: StreamConfig, settings: Settings) -> StateLayout:
    """Resolve the bucket count and the engine against the checkpoint and record them there (see
    resolve_state_buckets, resolve_state_engine)."""
    path = cfg.checkpoint / STATE_LAYOUT_FILE
    recorded = _recorded_state_layout(path)
    offsets = cfg.checkpoint / "offsets"
    has_history = offsets.is_dir() and any(offsets.iterdir())
    buckets = resolve_state_buckets(
        cfg.state_buckets, recorded.get("state_buckets"), has_history, settings.spark.state_buckets
    )
    # a record without an engine was written before there were two: its checkpoint ran the Python state
    engine = resolve_state_engine(
        cfg.state_engine,
        recorded.get("state_engine", "python" if recorded else None),
        has_history,
        settings.spark.state_engine,
    )
    order = resolve_speed_order(cfg.order, recorded.get("order"), has_history, settings.spark.speed_order)
    partitions = None
    if order == "event_time":
        if cfg.trigger.get("availableNow"):  # refused before anything is recorded
            raise EcomError(
                "event-time order holds rows until every partition has passed them and releases the last "
                "ones on a timer: run it with a processing-time trigger (without --available-now), or use "
                "--order arrival"
            )
        if engine != "jvm":
            raise EcomError(
                "event-time order runs in the JVM engine only; start with --state-engine jvm (a new "
                "checkpoint) or --order arrival"
            )
        partitions = resolve_order_partitions(
            recorded.get("partitions"), topic_partition_count(cfg.bootstrap_servers, cfg.topic), cfg.topic
        )
    record: dict[str, Any] = {"state_buckets": buckets, "state_engine": engine}
    if order == "event_time" or "order" in recorded:
        record["order"] = order
    if order == "event_time":
        record["partitions"] = partitions
    if recorded != record:
        cfg.checkpoint.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record) + "\n")
    return StateLayout(buckets, engine, order, partitions)


def speed_trigger(trigger: dict[str, Any], order: str, ordered_trigger: str) -> dict[str, Any]:
    """The trigger the query runs with. Pure. In event-time order a zero processing-time trigger (the
    default) becomes `ordered_trigger`: that order runs no-data batches for its timers, which a zero
    interval would start back to back while the stream is idle."""
    if order == "event_time" and _zero_interval(trigger.get("processingTime")):
        return {"processingTime": ordered_trigger}
    return trigger


def _zero_interval(interval: str | None) -> bool:
    """'0 seconds', '0', '0s' -> True (a processing-time trigger that starts batches back to back)."""
    if interval is None:
        return False
    head = interval.strip().split()[0] if interval.strip() else ""
    digits = head.rstrip("abcdefghijklmnopqrstuvwxyz")
    try:
        return float(digits) == 0
    except ValueError:
        return False


def topic_partition_count(bootstrap: str, topic: str) -> int:
    """The topic's partition count now (0 if it does not exist yet)."""
    from confluent_kafka import KafkaException

    from kernel.kafka import admin_client, broker_down, topic_partitions

    try:
        return topic_partitions(admin_client(bootstrap)).get(topic, 0)
    except KafkaException as exc:
        raise broker_down(bootstrap, exc.args[0].str()) from exc


def _recorded_state_layout(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
        value = record["state_buckets"]
        engine = record.get("state_engine")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EcomError(
            f"{path} is not a readable state layout record ({type(exc).__name__}); restore it as "
            '{"state_buckets": N, "state_engine": "jvm"|"python"} with what this checkpoint was created with'
        ) from exc
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EcomError(f"{path}: state_buckets must be a whole number >= 0, not {value!r}")
    if engine is None:  # recorded before there were two engines
        return {"state_buckets": value}
    if engine not in STATE_ENGINES:
        raise EcomError(f"{path}: state_engine must be one of {', '.join(STATE_ENGINES)}, not {engine!r}")
    out: dict[str, Any] = {"state_buckets": value, "state_engine": engine}
    order, partitions = record.get("order"), record.get("partitions")
    if order is not None:
        if order not in SPEED_ORDERS:
            raise EcomError(f"{path}: order must be one of {', '.join(SPEED_ORDERS)}, not {order!r}")
        out["order"] = order
    if partitions is not None:
        if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
            raise EcomError(f"{path}: partitions must be a whole number >= 1, not {partitions!r}")
        out["partitions"] = partitions
    return out


def start_speed_query(
    spark: SparkSession,
    cfg: StreamConfig,
    settings: Settings | None = None,
    champions: ChampionCache | None = None,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
):
    """Start the speed-layer query; returns the StreamingQuery."""
    s = settings or get_settings()
    if cfg.state_partitions < 1:
        raise EcomError(
            f"state partitions must be >= 1 (got {cfg.state_partitions}); fix ECOM_SPEED_STATE_PARTITIONS"
        )
    if cfg.hold_idle_ms < 0:
        raise EcomError(
            f"the hold's idle time must be >= 0 ms (got {cfg.hold_idle_ms}); fix ECOM_SPEED_HOLD_IDLE_MS"
        )
    check_checkpoint(cfg, s)
    cfg.checkpoint.mkdir(parents=True, exist_ok=True)
    layout = checkpoint_state_layout(cfg, s)
    cfg = replace(
        cfg,
        state_buckets=layout.buckets,
        state_engine=layout.engine,
        order=layout.order,
        partitions=layout.partitions,
    )
    cfg = replace(cfg, trigger=speed_trigger(cfg.trigger, cfg.order, s.spark.speed_ordered_trigger))
    log.info(
        "%s: keyed state in the %s engine%s over %d partition(s), %s order%s, trigger %s (a restored "
        "checkpoint keeps its own)",
        cfg.query_name,
        cfg.state_engine,
        "" if cfg.state_engine == "jvm" else f", {cfg.state_buckets} bucket(s)",
        cfg.state_partitions,
        cfg.order,
        f" over {cfg.partitions} Kafka partition source(s)" if cfg.order == "event_time" else "",
        cfg.trigger,
    )
    writer = SpeedBatchWriter(spark, cfg, s, champions, on_batch)
    writer.champions.current(force=True)  # load (or bootstrap) the champion before the first batch
    stream = (
        enriched_stream(spark, cfg)
        .writeStream.queryName(cfg.query_name)
        .option("checkpointLocation", str(cfg.checkpoint))
        .outputMode("append")
        .trigger(**cfg.trigger)
        .foreachBatch(writer)
    )
    # the query copies the session's conf when it starts and a new checkpoint records the partition
    # count of its state (a restored one keeps its own), so set it for this start only
    with ExitStack() as confs:
        confs.enter_context(session_conf(spark, "spark.sql.shuffle.partitions", str(cfg.state_partitions)))
        conf = ORDERED_STATE_CONF if cfg.order == "event_time" else JVM_STATE_CONF
        for key, value in (conf if cfg.state_engine == "jvm" else {}).items():
            confs.enter_context(session_conf(spark, key, value))
        return stream.start()
