"""Fixtures of the reliability suite: one test model for the whole suite (the Spark session is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.streaming.support import register_test_versions, unique


@pytest.fixture(scope="session")
def model_name(stack) -> str:
    """A registered model of this suite only (trained on generated events through ml.registry), v1 champion."""
    name = unique("reliability_model")
    register_test_versions(stack, name, n_versions=1)
    return name
