"""The history walk's fast paths give the numbers of their plain definitions (issue 18, item 7).

The chargeback counts are a binary search over (key, time rank) instead of a loop over keys; the walk reads
plain lists and ticks a progress bar every PROGRESS_EVERY rows. Neither may change a single number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import features
from ml.features import CONTEXT_COLUMNS, _count_reported_before, history_context

NS = features.NS


def _count_by_definition(keys, t_ns, cb_keys, cb_ns, window_ns) -> np.ndarray:
    """Chargebacks of the row's key reported in [t - window, t), one row at a time."""
    return np.array(
        [
            float(((cb_keys == k) & (cb_ns >= t - window_ns) & (cb_ns < t)).sum())
            for k, t in zip(keys, t_ns, strict=True)
        ]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chargeback_counts_equal_their_definition_at_every_edge(seed):
    """Many keys, ties on both window edges (a label reported exactly at the event, exactly a window
    before it), keys with labels but no rows and rows with no labels."""
    rng = np.random.default_rng(seed)
    window = 7 * 86400 * NS
    keys = rng.integers(0, 40, 3000).astype(str)
    t_ns = rng.integers(0, 60, 3000) * 86400 * NS + rng.integers(0, 3, 3000) * NS
    cb_keys = rng.integers(0, 50, 400).astype(str)
    cb_ns = rng.integers(0, 60, 400) * 86400 * NS + rng.integers(0, 3, 400) * NS
    # exact edges: reported at the very event time (not counted) and a window before it (counted)
    cb_keys = np.concatenate([cb_keys, keys[:50], keys[50:100]])
    cb_ns = np.concatenate([cb_ns, t_ns[:50], t_ns[50:100] - window])
    got = _count_reported_before(keys, t_ns, cb_keys, cb_ns, window)
    np.testing.assert_array_equal(got, _count_by_definition(keys, t_ns, cb_keys, cb_ns, window))
    assert got.max() >= 2  # the data exercises counts, not just zeros
    assert (_count_reported_before(keys, t_ns, cb_keys[:0], cb_ns[:0], window) == 0).all()


def test_progress_slices_walk_the_same_numbers(small_history, monkeypatch):
    """The walk with a progress bar, ticking every 7 rows, and split over calls: the one-call numbers."""
    tx, cb = small_history
    plain, _ = history_context(tx, cb)
    monkeypatch.setattr(features, "PROGRESS_EVERY", 7)
    ticked, _ = history_context(tx, cb, progress=True)
    pd.testing.assert_frame_equal(ticked, plain, check_exact=True)
    state, parts = None, []
    for rows in np.array_split(np.arange(len(tx)), 3):
        part, state = history_context(tx.iloc[rows], cb, state, progress=True)
        parts.append(part)
    pd.testing.assert_frame_equal(pd.concat(parts)[CONTEXT_COLUMNS], plain[CONTEXT_COLUMNS], check_exact=True)
