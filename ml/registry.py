"""The fraud model registry: MLflow's registered model `fraud_detector` and its `champion` alias.

The speed layer calls `load_champion()` to score, and polls the cheap
`champion_version()` between micro-batches to switch to a new champion without a restart. Training
(ml/train.py) logs and registers versions here; promotion is `set_alias`, done only by the gate.

Models are logged with MLflow's sklearn flavour in skops format; the few non-sklearn types the pipeline
holds (our feature function and scorer class, sklearn's tree internals) are listed as trusted at logging
time, so `mlflow.sklearn.load_model` loads them anywhere the project's code is importable.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings
from ml.features import FEATURE_COLUMNS

TAG_THRESHOLD = "threshold"
TAG_FEATURES = "feature_columns"


def _settings(settings: Settings | None) -> Settings:
    return settings or get_settings()


def configure(settings: Settings | None = None) -> Settings:
    """Point the MLflow client at the platform's tracking server (settings.mlflow.tracking_uri)."""
    import mlflow

    s = _settings(settings)
    os.environ["MLFLOW_TRACKING_URI"] = s.mlflow.tracking_uri
    # MLflow writes "View run ... at <url>" to stdout when a run ends: our commands' --json stdout must be
    # the JSON document only (the run id and version are in their own output)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(s.mlflow.tracking_uri)
    mlflow.set_registry_uri(s.mlflow.tracking_uri)
    return s


def client(settings: Settings | None = None):
    from mlflow import MlflowClient

    s = configure(settings)
    return MlflowClient(tracking_uri=s.mlflow.tracking_uri, registry_uri=s.mlflow.tracking_uri)


@dataclass
class Champion:
    """A loaded model version with what scoring needs beside it."""

    model: Pipeline
    version: str
    threshold: float
    feature_columns: list[str]
    model_name: str = ""
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def score(self, enriched: pd.DataFrame) -> np.ndarray:
        from ml.model import score

        return score(self.model, enriched)

    def reasons(self, enriched: pd.DataFrame, top: int = 3) -> list[list[dict[str, Any]]]:
        from ml.explain import reasons_for_rows

        return reasons_for_rows(enriched, model=self.model, top=top)


def champion_version(settings: Settings | None = None, model_name: str | None = None) -> str | None:
    """Version number behind the champion alias, or None (cheap: one registry call)."""
    from mlflow.exceptions import MlflowException

    s = _settings(settings)
    try:
        mv = client(s).get_model_version_by_alias(model_name or s.mlflow.model_name, s.mlflow.champion_alias)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
            return None
        raise
    return str(mv.version)


def load_version(version: str, settings: Settings | None = None, model_name: str | None = None) -> Champion:
    import mlflow.sklearn

    s = configure(settings)
    name = model_name or s.mlflow.model_name
    mv = client(s).get_model_version(name, str(version))
    # MLflow downloads the artifacts into a new temporary folder and never removes it (mlflow#12140): every
    # load (each hot swap, each training's comparison) left a copy of the model in /tmp. Once loaded the
    # model is in memory, so download into a folder that goes away with the `with`.
    with tempfile.TemporaryDirectory(prefix="ecom-model-") as tmp:
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}", dst_path=tmp)
    tags = dict(mv.tags or {})
    if TAG_THRESHOLD not in tags:
        raise EcomError(
            f"model {name} version {version} has no '{TAG_THRESHOLD}' tag; retrain it with `ecom train`"
        )
    return Champion(
        model=model,
        version=str(version),
        threshold=float(tags[TAG_THRESHOLD]),
        feature_columns=json.loads(tags.get(TAG_FEATURES, json.dumps(FEATURE_COLUMNS))),
        model_name=name,
        run_id=mv.run_id,
        tags=tags,
    )


def load_champion(settings: Settings | None = None, model_name: str | None = None) -> Champion:
    """The model behind `<model_name>@champion`; EcomError when there is none yet."""
    s = _settings(settings)
    name = model_name or s.mlflow.model_name
    version = champion_version(s, name)
    if version is None:
        raise EcomError(
            f"registered model '{name}' has no '{s.mlflow.champion_alias}' alias yet; run `ecom train` "
            "(or `ecom up --bootstrap-model` for one trained on simulated data)"
        )
    return load_version(version, s, name)


def set_alias(
    version: str, settings: Settings | None = None, model_name: str | None = None, alias: str | None = None
) -> None:
    s = _settings(settings)
    client(s).set_registered_model_alias(
        model_name or s.mlflow.model_name, alias or s.mlflow.champion_alias, str(version)
    )


def tag_version(
    version: str, tags: dict[str, Any], settings: Settings | None = None, model_name: str | None = None
) -> None:
    s = _settings(settings)
    c = client(s)
    for k, v in tags.items():
        c.set_model_version_tag(
            model_name or s.mlflow.model_name, str(version), k, v if isinstance(v, str) else json.dumps(v)
        )


def register(
    pipeline: Pipeline,
    input_example: pd.DataFrame,
    tags: dict[str, Any],
    settings: Settings | None = None,
    model_name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Log `pipeline` to the active MLflow run and register it as a new version of `model_name`; returns it.

    Call inside `mlflow.start_run()`. Tags (data window, metrics, features, threshold) go on the version.
    """
    import mlflow
    import mlflow.sklearn
    import skops.io as sio
    from mlflow.models import infer_signature

    from ml.model import score

    s = configure(settings)
    name = model_name or s.mlflow.model_name
    trusted = sio.get_untrusted_types(data=sio.dumps(pipeline))
    example_scores = score(pipeline, input_example)
    signature = infer_signature(input_example, np.column_stack([1 - example_scores, example_scores]))
    info = mlflow.sklearn.log_model(
        # explicit requirements: MLflow otherwise infers them by loading the model in a subprocess (a minute
        # of CPU per training on a busy box); the pipeline needs exactly these plus the project's `ml` package
        sk_model=pipeline,
        pip_requirements=_pip_requirements(),
        name="model",
        serialization_format="skops",
        skops_trusted_types=trusted,
        signature=signature,
        input_example=input_example,
        pyfunc_predict_fn="predict_proba",
        registered_model_name=name,
        metadata=metadata,
    )
    version = str(info.registered_model_version)
    tag_version(version, tags, s, name)
    return version


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{p}=={version(p)}" for p in ("scikit-learn", "numpy", "pandas", "scipy", "skops", "threadpoolctl")
    ]
