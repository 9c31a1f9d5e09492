"""Explanations name the feature that was planted, in words, with or without the model's reference sample."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.explain import reasons
from ml.features import history_context
from ml.model import build_pipeline


def _history(template: pd.Series, n: int = 20) -> list[dict]:
    """A steady customer: n purchases of about 50 over n days, same device, at home, same terminal."""
    t0 = pd.Timestamp("2026-03-01 12:00", tz="UTC")
    rows = []
    for k in range(n):
        r = template.to_dict()
        r.update(
            transaction_id=f"h{k}",
            customer_id="CPLANT",
            terminal_id="TPLANT",
            device_id="DHOME",
            event_time=t0 + pd.Timedelta(days=k, minutes=7 * (k % 3)),
            amount=48.0 + (k % 5),
            currency="EUR",
            ip_country="DE",
            ip_lat=52.52,
            ip_lon=13.40,
        )
        rows.append(r)
    return rows


def _explain(rows: list[dict], cb: pd.DataFrame | None, model) -> list[dict]:
    tx = pd.DataFrame(rows)
    enriched, _ = history_context(tx, cb)
    return reasons(enriched.iloc[-1], model=model)


@pytest.fixture(scope="module")
def model(small_history):
    tx, cb = small_history
    enriched, _ = history_context(tx, cb)
    return build_pipeline({"n_estimators": 50, "max_samples": 256}).fit(enriched)


@pytest.fixture(scope="module")
def template(small_history) -> pd.Series:
    return small_history[0].iloc[0]


@pytest.mark.parametrize("use_model", [True, False])
def test_amount_outlier_is_named(template, model, use_model):
    rows = _history(template)
    last = dict(
        rows[-1], transaction_id="x1", event_time=rows[-1]["event_time"] + pd.Timedelta(days=1), amount=700.0
    )
    out = _explain([*rows, last], None, model if use_model else None)
    assert out[0]["feature"] == "amount_to_median"
    assert out[0]["text"].startswith("amount 14x this customer's median")
    assert out[0]["baseline"] == pytest.approx(50.0)


@pytest.mark.parametrize("use_model", [True, False])
def test_third_new_device_this_hour_is_named(template, model, use_model):
    rows = _history(template)
    t = rows[-1]["event_time"] + pd.Timedelta(days=1)
    burst = [
        dict(
            rows[-1],
            transaction_id=f"d{k}",
            event_time=t + pd.Timedelta(minutes=20 * k),
            device_id=f"DNEW{k}",
        )
        for k in range(3)
    ]
    out = _explain([*rows, *burst], None, model if use_model else None)
    device = [r for r in out if r["feature"] in ("new_devices_1h", "is_new_device")]
    assert device, out
    assert device[0]["text"] == "3rd new device this hour"


@pytest.mark.parametrize("use_model", [True, False])
def test_terminal_chargebacks_are_named(template, model, use_model):
    rows = _history(template)
    t = rows[-1]["event_time"] + pd.Timedelta(days=1)
    # other customers' fraud at this terminal, charged back during the last week (one too old to count)
    others = [
        dict(
            rows[0],
            transaction_id=f"o{k}",
            customer_id=f"CO{k}",
            device_id=f"DO{k}",
            event_time=t - pd.Timedelta(days=20),
        )
        for k in range(6)
    ]
    cb = pd.DataFrame(
        {
            "transaction_id": [o["transaction_id"] for o in others],
            "customer_id": [o["customer_id"] for o in others],
            "terminal_id": "TPLANT",
            "reported_at": [t - pd.Timedelta(days=d) for d in (1, 2, 3, 4, 5)] + [t - pd.Timedelta(days=9)],
            "fraud_scenario": "compromised_terminal",
        }
    )
    last = dict(rows[-1], transaction_id="x3", event_time=t, amount=50.0)
    out = _explain([*others, *rows, last], cb, model if use_model else None)
    assert out[0]["feature"] == "term_chargebacks_7d"
    assert out[0]["text"] == "terminal with 5 chargebacks in the last 7 days"


def test_reasons_explain_one_row_only(small_history):
    tx, cb = small_history
    enriched, _ = history_context(tx.head(10), cb)
    with pytest.raises(ValueError, match="one transaction"):
        reasons(enriched)
