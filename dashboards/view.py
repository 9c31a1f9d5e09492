"""What a dashboard looks like without Metabase: the spec and a card's result turned into plain view models.

Pure functions only (no Dash, no database): the grid placement of a card, the values its filters feed its
template tags, and its visualization as Metabase draws it: a Plotly figure (as a plain dict) for line, bar,
area, row, combo, scatter, pie and funnel; a formatted number for scalar; rows with their cell colours for a
table (Metabase's `table.column_formatting`, e.g. the white-to-blue range of a heat-map table).
`dashboards/app.py` is the thin Dash adapter that puts these on a page.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dashboards.spec import CardSpec, DashboardSpec, Layout

ROW_HEIGHT_PX = 56  # one unit of a card's size_y (Metabase's grid rows are about this tall)
TABLE_MAX_ROWS = 2000  # Metabase shows at most 2,000 rows in a dashboard table card
SCALAR_DISPLAYS = {"scalar", "smartscalar", "gauge", "progress"}
FIGURE_DISPLAYS = {"line", "bar", "area", "combo", "row", "scatter", "pie", "funnel"}
# Metabase's default series palette (the first colours of its chart palette)
PALETTE = ["#509EE3", "#88BF4D", "#A989C5", "#EF8C8C", "#F9D45C", "#F2A86F", "#98D9D9", "#7172AD"]


# ------------------------------------------------------------------------------------------------ layout


def grid_style(layout: Layout) -> dict[str, str]:
    """CSS grid placement of a card on the 24-column grid: the spec's row/col/size_x/size_y as is."""
    return {
        "gridColumn": f"{layout.col + 1} / span {layout.size_x}",
        "gridRow": f"{layout.row + 1} / span {layout.size_y}",
    }


def grid_rows(spec: DashboardSpec) -> int:
    """Rows the dashboard's grid needs (the bottom edge of its lowest card)."""
    return max(c.layout.row + c.layout.size_y for c in spec.cards)


# ----------------------------------------------------------------------------------------------- filters


def parameter_defaults(spec: DashboardSpec) -> dict[str, Any]:
    """Each dashboard filter's initial value (its spec default, else empty)."""
    return {p.slug: p.default for p in spec.parameters}


def card_values(card: CardSpec, params: dict[str, Any]) -> dict[str, Any]:
    """Template-tag values of a card from the dashboard's filter values (slug -> value), wired as in Metabase:
    only the filters the card maps; an empty filter gives no value (the tag's default or its [[ ]] clause
    being dropped is then native.render's business)."""
    values = {}
    for slug, tag in card.filters.items():
        value = params.get(slug)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        values[tag] = value.strip() if isinstance(value, str) else value
    return values


# ------------------------------------------------------------------------------------------------ values


def plain(value: Any) -> Any:
    """A database value as JSON-ready data for a chart: numbers as float/int, times as ISO text."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def format_value(value: Any, decimals: int | None = None) -> str:
    """A value as a table cell or a scalar shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if decimals is not None:
            return f"{number:,.{decimals}f}"
        return f"{number:,.0f}" if number.is_integer() else f"{number:,.2f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def column_settings(card: CardSpec, column: str) -> dict[str, Any]:
    """Metabase's per-column settings (`column_settings: {'["name","col"]': {...}}`) for one column."""
    settings = card.visualization_settings.get("column_settings") or {}
    return settings.get(json.dumps(["name", column], separators=(",", ":")), {})


# ------------------------------------------------------------------------------------------------- views


@dataclass(frozen=True)
class ScalarView:
    text: str
    column: str


@dataclass(frozen=True)
class TableView:
    columns: tuple[str, ...]
    # each cell: (text, background colour or "") ; a highlighted row colours all of its cells
    rows: tuple[tuple[tuple[str, str], ...], ...]
    truncated: int = 0  # rows left out beyond TABLE_MAX_ROWS


@dataclass(frozen=True)
class FigureView:
    figure: dict[str, Any]
    marks: int  # points / bars / slices the figure draws (what a test counts in the DOM)


@dataclass(frozen=True)
class MessageView:
    text: str
    error: bool = False


@dataclass(frozen=True)
class CardView:
    card: str
    display: str
    body: ScalarView | TableView | FigureView | MessageView


def card_view(
    card: CardSpec, columns: tuple[str, ...], rows: list[tuple[Any, ...]], error: str = ""
) -> CardView:
    """The card's visualization of a query result (or its error, shown in place of the chart)."""
    if error:
        return CardView(card.name, card.display, MessageView(error, error=True))
    missing = [c for c in card.columns if c not in columns]
    if missing:
        return CardView(
            card.name,
            card.display,
            MessageView(f"the result lacks column(s) {missing} this card needs (got {list(columns)})", True),
        )
    if not rows:
        return CardView(card.name, card.display, MessageView("No results"))
    if card.display in SCALAR_DISPLAYS:
        body: Any = scalar_view(card, columns, rows)
    elif card.display in FIGURE_DISPLAYS:
        body = figure_view(card, columns, rows)
    else:
        body = table_view(card, columns, rows)
    return CardView(card.name, card.display, body)


# ------------------------------------------------------------------------------------------------ scalar


def scalar_view(card: CardSpec, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> ScalarView:
    """The first row's `scalar.field` (else its first column), with the column's prefix/suffix/decimals."""
    column = card.visualization_settings.get("scalar.field") or columns[0]
    value = rows[0][columns.index(column)]
    cs = column_settings(card, column)
    scale = cs.get("scale")
    if scale is not None and isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        value = float(value) * float(scale)
    text = format_value(value, cs.get("decimals"))
    if value is None:
        text = "–"
    return ScalarView(f"{cs.get('prefix', '')}{text}{cs.get('suffix', '')}", column)


# ------------------------------------------------------------------------------------------------- table


def _hex_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def blend(start: str, end: str, t: float) -> str:
    """The colour a share `t` (0..1) of the way from `start` to `end` (hex), as Metabase's range formatting."""
    t = min(1.0, max(0.0, t))
    a, b = _hex_rgb(start), _hex_rgb(end)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        number = float(value)
        return None if math.isnan(number) else number
    return None


def _matches(value: Any, operator: str, target: Any) -> bool:
    if operator == "is-null":
        return value is None
    if operator == "not-null":
        return value is not None
    if value is None:
        return False
    if operator in ("=", "!="):
        equal = (_number(value) == _number(target)) if _number(value) is not None else value == target
        return equal if operator == "=" else not equal
    a, b = _number(value), _number(target)
    if a is None or b is None:
        if operator == "contains":
            return str(target) in str(value)
        return False
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}.get(operator, False)


def table_view(card: CardSpec, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> TableView:
    """Rows as text with Metabase's conditional formatting: `range` colours a cell between two colours by
    its value (min/max from the spec when `custom`, else the column's own), `single` colours a cell (or the
    whole row, `highlight_row`) whose value meets the operator."""
    shown = rows[:TABLE_MAX_ROWS]
    colours: list[list[str]] = [[""] * len(columns) for _ in shown]
    for rule in card.visualization_settings.get("table.column_formatting") or []:
        idx = [columns.index(c) for c in rule.get("columns", []) if c in columns]
        if rule.get("type") == "range":
            start, end = (rule.get("colors") or ["#ffffff", "#509EE3"])[:2]
            for i in idx:
                numbers = [n for n in (_number(r[i]) for r in shown) if n is not None]
                if not numbers:
                    continue
                lo = rule.get("min_value") if rule.get("min_type") == "custom" else min(numbers)
                hi = rule.get("max_value") if rule.get("max_type") == "custom" else max(numbers)
                for r, row in enumerate(shown):
                    n = _number(row[i])
                    if n is not None:
                        colours[r][i] = blend(start, end, 0.0 if hi == lo else (n - lo) / (hi - lo))
        elif rule.get("type") == "single":
            colour = rule.get("color", "#EF8C8C")
            for i in idx:
                for r, row in enumerate(shown):
                    if _matches(row[i], rule.get("operator", "="), rule.get("value")):
                        if rule.get("highlight_row"):
                            colours[r] = [colour] * len(columns)
                        else:
                            colours[r][i] = colour
    return TableView(
        columns=tuple(columns),
        rows=tuple(
            tuple((format_value(v), colours[r][i]) for i, v in enumerate(row)) for r, row in enumerate(shown)
        ),
        truncated=max(0, len(rows) - TABLE_MAX_ROWS),
    )


# ------------------------------------------------------------------------------------------------ charts


def _series(
    columns: tuple[str, ...], rows: list[tuple[Any, ...]], dims: list[str], metrics: list[str]
) -> list[tuple[str, list[Any], list[Any]]]:
    """(name, x, y) per series: one per metric, or with a second dimension one per value of it (first metric)."""
    xi = columns.index(dims[0])
    if len(dims) > 1:
        si, mi = columns.index(dims[1]), columns.index(metrics[0])
        order: list[Any] = []
        for r in rows:
            if r[si] not in order:
                order.append(r[si])
        return [
            (
                str(name),
                [plain(r[xi]) for r in rows if r[si] == name],
                [plain(r[mi]) for r in rows if r[si] == name],
            )
            for name in order
        ]
    return [(m, [plain(r[xi]) for r in rows], [plain(r[columns.index(m)]) for r in rows]) for m in metrics]


def _axis_title(viz: dict[str, Any], axis: str, default: str) -> str:
    return str(viz.get(f"graph.{axis}_axis.title_text") or default)


def _split_axes(card: CardSpec, traces: list[dict[str, Any]]) -> bool:
    """Two metrics whose largest values differ more than tenfold, not stacked, not a row chart: as Metabase's
    default `graph.y_axis.auto_split`, each gets its own y axis."""
    viz = card.visualization_settings
    if len(traces) != 2 or card.display == "row" or viz.get("stackable.stack_type"):
        return False
    if viz.get("graph.y_axis.auto_split") is False or len(viz.get("graph.dimensions") or []) > 1:
        return False
    peaks = []
    for t in traces:
        values = [abs(v) for v in t["y"] if isinstance(v, int | float) and not isinstance(v, bool)]
        peaks.append(max(values, default=0))
    return min(peaks) > 0 and max(peaks) / min(peaks) > 10


def figure_view(card: CardSpec, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> FigureView:
    """The card's chart as a Plotly figure dict, following its visualization settings."""
    viz = card.visualization_settings
    layout: dict[str, Any] = {
        "margin": {"l": 56, "r": 16, "t": 8, "b": 48},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"family": "Lato, Helvetica Neue, Arial, sans-serif", "size": 12, "color": "#4C5773"},
        "colorway": PALETTE,
        "showlegend": False,
    }
    if card.display == "pie":
        dim = viz.get("pie.dimension") or columns[0]
        metric = viz.get("pie.metric") or columns[1]
        labels = [plain(r[columns.index(dim)]) for r in rows]
        values = [plain(r[columns.index(metric)]) for r in rows]
        trace = {"type": "pie", "labels": labels, "values": values, "hole": 0.55, "sort": False}
        layout["showlegend"] = True
        layout["margin"] = {"l": 8, "r": 8, "t": 8, "b": 8}
        return FigureView({"data": [trace], "layout": layout}, marks=len(labels))
    if card.display == "funnel":
        dim = viz.get("funnel.dimension") or columns[0]
        metric = viz.get("funnel.metric") or columns[1]
        trace = {
            "type": "funnel",
            "y": [plain(r[columns.index(dim)]) for r in rows],
            "x": [plain(r[columns.index(metric)]) for r in rows],
        }
        return FigureView({"data": [trace], "layout": layout}, marks=len(rows))

    dims = list(viz.get("graph.dimensions") or columns[:1])
    metrics = list(viz.get("graph.metrics") or [c for c in columns if c not in dims][:1])
    series = _series(columns, rows, dims, metrics)
    stack = viz.get("stackable.stack_type")
    traces = []
    for n, (name, xs, ys) in enumerate(series):
        kind = card.display
        if kind == "combo":
            kind = "bar" if n == 0 else "line"
        if kind == "row":
            trace = {"type": "bar", "orientation": "h", "x": ys, "y": xs}
        elif kind == "bar":
            trace = {"type": "bar", "x": xs, "y": ys}
        elif kind == "scatter":
            trace = {"type": "scatter", "mode": "markers", "x": xs, "y": ys}
        else:  # line, area
            trace = {
                "type": "scatter",
                "mode": "lines+markers" if len(xs) < 60 else "lines",
                "x": xs,
                "y": ys,
            }
            if kind == "area":
                if stack:
                    trace["stackgroup"] = "one"
                else:
                    trace["fill"] = "tozeroy"
        trace["name"] = name
        traces.append(trace)
    layout["showlegend"] = len(traces) > 1
    layout["legend"] = {"orientation": "h", "y": -0.25}
    if any(t["type"] == "bar" for t in traces):
        layout["barmode"] = "stack" if stack in ("stacked", "normalized") else "group"
        if stack == "normalized":
            layout["barnorm"] = "percent"
    x_axis = {"title": {"text": _axis_title(viz, "x", dims[0])}, "automargin": True, "gridcolor": "#EEF0F4"}
    y_axis = {
        "title": {"text": _axis_title(viz, "y", metrics[0] if len(metrics) == 1 else "")},
        "automargin": True,
        "gridcolor": "#EEF0F4",
    }
    if viz.get("graph.x_axis.scale") == "ordinal":
        x_axis["type"] = "category"
    if viz.get("graph.y_axis.scale") == "log":
        y_axis["type"] = "log"
    if viz.get("graph.y_axis.auto_range") is False:
        y_axis["range"] = [viz.get("graph.y_axis.min", 0), viz.get("graph.y_axis.max")]
    if card.display == "row":
        # a row chart: categories down the side, the first row on top (as Metabase draws it)
        x_axis, y_axis = y_axis, x_axis
        y_axis["autorange"] = "reversed"
        y_axis["type"] = "category"
        layout["margin"]["l"] = 8
    layout["xaxis"], layout["yaxis"] = x_axis, y_axis
    if _split_axes(card, traces):
        # Metabase's graph.y_axis.auto_split: a metric on another scale gets its own axis on the right
        traces[1]["yaxis"] = "y2"
        layout["yaxis2"] = {
            "overlaying": "y",
            "side": "right",
            "title": {"text": traces[1]["name"]},
            "automargin": True,
            "showgrid": False,
        }
        layout["yaxis"]["title"] = {"text": traces[0]["name"]}
        if traces[0]["type"] == "bar" and traces[1]["type"] == "bar":
            traces[0]["offsetgroup"], traces[1]["offsetgroup"] = "1", "2"
    marks = sum(len(t["x"]) for t in traces)
    return FigureView({"data": traces, "layout": layout}, marks=marks)
