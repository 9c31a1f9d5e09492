"""`ecom bench replay`: rows/s from a CSV/Parquet file into Kafka, time to the first event, peak memory.

Each run writes a seeded synthetic file shaped like a public card-fraud file (five columns: customer,
terminal, amount, time, fraud label; no transaction id, so ids come from the file hash and line), once in
time order and once shuffled, and replays it with `events.replay.replay_file` into fresh topics. Every
replay runs in its own process so its peak memory is its own: peak RSS is sampled with psutil, time to
first event is when a consumer of the fresh topic first sees a record. Medians of `--runs`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import create_topic, delete_topics, machine_info
from events.simulator.cards import CARD_FILE_MAPPING, CardFileConfig, write_card_file
from kernel.settings import Settings, get_settings
from kernel.stats import median


def _replay_child(path: str, topics: dict[str, str], chunk_rows: int, out: Any) -> None:
    """One replay in a fresh process: its figures and its own peak RSS."""
    import psutil

    from events.replay import ColumnMapping, replay_file

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    baseline = proc.memory_info().rss
    started = time.time()
    cpu0 = time.process_time()
    report = replay_file(
        Path(path),
        ColumnMapping(dict(CARD_FILE_MAPPING)),
        topic=topics["tx"],
        labels_topic=topics["labels"],
        dead_letter_topic=topics["dlq"],
        chunk_rows=chunk_rows,
    )
    cpu = time.process_time() - cpu0
    done.set()
    sampler.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    out.put(
        {
            "started": started,
            "summary": report.summary() | {"bad_lines": None},
            "cpu_seconds": round(cpu, 2),
            "peak_rss_mb": round(peak[0] / 2**20, 1),
            "rss_after_imports_mb": round(baseline / 2**20, 1),
        }
    )


def _first_record_time(settings: Settings, topic: str, stop: threading.Event, seen: list[float]) -> None:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from kernel.kafka import consumer as kafka_consumer
    from kernel.kafka import topic_partitions

    consumer = kafka_consumer(settings.kafka.bootstrap_servers)
    # assigned, not subscribed: no group join delays the first read
    n = topic_partitions(consumer)[topic]
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(n)])
    try:
        while not stop.is_set() and not seen:
            msg = consumer.poll(0.1)
            if msg is not None and not msg.error():
                seen.append(time.time())
    finally:
        consumer.close()


def run_once(settings: Settings, path: Path, chunk_rows: int) -> dict[str, Any]:
    topics = {k: f"bench-replay-{k}-{uuid.uuid4().hex[:8]}" for k in ("tx", "labels", "dlq")}
    for name in topics.values():
        create_topic(settings, name)
    try:
        stop, seen = threading.Event(), []
        watcher = threading.Thread(target=_first_record_time, args=(settings, topics["tx"], stop, seen))
        watcher.start()
        ctx = mp.get_context("spawn")  # a clean process: no inherited Kafka threads, its own peak RSS
        out = ctx.Queue()
        child = ctx.Process(target=_replay_child, args=(str(path), topics, chunk_rows, out))
        child.start()
        result = out.get()
        child.join()
        stop.set()
        watcher.join()
    finally:
        delete_topics(settings, list(topics.values()))
    s = result["summary"]
    return {
        "rows": s["rows"],
        "delivered": s["delivered"],
        "dead_lettered": s["dead_lettered"],
        "labels": s["labels"],
        "seconds": s["seconds"],
        "rows_per_s": s["rows_per_s"],
        # CPU seconds of the replay process (all threads): on a shared machine the wall-clock rate depends
        # on the neighbours; rows per CPU-second is the cost of the path itself
        "cpu_seconds": result["cpu_seconds"],
        "rows_per_cpu_s": round(s["rows"] / result["cpu_seconds"], 1) if result["cpu_seconds"] else None,
        "first_event_in_kafka_s": round(seen[0] - result["started"], 3) if seen else None,
        "first_event_handed_to_producer_s": s["first_event_s"],
        "in_order": s["in_order"],
        "spilled_runs": s["spilled_runs"],
        "peak_rss_mb": result["peak_rss_mb"],
        "rss_after_imports_mb": result["rss_after_imports_mb"],
    }


def bench_replay(
    rows: int = 200_000,
    runs: int = 3,
    fmt: str = "csv",
    chunk_rows: int | None = None,
    seed: int = 7,
    settings: Settings | None = None,
) -> dict[str, Any]:
    from events.replay import DEFAULT_CHUNK_ROWS

    s = settings or get_settings()
    chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS
    out: dict[str, Any] = {"rows": rows, "format": fmt}
    (s.state_dir / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=s.state_dir / "tmp", prefix="bench-replay-") as tmp:
        for order in ("sorted", "unsorted"):
            path = write_card_file(
                Path(tmp) / f"{order}.{fmt}",
                CardFileConfig.for_rows(rows, seed=seed),
                shuffled=order == "unsorted",
            )
            results = [run_once(s, path, chunk_rows) for _ in range(runs)]
            out[order] = {
                "rows_per_s": median([r["rows_per_s"] for r in results]),
                "rows_per_cpu_s": median([r["rows_per_cpu_s"] for r in results]),
                "first_event_in_kafka_s": median(
                    [r["first_event_in_kafka_s"] for r in results if r["first_event_in_kafka_s"] is not None]
                    or [float("nan")]
                ),
                "peak_rss_mb": median([r["peak_rss_mb"] for r in results]),
                "file_mb": round(path.stat().st_size / 2**20, 1),
                "runs": results,
            }
    out["settings"] = {
        "runs": runs,
        "seed": seed,
        "chunk_rows": chunk_rows,
        "partitions": s.kafka.partitions,
        "bootstrap": s.kafka.bootstrap_servers,
    }
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    out["machine"] = machine_info()
    return out


def _bench(args: argparse.Namespace) -> int:
    result = bench_replay(
        rows=args.rows, runs=args.runs, fmt=args.format, chunk_rows=args.chunk_rows, seed=args.seed
    )
    if args.json:
        print(json.dumps(result))
    else:
        for order in ("sorted", "unsorted"):
            r = result[order]
            print(
                f"replay {order} {args.format}, {args.rows:,} rows: median {r['rows_per_s']:,.0f} rows/s "
                f"({r['rows_per_cpu_s']:,.0f} per CPU-second), "
                f"first event in Kafka after {r['first_event_in_kafka_s']} s, peak RSS {r['peak_rss_mb']} MB "
                f"({args.runs} runs)"
            )
        print(f"{result['machine']['cpu_count']} CPUs, load {result['machine']['load_avg_1m']}")
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    from events.cli import _positive_int

    p = bench_subparsers.add_parser(
        "replay", help="rows/s, time to first event and peak memory of `ecom replay` (sorted and unsorted)"
    )
    p.add_argument("--rows", type=_positive_int, default=200_000, help="rows in the file (default 200000)")
    p.add_argument("--runs", type=_positive_int, default=3, help="runs per order; medians (default 3)")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")
    p.add_argument("--chunk-rows", type=_positive_int, help="replay memory budget (default: the replay's)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=_bench)
