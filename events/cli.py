"""`ecom generate` and `ecom replay`: events into Kafka from the shop simulator or from a file.

`ecom generate --days 180 --customers 20000`   history clock: months of past events, as fast as possible
`ecom generate --rate 2000 --duration 60`      live clock: events stamped now, paced to the rate
`ecom generate --events N --rate 0 --seed S`   exactly N events, live clock, unpaced
`ecom replay FILE --customer-col ...`          a CSV/Parquet of real transactions (see events/replay.py)

The shop (seed and sizes) of the last run is remembered under the state folder, so `ecom generate` after
a history run goes live with the same customers, catalog and merchants.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings

DEFAULT_SHOP = {
    "seed": 7,
    "n_customers": 2000,
    "n_products": 300,
    "n_merchants": 50,
    "days": 60,
    "start": None,
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _start(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date/time like 2026-01-01") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def shop_file(settings: Settings, override: str | None = None) -> Path:
    return Path(override) if override else settings.state_dir / "generator" / "shop.json"


def load_shop(settings: Settings, override: str | None = None) -> dict[str, Any]:
    path = shop_file(settings, override)
    if path.exists():
        try:
            return DEFAULT_SHOP | json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    return dict(DEFAULT_SHOP)


def save_shop(settings: Settings, shop: dict[str, Any], override: str | None = None) -> None:
    path = shop_file(settings, override)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(shop, default=str, indent=1))


def _generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from events.producer import EventProducer, LabelOutbox, paced, quiet_gc
    from events.simulator import ShopSimulator, SimConfig
    from events.simulator.reference import write_reference

    settings = get_settings()
    history = args.days is not None
    if history and args.duration is not None:
        raise EcomError("--days (history clock) and --duration (live clock) exclude each other; pick one")
    if (args.part != "all" or args.tail_days) and not history:
        raise EcomError("--part and --tail-days split a history: add --days")
    if args.tail_days and args.part == "all":
        raise EcomError("--tail-days N needs --part head or --part tail (which side of the cut to send)")
    if args.part != "all" and not args.tail_days:
        raise EcomError(
            "--part head|tail needs --tail-days N (how many final days of the history are the tail)"
        )
    if history and args.rate not in (None, 0) and args.part != "tail":
        raise EcomError(
            "--rate paces the live clock, or the tail of a history (--part tail); "
            "a whole history run (--days) always goes as fast as it can"
        )
    shop = load_shop(settings, args.shop_file)
    changed = {
        "seed": args.seed,
        "n_customers": args.customers,
        "n_products": args.products,
        "n_merchants": args.merchants,
    }
    changed = {k: v for k, v in changed.items() if v is not None}
    if history:
        changed |= {"days": args.days, "start": args.start.isoformat() if args.start else None}
    shop |= changed
    start = datetime.fromisoformat(shop["start"]) if shop.get("start") else None
    try:
        sim = ShopSimulator(
            SimConfig(
                seed=int(shop["seed"]),
                n_customers=int(shop["n_customers"]),
                n_products=int(shop["n_products"]),
                n_merchants=int(shop["n_merchants"]),
                days=float(shop["days"]),
                start=start,
                fraud_rate=args.fraud_rate,
            )
        )
    except ValueError as exc:
        raise EcomError(f"invalid shop: {exc}") from exc
    producer = EventProducer(
        settings,
        topic=args.topic,
        labels_topic=args.labels_topic,
        dead_letter_topic=args.dead_letter_topic,
        validate=args.validate,
    )
    if not args.no_reference:
        # the CRM as of the run's clock: the end of a history, or now for a live run
        counts = write_reference(sim, settings, as_of=sim.end if history else datetime.now(UTC))
        if not args.quiet:
            print(
                "reference data upserted into Postgres schema reference ("
                + ", ".join(f"{k}: {v} changed" for k, v in counts.items())
                + ")",
                file=sys.stderr,
            )
    # remember the resolved window: a later live run rebuilds exactly this population
    save_shop(settings, shop | {"start": sim.start.isoformat()}, args.shop_file)
    outbox = LabelOutbox.default(settings) if args.outbox is None else LabelOutbox(Path(args.outbox))
    with outbox.releasing() as (due, _):
        producer.send_labels(due)
        producer.flush()

    if history:
        total = args.events or int(sim.expected_history_events() * 1.01)
        window = None
        mode = f"history {sim.start:%Y-%m-%d} .. {sim.end:%Y-%m-%d}"
        if args.part != "all":
            cut = sim.end - timedelta(days=args.tail_days)
            window = (None, cut) if args.part == "head" else (cut, None)
            mode += f", {args.part} ({'before' if args.part == 'head' else 'from'} {cut:%Y-%m-%d %H:%M})"
        chunks = sim.history_chunks(max_events=args.events, as_json=True, window=window)
        if args.part == "tail" and args.rate:
            chunks = paced(chunks, args.rate)
            mode += f" at {args.rate:g} events/s"
    else:
        rate = args.rate if args.rate is not None else 2000.0
        total = args.events
        if rate > 0 and args.duration is not None:
            # paced: the run is exactly rate x duration events (the clock check below is the backstop)
            n_paced = max(1, int(rate * args.duration))
            total = min(total, n_paced) if total else n_paced
        per_hour = rate * 3600 / max(1, int(shop["n_customers"]))
        if per_hour > 1 and not args.quiet:
            # one rate knob cannot keep per-customer behaviour realistic: say so (docs/events.md, Limits)
            print(
                f"note: {rate:g} events/s over {shop['n_customers']} customers is {per_hour:.0f} purchases per "
                "customer per hour (history: ~0.1 per day); more --customers make live behaviour closer to it",
                file=sys.stderr,
            )
        chunks = sim.live_chunks(rate, max_events=total, as_json=True)
        mode = f"live at {rate:g} events/s" if rate > 0 else "live, unpaced"
    quiet_gc()
    bar = tqdm(total=total, unit="ev", disable=args.quiet, desc=mode, file=sys.stderr, smoothing=0.1)
    t0 = time.monotonic()
    fraud_before = 0
    interrupted = False
    try:
        for events, labels in chunks:
            producer.send_records(events)
            producer.stats.fraud_events += len(sim.ground_truth) - fraud_before
            fraud_before = len(sim.ground_truth)
            for label in labels:
                if label is not None:
                    outbox.add(label)
            bar.update(len(events))
            if args.duration is not None and time.monotonic() - t0 >= args.duration:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    with outbox.releasing() as (due, pending):
        producer.send_labels(due)
        producer.flush()
    elapsed = time.monotonic() - t0
    producer.close()
    st = producer.stats
    share = st.fraud_events / st.events if st.events else 0.0
    summary = {
        "mode": "history" if history else "live",
        "events": st.events,
        "seconds": round(elapsed, 2),
        "events_per_s": round(st.events / elapsed, 1) if elapsed > 0 else None,
        "fraud_events": st.fraud_events,
        "fraud_share": round(share, 5),
        "labels_published": st.labels,
        "labels_pending": pending,
        "dead_letters": st.dead_letters,
        "topic": producer.topic,
        "labels_topic": producer.labels_topic,
        "interrupted": interrupted,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{st.events} events in {elapsed:.1f} s ({summary['events_per_s']} events/s) "
            f"-> '{producer.topic}' "
            f"at {producer.bootstrap}; fraud share {share:.2%} ({st.fraud_events}); chargebacks published "
            f"{st.labels}, pending {pending} (published by a later run once due); dead letters "
            f"{st.dead_letters}" + (" [interrupted]" if interrupted else "")
        )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from events.producer import LabelOutbox
    from events.replay import ColumnMapping, replay_file

    mapping = ColumnMapping.from_args(args)
    report = replay_file(
        Path(args.file),
        mapping,
        speed=args.speed,
        topic=args.topic,
        labels_topic=args.labels_topic,
        dead_letter_topic=args.dead_letter_topic,
        label_delay_days=args.label_delay_days,
        progress=not args.quiet,
        outbox=LabelOutbox.default() if args.outbox is None else LabelOutbox(Path(args.outbox)),
        chunk_rows=args.chunk_rows,
    )
    for line, reason in report.bad_rows[:20]:
        print(f"{args.file}:{line}: {reason} -> dead-letter topic", file=sys.stderr)
    if len(report.bad_rows) > 20:
        print(f"... and {len(report.bad_rows) - 20} more bad rows (all dead-lettered)", file=sys.stderr)
    if args.json:
        print(json.dumps(report.summary()))
    else:
        s = report.summary()
        print(
            f"replayed {s['rows']} rows from {args.file}: {s['delivered']} events -> '{s['topic']}', "
            f"{s['dead_lettered']} bad rows -> '{s['dead_letter_topic']}', {s['labels']} labels -> "
            f"'{s['labels_topic']}' in {s['seconds']} s ({s['rows_per_s']} rows/s, "
            + (
                "in time order, sent while read)"
                if s["in_order"]
                else f"sorted via {s['spilled_runs']} spilled runs)"
            )
        )
    return 0


def _topic(text: str) -> str:
    from events.producer import topic_name_error

    problem = topic_name_error(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _add_topic_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--topic", type=_topic, help="transactions topic (default: settings, ECOM_TOPIC_TRANSACTIONS)"
    )
    p.add_argument(
        "--labels-topic", type=_topic, help="chargebacks topic (default: settings, ECOM_TOPIC_LABELS)"
    )
    p.add_argument(
        "--dead-letter-topic",
        type=_topic,
        help="dead-letter topic (default: settings, ECOM_TOPIC_DEAD_LETTER)",
    )
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this room's sub-commands to the `ecom` parser."""
    g = subparsers.add_parser(
        "generate",
        help="simulate the shop into Kafka (history with --days, else live)",
        description="Simulate the shop into Kafka. With --days: the history clock (past timestamps, "
        "as fast as possible). Without: the live clock (timestamps now, paced by --rate; 0 = unpaced).",
    )
    g.add_argument("--days", type=_positive_float, help="history clock: simulate this many past days")
    g.add_argument(
        "--start", type=_start, help="history start (ISO date; default: today 00:00 UTC minus --days)"
    )
    g.add_argument(
        "--rate", type=_non_negative_float, help="live clock: events/s (default 2000; 0 = unpaced)"
    )
    g.add_argument("--duration", type=_positive_float, help="live clock: stop after this many seconds")
    g.add_argument("--events", type=_positive_int, help="stop after exactly this many events")
    g.add_argument("--seed", type=int, help="random seed (default: the remembered shop's, initially 7)")
    g.add_argument("--customers", type=_positive_int, help="number of customers (default: remembered, 2000)")
    g.add_argument("--products", type=_positive_int, help="catalog size (default: remembered, 300)")
    g.add_argument("--merchants", type=_positive_int, help="number of merchants (default: remembered, 50)")
    g.add_argument(
        "--fraud-rate",
        type=_non_negative_float,
        default=1.0,
        help="multiplier on the fraud incident rates (default 1: ~1%% of transactions)",
    )
    g.add_argument(
        "--validate",
        choices=["sample", "all", "none"],
        default="sample",
        help="contract check at the edge: every event, 1 in ~1000 (default), or none",
    )
    g.add_argument(
        "--tail-days",
        type=_positive_float,
        help="history clock: the last N days of the history are its tail (see --part)",
    )
    g.add_argument(
        "--part",
        choices=["all", "head", "tail"],
        default="all",
        help="history clock: send all of it, only the head (before the tail) or only the tail; with --rate "
        "the tail is paced, arriving as if live with each customer's real rhythm (make demo does this)",
    )
    g.add_argument("--no-reference", action="store_true", help="do not upsert reference data into Postgres")
    g.add_argument("--shop-file", help="where the shop of the last run is remembered (default: state folder)")
    g.add_argument("--outbox", help="file of chargebacks not yet due (default: under the state folder)")
    _add_topic_flags(g)
    g.set_defaults(func=_generate)

    r = subparsers.add_parser(
        "replay",
        help="replay a CSV/Parquet of real transactions into Kafka",
        description="Replay a CSV or Parquet file of transactions. Map its columns with flags or --mapping "
        "YAML (keys: customer, merchant, terminal, amount, timestamp, product, quantity, label, "
        "transaction_id, currency, payment_method, channel, device_id, device_type, ip_address, ip_country, "
        "ip_city, ip_lat, ip_lon, plus 'defaults' and 'timezone'). Rows that do not fit the contract are "
        "reported with their line numbers and sent to the dead-letter topic.",
    )
    r.add_argument("file", help="CSV or Parquet file")
    r.add_argument("--mapping", help="YAML file mapping contract fields to columns")
    for field_name in (
        "customer",
        "merchant",
        "terminal",
        "amount",
        "timestamp",
        "product",
        "quantity",
        "label",
        "transaction-id",
        "currency",
        "payment-method",
        "channel",
        "device-id",
    ):
        r.add_argument(
            f"--{field_name}-col",
            dest=f"{field_name.replace('-', '_')}_col",
            help=f"column holding {field_name.replace('-', ' ')}",
        )
    r.add_argument(
        "--currency", dest="default_currency", help="currency when no column maps it (default USD)"
    )
    r.add_argument("--timezone", help="zone of naive timestamps (default UTC)")
    r.add_argument("--outbox", help="file of chargebacks not yet due (default: under the state folder)")
    r.add_argument(
        "--speed",
        type=_non_negative_float,
        default=0.0,
        help="0 = full speed (default); X = replay X times faster than the recorded time gaps",
    )
    r.add_argument(
        "--label-delay-days",
        type=_non_negative_float,
        default=30.0,
        help="chargeback reported_at = event time + this many days (default 30)",
    )
    r.add_argument(
        "--chunk-rows",
        type=_positive_int,
        default=250_000,
        help="memory budget: rows per sorted run when the file is not in time order (default 250000; "
        "runs are spilled under the state folder and merged)",
    )
    _add_topic_flags(r)
    r.set_defaults(func=_replay)
