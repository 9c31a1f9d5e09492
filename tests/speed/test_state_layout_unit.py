"""The keyed state's bucket count is fixed per checkpoint (pure resolution rules; no Spark)."""

from __future__ import annotations

import pytest

from ecom.errors import EcomError
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
