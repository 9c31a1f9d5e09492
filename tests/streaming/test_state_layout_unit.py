"""The keyed state's bucket count is fixed per checkpoint (pure resolution rules; no Spark)."""

from __future__ import annotations

import json

import pytest

from kernel.errors import EcomError
from streaming.speed.query import UNRECORDED_STATE_BUCKETS, resolve_state_buckets, resolve_state_engine


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


def _cfg(checkpoint, state_buckets=None, state_engine=None):
    from streaming.speed.query import StreamConfig

    return StreamConfig(
        topic="t",
        query_name="q",
        checkpoint=checkpoint,
        bootstrap_servers="127.0.0.1:1",
        max_offsets_per_trigger=10,
        trigger={"availableNow": True},
        model_name="m",
        state_buckets=state_buckets,
        state_engine=state_engine,
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
