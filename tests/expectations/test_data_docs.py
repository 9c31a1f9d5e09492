"""The Data Docs site renders in a real (headless) browser and shows the suites and their results."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from expectations.runner import build_docs, run_suites
from tests.expectations.support import QSchema, make_events

pytestmark = [pytest.mark.stack, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is required for this test: apt-get install -y chromium")


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_the_context_is_generated_from_the_code_with_the_connection_string_as_a_variable(
    qschema: QSchema, gx_root
) -> None:
    """A fresh context (nothing committed) gets the code's suites; the URL with its password is never written."""
    from kernel.settings import service_env

    index = build_docs(project_root=gx_root, targets=qschema.targets)
    context = gx_root / "gx"
    suites = {p.stem for p in (context / "expectations").glob("*.json")}
    assert {"master_transactions", "speed_scored_transactions"} <= suites
    assert {p.stem for p in (context / "checkpoints").glob("*.json")} == suites
    config = (context / "great_expectations.yml").read_text()
    assert "connection_string: ${ECOM_PG_URL}" in config
    url = service_env(qschema.settings)["ECOM_PG_URL"]
    written = "".join(
        p.read_text() for p in context.rglob("*") if p.is_file() and p.suffix in {".yml", ".json"}
    )
    assert url not in written
    assert "master_transactions" in index.read_text()  # the site lists the suites before any validation


def test_data_docs_render_suites_and_results(qschema: QSchema, gx_root, tmp_path):
    events = make_events(20, 21, qschema.now)
    qschema.insert_events(events)
    qschema.insert_speed(events)
    dup = dict(events[0])
    qschema.insert_events([dup])  # one duplicate id, so the docs show a failed validation too
    run = run_suites(
        ["master_transactions", "speed_scored_transactions"],
        targets=qschema.targets,
        project_root=gx_root,
        trigger="test",
    )
    assert run.suite("master_transactions").status == "failed"
    index = build_docs(project_root=gx_root, targets=qschema.targets)
    assert index == run.docs_index and index.exists()

    dom = _browser(tmp_path, "--dump-dom", index.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for suite in ("master_transactions", "speed_scored_transactions"):
        assert suite in dom.stdout
    # bootstrap-table (vendored, no CDN reachable here) ran and built the results table in the page
    assert "Showing 1 to 2 of 2 rows" in dom.stdout
    assert "maxcdn.bootstrapcdn.com" not in index.read_text() and "static/vendor/" in index.read_text()

    # the failed validation's own page names the expectation that failed
    page = next((index.parent / "validations" / "master_transactions").rglob("*.html"))
    detail = _browser(tmp_path, "--dump-dom", page.as_uri())
    assert detail.returncode == 0
    assert "transaction_id" in detail.stdout and "unique" in detail.stdout.lower()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "quality_data_docs.png"
    shot.unlink(missing_ok=True)
    cap = _browser(tmp_path, f"--screenshot={shot}", "--window-size=1400,1000", index.as_uri())
    assert cap.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000
    failed_shot = ARTIFACTS / "quality_data_docs_failed_validation.png"
    failed_shot.unlink(missing_ok=True)
    cap = _browser(tmp_path, f"--screenshot={failed_shot}", "--window-size=1400,2400", page.as_uri())
    assert cap.returncode == 0 and failed_shot.exists()
