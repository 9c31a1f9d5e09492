"""Fraud model assets: retrain the challenger from the batch layer, gate it, promote it to champion.

    ["marts","fct_transactions"], ["master","chargebacks"]
        -> ["ml","fraud_challenger"]   train on time windows, log to MLflow, register a version
           (blocking check `beats_champion`: challenger vs champion on the same hold-out)
        -> ["ml","fraud_champion"]     move the `champion` alias; runs only when the gate passed
        -> ["ml","fraud_champion_evaluation"]   the new champion's `ecom evaluate` report on a recent
           period of master.* (offline, and as the stream stored it): asset metadata + MLflow metrics

Training reads the master dataset directly (the batch layer's immutable truth); the dependency on the
dbt fact table is lineage: a retrain follows a batch refresh.
"""

# no `from __future__ import annotations` here: Dagster resolves Config parameter types at import
import json
import math
from datetime import UTC, datetime

import dagster as dg

from kernel.settings import Settings
from orchestration.resources import MlflowResource, PostgresResource, settings_for

CHALLENGER = dg.AssetKey(["ml", "fraud_challenger"])
CHAMPION = dg.AssetKey(["ml", "fraud_champion"])
CHAMPION_EVALUATION = dg.AssetKey(["ml", "fraud_champion_evaluation"])
GATE_CHECK = "beats_champion"
METRICS_CHECK = "holdout_metrics_logged"


class FraudTrainConfig(dg.Config):
    """Run config of a retrain (defaults = the production retrain on master.*)."""

    source: str = "master"  # "master" or "simulator"
    sim_customers: int = 20000
    sim_days: float = 60
    sim_seed: int = 7
    sim_start: str | None = None  # ISO date of the simulated history's first day (None: today minus sim_days)
    train_days: float | None = None
    valid_days: float | None = None
    holdout_days: float | None = None
    label_delay_days: float = 14.0
    alerts_per_day: float | None = None
    quick: bool = False
    walk_cache: bool = True  # reuse the last retrain's history walk (ml/walk_cache.py); False: walk it all
    model_name: str | None = None  # None: settings.mlflow.model_name (tests use their own)


class FraudPromoteConfig(dg.Config):
    model_name: str | None = None


def _load(config: FraudTrainConfig, settings: Settings):
    from ml.data import load_master, simulated_history

    if config.source == "simulator":
        params = {"seed": config.sim_seed, "n_customers": config.sim_customers, "days": config.sim_days}
        if config.sim_start:
            params["start"] = datetime.fromisoformat(config.sim_start).replace(tzinfo=UTC)
        tx, cb = simulated_history(**params)
        return tx, cb, f"simulator {params}"
    if config.source != "master":
        raise dg.Failure(f"unknown source {config.source!r}: use 'master' or 'simulator'")
    tx, cb = load_master(settings)
    if tx.empty:
        raise dg.Failure("master.transactions is empty: land events before retraining the fraud model")
    return tx, cb, "master.transactions + master.chargebacks"


@dg.asset(
    key=CHALLENGER,
    group_name="ml",
    kinds={"sklearn", "mlflow"},
    deps=[dg.AssetKey(["marts", "fct_transactions"]), dg.AssetKey(["master", "chargebacks"])],
    description="A new version of the fraud model: Isolation Forest (+ label-aware combos measured against "
    "it), hyperparameters chosen on a validation window after the training window, metrics on a later "
    "hold-out, registered in MLflow with its data window, metrics, features and alert threshold.",
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset=CHALLENGER,
            blocking=True,
            description="The challenger beats the champion on the same hold-out (else no promotion).",
        ),
        dg.AssetCheckSpec(
            METRICS_CHECK,
            asset=CHALLENGER,
            blocking=True,
            description="Every hold-out metric key was computed and logged.",
        ),
    ],
)
def fraud_challenger(
    context: dg.AssetExecutionContext,
    config: FraudTrainConfig,
    postgres: PostgresResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    from ml.evaluate import METRIC_KEYS
    from ml.train import TrainConfig, train

    settings = settings_for(postgres, mlflow)
    tx, cb, source = _load(config, settings)
    context.log.info(f"training on {len(tx):,} transactions and {len(cb):,} chargebacks ({source})")
    cfg = TrainConfig(
        train_days=config.train_days,
        valid_days=config.valid_days,
        holdout_days=config.holdout_days,
        label_delay_days=config.label_delay_days,
        alerts_per_day=config.alerts_per_day,
        quick=config.quick,
        source=source,
        walk_cache=config.walk_cache,
    )
    name = config.model_name or mlflow.model_name
    result = train(tx, cb, cfg, settings=settings, model_name=name, promote=False)
    d = result.decision
    missing = [k for k in METRIC_KEYS if k not in result.metrics or math.isnan(result.metrics[k])]
    champion_md = {f"champion_{k}": v for k, v in (d.champion or {}).items()}
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "model_version": result.version,
            "mlflow_run_id": result.run_id,
            "mlflow_run_url": dg.MetadataValue.url(
                f"{mlflow.tracking_uri}/#/experiments/runs/{result.run_id}"
            ),
            "variant": result.params["variant"],
            "threshold": result.threshold,
            "alerts_per_day": result.alerts_per_day,
            "rows": dg.MetadataValue.json(result.n_rows),
            "windows": dg.MetadataValue.json(result.windows and result.summary()["windows"]),
            "timings_s": dg.MetadataValue.json(result.timings),
            **{k: v for k, v in result.metrics.items() if not math.isnan(v)},
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GATE_CHECK,
                passed=d.promote,
                description=d.reason,
                metadata={
                    "decision": "promote" if d.promote else "refuse",
                    "reason": d.reason,
                    "challenger_version": result.version,
                    "champion_version": d.champion_version or "none",
                    **{f"challenger_{k}": v for k, v in d.challenger.items() if not math.isnan(v)},
                    **{k: v for k, v in champion_md.items() if not math.isnan(v)},
                },
            ),
            dg.AssetCheckResult(
                check_name=METRICS_CHECK,
                passed=not missing,
                description="all metric keys logged" if not missing else f"missing or NaN: {missing}",
                metadata={"missing": dg.MetadataValue.json(missing)},
            ),
        ],
    )


@dg.asset(
    key=CHAMPION,
    group_name="ml",
    kinds={"mlflow"},
    deps=[CHALLENGER],
    description="The `champion` alias of the fraud model: moved to the challenger once its gate passed. The "
    "speed layer polls the alias between micro-batches and switches without a restart.",
)
def fraud_champion(
    context: dg.AssetExecutionContext, config: FraudPromoteConfig, mlflow: MlflowResource
) -> dg.MaterializeResult:
    from ml import registry

    event = context.instance.get_latest_materialization_event(CHALLENGER)
    if event is None or event.asset_materialization is None:
        raise dg.Failure("no challenger materialized yet: materialize ml/fraud_challenger first")
    md = event.asset_materialization.metadata
    version = str(md["model_version"].value)
    name = config.model_name or str(md["model_name"].value)
    s = settings_for(mlflow)
    tags = registry.client(s).get_model_version(name, version).tags
    # the blocking check already stopped a refused challenger; the tag is the registry's own record of it
    if tags.get("gate.decision") != "promote":
        raise dg.Failure(f"{name} v{version} was refused by the gate: {tags.get('gate.reason', '?')}")
    registry.set_alias(version, s, name, mlflow.champion_alias)
    context.log.info(f"{name}@{mlflow.champion_alias} -> v{version}: {tags.get('gate.reason')}")
    return dg.MaterializeResult(
        metadata={"model_name": name, "champion_version": version, "reason": tags.get("gate.reason", "")}
    )


class ChampionEvaluationConfig(dg.Config):
    """Which period the new champion is judged on (default: the `days` that end one label delay before the
    latest landed transaction, so their chargebacks had time to be reported)."""

    model_name: str | None = None
    start: str | None = None  # ISO date/timestamp; with `end`, overrides the default period
    end: str | None = None
    days: float = 7.0
    label_delay_days: float = 14.0
    stored: bool = True  # also judge the stream's stored scores, when it wrote any for the period


@dg.asset(
    key=CHAMPION_EVALUATION,
    group_name="ml",
    kinds={"mlflow"},
    deps=[CHAMPION],
    description="The champion's figures on a recent period of the master dataset, as `ecom evaluate` "
    "prints them: ROC AUC, average precision, card precision@k per day (k = its alert budget), recall / "
    "precision / FPR at its deployed threshold, scored offline and as the speed layer stored them. Logged "
    "as metadata here and as `evaluation.*` metrics on the version's MLflow run.",
)
def fraud_champion_evaluation(
    context: dg.AssetExecutionContext,
    config: ChampionEvaluationConfig,
    postgres: PostgresResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    from ml import registry
    from ml.assess import evaluate_period, log_report, parse_period, recent_period, report_metrics

    s = settings_for(postgres, mlflow)
    name = config.model_name or mlflow.model_name
    version = registry.champion_version(s, name)
    if version is None:
        raise dg.Failure(f"{name} has no champion to evaluate: materialize ml/fraud_champion first")
    if config.start and config.end:
        period = parse_period(config.start, config.end)
    else:
        period = recent_period(s, config.days, config.label_delay_days)
    report = evaluate_period(
        "master",
        period,
        model=version,
        stored=config.stored,
        settings=s,
        model_name=name,
        progress=False,
        stored_required=False,
    )
    run_id = log_report(report, s)
    context.log.info(f"{name} v{version} on {period.start} .. {period.end}: {report['offline']}")
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "model_version": version,
            "mlflow_run_id": run_id,
            "period_start": report["period"]["start"],
            "period_end": report["period"]["end"],
            "k_per_day": report["k_per_day"],
            "stored_rows": report.get("stored_rows", 0),
            "report": dg.MetadataValue.json(json.loads(json.dumps(report, default=str))),
            **report_metrics(report),
        }
    )


ASSETS = [fraud_challenger, fraud_champion, fraud_champion_evaluation]
