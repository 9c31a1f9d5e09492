"""Fraud metrics on labelled data and the plots logged beside them (pure functions + matplotlib figures).

Metric keys are fixed (MLflow, the promotion gate and the benchmark read them):
- `roc_auc`, `average_precision`;
- `precision_at_k`: each day, the k highest-scored transactions are what investigators can review
  (k = the alert budget per day); the share of them that are fraud, averaged over the days;
- `recall_at_fpr_2pct`: the BEST CASE, the highest recall any threshold reaches on these very labels while
  flagging at most 2 % of legitimate ones (a threshold chosen in hindsight: no deployed model has it);
- `alert_rate`: share of transactions at or above the model's threshold;
- `deployed_recall`, `deployed_precision`, `deployed_fpr`: what the model does at the threshold it is
  deployed with (chosen on validation from the alert budget): the figures to quote.

`card_precision_at_k` (each day, the k cards = customers with the highest score that day, the share of them
with a fraud that day) and `evaluation_report` serve `ecom evaluate` (and the Dagster asset that can call it).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # headless: Dagster / CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve  # noqa: E402

METRIC_KEYS = ["roc_auc", "average_precision", "precision_at_k", "recall_at_fpr_2pct", "alert_rate"]
DEPLOYED_KEYS = ["deployed_recall", "deployed_precision", "deployed_fpr"]
TARGET_FPR = 0.02


def at_threshold(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall, precision and false-positive rate of alerting on `s >= threshold` (nan where undefined)."""
    y = np.asarray(y, dtype=int)
    alert = np.asarray(s, dtype=float) >= threshold
    tp = int((alert & (y == 1)).sum())
    fp = int((alert & (y == 0)).sum())
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    return {
        "deployed_recall": tp / pos if pos else float("nan"),
        "deployed_precision": tp / (tp + fp) if tp + fp else float("nan"),
        "deployed_fpr": fp / neg if neg else float("nan"),
    }


def recall_at_fpr(y: np.ndarray, s: np.ndarray, max_fpr: float = TARGET_FPR) -> float:
    fpr, tpr, _ = roc_curve(y, s)
    ok = fpr <= max_fpr
    return float(tpr[ok].max()) if ok.any() else 0.0


def threshold_at_fpr(y: np.ndarray, s: np.ndarray, max_fpr: float = TARGET_FPR) -> float:
    """The lowest threshold whose false-positive rate stays <= max_fpr (for reporting, not for alerting)."""
    fpr, _, thr = roc_curve(y, s)
    ok = np.flatnonzero(fpr <= max_fpr)
    return float(thr[ok[-1]]) if len(ok) else float("inf")


def daily_precision_at_k(y: np.ndarray, s: np.ndarray, event_time: pd.Series, k: int) -> float:
    days = pd.to_datetime(event_time, utc=True).dt.floor("D").to_numpy()
    frame = pd.DataFrame({"day": days, "y": y, "s": s})
    precisions = []
    for _, g in frame.groupby("day"):
        top = g.nlargest(min(k, len(g)), "s")
        if len(top):
            precisions.append(top["y"].mean())
    return float(np.mean(precisions)) if precisions else 0.0


def card_precision_at_k(
    y: np.ndarray, s: np.ndarray, event_time: pd.Series, card_id: pd.Series, k: int
) -> float:
    """Each day, the k cards (customers) with the highest score that day: the share of them with a fraud that
    day, averaged over the days (investigators review cards, not single transactions)."""
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(event_time, utc=True).dt.floor("D").to_numpy(),
            "card": np.asarray(card_id),
            "y": np.asarray(y, dtype=int),
            "s": np.asarray(s, dtype=float),
        }
    )
    if frame.empty:
        return float("nan")
    cards = frame.groupby(["day", "card"], sort=False).agg(y=("y", "max"), s=("s", "max")).reset_index()
    top = cards.sort_values(["day", "s"], ascending=[True, False], kind="mergesort").groupby("day").head(k)
    return float(top.groupby("day")["y"].mean().mean())


def compute_metrics(
    y: np.ndarray, s: np.ndarray, event_time: pd.Series, threshold: float, k_per_day: int
) -> dict[str, float]:
    """METRIC_KEYS + DEPLOYED_KEYS for labels `y` (1 = fraud) and scores `s` on one window."""
    y = np.asarray(y, dtype=int)
    s = np.asarray(s, dtype=float)
    both = 0 < y.sum() < len(y)
    return {
        "roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, s)) if both else float("nan"),
        "precision_at_k": daily_precision_at_k(y, s, event_time, k_per_day),
        "recall_at_fpr_2pct": recall_at_fpr(y, s) if both else float("nan"),
        "alert_rate": float((s >= threshold).mean()) if len(s) else 0.0,
        **at_threshold(y, s, threshold),
    }


def evaluation_report(scored: pd.DataFrame, threshold: float, k_per_day: int) -> dict[str, float | int]:
    """Every figure `ecom evaluate` prints for one set of scores (pure; a Dagster asset can call it too).

    `scored`: one row per transaction with `event_time`, `customer_id`, `label` (1 = fraud) and `score`.
    """
    y = scored["label"].to_numpy(dtype=int)
    s = scored["score"].to_numpy(dtype=float)
    days = int(pd.to_datetime(scored["event_time"], utc=True).dt.floor("D").nunique())
    metrics = compute_metrics(y, s, scored["event_time"], threshold, k_per_day)
    return {
        "rows": len(scored),
        "frauds": int(y.sum()),
        "days": days,
        "threshold": float(threshold),
        "k_per_day": int(k_per_day),
        "roc_auc": metrics["roc_auc"],
        "average_precision": metrics["average_precision"],
        "card_precision_at_k": card_precision_at_k(
            y, s, scored["event_time"], scored["customer_id"], k_per_day
        ),
        "precision_at_k": metrics["precision_at_k"],
        **{k: metrics[k] for k in DEPLOYED_KEYS},
        "alert_rate": metrics["alert_rate"],
        "best_recall_at_fpr_2pct": metrics["recall_at_fpr_2pct"],
    }


def threshold_for_budget(scores: np.ndarray, event_time: pd.Series, alerts_per_day: float) -> float:
    """The score above which, on this window, investigators get `alerts_per_day` alerts a day on average."""
    days = max(1, pd.to_datetime(event_time, utc=True).dt.floor("D").nunique())
    n_alerts = int(round(alerts_per_day * days))
    if n_alerts <= 0:
        return 1.0 + 1e-9
    ordered = np.sort(np.asarray(scores, dtype=float))[::-1]
    return float(ordered[min(n_alerts, len(ordered)) - 1])


def finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if v is not None and not math.isnan(v)}


# ------------------------------------------------------------------------------------------ plots
def pr_curve_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> plt.Figure:
    """Precision-recall curves of several variants on the hold-out."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (y, s) in curves.items():
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, s):.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall on the hold-out window")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def score_distribution_figure(y: np.ndarray, s: np.ndarray, threshold: float) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    bins = np.linspace(0, 1, 51)
    ax.hist(s[y == 0], bins=bins, alpha=0.6, density=True, label=f"legitimate (n={int((y == 0).sum())})")
    ax.hist(s[y == 1], bins=bins, alpha=0.6, density=True, label=f"fraud (n={int((y == 1).sum())})")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("fraud score")
    ax.set_ylabel("density")
    ax.set_title("Score distribution by class (hold-out)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def contributions_figure(importances: pd.Series) -> plt.Figure:
    """Permutation importance (drop in average precision when a feature is shuffled) on the hold-out."""
    imp = importances.sort_values()
    fig, ax = plt.subplots(figsize=(6, max(3, 0.28 * len(imp))))
    ax.barh(imp.index, imp.values)
    ax.set_xlabel("drop in average precision when the feature is shuffled")
    ax.set_title("Feature contributions (hold-out)")
    fig.tight_layout()
    return fig


def permutation_importance(
    score_fn, features: pd.DataFrame, y: np.ndarray, seed: int = 0, max_rows: int = 50_000
) -> pd.Series:
    """Drop in average precision when each feature column is shuffled (score_fn: features -> scores)."""
    rng = np.random.default_rng(seed)
    if len(features) > max_rows:
        # keep every fraud, subsample the rest: the metric is about ranking frauds above legitimate rows
        pos = np.flatnonzero(y == 1)
        neg = rng.choice(np.flatnonzero(y == 0), size=max_rows - len(pos), replace=False)
        idx = np.sort(np.concatenate([pos, neg]))
        features, y = features.iloc[idx], y[idx]
    base = average_precision_score(y, score_fn(features))
    out = {}
    for col in features.columns:
        shuffled = features.copy()
        shuffled[col] = rng.permutation(shuffled[col].to_numpy())
        out[col] = base - average_precision_score(y, score_fn(shuffled))
    return pd.Series(out)
