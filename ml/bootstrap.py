"""A first champion when the registry has none: trained on simulated history and promoted through the gate.

Made by the platform's front door (`ecom up --bootstrap-model`), by the benchmarks and by tests that need
the default model; never by the stream, which only scores (a missing champion stops it with a one-line
error naming these commands). It goes through the same training, registry and gate path as every
retrain: never a hard-coded scorer.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings
from ml import registry
from ml.data import simulated_history
from ml.train import TrainConfig, train


@contextmanager
def _bootstrap_lock(s: Settings, name: str) -> Iterator[None]:
    # several processes (stream, tests, Dagster) may ask at once: only one trains
    path = s.state_dir / "locks" / f"ml_bootstrap_{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_bootstrap_champion(
    settings: Settings | None = None, model_name: str | None = None, **sim: Any
) -> str:
    """The champion version; when the registry has none, train one on simulated data and promote it.

    Goes through the same training, registry and gate path as every retrain (never a hard-coded scorer).
    """
    s = settings or get_settings()
    name = model_name or s.mlflow.model_name
    version = registry.champion_version(s, name)
    if version is not None:
        return version
    with _bootstrap_lock(s, name):
        version = registry.champion_version(s, name)
        if version is not None:
            return version
        params = {"seed": 7, "n_customers": 20000, "n_products": 300, "n_merchants": 50, "days": 60, **sim}
        tx, cb = simulated_history(**params)
        # the small grid: a bootstrap must be quick; the scheduled retrains run the full selection
        cfg = TrainConfig(quick=True, source=f"bootstrap: simulator {params}")
        result = train(tx, cb, cfg, settings=s, model_name=name)
        if not result.promoted:
            raise EcomError(
                f"bootstrap model {name} v{result.version} was not promoted: {result.decision.reason}"
            )
        return result.version
