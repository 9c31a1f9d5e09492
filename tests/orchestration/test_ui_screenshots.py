"""What a person sees: the Dagster asset lineage and a dbt docs model page, in headless Chromium.

Screenshots are kept under test-artifacts/batch/ (CI uploads that folder). The assertions read the
rendered DOM (`--dump-dom`), so they check the text a person would read, not just that a page loaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from kernel.settings import get_settings
from orchestration.dbt_docs import generate_docs, make_docs_server

pytestmark = [pytest.mark.stack, pytest.mark.slow]

ARTIFACTS = get_settings().repo_root / "test-artifacts" / "batch"


def chromium(url: str, tmp: Path, *, screenshot: Path | None = None, budget_ms: int = 25_000) -> str:
    """Render `url` headless; return the DOM, and write a screenshot when asked."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Debian's chromium is not installed: apt-get install -y chromium"
    base = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}", "--window-size=1800,1100",
        f"--virtual-time-budget={budget_ms}",
    ]  # fmt: skip
    if screenshot is not None:
        subprocess.run(
            [*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True
        )
    out = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True)
    return out.stdout


def assert_non_trivial_png(path: Path) -> None:
    assert path.exists() and path.stat().st_size > 20_000, f"{path} missing or tiny"
    with Image.open(path) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colors is None or len(colors) > 50, f"{path} is nearly blank ({len(colors)} colours)"


def reload_code_location(base_url: str) -> None:
    """Make the running webserver load the current definitions (as the UI's "Reload definitions")."""
    mutation = (
        'mutation { reloadRepositoryLocation(repositoryLocationName: "ecom_lambda") { __typename '
        "... on WorkspaceLocationEntry { locationOrLoadError { __typename ... on PythonError { message } } } } }"
    )
    reply = requests.post(f"{base_url}/graphql", json={"query": mutation}, timeout=180).json()
    entry = reply["data"]["reloadRepositoryLocation"]
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", json.dumps(entry)[:1000]


def test_dagster_asset_lineage_shows_the_batch_layer(stack, tmp_path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = get_settings().dagster.url
    reload_code_location(base)
    url = f"{base}/assets/marts/fct_transactions?view=lineage&lineageScope=upstream&lineageDepth=5"
    shot = ARTIFACTS / "dagster_lineage_fct_transactions.png"
    dom = chromium(url, tmp_path, screenshot=shot)
    assert_non_trivial_png(shot)
    for text in ("fct_transactions", "shop_simulator", "landing", "staging", "marts"):
        assert text in dom, f"{text!r} not rendered in the Dagster lineage"
    overview = ARTIFACTS / "dagster_global_lineage.png"
    dom = chromium(f"{base}/asset-groups", tmp_path, screenshot=overview)
    assert_non_trivial_png(overview)
    for group in ("landing", "staging", "marts", "serving"):
        assert group in dom, f"group {group!r} not in the global lineage"


@pytest.fixture(scope="module")
def docs_site(stack):
    target = generate_docs()
    server = make_docs_server(target, "127.0.0.1", 0)  # any free port: the real one may be serving
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    time.sleep(0.2)
    yield target, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_dbt_docs_model_page(docs_site, tmp_path) -> None:
    _, url = docs_site
    shot = ARTIFACTS / "dbt_docs_fct_transactions.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dom = chromium(f"{url}/#!/model/model.ecom.fct_transactions", tmp_path, screenshot=shot, budget_ms=15_000)
    assert_non_trivial_png(shot)
    for text in ("fct_transactions", "incremental", "customer_sk", "Customer version valid at event time"):
        assert text in dom, f"{text!r} not on the dbt docs page"


def test_documented_columns_are_the_real_columns(docs_site) -> None:
    """The YAML describes exactly the columns the database has (catalog.json is read from Postgres)."""
    target, _ = docs_site
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    drift = {}
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] != "model" or unique_id not in catalog["nodes"]:
            continue
        real = set(catalog["nodes"][unique_id]["columns"])
        documented = set(node["columns"])
        if real != documented:
            drift[node["name"]] = {
                "undocumented": sorted(real - documented),
                "absent": sorted(documented - real),
            }
    assert not drift, drift
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert all(m["unique_id"] in catalog["nodes"] for m in models), "a model has no relation in the database"
