"""The keyed state's bucket count is fixed per checkpoint (pure resolution rules; no Spark)."""

from __future__ import annotations

import pytest

from kernel.errors import EcomError
from streaming.speed.query import UNRECORDED_STATE_BUCKETS, resolve_state_buckets


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


def _cfg(checkpoint, state_buckets=None):
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
    )


def test_the_record_is_written_once_and_read_back(tmp_path):
    from kernel.settings import get_settings
    from streaming.speed.query import STATE_LAYOUT_FILE, checkpoint_state_buckets

    s = get_settings()
    assert checkpoint_state_buckets(_cfg(tmp_path / "c", 3), s) == 3
    assert (tmp_path / "c" / STATE_LAYOUT_FILE).read_text().strip() == '{"state_buckets": 3}'
    assert checkpoint_state_buckets(_cfg(tmp_path / "c"), s) == 3


def test_a_damaged_record_is_a_one_line_error_not_a_traceback(tmp_path):
    from kernel.settings import get_settings
    from streaming.speed.query import STATE_LAYOUT_FILE, checkpoint_state_buckets

    (tmp_path / "c").mkdir()
    for text in ("{not json", '{"other": 1}', '{"state_buckets": "eight"}', '{"state_buckets": -2}'):
        (tmp_path / "c" / STATE_LAYOUT_FILE).write_text(text)
        with pytest.raises(EcomError, match="state"):
            checkpoint_state_buckets(_cfg(tmp_path / "c"), get_settings())
