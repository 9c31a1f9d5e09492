"""The Dagster code location and the dbt project, checked without services (fast, pure)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from events.contract import enum_values
from kernel.settings import get_settings
from orchestration.batch import BatchOutcome, CheckOutcome, summarize
from orchestration.defs.dbt.automation import refresh_decision
from orchestration.translator import asset_key_for, layer_of

DBT_DIR = get_settings().dbt.project_dir


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from orchestration.definitions import defs

    return defs


@pytest.fixture(scope="module")
def graph(defs: dg.Definitions):
    return defs.resolve_asset_graph()


@pytest.fixture(scope="module")
def manifest() -> dict:
    from orchestration.defs.dbt.project import ecom_dbt_project

    return json.loads(Path(ecom_dbt_project().manifest_path).read_text())


def key(*parts: str) -> dg.AssetKey:
    return dg.AssetKey(list(parts))


EXPECTED_ASSETS = [
    key("generator", "shop_simulator"),
    key("kafka", "transactions"),
    key("master", "transactions"),
    key("master", "chargebacks"),
    key("speed", "scored_transactions"),
    key("speed", "fraud_alerts"),
    key("reference", "customers"),
    key("staging", "stg_master__transactions"),
    key("snapshots", "snap_reference__customers"),
    key("marts", "fct_transactions"),
    key("marts", "fct_order_lines"),
    key("marts", "fct_chargebacks"),
    key("marts", "dim_customer"),
    key("marts", "dim_product"),
    key("marts", "dim_merchant"),
    key("marts", "dim_date"),
    key("marts", "dim_payment_method"),
    key("marts", "dim_channel"),
    key("marts", "dim_device"),
    key("marts", "customer_baselines"),
    key("marts", "batch_watermark"),
    key("serving", "transactions"),
    key("serving", "fraud_alerts"),
    key("serving", "kpis_minutely"),
]


def test_asset_graph_holds_every_layer(graph) -> None:
    keys = set(graph.get_all_asset_keys())
    missing = [k.to_user_string() for k in EXPECTED_ASSETS if k not in keys]
    assert not missing, f"assets missing from the graph: {missing}"


def test_lineage_reads_generator_to_serving(graph) -> None:
    """generator -> kafka -> master -> staging -> marts -> serving, edge by edge."""
    path = [
        key("generator", "shop_simulator"),
        key("kafka", "transactions"),
        key("master", "transactions"),
        key("staging", "stg_master__transactions"),
        key("marts", "fct_transactions"),
        key("serving", "transactions"),
    ]
    for upstream, downstream in zip(path, path[1:], strict=False):
        assert upstream in graph.get(downstream).parent_keys, f"{upstream} is not upstream of {downstream}"


def test_dbt_tests_are_asset_checks(graph) -> None:
    checks = {(c.asset_key, c.name) for c in graph.asset_check_keys}
    for expected in [
        (key("marts", "fct_transactions"), "unique_fct_transactions_transaction_id"),
        (
            key("marts", "fct_transactions"),
            "relationships_fct_transactions_customer_sk__customer_sk__ref_dim_customer_",
        ),
        (key("marts", "dim_customer"), "unique_dim_customer_customer_sk"),
        (key("serving", "transactions"), "unique_serving_transactions_transaction_id"),
    ]:
        assert expected in checks, f"missing asset check {expected}"
    assert len(checks) >= 100


def test_groups_owners_and_descriptions(graph) -> None:
    fct = graph.get(key("marts", "fct_transactions"))
    assert fct.group_name == "marts"
    assert "team:batch-layer" in fct.owners
    assert "checkout" in (fct.description or "")
    assert graph.get(key("serving", "transactions")).group_name == "serving"
    assert graph.get(key("staging", "stg_master__transactions")).group_name == "staging"
    assert graph.get(key("marts", "fct_transactions")).freshness_policy is not None
    assert graph.get(key("master", "transactions")).freshness_policy is not None


def test_jobs_schedules_sensors(defs: dg.Definitions) -> None:
    job = defs.resolve_job_def("batch_refresh")
    assert key("marts", "fct_transactions") in job.asset_layer.executable_asset_keys
    assert (
        defs.resolve_schedule_def("batch_refresh_schedule").cron_schedule == get_settings().dbt.refresh_cron
    )
    assert defs.resolve_sensor_def("new_landings_sensor").job_name == "batch_refresh"
    observe = defs.resolve_job_def("observe_landing")
    assert key("master", "transactions") in observe.asset_layer.asset_graph.get_all_asset_keys()


def _check_names(defs: dg.Definitions, job_name: str) -> set[str]:
    job = defs.resolve_job_def(job_name)
    return {k.name for k in job.asset_layer.asset_graph.asset_check_keys}


def test_the_increment_runs_the_dbt_tests_and_the_full_refresh_the_gx_suites_too(
    defs: dg.Definitions,
) -> None:
    from orchestration.batch import dbt_op_config

    increment, full = _check_names(defs, "batch_refresh"), _check_names(defs, "batch_refresh_full")
    gx = {name for name in full if name.startswith("gx_")}
    # the GX suites on the marts would run after the one dbt op and gate nothing in the increment
    assert gx >= {"gx_marts_fct_transactions", "gx_marts_fk_dim_customer"} and not gx & increment
    assert "unique_dim_customer_customer_sk" in increment and increment == full - gx
    assert len(increment) >= 100
    assert defs.resolve_sensor_def("new_landings_sensor").job_name == "batch_refresh"
    assert defs.resolve_schedule_def("batch_refresh_schedule").job_name == "batch_refresh_full"
    # `ecom batch --job batch_refresh_full` keeps the job's every-row checks; the increment tests its slice
    full_job = defs.resolve_job_def("batch_refresh_full")
    assert dbt_op_config(full_job.run_config, True) == {"checks": "all", "full_refresh": True}
    assert dbt_op_config(defs.resolve_job_def("batch_refresh").run_config, False) == {"full_refresh": False}


def test_the_schedule_runs_every_check_on_every_row_and_a_day_can_be_backfilled(defs: dg.Definitions) -> None:
    from orchestration.defs.dbt.backfill import backfill_args

    schedule = defs.resolve_schedule_def("batch_refresh_schedule")
    request = schedule.evaluate_tick(dg.build_schedule_context()).run_requests[0]
    assert request.run_config["ops"]["ecom_dbt"]["config"]["checks"] == "all"
    backfill = defs.resolve_job_def("backfill_facts_day")
    assert (
        backfill.partitions_def is not None
        and backfill.partitions_def.get_partition_keys()[0] == "2019-01-01"
    )
    assert defs.resolve_job_def("refresh_all").partitions_def is None  # the backfill stays out of it
    assert backfill_args("2021-05-07")[-1] == '{"backfill_day": "2021-05-07"}'
    with pytest.raises(ValueError):
        backfill_args("2021-05-07; drop table x")


def test_translator_keys_and_layers() -> None:
    model = {
        "resource_type": "model",
        "schema": "serving",
        "name": "serving_transactions",
        "alias": "transactions",
    }
    source = {
        "resource_type": "source",
        "schema": "master",
        "name": "transactions",
        "identifier": "transactions",
    }
    snapshot = {"resource_type": "snapshot", "schema": "snapshots", "name": "snap_x"}
    assert asset_key_for(model) == key("serving", "transactions")
    assert asset_key_for(source) == key("master", "transactions")
    assert layer_of(snapshot) == "snapshots"
    assert layer_of({"resource_type": "model", "schema": "public"}) is None


@pytest.mark.parametrize(
    ("cursor", "new_rows", "max_seq", "threshold", "expected"),
    [
        (0, 10, 10, 50, (False, 0)),
        (0, 50, 57, 50, (True, 57)),
        (100, 0, 100, 1, (False, 100)),
        (100, 1000, 1100, 999, (True, 1100)),
    ],
)
def test_refresh_decision(cursor, new_rows, max_seq, threshold, expected) -> None:
    assert refresh_decision(cursor, new_rows, max_seq, threshold) == expected


def test_summary_names_failed_checks() -> None:
    outcome = BatchOutcome(
        run_id="r1",
        success=True,
        seconds=1.0,
        materialized=["marts/fct_transactions"],
        checks=[
            CheckOutcome("marts/fct_transactions", "unique_x", True, "ERROR"),
            CheckOutcome("marts/dim_date", "not_null_y", False, "ERROR"),
        ],
    )
    lines = summarize(outcome)
    assert "1 failed" in lines[0]
    assert any("marts/dim_date :: not_null_y" in line for line in lines)
    assert not outcome.ok


def test_contract_enums_in_dbt_match_the_contract() -> None:
    project = yaml.safe_load((DBT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["contract_enums"] == enum_values()


def test_every_model_and_column_is_described(manifest: dict) -> None:
    undocumented = []
    for node in manifest["nodes"].values():
        if node["resource_type"] not in ("model", "snapshot") or node["package_name"] != "ecom":
            continue
        if not node.get("description", "").strip():
            undocumented.append(node["name"])
        undocumented += [
            f"{node['name']}.{c}" for c, v in node["columns"].items() if not v.get("description")
        ]
        if node["resource_type"] == "model":
            assert node["columns"], f"{node['name']} declares no columns"
    assert not undocumented, f"missing descriptions: {undocumented}"


def _tests_by_column(manifest: dict) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or not node.get("column_name"):
            continue
        model = node["attached_node"].split(".")[-1] if node.get("attached_node") else None
        found.setdefault((model, node["column_name"]), set()).add(node["test_metadata"]["name"])
    return found


def test_every_key_is_unique_and_not_null_and_every_fk_has_relationships(manifest: dict) -> None:
    tests = _tests_by_column(manifest)
    primary_keys = {
        "fct_transactions": "transaction_id",
        "fct_order_lines": "order_line_id",
        "fct_chargebacks": "transaction_id",
        "dim_customer": "customer_sk",
        "dim_product": "product_id",
        "dim_merchant": "merchant_id",
        "dim_terminal": "terminal_id",
        "dim_date": "date_key",
        "dim_payment_method": "payment_method",
        "dim_channel": "channel",
        "dim_device": "device_id",
        "customer_baselines": "customer_id",
    }
    for model, column in primary_keys.items():
        assert {"unique", "not_null"} <= tests.get((model, column), set()), f"{model}.{column}"
    foreign_keys = {
        "fct_transactions": [
            "customer_sk",
            "merchant_id",
            "terminal_id",
            "device_id",
            "date_key",
            "payment_method",
            "channel",
        ],
        "fct_order_lines": ["transaction_id", "product_id", "merchant_id", "date_key"],
        "fct_chargebacks": ["transaction_id", "customer_sk", "merchant_id", "reported_date_key"],
    }
    for model, columns in foreign_keys.items():
        for column in columns:
            assert "relationships" in tests.get((model, column), set()), (
                f"{model}.{column} has no relationships"
            )
    for column in ("payment_method", "channel", "device_type", "currency_code"):
        assert "accepted_values" in tests.get(("fct_transactions", column), set()), column


def test_schemas_are_exactly_the_layer_names(manifest: dict) -> None:
    schemas = {n["schema"] for n in manifest["nodes"].values() if n["resource_type"] in ("model", "snapshot")}
    assert schemas == {"staging", "intermediate", "marts", "serving", "snapshots"}


def test_refresh_all_job_covers_every_domain_but_the_dashboards(defs: dg.Definitions) -> None:
    keys = defs.resolve_job_def("refresh_all").asset_layer.executable_asset_keys
    for expected in [
        key("marts", "fct_transactions"),
        key("serving", "transactions"),
        key("analytics", "rfm_customers"),
        key("analytics", "recs_personalized"),
        key("ml", "fraud_champion"),
    ]:
        assert expected in keys, f"refresh_all misses {expected.to_user_string()}"
    assert key("metabase", "dashboards") not in keys


def required_resources(defs: dg.Definitions) -> dict[str, set[str]]:
    """Resource key -> the assets, checks and sensors of the code location that require it."""
    repo = defs.get_repository_def()
    users: dict[str, set[str]] = {}
    nodes = [
        *(
            (a.node_def.name, a.required_resource_keys)
            for a in set(repo.assets_defs_by_key.values())
            if a.is_executable
        ),
        *((c.node_def.name, c.required_resource_keys) for c in set(repo.asset_checks_defs_by_key.values())),
        *((s.name, s.required_resource_keys) for s in repo.sensor_defs),
    ]
    for name, keys in nodes:
        for k in keys - {"io_manager"}:  # Dagster provides a default io_manager
            users.setdefault(k, set()).add(name)
    return users


def test_every_asset_check_and_sensor_gets_the_resources_it_requires(defs: dg.Definitions) -> None:
    required = required_resources(defs)
    provided = set(defs.get_repository_def().get_top_level_resources())
    missing = {k: sorted(v)[:3] for k, v in required.items() if k not in provided}
    assert not missing, f"required but not bound in orchestration/definitions.py: {missing}"
    # the services are reached through resources (issue 17): who requires which
    assert set(required) == {"postgres", "mlflow", "kafka", "metabase", "dbt", "quality", "analytics_source"}
    assert required["kafka"] == {"observe_kafka_topics"}
    assert {
        "ml__fraud_challenger",
        "ml__fraud_champion",
        "ml__fraud_champion_evaluation",
        "lifetime_value",
        "recommendations",
    } == required["mlflow"]
    assert {"ecom_dbt", "ml__fraud_challenger", "metabase__dashboards", "new_landings_sensor"} <= required[
        "postgres"
    ]
    assert all(name in required["postgres"] for name in required["quality"]), "a GX check without postgres"
    dg.Definitions.validate_loadable(defs)


def test_the_postgres_password_is_shown_as_its_variable_name(defs: dg.Definitions) -> None:
    """What the UI's resource page shows: the config, with the password as {"env": ...}, never its value."""
    config = defs.resources["postgres"].get_resource_definition().config_field.default_value
    assert config["password"] == {"env": "ECOM_PG_PASSWORD"}
    assert config["db"] == get_settings().postgres.db
    shown = json.dumps(
        {
            k: r.get_resource_definition().config_field.default_value
            for k, r in defs.resources.items()
            if isinstance(r, dg.ConfigurableResource)
        },
        default=str,
    )
    assert get_settings().postgres.password not in shown
