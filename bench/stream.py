"""`ecom bench stream`: sustained throughput and produce-to-commit latency of the speed layer.

One run:
1. a fresh topic; the speed-layer query (Postgres sink, as-fast-as-possible trigger) starts on it;
2. a separate producer process (the simulator's live clock + the project's EventProducer) sends `rate`
   events/s for `seconds`, every id under a run-unique namespace;
3. when every produced event is committed (or progress stalls): latency = committed_at - Kafka produce
   timestamp per row (p50/p95/p99 from Postgres), sustained = committed / (last commit - first produce),
   lost = produced - distinct committed, duplicated = rows written by the query's batches - distinct ids;
4. the ceiling: the same query with a no-op sink over the same topic from a fresh checkpoint
   (availableNow): events / (last batch end - first batch start).
Several runs print each run and the medians. Figures, never asserts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import create_topic, machine_info, produce_live
from kernel.settings import Settings, get_settings


def _committed(settings: Settings, prefix: str) -> int:
    from kernel.db import connect

    with connect(settings) as conn:
        return conn.execute(
            "SELECT count(*) FROM speed.scored_transactions WHERE transaction_id LIKE %s", (prefix + "%",)
        ).fetchone()[0]


def _warm_up(
    settings: Settings, query, topic: str, namespace: str, events: int, n_customers: int, stall_s: float
) -> int:
    """Send `events` (own namespace) and wait until they are committed: the first batch with data starts
    the Python workers and loads the model into them (seconds, once per query), which a long-running
    stream pays once; measured events then see the steady state. Returns the events committed."""
    if events <= 0:
        return 0
    import queue

    out: queue.Queue = queue.Queue()
    produce_live(topic, float(events), 1.0, namespace, n_customers, out)
    sent = out.get()["sent"]
    deadline = time.time() + stall_s
    while query.isActive and time.time() < deadline:
        done = _committed(settings, namespace)
        if done >= sent:
            return done
        time.sleep(0.2)
    return _committed(settings, namespace)


def _figures(settings: Settings, prefix: str, query_name: str) -> dict[str, Any]:
    from kernel.db import connect

    with connect(settings) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT transaction_id), min(kafka_timestamp), max(committed_at), "
            "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
            "  (ORDER BY extract(epoch FROM committed_at - kafka_timestamp) * 1000) "
            "FROM speed.scored_transactions WHERE transaction_id LIKE %s",
            (prefix + "%",),
        ).fetchone()
        n, distinct, first_produce, last_commit, pct = row
        written = conn.execute(
            "SELECT coalesce(sum(rows_written), 0) FROM speed.batch_commits WHERE query_name = %s",
            (query_name,),
        ).fetchone()[0]
        versions = conn.execute(
            "SELECT DISTINCT model_version FROM speed.scored_transactions WHERE transaction_id LIKE %s LIMIT 5",
            (prefix + "%",),
        ).fetchall()
    p50, p95, p99 = pct if pct else (None, None, None)
    span = (last_commit - first_produce).total_seconds() if n else None
    return {
        "committed": n,
        "distinct": distinct,
        "rows_written_by_batches": int(written),
        "span_s": span,
        "sustained_events_per_s": (distinct / span) if span else 0.0,
        "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
        "model_versions": [v[0] for v in versions],
    }


def run_once(
    spark,
    settings: Settings,
    rate: float,
    seconds: float,
    model_name: str | None,
    state_buckets: int | None,
    max_offsets: int | None,
    n_customers: int,
    stall_s: float = 60.0,
    workload: str = "history",
    warmup_events: int = 0,
    state_partitions: int | None = None,
    state_engine: str | None = None,
    order: str | None = None,
) -> dict[str, Any]:
    from ml.bootstrap import ensure_bootstrap_champion
    from streaming.speed.query import StreamConfig, speed_trigger, start_speed_query
    from streaming.speed.scoring import ChampionCache

    partitions: dict[str, Any] = {"state_partitions": state_partitions} if state_partitions else {}
    partitions["state_engine"] = state_engine
    partitions["order"] = order
    tag = uuid.uuid4().hex[:8]
    topic, namespace = f"bench_stream_{tag}", f"b{tag}"
    create_topic(settings, topic)
    work = Path(tempfile.mkdtemp(prefix=f"bench_{tag}_", dir=settings.spark.checkpoint_dir.parent))
    cfg = StreamConfig.from_settings(
        settings,
        topic=topic,
        query_name=f"bench_{tag}",
        checkpoint=work / "pg",
        model_name=model_name,
        trigger="0 seconds",
        max_offsets_per_trigger=max_offsets,
        state_buckets=state_buckets,
        **partitions,
    )
    ensure_bootstrap_champion(settings, cfg.model_name)  # the benchmark's own, never the stream's
    champions = ChampionCache(spark, settings, cfg.model_name)
    summaries: list[dict[str, Any]] = []
    query = start_speed_query(spark, cfg, settings, champions=champions, on_batch=summaries.append)
    while query.lastProgress is None and query.isActive:  # first (empty) batch planned and run
        time.sleep(0.2)
    warmup = _warm_up(settings, query, topic, f"w{tag}", warmup_events, n_customers, stall_s)
    warm_batch = (query.lastProgress or {}).get("batchId", -1)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=produce_live, args=(topic, rate, seconds, namespace, n_customers, out, workload)
    )
    proc.start()
    produced = out.get(timeout=seconds + 600)
    proc.join()
    last, last_change = -1, time.time()
    while True:
        done = _committed(settings, namespace)
        if done >= produced["sent"] or not query.isActive:
            break
        if done != last:
            last, last_change = done, time.time()
        elif time.time() - last_change > stall_s:
            break
        time.sleep(0.5)
    query.stop()
    breakdown = batch_breakdown(query.recentProgress, summaries, after_batch=warm_batch)
    figures = _figures(settings, namespace, cfg.query_name)
    if warmup_events > 0:
        # counted after the run: a warm-up event committed late must not look like a duplicate below
        warmup = _committed(settings, f"w{tag}")

    ceiling = _ceiling(
        spark, settings, topic, tag, work, model_name, max_offsets, state_buckets, partitions, champions
    )
    return {
        "produced": produced["sent"],
        "warmup_events": warmup,
        # what the producer really sent per second (it shares the cores with the stream and Kafka)
        "offered_events_per_s": produced["sent"]
        / max(1e-9, produced["last_produce"] - produced["first_produce"]),
        "lost": produced["sent"] - figures["distinct"],
        # the query's batches also wrote the warm-up events (their own namespace, not in the figures)
        "duplicated": figures["rows_written_by_batches"] - figures["distinct"] - warmup,
        **figures,
        **ceiling,
        "batch_ms": breakdown,
        "topic": topic,
        # what the query ran with (event-time order raises a zero trigger, streaming.speed.query)
        "trigger": speed_trigger(
            cfg.trigger, order or settings.spark.speed_order, settings.spark.speed_ordered_trigger
        ),
    }


def _ceiling(
    spark, settings, topic, tag, work, model_name, max_offsets, state_buckets, partitions, champions
):
    """The same query with a no-op sink over the same events, `availableNow` (not in event-time order,
    which refuses it: its last rows wait for a timer)."""
    from streaming.speed.query import StreamConfig, start_speed_query

    if (partitions.get("order") or settings.spark.speed_order) == "event_time":
        return {"ceiling_events_per_s": None, "ceiling_wall_s": None, "ceiling_events": None}
    ceiling_cfg = StreamConfig.from_settings(
        settings,
        topic=topic,
        query_name=f"bench_{tag}_noop",
        checkpoint=work / "noop",
        model_name=model_name,
        available_now=True,
        max_offsets_per_trigger=max_offsets,
        state_buckets=state_buckets,
        sink="noop",
        **partitions,
    )
    batches: list[dict[str, Any]] = []
    start = time.time()
    ceiling_query = start_speed_query(
        spark, ceiling_cfg, settings, champions=champions, on_batch=batches.append
    )
    ceiling_query.awaitTermination()
    elapsed = time.time() - start
    progress = [p for p in ceiling_query.recentProgress if p.get("numInputRows", 0) > 0]
    busy_s = sum(p["durationMs"].get("triggerExecution", 0) for p in progress) / 1000.0
    ceiling_events = sum(b["rows_in"] for b in batches)
    return {
        "ceiling_events_per_s": ceiling_events / busy_s if busy_s else 0.0,
        "ceiling_wall_s": elapsed,
        "ceiling_events": ceiling_events,
    }


def batch_breakdown(
    progress: list[dict[str, Any]], summaries: list[dict[str, Any]], after_batch: int = -1
) -> dict[str, float | None]:
    """Where one micro-batch's time goes (medians over the batches with rows after `after_batch`). Pure.

    `progress`: Spark's `query.recentProgress`; `summaries`: the speed writer's per-batch summaries
    (`compute_ms` = champion check + the stages that run the query + collecting the rows, `duration_ms` =
    that + the Postgres transaction). Spark's own part of a trigger is what is not `addBatch`: the offset
    and commit logs and planning the batch.
    """
    prog = [p for p in progress if p.get("numInputRows", 0) > 0 and p.get("batchId", -1) > after_batch]
    sums = [b for b in summaries if b.get("rows_in", 0) > 0 and b.get("batch_id", -1) > after_batch]

    def med(values: list[float]) -> float | None:
        return float(statistics.median(values)) if values else None

    def dur(key: str) -> list[float]:
        return [float(p["durationMs"].get(key, 0)) for p in prog]

    trigger, add = dur("triggerExecution"), dur("addBatch")
    return {
        "batches": float(len(prog)),
        "rows_per_batch": med([float(p["numInputRows"]) for p in prog]),
        "trigger_ms": med(trigger),
        "spark_bookkeeping_ms": med([t - a for t, a in zip(trigger, add, strict=True)]),
        "query_planning_ms": med(dur("queryPlanning")),
        "wal_commit_ms": med(dur("walCommit")),
        "commit_offsets_ms": med(dur("commitOffsets")),
        "compute_ms": med([float(b["compute_ms"]) for b in sums if b.get("compute_ms") is not None]),
        "sink_ms": med(
            [
                float(b["duration_ms"]) - float(b["compute_ms"])
                for b in sums
                if b.get("duration_ms") is not None and b.get("compute_ms") is not None
            ]
        ),
    }


def _engines(arg: str | None, default: str) -> list[str]:
    """--engines "jvm,python" -> ["jvm", "python"] (None: the settings' engine). Pure."""
    from streaming.speed.state import STATE_ENGINES

    return _names(arg, default, STATE_ENGINES, "--engines", "jvm,python")


def _orders(arg: str | None, default: str) -> list[str]:
    """--orders "arrival,event_time" -> ["arrival", "event_time"] (None: the settings' order). Pure."""
    from streaming.speed.state import SPEED_ORDERS

    return _names(arg, default, SPEED_ORDERS, "--orders", "arrival,event_time")


def _names(arg: str | None, default: str, allowed: tuple[str, ...], flag: str, example: str) -> list[str]:
    from kernel.errors import EcomError

    names = [e.strip() for e in (arg or default).split(",") if e.strip()]
    bad = [e for e in names if e not in allowed]
    if not names or bad or len(set(names)) != len(names):
        raise EcomError(f"{flag} takes distinct names from {', '.join(allowed)}, e.g. {example}")
    return names


def _variant(engine: str, order: str, orders: list[str]) -> str:
    """A measured variant's name: the engine, plus the order when several are compared. Pure."""
    return engine if len(orders) == 1 else f"{engine}/{order}"


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of a set of runs (lost / duplicated: the max). Pure."""
    return {
        "sustained_events_per_s": _median([r["sustained_events_per_s"] for r in runs]),
        "offered_events_per_s": _median([r["offered_events_per_s"] for r in runs]),
        "latency_ms": {q: _median([r["latency_ms"][q] for r in runs]) for q in ("p50", "p95", "p99")},
        "lost": max(r["lost"] for r in runs),
        "duplicated": max(r["duplicated"] for r in runs),
        "ceiling_events_per_s": _median([r["ceiling_events_per_s"] for r in runs]),
        # where a measured micro-batch's time went (medians of the runs' medians)
        "batch_ms": {k: _median([r["batch_ms"][k] for r in runs]) for k in runs[0]["batch_ms"]},
        "sustained_to_ceiling": _ratio(
            _median([r["sustained_events_per_s"] for r in runs]),
            _median([r["ceiling_events_per_s"] for r in runs]),
        ),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def bench(args: argparse.Namespace) -> int:
    import logging

    from kernel.spark import get_spark

    if (
        args.runs < 1
        or args.rate <= 0
        or args.seconds <= 0
        or (args.state_partitions is not None and args.state_partitions < 1)
        or args.floor_events < 1
    ):
        from kernel.errors import EcomError

        raise EcomError("--runs, --rate, --seconds, --state-partitions and --floor-events must be > 0")
    logging.basicConfig(level=logging.WARNING)
    if args.verbose:
        logging.getLogger("ecom").setLevel(logging.INFO)
    s = get_settings()
    engines = _engines(args.engines, s.spark.state_engine)
    orders = _orders(args.orders, s.spark.speed_order)
    # event-time order runs in the JVM engine only (streaming.speed.query.checkpoint_state_layout)
    variants = [(e, o) for e in engines for o in orders if e == "jvm" or o == "arrival"]
    spark = get_spark("ecom-bench-stream")
    by_variant: dict[str, list[dict[str, Any]]] = {_variant(e, o, orders): [] for e, o in variants}
    first: dict[str, Any] | None = None
    for i in range(args.runs):
        for engine, order in variants:  # interleaved, so every variant meets the same machine
            name = _variant(engine, order, orders)
            r = run_once(
                spark,
                s,
                args.rate,
                args.seconds,
                args.model_name,
                args.state_buckets,
                args.max_offsets,
                args.customers,
                workload=args.workload,
                warmup_events=args.warmup_events,
                state_partitions=args.state_partitions,
                state_engine=engine,
                order=order,
            )
            r["state_engine"], r["order"] = engine, order
            by_variant[name].append(r)
            first = first or r
            if not args.json:
                print(f"run {i + 1} ({name}): {json.dumps(r, default=str)}")
    runs = by_variant[_variant(*variants[0], orders)]
    result = {
        **_summary(runs),
        # the first measured run of this fresh application (JVM not yet JIT-warm), also inside the medians
        "first_run": {
            "state_engine": first["state_engine"],
            "order": first["order"],
            "latency_ms": first["latency_ms"],
            "sustained_events_per_s": first["sustained_events_per_s"],
            "ceiling_events_per_s": first["ceiling_events_per_s"],
        },
        "settings": {
            "rate": args.rate,
            "seconds": args.seconds,
            "runs": args.runs,
            "aggregate": "median of runs (lost/duplicated: max)",
            "spark_master": s.spark.master,
            "shuffle_partitions": s.spark.shuffle_partitions,
            "max_offsets_per_trigger": args.max_offsets or s.spark.max_offsets_per_trigger,
            "trigger": runs[0]["trigger"],
            "state_buckets": s.spark.state_buckets if args.state_buckets is None else args.state_buckets,
            "state_partitions": args.state_partitions or s.spark.state_partitions,
            "state_engine": engines[0],  # the headline figures' engine (--engines, else settings)
            "order": orders[0],  # and order (--orders, else settings)
            "kafka_partitions": s.kafka.partitions,
            "simulated_customers": args.customers,
            "workload": args.workload,
            "warmup_events": args.warmup_events,
            "model_versions": sorted({v for r in runs for v in r["model_versions"]}),
        },
        "runs": runs,
        "machine": machine_info(),
    }
    if len(variants) > 1:  # the same figures per variant, runs interleaved in this one application
        result["variants"] = {v: {**_summary(rs), "runs": rs} for v, rs in by_variant.items()}
    if args.realtime:
        result["realtime_mode"] = realtime_probe(spark, s, args.rate, args.seconds)
    if args.floor:
        from bench.floor import floor_probe

        result["floor"] = floor_probe(spark, s, args.rate, args.seconds, args.floor_events)
    print(json.dumps(result, default=str, indent=None if args.json else 2))
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser(
        "stream", help="speed layer: sustained events/s and produce-to-commit latency"
    )
    p.add_argument("--rate", type=float, default=1000.0, help="events/s produced (default 1000)")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds of producing per run (default 30)")
    p.add_argument("--runs", type=int, default=3, help="runs; medians are reported (default 3)")
    p.add_argument(
        "--model-name",
        help="registered model (default: settings; a bootstrap champion is trained when it has none)",
    )
    p.add_argument(
        "--state-buckets",
        type=int,
        help="keyed-state hash buckets (0 = per key; default: settings, ECOM_SPEED_STATE_BUCKETS)",
    )
    p.add_argument(
        "--state-partitions",
        type=int,
        help="Spark partitions of the keyed state (default: settings, ECOM_SPEED_STATE_PARTITIONS)",
    )
    p.add_argument(
        "--engines",
        help="keyed-state engines to measure, comma-separated, runs interleaved: jvm, python or jvm,python "
        "(the first one gives the headline figures; default: settings, ECOM_SPEED_STATE_ENGINE)",
    )
    p.add_argument(
        "--orders",
        help="orders of the keyed state's walk to measure, comma-separated, runs interleaved: arrival, "
        "event_time or arrival,event_time (event_time has no ceiling run: it refuses availableNow; default: "
        "settings, ECOM_SPEED_ORDER)",
    )
    p.add_argument("--max-offsets", type=int, help="max Kafka records per micro-batch (default: settings)")
    p.add_argument("--customers", type=int, default=20_000, help="simulated customers (default 20000)")
    p.add_argument(
        "--workload",
        choices=["history", "live"],
        default="history",
        help="history: replay simulated history at --rate (realistic per-customer rhythm, default); "
        "live: wall-clock events (every customer buys every customers/rate seconds)",
    )
    p.add_argument(
        "--warmup-events",
        type=int,
        default=500,
        help="events sent and committed before each measured run, under their own ids and left out of "
        "every figure: the first batch with data starts the Python workers and loads the model (default "
        "500; 0 = measure from a cold query)",
    )
    p.add_argument(
        "--realtime",
        action="store_true",
        help="also try Spark 4's real-time mode trigger on the stateless part (Kafka -> parse -> Kafka)",
    )
    p.add_argument(
        "--floor",
        action="store_true",
        help="also measure the speed layer's operators doing nothing (Kafka -> parse -> two Python keyed "
        "states -> mapInPandas -> driver, no features, scoring or Postgres): latency at --rate and "
        "events/s, per step of that ladder: floors of the real figures on this machine",
    )
    p.add_argument(
        "--floor-events",
        type=int,
        default=200_000,
        help="pre-produced events the --floor throughput runs read, in four batches (default 200000)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="log every micro-batch")
    p.set_defaults(func=bench)


def realtime_probe(spark, settings: Settings, rate: float, seconds: float) -> dict[str, Any]:
    """Spark 4's real-time mode on the part of the speed layer it supports (Spark 4.2: stateless queries,
    Kafka or ForeachWriter sinks): Kafka -> parse + contract check -> Kafka. Latency = output record time -
    input produce time, read back from the output topic. Returns figures or the error Spark gave.

    It also asks whether the scoring step could run there (parse -> mapInPandas -> Kafka): Spark's answer
    goes under `scoring_in_real_time_mode` (Spark 4.2: MapInPandasExec is not on the real-time allowlist;
    neither is Python state). And it measures that pipeline with the allowlist check switched off
    (`spark.sql.streaming.realTimeMode.allowlistCheck=false`, unsupported by Spark) under
    `python_operator_allowlist_off`: it runs, but how soon do rows come back through Python?"""
    from pyspark.sql import types as T

    from streaming import transforms

    def stateless(topic_in: str):
        return transforms.parse_transactions(
            transforms.read_kafka(
                spark, topic_in, settings.kafka.bootstrap_servers, starting_offsets="earliest"
            )
        )

    def through_python(topic_in: str):
        parsed = stateless(topic_in).select("transaction_id", "reject_reason", "kafka_timestamp", "amount")
        schema = T.StructType([*parsed.schema.fields, T.StructField("amount_x2", T.DoubleType())])

        def double_amount(batches):
            for pdf in batches:
                yield pdf.assign(amount_x2=pdf["amount"] * 2)

        return parsed.mapInPandas(double_amount, schema)

    result = {
        "pipeline": "Kafka -> parse + contract check -> Kafka (stateless: what real-time mode runs in Spark 4.2)",
        "scoring_in_real_time_mode": _realtime_scoring_check(spark, settings),
        **_realtime_measure(spark, settings, stateless, rate, seconds),
    }
    key = "spark.sql.streaming.realTimeMode.allowlistCheck"
    from streaming.common import session_conf

    with session_conf(spark, key, "false"):
        result["python_operator_allowlist_off"] = {
            "pipeline": "Kafka -> parse -> mapInPandas -> Kafka, with " + key + "=false",
            **_realtime_measure(spark, settings, through_python, rate, min(seconds, 10.0)),
        }
    return result


def _realtime_measure(spark, settings: Settings, build, rate: float, seconds: float) -> dict[str, Any]:
    """Run `build(input topic)` (a frame with transaction_id, reject_reason, kafka_timestamp) into a Kafka
    topic with the real-time trigger; warm up, produce `rate` events/s for `seconds`, read them back."""
    import queue

    from pyspark.sql import functions as F

    from kernel.kafka import consumer as kafka_consumer
    from kernel.stats import percentiles

    tag = uuid.uuid4().hex[:8]
    topic_in, topic_out, namespace = f"bench_rt_in_{tag}", f"bench_rt_out_{tag}", f"r{tag}"
    # real-time mode runs one long-lived task per source partition, all at once: with more partitions
    # than task slots (6 on 2 cores) the rest wait for the next batch (two thirds of the events came
    # back only after it, or never within the read-back time)
    slots = realtime_partitions(settings.kafka.partitions, spark.sparkContext.defaultParallelism)
    create_topic(settings, topic_in, slots)
    create_topic(settings, topic_out, slots)
    work = Path(tempfile.mkdtemp(prefix=f"bench_rt_{tag}_", dir=settings.spark.checkpoint_dir.parent))
    # the topics are new: read from the start, so no event is skipped while the query starts up
    out = build(topic_in).select(
        F.col("transaction_id").cast("string").alias("key"),
        F.to_json(
            F.struct(
                "transaction_id",
                "reject_reason",
                (F.unix_micros("kafka_timestamp")).alias("produced_us"),
            )
        ).alias("value"),
    )
    try:
        query = _start_realtime_to_kafka(out, settings, topic_out, work / "rt")
    except Exception as exc:  # report what real-time mode says instead of failing the benchmark
        return {"supported": False, "error": str(exc).splitlines()[0][:300]}
    consumer = kafka_consumer(settings.kafka.bootstrap_servers)
    consumer.subscribe([topic_out])
    try:
        # warm up: measure only once events already flow through the running query
        warm: queue.Queue = queue.Queue()
        produce_live(topic_in, 50.0, 1.0, f"w{tag}", 2000, warm)
        warm_sent = warm.get()["sent"]
        warmed = len(_read_back(consumer, f"w{tag}", warm_sent, timeout_s=90.0))
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        proc = ctx.Process(target=produce_live, args=(topic_in, rate, seconds, namespace, 2000, q))
        proc.start()
        produced = q.get(timeout=seconds + 600)
        proc.join()
        lat = _read_back(consumer, namespace, produced["sent"], timeout_s=60.0)
    finally:
        consumer.close()
        error = query.exception()
        query.stop()
    return {
        "supported": error is None,
        "error": None if error is None else str(error).splitlines()[0][:300],
        "input_partitions": slots,
        "warmup_events": warm_sent,
        "warmup_received": warmed,
        "produced": produced["sent"],
        "received": len(lat),
        "latency_ms": percentiles(lat),
    }


def realtime_partitions(topic_partitions: int, task_slots: int) -> int:
    """Input partitions for the real-time probe: as many as the query can run at once (>= 1). Pure."""
    return max(1, min(topic_partitions, task_slots))


def _read_back(consumer, namespace: str, expected: int, timeout_s: float) -> list[float]:
    """Latencies (ms: output record time - input produce time) of the output records of `namespace`'s
    events, until `expected` of them came back or nothing new arrived for `timeout_s`."""
    lat: list[float] = []
    quiet_until = time.time() + timeout_s
    while len(lat) < expected and time.time() < quiet_until:
        for rec in consumer.consume(num_messages=10_000, timeout=0.5):
            if rec.error():
                continue
            body = json.loads(rec.value())
            if str(body.get("transaction_id") or "").startswith(namespace):
                lat.append(rec.timestamp()[1] - body["produced_us"] / 1000.0)
                quiet_until = time.time() + timeout_s
    return lat


def _realtime_scoring_check(spark, settings: Settings) -> dict[str, Any]:
    """Start parse -> mapInPandas (the scorer's operator) -> Kafka with the real-time trigger; report
    whether Spark runs it or the error it stops with (no events needed: the check is at planning)."""
    from pyspark.sql import functions as F

    from streaming import transforms

    tag = uuid.uuid4().hex[:8]
    topic_in, topic_out = f"bench_rts_in_{tag}", f"bench_rts_out_{tag}"
    create_topic(settings, topic_in)
    create_topic(settings, topic_out)
    work = Path(tempfile.mkdtemp(prefix=f"bench_rts_{tag}_", dir=settings.spark.checkpoint_dir.parent))

    def passthrough(batches):
        yield from batches

    parsed = transforms.parse_transactions(
        transforms.read_kafka(spark, topic_in, settings.kafka.bootstrap_servers, starting_offsets="latest")
    ).select("transaction_id", "amount")
    scored = parsed.mapInPandas(passthrough, "transaction_id string, amount double")
    out = scored.select(
        F.col("transaction_id").alias("key"), F.to_json(F.struct("transaction_id", "amount")).alias("value")
    )
    try:
        query = _start_realtime_to_kafka(out, settings, topic_out, work / "rt")
    except Exception as exc:
        return {"runs": False, "error": str(exc).splitlines()[0][:300]}
    deadline = time.time() + 20
    while query.isActive and time.time() < deadline:
        time.sleep(0.5)
    error = query.exception()
    query.stop()
    if error is not None:
        return {"runs": False, "error": str(error).splitlines()[0][:300]}
    return {"runs": True, "error": None}


def _start_realtime_to_kafka(out, settings: Settings, topic: str, checkpoint: Path):
    """Start `out` (key, value) into a Kafka topic with Spark's real-time trigger."""
    return (
        out.writeStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("topic", topic)
        .option("checkpointLocation", str(checkpoint))
        .outputMode("update")
        .trigger(realTime="30 seconds")
        .start()
    )
