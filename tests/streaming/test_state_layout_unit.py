"""The keyed state's bucket count is fixed per checkpoint (pure resolution rules; no Spark)."""

from __future__ import annotations

import json

import pytest

from kernel.errors import EcomError
from streaming.speed.query import (
    UNRECORDED_STATE_BUCKETS,
    _zero_interval,
    resolve_order_partitions,
    resolve_speed_order,
    resolve_state_buckets,
    resolve_state_engine,
    speed_trigger,
)


def test_a_new_checkpoint_takes_the_request_or_the_default():
    assert resolve_state_buckets(None, None, has_history=False, default=1) == 1
    assert resolve_state_buckets(4, None, has_history=False, default=1) == 4
    assert resolve_state_buckets(0, None, has_history=False, default=1) == 0  # one state per id


def test_a_recorded_checkpoint_keeps_its_count_and_refuses_another():
    assert resolve_state_buckets(None, 8, has_history=True, default=1) == 8
    assert resolve_state_buckets(8, 8, has_history=True, default=1) == 8
    with pytest.raises(EcomError, match="keys its state by 8 bucket"):
        resolve_state_buckets(1, 8, has_history=True, default=1)


def test_a_checkpoint_from_before_the_record_used_the_old_default():
    assert resolve_state_buckets(None, None, has_history=True, default=1) == UNRECORDED_STATE_BUCKETS == 8
    assert resolve_state_buckets(2, None, has_history=True, default=1) == 2  # the operator knows better


def test_negative_counts_are_refused():
    with pytest.raises(EcomError, match=">= 0"):
        resolve_state_buckets(-1, None, has_history=False, default=1)


def _cfg(checkpoint, state_buckets=None, state_engine=None, order=None, trigger=None):
    from streaming.speed.query import StreamConfig

    return StreamConfig(
        topic="t",
        query_name="q",
        checkpoint=checkpoint,
        bootstrap_servers="127.0.0.1:1",
        max_offsets_per_trigger=10,
        trigger=trigger or {"availableNow": True},
        model_name="m",
        state_buckets=state_buckets,
        state_engine=state_engine,
        order=order,
    )


def test_the_record_is_written_once_and_read_back(tmp_path):
    from kernel.settings import get_settings
    from streaming.speed.query import STATE_LAYOUT_FILE, StateLayout, checkpoint_state_layout

    s = get_settings()
    assert checkpoint_state_layout(_cfg(tmp_path / "c", 3, "python"), s) == StateLayout(3, "python")
    assert json.loads((tmp_path / "c" / STATE_LAYOUT_FILE).read_text()) == {
        "state_buckets": 3,
        "state_engine": "python",
    }
    assert checkpoint_state_layout(_cfg(tmp_path / "c"), s) == StateLayout(3, "python")
    with pytest.raises(EcomError, match="keeps its keyed state in the python engine"):
        checkpoint_state_layout(_cfg(tmp_path / "c", state_engine="jvm"), s)


def test_a_record_from_before_the_engines_ran_the_python_state(tmp_path):
    from kernel.settings import get_settings
    from streaming.speed.query import STATE_LAYOUT_FILE, StateLayout, checkpoint_state_layout

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / STATE_LAYOUT_FILE).write_text('{"state_buckets": 8}')
    assert checkpoint_state_layout(_cfg(tmp_path / "c"), get_settings()) == StateLayout(8, "python")
    # rewritten with the engine it has, so the record now says it
    assert json.loads((tmp_path / "c" / STATE_LAYOUT_FILE).read_text())["state_engine"] == "python"


def test_engine_resolution():
    assert resolve_state_engine(None, None, has_history=False, default="jvm") == "jvm"
    assert resolve_state_engine("python", None, has_history=False, default="jvm") == "python"
    assert resolve_state_engine(None, "jvm", has_history=True, default="python") == "jvm"
    # offsets without any record: a checkpoint from before the JVM engine
    assert resolve_state_engine(None, None, has_history=True, default="jvm") == "python"
    with pytest.raises(EcomError, match="not jvm"):
        resolve_state_engine("jvm", "python", has_history=True, default="jvm")
    with pytest.raises(EcomError, match="ECOM_SPEED_STATE_ENGINE must be one of"):
        resolve_state_engine(None, None, has_history=False, default="scala")
    with pytest.raises(EcomError, match="--state-engine must be one of"):
        resolve_state_engine("rust", None, has_history=False, default="jvm")


def test_a_damaged_record_is_a_one_line_error_not_a_traceback(tmp_path):
    from kernel.settings import get_settings
    from streaming.speed.query import STATE_LAYOUT_FILE, checkpoint_state_layout

    (tmp_path / "c").mkdir()
    for text in (
        "{not json",
        '{"other": 1}',
        '{"state_buckets": "eight"}',
        '{"state_buckets": -2}',
        '{"state_buckets": 8, "state_engine": "go"}',
        "[1, 2]",
    ):
        (tmp_path / "c" / STATE_LAYOUT_FILE).write_text(text)
        with pytest.raises(EcomError, match="state"):
            checkpoint_state_layout(_cfg(tmp_path / "c"), get_settings())


def test_order_resolution():
    assert resolve_speed_order(None, None, has_history=False, default="arrival") == "arrival"
    assert resolve_speed_order("event_time", None, has_history=False, default="arrival") == "event_time"
    assert resolve_speed_order(None, None, has_history=False, default="event_time") == "event_time"
    assert resolve_speed_order(None, "event_time", has_history=True, default="arrival") == "event_time"
    # offsets without a recorded order: a checkpoint from before there were two
    assert resolve_speed_order(None, None, has_history=True, default="event_time") == "arrival"
    with pytest.raises(EcomError, match="walks events in arrival order, not event_time"):
        resolve_speed_order("event_time", "arrival", has_history=True, default="arrival")
    with pytest.raises(EcomError, match="ECOM_SPEED_ORDER must be one of"):
        resolve_speed_order(None, None, has_history=False, default="random")
    with pytest.raises(EcomError, match="--order must be one of"):
        resolve_speed_order("eventtime", None, has_history=False, default="arrival")


def test_an_event_time_checkpoint_keeps_its_partition_count():
    assert resolve_order_partitions(None, 6, "t") == 6
    assert resolve_order_partitions(3, 3, "t") == 3
    with pytest.raises(EcomError, match="reads 3 Kafka partition.*now has 6"):
        resolve_order_partitions(3, 6, "t")
    with pytest.raises(EcomError, match="does not exist yet"):
        resolve_order_partitions(None, 0, "t")


def test_an_event_time_record_names_its_order_and_refuses_the_python_engine(tmp_path, monkeypatch):
    from kernel.settings import get_settings
    from streaming.speed import query
    from streaming.speed.query import STATE_LAYOUT_FILE, StateLayout, checkpoint_state_layout

    monkeypatch.setattr(query, "topic_partition_count", lambda bootstrap, topic: 3)
    s = get_settings()
    live = {"processingTime": "1 second"}
    layout = checkpoint_state_layout(_cfg(tmp_path / "c", 0, "jvm", "event_time", live), s)
    assert layout == StateLayout(0, "jvm", "event_time", 3)
    assert json.loads((tmp_path / "c" / STATE_LAYOUT_FILE).read_text()) == {
        "state_buckets": 0,
        "state_engine": "jvm",
        "order": "event_time",
        "partitions": 3,
    }
    assert checkpoint_state_layout(_cfg(tmp_path / "c", trigger=live), s) == layout
    with pytest.raises(EcomError, match="not arrival"):
        checkpoint_state_layout(_cfg(tmp_path / "c", order="arrival"), s)
    with pytest.raises(EcomError, match="JVM engine only"):
        checkpoint_state_layout(_cfg(tmp_path / "p", 0, "python", "event_time", live), s)
    # availableNow: refused for a new event-time checkpoint, and nothing recorded
    with pytest.raises(EcomError, match="without --available-now"):
        checkpoint_state_layout(_cfg(tmp_path / "n", 0, "jvm", "event_time"), s)
    assert not (tmp_path / "n" / STATE_LAYOUT_FILE).exists()
    for text in (
        '{"state_buckets": 0, "state_engine": "jvm", "order": "sorted"}',
        '{"state_buckets": 0, "state_engine": "jvm", "order": "event_time", "partitions": 0}',
    ):
        (tmp_path / "c" / STATE_LAYOUT_FILE).write_text(text)
        with pytest.raises(EcomError, match="order must be|partitions must be"):
            checkpoint_state_layout(_cfg(tmp_path / "c"), s)


def test_zero_intervals_are_told_from_others():
    assert _zero_interval("0 seconds") and _zero_interval("0") and _zero_interval("0s")
    assert _zero_interval(" 0 milliseconds ")
    assert not _zero_interval("1 second") and not _zero_interval("500 milliseconds")
    assert not _zero_interval(None) and not _zero_interval("")


def test_event_time_order_raises_a_zero_trigger_only():
    zero, two = {"processingTime": "0 seconds"}, {"processingTime": "2 seconds"}
    assert speed_trigger(zero, "event_time", "1 second") == {"processingTime": "1 second"}
    assert speed_trigger(two, "event_time", "1 second") == two
    assert speed_trigger(zero, "arrival", "1 second") == zero
    assert speed_trigger({"availableNow": True}, "event_time", "1 second") == {"availableNow": True}


def test_a_negative_hold_idle_time_is_refused_before_anything_starts(tmp_path):
    from dataclasses import replace

    from streaming.speed.query import start_speed_query

    cfg = replace(_cfg(tmp_path / "c", order="event_time"), hold_idle_ms=-1)
    with pytest.raises(EcomError, match="ECOM_SPEED_HOLD_IDLE_MS"):
        start_speed_query(None, cfg)
    assert not (tmp_path / "c").exists()
