"""Which dbt assets an increment builds: those downstream of a source that changed since the last build.

Every dbt source (a table the landing, the stream or the reference loader writes) has a *mark*, a value
that moves whenever rows are added or changed: the row count for the append-only tables (master, speed:
rows are never updated or deleted), the row count and latest `updated_at` for the reference tables
(their loader moves `updated_at` when a row really changes). The dbt project itself is one more source,
marked by a fingerprint of its compiled definition: an edited model, macro or var makes the next increment
build everything once.

The dbt op records, after a successful build, the marks read when it started, for every source whose
downstream assets the build covered entirely (`ops.batch_source_marks`). An increment (the sensor's
request, `ecom batch`, the benchmark) selects the dbt assets downstream of the sources whose mark differs
from the recorded one. A failed build records nothing, so the next increment selects what it covered
again; rows landing while a build runs move the mark past the recorded one, so the next increment picks
them up. One case is missed until the next change of that table (or the scheduled full build): an update
of a reference row that commits after a build read the marks, with an `updated_at` older than the latest one,
and no row added. Pure functions here; the SQL runs through the caller's connection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import dagster as dg
import psycopg

from kernel.errors import EcomError

PROJECT = dg.AssetKey(["dbt", "project"])

# source table -> the column whose maximum moves when a row changes (None: append-only, the count suffices)
MARK_COLUMNS: dict[str, str | None] = {
    "master.transactions": None,
    "master.chargebacks": None,
    "speed.scored_transactions": None,
    "speed.fraud_alerts": None,
    "reference.customers": "updated_at",
    "reference.products": "updated_at",
    "reference.merchants": "updated_at",
    "reference.terminals": "updated_at",
}

RECORDED_MARKS_SQL = "SELECT source, mark FROM ops.batch_source_marks"
RECORD_MARK_SQL = (
    "INSERT INTO ops.batch_source_marks (source, mark) VALUES (%s, %s) "
    "ON CONFLICT (source) DO UPDATE SET mark = excluded.mark, built_at = clock_timestamp()"
)


def source_table(key: dg.AssetKey) -> str:
    return ".".join(key.path)


def marks_sql(sources: Iterable[dg.AssetKey]) -> str:
    """One statement reading every source's mark: rows (source, mark)."""
    parts = []
    for key in sorted(sources, key=source_table):
        table = source_table(key)
        if table not in MARK_COLUMNS:
            raise KeyError(f"no mark defined for dbt source {table}: add it to MARK_COLUMNS ({__name__})")
        column = MARK_COLUMNS[table]
        mark = (
            "count(*)::text"
            if column is None
            else f"count(*)::text || '/' || coalesce(max({column})::text, '')"
        )
        parts.append(f"SELECT '{table}' AS source, {mark} AS mark FROM {table}")
    return "\nUNION ALL\n".join(parts)


def project_fingerprint(manifest: Mapping, project_yml: str) -> str:
    """Changes when anything dbt would build differently changes: a node's SQL or config, a macro, the
    project file (vars). Independent of when the manifest was parsed (no timestamps, no invocation ids)."""
    digest = hashlib.sha256(project_yml.encode())
    for uid in sorted(manifest["nodes"]):
        node = manifest["nodes"][uid]
        digest.update(uid.encode())
        digest.update(node.get("checksum", {}).get("checksum", "").encode())
        digest.update(json.dumps(node.get("config", {}), sort_keys=True, default=str).encode())
    for uid in sorted(manifest.get("macros", {})):
        digest.update(uid.encode())
        digest.update(manifest["macros"][uid].get("macro_sql", "").encode())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=4)
def project_mark(manifest_path: Path, project_dir: Path) -> str:
    manifest = json.loads(Path(manifest_path).read_text())
    return project_fingerprint(manifest, (Path(project_dir) / "dbt_project.yml").read_text())


def sources_of(deps: Mapping[dg.AssetKey, set[dg.AssetKey]]) -> set[dg.AssetKey]:
    """The dbt assets' upstream keys that are not dbt assets themselves: the sources."""
    return {up for ups in deps.values() for up in ups} - set(deps)


def downstream(changed: set[dg.AssetKey], deps: Mapping[dg.AssetKey, set[dg.AssetKey]]) -> set[dg.AssetKey]:
    """The dbt assets (keys of `deps`) reached from `changed` (sources or assets), transitively; every one
    of them when the project itself changed."""
    if PROJECT in changed:
        return set(deps)
    reached: set[dg.AssetKey] = set()
    frontier = set(changed)
    while frontier:
        nxt = {key for key, ups in deps.items() if ups & frontier and key not in reached}
        reached |= nxt
        frontier = nxt
    return reached


def changed_sources(current: Mapping[str, str], recorded: Mapping[str, str]) -> set[str]:
    """Sources whose mark moved (or was never recorded: the first build covers everything)."""
    return {source for source, mark in current.items() if recorded.get(source) != mark}


def covered_sources(selected: set[dg.AssetKey], deps: Mapping[dg.AssetKey, set[dg.AssetKey]]) -> set[str]:
    """The sources (and the project) a build of `selected` brought up to date: every dbt asset downstream
    of them was in the build."""
    covered = {source_table(s) for s in sources_of(deps) if downstream({s}, deps) <= selected}
    if set(deps) <= selected:
        covered.add(source_table(PROJECT))
    return covered


def increment_selection(
    current: Mapping[str, str], recorded: Mapping[str, str], deps: Mapping[dg.AssetKey, set[dg.AssetKey]]
) -> set[dg.AssetKey]:
    """The dbt assets an increment builds, given the marks now and the recorded ones."""
    changed = {dg.AssetKey(name.split(".")) for name in changed_sources(current, recorded)}
    return downstream(changed, deps)


def _execute(conn, sql: str, params: tuple | None = None):
    """A missing table means a database the kernel's schema was never applied to (or an older one): say so."""
    try:
        return conn.execute(sql, params)
    except psycopg.errors.UndefinedTable as exc:
        conn.rollback()
        raise EcomError(
            f"{exc.diag.message_primary} in database {conn.info.dbname}: the platform's tables are missing or "
            "older than this code; run `ecom up` (it applies kernel/sql/ to the database) and try again"
        ) from exc


def read_marks(conn, deps: Mapping[dg.AssetKey, set[dg.AssetKey]], project: str) -> dict[str, str]:
    """Every source's mark now (conn: a psycopg connection to the database dbt builds)."""
    marks = {source: mark for source, mark in _execute(conn, marks_sql(sources_of(deps))).fetchall()}
    marks[source_table(PROJECT)] = project
    return marks


def recorded_marks(conn) -> dict[str, str]:
    return {source: mark for source, mark in _execute(conn, RECORDED_MARKS_SQL).fetchall()}


def record_marks(conn, marks: Mapping[str, str], sources: Iterable[str]) -> None:
    for source in sorted(sources):
        _execute(conn, RECORD_MARK_SQL, (source, marks[source]))
