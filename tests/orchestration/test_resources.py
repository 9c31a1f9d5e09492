"""Assets reach the services through resources built from the settings (issue 17): no asset or check body
reads the settings, Postgres is opened in one place, and secrets reach the resources as `dg.EnvVar`s."""

from __future__ import annotations

import ast
import dataclasses
import functools
import uuid
from pathlib import Path

import dagster as dg
import pytest

from kernel.errors import EcomError
from kernel.settings import REPO_ROOT, Settings
from orchestration.resources import MetabaseResource, PostgresResource, resources_from_settings

# the decorators that make a function the body of an asset, an observation or a check
BODY_DECORATORS = {
    "asset",
    "multi_asset",
    "graph_asset",
    "graph_multi_asset",
    "asset_check",
    "multi_asset_check",
    "observable_source_asset",
    "multi_observable_source_asset",
    "dbt_assets",
}
SETTINGS_READERS = {"get_settings", "load_settings"}


def _name(node: ast.expr) -> str:
    node = node.func if isinstance(node, ast.Call) else node
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def settings_reads_in_bodies(source: str) -> list[str]:
    """`function:line` for every settings read inside an asset/check body (nested functions included)."""
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if not any(_name(d) in BODY_DECORATORS for d in fn.decorator_list):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and _name(node) in SETTINGS_READERS:
                found.append(f"{fn.name}:{node.lineno}")
    return found


def postgres_opened(source: str) -> list[int]:
    """Lines that open a Postgres connection without kernel.db (psycopg.connect / psycopg2.connect)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "connect"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("psycopg", "psycopg2")
    ]


def _sources(folder: str) -> dict[Path, str]:
    return {p.relative_to(REPO_ROOT): p.read_text() for p in sorted((REPO_ROOT / folder).rglob("*.py"))}


def test_no_asset_or_check_body_reads_the_settings() -> None:
    sources = _sources("orchestration/defs")
    assert len(sources) > 10
    reads = {str(p): hits for p, src in sources.items() if (hits := settings_reads_in_bodies(src))}
    assert not reads, f"take a resource (orchestration/resources.py) instead of reading settings: {reads}"


def test_the_checker_finds_a_settings_read_in_a_body() -> None:
    source = (
        "import dagster as dg\n"
        "from kernel.settings import get_settings\n"
        "CRON = get_settings().dbt.refresh_cron  # at definition time: allowed\n"
        "@dg.asset(key=['a'])\n"
        "def a():\n"
        "    return get_settings().kafka\n"
        "def build(suite):\n"
        "    @dg.asset_check(asset='a', name=suite)\n"
        "    def _check(context):\n"
        "        return kernel.settings.get_settings()\n"
        "    return _check\n"
        "def helper():\n"
        "    return get_settings()\n"
    )
    assert settings_reads_in_bodies(source) == ["a:6", "_check:10"]


def test_postgres_is_opened_through_kernel_db_only() -> None:
    opened = {str(p): hits for p, src in _sources("orchestration").items() if (hits := postgres_opened(src))}
    assert not opened, f"open Postgres with PostgresResource.connect / kernel.db.connect: {opened}"
    assert postgres_opened("import psycopg\nwith psycopg.connect('dbname=x') as c:\n    pass\n") == [2]


def test_an_empty_secret_stays_empty_and_a_set_one_is_an_env_var(settings: Settings, monkeypatch) -> None:
    monkeypatch.setenv("METABASE_PASSWORD", "")  # record the variable so that the test restores it
    monkeypatch.delenv("METABASE_PASSWORD")
    monkeypatch.delenv("METABASE_API_KEY", raising=False)
    bare = dataclasses.replace(
        settings, metabase=dataclasses.replace(settings.metabase, password="", api_key="")
    )
    config = resources_from_settings(bare)["metabase"].get_resource_definition().config_field.default_value
    assert config["password"] == "" and config["api_key"] == ""

    fake_password = uuid.uuid4().hex  # a fresh value per run: it can only reach the config through the code
    with_secret = dataclasses.replace(
        bare, metabase=dataclasses.replace(bare.metabase, password=fake_password)
    )
    resource = resources_from_settings(with_secret)["metabase"]
    config = resource.get_resource_definition().config_field.default_value
    assert config["password"] == {"env": "METABASE_PASSWORD"}
    assert fake_password not in str(config)

    # in a run the variable resolves to the value the settings hold (exported if they read it from .env)
    @dg.asset
    def probe(metabase: MetabaseResource) -> str:
        return metabase.password

    result = dg.materialize([probe], resources={"metabase": resource})
    assert result.output_for_node("probe") == fake_password


def test_a_secret_that_disagrees_with_the_environment_is_refused(settings: Settings, monkeypatch) -> None:
    monkeypatch.setenv("METABASE_PASSWORD", "from-the-environment")
    other = dataclasses.replace(settings, metabase=dataclasses.replace(settings.metabase, password="other"))
    with pytest.raises(EcomError, match="METABASE_PASSWORD in the environment differs"):
        resources_from_settings(other)


@pytest.mark.stack
def test_the_postgres_resource_opens_the_configured_database(stack: Settings) -> None:
    @dg.asset
    def where(postgres: PostgresResource) -> tuple:
        return postgres.fetch_one("SELECT current_database(), current_user")

    postgres = resources_from_settings(stack)["postgres"]
    result = dg.materialize([where], resources={"postgres": postgres})
    assert result.output_for_node("where") == (stack.postgres.db, stack.postgres.user)


def test_the_dbt_resource_knows_its_version_without_running_dbt(monkeypatch) -> None:
    """dagster-dbt's stock resource runs `dbt --version` in a subprocess before every command (~3 s) and
    opens an in-process adapter (~3 s, every macro loaded) that only row-count / column metadata use. Ours
    reads the version of the venv's dbt-core (what `dbt --version` says) and opens no adapter."""
    import subprocess

    import dagster_dbt.core.resource as dbt_core_resource
    from dagster_dbt import DbtCliResource
    from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

    from orchestration.defs.dbt.project import EcomDbtCliResource, dbt_executable, ecom_dbt_project

    # the members overridden still exist in the pinned dagster-dbt (an upgrade that renames them fails here)
    assert isinstance(vars(DbtCliResource)["_cli_version"], functools.cached_property)
    assert callable(vars(DbtCliResource)["_initialize_dbt_core_adapter"])

    reported = subprocess.run(
        [dbt_executable(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    resource = EcomDbtCliResource(project_dir=ecom_dbt_project(), dbt_executable=dbt_executable())

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"dagster-dbt ran {args[0] if args else kwargs}")

    monkeypatch.setattr(dbt_core_resource, "check_output", no_subprocess)
    seen = {}
    monkeypatch.setattr(DbtCliInvocation, "run", staticmethod(lambda **kw: seen.update(kw)))
    resource.cli(["build"])
    assert f"installed: {resource._cli_version}" in reported
    assert seen["cli_version"] == resource._cli_version and seen["adapter"] is None
