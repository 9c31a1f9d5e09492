"""Training the fraud model: time-based windows, selection on validation, hold-out metrics, registry, gate.

The data's time line, from the first transaction to `as_of` (the latest one), is cut into

    [ train ............ )[ validation )[ hold-out )[ label delay )
                                                                  as_of

- contexts are computed over the whole history (each row only sees earlier rows, ml/features.py);
- labels are only those known at the time: a model is trained with the chargebacks reported before the
  start of the window it is scored on, whatever the window sizes. The candidates judged on validation learn
  from the labels reported before `valid_start`; the final model and the selection itself use those
  reported before `holdout_start` (the model is "deployed" when the hold-out starts). A validation window
  shorter than the label delay would leave the training window's last frauds unreported at deployment, so
  an explicit one is refused and the default one is widened to the delay. The hold-out is judged with the
  labels reported up to `label_delay_days` after its end (evaluation, never training); it ends
  `label_delay_days` before `as_of`, so the last days are context only (their frauds are not reported yet);
- every candidate (plain forest grid, blend, stacked) is fitted on the training window and judged on
  validation (average precision); the best of each variant and the overall winner are then measured once on
  the hold-out and everything is logged to MLflow. The alert threshold comes from the alert budget
  (alerts investigators can review per day) applied to the winner's validation scores;
- the gate compares the challenger with the current champion on the same hold-out rows (`decide`).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings
from ml import evaluate
from ml.features import FEATURE_COLUMNS, history_context
from ml.model import DEFAULT_PARAMS, VARIANTS, build_pipeline, features_of, score, scorer_of

PRIMARY_METRIC = "average_precision"
MIN_TRAIN_ROWS = 500
MIN_ROC_AUC = 0.55  # a model no better than chance is never promoted, even without a champion


@dataclass
class TrainConfig:
    """Windows in days counted back from the data's end; None = a share of the span (60 / 20 / 20 %)."""

    train_days: float | None = None
    valid_days: float | None = None
    holdout_days: float | None = None
    label_delay_days: float = 14.0  # chargebacks arrive days later; the simulator: 1 + Gamma(2, 3.5) days
    # alert budget: investigators' daily review capacity; None = `alert_budget_share` of the daily volume
    alerts_per_day: float | None = None
    alert_budget_share: float = 0.02
    variants: tuple[str, ...] = VARIANTS
    quick: bool = False  # a tiny grid (tests)
    min_improvement: float = 0.0  # challenger's AP must exceed the champion's by more than this
    max_recall_drop: float = 0.01  # ... and not lose more recall at 2 % FPR than this
    random_state: int = 42
    source: str = "master"
    forced_params: dict[str, Any] | None = None  # skip selection (tests: a deliberately weak model)
    progress: bool = True  # a progress bar over the history walk (shown on a terminal only)
    # keep the walk's end state and context per `source` (settings.walk_cache_dir) and walk only the rows
    # added since the last run (ml/walk_cache.py: the same numbers as a full walk); False: walk it all
    walk_cache: bool = True


@dataclass
class Windows:
    train_start: pd.Timestamp
    valid_start: pd.Timestamp
    holdout_start: pd.Timestamp
    holdout_end: pd.Timestamp
    as_of: pd.Timestamp
    label_delay: pd.Timedelta

    @property
    def selection_cutoff(self) -> pd.Timestamp:
        """Labels the candidates judged on validation learn from: reported before validation starts."""
        return self.valid_start

    @property
    def deploy_cutoff(self) -> pd.Timestamp:
        """Labels the final model learns from and selection is judged with: reported before the hold-out."""
        return self.holdout_start

    @property
    def evaluation_cutoff(self) -> pd.Timestamp:
        """Labels the hold-out is judged with (evaluation only): reported within the delay after its end."""
        return min(self.holdout_end + self.label_delay, self.as_of)

    def as_tags(self) -> dict[str, str]:
        return {
            "data_window.train": f"{self.train_start.isoformat()}/{self.valid_start.isoformat()}",
            "data_window.validation": f"{self.valid_start.isoformat()}/{self.holdout_start.isoformat()}",
            "data_window.holdout": f"{self.holdout_start.isoformat()}/{self.holdout_end.isoformat()}",
            "data_window.as_of": self.as_of.isoformat(),
            "data_window.label_delay_days": str(self.label_delay / pd.Timedelta(days=1)),
        }


def plan_windows(event_time: pd.Series, cfg: TrainConfig) -> Windows:
    """Train / validation / hold-out windows, counted back from the latest event (pure)."""
    if len(event_time) == 0:
        raise EcomError(
            "no transactions to train on; land data in master.transactions first (or use --simulate)"
        )
    t0, as_of = event_time.min(), event_time.max()
    delay = pd.Timedelta(days=cfg.label_delay_days)
    usable = (as_of - delay) - t0
    if usable <= pd.Timedelta(days=3):
        raise EcomError(
            f"only {(as_of - t0) / pd.Timedelta(days=1):.1f} days of transactions; training needs more than "
            f"{cfg.label_delay_days + 3:.0f} days (label delay + 3): land more data or lower the delay"
        )
    holdout_end = as_of - delay
    # default windows split the usable *rows* 60/20/20 (by time order), so a stray old row or a quiet month
    # cannot leave a window empty; explicit days win
    times = event_time[event_time < holdout_end]
    holdout_start = (
        holdout_end - pd.Timedelta(days=cfg.holdout_days) if cfg.holdout_days else times.quantile(0.8)
    )
    if cfg.valid_days:
        if cfg.valid_days < cfg.label_delay_days:
            raise EcomError(
                f"the validation window ({cfg.valid_days:g} days) is shorter than the label delay "
                f"({cfg.label_delay_days:g} days): the training window's last frauds would not be reported "
                f"when the hold-out starts; use --valid-days >= {cfg.label_delay_days:g} or a shorter "
                "--label-delay-days"
            )
        valid_start = holdout_start - pd.Timedelta(days=cfg.valid_days)
    else:
        before = times[times < holdout_start]
        valid_start = before.quantile(0.75) if len(before) else holdout_start
        # at least one label delay: every training row's chargeback has had the delay to arrive by then
        valid_start = min(valid_start, holdout_start - delay)
    train_start = max(t0, valid_start - pd.Timedelta(days=cfg.train_days)) if cfg.train_days else t0
    if valid_start <= train_start:
        raise EcomError(
            f"the validation and hold-out windows (the validation at least the {cfg.label_delay_days:g}-day "
            "label delay) leave no training window; shorten them, lower --label-delay-days or land more data"
        )
    n_train = int(((event_time >= train_start) & (event_time < valid_start)).sum())
    if n_train < MIN_TRAIN_ROWS:
        raise EcomError(
            f"the training window holds {n_train} transactions (< {MIN_TRAIN_ROWS}); land more data or widen it"
        )
    return Windows(train_start, valid_start, holdout_start, holdout_end, as_of, delay)


def labels_known_at(tx: pd.DataFrame, chargebacks: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    """1 where the transaction has a chargeback reported before `cutoff`, else 0."""
    if chargebacks is None or chargebacks.empty:
        return np.zeros(len(tx), dtype=int)
    known = set(chargebacks.loc[chargebacks["reported_at"] < cutoff, "transaction_id"])
    return tx["transaction_id"].isin(known).to_numpy().astype(int)


@dataclass
class WindowLabels:
    """Each window's rows (masks over the enriched history) and labels, each as known when it is used."""

    train: np.ndarray
    valid: np.ndarray
    holdout: np.ndarray
    y_select_train: np.ndarray  # what selection's candidates learn from: reported before validation starts
    y_train: np.ndarray  # what the final model learns from: reported before the hold-out starts
    y_valid: np.ndarray  # what selection is judged with: reported before the hold-out starts
    y_holdout: np.ndarray  # evaluation only: reported within the label delay after the hold-out


def window_labels(enriched: pd.DataFrame, chargebacks: pd.DataFrame, w: Windows) -> WindowLabels:
    """Labels known at the time (pure): a model never learns a chargeback reported once the window it is
    scored on has started, whatever the window sizes."""
    t = enriched["event_time"]
    tr = ((t >= w.train_start) & (t < w.valid_start)).to_numpy()
    va = ((t >= w.valid_start) & (t < w.holdout_start)).to_numpy()
    ho = ((t >= w.holdout_start) & (t < w.holdout_end)).to_numpy()
    return WindowLabels(
        train=tr,
        valid=va,
        holdout=ho,
        y_select_train=labels_known_at(enriched[tr], chargebacks, w.selection_cutoff),
        y_train=labels_known_at(enriched[tr], chargebacks, w.deploy_cutoff),
        y_valid=labels_known_at(enriched[va], chargebacks, w.deploy_cutoff),
        y_holdout=labels_known_at(enriched[ho], chargebacks, w.evaluation_cutoff),
    )


def param_grid(cfg: TrainConfig) -> list[dict[str, Any]]:
    """Candidates judged on validation. Forest first (the core), then label-aware combos over its best."""
    base = {**DEFAULT_PARAMS, "random_state": cfg.random_state}
    if cfg.quick:
        forests = [{**base, "n_estimators": 100, "max_samples": 256}]
        combos = [{"blend_weight": 0.5}]
    else:
        forests = [
            {**base, "n_estimators": n, "max_samples": m, "max_features": f, "clean_fit": c}
            for n in (100, 300)
            for m in (256, 1024)
            for f in (1.0, 0.6)
            for c in (False, True)
        ]
        combos = [
            {"gb_learning_rate": lr, "gb_max_leaf_nodes": leaves} for lr, leaves in ((0.1, 15), (0.05, 31))
        ]
    return [{"variant": "iforest", **f} for f in forests] + [{"_combo": c} for c in combos]


@dataclass
class Decision:
    promote: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_version: str | None


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None = None,
    min_improvement: float = 0.0,
    max_recall_drop: float = 0.01,
    champion_error: str | None = None,
) -> Decision:
    """The promotion gate (pure): does the challenger beat the champion on the same hold-out?"""
    ap = challenger.get(PRIMARY_METRIC, float("nan"))
    if ap is None or math.isnan(ap):
        return Decision(
            False,
            "the hold-out has no labelled fraud: nothing to compare on",
            challenger,
            champion,
            champion_version,
        )
    auc = challenger.get("roc_auc", float("nan"))
    if not auc >= MIN_ROC_AUC:
        return Decision(
            False,
            f"no better than chance: roc_auc {auc:.4f} < {MIN_ROC_AUC}",
            challenger,
            champion,
            champion_version,
        )
    if champion_error:
        return Decision(
            True,
            f"champion v{champion_version} cannot score the hold-out ({champion_error})",
            challenger,
            champion,
            champion_version,
        )
    if champion is None:
        return Decision(True, "no champion yet", challenger, None, None)
    c_ap = champion[PRIMARY_METRIC]
    c_rec, rec = champion["recall_at_fpr_2pct"], challenger["recall_at_fpr_2pct"]
    figures = (
        f"average_precision {ap:.4f} vs champion v{champion_version} {c_ap:.4f}, "
        f"recall_at_fpr_2pct {rec:.4f} vs {c_rec:.4f}"
    )
    if ap <= c_ap + min_improvement:
        return Decision(
            False,
            f"not better: {figures} (needs > +{min_improvement})",
            challenger,
            champion,
            champion_version,
        )
    if rec < c_rec - max_recall_drop:
        return Decision(
            False,
            f"recall dropped: {figures} (allowed drop {max_recall_drop})",
            challenger,
            champion,
            champion_version,
        )
    return Decision(True, f"better: {figures}", challenger, champion, champion_version)


@dataclass
class TrainResult:
    version: str
    run_id: str
    metrics: dict[str, float]
    threshold: float
    alerts_per_day: float
    params: dict[str, Any]
    windows: Windows
    decision: Decision
    promoted: bool
    variant_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    n_rows: dict[str, int] = field(default_factory=dict)
    walk: dict[str, Any] = field(default_factory=dict)  # what the history walk took from its cache

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "metrics": self.metrics,
            "threshold": self.threshold,
            "alerts_per_day": self.alerts_per_day,
            "params": self.params,
            "windows": {k: str(v) for k, v in asdict(self.windows).items()},
            "decision": {
                "promote": self.decision.promote,
                "reason": self.decision.reason,
                "champion_version": self.decision.champion_version,
                "champion": self.decision.champion,
            },
            "promoted": self.promoted,
            "variant_metrics": self.variant_metrics,
            "timings_s": self.timings,
            "rows": self.n_rows,
            "walk": self.walk,
        }


def _fit(params: dict[str, Any], X: pd.DataFrame, y: np.ndarray):
    return build_pipeline(params).fit(X, y)


def select(
    enriched: pd.DataFrame, w: Windows, chargebacks: pd.DataFrame, cfg: TrainConfig
) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """Fit every candidate on train, judge on validation. Returns best params per variant + the grid table."""
    lab = window_labels(enriched, chargebacks, w)
    X_tr, X_va = enriched[lab.train], enriched[lab.valid]
    # candidates are scored on validation: they learn only what was reported before it started
    y_tr, y_va = lab.y_select_train, lab.y_valid
    if y_va.sum() == 0:
        raise EcomError(
            "no chargeback known in the validation window; cannot choose hyperparameters (more data?)"
        )
    rows, best = [], {}

    def judge(params: dict[str, Any], pipe) -> float:
        s = score(pipe, X_va)
        ap = float(evaluate.average_precision_score(y_va, s))
        rows.append(
            {
                **{k: v for k, v in params.items() if k != "_combo"},
                "valid_average_precision": ap,
                "valid_roc_auc": float(evaluate.roc_auc_score(y_va, s)),
                "valid_recall_at_fpr_2pct": evaluate.recall_at_fpr(y_va, s),
            }
        )
        v = params["variant"]
        if v not in best or ap > best[v][0]:
            best[v] = (ap, params)
        return ap

    grid = param_grid(cfg)
    for params in [g for g in grid if "_combo" not in g]:
        judge(params, _fit(params, X_tr, y_tr))
    forest = best["iforest"][1]
    has_labels = 0 < y_tr.sum() < len(y_tr)
    for combo in [g["_combo"] for g in grid if "_combo" in g] if has_labels else []:
        for variant in [v for v in cfg.variants if v != "iforest"]:
            params = {**forest, **combo, "variant": variant}
            pipe = _fit(params, X_tr, y_tr)
            if variant == "blend":
                # the weight only changes how scores combine: rescore, no refit
                for wgt in (0.5,) if cfg.quick else (0.3, 0.5, 0.7, 0.9):
                    scorer_of(pipe).blend_weight = wgt
                    judge({**params, "blend_weight": wgt}, pipe)
            else:
                judge(params, pipe)
    return {v: p for v, (_, p) in best.items()}, pd.DataFrame(rows)


def train(
    tx: pd.DataFrame,
    chargebacks: pd.DataFrame,
    cfg: TrainConfig | None = None,
    settings: Settings | None = None,
    model_name: str | None = None,
    promote: bool = True,
) -> TrainResult:
    """Select, fit, evaluate, log to MLflow, register a version, run the gate (and promote if `promote`)."""
    import matplotlib.pyplot as plt
    import mlflow

    from ml import registry
    from ml.data import input_example, model_input

    cfg = cfg or TrainConfig()
    s = registry.configure(settings or get_settings())
    name = model_name or s.mlflow.model_name
    timings: dict[str, float] = {}
    plan_windows(pd.to_datetime(tx["event_time"], utc=True), cfg)  # a bad window fails before the walk

    t0, cpu0 = time.perf_counter(), time.process_time()
    walk: dict[str, Any] = {"cache": False}
    if cfg.walk_cache:
        from ml.walk_cache import cached_history_context

        enriched, _, outcome = cached_history_context(
            tx, chargebacks, s.walk_cache_dir, cfg.source, progress=cfg.progress
        )
        walk = {"cache": True, **outcome.as_dict()}
    else:
        enriched, _ = history_context(tx, chargebacks, progress=cfg.progress)
    enriched = model_input(enriched)
    timings["context_s"] = time.perf_counter() - t0
    timings["context_cpu_s"] = time.process_time() - cpu0
    w = plan_windows(enriched["event_time"], cfg)
    lab = window_labels(enriched, chargebacks, w)
    tr, va, ho = lab.train, lab.valid, lab.holdout

    t1 = time.perf_counter()
    if cfg.forced_params:
        best = {cfg.forced_params.get("variant", "iforest"): {**DEFAULT_PARAMS, **cfg.forced_params}}
        grid_table = pd.DataFrame([cfg.forced_params])
    else:
        best, grid_table = select(enriched, w, chargebacks, cfg)
    timings["selection_s"] = time.perf_counter() - t1

    X_tr, X_va, X_ho = enriched[tr], enriched[va], enriched[ho]
    # the final model is scored on the hold-out: it learns what was reported before the hold-out started
    y_tr, y_va, y_ho = lab.y_train, lab.y_valid, lab.y_holdout
    valid_days = max(1, X_va["event_time"].dt.floor("D").nunique())
    alerts_per_day = cfg.alerts_per_day or max(1.0, round(cfg.alert_budget_share * len(X_va) / valid_days, 1))
    k_per_day = max(1, int(round(alerts_per_day)))

    # refit each variant's best on train, rank by validation, measure all on the hold-out
    t2 = time.perf_counter()
    fitted, valid_ap, holdout = {}, {}, {}
    for variant, params in best.items():
        pipe = _fit(params, X_tr, y_tr)
        s_va = score(pipe, X_va)
        thr = evaluate.threshold_for_budget(s_va, X_va["event_time"], alerts_per_day)
        scorer_of(pipe).threshold = thr
        fitted[variant] = pipe
        valid_ap[variant] = (
            float(evaluate.average_precision_score(y_va, s_va))
            if 0 < y_va.sum() < len(y_va)
            else float("nan")
        )
        holdout[variant] = evaluate.compute_metrics(
            y_ho, score(pipe, X_ho), X_ho["event_time"], thr, k_per_day
        )
    winner = max(valid_ap, key=lambda v: -1.0 if math.isnan(valid_ap[v]) else valid_ap[v])
    pipeline = fitted[winner]
    threshold = scorer_of(pipeline).threshold
    metrics = holdout[winner]
    timings["fit_evaluate_s"] = time.perf_counter() - t2

    # the gate: the champion on the very same hold-out rows
    champion_metrics, champion_error, champ_version = None, None, registry.champion_version(s, name)
    if champ_version is not None:
        try:
            champ = registry.load_version(champ_version, s, name)
            champion_metrics = evaluate.compute_metrics(
                y_ho, champ.score(X_ho), X_ho["event_time"], champ.threshold, k_per_day
            )
        except Exception as exc:  # an old champion whose code no longer loads must not block every retrain
            champion_error = f"{type(exc).__name__}: {exc}"[:300]
    decision = decide(
        metrics, champion_metrics, champ_version, cfg.min_improvement, cfg.max_recall_drop, champion_error
    )

    mlflow.set_experiment(s.mlflow.experiment)
    with mlflow.start_run(run_name=f"train-{winner}") as run:
        chosen = {k: v for k, v in best[winner].items() if not k.startswith("_")}
        mlflow.log_params({f"model.{k}": v for k, v in chosen.items()})
        mlflow.log_params(
            {
                "data.source": cfg.source[:250],
                "data.rows_train": int(tr.sum()),
                "data.rows_validation": int(va.sum()),
                "data.rows_holdout": int(ho.sum()),
                "data.frauds_train_known": int(y_tr.sum()),
                "data.frauds_holdout": int(y_ho.sum()),
                "alert.alerts_per_day": alerts_per_day,
                "alert.threshold": threshold,
                "selection.candidates": len(grid_table),
                "selection.winner": winner,
                **{k.replace("data_window.", "window."): v for k, v in w.as_tags().items()},
            }
        )
        # the headline figures are the deployed_* ones (at `threshold`, chosen on validation);
        # recall_at_fpr_2pct is the best case over every threshold, chosen with the hold-out's own labels
        mlflow.log_metrics({**evaluate.finite(metrics), "deployed_threshold": float(threshold)})
        for variant, m in holdout.items():
            mlflow.log_metrics({f"{variant}.holdout.{k}": v for k, v in evaluate.finite(m).items()})
            if not math.isnan(valid_ap[variant]):
                mlflow.log_metric(f"{variant}.validation.average_precision", valid_ap[variant])
        if champion_metrics:
            mlflow.log_metrics(
                {f"champion.holdout.{k}": v for k, v in evaluate.finite(champion_metrics).items()}
            )
        for k, v in timings.items():
            mlflow.log_metric(f"timing.{k}", v)
        mlflow.set_tags(
            {
                "gate.promote": str(decision.promote),
                "gate.reason": decision.reason[:500],
                "winner": winner,
                "walk.cache": (walk.get("reason") or "off")[:500],
                "walk.rows_from_cache": str(walk.get("rows_from_cache", 0)),
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            grid_table.to_csv(d / "validation_grid.csv", index=False)
            s_ho = {v: score(p, X_ho) for v, p in fitted.items()}
            if 0 < y_ho.sum() < len(y_ho):
                figs = {
                    "pr_curve.png": evaluate.pr_curve_figure({v: (y_ho, sc) for v, sc in s_ho.items()}),
                    "score_distribution.png": evaluate.score_distribution_figure(
                        y_ho, s_ho[winner], threshold
                    ),
                }
                sc_fn = scorer_of(pipeline).score_samples
                imp = evaluate.permutation_importance(sc_fn, features_of(pipeline, X_ho), y_ho)
                imp.to_csv(d / "feature_contributions.csv", header=["ap_drop"])
                figs["feature_contributions.png"] = evaluate.contributions_figure(imp)
                for fname, fig in figs.items():
                    fig.savefig(d / fname, dpi=110)
                    plt.close(fig)
            (d / "holdout_metrics.json").write_text(
                json.dumps({"winner": winner, "variants": holdout, "champion": champion_metrics}, indent=2)
            )
            mlflow.log_artifacts(str(d), artifact_path="evaluation")
        tags = {
            **w.as_tags(),
            **{f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()},
            registry.TAG_THRESHOLD: repr(float(threshold)),
            "alerts_per_day": str(alerts_per_day),
            registry.TAG_FEATURES: json.dumps(FEATURE_COLUMNS),
            "variant": winner,
            "gate.decision": "promote" if decision.promote else "refuse",
            "gate.reason": decision.reason[:500],
            "gate.champion_version": champ_version or "",
        }
        version = registry.register(
            pipeline,
            input_example(X_ho if len(X_ho) else enriched),
            tags,
            s,
            name,
            metadata={
                "threshold": float(threshold),
                "alerts_per_day": alerts_per_day,
                "variant": winner,
                "feature_columns": FEATURE_COLUMNS,
            },
        )
        mlflow.set_tag("registered_version", version)
    promoted = False
    if promote and decision.promote:
        registry.set_alias(version, s, name)
        promoted = True
    timings["total_s"] = time.perf_counter() - t0
    # CPU seconds of this process: on a shared machine wall time includes waiting for a core
    timings["total_cpu_s"] = time.process_time() - cpu0
    return TrainResult(
        version=version,
        run_id=run.info.run_id,
        metrics=metrics,
        threshold=float(threshold),
        alerts_per_day=alerts_per_day,
        params={k: v for k, v in best[winner].items() if not k.startswith("_")},
        windows=w,
        decision=decision,
        promoted=promoted,
        variant_metrics=holdout,
        timings=timings,
        n_rows={
            "train": int(tr.sum()),
            "validation": int(va.sum()),
            "holdout": int(ho.sum()),
            "frauds_holdout": int(y_ho.sum()),
        },
        walk=walk,
    )
