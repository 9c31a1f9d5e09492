"""Fixtures of the Metabase room: the API double on a free local port and settings pointed at it."""

from __future__ import annotations

from pathlib import Path

import pytest
from metabase_double import DoubleServer, settings_for

from dashboards.spec import load_specs
from kernel.settings import Settings, get_settings


@pytest.fixture
def double():
    server = DoubleServer()
    yield server
    server.stop()


@pytest.fixture
def mb_settings(double) -> Settings:
    return settings_for(double.url)


@pytest.fixture(scope="session")
def specs():
    return load_specs(Path(get_settings().metabase.specs_dir))
