"""The floor probe's arithmetic over Spark progress reports (pure)."""

from __future__ import annotations

import pytest

from bench.floor import FLOOR_SHAPES, JVM_SHAPES, floor_frame, measured_batches_ms, throughput_of


def _p(batch: int, rows: int, ms: float) -> dict:
    return {"batchId": batch, "numInputRows": rows, "durationMs": {"triggerExecution": ms}}


def test_throughput_leaves_out_empty_batches_and_the_first_with_rows():
    progress = [_p(0, 0, 900), _p(1, 50_000, 9_000), _p(2, 50_000, 2_000), _p(3, 0, 40), _p(4, 30_000, 1_000)]
    # batch 1 starts the Python workers: out; empty batches: out
    assert throughput_of(progress) == pytest.approx(80_000 / 3_000 * 1000)


def test_throughput_needs_two_batches_with_rows():
    assert throughput_of([]) is None
    assert throughput_of([_p(0, 0, 100), _p(1, 10, 100)]) is None


def test_measured_batches_are_those_that_read_rows():
    progress = [_p(5, 0, 30), _p(6, 1_000, 420), _p(7, 900, 380)]
    assert measured_batches_ms(progress) == [420.0, 380.0]
    assert measured_batches_ms(progress, skip_first=1) == [380.0]


def test_unknown_shape_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="speed_shape"):
        floor_frame(None, None, "warp", "t", 10)
    assert FLOOR_SHAPES[0] == "jvm" and FLOOR_SHAPES[3] == "speed_shape"
    assert set(JVM_SHAPES) == {"jvm", "jvm_state", "jvm_scored"} <= set(FLOOR_SHAPES)


def test_the_scored_jvm_shape_needs_a_champion():
    with pytest.raises(ValueError, match="champion"):
        floor_frame(None, None, "jvm_scored", "t", 10)
