"""The Dagster code location of ecom-lambda: assembles `Definitions` from the domain packages, nothing else.

Each domain lives in `orchestration/defs/<name>/__init__.py` and exposes `defs = dg.Definitions(...)`
with its own resources (dbt, quality, analytics_source). The services every domain reaches (postgres,
mlflow, kafka, metabase) are bound once, here, from the settings (`resources_from_settings`). To add a
domain, append its name to DOMAINS. workspace.yaml points the webserver and daemon here.

Besides the domains' own jobs there is one cross-domain job, `refresh_all`: every materializable asset
except the Metabase dashboards (those need a Metabase server; `ecom dashboards provision` or the
`metabase/dashboards` asset when one runs). `ecom batch --job refresh_all` runs it (`make demo` does).
"""

from __future__ import annotations

import importlib

import dagster as dg

from kernel.settings import get_settings
from orchestration.resources import resources_from_settings

DOMAINS = ["ingest", "dbt", "metabase", "quality", "ml", "analytics"]


def load_domain_defs(domains: list[str] | None = None) -> list[dg.Definitions]:
    return [importlib.import_module(f"orchestration.defs.{name}").defs for name in (domains or DOMAINS)]


REFRESH_ALL = "refresh_all"


def refresh_all_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        REFRESH_ALL,
        selection=dg.AssetSelection.all() - dg.AssetSelection.groups("dashboards"),
        description="Every asset of every domain (dbt star schema and serving views, analytics tables, fraud "
        "model retrain) with all their checks, in dependency order; not the Metabase dashboards.",
    )


def build_definitions(domains: list[str] | None = None) -> dg.Definitions:
    return dg.Definitions.merge(
        *load_domain_defs(domains),
        dg.Definitions(resources=resources_from_settings(get_settings()), jobs=[refresh_all_job()]),
    )


defs = build_definitions()
