"""`ecom bench soak`: the whole platform for N minutes at a steady rate, with a crash, a broker restart and a
Postgres restart on the way; does it stay flat and exact?

One run (issue 22, items 3 and 4):
1. a fresh topic (and an empty labels topic); `ecom stream` and `ecom land --continuous` start on it as
   subprocesses in their own sessions (the processes a deployment runs); a warm-up of a few hundred events
   under their own ids is committed before the clock starts (the first batch starts the Python workers);
2. a producer process replays the simulator's history at `rate` events/s for `minutes` (ids under a
   run-unique prefix); meanwhile, every few seconds: the resident memory of every service's process tree
   (the stack's services through `stack.services`, the stream, the landing, a running batch), the number of
   Dagster processes, the load average; every `--batch-every` seconds the batch layer (`ecom batch`, the
   Dagster `batch_refresh` job, skipped while the previous one runs); once a minute every dashboard card's
   SQL as the read-only dashboards role (`dashboards.check_sql`);
3. the faults, each once, spread between the end of the second minute and 150 s before the last one:
   `kill -9` of the stream's process group (restarted at once), the broker stopped and started, Postgres
   stopped (`pg_ctl -m fast`) and started, both through the stack's own service classes. A stream or
   landing that exits on its own (e.g. a context refresh during the Postgres outage) is restarted and the
   exit recorded;
4. after the producer ends, until every event is in `speed.scored_transactions` and `master.transactions`
   (or nothing moves for `--drain-timeout` s): count and count distinct of the run's ids in both tables
   against the events in the topic (lost / duplicated); produce-to-commit latency of every row, p50/p95/p99
   per minute of producing (by produce time); RSS per service per minute (median of the samples).

Exit 1 with a one-line reason when an event is lost or duplicated, a fault did not recover (no commit
after it), or the p95 latency or the platform's memory grew by more than 20 % from the second minute to
the last. The faults restart the configured stack's Kafka and Postgres: run it on a stack of its own
(another clone with its own `.env` ports), never on a shared one, or pass `--no-faults`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.harness import (
    create_topic,
    delete_topics,
    ecom_cmd,
    kill9,
    machine_info,
    produce_live,
    start,
    stop,
    tree_processes,
)
from kernel.errors import EcomError
from kernel.settings import Settings, get_settings
from kernel.stats import median, percentiles

FAULTS = ("kill -9 stream", "broker restart", "postgres restart")
GROWTH_LIMIT = 0.20  # p95 or memory: last minute vs the second, as a fraction
SAMPLE_S = 5.0
RECOVERY_S = 150.0  # room left between the last fault and the last minute
WARMUP_EVENTS = 300
# the platform's long-running processes: their summed memory is the one the growth check watches (a batch
# run comes and goes every two minutes and is reported on its own)
LONG_RUNNING = ("postgres", "kafka", "mlflow", "dagster-code-server", "dagster-webserver", "dagster-daemon")


# ---------------------------------------------------------------------------------------------------------
# pure logic: the schedule, per-minute figures, the verdict
# ---------------------------------------------------------------------------------------------------------


def fault_schedule(
    minutes: int, faults: Iterable[str] = FAULTS, recovery_s: float = RECOVERY_S
) -> list[tuple[float, str]]:
    """(second of the run, fault) for each fault, evenly spaced strictly inside the window from the end of
    the second minute to `recovery_s` before the last one: the second minute is the baseline and the last
    one is the verdict, so neither may hold an outage or its backlog (a restarted stream takes 1-2 min to
    commit again on the shared 2-core box). Too short a run for that is an EcomError."""
    faults = list(faults)
    if not faults:
        return []
    first, last = 120.0, (minutes - 1) * 60.0 - recovery_s
    if last <= first:
        shortest = int((first + recovery_s) // 60) + 2
        raise EcomError(
            f"--minutes {minutes}: the faults need at least {shortest} minutes (or pass --no-faults)"
        )
    step = (last - first) / (len(faults) + 1)
    return [(round(first + step * (i + 1), 1), name) for i, name in enumerate(faults)]


def periodic(seconds: float, every_s: float) -> list[float]:
    """The moments 0, every_s, 2 * every_s, ... before `seconds` (the batch refreshes)."""
    if every_s <= 0:
        return []
    out, t = [], 0.0
    while t < seconds:
        out.append(t)
        t += every_s
    return out


def minute_of(t: float, t0: float) -> int:
    """1-based minute of the run a moment falls in (minute 1 = the first 60 s)."""
    return int((t - t0) // 60) + 1


def by_minute(samples: Iterable[tuple[float, Any]], t0: float, minutes: int) -> dict[int, list[Any]]:
    """Group (time, value) samples into minutes 1..`minutes` (samples outside the run are left out)."""
    out: dict[int, list[Any]] = {m: [] for m in range(1, minutes + 1)}
    for t, value in samples:
        m = minute_of(t, t0)
        if 1 <= m <= minutes:
            out[m].append(value)
    return out


def latency_per_minute(rows: Iterable[tuple[float, float]], t0: float, minutes: int) -> list[dict[str, Any]]:
    """rows: (produce time, produce-to-commit latency in ms) -> per minute of producing: rows, p50/p95/p99."""
    grouped = by_minute(rows, t0, minutes)
    return [{"minute": m, "rows": len(v), **percentiles(v)} for m, v in grouped.items()]


def rss_per_minute(
    samples: Iterable[tuple[float, dict[str, float]]], t0: float, minutes: int
) -> list[dict[str, Any]]:
    """samples: (time, {service: MB}) -> per minute: the median MB of each service over the minute's samples
    (a service missing from a sample, e.g. a batch between runs, is not counted as 0) and `platform_mb`,
    the sum over the long-running services (LONG_RUNNING, the stream and the landing)."""
    out = []
    for m, snaps in by_minute(samples, t0, minutes).items():
        per: dict[str, list[float]] = defaultdict(list)
        for snap in snaps:
            for name, mb in snap.items():
                per[name].append(mb)
        services = {name: round(median(v), 1) for name, v in sorted(per.items())}
        platform = sum(mb for name, mb in services.items() if name in (*LONG_RUNNING, "stream", "landing"))
        out.append(
            {"minute": m, "samples": len(snaps), "services_mb": services, "platform_mb": round(platform, 1)}
        )
    return out


def count_per_minute(samples: Iterable[tuple[float, int]], t0: float, minutes: int) -> list[dict[str, Any]]:
    """samples: (time, count) -> per minute: min and max of the count (e.g. Dagster processes)."""
    return [
        {"minute": m, "min": min(v) if v else None, "max": max(v) if v else None}
        for m, v in by_minute(samples, t0, minutes).items()
    ]


def committed_per_minute(
    samples: Iterable[tuple[float, int, int]], t0: float, minutes: int
) -> list[dict[str, Any]]:
    """samples: (time, rows the stream committed, rows the landing committed), cumulative -> per minute of
    producing: each query's rows/s over the minute (from the last sample before the minute to the last one
    in it; None without two samples). While the producer is ahead of a query, its figure is what that query
    sustains inside the platform (the landing, the batch, the dashboards and the producer on the same cores),
    which `--rate` should be half of."""
    ordered = sorted(samples)
    out = []
    for m in range(1, minutes + 1):
        start, end = t0 + 60.0 * (m - 1), t0 + 60.0 * m
        before = [s for s in ordered if s[0] <= start] or [s for s in ordered if s[0] <= end][:1]
        inside = [s for s in ordered if start < s[0] <= end]
        row: dict[str, Any] = {"minute": m, "stream_rows_per_s": None, "landing_rows_per_s": None}
        if before and inside and inside[-1][0] > before[-1][0]:
            a, b = before[-1], inside[-1]
            dt = b[0] - a[0]
            row["stream_rows_per_s"] = round((b[1] - a[1]) / dt, 1)
            row["landing_rows_per_s"] = round((b[2] - a[2]) / dt, 1)
        out.append(row)
    return out


def growth(first: float | None, last: float | None) -> float | None:
    """Relative growth from `first` to `last` (0.25 = +25 %); None when either is missing or first is 0."""
    if first is None or last is None or first <= 0:
        return None
    return (last - first) / first


def verdict(
    latency: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    lost: int,
    duplicated: int,
    faults: list[dict[str, Any]],
    limit: float = GROWTH_LIMIT,
) -> str | None:
    """None when the soak passed, else the one-line reason it failed (every reason found, `; `-joined).

    Fails on any lost or duplicated event, a fault after which nothing was committed again, and p95 latency
    or platform memory growing by more than `limit` from the second minute to the last."""
    reasons = []
    if lost or duplicated:
        reasons.append(f"{lost} events lost, {duplicated} duplicated")
    for f in faults:
        if not f.get("recovered"):
            reasons.append(f"no commit after the {f['fault']} at {f['at_s']:.0f} s")
    if len(latency) >= 2 and len(memory) >= 2:
        p95 = growth(latency[1]["p95"], latency[-1]["p95"])
        if p95 is None:
            reasons.append("no latency figure for the second or the last minute")
        elif p95 > limit:
            reasons.append(
                f"p95 latency grew {p95:+.0%} from minute 2 ({latency[1]['p95']:.0f} ms) to minute "
                f"{latency[-1]['minute']} ({latency[-1]['p95']:.0f} ms), more than {limit:.0%}"
            )
        mem = growth(memory[1]["platform_mb"], memory[-1]["platform_mb"])
        if mem is not None and mem > limit:
            reasons.append(
                f"memory grew {mem:+.0%} from minute 2 ({memory[1]['platform_mb']:.0f} MB) to minute "
                f"{memory[-1]['minute']} ({memory[-1]['platform_mb']:.0f} MB), more than {limit:.0%}"
            )
    return "; ".join(reasons) or None


def shortfall(in_topic: int, target: float, tolerance: float = 0.05) -> str | None:
    """The producer's part: fewer events in the topic than `rate x seconds` (minus `tolerance`) means the run
    did not offer the load it claims (a slow producer on a busy box, or one that failed)."""
    if in_topic >= target * (1 - tolerance):
        return None
    return f"only {in_topic} events reached the topic of {target:.0f} planned ({in_topic / target:.0%})"


def accounting(in_topic: int, speed: tuple[int, int], master: tuple[int, int]) -> dict[str, int]:
    """Events in the topic vs (count, count distinct) of their ids in the speed and master tables."""
    return {
        "in_topic": in_topic,
        "speed_rows": speed[0],
        "speed_distinct": speed[1],
        "master_rows": master[0],
        "master_distinct": master[1],
        "lost": max(in_topic - speed[1], 0) + max(in_topic - master[1], 0),
        "duplicated": (speed[0] - speed[1]) + (master[0] - master[1]),
    }


# ---------------------------------------------------------------------------------------------------------
# adapters: the platform's processes, the services, the database
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Supervised:
    """A platform command kept running: restarted when it exits, each exit recorded."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    exits: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> None:
        self.proc = start(self.argv, self.log)

    def keep_alive(self, t0: float) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.exits.append({"at_s": round(time.time() - t0, 1), "returncode": self.proc.returncode})
            self.start()


def _progress(settings: Settings, query_names: list[str]) -> dict[str, int]:
    """Rows each query's committed batches wrote (speed.batch_commits: both sinks mark there)."""
    from kernel.db import connect

    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT query_name, coalesce(sum(rows_written), 0) FROM speed.batch_commits "
            "WHERE query_name = ANY(%s) GROUP BY query_name",
            (query_names,),
        ).fetchall()
    return {name: int(n) for name, n in rows}


def _rows(settings: Settings, table: str, prefix: str) -> tuple[int, int]:
    from kernel.db import connect

    with connect(settings) as conn:
        return conn.execute(
            f"SELECT count(*), count(DISTINCT transaction_id) FROM {table} WHERE transaction_id LIKE %s",  # noqa: S608 (fixed table names)
            (prefix + "%",),
        ).fetchone()


def _latencies(settings: Settings, prefix: str) -> list[tuple[float, float]]:
    from kernel.db import connect

    with connect(settings) as conn:
        return conn.execute(
            "SELECT extract(epoch FROM kafka_timestamp)::float8, "
            "extract(epoch FROM committed_at - kafka_timestamp)::float8 * 1000 "
            "FROM speed.scored_transactions WHERE transaction_id LIKE %s",
            (prefix + "%",),
        ).fetchall()


def _in_topic(settings: Settings, topic: str) -> int:
    """Records in the topic (sum of the partitions' end offsets): what the broker acknowledged."""
    from kernel.kafka import end_offsets

    return int(sum(end_offsets(settings.kafka.bootstrap_servers, [topic])[topic].values()))


def _tree_memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process tree in MB. PSS splits each shared page among the processes that map it:
    every Postgres backend maps the part of shared_buffers it touched, so the backends' RSS sum counts
    those pages once per backend (it swung 440 -> 3,200 MB with the connections in the soaks), PSS once."""
    rss = pss = 0
    for p in tree_processes(pid):
        try:
            m = p.memory_full_info()
        except psutil.Error:
            continue
        rss, pss = rss + m.rss, pss + m.pss
    return round(rss / 2**20, 1), round(pss / 2**20, 1)


def _service_memory(
    settings: Settings, procs: dict[str, subprocess.Popen | None]
) -> tuple[dict[str, float], dict[str, float]]:
    """({service: RSS MB}, {service: PSS MB}) of the stack's services and the platform's commands."""
    from stack import services as stack

    pids = {svc.name: svc.pid() for svc in stack.services(settings)}
    pids = {name: pid for name, pid in pids.items() if pid and stack.pid_alive(pid)}
    pids |= {name: proc.pid for name, proc in procs.items() if proc is not None and proc.poll() is None}
    rss, pss = {}, {}
    for name, pid in pids.items():
        rss[name], pss[name] = _tree_memory_mb(pid)
    return rss, pss


def _dagster_processes(settings: Settings) -> int:
    """Processes in the trees of the stack's Dagster services (webserver, daemon, code server and what they
    spawn): flat during the soak if no code server leaks."""
    from stack import services as stack

    pids = set()
    for svc in stack.services(settings):
        pid = svc.pid()
        if svc.name.startswith("dagster") and pid and svc.running():
            pids |= {p.pid for p in tree_processes(pid)}
    return len(pids)


def _dashboards(settings: Settings) -> dict[str, Any]:
    """Every card of every dashboard spec, once, as the read-only dashboards role."""
    from dashboards.check_sql import check_specs
    from dashboards.spec import load_specs
    from kernel.db import connect

    started = time.monotonic()
    try:
        specs = load_specs(settings.metabase.specs_dir)
        with connect(settings, role="dashboards") as conn:
            checks = check_specs(settings, specs, conn=conn)
    except Exception as exc:  # Postgres down or restarting: the finding, not a crash of the soak
        return {"ok": 0, "failed": None, "error": str(exc).splitlines()[0][:200]}
    return {
        "ok": sum(c.ok for c in checks),
        "failed": sum(not c.ok for c in checks),
        "ms": round((time.monotonic() - started) * 1000),
        "errors": [c.line() for c in checks if not c.ok][:3],
    }


def _read_dashboards(settings: Settings, elapsed: float, into: list[dict[str, Any]]) -> None:
    into.append({"at_s": round(elapsed, 1), **_dashboards(settings)})


def _restart_service(settings: Settings, name: str, down_s: float) -> dict[str, Any]:
    """Stop one of the stack's services, keep it down `down_s`, start it, wait until it is healthy."""
    from stack import services as stack

    svc = next(s for s in stack.services(settings) if s.name == name)
    t = time.monotonic()
    svc.stop()
    time.sleep(down_s)
    svc.start()
    deadline = time.monotonic() + 180
    while not svc.healthy() and time.monotonic() < deadline:
        time.sleep(0.5)
    healthy = svc.healthy()
    if healthy and name == "postgres":
        svc.after_healthy()
    return {"down_s": round(time.monotonic() - t, 1), "healthy_again": healthy}


class Batches:
    """`ecom batch` every few minutes in the background; a run still going when the next is due skips it."""

    def __init__(self, log: Path) -> None:
        self.log, self.proc, self.started, self.runs = log, None, 0.0, []

    def poll(self, t0: float, due: bool) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.runs.append(
                {
                    "at_s": round(self.started - t0, 1),
                    "wall_s": round(time.time() - self.started, 1),
                    "returncode": self.proc.returncode,
                }
            )
            self.proc = None
        if due:
            if self.proc is None:
                self.proc, self.started = start(ecom_cmd("batch"), self.log), time.time()
            else:
                self.runs.append({"at_s": round(time.time() - t0, 1), "skipped": "previous run still going"})

    def finish(self, t0: float, timeout: float) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop(self.proc)
            self.poll(t0, due=False)


def run_soak(
    settings: Settings,
    minutes: int,
    rate: float,
    faults: bool = True,
    batch_every_s: float = 120.0,
    customers: int = 20_000,
    fault_down_s: float = 5.0,
    drain_timeout_s: float = 600.0,
    model_name: str | None = None,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    seconds = minutes * 60.0
    schedule = fault_schedule(minutes) if faults else []
    tag = uuid.uuid4().hex[:8]
    topic, labels, prefix = f"soak_{tag}", f"soak_{tag}_labels", f"s{tag}"
    q_speed, q_land = f"soak_{tag}", f"soak_{tag}_land"
    create_topic(settings, topic)
    create_topic(settings, labels, 1)
    work = Path(tempfile.mkdtemp(prefix=f"soak_{tag}_", dir=settings.spark.checkpoint_dir.parent))
    plog = work / "platform.log"
    model = ["--model-name", model_name] if model_name else []
    stream = Supervised(
        "stream",
        ecom_cmd("stream", "--topic", topic, "--checkpoint", str(work / "speed"), "--query-name", q_speed,
                 "--trigger", "1 second", *model),
        plog,
    )  # fmt: skip
    landing = Supervised(
        "landing",
        ecom_cmd("land", "--topic", topic, "--labels-topic", labels, "--checkpoint", str(work / "land"),
                 "--query-name", q_land, "--continuous", "--trigger", "5 seconds"),
        plog,
    )  # fmt: skip
    log(f"[soak] topic {topic}, logs {plog}; starting the stream and the landing")
    machine_before = machine_info()
    stream.start()
    landing.start()
    batches = Batches(work / "batch.log")
    try:
        warm = _warm_up(settings, topic, f"w{tag}", customers, stream, landing, q_speed, q_land)
        log(f"[soak] warm-up committed ({warm} events); producing {rate:g} events/s for {minutes} min")
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        producer = ctx.Process(
            target=_produce, args=(topic, rate, seconds, prefix, customers, out), daemon=True
        )
        t0 = time.time()
        producer.start()
        rss, pss, dagster, load, progress, dashboards, done_faults = [], [], [], [], [], [], []
        pending_faults = list(schedule)
        pending_batches = periodic(seconds, batch_every_s)
        next_dash, reader = 30.0, None
        produced: dict[str, Any] | None = None
        last_progress, last_change = -1, time.time()
        while True:
            now = time.time()
            elapsed = now - t0
            for sup in (stream, landing):
                sup.keep_alive(t0)
            due = bool(pending_batches) and elapsed >= pending_batches[0]
            if due:
                pending_batches.pop(0)
            batches.poll(t0, due)
            procs = {"stream": stream.proc, "landing": landing.proc, "batch": batches.proc}
            rss_mb, pss_mb = _service_memory(settings, procs)
            rss.append((now, rss_mb))
            pss.append((now, pss_mb))
            dagster.append((now, _dagster_processes(settings)))
            load.append((now, os.getloadavg()[0]))
            try:
                done = _progress(settings, [q_speed, q_land])
            except Exception:  # Postgres restarting
                done = None
            if done is not None:
                progress.append((now, done.get(q_speed, 0), done.get(q_land, 0)))
                total = done.get(q_speed, 0) + done.get(q_land, 0)
                if total != last_progress:
                    last_progress, last_change = total, now
            if elapsed >= next_dash and elapsed < seconds:
                # in a thread: on a loaded box the 36 cards took 20-40 s, which starved the 5 s sampling
                if reader is None or not reader.is_alive():
                    reader = threading.Thread(target=_read_dashboards, args=(settings, elapsed, dashboards))
                    reader.start()
                else:
                    dashboards.append({"at_s": round(elapsed, 1), "skipped": "previous reading still going"})
                next_dash += 60.0
            if pending_faults and elapsed >= pending_faults[0][0]:
                at, name = pending_faults.pop(0)
                log(f"[soak] {elapsed:.0f} s: {name}")
                done_faults.append(_inject(settings, name, stream, fault_down_s, t0))
            if produced is None and not out.empty():
                produced = out.get()
                log(f"[soak] producer done: {produced}; draining")
            if produced is not None and done is not None and elapsed >= seconds:
                if _drained(settings, topic, prefix, warm):
                    break
                if now - last_change > drain_timeout_s:
                    log(f"[soak] nothing committed for {drain_timeout_s:.0f} s: stopping the drain")
                    break
            if produced is None and not producer.is_alive() and out.empty():
                raise EcomError(f"the producer process died (exit {producer.exitcode}); see {plog}")
            time.sleep(max(0.0, SAMPLE_S - (time.time() - now)))
        drained_s = time.time() - t0 - seconds
    finally:
        for sup in (stream, landing):
            if sup.proc is not None:
                stop(sup.proc)
    batches.finish(t0, timeout=600)
    if reader is not None:
        reader.join(timeout=120)
    in_topic = _in_topic(settings, topic) - warm
    counts = accounting(in_topic, _rows(settings, "speed.scored_transactions", prefix),
                        _rows(settings, "master.transactions", prefix))  # fmt: skip
    for f in done_faults:  # recovered: something was committed by the stream after the fault's end
        f["recovered"] = any(t > t0 + f["end_s"] and s > f["speed_rows_before"] for t, s, _ in progress)
        recovered_at = next(
            (t for t, s, _ in progress if t > t0 + f["end_s"] and s > f["speed_rows_before"]), None
        )
        f["first_commit_after_s"] = round(recovered_at - t0 - f["end_s"], 1) if recovered_at else None
    latency = latency_per_minute(_latencies(settings, prefix), t0, minutes)
    memory = rss_per_minute(rss, t0, minutes)
    reason = verdict(latency, memory, counts["lost"], counts["duplicated"], done_faults)
    short = shortfall(in_topic, rate * seconds)
    if short:
        reason = f"{short}; {reason}" if reason else short
    try:
        delete_topics(settings, [topic, labels])
    except Exception:  # the figures matter more than the clean-up
        pass
    return {
        "passed": reason is None,
        "reason": reason,
        "produced": produced["sent"] if produced else None,
        "producer_error": produced.get("error") if produced else None,
        "producer_rounds": produced.get("rounds") if produced else None,
        "offered_events_per_s": (
            produced["sent"] / max(1e-9, produced["last_produce"] - produced["first_produce"])
            if produced and produced.get("sent")
            else None
        ),
        **counts,
        "drain_s": round(drained_s, 1),
        "latency_ms_per_minute": latency,
        "rss_mb_per_minute": memory,
        # the same per minute in PSS (shared pages split among the processes mapping them): not the
        # verdict's figure, the one that tells Postgres' shared buffers counted once per backend apart
        "pss_mb_per_minute": rss_per_minute(pss, t0, minutes),
        "dagster_processes_per_minute": count_per_minute(dagster, t0, minutes),
        # rows/s each query committed per minute: with the producer ahead, the rate it sustains in the platform
        "committed_per_minute": committed_per_minute(progress, t0, minutes),
        "load_avg_1m_per_minute": [
            {"minute": m, "max": round(max(v), 2) if v else None}
            for m, v in by_minute(load, t0, minutes).items()
        ],
        "faults": done_faults,
        "restarts": {"stream": stream.exits, "landing": landing.exits},
        "batches": batches.runs,
        "dashboards": dashboards,
        "settings": {
            "minutes": minutes,
            "rate": rate,
            "faults": [name for _, name in schedule],
            "fault_down_s": fault_down_s,
            "batch_every_s": batch_every_s,
            "customers": customers,
            "warmup_events": warm,
            "topic": topic,
            "partitions": settings.kafka.partitions,
            "stream_trigger": "1 second",
            "landing_trigger": "5 seconds",
            "growth_limit": GROWTH_LIMIT,
            "state_dir": str(settings.state_dir),
        },
        "machine": {**machine_before, "load_avg_1m_end": round(os.getloadavg()[0], 2)},
        "logs": str(work),
    }


def _produce(topic: str, rate: float, seconds: float, prefix: str, customers: int, out) -> None:
    """The producer process: `produce_live` (the simulator's history at `rate`) for `seconds`, in rounds
    under namespaces `<prefix>0`, `<prefix>1`, ... because one simulated history can run out before the
    time does (20,000 customers gave 588k events, 3.6 min at 2,700 events/s). Always reports, also when a
    round fails (e.g. records the broker did not acknowledge while it restarted): the soak counts what is in
    the topic, so it can go on."""
    import queue

    end = time.time() + seconds
    sent, first, rounds, error = 0, None, 0, None
    while time.time() < end - 1 and error is None:
        q: queue.Queue = queue.Queue()
        try:
            produce_live(topic, rate, end - time.time(), f"{prefix}{rounds}", customers, q)
        except Exception as exc:
            error = str(exc).splitlines()[0][:300]
            break
        report = q.get()
        sent += report["sent"]
        first = first or report["first_produce"]
        rounds += 1
    out.put(
        {"sent": sent, "rounds": rounds, "error": error, "first_produce": first, "last_produce": time.time()}
    )


def _warm_up(settings, topic, namespace, customers, stream, landing, q_speed, q_land) -> int:
    """A few hundred events under their own ids, committed by both queries before the clock starts."""
    import queue

    q: queue.Queue = queue.Queue()
    produce_live(topic, float(WARMUP_EVENTS), 1.0, namespace, customers, q)
    sent = q.get()["sent"]
    deadline = time.time() + 900
    while time.time() < deadline:
        for sup in (stream, landing):
            if sup.proc.poll() is not None:
                raise EcomError(f"`ecom {sup.argv[3]}` exited during the warm-up; see {sup.log}")
        done = _progress(settings, [q_speed, q_land])
        if done.get(q_speed, 0) >= sent and done.get(q_land, 0) >= sent:
            return sent
        time.sleep(1.0)
    raise EcomError(f"the warm-up was not committed within 900 s; see {stream.log}")


def _drained(settings: Settings, topic: str, prefix: str, warm: int) -> bool:
    in_topic = _in_topic(settings, topic) - warm
    return _rows(settings, "speed.scored_transactions", prefix)[1] >= in_topic and (
        _rows(settings, "master.transactions", prefix)[1] >= in_topic
    )


def _inject(settings: Settings, name: str, stream: Supervised, down_s: float, t0: float) -> dict[str, Any]:
    try:
        before = _progress(settings, [stream.argv[stream.argv.index("--query-name") + 1]])
        speed_before = sum(before.values())
    except Exception:
        speed_before = 0
    started = time.time()
    if name == "kill -9 stream":
        kill9(stream.proc)
        stream.start()  # what a supervisor (systemd, k8s) does
        detail: dict[str, Any] = {"restarted": True}
    elif name == "broker restart":
        detail = _restart_service(settings, "kafka", down_s)
    elif name == "postgres restart":
        detail = _restart_service(settings, "postgres", down_s)
    else:
        raise EcomError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    return {
        "fault": name,
        "at_s": round(started - t0, 1),
        "end_s": round(time.time() - t0, 1),
        "speed_rows_before": speed_before,
        **detail,
    }


# ---------------------------------------------------------------------------------------------------------
# the plot and the command
# ---------------------------------------------------------------------------------------------------------


def plot(result: dict[str, Any], path: Path) -> None:
    """Latency p50/p95/p99 and memory per service per minute, the faults as vertical lines (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = result["latency_ms_per_minute"]
    mem = result["rss_mb_per_minute"]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 9), sharex=True, height_ratios=[3, 3, 1])
    minutes = [r["minute"] for r in lat]
    for q in ("p50", "p95", "p99"):
        ax1.plot(minutes, [(r[q] or 0) / 1000 for r in lat], marker="o", label=q)
    ax1.set_ylabel("produce -> commit latency (s)")
    ax1.legend(loc="upper left")
    names = sorted({n for r in mem for n in r["services_mb"]})
    for n in names:
        ax2.plot([r["minute"] for r in mem], [r["services_mb"].get(n) for r in mem], marker=".", label=n)
    ax2.plot([r["minute"] for r in mem], [r["platform_mb"] for r in mem], "k--", label="platform (sum)")
    if result.get("pss_mb_per_minute"):
        pss = result["pss_mb_per_minute"]
        ax2.plot(
            [r["minute"] for r in pss], [r["platform_mb"] for r in pss], "k:", label="platform PSS (sum)"
        )
    ax2.set_ylabel("RSS (MB)")
    ax2.legend(loc="upper left", fontsize=7, ncol=3)
    dag = result["dagster_processes_per_minute"]
    ax3.step(
        [r["minute"] for r in dag], [r["max"] for r in dag], where="mid", label="Dagster processes (max)"
    )
    ax3.set_ylabel("processes")
    ax3.set_xlabel("minute of the run")
    ax3.legend(loc="lower left", fontsize=7)
    for f in result["faults"]:
        for ax in (ax1, ax2, ax3):
            ax.axvline(f["at_s"] / 60 + 0.5, color="red", alpha=0.4)  # minute k is plotted at x = k
        ax1.annotate(f["fault"], (f["at_s"] / 60 + 0.5, ax1.get_ylim()[1]), rotation=90, va="top", fontsize=7)
    s, m = result["settings"], result["machine"]
    peak = max((r["max"] for r in result["load_avg_1m_per_minute"] if r["max"] is not None), default=None)
    fig.suptitle(
        f"ecom bench soak: {s['minutes']} min at {s['rate']:g} events/s, lost {result['lost']}, duplicated "
        f"{result['duplicated']}; load average {m['load_avg_1m']} at start, peak {peak} on {m['cpu_count']} "
        "cores",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        f"soak {result['settings']['minutes']} min at {result['settings']['rate']:g} events/s: "
        f"{result['in_topic']} events in the topic, speed {result['speed_rows']}/{result['speed_distinct']} "
        f"(rows/distinct), master {result['master_rows']}/{result['master_distinct']}; lost {result['lost']}, "
        f"duplicated {result['duplicated']}; drained {result['drain_s']} s after producing ended"
    ]
    pss = result.get("pss_mb_per_minute") or [{}] * len(result["rss_mb_per_minute"])
    committed = result.get("committed_per_minute") or [{}] * len(result["rss_mb_per_minute"])
    for lat, mem, mem_pss, dag, load, done in zip(
        result["latency_ms_per_minute"],
        result["rss_mb_per_minute"],
        pss,
        result["dagster_processes_per_minute"],
        result["load_avg_1m_per_minute"],
        committed,
        strict=True,
    ):
        p = {q: f"{lat[q] / 1000:.1f}" if lat[q] is not None else "-" for q in ("p50", "p95", "p99")}
        lines.append(
            f"  minute {lat['minute']:>2}: latency p50/p95/p99 {p['p50']}/{p['p95']}/{p['p99']} s "
            f"({lat['rows']} rows); platform RSS {mem['platform_mb']:.0f} MB"
            + (f" (PSS {mem_pss['platform_mb']:.0f} MB)" if "platform_mb" in mem_pss else "")
            + "; Dagster processes "
            f"{dag['min']}-{dag['max']}; load {load['max']}"
            + (
                f"; stream committed {done['stream_rows_per_s']:g} rows/s"
                if done.get("stream_rows_per_s") is not None
                else ""
            )
        )
    for f in result["faults"]:
        lines.append(
            f"  fault at {f['at_s']:.0f} s: {f['fault']}; first commit {f['first_commit_after_s']} s after it"
        )
    lines.append("PASSED" if result["passed"] else f"FAILED: {result['reason']}")
    return lines


def _soak(args: argparse.Namespace) -> int:
    if args.minutes < 2 or args.rate <= 0 or args.batch_every < 0:
        raise EcomError("--minutes must be >= 2, --rate > 0 and --batch-every >= 0")
    if not args.no_faults:
        fault_schedule(args.minutes)  # refuse a run too short for the faults before starting anything
    s = get_settings()
    result = run_soak(
        s,
        args.minutes,
        args.rate,
        faults=not args.no_faults,
        batch_every_s=args.batch_every,
        customers=args.customers,
        drain_timeout_s=args.drain_timeout,
        model_name=args.model_name,
    )
    out_dir = s.state_dir / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "soak-latest.json").write_text(json.dumps(result, indent=2, default=str))
    if args.plot:
        plot(result, Path(args.plot))
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print("\n".join(summary_lines(result)))
    if not result["passed"]:
        print(f"soak failed: {result['reason']}", file=sys.stderr)
        return 1
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser(
        "soak",
        help="the whole platform for N minutes at a steady rate with a crash, a broker and a Postgres "
        "restart: latency, memory, lost/duplicated (exit 1 if it grew > 20 %% or lost anything)",
    )
    p.add_argument("--minutes", type=int, default=10, help="minutes of producing (default 10)")
    p.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="events/s (default 1000): half the stream's sustained rate inside the platform, i.e. its "
        "committed rows/s in a --no-faults run offered more than it can take",
    )
    p.add_argument("--batch-every", type=float, default=120.0, help="seconds between batch refreshes (120)")
    p.add_argument("--customers", type=int, default=20_000, help="simulated customers (default 20000)")
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=600.0,
        help="after producing, stop waiting when nothing was committed for this many seconds (600)",
    )
    p.add_argument("--model-name", help="registered model the stream scores with (default: settings)")
    p.add_argument(
        "--no-faults",
        action="store_true",
        help="no kill -9, broker or Postgres restart (the faults restart THIS stack's Kafka and Postgres: "
        "never run them on a shared stack)",
    )
    p.add_argument("--plot", help="write a PNG of latency, memory and Dagster processes per minute here")
    p.add_argument("--json", action="store_true", help="print one JSON object (the report is also written "
                   "to <state_dir>/bench/soak-latest.json)")  # fmt: skip
    p.set_defaults(func=_soak)
