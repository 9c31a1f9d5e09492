"""The fraud model: an sklearn Pipeline (derive_features -> FraudScorer) with an Isolation Forest at its core.

`FraudScorer` always fits an `IsolationForest` on the features. Two label-aware variants are measured
against the plain forest on the same windows (ml/train.py keeps whichever wins on validation):

- `iforest`        the plain forest: score = the forest's anomaly score (sklearn's 2^(-E[h]/c), in (0, 1]);
- `blend`          (1 - w) * the forest's score as a percentile of its training scores + w * P(fraud) of a
                   gradient-boosted classifier trained on chargeback labels known at training time;
- `stacked`        the classifier also sees the forest's score as a feature (forest as a learned detector).

Every variant returns a fraud score in [0, 1], higher = more suspicious. The scorer also keeps a sample of
its training features (`reference_`), so ml/explain.py can say how unusual a value is, identically in
batch evaluation and in the stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_limits

from ml.features import FEATURE_COLUMNS, derive_features

VARIANTS = ("iforest", "blend", "stacked")
DEFAULT_PARAMS: dict[str, Any] = {
    "variant": "iforest",
    "n_estimators": 200,
    "max_samples": 512,
    "max_features": 1.0,
    "blend_weight": 0.5,
    "clean_fit": False,
    "gb_max_iter": 200,
    "gb_learning_rate": 0.1,
    "gb_max_leaf_nodes": 31,
    "random_state": 42,
}
REFERENCE_SIZE = 2000  # rows of training features kept for explanations


class FraudScorer(BaseEstimator):
    """Isolation Forest (+ optional supervised blend / stack) over FEATURE_COLUMNS; scores in [0, 1]."""

    def __init__(
        self,
        variant: str = "iforest",
        n_estimators: int = 200,
        max_samples: int | float = 512,
        max_features: float = 1.0,
        blend_weight: float = 0.5,
        clean_fit: bool = False,
        gb_max_iter: int = 200,
        gb_learning_rate: float = 0.1,
        gb_max_leaf_nodes: int = 31,
        random_state: int = 42,
        threshold: float = 1.0,
    ) -> None:
        self.variant = variant
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.blend_weight = blend_weight
        self.clean_fit = clean_fit
        self.gb_max_iter = gb_max_iter
        self.gb_learning_rate = gb_learning_rate
        self.gb_max_leaf_nodes = gb_max_leaf_nodes
        self.random_state = random_state
        self.threshold = threshold

    # --- fitting
    def fit(self, X: pd.DataFrame | np.ndarray, y: np.ndarray | None = None) -> FraudScorer:
        # one OpenMP thread: on a shared 2-core box, oversubscribed threads made the boosting 15x slower
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._fit(X, y)

    def _fit(self, X: pd.DataFrame | np.ndarray, y: np.ndarray | None = None) -> FraudScorer:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        Xa = np.asarray(X, dtype=float)
        y_arr = None if y is None else np.asarray(y, dtype=int)
        if self.variant != "iforest" and (y_arr is None or y_arr.sum() == 0 or y_arr.sum() == len(y_arr)):
            raise ValueError(f"variant {self.variant!r} needs labels with both classes")
        # "clean" fit: the forest learns normal behaviour from transactions not (yet) known as fraud
        fit_rows = Xa if (not self.clean_fit or y_arr is None) else Xa[y_arr == 0]
        max_samples = (
            min(self.max_samples, len(fit_rows)) if isinstance(self.max_samples, int) else self.max_samples
        )
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=max_samples,
            max_features=self.max_features,
            random_state=self.random_state,
            n_jobs=1,
        ).fit(fit_rows)
        raw = self._forest_score(Xa)
        self.forest_quantiles_ = np.quantile(raw, np.linspace(0, 1, 1001))
        self.classifier_ = None
        if self.variant in ("blend", "stacked"):
            Xc = Xa if self.variant == "blend" else np.column_stack([Xa, raw])
            self.classifier_ = HistGradientBoostingClassifier(
                max_iter=self.gb_max_iter,
                learning_rate=self.gb_learning_rate,
                max_leaf_nodes=self.gb_max_leaf_nodes,
                random_state=self.random_state,
            ).fit(Xc, y_arr)
        rng = np.random.default_rng(self.random_state)
        take = rng.choice(len(Xa), size=min(REFERENCE_SIZE, len(Xa)), replace=False)
        self.reference_ = np.sort(Xa[take], axis=0)
        self.feature_names_ = list(X.columns) if isinstance(X, pd.DataFrame) else list(FEATURE_COLUMNS)
        return self

    # --- scoring
    def _forest_score(self, Xa: np.ndarray) -> np.ndarray:
        # sklearn's score_samples is minus the paper's anomaly score s(x) = 2^(-E[h(x)]/c(n)) in (0, 1]
        return -self.forest_.score_samples(Xa)

    def forest_percentile(self, Xa: np.ndarray) -> np.ndarray:
        return np.interp(self._forest_score(Xa), self.forest_quantiles_, np.linspace(0, 1, 1001))

    def score_samples(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fraud score in [0, 1] per row, higher = more suspicious."""
        if isinstance(X, pd.DataFrame) and list(X.columns) != self.feature_names_:
            # a model keeps scoring after the feature code gained columns: it reads the ones it was fitted on
            X = X[self.feature_names_]
        if self.variant == "iforest":
            return self._score(np.asarray(X, dtype=float))
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._score(np.asarray(X, dtype=float))

    def _score(self, Xa: np.ndarray) -> np.ndarray:
        if self.variant == "iforest":
            return np.clip(self._forest_score(Xa), 0.0, 1.0)
        if self.variant == "blend":
            p = self.classifier_.predict_proba(Xa)[:, 1]
            w = self.blend_weight
            return np.clip((1 - w) * self.forest_percentile(Xa) + w * p, 0.0, 1.0)
        p = self.classifier_.predict_proba(np.column_stack([Xa, self._forest_score(Xa)]))[:, 1]
        return np.clip(p, 0.0, 1.0)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        s = self.score_samples(X)
        return np.column_stack([1 - s, s])

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """1 = alert (score at or above the threshold chosen from the alert budget), else 0."""
        return (self.score_samples(X) >= self.threshold).astype(int)


def build_pipeline(params: dict[str, Any] | None = None) -> Pipeline:
    """features -> scorer. Fit with `pipeline.fit(enriched, labels)`; the plain forest ignores labels."""
    p = {**DEFAULT_PARAMS, **(params or {})}
    scorer_params = {k: v for k, v in p.items() if k in FraudScorer().get_params()}
    return Pipeline(
        [
            ("features", FunctionTransformer(derive_features, validate=False)),
            ("scorer", FraudScorer(**scorer_params)),
        ]
    )


def score(pipeline: Pipeline, enriched: pd.DataFrame) -> np.ndarray:
    """Fraud scores in [0, 1] (higher = more suspicious) for enriched rows (contract + context columns)."""
    if len(enriched) == 0:
        return np.zeros(0)
    return np.asarray(pipeline.score_samples(enriched), dtype=float)


def features_of(pipeline: Pipeline, enriched: pd.DataFrame) -> pd.DataFrame:
    """The model's view of the rows (FEATURE_COLUMNS), for explanations and plots."""
    return pipeline.named_steps["features"].transform(enriched)


def scorer_of(pipeline: Pipeline) -> FraudScorer:
    return pipeline.named_steps["scorer"]
