"""Dashboard specs: the YAML files under `dashboards/specs/`, loaded and validated into typed objects.

A spec is the whole truth about one Metabase dashboard: its name, its filters (dashboard parameters), and its
cards (native SQL, visualization, layout, and which filter feeds which template tag). Everything here is pure:
reading files and checking them, no HTTP and no database, so the provisioner and `check-sql` share one model.

User input never reaches SQL text: a filter value travels as a Metabase template-tag variable, which Metabase
(and `check-sql`) bind as a query parameter. The loader checks that every `{{tag}}` in the SQL is declared and
every declared tag is used, so a spec cannot smuggle a value into the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kernel.errors import EcomError

GRID_WIDTH = 24  # Metabase's dashboard grid has 24 columns (since v0.46)

TAG_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
TAG_TYPES = {"text", "number", "date"}
# dashboard parameter types that can feed a native variable of the given template-tag type
PARAMETER_TYPES = {
    "string/=": ("string", {"text"}),
    "category": (None, {"text", "number"}),
    "number/=": ("number", {"number"}),
    "date/single": ("date", {"date"}),
}
CHART_DISPLAYS = {"line", "bar", "area", "combo", "row", "scatter"}
DISPLAYS = CHART_DISPLAYS | {"pie", "scalar", "smartscalar", "gauge", "progress", "table", "funnel"}


class SpecError(EcomError):
    """A dashboard spec that cannot be provisioned; the message names the file and what to change."""


@dataclass(frozen=True)
class TemplateTag:
    name: str
    type: str  # text | number | date
    display_name: str
    default: str | None = None
    required: bool = False


@dataclass(frozen=True)
class Layout:
    row: int
    col: int
    size_x: int
    size_y: int


@dataclass(frozen=True)
class CardSpec:
    name: str
    sql: str
    display: str
    visualization_settings: dict[str, Any]
    layout: Layout
    description: str = ""
    template_tags: tuple[TemplateTag, ...] = ()
    filters: dict[str, str] = field(default_factory=dict)  # dashboard parameter slug -> template tag name
    columns: tuple[str, ...] = ()  # columns the visualization needs (derived unless given)

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.template_tags]


@dataclass(frozen=True)
class ParameterSpec:
    slug: str
    name: str
    type: str
    default: Any = None


@dataclass(frozen=True)
class DashboardSpec:
    key: str  # file stem, e.g. "operations"
    name: str
    description: str
    cards: tuple[CardSpec, ...]
    parameters: tuple[ParameterSpec, ...] = ()
    auto_refresh_seconds: int | None = None
    source: Path | None = None

    def card(self, name: str) -> CardSpec:
        for c in self.cards:
            if c.name == name:
                return c
        raise KeyError(name)


def required_columns(display: str, settings: dict[str, Any]) -> list[str]:
    """The result columns a visualization reads, from its visualization settings (what check-sql asserts)."""
    if display in CHART_DISPLAYS:
        return [*settings.get("graph.dimensions", []), *settings.get("graph.metrics", [])]
    if display == "pie":
        return [c for c in (settings.get("pie.dimension"), settings.get("pie.metric")) if c]
    if display in {"scalar", "smartscalar", "gauge", "progress"}:
        return [settings["scalar.field"]] if settings.get("scalar.field") else []
    if display == "funnel":
        return [c for c in (settings.get("funnel.dimension"), settings.get("funnel.metric")) if c]
    return []


def sql_tags(sql: str) -> list[str]:
    """Template-tag names referenced in native SQL, in order of first use."""
    seen: list[str] = []
    for name in TAG_RE.findall(sql):
        if name not in seen:
            seen.append(name)
    return seen


def _check_optional_brackets(sql: str) -> bool:
    depth = 0
    for i in range(len(sql)):
        if sql.startswith("[[", i):
            depth += 1
            if depth > 1:
                return False
        elif sql.startswith("]]", i) and depth:
            depth -= 1
    return depth == 0


def _req(obj: dict[str, Any], key: str, where: str, kind: type = str) -> Any:
    value = obj.get(key)
    if value is None or (kind is str and not str(value).strip()):
        raise SpecError(f"{where}: '{key}' is missing; add it")
    if not isinstance(value, kind):
        raise SpecError(f"{where}: '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def parse_card(raw: dict[str, Any], where: str) -> CardSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: a card must be a mapping")
    name = _req(raw, "name", where)
    where = f"{where} card '{name}'"
    sql = _req(raw, "sql", where).strip()
    display = _req(raw, "display", where)
    if display not in DISPLAYS:
        raise SpecError(f"{where}: display '{display}' is not one of {sorted(DISPLAYS)}")
    viz = raw.get("visualization_settings") or {}
    if not isinstance(viz, dict):
        raise SpecError(f"{where}: visualization_settings must be a mapping")
    lay = _req(raw, "layout", where, dict)
    try:
        layout = Layout(int(lay["row"]), int(lay["col"]), int(lay["size_x"]), int(lay["size_y"]))
    except (KeyError, TypeError, ValueError):
        raise SpecError(f"{where}: layout needs integer row, col, size_x, size_y") from None
    if layout.row < 0 or layout.col < 0 or layout.size_x < 1 or layout.size_y < 1:
        raise SpecError(f"{where}: layout row/col must be >= 0 and sizes >= 1")
    if layout.col + layout.size_x > GRID_WIDTH:
        raise SpecError(f"{where}: col + size_x exceeds the {GRID_WIDTH}-column grid")

    tags = []
    for tag_name, t in (raw.get("template_tags") or {}).items():
        t = t or {}
        ttype = t.get("type", "text")
        if ttype not in TAG_TYPES:
            raise SpecError(f"{where}: template tag '{tag_name}' type must be one of {sorted(TAG_TYPES)}")
        default = t.get("default")
        tags.append(
            TemplateTag(
                name=tag_name,
                type=ttype,
                display_name=t.get("display_name", tag_name.replace("_", " ").title()),
                default=None if default is None else str(default),
                required=bool(t.get("required", False)),
            )
        )
    used, declared = set(sql_tags(sql)), {t.name for t in tags}
    if used - declared:
        raise SpecError(
            f"{where}: SQL uses {sorted(used - declared)} without a template_tags entry; declare them"
        )
    if declared - used:
        raise SpecError(
            f"{where}: template tags {sorted(declared - used)} are declared but not used in the SQL"
        )
    for t in tags:
        if t.required and t.default is None:
            raise SpecError(f"{where}: required template tag '{t.name}' needs a default")
    if not _check_optional_brackets(sql):
        raise SpecError(f"{where}: unbalanced or nested [[ ]] optional clause in the SQL")
    if re.search(r"%\(|\{\d*\}|%s", sql):
        # the SQL is a fixed text; values only ever enter through template tags
        raise SpecError(
            f"{where}: SQL contains a Python format placeholder; use a {{{{template_tag}}}} instead"
        )

    filters = raw.get("filters") or {}
    if not isinstance(filters, dict):
        raise SpecError(f"{where}: filters must map a dashboard parameter slug to a template tag")
    for slug, tag in filters.items():
        if tag not in declared:
            raise SpecError(f"{where}: filter '{slug}' targets unknown template tag '{tag}'")

    columns = tuple(raw.get("columns") or required_columns(display, viz))
    if not columns:
        raise SpecError(
            f"{where}: cannot tell which columns the '{display}' visualization needs; "
            "set graph.dimensions/graph.metrics, scalar.field, pie.* or a 'columns' list"
        )
    return CardSpec(
        name=name,
        sql=sql,
        display=display,
        visualization_settings=viz,
        layout=layout,
        description=str(raw.get("description") or "").strip(),
        template_tags=tuple(tags),
        filters=dict(filters),
        columns=columns,
    )


def _overlaps(a: Layout, b: Layout) -> bool:
    return not (
        a.col + a.size_x <= b.col
        or b.col + b.size_x <= a.col
        or a.row + a.size_y <= b.row
        or b.row + b.size_y <= a.row
    )


def parse_dashboard(raw: Any, key: str, source: Path | None = None) -> DashboardSpec:
    where = str(source or key)
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: a dashboard spec must be a YAML mapping")
    name = _req(raw, "name", where)
    raw_cards = raw.get("cards") or []
    if not raw_cards:
        # an empty dashcard list wipes a Metabase dashboard: a spec without cards is refused, never
        # provisioned
        raise SpecError(f"{where}: a dashboard needs at least one card")
    cards = tuple(parse_card(c, where) for c in raw_cards)
    names = [c.name for c in cards]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{where}: card names must be unique within a dashboard; duplicated: {dupes}")
    for i, a in enumerate(cards):
        for b in cards[i + 1 :]:
            if _overlaps(a.layout, b.layout):
                raise SpecError(f"{where}: cards '{a.name}' and '{b.name}' overlap on the grid")

    params = []
    for p in raw.get("parameters") or []:
        slug = _req(p, "slug", f"{where} parameter")
        ptype = p.get("type", "string/=")
        if ptype not in PARAMETER_TYPES:
            raise SpecError(f"{where}: parameter '{slug}' type must be one of {sorted(PARAMETER_TYPES)}")
        params.append(
            ParameterSpec(slug=slug, name=p.get("name", slug.title()), type=ptype, default=p.get("default"))
        )
    slugs = {p.slug for p in params}
    for c in cards:
        for slug, tag_name in c.filters.items():
            if slug not in slugs:
                raise SpecError(f"{where} card '{c.name}': filter '{slug}' is not a dashboard parameter")
            ptype = next(p.type for p in params if p.slug == slug)
            ttype = next(t.type for t in c.template_tags if t.name == tag_name)
            if ttype not in PARAMETER_TYPES[ptype][1]:
                raise SpecError(
                    f"{where} card '{c.name}': parameter '{slug}' ({ptype}) cannot feed {ttype} tag "
                    f"'{tag_name}'"
                )
    refresh = raw.get("auto_refresh_seconds")
    if refresh is not None and (not isinstance(refresh, int) or refresh <= 0):
        raise SpecError(f"{where}: auto_refresh_seconds must be a positive integer")
    return DashboardSpec(
        key=key,
        name=name,
        description=str(raw.get("description") or "").strip(),
        cards=cards,
        parameters=tuple(params),
        auto_refresh_seconds=refresh,
        source=source,
    )


def load_spec(path: Path) -> DashboardSpec:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read dashboard spec {path}: {exc.strerror}; check the path") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    return parse_dashboard(raw, path.stem, path)


def load_specs(specs_dir: Path, only: list[str] | None = None) -> list[DashboardSpec]:
    """Every `*.yaml` spec in the folder (sorted by file name), optionally only the given keys."""
    paths = sorted(specs_dir.glob("*.yaml"))
    if not paths:
        raise SpecError(f"no dashboard specs (*.yaml) in {specs_dir}; check METABASE specs_dir")
    specs = [load_spec(p) for p in paths]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"dashboard names must be unique across specs; duplicated: {dupes}")
    if only:
        unknown = sorted(set(only) - {s.key for s in specs})
        if unknown:
            raise SpecError(f"unknown dashboard(s) {unknown}; choose from {[s.key for s in specs]}")
        specs = [s for s in specs if s.key in only]
    return specs
