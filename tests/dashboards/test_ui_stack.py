"""The UIs as services of the local stack (`ecom up --uis`, the end of `ecom demo`), the read-only role the
dashboards use, and the one Metabase version the production path claims.

The life-cycle test runs the three UI services of a private state folder on free ports against the shared
Postgres, so it never touches the developer's running UIs; `down` on that folder stops only them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid

import psutil
import psycopg
import pytest
import yaml
from browser import assert_non_trivial_png, chrome, full_page_screenshot, wait_for
from metabase_double import API_SHAPE_VERSION
from selenium.webdriver.common.by import By

from dashboards.app import create_app
from kernel.settings import REPO_ROOT, load_settings
from stack import services as stack_mod

ARTIFACTS = REPO_ROOT / "test-artifacts" / "dashboards"
UI_NAMES = ["dbt-docs", "data-docs", "dashboards"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_uis(stack, monkeypatch):
    state = REPO_ROOT / ".local" / "test-stacks" / f"uis-{uuid.uuid4().hex[:8]}"
    state.mkdir(parents=True)
    env = {
        "ECOM_STATE_DIR": str(state),
        "ECOM_PG_PASSWORD": stack.postgres.password,
        "ECOM_DASHBOARDS_PG_PASSWORD": stack.dashboards.pg_password,
        "ECOM_DBT_DOCS_PORT": str(_free_port()),
        "ECOM_DATA_DOCS_PORT": str(_free_port()),
        "ECOM_DASHBOARDS_PORT": str(_free_port()),
        "DAGSTER_HOME": str(stack.dagster.home),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    yield s
    stack_mod.down(s, progress=lambda m: None)
    shutil.rmtree(state, ignore_errors=True)


@pytest.mark.stack
@pytest.mark.slow
def test_uis_start_report_get_reused_and_stop(private_uis, stack, tmp_path):
    s = private_uis
    before = {st["name"]: st for st in stack_mod.status(s, uis=True)}
    assert [n for n in before if n in UI_NAMES] == UI_NAMES
    assert not any(before[n]["started"] or before[n]["healthy"] for n in UI_NAMES)

    statuses = stack_mod.up_uis(s, progress=lambda m: None)
    assert [st["name"] for st in statuses] == UI_NAMES
    assert all(st["healthy"] and st["pid"] and st["group"] == "ui" for st in statuses), statuses
    pids = {st["name"]: st["pid"] for st in statuses}

    # `ecom status --json` lists every service and UI with url/pid/healthy (same environment = same stack)
    out = subprocess.run(
        [sys.executable, "-m", "ecom.cli", "status", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ},
    )
    listed = {st["name"]: st for st in json.loads(out.stdout)["services"]}
    assert {n: (listed[n]["pid"], listed[n]["healthy"]) for n in UI_NAMES} == {
        n: (pids[n], True) for n in UI_NAMES
    }
    assert listed["dashboards"]["url"] == f"http://127.0.0.1:{s.dashboards.port}/"

    # re-running reuses them: nothing started, same processes
    messages: list[str] = []
    again = stack_mod.up_uis(s, progress=messages.append)
    assert messages == [] and {st["name"]: st["pid"] for st in again} == pids

    # every UI renders in a browser (screenshots kept as test artifacts)
    driver = chrome(tmp_path)
    try:
        pages = {
            "dbt-docs": (f"http://127.0.0.1:{s.dbt.docs_port}/#!/model/model.ecom.fct_transactions", "fct_transactions"),
            "data-docs": (f"http://127.0.0.1:{s.gx_data_docs_port}/index.html", "Expectation"),
            "dashboards": (f"http://127.0.0.1:{s.dashboards.port}/", "Operations"),
        }  # fmt: skip
        for name, (url, text) in pages.items():
            driver.get(url)
            wait_for(
                lambda t=text: t in driver.find_element(By.TAG_NAME, "body").text,
                60,
                what=f"{text} on {name}",
            )
            shot = ARTIFACTS / f"ui_{name}.png"
            full_page_screenshot(driver, shot)
            assert_non_trivial_png(shot)
    finally:
        driver.quit()

    tree = {
        p
        for pid in pids.values()
        for p in [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    }
    stack_mod.down(s, progress=lambda m: None)
    time.sleep(0.5)
    assert [
        p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ] == []
    after = {st["name"]: st for st in stack_mod.status(s, uis=True)}
    assert not any(after[n]["healthy"] or after[n]["started"] for n in UI_NAMES)
    # the shared stack was not touched
    assert all(st["healthy"] for st in stack_mod.status(stack))


def test_status_exit_code_counts_a_started_ui_that_died_but_not_one_never_started():
    core = {"name": "postgres", "healthy": True, "group": "core", "started": True}
    off = {"name": "dashboards", "healthy": False, "group": "ui", "started": False}
    died = {**off, "started": True}
    assert stack_mod.status_ok([core, off])
    assert not stack_mod.status_ok([core, died])
    assert not stack_mod.status_ok([{**core, "healthy": False}, off])


@pytest.mark.stack
def test_the_dashboards_role_reads_everything_and_writes_nothing(stack):
    d = stack.dashboards
    pg = stack.postgres
    with psycopg.connect(
        host=pg.host, port=pg.port, dbname=pg.db, user=d.pg_user, password=d.pg_password, autocommit=True
    ) as conn:
        assert conn.execute("SELECT count(*) >= 0 FROM master.transactions").fetchone() == (True,)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        for sql in (
            "CREATE TABLE master.dash_probe (x int)",
            "INSERT INTO quality.expectation_results (run_id) VALUES ('x')",
            "DELETE FROM master.transactions WHERE false",
        ):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute(sql)
        # even a session that asks for read-write has no privilege to write
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM master.transactions WHERE false")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE SCHEMA dash_probe")
    # a table the platform user creates later is readable at once (default privileges), as dbt's rebuilds are
    schema = f"dash_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.dsn(), autocommit=True) as owner:
        owner.execute(f"CREATE SCHEMA {schema}")
        owner.execute(f"CREATE TABLE {schema}.t AS SELECT 1 AS n")
    try:
        with psycopg.connect(
            host=pg.host, port=pg.port, dbname=pg.db, user=d.pg_user, password=d.pg_password
        ) as conn:
            assert conn.execute(f"SELECT n FROM {schema}.t").fetchone() == (1,)
    finally:
        with psycopg.connect(pg.dsn(), autocommit=True) as owner:
            owner.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.stack
def test_health_and_cards_name_the_role_when_it_cannot_connect(stack, specs, monkeypatch):
    monkeypatch.setenv("ECOM_PG_PASSWORD", stack.postgres.password)
    monkeypatch.setenv("ECOM_DASHBOARDS_PG_PASSWORD", "not-the-password")
    wrong = load_settings()
    client = create_app(wrong, specs).server.test_client()
    reply = client.get("/health")
    assert reply.status_code == 503 and "ecom_dashboards" in reply.get_data(as_text=True)
    assert create_app(stack, specs).server.test_client().get("/health").status_code == 200

    from dashboards.app import load_card

    view = load_card(wrong, specs[0].cards[0], {})
    assert view.body.error and "ecom up" in view.body.text and "\n" not in view.body.text


def test_one_metabase_image_tag_everywhere_and_the_double_reports_it():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    image = compose["services"]["metabase"]["image"]
    tag = image.split(":", 1)[1]
    mentioned = set()
    for path in [
        REPO_ROOT / "README.md",
        *(REPO_ROOT / "docs").glob("*.md"),
        REPO_ROOT / "docker-compose.yml",
    ]:
        mentioned |= set(re.findall(r"metabase/metabase:(v[\w.]+)", path.read_text()))
    assert mentioned == {tag}, f"docs and compose name different Metabase images: {sorted(mentioned)}"
    # the double imitates the API shape of that release (v0.64.2.x -> v0.64.2)
    assert tag.removesuffix(".x") == API_SHAPE_VERSION
    minimum = re.search(r"Metabase >= (0\.\d+)", (REPO_ROOT / "dashboards" / "provision.py").read_text())
    assert minimum and minimum.group(1) == "0.48"
