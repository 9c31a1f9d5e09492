"""orchestration.synthetic without the stack: row g is the g-th event of the spec's simulated history, however
the rows are asked for, and the history is sized to the spec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestration.synthetic import SyntheticSpec, _History

SPEC = SyntheticSpec(
    prefix="syn-",
    topic="fixture-syn",
    n_customers=120,
    n_merchants=10,
    n_products=60,
    start_time=datetime(2026, 1, 1, tzinfo=UTC),
    span=timedelta(days=3),
    total_rows=900,
)


def test_ranges_read_in_parts_are_the_history_read_at_once() -> None:
    whole = [e["transaction_id"] for e, _ in _History(SPEC).rows(0, 899)]
    parts = _History(SPEC)
    pieces = [parts.rows(0, 99), parts.rows(100, 449), parts.rows(450, 899), parts.rows(10, 19)]
    ids = [e["transaction_id"] for piece in pieces[:3] for e, _ in piece]
    assert ids == whole and len(set(whole)) == 900
    assert [e["transaction_id"] for e, _ in pieces[3]] == whole[10:20]  # going back restarts the history
    assert all(
        e["transaction_id"].startswith("syn-") and e["customer_id"].startswith("syn-") for e, _ in pieces[0]
    )


def test_the_history_fills_the_span_and_stops_at_total_rows() -> None:
    history = _History(SPEC)
    rows = history.rows(0, SPEC.total_rows - 1)
    times = [datetime.fromisoformat(e["event_time"]) for e, _ in rows]
    assert times == sorted(times)
    assert SPEC.start_time <= times[0] and times[-1] < SPEC.start_time + SPEC.span
    assert times[-1] > SPEC.start_time + 0.7 * SPEC.span  # sized to the span, not bunched at its start
    with pytest.raises(ValueError, match="outside 0..899"):
        history.rows(890, 900)


def test_chargeback_every_sets_how_many_chargebacks_come_with_the_rows() -> None:
    few = SyntheticSpec(prefix="a-", topic="t", n_customers=400, n_products=100, total_rows=4000)
    many = SyntheticSpec(
        prefix="a-", topic="t", n_customers=400, n_products=100, total_rows=4000, chargeback_every=37
    )
    n_few = sum(label is not None for _, label in _History(few).rows(0, 3999))
    n_many = sum(label is not None for _, label in _History(many).rows(0, 3999))
    assert n_many > 2 * n_few
    assert 4000 / 37 / 2 < n_many < 4000 / 37 * 2
