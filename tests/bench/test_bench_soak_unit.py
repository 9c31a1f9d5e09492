"""Pure pieces of `ecom bench soak`: the fault and batch schedules, per-minute figures, the verdict."""

from __future__ import annotations

import argparse

import pytest

from bench.soak import (
    FAULTS,
    accounting,
    by_minute,
    committed_per_minute,
    count_per_minute,
    fault_schedule,
    growth,
    latency_per_minute,
    periodic,
    register_bench,
    rss_per_minute,
    shortfall,
    summary_lines,
    verdict,
)
from kernel.errors import EcomError

T0 = 1_000_000.0


def test_faults_are_spaced_between_the_second_minute_and_the_last():
    schedule = fault_schedule(10)
    assert [name for _, name in schedule] == list(FAULTS)
    times = [t for t, _ in schedule]
    assert times == sorted(times)
    # baseline minute 2 and verdict minute 10 stay clean, with 150 s to recover before the last minute
    assert all(120 < t < 540 - 150 for t in times)
    assert times == [187.5, 255.0, 322.5]


def test_faults_need_room_to_recover_and_none_means_none():
    with pytest.raises(EcomError, match="at least 6 minutes"):
        fault_schedule(5)
    assert fault_schedule(5, faults=[]) == []
    assert len(fault_schedule(6)) == 3
    assert fault_schedule(4, recovery_s=0) == [
        (135.0, "kill -9 stream"),
        (150.0, "broker restart"),
        (165.0, "postgres restart"),
    ]


def test_batch_refresh_every_two_minutes():
    assert periodic(600, 120) == [0, 120, 240, 360, 480]
    assert periodic(600, 0) == []


def test_samples_are_grouped_by_minute_of_the_run():
    grouped = by_minute(
        [(T0 + 0, "a"), (T0 + 59.9, "b"), (T0 + 60, "c"), (T0 + 200, "x"), (T0 - 1, "y")], T0, 2
    )
    assert grouped == {1: ["a", "b"], 2: ["c"]}


def test_latency_per_minute_uses_the_shared_percentiles():
    rows = [(T0 + i * 0.06, float(i)) for i in range(1000)]  # minute 1: latencies 0..999 ms
    rows += [(T0 + 60 + i * 0.06, 5000.0) for i in range(100)]
    per = latency_per_minute(rows, T0, 3)
    assert [r["rows"] for r in per] == [1000, 100, 0]
    assert per[0]["p50"] == 499.0 and per[0]["p95"] == 949.0 and per[0]["p99"] == 989.0
    assert per[1]["p95"] == 5000.0
    assert per[2]["p95"] is None


def test_rss_per_minute_is_the_median_per_service_and_a_platform_sum():
    samples = [
        (T0 + 1, {"postgres": 100.0, "stream": 1000.0, "batch": 400.0}),
        (T0 + 2, {"postgres": 300.0, "stream": 1200.0}),
        (T0 + 3, {"postgres": 200.0, "stream": 1100.0}),
    ]
    (minute,) = rss_per_minute(samples, T0, 1)
    assert minute["services_mb"] == {"batch": 400.0, "postgres": 200.0, "stream": 1100.0}
    assert minute["platform_mb"] == 1300.0  # the batch comes and goes: not in the platform's sum


def test_dagster_process_count_per_minute():
    per = count_per_minute([(T0 + 1, 5), (T0 + 30, 7), (T0 + 61, 5)], T0, 2)
    assert per == [{"minute": 1, "min": 5, "max": 7}, {"minute": 2, "min": 5, "max": 5}]


def _minutes(p95s, mems):
    lat = [{"minute": i + 1, "p95": p} for i, p in enumerate(p95s)]
    mem = [{"minute": i + 1, "platform_mb": m} for i, m in enumerate(mems)]
    return lat, mem


def test_verdict_passes_a_flat_exact_run_and_ignores_the_first_minute():
    lat, mem = _minutes([9000, 1000, 5000, 1150], [500, 1000, 1500, 1190])
    assert verdict(lat, mem, 0, 0, [{"fault": "broker restart", "at_s": 200, "recovered": True}]) is None


def test_verdict_fails_on_p95_growth_beyond_twenty_percent():
    lat, mem = _minutes([1000, 1000, 1201], [1000, 1000, 1000])
    reason = verdict(lat, mem, 0, 0, [])
    assert reason and reason.startswith("p95 latency grew +20%") and "minute 3" in reason
    assert "\n" not in reason


def test_verdict_fails_on_memory_growth_beyond_twenty_percent():
    lat, mem = _minutes([1000, 1000, 1000], [1000, 1000, 1250])
    assert "memory grew +25%" in verdict(lat, mem, 0, 0, [])


def test_verdict_fails_on_loss_duplicates_and_a_fault_that_did_not_recover():
    lat, mem = _minutes([1000, 1000], [1000, 1000])
    assert verdict(lat, mem, 3, 0, []) == "3 events lost, 0 duplicated"
    assert verdict(lat, mem, 0, 2, []) == "0 events lost, 2 duplicated"
    stuck = [{"fault": "postgres restart", "at_s": 435.2, "recovered": False}]
    assert verdict(lat, mem, 0, 0, stuck) == "no commit after the postgres restart at 435 s"


def test_verdict_fails_without_a_latency_figure_for_the_last_minute():
    lat, mem = _minutes([1000, 1000, None], [1000, 1000, 1000])
    assert verdict(lat, mem, 0, 0, []) == "no latency figure for the second or the last minute"


def test_growth():
    assert growth(100, 125) == pytest.approx(0.25)
    assert growth(None, 1) is None and growth(0, 1) is None


def test_accounting_counts_lost_and_duplicated_in_both_tables():
    assert accounting(100, (100, 100), (100, 100))["lost"] == 0
    acc = accounting(100, (101, 99), (100, 100))
    assert (acc["lost"], acc["duplicated"]) == (1, 2)
    acc = accounting(100, (100, 100), (98, 97))
    assert (acc["lost"], acc["duplicated"]) == (3, 1)


def test_a_producer_that_did_not_offer_the_planned_load_is_reported():
    assert shortfall(600_000, 600_000) is None
    assert shortfall(571_000, 600_000) is None  # within 5 %
    assert shortfall(300_000, 600_000) == "only 300000 events reached the topic of 600000 planned (50%)"


def test_the_command_is_registered_with_its_flags():
    parser = argparse.ArgumentParser()
    register_bench(parser.add_subparsers())
    args = parser.parse_args(["soak", "--minutes", "10", "--rate", "500", "--json", "--plot", "x.png"])
    assert (args.minutes, args.rate, args.json, args.plot, args.no_faults) == (
        10,
        500.0,
        True,
        "x.png",
        False,
    )
    assert args.batch_every == 120.0


def test_summary_lines_show_each_minute_and_the_verdict():
    result = {
        "settings": {"minutes": 2, "rate": 500.0},
        "in_topic": 10,
        "speed_rows": 10,
        "speed_distinct": 10,
        "master_rows": 10,
        "master_distinct": 10,
        "lost": 0,
        "duplicated": 0,
        "drain_s": 3.0,
        "latency_ms_per_minute": [
            {"minute": 1, "rows": 5, "p50": 1000.0, "p95": 2000.0, "p99": 2500.0},
            {"minute": 2, "rows": 5, "p50": 1000.0, "p95": 2100.0, "p99": 2600.0},
        ],
        "rss_mb_per_minute": [{"platform_mb": 3000.0}, {"platform_mb": 3100.0}],
        "dagster_processes_per_minute": [{"min": 4, "max": 4}, {"min": 4, "max": 4}],
        "load_avg_1m_per_minute": [{"max": 2.0}, {"max": 2.5}],
        "faults": [],
        "passed": False,
        "reason": "0 events lost, 1 duplicated",
    }
    lines = summary_lines(result)
    assert "minute  2: latency p50/p95/p99 1.0/2.1/2.6 s" in lines[2]
    assert lines[-1] == "FAILED: 0 events lost, 1 duplicated"


def _one_minute_result(**extra) -> dict:
    """A passed one-minute soak report with exact counts; `extra` adds or replaces keys."""
    minute = {"minute": 1, "rows": 5, "p50": 1000.0, "p95": 2000.0, "p99": 2500.0}
    return {
        "settings": {"minutes": 1, "rate": 500.0},
        **dict.fromkeys(("in_topic", "speed_rows", "speed_distinct", "master_rows", "master_distinct"), 5),
        "lost": 0,
        "duplicated": 0,
        "drain_s": 1.0,
        "latency_ms_per_minute": [minute],
        "rss_mb_per_minute": [{"platform_mb": 3000.0}],
        "dagster_processes_per_minute": [{"min": 4, "max": 4}],
        "load_avg_1m_per_minute": [{"max": 2.0}],
        "faults": [],
        "passed": True,
        "reason": None,
        **extra,
    }


def test_summary_lines_show_the_platform_pss_beside_its_rss():
    result = _one_minute_result(pss_mb_per_minute=[{"platform_mb": 2200.0}])
    assert "platform RSS 3000 MB (PSS 2200 MB)" in summary_lines(result)[1]


def test_committed_per_minute_is_each_querys_rows_per_second_over_the_minute():
    t0 = 1000.0
    # cumulative (time, stream rows, landing rows): 0 -> 600 stream rows in minute 1, 600 -> 1800 in minute 2
    samples = [(t0 - 5, 0, 0), (t0 + 30, 300, 100), (t0 + 55, 600, 200), (t0 + 115, 1800, 800)]
    rows = committed_per_minute(samples, t0, 3)
    assert rows[0] == {"minute": 1, "stream_rows_per_s": 10.0, "landing_rows_per_s": round(200 / 60, 1)}
    assert rows[1] == {"minute": 2, "stream_rows_per_s": 20.0, "landing_rows_per_s": 10.0}
    assert rows[2] == {"minute": 3, "stream_rows_per_s": None, "landing_rows_per_s": None}  # no sample in it


def test_summary_lines_show_the_streams_committed_rate_when_known():
    committed = [{"minute": 1, "stream_rows_per_s": 1234.5, "landing_rows_per_s": 99.0}]
    assert (
        "stream committed 1234.5 rows/s"
        in summary_lines(_one_minute_result(committed_per_minute=committed))[1]
    )
    assert "stream committed" not in summary_lines(_one_minute_result())[1]
