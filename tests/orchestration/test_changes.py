"""Which dbt assets an increment builds (orchestration/defs/dbt/changes.py): pure functions over the real
asset graph of the dbt project; the stack test is test_increments.py's story (its builds go through it)."""

from __future__ import annotations

import copy
import json

import dagster as dg
import pytest

from orchestration.defs.dbt.assets import dbt_asset_deps, manifest_path
from orchestration.defs.dbt.changes import (
    MARK_COLUMNS,
    PROJECT,
    changed_sources,
    covered_sources,
    downstream,
    increment_selection,
    marks_sql,
    project_fingerprint,
    sources_of,
)

K = dg.AssetKey


@pytest.fixture(scope="module")
def deps() -> dict:
    return dbt_asset_deps()


def test_every_source_the_dbt_models_read_has_a_mark(deps) -> None:
    sources = {".".join(key.path) for key in sources_of(deps)}
    assert {"master.transactions", "speed.scored_transactions", "reference.customers"} <= sources
    assert sources <= set(MARK_COLUMNS)
    sql = marks_sql(sources_of(deps))
    assert "max(updated_at)" in sql and "FROM reference.customers" in sql
    with pytest.raises(KeyError, match="no mark defined for dbt source nowhere.table"):
        marks_sql([K(["nowhere", "table"])])


def test_downstream_is_transitive_and_the_project_reaches_everything() -> None:
    deps = {K("a"): {K("src")}, K("b"): {K("a")}, K("c"): {K("other")}, K("d"): set()}
    assert downstream({K("src")}, deps) == {K("a"), K("b")}
    assert downstream({K("other")}, deps) == {K("c")}
    assert downstream(set(), deps) == set()
    assert downstream({PROJECT}, deps) == set(deps)


def test_a_source_is_changed_when_its_mark_moved_or_was_never_recorded() -> None:
    now = {"master.transactions": "12", "reference.customers": "4/t1", "dbt.project": "f"}
    assert changed_sources(now, now) == set()
    assert changed_sources(now, {}) == set(now)
    assert changed_sources(now, {**now, "master.transactions": "11"}) == {"master.transactions"}


def test_new_transactions_build_their_lineage_not_the_reference_side(deps) -> None:
    recorded = {"master.transactions": "10", "reference.customers": "4/t1", "dbt.project": "f"}
    now = {**recorded, "master.transactions": "11"}
    selected = increment_selection(now, recorded, deps)
    assert {
        K(["marts", "fct_transactions"]),
        K(["serving", "transactions"]),
        K(["marts", "dim_device"]),
    } <= selected
    assert K(["snapshots", "snap_reference__customers"]) not in selected
    assert K(["marts", "dim_channel"]) not in selected  # no source: changes only with the project
    customers = increment_selection({**recorded, "reference.customers": "5/t2"}, recorded, deps)
    assert {K(["snapshots", "snap_reference__customers"]), K(["marts", "dim_customer"])} <= customers
    assert increment_selection({**recorded, "dbt.project": "g"}, recorded, deps) == set(deps)


def test_a_build_covers_the_sources_whose_whole_lineage_it_built(deps) -> None:
    everything = set(deps)
    assert covered_sources(everything, deps) == {".".join(k.path) for k in sources_of(deps)} | {"dbt.project"}
    transactions = downstream({K(["master", "transactions"])}, deps)
    covered = covered_sources(transactions, deps)
    assert "master.transactions" in covered and "dbt.project" not in covered
    assert "reference.customers" not in covered
    partial = transactions - {K(["marts", "dim_device"])}
    assert "master.transactions" not in covered_sources(partial, deps)


def test_the_project_fingerprint_follows_definitions_not_parse_times() -> None:
    manifest = json.loads(manifest_path().read_text())
    base = project_fingerprint(manifest, "vars: {}")
    reparsed = copy.deepcopy(manifest)
    reparsed["metadata"]["generated_at"] = "2000-01-01T00:00:00Z"
    reparsed["metadata"]["invocation_id"] = "another"
    assert project_fingerprint(reparsed, "vars: {}") == base
    assert project_fingerprint(manifest, "vars: {late_landing_lookback: 1}") != base
    edited = copy.deepcopy(manifest)
    uid = next(u for u in edited["nodes"] if u.endswith(".fct_transactions"))
    edited["nodes"][uid]["checksum"]["checksum"] = "0" * 64
    assert project_fingerprint(edited, "vars: {}") != base
    macro = copy.deepcopy(manifest)
    mid = next(u for u in macro["macros"] if u.endswith(".new_slice_predicate"))
    macro["macros"][mid]["macro_sql"] += " "
    assert project_fingerprint(macro, "vars: {}") != base
