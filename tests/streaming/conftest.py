"""Fixtures of the speed-layer tests: one test model per module (the Spark session is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.streaming.support import register_test_versions, unique


@pytest.fixture(scope="module")
def test_model(stack):
    """A registered model of this module only (two versions, v1 champion): the alias can move freely."""
    name = unique("speedtest_model")
    versions = register_test_versions(stack, name, n_versions=2)
    return name, versions
