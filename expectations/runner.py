"""Run the suites with Great Expectations 1.x: build the file context from code, validate, store, build docs.

The suites are defined once, in `expectations/suites.py`. The GX file context is generated from them at run
time into the git-ignored local state (settings.gx_context_dir, `.local/gx/`): `sync_context()` writes the
datasource, suites, validation definitions and checkpoints there, rewriting an object only when the code's
definition changed; validation results and Data Docs go to `uncommitted/` beside them. Nothing of it is
committed, so there is no second copy of a suite to drift. The Postgres connection string is never
written: the datasource says `${ECOM_PG_URL}` and GX substitutes it from the environment, which
`open_context()` fills from `kernel.settings.service_env()`.

Every suite has one checkpoint (so a Dagster check can run one suite), whose UpdateDataDocsAction
rebuilds the Data Docs on every run. A suite whose relation (or a relation its queries read) does not
exist yet is reported as `missing` and recorded, never crashes the run.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from expectations.catalog import ForeignKey, Targets, Thresholds, fact_foreign_keys
from expectations.docs_site import localize_site
from expectations.results import (
    ExpectationRow,
    blocking_failures,
    expectation_rows,
    missing_relation_row,
    score,
    store_rows,
)
from expectations.suites import SuiteSpec, build_suites
from kernel.db import connect
from kernel.errors import EcomError
from kernel.settings import Settings, get_settings, service_env

DATASOURCE = "ecom_pg"
BATCH_DEFINITION = "whole_table"
CONNECTION_STRING = "${ECOM_PG_URL}"  # substituted by GX from the environment; never the URL itself
DOCS_SITE = "local_site"


@dataclass
class SuiteOutcome:
    name: str
    relation: str
    asset_key: tuple[str, ...]
    status: str  # passed | failed | missing
    rows: list[ExpectationRow] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the checkpoint run (validation + Data Docs update)

    @property
    def success(self) -> bool:
        return self.status == "passed"

    @property
    def blocking(self) -> bool:
        """A critical expectation failed: what depends on this relation must not run."""
        return bool(blocking_failures(self.rows))

    @property
    def failed(self) -> list[ExpectationRow]:
        return [r for r in self.rows if not r.success]

    @property
    def score(self) -> float | None:
        return score(self.rows)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "relation": self.relation,
            "success": self.success,
            "status": self.status,
            "blocking": self.blocking,
            "evaluated": len(self.rows),
            "seconds": round(self.seconds, 3),
            "score": self.score,
            "failed_expectations": [
                {
                    "expectation": r.label,
                    "severity": r.severity,
                    "observed_value": r.observed_value,
                    **({"description": r.description} if r.description else {}),
                }
                for r in self.failed
            ],
        }


@dataclass
class QualityRun:
    run_id: str
    run_at: datetime
    suites: list[SuiteOutcome]
    docs_index: Path | None = None

    @property
    def rows(self) -> list[ExpectationRow]:
        return [r for s in self.suites for r in s.rows]

    @property
    def score(self) -> float | None:
        return score(self.rows)

    @property
    def blocking(self) -> bool:
        return any(s.blocking for s in self.suites)

    def suite(self, name: str) -> SuiteOutcome:
        return next(s for s in self.suites if s.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "score": None if self.score is None else round(self.score, 4),
            "run_id": self.run_id,
            "run_at": self.run_at.isoformat(),
            "blocking_failure": self.blocking,
            "data_docs": str(self.docs_index) if self.docs_index else None,
            "suites": [s.summary() for s in self.suites],
        }


# ------------------------------------------------------------------------------------------- database


def _pg_error(settings: Settings, exc: Exception) -> EcomError:
    pg = settings.postgres
    return EcomError(
        f"cannot reach Postgres at {pg.host}:{pg.port}/{pg.db} ({str(exc).strip().splitlines()[0]}); "
        "start the stack with `ecom up`"
    )


def relation_columns(relations: Sequence[str], settings: Settings | None = None) -> dict[str, list[str]]:
    """Columns of each relation that exists (tables and views); absent relations are left out."""
    s = settings or get_settings()
    out: dict[str, list[str]] = {}
    try:
        with connect(s) as conn:
            for rel in dict.fromkeys(relations):
                schema, table = rel.split(".", 1)
                rows = conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                    (schema, table),
                ).fetchall()
                if rows:
                    out[rel] = [r[0] for r in rows]
    except psycopg.OperationalError as exc:
        raise _pg_error(s, exc) from exc
    return out


# ------------------------------------------------------------------------------------------ GX context


def default_project_root(settings: Settings | None = None) -> Path:
    """GX puts its context in `<project_root>/gx`; ours is settings.gx_context_dir (`.local/gx`)."""
    return (settings or get_settings()).gx_context_dir.parent


def open_context(project_root: Path | None = None, settings: Settings | None = None):  # -> FileDataContext
    """The GX file context, with ${ECOM_PG_URL} resolvable and telemetry and progress bars off."""
    s = settings or get_settings()
    os.environ["ECOM_PG_URL"] = service_env(s)["ECOM_PG_URL"]
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage statistics leave the machine
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root = Path(project_root) if project_root else default_project_root(s)
    root.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(root))
    variables = ctx.variables
    bars = variables.progress_bars
    bars_off = (bars.get("globally") if isinstance(bars, dict) else getattr(bars, "globally", None)) is False
    if variables.analytics_enabled is not False or not bars_off:
        variables.analytics_enabled = False
        variables.progress_bars = ProgressBarsConfig(globally=False)
        variables.save()
    return ctx


def _expectation_signature(suite: Any) -> list[dict[str, Any]]:
    """What an expectation *is* (type, kwargs, severity, description), without GX's generated ids."""
    out = []
    for e in suite.expectations:
        cfg = e.configuration.to_json_dict()
        cfg.pop("id", None)
        cfg.get("kwargs", {}).pop("batch_id", None)
        out.append(cfg)
    return out


def _ensure_asset(ctx: Any, spec: SuiteSpec) -> Any:
    """The table asset of `spec.relation` and its whole-table batch definition (created when missing)."""
    if DATASOURCE in ctx.data_sources.all():
        ds = ctx.data_sources.get(DATASOURCE)
    else:
        ds = ctx.data_sources.add_postgres(name=DATASOURCE, connection_string=CONNECTION_STRING)
    asset_name = spec.relation.replace(".", "__")
    if asset_name in ds.get_asset_names():
        asset = ds.get_asset(asset_name)
        if (asset.schema_name, asset.table_name) != (spec.schema, spec.table):
            ds.delete_asset(asset_name)
            asset = ds.add_table_asset(name=asset_name, schema_name=spec.schema, table_name=spec.table)
    else:
        asset = ds.add_table_asset(name=asset_name, schema_name=spec.schema, table_name=spec.table)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION)
    except (KeyError, LookupError, ValueError):
        return asset.add_batch_definition_whole_table(BATCH_DEFINITION)


def sync_context(ctx: Any, spec: SuiteSpec) -> Any:
    """Make the context hold `spec` (asset, suite, validation definition, checkpoint); returns the checkpoint.

    Objects are rewritten only when the code's definition changed, so re-running leaves the generated
    files (and the ids the stored validation results refer to) untouched.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.exceptions import DataContextError

    batch_definition = _ensure_asset(ctx, spec)
    wanted = spec.gx_suite()
    try:
        current = ctx.suites.get(spec.name)
        changed = _expectation_signature(current) != _expectation_signature(wanted)
    except DataContextError:
        current, changed = None, True
    try:
        vd = ctx.validation_definitions.get(spec.name)
        stale_vd = vd.data.id != batch_definition.id or (current is not None and vd.suite.id != current.id)
    except DataContextError:
        vd, stale_vd = None, True
    try:
        checkpoint = ctx.checkpoints.get(spec.name)
    except DataContextError:
        checkpoint = None
    if changed or stale_vd or checkpoint is None:
        # dependants first: a checkpoint refers to its validation definition, which refers to the suite
        for factory in (ctx.checkpoints, ctx.validation_definitions):
            with suppress(DataContextError):
                factory.delete(spec.name)
        if changed:
            if current is not None:
                ctx.suites.delete(spec.name)
            current = ctx.suites.add(wanted)
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=spec.name, data=batch_definition, suite=current)
        )
        checkpoint = ctx.checkpoints.add(
            gx.Checkpoint(
                name=spec.name,
                validation_definitions=[vd],
                actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DOCS_SITE])],
                result_format="SUMMARY",
            )
        )
    return checkpoint


def docs_index(project_root: Path | None = None, settings: Settings | None = None) -> Path:
    root = Path(project_root) if project_root else default_project_root(settings)
    return root / "gx" / "uncommitted" / "data_docs" / DOCS_SITE / "index.html"


def _suite_specs(
    names: Sequence[str] | None,
    targets: Targets,
    thresholds: Thresholds | None,
    settings: Settings,
    foreign_keys: Sequence[ForeignKey] | None,
) -> tuple[list[SuiteSpec], dict[str, list[str]]]:
    """The code's suites for `targets`, and the columns of every relation they read that exists."""
    fks = fact_foreign_keys(settings.dbt.project_dir) if foreign_keys is None else list(foreign_keys)
    dims = [f"{targets.marts_schema}.{fk.dim_model}" for fk in fks]
    columns = relation_columns([*targets.relations().values(), *dims], settings)
    return build_suites(targets, thresholds, columns, names, foreign_keys=fks), columns


def build_docs(
    project_root: Path | None = None, settings: Settings | None = None, targets: Targets | None = None
) -> Path:
    """Rebuild the Data Docs site; returns index.html.

    The context is generated, so the suites are first synced from the code (those whose relations exist:
    a fresh state shows its suites before any run); then the site is rendered from them and the stored
    validation results. Without Postgres the site is rebuilt from what the context already holds.
    """
    s = settings or get_settings()
    with _context_lock(project_root, s):
        ctx = open_context(project_root, s)
        try:
            specs, columns = _suite_specs(None, targets or Targets(), None, s, None)
        except EcomError:  # Postgres is down: the relations cannot be looked up, the stored suites still show
            specs, columns = [], {}
        for spec in specs:
            if all(r in columns for r in (spec.relation, *spec.reads)):
                sync_context(ctx, spec)
        ctx.build_data_docs(site_names=[DOCS_SITE])
        index = docs_index(project_root, s)
        localize_site(index.parent)
    return index


@contextmanager
def _context_lock(project_root: Path | None, settings: Settings | None) -> Iterator[None]:
    """One writer at a time: the CLI, the Dagster daemon's runs and tests may share a context folder."""
    root = Path(project_root) if project_root else default_project_root(settings)
    lock_path = root / "gx" / "uncommitted" / ".ecom_quality.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------------ run


def run_suites(
    names: Sequence[str] | None = None,
    *,
    targets: Targets | None = None,
    thresholds: Thresholds | None = None,
    settings: Settings | None = None,
    project_root: Path | None = None,
    run_id: str | None = None,
    trigger: str = "cli",
    store: bool = True,
    foreign_keys: Sequence[ForeignKey] | None = None,
) -> QualityRun:
    """Validate the named suites (all by default), store every expectation result, rebuild Data Docs."""
    from great_expectations.core.run_identifier import RunIdentifier

    s = settings or get_settings()
    t = targets or Targets()
    run_id = run_id or uuid.uuid4().hex
    run_at = datetime.now(UTC)
    specs, columns = _suite_specs(names, t, thresholds, s, foreign_keys)
    outcomes: list[SuiteOutcome] = []
    with _context_lock(project_root, s):
        ctx = open_context(project_root, s)
        for spec in specs:
            outcome = SuiteOutcome(spec.name, spec.relation, spec.asset_key, status="missing")
            outcome.missing = [r for r in (spec.relation, *spec.reads) if r not in columns]
            if outcome.missing:
                outcome.rows = [
                    missing_relation_row(
                        run_id=run_id,
                        suite=spec.name,
                        data_asset=spec.relation,
                        missing=outcome.missing,
                        run_at=run_at,
                        trigger=trigger,
                    )
                ]
                outcomes.append(outcome)
                continue
            started = time.perf_counter()
            checkpoint = sync_context(ctx, spec)
            result = checkpoint.run(run_id=RunIdentifier(run_name=run_id, run_time=run_at))
            outcome.seconds = time.perf_counter() - started
            for validation in result.run_results.values():
                outcome.rows += expectation_rows(
                    validation.to_json_dict(),
                    run_id=run_id,
                    suite=spec.name,
                    data_asset=spec.relation,
                    run_at=run_at,
                    trigger=trigger,
                )
            outcome.status = "passed" if all(r.success for r in outcome.rows) else "failed"
            outcomes.append(outcome)
        localize_site(docs_index(project_root, s).parent)
    run = QualityRun(run_id, run_at, outcomes, docs_index(project_root, s))
    if store:
        try:
            store_rows(run.rows, s)
        except psycopg.OperationalError as exc:
            raise _pg_error(s, exc) from exc
    return run
