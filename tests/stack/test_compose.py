"""docker-compose.yml describes the same topology, is valid, and binds every port to 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from kernel.settings import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
ENV = {"ECOM_PG_PASSWORD": "x", "METABASE_USER": "u", "METABASE_PASSWORD": "p"}


def test_compose_is_valid_without_an_engine():
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (v1, Debian package) is installed by make bootstrap"
    out = subprocess.run(
        [exe, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, env={**os.environ, **ENV}
    )
    assert out.returncode == 0, out.stderr


def test_compose_refuses_to_start_without_secrets():
    exe = shutil.which("docker-compose")
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    out = subprocess.run(
        [exe, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, env=env, cwd="/tmp"
    )
    assert out.returncode != 0 and "ECOM_PG_PASSWORD" in out.stderr


def test_compose_has_the_whole_topology_bound_to_loopback():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = set(spec["services"])
    assert {
        "postgres",
        "kafka",
        "spark-master",
        "spark-worker",
        "mlflow",
        "dagster-webserver",
        "dagster-daemon",
        "metabase",
        "metabase-provision",
        "stream",
    } <= services
    for name, svc in spec["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


@pytest.mark.parametrize("path", ["README.md", "docs/ARCHITECTURE.md", ".env.example", "workspace.yaml"])
def test_documents_exist(path):
    assert (REPO_ROOT / path).exists()
