"""BG/NBD + Gamma-Gamma: the likelihoods recover known parameters, the conditional expectations match a
Monte Carlo of the model, and the hold-out validation on the simulated shop is sane."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import clv


def simulate_bgnbd(
    n: int, p: clv.BgNbdParams, t_max: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Customers drawn from the BG/NBD generative story; returns the summary plus each one's rate and dropout p."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(p.r, 1 / p.alpha, n)
    drop = rng.beta(p.a, p.b, n)
    T = rng.uniform(0.3 * t_max, t_max, n)
    x, tx, alive = np.zeros(n), np.zeros(n), np.ones(n, bool)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T[i]:
                break
            x[i] += 1
            tx[i] = t
            if rng.random() < drop[i]:
                alive[i] = False
                break
    summary = pd.DataFrame(
        {
            "customer_id": np.arange(n).astype(str),
            "frequency": x,
            "recency": tx,
            "T": T,
            "monetary_value": 0.0,
        }
    )
    return summary, lam, np.where(alive, drop, 1.0)


TRUE = clv.BgNbdParams(r=0.25, alpha=4.0, a=0.8, b=2.5)


def test_bgnbd_fit_recovers_known_parameters():
    summary, _, _ = simulate_bgnbd(20_000, TRUE, 300.0, seed=1)
    fit = clv.fit_bgnbd(summary)
    assert fit.r == pytest.approx(TRUE.r, rel=0.15)
    assert fit.alpha == pytest.approx(TRUE.alpha, rel=0.25)
    assert fit.a == pytest.approx(TRUE.a, rel=0.25)
    assert fit.b == pytest.approx(TRUE.b, rel=0.3)


def test_conditional_expected_purchases_match_a_monte_carlo_of_the_model():
    """E[purchases in (T, T+t] | history] vs simulating each customer's future from the posterior story:
    continue the same customers (their true rate and dropout) and average by frequency bucket."""
    p = clv.BgNbdParams(r=0.6, alpha=10.0, a=1.5, b=4.0)
    summary, lam, drop_or_dead = simulate_bgnbd(6000, p, 200.0, seed=2)
    horizon = 90.0
    rng = np.random.default_rng(3)
    future = np.zeros(len(summary))
    dead = drop_or_dead >= 1.0  # already dropped out
    for i in np.flatnonzero(~dead):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > horizon:
                break
            future[i] += 1
            if rng.random() < drop_or_dead[i]:
                break
    pred = clv.expected_purchases(p, horizon, *(summary[c].to_numpy() for c in ("frequency", "recency", "T")))
    assert pred.sum() == pytest.approx(future.sum(), rel=0.08)
    for lo, hi in ((0, 0), (1, 2), (3, 100)):
        sel = summary["frequency"].between(lo, hi).to_numpy()
        assert pred[sel].mean() == pytest.approx(future[sel].mean(), rel=0.2, abs=0.05)


def test_probability_alive_bounds_and_order():
    p = clv.BgNbdParams(r=0.5, alpha=10.0, a=0.8, b=2.5)
    x = np.array([0.0, 5.0, 5.0])
    t_x = np.array([0.0, 95.0, 10.0])
    T = np.array([100.0, 100.0, 100.0])
    pa = clv.probability_alive(p, x, t_x, T)
    assert pa[0] == 1.0
    assert 0 < pa[2] < pa[1] <= 1  # the one who went quiet 90 days ago is less likely alive


def test_gamma_gamma_recovers_known_parameters():
    rng = np.random.default_rng(4)
    p, q, v = 6.0, 4.0, 15.0
    n = 8000
    nu = rng.gamma(q, 1 / v, n)
    x = rng.integers(1, 10, n).astype(float)
    m = np.array([rng.gamma(p, 1 / nu[i], int(x[i])).mean() for i in range(n)])
    fit = clv.fit_gamma_gamma(pd.DataFrame({"frequency": x, "monetary_value": m}))
    assert fit.p == pytest.approx(p, rel=0.2)
    assert fit.q == pytest.approx(q, rel=0.2)
    assert fit.v == pytest.approx(v, rel=0.3)
    # conditional spend lies between the customer's own mean and the population mean
    e = clv.expected_spend(fit, np.array([3.0]), np.array([100.0]))[0]
    pop = fit.p * fit.v / (fit.q - 1)
    assert min(100.0, pop) < e < max(100.0, pop)


def test_ltv_on_the_simulated_shop(shop, shop_result):
    ltv = shop_result.tables["customer_ltv"]
    for col in (
        "predicted_value_90d",
        "predicted_value_365d",
        "expected_purchases_90d",
        "expected_purchases_365d",
    ):
        assert (ltv[col] >= 0).all() and ltv[col].notna().all()
    assert ltv["p_alive"].between(0, 1).all()
    assert (ltv["predicted_value_365d"] >= ltv["predicted_value_90d"] - 1e-9).all()
    by_tier = (
        ltv.merge(shop.customers[["customer_id", "value_tier"]], on="customer_id")
        .groupby("value_tier")["predicted_value_365d"]
        .mean()
    )
    assert by_tier["platinum"] > by_tier["gold"] > by_tier["silver"] > by_tier["bronze"]
    v = shop_result.params["clv_validation"]
    # the aggregate forecast of hold-out purchases is close; per customer it tracks what happened
    assert abs(v["purchases_total_pct_error"]) < 0.25
    assert v["purchases_corr"] > 0.5
    params = shop_result.params["clv_params"]
    assert params["model"] == "bg_nbd" and params["time_unit"] == "D"
    assert params["fitted_through"] == v["calibration_end"]
