"""`ecom bench produce`: events/s from simulation to broker acknowledgement, in one process.

Each run generates N events with the live clock unpaced (the `ecom generate --events N --rate 0` path:
vectorised simulation, JSON rendering, sampled contract checks, confluent-kafka with acks=all),
produces them to a fresh topic (same partition count as `transactions`) and waits for every ack; the
figure is N / wall time. The median of several runs is reported; the topics are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

from bench.harness import create_topic, delete_topics, machine_info
from kernel.settings import Settings, get_settings
from kernel.stats import median


def run_once(settings: Settings, events: int, customers: int, seed: int, topic: str) -> dict[str, Any]:
    from events.producer import EventProducer, quiet_gc
    from events.simulator import ShopSimulator, SimConfig

    sim = ShopSimulator(SimConfig(seed=seed, n_customers=customers))
    producer = EventProducer(settings, topic=topic, labels_topic=topic, dead_letter_topic=topic)
    quiet_gc()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for chunk, _labels in sim.live_chunks(0, max_events=events, as_json=True):
        producer.send_records(chunk)
    producer.flush()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    producer.close()
    # CPU seconds of this process (all threads): on a shared machine the wall-clock rate depends on the
    # neighbours; events per CPU-second is the cost of the path itself
    return {
        "events": producer.stats.events,
        "seconds": round(elapsed, 3),
        "events_per_s": round(producer.stats.events / elapsed, 1),
        "cpu_seconds": round(cpu, 3),
        "events_per_cpu_s": round(producer.stats.events / cpu, 1) if cpu > 0 else None,
    }


def bench_produce(
    events: int = 200_000,
    runs: int = 3,
    customers: int = 20_000,
    seed: int = 7,
    settings: Settings | None = None,
) -> dict[str, Any]:
    from events.producer import PRODUCER_CONFIG

    s = settings or get_settings()
    topics = []
    results = []
    try:
        for _ in range(runs):
            topic = f"bench-produce-{uuid.uuid4().hex[:10]}"
            create_topic(s, topic, s.kafka.partitions)
            topics.append(topic)
            results.append(run_once(s, events, customers, seed, topic))
    finally:
        if topics:
            delete_topics(s, topics)
    return {
        "events_per_s": median([r["events_per_s"] for r in results]),
        "events_per_cpu_s": median([r["events_per_cpu_s"] for r in results]),
        "events": events,
        "runs": results,
        "settings": {
            "runs": runs,
            "customers": customers,
            "seed": seed,
            "partitions": s.kafka.partitions,
            "bootstrap": s.kafka.bootstrap_servers,
            "validate": "sample (1 in 997 events)",
            "producer": {k: v for k, v in PRODUCER_CONFIG.items() if k != "bootstrap_timeout_ms"},
        },
        "machine": machine_info(),
    }


def _produce(args: argparse.Namespace) -> int:
    result = bench_produce(events=args.events, runs=args.runs, customers=args.customers)
    if args.json:
        print(json.dumps(result))
    else:
        runs = ", ".join(f"{r['events_per_s']:,.0f}" for r in result["runs"])
        print(
            f"produce: median {result['events_per_s']:,.0f} events/s over {args.runs} runs of {args.events} "
            f"events (runs: {runs}); {result['events_per_cpu_s']:,.0f} events per CPU-second; "
            f"{result['machine']['cpu_count']} CPUs, load {result['machine']['load_avg_1m']}"
        )
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("produce", help="events/s from simulation to broker ack (one process)")
    p.add_argument("--events", type=int, default=200_000, help="events per run (default 200000)")
    p.add_argument("--runs", type=int, default=3, help="runs; the median is reported (default 3)")
    p.add_argument("--customers", type=int, default=20_000, help="simulated customers (default 20000)")
    p.add_argument("--json", action="store_true", help='print {"events_per_s": ..., ...} as JSON')
    p.set_defaults(func=_produce)
