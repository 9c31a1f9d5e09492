"""Repeated `kill -9` of the speed layer and of the batch landing at seeded random moments while events
flow: after a final run to completion, every event is in speed.scored_transactions and in master.transactions
exactly once (count == count distinct == N), and the batch markers account for each row once."""

from __future__ import annotations

import random
import time

import pytest

from tests.reliability.support import (
    PacedProducer,
    batch_accounting,
    ecom_cmd,
    fresh_events,
    kill9,
    master_rows,
    speed_rows,
    start,
    tail,
    wait_for,
)
from tests.streaming.support import create_topic, unique

pytestmark = [pytest.mark.stack, pytest.mark.slow]

N_EVENTS = 6000
RATE = 150  # events/s: the producer is still sending while the first runs are killed
KILLS = 3


def test_repeated_kill_minus_9_loses_and_duplicates_nothing(stack, model_name, tmp_path):
    rng = random.Random(20261126)
    topic, labels = unique("t_rel_kill"), unique("t_rel_kill_labels")
    q_speed, q_land = unique("q_rel_kill"), unique("q_rel_land")
    create_topic(stack, topic, partitions=3)
    create_topic(stack, labels, partitions=1)
    events = fresh_events(N_EVENTS, seed=11, spacing_ms=10)
    ids = [e["transaction_id"] for e in events]
    speed = ecom_cmd(
        "stream",
        "--topic",
        topic,
        "--checkpoint",
        str(tmp_path / "speed"),
        "--query-name",
        q_speed,
        "--model-name",
        model_name,
        "--max-offsets",
        "1000",
        "--trigger",
        "1 second",
    )
    land = ecom_cmd(
        "land",
        "--topic",
        topic,
        "--labels-topic",
        labels,
        "--checkpoint",
        str(tmp_path / "land"),
        "--query-name",
        q_land,
        "--continuous",
        "--trigger",
        "2 seconds",
    )
    log = tmp_path / "stream.log"
    feeder = PacedProducer(stack, topic, events, RATE)
    feeder.start()
    kills = []
    # seeded random moments: one during start-up (JVM, model load, first batch), the others a random few
    # seconds after the run committed something (mid-batch or between batches); a fixed clock would not do,
    # as a start-up takes 40 s on an idle machine and several minutes on the shared one
    moments = rng.sample(["start-up", "running", "running"], KILLS)
    for moment in moments:
        before = speed_rows(ids)[0]
        procs = [start(speed, log), start(land, log)]
        if moment == "start-up":
            time.sleep(rng.uniform(5.0, 40.0))
        else:
            assert wait_for(lambda b=before: speed_rows(ids)[0] > b, timeout=600), tail(log)
            time.sleep(rng.uniform(0.0, 8.0))
        for p in rng.sample(procs, 2):  # which of the two dies first is random too
            assert p.poll() is None, tail(log)
            kill9(p)
            time.sleep(rng.uniform(0.0, 2.0))
        kills.append((moment, speed_rows(ids)[0], master_rows(ids)[0], feeder.sent))
    feeder.join(timeout=300)
    assert feeder.error is None and feeder.sent == N_EVENTS
    # the kills are meaningful: at least one came after some rows were committed and before the end
    assert any(0 < speed < N_EVENTS for _, speed, _, _ in kills), f"no kill hit a run mid-way: {kills}"
    # the final runs to completion (availableNow: process what is in Kafka, then stop)
    final = [
        start([*speed[:-2], "--available-now"], log),
        start([a for a in land if a not in ("--continuous", "--trigger", "2 seconds")], log),
    ]
    for p in final:
        assert p.wait(timeout=300) == 0, tail(log)
    print(f"\nkills (run, speed rows, master rows, produced): {kills}")
    assert speed_rows(ids) == (N_EVENTS, N_EVENTS)
    assert master_rows(ids) == (N_EVENTS, N_EVENTS)
    acc = batch_accounting(q_speed, ids)
    # every scored row was counted by exactly one committed batch (replays after the kills counted nothing)
    assert acc["metrics"] == N_EVENTS and acc["markers"] == N_EVENTS, acc
