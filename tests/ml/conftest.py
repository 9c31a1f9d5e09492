"""Shared data of the ml tests: one simulated labelled history per session (the shop simulator, issue 3)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest

# a fixed start: the simulator is deterministic for a seed and a start, so two trainings see the same data
SIM_START = datetime(2026, 1, 5, tzinfo=UTC)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def small_history() -> tuple[pd.DataFrame, pd.DataFrame]:
    """~5k transactions over 60 days with chargebacks (the simulator's default world)."""
    from ml.data import simulated_history

    return simulated_history(seed=7, n_customers=2000, days=60, start=SIM_START)


@pytest.fixture(scope="session")
def train_history() -> tuple[pd.DataFrame, pd.DataFrame]:
    """~12k transactions with 3x the simulator's fraud rate: enough labels in every window of a training run."""
    from ml.data import simulated_history

    return simulated_history(seed=11, n_customers=8000, days=60, start=SIM_START, fraud_rate=3.0)
