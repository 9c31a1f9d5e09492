"""Metabase dashboards as a Dagster asset: provisioned from dashboards/specs after the tables they read.

The asset runs the same reconcile as `ecom metabase provision` (dashboards.provision). Its upstream assets are
derived from the specs themselves (every `schema.table` a card's SQL reads, in the schemas that are assets),
so the lineage in the asset graph is exactly what the dashboards depend on. It reaches Metabase through the
`metabase` resource and tells Metabase how to read the platform database from the `postgres` resource
(both from orchestration.resources).
"""

import re

import dagster as dg

from dashboards.provision import MetabaseError, provision
from dashboards.spec import DashboardSpec, load_specs
from kernel.settings import get_settings
from orchestration.resources import MetabaseResource, PostgresResource, settings_for

METABASE_DASHBOARDS = dg.AssetKey(["metabase", "dashboards"])
# schemas whose tables are assets of other domains (dbt models and sources, speed tables, analytics outputs)
ASSET_SCHEMAS = ("serving", "marts", "analytics", "speed", "master")
RELATION_RE = re.compile(r"\b(" + "|".join(ASSET_SCHEMAS) + r")\.([a-z_][a-z0-9_]*)\b")


class ProvisionConfig(dg.Config):
    dry_run: bool = False
    sync: bool = True  # the tables were just rebuilt: let Metabase re-read their schema
    wait_seconds: float = 0.0


def upstream_keys(specs: list[DashboardSpec]) -> list[dg.AssetKey]:
    """Asset keys of every relation the specs' SQL reads, e.g. serving.transactions -> "
    "["serving","transactions"]."""
    found = {
        (m.group(1), m.group(2))
        for spec in specs
        for card in spec.cards
        for m in RELATION_RE.finditer(card.sql)
    }
    return [dg.AssetKey(list(k)) for k in sorted(found)]


# the dashboards are code in the repo: read once, when the definitions load
SPECS: tuple[DashboardSpec, ...] = tuple(load_specs(get_settings().metabase.specs_dir))


@dg.asset(
    key=METABASE_DASHBOARDS,
    deps=upstream_keys(list(SPECS)),
    group_name="dashboards",
    kinds={"metabase"},
    owners=["team:analytics"],
    description="The Metabase dashboards (Operations, Fraud, Customers, Products & recommendations, "
    "Data quality) reconciled with dashboards/specs through the Metabase REST API: idempotent, by name.",
)
def metabase_dashboards(
    context: dg.AssetExecutionContext,
    config: ProvisionConfig,
    metabase: MetabaseResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    settings = settings_for(postgres, metabase)
    try:
        result = provision(
            settings, list(SPECS), dry_run=config.dry_run, sync=config.sync, wait_s=config.wait_seconds
        )
    except MetabaseError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(result.report())
    return dg.MaterializeResult(
        metadata={
            "dry_run": config.dry_run,
            "changed_objects": len(result.writes),
            "unchanged_objects": len(result.changes) - len(result.writes),
            "changes": dg.MetadataValue.md(
                "\n".join(f"- {c.action} {c.kind} {c.name}" for c in result.writes) or "nothing changed"
            ),
            **{f"url: {name}": dg.MetadataValue.url(url) for name, url in result.dashboard_urls.items()},
        }
    )


defs = dg.Definitions(assets=[metabase_dashboards])
