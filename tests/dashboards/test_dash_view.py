"""The pure half of the Dash dashboards (dashboards/view.py): spec -> grid placement, filter wiring, and a query
result -> the chart, number or table Metabase would draw. No server, no database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dashboards.spec import Layout, parse_card
from dashboards.view import (
    FigureView,
    MessageView,
    ScalarView,
    TableView,
    blend,
    card_values,
    card_view,
    grid_rows,
    grid_style,
    parameter_defaults,
)


def _card(display: str, viz: dict | None = None, **extra):
    raw = {
        "name": f"a {display}",
        "display": display,
        "sql": extra.pop("sql", "SELECT 1"),
        "visualization_settings": viz or {},
        "layout": {"row": 2, "col": 6, "size_x": 12, "size_y": 5},
        **extra,
    }
    return parse_card(raw, "test")


def test_grid_placement_is_the_spec_layout_on_24_columns(specs):
    assert grid_style(Layout(row=2, col=6, size_x=12, size_y=5)) == {
        "gridColumn": "7 / span 12",
        "gridRow": "3 / span 5",
    }
    customers = next(s for s in specs if s.key == "customers")
    assert grid_rows(customers) == 37  # the last card: row 29 + size_y 8


def test_filters_feed_only_the_tags_a_card_maps(specs):
    ops = next(s for s in specs if s.key == "operations")
    assert parameter_defaults(ops) == {"window_minutes": 60}
    card = ops.card("Events per minute")
    assert card_values(card, {"window_minutes": 5}) == {"window_minutes": 5}
    recs = next(s for s in specs if s.key == "products").card("Recommendations for the customer")
    assert card_values(recs, {"customer": "  C00042 "}) == {"customer_id": "C00042"}
    # an empty filter gives no value: native.render then drops the [[ ]] clause (or uses the tag default)
    assert card_values(recs, {"customer": ""}) == {}
    assert card_values(recs, {"other": "x"}) == {}


def test_bar_chart_one_trace_per_metric_stacked_as_the_spec_says():
    card = _card(
        "bar",
        {
            "graph.dimensions": ["minute"],
            "graph.metrics": ["written", "quarantined"],
            "stackable.stack_type": "stacked",
            "graph.y_axis.title_text": "Rows",
        },
    )
    t0 = dt.datetime(2026, 1, 1, 12, 0)
    rows = [(t0, Decimal("10"), 1), (t0 + dt.timedelta(minutes=1), Decimal("12.5"), 0)]
    view = card_view(card, ("minute", "written", "quarantined"), rows)
    assert isinstance(view.body, FigureView)
    fig = view.body.figure
    assert [t["name"] for t in fig["data"]] == ["written", "quarantined"]
    assert fig["data"][0]["x"] == ["2026-01-01T12:00:00", "2026-01-01T12:01:00"]
    assert fig["data"][0]["y"] == [10.0, 12.5]  # Decimal -> float
    assert fig["layout"]["barmode"] == "stack" and fig["layout"]["showlegend"]
    assert fig["layout"]["yaxis"]["title"]["text"] == "Rows"
    assert view.body.marks == 4


def test_second_dimension_splits_series_and_area_fills():
    card = _card("area", {"graph.dimensions": ["minute", "query"], "graph.metrics": ["lag"]})
    rows = [(1, "speed", 5), (1, "landing", 7), (2, "speed", 3)]
    fig = card_view(card, ("minute", "query", "lag"), rows).body.figure
    assert [(t["name"], t["x"], t["y"]) for t in fig["data"]] == [
        ("speed", [1, 2], [5, 3]),
        ("landing", [1], [7]),
    ]
    assert all(t["fill"] == "tozeroy" and t["type"] == "scatter" for t in fig["data"])


def test_row_chart_is_horizontal_with_the_first_row_on_top_and_axes_follow_settings():
    row = _card("row", {"graph.dimensions": ["product"], "graph.metrics": ["revenue"]})
    fig = card_view(row, ("product", "revenue"), [("a", 3), ("b", 2)]).body.figure
    trace = fig["data"][0]
    assert trace["orientation"] == "h" and trace["y"] == ["a", "b"] and trace["x"] == [3, 2]
    assert fig["layout"]["yaxis"]["autorange"] == "reversed"
    log = _card(
        "line",
        {
            "graph.dimensions": ["bucket"],
            "graph.metrics": ["n"],
            "graph.y_axis.scale": "log",
            "graph.x_axis.scale": "ordinal",
        },
    )
    fig = card_view(log, ("bucket", "n"), [(0.1, 5)]).body.figure
    assert fig["layout"]["yaxis"]["type"] == "log" and fig["layout"]["xaxis"]["type"] == "category"
    fixed = _card(
        "line",
        {
            "graph.dimensions": ["t"],
            "graph.metrics": ["score"],
            "graph.y_axis.auto_range": False,
            "graph.y_axis.min": 0,
            "graph.y_axis.max": 100,
        },
    )
    assert card_view(fixed, ("t", "score"), [(1, 90)]).body.figure["layout"]["yaxis"]["range"] == [0, 100]


def test_pie_and_combo():
    pie = _card("pie", {"pie.dimension": "segment", "pie.metric": "customers"})
    view = card_view(pie, ("segment", "customers"), [("Champions", 10), ("Lost", 4)])
    assert view.body.figure["data"][0]["labels"] == ["Champions", "Lost"] and view.body.marks == 2
    combo = _card("combo", {"graph.dimensions": ["d"], "graph.metrics": ["a", "b"]})
    kinds = [
        (t["type"], t.get("mode")) for t in card_view(combo, ("d", "a", "b"), [(1, 2, 3)]).body.figure["data"]
    ]
    assert kinds == [("bar", None), ("scatter", "lines+markers")]


def test_scalar_takes_the_field_of_the_first_row_with_its_column_settings():
    card = _card(
        "scalar",
        {"scalar.field": "rate", "column_settings": {'["name","rate"]': {"suffix": " %", "decimals": 1}}},
    )
    view = card_view(card, ("n", "rate"), [(7, Decimal("12.345")), (8, Decimal("1"))])
    assert view.body == ScalarView("12.3 %", "rate")
    plain = _card("scalar", {"scalar.field": "events"})
    assert card_view(plain, ("events",), [(1234567,)]).body.text == "1,234,567"
    assert card_view(plain, ("events",), [(None,)]).body.text == "–"


def test_heat_map_table_colours_cells_between_the_spec_colours():
    card = _card(
        "table",
        {
            "table.column_formatting": [
                {
                    "columns": ["m1"],
                    "type": "range",
                    "colors": ["#ffffff", "#509EE3"],
                    "min_type": "custom",
                    "min_value": 0,
                    "max_type": "custom",
                    "max_value": 100,
                }
            ]
        },
        columns=["cohort", "m1"],
    )
    view = card_view(
        card, ("cohort", "m1"), [("2026-01", Decimal("0")), ("2026-02", 100), ("2026-03", 50), ("x", None)]
    )
    body = view.body
    assert isinstance(body, TableView)
    colours = [row[1][1] for row in body.rows]
    assert colours == ["#ffffff", "#509ee3", blend("#ffffff", "#509EE3", 0.5), ""]
    assert [row[0] for row in body.rows] == [("2026-01", ""), ("2026-02", ""), ("2026-03", ""), ("x", "")]
    assert blend("#000000", "#ffffff", 0.5) == "#808080"


def test_range_without_custom_bounds_uses_the_column_and_single_highlights_rows():
    card = _card(
        "table",
        {
            "table.column_formatting": [
                {"columns": ["score"], "type": "range", "colors": ["#ffffff", "#EF8C8C"]},
                {"columns": ["ok"], "type": "single", "operator": "=", "value": False, "color": "#EF8C8C",
                 "highlight_row": True},
            ]
        },
        columns=["id", "score", "ok"],
    )  # fmt: skip
    body = card_view(card, ("id", "score", "ok"), [("a", 0.2, True), ("b", 0.6, False)]).body
    assert body.rows[0] == (("a", ""), ("0.20", "#ffffff"), ("true", ""))
    assert body.rows[1] == (("b", "#EF8C8C"), ("0.60", "#EF8C8C"), ("false", "#EF8C8C"))


def test_errors_missing_columns_and_empty_results_are_messages_in_the_card():
    card = _card("bar", {"graph.dimensions": ["d"], "graph.metrics": ["m"]})
    err = card_view(card, (), [], 'relation "x" does not exist').body
    assert err == MessageView('relation "x" does not exist', error=True)
    missing = card_view(card, ("d", "other"), [(1, 2)]).body
    assert missing.error and "['m']" in missing.text
    assert card_view(card, ("d", "m"), []).body == MessageView("No results")


@pytest.mark.parametrize("display", ["line", "bar", "area", "row", "scatter", "combo"])
def test_every_chart_display_counts_its_marks(display):
    card = _card(display, {"graph.dimensions": ["d"], "graph.metrics": ["a", "b"]})
    view = card_view(card, ("d", "a", "b"), [(1, 2, 3), (2, 3, 4), (3, 1, 1)])
    assert isinstance(view.body, FigureView) and view.body.marks == 6


def test_metrics_on_different_scales_get_two_axes_as_metabase_auto_split():
    card = _card("bar", {"graph.dimensions": ["segment"], "graph.metrics": ["customers", "revenue"]})
    fig = card_view(
        card, ("segment", "customers", "revenue"), [("a", 10, 50_000), ("b", 3, 9_000)]
    ).body.figure
    assert fig["data"][1]["yaxis"] == "y2" and fig["layout"]["yaxis2"]["side"] == "right"
    same_scale = card_view(
        card, ("segment", "customers", "revenue"), [("a", 10, 20), ("b", 3, 9)]
    ).body.figure
    assert "yaxis2" not in same_scale["layout"]
