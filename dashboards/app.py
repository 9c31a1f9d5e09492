"""`ecom dashboards serve`: the dashboards of dashboards/specs/*.yaml in the browser without Metabase (Plotly Dash).

A thin adapter: the specs say what is on each page (the same YAML Metabase is provisioned from); every card's
SQL runs through `check_sql.run_card` (bound parameters, read-only transaction) as the read-only role
`ecom_dashboards`; `view.py` turns the result into the card's chart, number or table. One callback per card,
so a card whose SQL fails shows its error in place while the others render; a dashboard with
`auto_refresh_seconds` (Operations: 10 s, like its Metabase twin's `#refresh=10`) re-runs its cards on a timer.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from dash import Dash, Input, Output, dcc, html

from dashboards.check_sql import run_card
from dashboards.spec import CardSpec, DashboardSpec, SpecError
from dashboards.view import (
    ROW_HEIGHT_PX,
    CardView,
    FigureView,
    MessageView,
    ScalarView,
    TableView,
    card_values,
    card_view,
    grid_rows,
    grid_style,
    parameter_defaults,
)
from kernel.settings import Settings

CSS = """
body { margin: 0; background: #F9FBFC; font-family: Lato, "Helvetica Neue", Arial, sans-serif; color: #4C5773; }
.ecom-nav { display: flex; gap: 4px; align-items: center; padding: 10px 24px; background: #fff;
  border-bottom: 1px solid #EEECEC; }
.ecom-nav .brand { font-weight: 900; color: #509EE3; margin-right: 18px; }
.ecom-nav a { color: #4C5773; text-decoration: none; padding: 6px 10px; border-radius: 6px; font-weight: 700; }
.ecom-nav a.active, .ecom-nav a:hover { background: #EEF6FC; color: #509EE3; }
.ecom-page { padding: 16px 24px 40px; }
.ecom-head h1 { margin: 4px 0; font-size: 22px; color: #2E353B; }
.ecom-head p { margin: 0 0 10px; max-width: 1100px; font-size: 13px; }
.ecom-filters { display: flex; gap: 16px; align-items: end; margin: 8px 0 14px; flex-wrap: wrap; }
.ecom-filters label { display: flex; flex-direction: column; font-size: 12px; font-weight: 700; gap: 4px; }
.ecom-filters input { padding: 6px 8px; border: 1px solid #DCDFE0; border-radius: 6px; min-width: 160px; }
.ecom-refresh { font-size: 12px; color: #74838F; }
.ecom-grid { display: grid; grid-template-columns: repeat(24, minmax(0, 1fr)); gap: 8px; }
.ecom-card { background: #fff; border: 1px solid #EEECEC; border-radius: 8px; padding: 10px 12px;
  display: flex; flex-direction: column; min-width: 0; min-height: 0; box-shadow: 0 1px 3px #0000000d; }
.ecom-card-title { font-weight: 700; font-size: 14px; color: #2E353B; margin-bottom: 6px; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }
.ecom-card-body { flex: 1; min-height: 0; overflow: auto; position: relative; }
.ecom-scalar { font-size: 40px; font-weight: 900; color: #2E353B; display: flex; align-items: center;
  justify-content: center; height: 100%; }
.ecom-message { display: flex; align-items: center; justify-content: center; height: 100%; font-size: 13px;
  color: #74838F; text-align: center; padding: 0 8px; }
.ecom-message.error { color: #C33; background: #FDF2F2; border-radius: 6px; align-items: flex-start;
  justify-content: flex-start; font-family: Menlo, monospace; font-size: 12px; padding: 8px; overflow: auto; }
table.ecom-table { border-collapse: collapse; font-size: 12px; width: 100%; }
table.ecom-table th { position: sticky; top: 0; background: #fff; text-align: left; padding: 4px 8px;
  border-bottom: 1px solid #DCDFE0; color: #74838F; }
table.ecom-table td { padding: 3px 8px; border-bottom: 1px solid #F0F0F0; white-space: nowrap; }
.ecom-index { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; }
.ecom-index a { display: block; background: #fff; border: 1px solid #EEECEC; border-radius: 8px; padding: 14px;
  color: #4C5773; text-decoration: none; }
.ecom-index a h2 { margin: 0 0 6px; font-size: 16px; color: #509EE3; }
"""

INDEX_STRING = (
    """<!DOCTYPE html>
<html>
  <head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}<style>"""
    + CSS
    + """</style></head>
  <body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body>
</html>"""
)


# ------------------------------------------------------------------------------------------------ data


def reader_connection(settings: Settings) -> psycopg.Connection:
    """A connection as the read-only dashboards role (kernel/sql/070_dashboards_reader.sql)."""
    pg, d = settings.postgres, settings.dashboards
    return psycopg.connect(
        host=pg.host,
        port=pg.port,
        dbname=pg.db,
        user=d.pg_user,
        password=d.pg_password,
        connect_timeout=5,
        application_name="ecom-dashboards",
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_card(settings: Settings, card: CardSpec, params: dict[str, Any]) -> CardView:
    """Run a card with the dashboard's filter values and build its view; every failure is the card's message."""
    try:
        values = card_values(card, params)
        with reader_connection(settings) as conn:
            result = run_card(conn, card, values, settings.dashboards.statement_timeout_ms)
    except SpecError as exc:
        return card_view(card, (), [], str(exc))
    except psycopg.OperationalError as exc:
        return card_view(
            card,
            (),
            [],
            f"cannot connect to Postgres as {settings.dashboards.pg_user} ({_first_line(exc)}); "
            "run `ecom up` (it starts Postgres and sets this role's password)",
        )
    return card_view(card, result.columns, result.rows, result.error)


# ------------------------------------------------------------------------------------------------ views


def render_view(view: CardView) -> Any:
    """Dash components for a card's view (data-* attributes say what was drawn)."""
    body = view.body
    if isinstance(body, MessageView):
        return html.Div(
            body.text,
            className="ecom-message error" if body.error else "ecom-message",
            **{"data-state": "error" if body.error else "empty"},
        )
    if isinstance(body, ScalarView):
        return html.Div(
            body.text, className="ecom-scalar", **{"data-state": "ok", "data-column": body.column}
        )
    if isinstance(body, FigureView):
        return html.Div(
            dcc.Graph(
                figure=body.figure,
                config={"displayModeBar": False, "responsive": True},
                style={"height": "100%", "width": "100%"},
            ),
            style={"height": "100%"},
            **{"data-state": "ok", "data-marks": str(body.marks)},
        )
    assert isinstance(body, TableView)
    rows = [
        html.Tr([html.Td(text, style={"background": colour} if colour else None) for text, colour in row])
        for row in body.rows
    ]
    table = html.Table(
        [html.Thead(html.Tr([html.Th(c) for c in body.columns])), html.Tbody(rows)], className="ecom-table"
    )
    note = (
        [html.Div(f"{body.truncated:,} more rows not shown", className="ecom-refresh")]
        if body.truncated
        else []
    )
    return html.Div([table, *note], **{"data-state": "ok", "data-rows": str(len(body.rows))})


def card_id(spec: DashboardSpec, index: int) -> str:
    return f"card-{spec.key}-{index}"


def param_id(spec: DashboardSpec, slug: str) -> str:
    return f"param-{spec.key}-{slug}"


def _nav(specs: list[DashboardSpec], active: str | None) -> html.Div:
    links = [dcc.Link(s.name, href=f"/{s.key}", className="active" if s.key == active else "") for s in specs]
    return html.Div([html.Span("ecom-lambda", className="brand"), *links], className="ecom-nav")


def page_layout(spec: DashboardSpec, specs: list[DashboardSpec]) -> html.Div:
    defaults = parameter_defaults(spec)
    filters = [
        html.Label(
            [
                p.name,
                dcc.Input(
                    id=param_id(spec, p.slug),
                    type="number" if p.type.startswith("number") else "text",
                    value=defaults[p.slug],
                    debounce=True,
                    placeholder="all" if defaults[p.slug] is None else None,
                ),
            ]
        )
        for p in spec.parameters
    ]
    extra: list[Any] = [dcc.Store(id=f"loaded-{spec.key}", data=spec.key)]
    if spec.auto_refresh_seconds:
        extra.append(dcc.Interval(id=f"refresh-{spec.key}", interval=spec.auto_refresh_seconds * 1000))
        filters.append(html.Span(f"refreshes every {spec.auto_refresh_seconds} s", className="ecom-refresh"))
    cards = [
        html.Div(
            [
                html.Div(card.name, className="ecom-card-title", title=card.description or card.name),
                html.Div(id=card_id(spec, i), className="ecom-card-body"),
            ],
            className="ecom-card",
            style=grid_style(card.layout),
            **{"data-card": card.name, "data-display": card.display},
        )
        for i, card in enumerate(spec.cards)
    ]
    return html.Div(
        [
            _nav(specs, spec.key),
            html.Div(
                [
                    html.Div([html.H1(spec.name), html.P(spec.description)], className="ecom-head"),
                    html.Div(filters, className="ecom-filters"),
                    html.Div(
                        cards,
                        className="ecom-grid",
                        style={"gridTemplateRows": f"repeat({grid_rows(spec)}, {ROW_HEIGHT_PX}px)"},
                        **{"data-dashboard": spec.key},
                    ),
                    *extra,
                ],
                className="ecom-page",
            ),
        ]
    )


def index_layout(specs: list[DashboardSpec], message: str = "") -> html.Div:
    tiles = [dcc.Link([html.H2(s.name), html.Div(s.description)], href=f"/{s.key}") for s in specs]
    head = [html.P(message, className="ecom-message error")] if message else []
    return html.Div(
        [_nav(specs, None), html.Div([*head, html.Div(tiles, className="ecom-index")], className="ecom-page")]
    )


# ------------------------------------------------------------------------------------------------ app


def _register_card(app: Dash, settings: Settings, spec: DashboardSpec, index: int, card: CardSpec) -> None:
    slugs = list(card.filters)
    inputs = [Input(f"loaded-{spec.key}", "data"), *(Input(param_id(spec, s), "value") for s in slugs)]
    if spec.auto_refresh_seconds:
        inputs.append(Input(f"refresh-{spec.key}", "n_intervals"))

    def update(_loaded: Any, *rest: Any) -> Any:
        return render_view(load_card(settings, card, dict(zip(slugs, rest, strict=False))))

    app.callback(Output(card_id(spec, index), "children"), *inputs)(update)


def create_app(settings: Settings, specs: list[DashboardSpec]) -> Dash:
    """The Dash app: `/` lists the dashboards, `/<key>` shows one (key = the spec's file stem)."""
    by_key = {s.key: s for s in specs}
    app = Dash(
        __name__,
        title="ecom-lambda dashboards",
        update_title=None,
        suppress_callback_exceptions=True,  # the card components exist only on their own page
        serve_locally=True,  # the JS bundles come from the installed package, never from a CDN
    )
    app.index_string = INDEX_STRING
    app.layout = html.Div([dcc.Location(id="url"), html.Div(id="page")])

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def page(pathname: str | None) -> Any:
        key = (pathname or "/").strip("/")
        if not key:
            return index_layout(specs)
        if key not in by_key:
            return index_layout(specs, f"no dashboard '{key}'; choose one of {sorted(by_key)}")
        return page_layout(by_key[key], specs)

    for spec in specs:
        for i, card in enumerate(spec.cards):
            _register_card(app, settings, spec, i, card)

    @app.server.route("/health")
    def health() -> tuple[str, int]:
        try:
            with reader_connection(settings) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"cannot query Postgres as {settings.dashboards.pg_user}: {_first_line(exc)}\n", 503
        return "ok\n", 200

    return app


def serve(settings: Settings, specs: list[DashboardSpec], host: str, port: int) -> None:
    """Serve until interrupted (Flask's threaded server: one local user, a few requests per refresh)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the service log
    create_app(settings, specs).run(host=host, port=port, debug=False)
