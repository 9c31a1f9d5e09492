"""Fixtures of the Metabase room: the API double on a free local port and settings pointed at it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from metabase_double import DoubleServer

from dashboards.spec import load_specs
from ecom.settings import Settings, get_settings

ADMIN = "admin@ecom.example"
ADMIN_PASSWORD = "s3cret-pass-42"


@pytest.fixture
def double():
    server = DoubleServer()
    yield server
    server.stop()


def settings_for(url: str, user: str = ADMIN, password: str = ADMIN_PASSWORD, api_key: str = "") -> Settings:
    base = get_settings()
    mb = dataclasses.replace(base.metabase, url=url, user=user, password=password, api_key=api_key)
    return dataclasses.replace(base, metabase=mb)


@pytest.fixture
def mb_settings(double) -> Settings:
    return settings_for(double.url)


@pytest.fixture(scope="session")
def specs():
    return load_specs(Path(get_settings().metabase.specs_dir))
