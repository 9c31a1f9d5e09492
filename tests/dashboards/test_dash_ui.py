"""The dashboards without Metabase, in headless Chromium against the real stack.

The app is the one `ecom dashboards serve` runs (`dashboards.app.create_app`), served here on a free port from
this process so the test drives the current code; its cards run their SQL as the read-only role on the shared
Postgres, filled by the pipeline (`filled`: synthetic shop + dbt batch + analytics + a GX run) and by events
landed through the real landing stream (`stream`). The assertions count what Plotly and the tables drew in
the DOM. Screenshots of every dashboard go to test-artifacts/dashboards/.
"""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from browser import assert_non_trivial_png, chrome, full_page_screenshot, wait_for
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from werkzeug.serving import make_server

from dashboards.app import create_app
from dashboards.spec import parse_dashboard
from kernel.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboards"


class Served:
    def __init__(self, settings: Settings, specs) -> None:
        self.server = make_server("127.0.0.1", 0, create_app(settings, specs).server, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def app_url(stack, specs, filled, stream):
    served = Served(stack, specs)
    yield served.url
    served.stop()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = chrome(tmp_path_factory.mktemp("chromium"))
    yield d
    d.quit()


def _cards(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, ".ecom-card")


def _rendered(driver) -> list | None:
    """Every card's body once all have rendered (each carries data-state), else None."""
    cards = _cards(driver)
    bodies = [c.find_elements(By.CSS_SELECTOR, ".ecom-card-body > [data-state]") for c in cards]
    if not cards or not all(bodies):
        return None
    return [
        (c.get_attribute("data-card"), c.get_attribute("data-display"), b[0])
        for c, b in zip(cards, bodies, strict=True)
    ]


def _drawn_marks(body) -> int:
    """Marks Plotly drew: bar rectangles and markers (.point), pie slices (.slice), or line vertices."""
    marks = len(body.find_elements(By.CSS_SELECTOR, "svg .point")) + len(
        body.find_elements(By.CSS_SELECTOR, "svg .slice")
    )
    if marks:
        return marks
    paths = [p.get_attribute("d") or "" for p in body.find_elements(By.CSS_SELECTOR, "svg .js-line")]
    return sum(len(re.findall(r"[ML]", d)) for d in paths)


def _scalar(driver, card: str) -> str:
    el = driver.find_element(By.CSS_SELECTOR, f'.ecom-card[data-card="{card}"] .ecom-scalar')
    return el.text.strip()


def _number(text: str) -> float:
    return float(re.sub(r"[^0-9.\-]", "", text))


def _window_count(settings: Settings, minutes: int) -> int:
    """Events of serving.transactions in the last `minutes` before the newest landed event (the card's
    definition, written independently of the spec's SQL)."""
    with psycopg.connect(settings.postgres.dsn()) as conn:
        newest = conn.execute("SELECT max(event_time) FROM master.transactions").fetchone()[0]
        return conn.execute(
            "SELECT count(*) FROM serving.transactions WHERE event_time > %s - make_interval(mins => %s)",
            (newest, minutes),
        ).fetchone()[0]


@pytest.mark.parametrize("key", ["operations", "fraud", "customers", "products", "quality"])
def test_every_card_of_the_dashboard_draws_its_data(key, app_url, driver, specs):
    spec = next(s for s in specs if s.key == key)
    driver.set_window_size(1600, 1100)
    driver.get(f"{app_url}/{key}")
    rendered = wait_for(lambda: _rendered(driver), 90, what=f"every card of {key} to render")
    assert [name for name, _, _ in rendered] == [c.name for c in spec.cards]
    problems = []
    for name, display, body in rendered:
        state = body.get_attribute("data-state")
        if state != "ok":
            problems.append(f"{name}: {state}: {body.text[:200]}")
        elif display == "table":
            rows = body.find_elements(By.CSS_SELECTOR, "tbody tr")
            if not rows or len(rows) != int(body.get_attribute("data-rows")):
                problems.append(
                    f"{name}: {len(rows)} rows drawn, data-rows={body.get_attribute('data-rows')}"
                )
        elif display == "scalar":
            if not body.text.strip() or body.text.strip() == "–":
                problems.append(f"{name}: empty number")
        else:
            drawn = wait_for(lambda b=body: _drawn_marks(b), 20, what=f"{name} to draw")
            expected = int(body.get_attribute("data-marks"))
            if display in ("bar", "row", "pie") and drawn != expected:
                problems.append(f"{name}: {drawn} marks drawn for {expected} values")
    assert problems == [], problems
    # the grid: cards sit where their spec puts them (same row -> same top edge, left to right by col)
    tops = {c.name: c.layout for c in spec.cards}
    by_row: dict[int, list] = {}
    for el in _cards(driver):
        by_row.setdefault(tops[el.get_attribute("data-card")].row, []).append(el)
    for row, els in by_row.items():
        assert len({el.location["y"] for el in els}) == 1, f"cards of grid row {row} are not aligned"
        xs = [el.location["x"] for el in sorted(els, key=lambda e: tops[e.get_attribute("data-card")].col)]
        assert xs == sorted(xs)
    shot = ARTIFACTS / f"{key}.png"
    full_page_screenshot(driver, shot)
    assert_non_trivial_png(shot)


def _shows_the_window_count(driver, settings: Settings, minutes: int) -> float | None:
    """The page's "Events in window" when it equals the database's count right now, else None. Other tests may
    land rows into the shared database meanwhile, so callers poll until a refresh and a count agree."""
    shown = _number(_scalar(driver, "Events in window"))
    return shown if shown == _window_count(settings, minutes) else None


def test_a_filter_change_changes_the_cards_numbers(app_url, driver, stack):
    driver.set_window_size(1600, 1100)
    driver.get(f"{app_url}/operations")
    before = wait_for(lambda: _shows_the_window_count(driver, stack, 60), 90, what="the 60-minute count")
    box = driver.find_element(By.ID, "param-operations-window_minutes")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("1", Keys.ENTER)  # debounce: the value is sent on Enter, as a bound parameter
    after = wait_for(lambda: _shows_the_window_count(driver, stack, 1), 90, what="the 1-minute count")
    assert after < before


def test_the_segment_filter_narrows_the_top_customers(app_url, driver, stack):
    # The top 100 by predicted value may all be one segment (Champions, on some seeds): filter on a segment
    # that is not the whole unfiltered table, so the filter must change what is drawn.
    with psycopg.connect(stack.postgres.dsn()) as conn:
        by_size = [
            r[0]
            for r in conn.execute(
                "SELECT segment FROM analytics.rfm_segments WHERE customers > 0 ORDER BY customers, segment"
            ).fetchall()
        ]
        top = {
            r[0]
            for r in conn.execute(
                "SELECT r.segment FROM analytics.customer_ltv l JOIN analytics.rfm_customers r USING (customer_id)"
                " ORDER BY l.predicted_value_365d DESC LIMIT 100"
            ).fetchall()
        }
    assert len(by_size) > 1, "the filled shop has a single RFM segment: nothing to narrow"
    segment = next(s for s in by_size if {s} != top)
    driver.get(f"{app_url}/customers")
    card = '.ecom-card[data-card="Top customers by predicted value"]'

    def segments() -> set[str]:
        return {
            r.find_elements(By.TAG_NAME, "td")[1].text
            for r in driver.find_elements(By.CSS_SELECTOR, f"{card} tbody tr")
        }

    unfiltered = wait_for(lambda: segments() or None, 60, what="top customers")
    assert unfiltered != {segment}
    box = driver.find_element(By.ID, "param-customers-segment")
    box.send_keys(segment, Keys.ENTER)
    wait_for(lambda: segments() == {segment}, 30, what=f"only {segment!r} rows")


def test_operations_refreshes_itself_when_new_events_are_streamed(app_url, driver, stack, stream):
    driver.set_window_size(1600, 1100)
    driver.get(f"{app_url}/operations")
    before = wait_for(lambda: _shows_the_window_count(driver, stack, 60), 90, what="the 60-minute count")
    stream.send_and_land(40, seed=uuid.uuid4().int % 1000)
    assert _window_count(stack, 60) != before
    # no reload: the page's 10 s timer re-runs the cards
    wait_for(
        lambda: (n := _shows_the_window_count(driver, stack, 60)) is not None and n != before,
        90,
        what="a new count after the landing",
    )


def test_a_failing_card_shows_its_error_in_place_and_the_page_keeps_working(stack, specs, driver):
    table = f"dash_{uuid.uuid4().hex[:10]}.t"
    with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {table.split('.')[0]}")
        conn.execute(f"CREATE TABLE {table} (n int)")
        conn.execute(f"INSERT INTO {table} VALUES (1), (2), (3)")
    spec = parse_dashboard(
        {
            "name": "Broken on purpose",
            "cards": [
                {
                    "name": "Fine",
                    "display": "scalar",
                    "sql": f"SELECT count(*) AS n FROM {table}",
                    "visualization_settings": {"scalar.field": "n"},
                    "layout": {"row": 0, "col": 0, "size_x": 8, "size_y": 3},
                },
                {
                    "name": "Missing table",
                    "display": "table",
                    "sql": "SELECT * FROM analytics.no_such_table",
                    "columns": ["x"],
                    "layout": {"row": 0, "col": 8, "size_x": 8, "size_y": 3},
                },
                {
                    "name": "Tries to write",
                    "display": "table",
                    "sql": f"DELETE FROM {table} RETURNING n",
                    "columns": ["n"],
                    "layout": {"row": 0, "col": 16, "size_x": 8, "size_y": 3},
                },
            ],
        },
        "broken",
    )
    served = Served(stack, [spec])
    try:
        driver.get(f"{served.url}/broken")
        rendered = wait_for(lambda: _rendered(driver), 60, what="the cards")
        states = {name: (body.get_attribute("data-state"), body.text) for name, _, body in rendered}
        assert states["Fine"] == ("ok", "3")
        assert states["Missing table"][0] == "error" and "no_such_table" in states["Missing table"][1]
        assert states["Tries to write"][0] == "error"
        assert re.search(r"read-only|permission denied", states["Tries to write"][1])
        with psycopg.connect(stack.postgres.dsn()) as conn:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 3
        # the page still navigates and renders after the errors
        driver.find_element(By.LINK_TEXT, "Broken on purpose").click()
        wait_for(lambda: _rendered(driver), 30, what="the page again")
    finally:
        served.stop()
        with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {table.split('.')[0]} CASCADE")
