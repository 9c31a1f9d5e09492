"""One refresh of every analytics output from a canonical lines frame: the single code path behind both
`ecom analytics --from-csv` and the Dagster assets, so both give the same numbers on the same data."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from analytics import clv, cohorts, recommend, rfm
from analytics.io import compact_ids

# the tables the room writes (files: <name>.csv, Postgres: analytics.<name>)
TABLES = (
    "rfm_customers",
    "rfm_segments",
    "cohort_retention",
    "customer_ltv",
    "recs_item_item",
    "recs_content",
    "recs_fbt",
    "recs_personalized",
    "recs_evaluation",
)


@dataclass
class AnalyticsResult:
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    params: dict[str, dict] = field(default_factory=dict)  # clv_params, clv_validation
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self, timings: dict[str, float], name: str):
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = round(time.perf_counter() - self.t0, 3)


def compute_rfm(lines: pd.DataFrame, as_of: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    scores = rfm.rfm_scores(lines, as_of)
    return scores, rfm.segment_summary(scores)


def compute_ltv(
    lines: pd.DataFrame, calibration_end: pd.Timestamp | None, segments: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict, dict | None]:
    """(customer_ltv, clv_params, clv_validation or None).

    With a calibration end the models are fitted on the calibration period only and validated on the rest;
    the per-customer predictions then condition on each customer's full history with those parameters.
    """
    observation_end = lines["order_time"].max().normalize()
    daily = clv.daily_purchases(lines)  # once: the calibration, hold-out and full summaries all slice it
    validation = None
    if calibration_end is not None:
        _, metrics, bg, gg = clv.holdout_validation(None, calibration_end, observation_end, daily=daily)
        fitted_on = pd.Timestamp(calibration_end).normalize()
        validation = {"calibration_end": fitted_on.date().isoformat(), **metrics}
        summary = clv.rfm_summary(None, observation_end, daily=daily)
    else:
        summary = clv.rfm_summary(None, observation_end, daily=daily)
        bg, gg = clv.fit_bgnbd(summary), clv.fit_gamma_gamma(summary)
        fitted_on = observation_end
    ltv = clv.predict_ltv(summary, bg, gg)
    if segments is not None:
        ltv = ltv.merge(segments[["customer_id", "segment"]], on="customer_id", how="left")
    params = {
        **bg.to_dict(),
        "spend_model": "gamma_gamma",
        "p": gg.p,
        "q": gg.q,
        "v": gg.v,
        "fitted_through": fitted_on.date().isoformat(),
        "observation_end": observation_end.date().isoformat(),
        "customers": len(summary),
    }
    return ltv, params, validation


def run_all(
    lines: pd.DataFrame,
    products: pd.DataFrame | None = None,
    calibration_end: pd.Timestamp | str | None = None,
    as_of: pd.Timestamp | None = None,
    rec_config: recommend.RecConfig | None = None,
    evaluate_recs: bool = True,
    progress: Callable[[str], None] | None = None,
) -> AnalyticsResult:
    """RFM + segments, cohorts, lifetime value and (when lines carry product ids) recommendations."""
    cfg = rec_config or recommend.RecConfig()
    res = AnalyticsResult()
    lines = compact_ids(lines)
    say = progress or (lambda _msg: None)
    cal = pd.Timestamp(calibration_end) if calibration_end is not None else None
    with _Timer(res.timings, "rfm"):
        scores, segments = compute_rfm(lines, as_of)
    res.tables["rfm_customers"], res.tables["rfm_segments"] = scores, segments
    say("rfm done")
    with _Timer(res.timings, "cohorts"):
        res.tables["cohort_retention"] = cohorts.cohort_retention(lines)
    say("cohorts done")
    with _Timer(res.timings, "clv"):
        ltv, params, validation = compute_ltv(lines, cal, scores)
    res.tables["customer_ltv"] = ltv
    res.params["clv_params"] = params
    if validation is not None:
        res.params["clv_validation"] = validation
    say("lifetime value done")
    if "product_id" in lines.columns and lines["product_id"].notna().any():
        product_lines = lines[lines["product_id"].notna()]
        with _Timer(res.timings, "recommendations"):
            res.tables.update(recommend.recommendation_tables(product_lines, products, scores, cfg))
        say("recommendations done")
        if evaluate_recs:
            with _Timer(res.timings, "recs_evaluation"):
                res.tables["recs_evaluation"] = recommend.evaluate(
                    product_lines, products, lambda train: rfm.rfm_scores(train), cfg
                )
            say("recommendation evaluation done")
    return res
