"""`ecom bench stream`'s per-batch breakdown (pure: no Spark, no services)."""

from __future__ import annotations

from bench.stream import batch_breakdown


def _progress(batch_id: int, rows: int, trigger: int, add: int, planning: int = 100) -> dict:
    return {
        "batchId": batch_id,
        "numInputRows": rows,
        "durationMs": {
            "triggerExecution": trigger,
            "addBatch": add,
            "queryPlanning": planning,
            "walCommit": 40,
            "commitOffsets": 60,
        },
    }


def test_breakdown_takes_medians_of_measured_batches_with_rows_only():
    progress = [
        _progress(0, 0, 50, 10),  # first empty batch
        _progress(1, 500, 9000, 8000),  # warm-up: starts the Python workers
        _progress(2, 1200, 1300, 1000),
        _progress(3, 0, 20, 5),  # no-data batch (watermark only)
        _progress(4, 1400, 1500, 1100, planning=140),
        _progress(5, 1000, 1100, 900, planning=120),
    ]
    summaries = [
        {"batch_id": 1, "rows_in": 500, "compute_ms": 7000.0, "duration_ms": 7900.0},
        {"batch_id": 2, "rows_in": 1200, "compute_ms": 900.0, "duration_ms": 950.0},
        {"batch_id": 4, "rows_in": 1400, "compute_ms": 1000.0, "duration_ms": 1040.0},
        {"batch_id": 5, "rows_in": 1000, "compute_ms": 800.0, "duration_ms": 860.0},
    ]
    out = batch_breakdown(progress, summaries, after_batch=1)
    assert out["batches"] == 3
    assert out["rows_per_batch"] == 1200
    assert out["trigger_ms"] == 1300
    assert out["spark_bookkeeping_ms"] == 300  # 300, 400, 200
    assert out["query_planning_ms"] == 120
    assert out["compute_ms"] == 900
    assert out["sink_ms"] == 50  # 50, 40, 60


def test_breakdown_of_no_batches_is_empty_not_an_error():
    out = batch_breakdown([], [], after_batch=-1)
    assert out["batches"] == 0
    assert all(v is None for k, v in out.items() if k != "batches")


def test_realtime_probe_uses_no_more_partitions_than_task_slots():
    from bench.stream import realtime_partitions

    assert realtime_partitions(6, 2) == 2
    assert realtime_partitions(2, 8) == 2
    assert realtime_partitions(6, 0) == 1
