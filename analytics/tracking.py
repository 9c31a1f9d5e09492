"""MLflow adapter of the analytics room: lifetime-value validation and recommender evaluation runs.

One experiment (`customer_analytics`), one run per refresh, with the fitted parameters as params and the
hold-out errors / ranking metrics as metrics. The tracking URI comes from kernel.settings.
"""

from __future__ import annotations

import math
import os

import pandas as pd
import requests

from kernel.errors import EcomError
from kernel.settings import get_settings

EXPERIMENT = "customer_analytics"


def check_reachable(tracking_uri: str) -> None:
    """Fail fast, in one line, when the tracking server is down (MLflow itself retries for minutes)."""
    if not tracking_uri.startswith("http"):
        return
    try:
        requests.get(tracking_uri.rstrip("/") + "/health", timeout=3).raise_for_status()
    except requests.RequestException as exc:
        raise EcomError(
            f"MLflow tracking server {tracking_uri} is not reachable ({type(exc).__name__}); "
            "start the stack with `ecom up` or pass --no-mlflow"
        ) from exc


def log_refresh(
    params: dict[str, dict],
    evaluation: pd.DataFrame | None,
    source: str,
    tracking_uri: str | None = None,
    experiment: str = EXPERIMENT,
    run_name: str = "analytics_refresh",
    timings: dict[str, float] | None = None,
) -> str:
    """Log one refresh: CLV params + validation errors, recommender metrics per method. Returns the run id."""
    uri = tracking_uri or get_settings().mlflow.tracking_uri
    check_reachable(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    import mlflow  # slow import: only when logging

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tag("source", source)
        clv_params = params.get("clv_params", {})
        mlflow.log_params({f"clv.{k}": v for k, v in clv_params.items()})
        metrics: dict[str, float] = {}
        for k, v in params.get("clv_validation", {}).items():
            if isinstance(v, int | float) and math.isfinite(v):
                metrics[f"clv_holdout.{k}"] = float(v)
        if evaluation is not None:
            for _, row in evaluation.iterrows():
                for col in ("hit_rate", "precision", "recall", "catalog_coverage"):
                    metrics[
                        f"recs.{row['method']}.{col}_at_{int(row['k'])}"
                        if col != "catalog_coverage"
                        else f"recs.{row['method']}.catalog_coverage"
                    ] = float(row[col])
        for k, v in (timings or {}).items():
            metrics[f"seconds.{k}"] = float(v)
        mlflow.log_metrics(metrics)
        if "clv_validation" in params:
            mlflow.log_dict(params["clv_validation"], "clv_validation.json")
        mlflow.log_dict(clv_params, "clv_params.json")
        return run.info.run_id
