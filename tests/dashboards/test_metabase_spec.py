"""Pure pieces: spec validation, template-tag rendering (values bound, never spliced), diffs, dashcards."""

from __future__ import annotations

import copy

import pytest

from dashboards.native import render
from dashboards.provision import (
    MetabaseError,
    card_payload,
    diff,
    normalize_dataset_query,
    plan_dashcards,
)
from dashboards.spec import SpecError, parse_card, parse_dashboard

HOSTILE = "x' OR '1'='1'; DROP TABLE master.transactions; --"


def card(**over):
    raw = {
        "name": "c",
        "display": "table",
        "sql": "SELECT a FROM t WHERE TRUE [[AND b = {{b}}]]",
        "template_tags": {"b": {"type": "text"}},
        "columns": ["a"],
        "layout": {"row": 0, "col": 0, "size_x": 6, "size_y": 4},
    }
    raw.update(over)
    return raw


def test_every_spec_loads_with_unique_names_and_wired_filters(specs):
    assert {s.key for s in specs} == {"operations", "fraud", "customers", "products", "quality"}
    for spec in specs:
        slugs = {p.slug for p in spec.parameters}
        for c in spec.cards:
            assert c.columns
            assert set(c.filters) <= slugs
    ops = next(s for s in specs if s.key == "operations")
    assert ops.auto_refresh_seconds and ops.auto_refresh_seconds > 0


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"sql": "SELECT {{x}}"}, "without a template_tags entry"),
        ({"sql": "SELECT 1"}, "declared but not used"),
        ({"display": "sparkline"}, "display 'sparkline'"),
        ({"layout": {"row": 0, "col": 20, "size_x": 6, "size_y": 4}}, "24-column grid"),
        ({"sql": "SELECT a FROM t WHERE b = '%s' [[AND b = {{b}}]]"}, "format placeholder"),
        ({"sql": "SELECT a FROM t [[WHERE [[b = {{b}}]]]]"}, "optional clause"),
        ({"columns": None, "display": "line"}, "cannot tell which columns"),
        ({"template_tags": {"b": {"type": "blob"}}}, "type must be one of"),
        ({"filters": {"p": "nope"}}, "unknown template tag"),
    ],
)
def test_bad_cards_are_refused_with_a_reason(over, message):
    with pytest.raises(SpecError, match=message):
        parse_card(card(**over), "spec.yaml")


def test_dashboard_level_checks():
    with pytest.raises(SpecError, match="at least one card"):
        parse_dashboard({"name": "d", "cards": []}, "d")
    with pytest.raises(SpecError, match="overlap"):
        parse_dashboard({"name": "d", "cards": [card(name="a"), card(name="b")]}, "d")
    with pytest.raises(SpecError, match="unique"):
        parse_dashboard(
            {"name": "d", "cards": [card(), card(layout={"row": 9, "col": 0, "size_x": 1, "size_y": 1})]}, "d"
        )
    with pytest.raises(SpecError, match="not a dashboard parameter"):
        parse_dashboard({"name": "d", "cards": [card(filters={"p": "b"})]}, "d")
    with pytest.raises(SpecError, match="cannot feed"):
        parse_dashboard(
            {
                "name": "d",
                "parameters": [{"slug": "p", "type": "number/="}],
                "cards": [card(filters={"p": "b"})],
            },
            "d",
        )


def test_render_binds_values_and_drops_empty_optional_clauses():
    c = parse_card(card(), "s")
    sql, params = render(c)
    assert "{{" not in sql and "[[" not in sql and "b =" not in sql and params == {}
    sql, params = render(c, {"b": HOSTILE})
    assert sql.strip().endswith("AND b = %(b)s")
    assert params == {"b": HOSTILE}
    assert HOSTILE not in sql and "DROP" not in sql


def test_render_coerces_types_and_escapes_percent():
    c = parse_card(
        card(
            sql="SELECT a FROM t WHERE name LIKE 'x%' AND n > {{n}} [[AND d = {{d}}]]",
            template_tags={"n": {"type": "number", "default": 5, "required": True}, "d": {"type": "date"}},
        ),
        "s",
    )
    sql, params = render(c, {"d": "2026-01-31"})
    assert "LIKE 'x%%'" in sql and params["n"] == 5 and str(params["d"]) == "2026-01-31"
    with pytest.raises(SpecError, match="not a number"):
        render(c, {"n": "1; DROP TABLE x"})
    with pytest.raises(SpecError, match="not an ISO date"):
        render(c, {"d": "yesterday"})


def test_no_spec_card_ever_puts_a_filter_value_into_sql_text(specs):
    for spec in specs:
        for c in spec.cards:
            hostile = {t.name: (HOSTILE if t.type == "text" else None) for t in c.template_tags}
            sql, params = render(c, {k: v for k, v in hostile.items() if v})
            assert HOSTILE not in sql
            for name, value in params.items():
                assert f"%({name})s" in sql
                if hostile.get(name):
                    assert value == HOSTILE


def test_diff_compares_only_what_we_set():
    want = {"a": 1, "b": {"c": [1, 2]}, "d": None}
    have = {"a": 1.0, "b": {"c": [1, 2], "extra": True}, "id": 7, "created_at": "now"}
    assert diff(want, have) == {}
    have["b"]["c"] = [1, 3]
    assert diff(want, have) == {"b.c[1]": (3, 2)}
    assert diff({"x": [1]}, {"x": [1, 2]}) == {"x": ([1, 2], [1])}
    # keys Metabase leaves out when they hold their default are not differences; a real value missing is
    assert diff({"required": False, "series": [], "default": None}, {}) == {}
    assert diff({"required": True}, {}) == {"required": (None, True)}


def test_normalize_reads_mbql5_native_queries(specs):
    spec = specs[0]
    payload = card_payload(spec, spec.cards[0], 3, 4)
    legacy = payload["dataset_query"]
    mbql5 = {
        "lib/type": "mbql/query",
        "database": 3,
        "stages": [
            {
                "lib/type": "mbql.stage/native",
                "native": legacy["native"]["query"],
                "template-tags": legacy["native"]["template-tags"],
            }
        ],
    }
    assert diff(legacy, normalize_dataset_query(mbql5)) == {}


def test_plan_dashcards_keeps_ids_adds_negative_and_drops_removed():
    desired = [
        {"card_id": 1, "row": 0, "col": 0, "size_x": 6, "size_y": 4, "parameter_mappings": []},
        {"card_id": 2, "row": 0, "col": 6, "size_x": 6, "size_y": 4, "parameter_mappings": []},
    ]
    existing = [
        {"id": 10, "card_id": 1, "row": 0, "col": 0, "size_x": 6, "size_y": 4, "parameter_mappings": []},
        {"id": 11, "card_id": 9, "row": 4, "col": 0, "size_x": 6, "size_y": 4, "parameter_mappings": []},
    ]
    payload, changes = plan_dashcards(desired, existing)
    assert [d["id"] for d in payload] == [10, -1]
    assert set(changes) == {"dashcard card 2", "dashcard card 9"}
    same, none = plan_dashcards(copy.deepcopy(desired[:1]), existing[:1])
    assert none == {} and same[0]["id"] == 10
    with pytest.raises(MetabaseError, match="empty dashcard list"):
        plan_dashcards([], existing)


def test_check_sql_bad_param_flag_is_one_line(capsys):
    from ecom.cli import main

    assert main(["metabase", "check-sql", "--param", "customer_id"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "ecom metabase: --param 'customer_id' is not NAME=VALUE; write e.g. --param customer_id=C000123"
    )


def test_bad_spec_file_is_one_line(tmp_path, capsys):
    from ecom.cli import main

    (tmp_path / "broken.yaml").write_text("name: X\ncards: [\n")
    assert main(["metabase", "provision", "--dry-run", "--specs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.yaml: not valid YAML" in err
