"""Customer lifetime value: BG/NBD for how often a customer will buy again, Gamma-Gamma for how much they spend.

The likelihoods and the conditional expectations are the published closed forms, fitted by maximum likelihood
with scipy (L-BFGS-B on log-parameters):

- BG/NBD: P. S. Fader, B. G. S. Hardie, K. L. Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative
  to the Pareto/NBD Model", Marketing Science 24(2): 275-284 -- eq. (6) log-likelihood, eq. (10) conditional
  expected transactions, P(alive) from "Computing P(alive) Using the BG/NBD Model" (Fader, Hardie, Lee 2008).
- Gamma-Gamma: P. S. Fader, B. G. S. Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (note), and
  Fader, Hardie, Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis", JMR 42(4).

The parameter names follow those papers and pymc-marketing's BetaGeoModel / GammaGammaModel (r, alpha, a, b;
p, q, v) so a later switch to that library (see docs/analytics.md for why it is not used now) keeps the contract.

Conventions (same as the papers and the `lifetimes`/pymc-marketing `rfm_summary` helpers): time unit one day;
purchases on the same day are one purchase; frequency x = repeat purchase days, recency t_x = days from first to
last purchase, T = days from first purchase to the end of the observation period; monetary value = mean spend of
the repeat purchase days.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from analytics.rfm import customer_orders

TIME_UNIT = "D"


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float

    def to_dict(self) -> dict[str, object]:
        return {"model": "bg_nbd", "time_unit": TIME_UNIT, **asdict(self)}


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    def to_dict(self) -> dict[str, object]:
        return {"model": "gamma_gamma", **asdict(self)}


def daily_purchases(lines: pd.DataFrame) -> pd.DataFrame:
    """customer_id, day, amount: one row per customer and day with an order (the model's unit of purchase)."""
    orders = customer_orders(lines)
    return (
        orders.assign(day=orders["order_time"].dt.normalize())
        .groupby(["customer_id", "day"], as_index=False, sort=True, observed=True)["amount"]
        .sum()
    )


def rfm_summary(
    lines: pd.DataFrame | None,
    observation_end: pd.Timestamp | None = None,
    since: pd.Timestamp | None = None,
    daily: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per customer frequency, recency, T and monetary_value (see module docstring), from purchase days up to
    observation_end (inclusive; default the last order day). `since` drops days up to it. Pass `daily`
    (daily_purchases) instead of lines to summarise several windows of one history without recomputing."""
    if daily is None:
        daily = daily_purchases(lines)
    if observation_end is None:
        observation_end = daily["day"].max()
    observation_end = pd.Timestamp(observation_end).normalize()
    keep = daily["day"] <= observation_end
    if since is not None:
        keep &= daily["day"] > pd.Timestamp(since).normalize()
    g = daily.loc[keep].groupby("customer_id", sort=True, observed=True)
    first, last, n = g["day"].min(), g["day"].max(), g["day"].size()
    total, first_amount = g["amount"].sum(), g["amount"].first()
    out = pd.DataFrame(
        {
            "frequency": (n - 1).astype(float),
            "recency": (last - first).dt.days.astype(float),
            "T": (observation_end - first).dt.days.astype(float),
        }
    )
    repeat_spend = total - first_amount
    out["monetary_value"] = np.where(out["frequency"] > 0, repeat_spend / out["frequency"].clip(lower=1), 0.0)
    out = out.rename_axis("customer_id").reset_index()
    out["customer_id"] = out["customer_id"].astype(str)
    return out


# ------------------------------------------------------------------------------------------------ BG/NBD


def bgnbd_log_likelihood(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood, Fader-Hardie-Lee (2005) eq. (6), computed in log space."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    # the dropout-after-last-purchase term exists only for repeat buyers (x > 0)
    a4 = np.where(
        x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf
    )
    return a1 + a2 + np.logaddexp(a3, a4)


def fit_bgnbd(summary: pd.DataFrame, penalizer: float = 0.0) -> BgNbdParams:
    """Maximum-likelihood BG/NBD on a rfm_summary frame (unique (x, t_x, T) rows weighted, for speed)."""
    grouped = summary.groupby(["frequency", "recency", "T"], observed=True).size().reset_index(name="w")
    x, t_x, T, w = (grouped[c].to_numpy(float) for c in ("frequency", "recency", "T", "w"))
    if len(x) == 0:
        raise ValueError("no customers to fit the BG/NBD model on")
    scale = max(float(np.mean(T)), 1.0)

    def nll(theta: np.ndarray) -> float:
        r, alpha, a, b = np.exp(theta)
        ll = bgnbd_log_likelihood(BgNbdParams(r, alpha * scale, a, b), x, t_x, T)
        return -float(np.sum(w * ll)) / w.sum() + penalizer * float(np.sum(np.exp(theta) ** 2))

    best = None
    for start in (np.zeros(4), np.log([0.5, 0.1, 1.0, 5.0])):
        res = minimize(nll, start, method="L-BFGS-B", bounds=[(-12, 12)] * 4)
        if best is None or res.fun < best.fun:
            best = res
    r, alpha, a, b = np.exp(best.x)
    return BgNbdParams(float(r), float(alpha * scale), float(a), float(b))


def probability_alive(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(customer still active at T | x, t_x, T); 1 for customers who never repeated (model assumption)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_ratio = (
        np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    return np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700))), 1.0)


def expected_purchases(
    params: BgNbdParams, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T], Fader-Hardie-Lee (2005) eq. (10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
    head = (a + b + x - 1) / (a - 1)
    body = 1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp
    log_ratio = (
        np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    denom = 1.0 + np.where(x > 0, np.exp(np.minimum(log_ratio, 700)), 0.0)
    out = head * body / denom
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=0.0), 0.0, None)


# ------------------------------------------------------------------------------------------------ Gamma-Gamma


def gamma_gamma_log_likelihood(params: GammaGammaParams, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood of the observed mean spend m over x repeat purchases (x > 0, m > 0)."""
    p, q, v = params.p, params.q, params.v
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + v)
    )


def fit_gamma_gamma(summary: pd.DataFrame) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma on repeat customers. q is kept > 1 so the expected spend exists."""
    rep = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    if len(rep) < 3:
        raise ValueError("fewer than 3 repeat customers: cannot fit the Gamma-Gamma spend model")
    x, m = rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy(float)
    scale = float(np.mean(m))

    def nll(theta: np.ndarray) -> float:
        p, q, v = np.exp(theta)
        return -float(
            np.mean(gamma_gamma_log_likelihood(GammaGammaParams(p, 1.0 + q, v * scale), x, m / 1.0))
        )

    res = minimize(nll, np.log([1.0, 2.0, 1.0]), method="L-BFGS-B", bounds=[(-12, 12)] * 3)
    p, q, v = np.exp(res.x)
    return GammaGammaParams(float(p), float(1.0 + q), float(v * scale))


def expected_spend(params: GammaGammaParams, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[mean spend per purchase | x, m]; the population mean p v / (q - 1) for customers without repeats."""
    p, q, v = params.p, params.q, params.v
    population = p * v / (q - 1)
    cond = p * (v + x * m) / (p * x + q - 1)
    return np.where(x > 0, cond, population)


# ------------------------------------------------------------------------------------------------ per customer


def predict_ltv(
    summary: pd.DataFrame, bg: BgNbdParams, gg: GammaGammaParams, horizons: tuple[int, ...] = (90, 365)
) -> pd.DataFrame:
    """Per customer: repeat_purchases (x), recency_days (t_x), age_days (T), monetary_value, p_alive,
    expected_avg_spend, and expected purchases and (undiscounted) value over each horizon in days."""
    x, t_x, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    m = summary["monetary_value"].to_numpy(float)
    out = summary[["customer_id", "frequency", "recency", "T", "monetary_value"]].copy()
    out["p_alive"] = probability_alive(bg, x, t_x, T)
    out["expected_avg_spend"] = expected_spend(gg, x, m)
    for h in horizons:
        out[f"expected_purchases_{h}d"] = expected_purchases(bg, h, x, t_x, T)
        out[f"predicted_value_{h}d"] = out[f"expected_purchases_{h}d"] * out["expected_avg_spend"]
    num = out.select_dtypes("number").columns
    out[num] = out[num].round(6)
    # table-friendly names (a capital "T" would need quoting in every SQL query)
    return out.rename(columns={"frequency": "repeat_purchases", "recency": "recency_days", "T": "age_days"})


def holdout_validation(
    lines: pd.DataFrame | None,
    calibration_end: pd.Timestamp,
    observation_end: pd.Timestamp | None = None,
    daily: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, float], BgNbdParams, GammaGammaParams]:
    """Fit on orders up to calibration_end, predict the hold-out period, compare with what happened.

    Returns (per-customer comparison, error metrics, BG/NBD params, Gamma-Gamma params). Only customers
    acquired in the calibration period are scored (the model says nothing about customers not yet seen).
    """
    calibration_end = pd.Timestamp(calibration_end).normalize()
    if daily is None:
        daily = daily_purchases(lines)
    if observation_end is None:
        observation_end = daily["day"].max()
    observation_end = pd.Timestamp(observation_end).normalize()
    horizon = (observation_end - calibration_end).days
    if horizon <= 0:
        raise ValueError(f"calibration end {calibration_end.date()} is not before the last order day")
    cal = rfm_summary(None, observation_end=calibration_end, daily=daily)
    bg, gg = fit_bgnbd(cal), fit_gamma_gamma(cal)
    # hold-out purchases = purchase days after calibration_end, and their revenue
    window = daily[(daily["day"] > calibration_end) & (daily["day"] <= observation_end)]
    per = window.groupby("customer_id", observed=True)["amount"].agg(["size", "sum"])
    per.index = per.index.astype(str)
    hold_days, hold_rev = per["size"], per["sum"]
    x, t_x, T = (cal[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    comp = cal[["customer_id"]].copy()
    comp["predicted_purchases"] = expected_purchases(bg, horizon, x, t_x, T)
    comp["actual_purchases"] = comp["customer_id"].map(hold_days).fillna(0.0).to_numpy()
    comp["predicted_value"] = comp["predicted_purchases"] * expected_spend(
        gg, x, cal["monetary_value"].to_numpy(float)
    )
    comp["actual_value"] = comp["customer_id"].map(hold_rev).fillna(0.0).to_numpy()
    err = comp["predicted_purchases"] - comp["actual_purchases"]
    verr = comp["predicted_value"] - comp["actual_value"]
    total_actual = float(comp["actual_purchases"].sum())
    total_actual_value = float(comp["actual_value"].sum())
    metrics = {
        "holdout_days": float(horizon),
        "customers": float(len(comp)),
        "purchases_mae": float(err.abs().mean()),
        "purchases_rmse": float(np.sqrt((err**2).mean())),
        "purchases_total_predicted": float(comp["predicted_purchases"].sum()),
        "purchases_total_actual": total_actual,
        "purchases_total_pct_error": float(err.sum() / total_actual) if total_actual else float("nan"),
        "value_mae": float(verr.abs().mean()),
        "value_total_pct_error": float(verr.sum() / total_actual_value)
        if total_actual_value
        else float("nan"),
        "purchases_corr": float(np.corrcoef(comp["predicted_purchases"], comp["actual_purchases"])[0, 1])
        if len(comp) > 2 and comp["actual_purchases"].std() > 0
        else float("nan"),
    }
    return comp, metrics, bg, gg
