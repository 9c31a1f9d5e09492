"""The one small harness every benchmark shares: what machine ran it, benchmark topics, a paced producer,
and platform commands run as subprocesses (started in their own session, killed with -9, their memory).

Figures themselves are summarised with `kernel.stats` (percentiles, median), the same helpers the stream's
own metrics use. The reliability tests use the subprocess helpers too (tests/reliability/support.py).
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from kernel.settings import REPO_ROOT, Settings


def machine_info() -> dict[str, object]:
    """What ran the benchmark, recorded beside every figure."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def create_topic(settings: Settings, name: str, partitions: int | None = None) -> None:
    """A fresh topic (the `transactions` partition count unless told); one line if Kafka is down."""
    from kernel.kafka import create_topics

    k = settings.kafka
    create_topics(
        k.bootstrap_servers, [name], partitions or k.partitions, k.replication_factor, exist_ok=False
    )


def delete_topics(settings: Settings, names: list[str]) -> None:
    """Remove a benchmark's topics when it ends."""
    from kernel.kafka import delete_topics as delete

    delete(settings.kafka.bootstrap_servers, names)


def produce_live(
    bootstrap_topic: str,
    rate: float,
    seconds: float,
    namespace: str,
    n_customers: int,
    out,
    workload: str = "history",
) -> None:
    """Producer process (own process: no GIL sharing): `rate` events/s for `seconds`.

    `history` (default) replays the simulator's history at `rate`: every customer keeps a realistic
    rhythm (a few purchases a month), so features and the alert rate look like production traffic.
    `live` stamps events with the wall clock, which at 1,000 events/s over 20,000 customers means a
    purchase per customer every 20 s: velocity no real customer has, so most events alert (and every
    alert is explained), which measures the simulator's compression more than the speed layer.
    """
    from events.producer import EventProducer, paced
    from events.simulator import ShopSimulator, SimConfig

    target = int(rate * seconds)
    sent = 0
    first = None
    if workload == "live":
        sim = ShopSimulator(SimConfig(seed=11, n_customers=n_customers, days=1, namespace=namespace))
        with EventProducer(topic=bootstrap_topic, validate="none") as producer:
            end = time.time() + seconds
            for events, _labels in sim.live_chunks(rate):
                if first is None:
                    first = time.time()
                sent += producer.send_events(events)
                if time.time() >= end:
                    break
            producer.flush()
        out.put({"sent": sent, "first_produce": first, "last_produce": time.time()})
        return
    probe = ShopSimulator(SimConfig(seed=11, n_customers=n_customers, days=30, namespace=namespace))
    per_day = max(1.0, probe.expected_history_events() / 30)
    days = int(min(3650, max(30, 1.3 * target / per_day + 30)))
    sim = ShopSimulator(SimConfig(seed=11, n_customers=n_customers, days=days, namespace=namespace))
    with EventProducer(topic=bootstrap_topic, validate="none") as producer:
        for records, _labels in paced(sim.history_chunks(max_events=target, as_json=True), rate, tick_s=0.1):
            if first is None:
                first = time.time()
            sent += producer.send_records(records)
        producer.flush()
    out.put({"sent": sent, "first_produce": first, "last_produce": time.time()})


# ---------------------------------------------------------------------------------------------------------
# platform commands as subprocesses (`ecom stream`, `ecom land --continuous`, `ecom batch`)
# ---------------------------------------------------------------------------------------------------------


def ecom_cmd(*args: str) -> list[str]:
    """The argv of `ecom <args>` with this interpreter."""
    return [sys.executable, "-m", "ecom.cli", *args]


def start(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A child in its own session (so kill -9 of the group takes the JVM and Python workers too)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "a") as log:
        return subprocess.Popen(  # noqa: S603 (argv built by the caller)
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env=full_env,
            start_new_session=True,
        )


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group: no shutdown hook runs, exactly like a crash."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def stop(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after `timeout`."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill9(proc)
    except ProcessLookupError:
        pass


def tree_processes(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (JVM + Python workers), in MB."""
    total = 0
    for p in tree_processes(pid):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20
