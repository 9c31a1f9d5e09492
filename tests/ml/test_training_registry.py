"""Training on generated data against the real MLflow server: registered versions, metrics, gate, champion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml import registry
from ml.data import model_input
from ml.evaluate import DEPLOYED_KEYS, METRIC_KEYS, at_threshold
from ml.features import FEATURE_COLUMNS, history_context
from ml.train import TrainConfig, train, window_labels
from tests.ml.conftest import unique

pytestmark = [pytest.mark.stack, pytest.mark.slow]

# a deliberately weaker model: a small plain forest, no labels (better than chance, worse than the selection)
WEAK = {"variant": "iforest", "n_estimators": 50, "max_samples": 64, "random_state": 3}


@pytest.fixture(scope="module")
def lifecycle(stack, train_history):
    """weak (first: no champion) -> good (better: promoted) -> weak again (worse: refused), one model name."""
    tx, cb = train_history
    name = unique("mltest_fraud")
    weak1 = train(
        tx, cb, TrainConfig(forced_params=WEAK, source="tests/ml weak"), settings=stack, model_name=name
    )
    good = train(tx, cb, TrainConfig(quick=True, source="tests/ml"), settings=stack, model_name=name)
    weak2 = train(
        tx, cb, TrainConfig(forced_params=WEAK, source="tests/ml weak"), settings=stack, model_name=name
    )
    return name, weak1, good, weak2


def test_simulated_hold_out_has_enough_fraud_to_compare(lifecycle):
    _, _, good, _ = lifecycle
    assert good.n_rows["frauds_holdout"] >= 30, good.n_rows


def test_training_registers_a_version_with_metrics_tags_and_plots(stack, lifecycle):
    name, _, good, _ = lifecycle
    c = registry.client(stack)
    run = c.get_run(good.run_id)
    assert set(METRIC_KEYS) <= set(run.data.metrics)
    assert all(0 <= run.data.metrics[k] <= 1 for k in METRIC_KEYS)
    # the plain forest is measured on the same hold-out beside whatever won
    assert "iforest.holdout.average_precision" in run.data.metrics
    mv = c.get_model_version(name, good.version)
    tags = mv.tags
    for key in ("data_window.train", "data_window.validation", "data_window.holdout", "threshold", "variant"):
        assert tags.get(key), key
    assert json.loads(tags["feature_columns"]) == FEATURE_COLUMNS
    assert {f"metric.{k}" for k in METRIC_KEYS} <= set(tags)
    artifacts = {a.path for a in c.list_artifacts(good.run_id, "evaluation")}
    for plot in ("pr_curve.png", "score_distribution.png", "feature_contributions.png"):
        assert f"evaluation/{plot}" in artifacts
    # windows: validation after training, hold-out after validation
    train_w, valid_w, hold_w = (
        tags[f"data_window.{k}"].split("/") for k in ("train", "validation", "holdout")
    )
    assert train_w[1] == valid_w[0] and valid_w[1] == hold_w[0] and hold_w[0] < hold_w[1]


def test_deployed_figures_are_the_registered_version_at_its_threshold_on_the_hold_out(
    stack, lifecycle, train_history
):
    """deployed_recall / _precision / _fpr on every run: the registered version, at the threshold it is
    deployed with (its tag), on the hold-out rows with their labels; beside the best-case recall."""
    name, _, good, _ = lifecycle
    tx, cb = train_history
    enriched = model_input(history_context(tx, cb)[0])
    lab = window_labels(enriched, cb, good.windows)
    version = registry.load_version(good.version, stack, name)
    expected = at_threshold(lab.y_holdout, version.score(enriched[lab.holdout]), version.threshold)
    logged = registry.client(stack).get_run(good.run_id).data.metrics
    assert set(DEPLOYED_KEYS) | {"deployed_threshold", "recall_at_fpr_2pct"} <= set(logged)
    assert logged["deployed_threshold"] == pytest.approx(version.threshold)
    for key, value in expected.items():
        assert logged[key] == pytest.approx(value), key
    assert 0 < logged["deployed_recall"] <= 1 and 0 <= logged["deployed_fpr"] < 0.05


def test_logged_model_has_signature_and_input_example(stack, lifecycle):
    import mlflow

    name, _, good, _ = lifecycle
    info = mlflow.models.get_model_info(f"models:/{name}/{good.version}")
    assert info.signature is not None
    assert "cust_amount_median" in info.signature.inputs.input_names()
    assert info.saved_input_example_info is not None


def test_gate_accepts_better_and_refuses_worse(stack, lifecycle):
    name, weak1, good, weak2 = lifecycle
    assert weak1.promoted and weak1.decision.reason == "no champion yet"
    assert good.promoted and good.decision.reason.startswith("better"), good.decision.reason
    assert good.metrics["average_precision"] > weak1.metrics["average_precision"]
    assert not weak2.promoted and "not better" in weak2.decision.reason
    assert registry.champion_version(stack, name) == good.version
    tags = registry.client(stack).get_model_version(name, weak2.version).tags
    assert tags["gate.decision"] == "refuse" and tags["gate.champion_version"] == good.version


def test_champion_loads_scores_and_explains(stack, lifecycle, train_history):
    name, _, good, _ = lifecycle
    champ = registry.load_champion(stack, name)
    assert champ.version == good.version and champ.threshold == pytest.approx(good.threshold)
    tx, cb = train_history
    enriched, _ = history_context(tx.tail(500), cb)
    scores = champ.score(enriched)
    assert scores.shape == (500,) and np.all((scores >= 0) & (scores <= 1))
    top = enriched.iloc[[int(np.argmax(scores))]]
    reasons = champ.reasons(top)[0]
    assert reasons and all({"feature", "value", "baseline", "text"} <= set(r) for r in reasons)


def test_loading_a_version_leaves_no_copy_in_the_temp_folder(
    stack, lifecycle, train_history, tmp_path, monkeypatch
):
    """MLflow's own download folder is never removed; a stream that hot-swaps (or a test session that loads
    hundreds of versions) filled /tmp with model copies. The loaded model must not depend on the files."""
    import tempfile

    name, weak1, _, _ = lifecycle
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    champ = registry.load_version(weak1.version, stack, name)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    tx, cb = train_history
    enriched, _ = history_context(tx.tail(50), cb)  # the model works without its downloaded files
    assert champ.version == weak1.version and champ.score(enriched).shape == (50,)


def test_alias_move_is_seen_by_the_cheap_poll(stack, lifecycle):
    name, weak1, good, _ = lifecycle
    registry.set_alias(weak1.version, stack, name)
    assert registry.champion_version(stack, name) == weak1.version
    registry.set_alias(good.version, stack, name)
    assert registry.champion_version(stack, name) == good.version
    assert registry.champion_version(stack, unique("no_such_model")) is None


def test_bootstrap_champion_on_the_real_model(stack):
    """`ecom up --bootstrap-model`'s entry point: a champion of settings.mlflow.model_name exists afterwards
    (trained on the simulator through the same path when the registry had none); a second call is a cheap
    no-op."""
    from ml.bootstrap import ensure_bootstrap_champion

    version = ensure_bootstrap_champion(stack)
    assert version == registry.champion_version(stack)
    assert ensure_bootstrap_champion(stack) == version
    champ = registry.load_champion(stack)
    assert champ.version == version and champ.feature_columns


def test_an_mlflow_run_writes_nothing_on_stdout(stack, capsys):
    """`ecom train --json`, `ecom bench stream --json`: stdout is the JSON document only; MLflow's own
    "View run ... at <url>" lines at the end of a run would come before it."""
    import mlflow

    from ml import registry

    registry.configure(stack)
    mlflow.set_experiment("ecom_tests_quiet_stdout")
    with mlflow.start_run(run_name="quiet"):
        mlflow.log_param("p", 1)
    assert capsys.readouterr().out == ""
