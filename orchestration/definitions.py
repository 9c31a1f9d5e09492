"""The Dagster code location of ecom-lambda: assembles `Definitions` from the domain packages, nothing else.

Each domain lives in `orchestration/defs/<name>/__init__.py` and exposes `defs = dg.Definitions(...)`.
To add a domain, append its name to DOMAINS. workspace.yaml points the webserver and daemon here.
"""

from __future__ import annotations

import importlib

import dagster as dg

from orchestration.resources import shared_resources

DOMAINS = ["ingest", "dbt", "metabase", "quality", "ml", "analytics"]


def load_domain_defs(domains: list[str] | None = None) -> list[dg.Definitions]:
    return [importlib.import_module(f"orchestration.defs.{name}").defs for name in (domains or DOMAINS)]


def build_definitions(domains: list[str] | None = None) -> dg.Definitions:
    return dg.Definitions.merge(*load_domain_defs(domains), dg.Definitions(resources=shared_resources()))


defs = build_definitions()
