"""`ecom bench stream --floor`: what the speed layer's micro-batch shape costs with no work in it.

The same Kafka source, parse + contract check, trigger and state partitions as `ecom stream`, with the
Python steps replaced by pass-throughs, measured as a ladder of shapes:

    jvm          Kafka -> parse + contract check -> rows in the driver (no Python, no shuffle)
    python_pass  + one mapInPandas round trip (the scorer's operator, passing rows through)
    one_state    + one Python keyed state (applyInPandasWithState by customer bucket, counting rows)
    speed_shape  + the second keyed state (transformWithStateInPandas by terminal bucket): the speed
                 layer's operators, each doing nothing

and the shape of issue 19 (no Python on the hot path), which does the real work:

    jvm_state    Kafka -> parse + contract check -> JVM keyed state (transformWithState by customer_id,
                 then by terminal_id: streaming/jvm, the real customer and terminal context) -> driver
    jvm_scored   + the JVM scorer (the registered champion exported by ml.export) -> driver

For each shape: produce -> rows-in-the-driver latency at the benchmark's rate (after a warm-up), and
events/s over pre-produced events in large batches (the first batch, which starts the query's Python
workers, left out). No Postgres: the sink is the one thing the full benchmark adds on top. So these are
floors: whatever the Python steps do, `ecom stream` on this machine cannot be faster than its shape.
Figures, never asserts.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import queue
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kernel.settings import Settings
from kernel.stats import percentiles

FLOOR_SHAPES = ("jvm", "python_pass", "one_state", "speed_shape", "jvm_state", "jvm_scored")
JVM_SHAPES = ("jvm", "jvm_state", "jvm_scored")  # no Python between Kafka and the driver
JVM_STATE_SHAPES = ("jvm_state", "jvm_scored")
FLOOR_PIPELINES = {
    "jvm": "Kafka -> parse + contract check -> driver",
    "python_pass": "... -> mapInPandas pass-through -> driver",
    "one_state": "... -> applyInPandasWithState (customer bucket) -> mapInPandas -> driver",
    "speed_shape": "... -> applyInPandasWithState (customer) -> transformWithStateInPandas (terminal) "
    "-> mapInPandas -> driver",
    "jvm_state": "... -> JVM transformWithState (customer context) -> JVM transformWithState (terminal "
    "context) -> driver",
    "jvm_scored": "... -> JVM customer + terminal context -> JVM Isolation Forest scorer -> driver",
}
# Spark 4.2's constraint inference over the contract check's projections grew to millions of CaseWhen
# copies (driver OutOfMemoryError) for these pass-through plans; the speed query itself plans in ~80 ms
# with it on or off (A/B), so only the probe turns it off
PROBE_CONF = {"spark.sql.constraintPropagation.enabled": "false"}


def _count_rows(key, pdfs: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:
    """applyInPandasWithState pass-through keeping one number per key (so the state store is used)."""
    pdf = pd.concat(list(pdfs), ignore_index=True)
    state.update((int(state.get[0] if state.exists else 0) + len(pdf),))
    yield pdf


def _pass_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield from batches


def _row_counter_processor():
    from pyspark.sql.streaming.stateful_processor import StatefulProcessor

    class RowCounter(StatefulProcessor):
        """transformWithStateInPandas pass-through keeping one number per key."""

        def init(self, handle) -> None:
            from pyspark.sql import types as T

            self.count = handle.getValueState("n", T.StructType([T.StructField("n", T.LongType())]))

        def handleInputRows(self, key, rows, timerValues) -> Iterator[pd.DataFrame]:
            pdf = pd.concat(list(rows), ignore_index=True)
            self.count.update(((self.count.get()[0] if self.count.exists() else 0) + len(pdf),))
            yield pdf

        def close(self) -> None:
            pass

    return RowCounter()


def jvm_context_frame(spark, df, scorer: str | None = None):
    """The JVM hot path: the stream's own JVM context (streaming.speed.state.with_jvm_context), then, with
    `scorer` (ml.export.scorer_json of a model), its fraud_score from the JVM scorer."""
    from pyspark.sql import DataFrame

    from streaming.speed.state import with_jvm_context

    framed = with_jvm_context(df)
    if scorer is None:
        return framed
    return DataFrame(spark._jvm.dev.ecomlambda.speed.SpeedJvm.score(framed._jdf, scorer), spark)


def floor_frame(
    spark, settings: Settings, shape: str, topic: str, max_offsets: int, scorer: str | None = None
):
    """The streaming DataFrame of `shape` (before the foreachBatch step), built from the speed layer's own
    source, parse and state keys. `scorer`: the exported champion `jvm_scored` needs."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.streaming.state import GroupStateTimeout

    from streaming import transforms
    from streaming.speed.state import state_key

    if shape not in FLOOR_SHAPES:
        raise ValueError(f"unknown floor shape {shape!r}; one of {', '.join(FLOOR_SHAPES)}")
    if shape == "jvm_scored" and scorer is None:
        raise ValueError("the jvm_scored shape needs a champion: run `ecom up --bootstrap-model`")
    raw = transforms.read_kafka(spark, topic, settings.kafka.bootstrap_servers, max_offsets)
    df = transforms.speed_transactions(raw).withColumn(
        "raw_payload", F.when(F.col("reject_reason").isNotNull(), F.col("raw_payload"))
    )
    if shape in ("jvm", "python_pass"):
        return df
    if shape in ("jvm_state", "jvm_scored"):
        return jvm_context_frame(spark, df, scorer if shape == "jvm_scored" else None)
    df = transforms.with_event_watermark(df, "10 minutes").drop("watermark_ts")
    buckets = settings.spark.state_buckets
    count_schema = T.StructType([T.StructField("n", T.LongType())])
    keyed = df.withColumn("state_key", state_key("customer_id", buckets))
    df = keyed.groupBy("state_key").applyInPandasWithState(
        _count_rows, keyed.schema, count_schema, "append", GroupStateTimeout.NoTimeout
    )
    if shape == "one_state":
        return df
    keyed = df.withColumn("state_key", state_key("terminal_id", buckets))
    return keyed.groupBy("state_key").transformWithStateInPandas(
        statefulProcessor=_row_counter_processor(),
        outputStructType=keyed.schema,
        outputMode="Append",
        timeMode="None",
    )


class _Collector:
    """foreachBatch of the probe: rows to the driver (through mapInPandas unless `jvm`), latencies of the
    measured namespace's rows, warm-up rows counted, batch durations kept."""

    def __init__(self, shape: str, namespace: str | None = None, warm_namespace: str | None = None):
        self.shape = shape
        self.namespace = namespace
        self.warm_namespace = warm_namespace
        self.latencies: list[float] = []
        self.warm = 0
        self.rows = 0
        self.lock = threading.Lock()

    def __call__(self, batch_df, batch_id: int) -> None:
        if self.shape not in JVM_SHAPES:
            batch_df = batch_df.mapInPandas(_pass_batches, batch_df.schema)
        table = batch_df.select("transaction_id", "kafka_timestamp").toArrow()
        now_ms = time.time() * 1000.0
        with self.lock:
            self.rows += table.num_rows
            if self.namespace is None or not table.num_rows:
                return
            ids = table.column("transaction_id").to_pylist()
            produced = (
                table.column("kafka_timestamp")
                .cast(pa.timestamp("us", tz="UTC"))
                .to_numpy(zero_copy_only=False)
                .astype("datetime64[us]")
                .astype(np.int64)
                / 1000.0
            )
            for tx, ms in zip(ids, produced, strict=True):
                tx = str(tx or "")
                if tx.startswith(self.namespace):
                    self.latencies.append(now_ms - float(ms))
                elif self.warm_namespace and tx.startswith(self.warm_namespace):
                    self.warm += 1


def measured_batches_ms(progress: list[dict[str, Any]], skip_first: int = 0) -> list[float]:
    """triggerExecution of the batches that read rows, after the first `skip_first` of them. Pure."""
    with_rows = [p for p in progress if p.get("numInputRows")]
    return [float(p["durationMs"]["triggerExecution"]) for p in with_rows[skip_first:]]


def throughput_of(progress: list[dict[str, Any]]) -> float | None:
    """Events/s over the batches that read rows, the first one (query and Python workers starting) left
    out: rows / summed batch durations. None with fewer than two such batches. Pure."""
    with_rows = [p for p in progress if p.get("numInputRows")][1:]
    ms = sum(float(p["durationMs"]["triggerExecution"]) for p in with_rows)
    rows = sum(int(p["numInputRows"]) for p in with_rows)
    return rows / ms * 1000.0 if with_rows and ms > 0 else None


def _start(
    spark,
    settings: Settings,
    shape: str,
    topic: str,
    checkpoint: Path,
    max_offsets: int,
    sink,
    trigger,
    scorer: str | None = None,
):
    from streaming.common import session_conf

    stream = (
        floor_frame(spark, settings, shape, topic, max_offsets, scorer)
        .writeStream.option("checkpointLocation", str(checkpoint))
        .trigger(**trigger)
        .foreachBatch(sink)
    )
    with ExitStack() as confs:
        confs.enter_context(
            session_conf(spark, "spark.sql.shuffle.partitions", str(settings.spark.state_partitions))
        )
        from streaming.speed.state import JVM_STATE_CONF

        for key, value in (JVM_STATE_CONF if shape in JVM_STATE_SHAPES else {}).items():
            confs.enter_context(session_conf(spark, key, value))
        return stream.start()


def _latency_run(
    spark,
    settings: Settings,
    shape: str,
    rate: float,
    seconds: float,
    work: Path,
    topics: list[str],
    scorer: str | None = None,
) -> dict[str, Any]:
    from bench.harness import create_topic, produce_live

    tag = uuid.uuid4().hex[:8]
    topic, namespace, warm_ns = f"bench_floor_{tag}", f"f{tag}", f"w{tag}"
    create_topic(settings, topic)
    topics.append(topic)
    sink = _Collector(shape, namespace, warm_ns)
    query = _start(
        spark,
        settings,
        shape,
        topic,
        work / f"lat_{shape}",
        settings.spark.max_offsets_per_trigger,
        sink,
        {"processingTime": "0 seconds"},
        scorer,
    )
    try:
        warm_q: queue.Queue = queue.Queue()
        produce_live(topic, 500.0, 1.0, warm_ns, 2000, warm_q)
        warm_sent = warm_q.get()["sent"]
        _wait(lambda: sink.warm >= warm_sent, query, 90.0)
        first_measured = (query.lastProgress or {}).get("batchId", -1)
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        proc = ctx.Process(target=produce_live, args=(topic, rate, seconds, namespace, 20_000, out))
        proc.start()
        produced = out.get(timeout=seconds + 600)["sent"]
        proc.join()
        _wait(lambda: len(sink.latencies) >= produced, query, 60.0)
        error = query.exception()
        progress = [p for p in query.recentProgress if p["batchId"] > first_measured]
    finally:
        query.stop()
    batches = measured_batches_ms(progress)
    return {
        "produced": produced,
        "received": len(sink.latencies),
        "error": None if error is None else str(error).splitlines()[0][:300],
        "latency_ms": percentiles(sink.latencies),
        "batch_ms_median": statistics.median(batches) if batches else None,
    }


def _throughput_run(
    spark, settings: Settings, shape: str, topic: str, events: int, work: Path, scorer: str | None = None
) -> dict[str, Any]:
    sink = _Collector(shape)
    query = _start(
        spark,
        settings,
        shape,
        topic,
        work / f"tput_{shape}",
        max(1, math.ceil(events / 4)),  # four large batches: the first (workers starting) is left out
        sink,
        {"availableNow": True},
        scorer,
    )
    try:
        query.awaitTermination()  # raises when the query failed: report it like the latency run does
    except Exception:  # noqa: BLE001 - the error goes into the figures below
        pass
    finally:
        query.stop()
    error = query.exception()
    return {
        "rows": sink.rows,
        "events_per_s": throughput_of(list(query.recentProgress)),
        "error": None if error is None else str(error).splitlines()[0][:300],
    }


def _wait(done, query, stall_s: float) -> None:
    deadline = time.time() + stall_s
    while query.isActive and not done() and time.time() < deadline:
        time.sleep(0.2)


def floor_probe(
    spark,
    settings: Settings,
    rate: float,
    seconds: float,
    events: int = 200_000,
    shapes: tuple[str, ...] = FLOOR_SHAPES,
) -> dict[str, Any]:
    """Latency at `rate` for `seconds` and throughput over `events` pre-produced events, per shape.
    Its topics and checkpoints are removed afterwards."""
    from bench.harness import create_topic, delete_topics

    work = Path(tempfile.mkdtemp(prefix="bench_floor_", dir=settings.spark.checkpoint_dir.parent))
    tag = uuid.uuid4().hex[:8]
    topic = f"bench_floor_tput_{tag}"
    create_topic(settings, topic)
    topics = [topic]
    try:
        return _floor_runs(spark, settings, rate, seconds, events, shapes, work, topic, topics)
    finally:
        # the probe's events (200k by default) and checkpoints are of no use afterwards
        delete_topics(settings, topics)
        shutil.rmtree(work, ignore_errors=True)


def _floor_runs(
    spark, settings: Settings, rate, seconds, events, shapes, work: Path, topic: str, topics: list[str]
) -> dict[str, Any]:
    from bench.harness import produce_live
    from streaming.common import session_conf

    tag = uuid.uuid4().hex[:8]
    filled: queue.Queue = queue.Queue()
    # the simulator's history replayed as fast as the producer goes (same events for every shape)
    produce_live(topic, max(float(events), 1.0), 1.0, f"t{tag}", 20_000, filled)
    available = filled.get()["sent"]
    result: dict[str, Any] = {
        "what": "the speed layer's operators doing nothing (no features, no scoring, no Postgres): "
        "floors of `ecom stream` on this machine",
        "rate": rate,
        "seconds": seconds,
        "throughput_events": available,
        "state_partitions": settings.spark.state_partitions,
        "state_buckets": settings.spark.state_buckets,
        "shapes": {},
    }
    scorer, scorer_error = _champion_scorer(settings) if "jvm_scored" in shapes else (None, None)
    if scorer_error:
        result["jvm_scored_error"] = scorer_error
        shapes = tuple(s for s in shapes if s != "jvm_scored")
    with ExitStack() as confs:
        for key, value in PROBE_CONF.items():
            confs.enter_context(session_conf(spark, key, value))
        for shape in shapes:
            result["shapes"][shape] = {
                "pipeline": FLOOR_PIPELINES[shape],
                **_latency_run(spark, settings, shape, rate, seconds, work, topics, scorer),
                "throughput": _throughput_run(spark, settings, shape, topic, available, work, scorer),
            }
    return result


def _champion_scorer(settings: Settings) -> tuple[str | None, str | None]:
    """(the champion exported for the JVM scorer, None) or (None, why there is none)."""
    from kernel.errors import EcomError
    from ml.export import scorer_json
    from ml.registry import load_champion

    try:
        champion = load_champion(settings)
    except EcomError as exc:
        return None, str(exc)
    return scorer_json(champion.model), None
