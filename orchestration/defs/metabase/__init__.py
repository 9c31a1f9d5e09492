"""Metabase dashboards as a Dagster asset: provisioned from dashboards/specs after the tables they read.

The asset runs the same reconcile as `ecom metabase provision` (dashboards.provision). Its upstream assets are
derived from the specs themselves (every `schema.table` a card's SQL reads, in the schemas that are assets),
so the lineage in the asset graph is exactly what the dashboards depend on.
"""

import dataclasses
import re
from functools import lru_cache

import dagster as dg

from dashboards.provision import MetabaseError, provision
from dashboards.spec import DashboardSpec, load_specs
from kernel.settings import Settings, get_settings

METABASE_DASHBOARDS = dg.AssetKey(["metabase", "dashboards"])
# schemas whose tables are assets of other domains (dbt models and sources, speed tables, analytics outputs)
ASSET_SCHEMAS = ("serving", "marts", "analytics", "speed", "master")
RELATION_RE = re.compile(r"\b(" + "|".join(ASSET_SCHEMAS) + r")\.([a-z_][a-z0-9_]*)\b")


class MetabaseResource(dg.ConfigurableResource):
    """Where Metabase is and how to authenticate (values from kernel.settings: METABASE_* environment)."""

    url: str
    user: str = ""
    password: str = ""
    api_key: str = ""

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "MetabaseResource":
        mb = (settings or get_settings()).metabase
        return cls(url=mb.url, user=mb.user, password=mb.password, api_key=mb.api_key)

    def settings(self, base: Settings | None = None) -> Settings:
        s = base or get_settings()
        mb = dataclasses.replace(
            s.metabase, url=self.url, user=self.user, password=self.password, api_key=self.api_key
        )
        return dataclasses.replace(s, metabase=mb)


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


@lru_cache(maxsize=1)
def _specs() -> tuple[DashboardSpec, ...]:
    return tuple(load_specs(get_settings().metabase.specs_dir))


@dg.asset(
    key=METABASE_DASHBOARDS,
    deps=upstream_keys(list(_specs())),
    group_name="dashboards",
    kinds={"metabase"},
    owners=["team:analytics"],
    description="The Metabase dashboards (Operations, Fraud, Customers, Products & recommendations, "
    "Data quality) reconciled with dashboards/specs through the Metabase REST API: idempotent, by name.",
)
def metabase_dashboards(
    context: dg.AssetExecutionContext, config: ProvisionConfig, metabase: MetabaseResource
) -> dg.MaterializeResult:
    settings = metabase.settings()
    try:
        result = provision(
            settings, list(_specs()), dry_run=config.dry_run, sync=config.sync, wait_s=config.wait_seconds
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


defs = dg.Definitions(
    assets=[metabase_dashboards],
    resources={"metabase": MetabaseResource.from_settings()},
)
