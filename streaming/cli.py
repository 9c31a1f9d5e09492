"""`ecom stream` (the speed layer) and `ecom land` (the batch landing into the master dataset)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from kernel.errors import EcomError


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("py4j", "kafka", "urllib3", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be > 0")
    return n


def _run(query, label: str) -> int:
    # SIGTERM (Dagster, a supervisor) stops the query cleanly at a batch boundary. The handler only sets a
    # flag: calling query.stop() from it re-entered the py4j call the main thread was blocked in
    # ("RuntimeError: reentrant call" in the log), so the loop below stops the query between short waits.
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        while query.isActive and not stop:
            query.awaitTermination(1)
        if stop:
            query.stop()
    except KeyboardInterrupt:
        query.stop()
    except Exception:  # a failed query raises here (StreamingQueryException): reported below in one line
        pass
    exc = query.exception()
    if exc is not None:
        raise EcomError(f"{label} query '{query.name}' failed: {str(exc).splitlines()[0][:300]}")
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from kernel.settings import get_settings
    from kernel.spark import get_spark
    from streaming.speed.query import StreamConfig, start_speed_query

    _logging()
    s = get_settings()
    cfg = StreamConfig.from_settings(
        s,
        topic=args.topic,
        query_name=args.query_name,
        checkpoint=args.checkpoint,
        trigger=args.trigger,
        available_now=args.available_now,
        model_name=args.model_name,
        max_offsets_per_trigger=args.max_offsets,
        state_buckets=args.state_buckets,
        state_engine=args.state_engine,
        order=args.order,
        **({"state_partitions": args.state_partitions} if args.state_partitions else {}),
    )
    # a long-running query unless --available-now: its heap is committed up front (kernel.spark)
    spark = get_spark(f"ecom-stream-{cfg.query_name}", fixed_heap=not args.available_now)
    query = start_speed_query(spark, cfg, s)
    logging.getLogger("ecom.speed").info(
        "speed layer '%s' reading %s, checkpoint %s", cfg.query_name, cfg.topic, cfg.checkpoint
    )
    return _run(query, "speed")


def cmd_land(args: argparse.Namespace) -> int:
    from kernel.settings import get_settings
    from kernel.spark import get_spark
    from streaming.landing.query import LandingConfig, start_landing_query

    _logging()
    s = get_settings()
    cfg = LandingConfig.from_settings(
        s,
        topic_transactions=args.topic,
        topic_labels=args.labels_topic,
        query_name=args.query_name,
        checkpoint=args.checkpoint,
        continuous=args.continuous,
        trigger=args.trigger,
    )
    spark = get_spark(
        f"ecom-land-{cfg.query_name}",
        driver_memory=s.spark.landing_driver_memory if args.continuous else None,
        fixed_heap=args.continuous,
    )
    query = start_landing_query(spark, cfg, s)
    logging.getLogger("ecom.landing").info(
        "landing '%s' reading %s + %s into master, checkpoint %s, trigger %s",
        cfg.query_name,
        cfg.topic_transactions,
        cfg.topic_labels,
        cfg.checkpoint,
        cfg.trigger,
    )
    return _run(query, "landing")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stream",
        help="run the speed layer: Kafka -> features -> champion model -> Postgres (exactly once)",
        description="Spark Structured Streaming speed layer. Defaults come from kernel.settings.",
    )
    p.add_argument("--topic", help="Kafka topic to read (default: settings.kafka.topic_transactions)")
    p.add_argument(
        "--checkpoint", help="checkpoint folder (default: <settings.spark.checkpoint_dir>/<query-name>)"
    )
    p.add_argument(
        "--query-name", default="speed", help="query name; also the batch-marker key (default: speed)"
    )
    p.add_argument(
        "--model-name", help="registered model to score with (default: settings.mlflow.model_name)"
    )
    p.add_argument("--trigger", help="processing-time trigger, e.g. '2 seconds' (default: settings)")
    p.add_argument("--available-now", action="store_true", help="process what is in Kafka now, then stop")
    p.add_argument(
        "--max-offsets", type=_positive, help="max Kafka records per micro-batch (default: settings)"
    )
    p.add_argument(
        "--state-buckets",
        type=int,
        help="group keyed state into N hash buckets (0 = one state per customer/terminal; default: what "
        "the checkpoint recorded, else settings, ECOM_SPEED_STATE_BUCKETS)",
    )
    p.add_argument(
        "--state-engine",
        choices=("jvm", "python"),
        help="where the keyed state runs, for a new checkpoint: jvm (transformWithState in streaming/jvm, no "
        "Python before scoring) or python (ml.features' walk, the reference); default: what the checkpoint "
        "recorded, else settings (ECOM_SPEED_STATE_ENGINE, jvm)",
    )
    p.add_argument(
        "--order",
        choices=("arrival", "event_time"),
        help="the order the keyed state walks events in, for a new checkpoint: arrival (as Kafka's partitions "
        "deliver them, the lowest latency) or event_time (rows held until every partition has passed them: "
        "the offline features' order on a topic with several partitions, e.g. a fast replay of history; one "
        "micro-batch more latency); default: what the checkpoint recorded, else settings (ECOM_SPEED_ORDER, "
        "arrival)",
    )
    p.add_argument(
        "--state-partitions",
        type=_positive,
        help="Spark partitions of the keyed state, for a new checkpoint (default: settings, "
        "ECOM_SPEED_STATE_PARTITIONS); a restored checkpoint keeps the count it was created with",
    )
    p.set_defaults(func=cmd_stream)

    p = subparsers.add_parser(
        "land",
        help="land Kafka transactions + chargebacks into the append-only master dataset (exactly once)",
        description="Batch landing of the Kafka log into master.transactions / master.chargebacks.",
    )
    p.add_argument("--topic", help="transactions topic (default: settings.kafka.topic_transactions)")
    p.add_argument("--labels-topic", help="chargebacks topic (default: settings.kafka.topic_labels)")
    p.add_argument(
        "--checkpoint", help="checkpoint folder (default: <settings.spark.checkpoint_dir>/<query-name>)"
    )
    p.add_argument("--query-name", default="landing", help="query name; also the batch-marker key")
    p.add_argument(
        "--continuous",
        action="store_true",
        help="keep landing every few seconds (default: land what is new, then stop)",
    )
    p.add_argument("--trigger", help="processing-time trigger with --continuous (default '5 seconds')")
    p.set_defaults(func=cmd_land)
