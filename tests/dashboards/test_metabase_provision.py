"""The provisioning exchange against the stateful Metabase API double: setup, auth, idempotency, no-wipe."""

from __future__ import annotations

import dataclasses
import socket

import pytest
import requests
from metabase_double import ADMIN, ADMIN_PASSWORD, settings_for

from dashboards.provision import ROOT_COLLECTION, MetabaseError, parameter_id, provision
from dashboards.spec import parse_dashboard
from ecom.cli import main


def _all_dashcards_wired(state) -> None:
    """Every parameter mapping points at a parameter of its dashboard and a template tag of its card."""
    for dash in state.dashboards.values():
        param_ids = {p["id"] for p in dash["parameters"]}
        for dc in dash["dashcards"]:
            tags = state.cards[dc["card_id"]]["dataset_query"]["native"]["template-tags"]
            for pm in dc["parameter_mappings"]:
                assert pm["parameter_id"] in param_ids
                assert pm["card_id"] == dc["card_id"]
                kind, (tt, name) = pm["target"]
                assert (kind, tt) == ("variable", "template-tag") and name in tags


def test_first_run_sets_up_instance_and_builds_every_dashboard(double, mb_settings, specs):
    result = provision(mb_settings, specs)
    st = double.state
    assert ADMIN in st.users  # created through /api/setup with the setup token
    assert len(st.databases) == 1
    db = next(iter(st.databases.values()))
    pg = mb_settings.postgres
    assert (db["engine"], db["details"]["dbname"], db["details"]["password"]) == (
        "postgres",
        pg.db,
        pg.password,
    )
    assert st.syncs == [db["id"]]
    names = {c["name"]: c for c in st.collections.values()}
    assert names[ROOT_COLLECTION]["location"] == "/"
    assert {d["name"] for d in st.dashboards.values()} == {s.name for s in specs}
    assert len(st.cards) == sum(len(s.cards) for s in specs)
    for spec in specs:
        dash = next(d for d in st.dashboards.values() if d["name"] == spec.name)
        assert len(dash["dashcards"]) == len(spec.cards)
        assert names[spec.name]["location"] == f"/{names[ROOT_COLLECTION]['id']}/"
        for card in spec.cards:
            stored = next(
                c
                for c in st.cards.values()
                if c["name"] == card.name and c["collection_id"] == dash["collection_id"]
            )
            assert stored["dataset_query"]["native"]["query"] == card.sql
            assert stored["dataset_query"]["database"] == db["id"]
            assert stored["display"] == card.display
            dc = next(dc for dc in dash["dashcards"] if dc["card_id"] == stored["id"])
            assert (dc["row"], dc["col"], dc["size_x"], dc["size_y"]) == (
                card.layout.row,
                card.layout.col,
                card.layout.size_x,
                card.layout.size_y,
            )
    _all_dashcards_wired(st)
    assert st.wipes == []
    assert set(result.dashboard_urls) == {s.name for s in specs}
    ops = next(s for s in specs if s.key == "operations")
    assert result.dashboard_urls[ops.name].endswith(f"#refresh={ops.auto_refresh_seconds}")
    # the removed endpoint was never called
    assert not [r for r in st.log if r.method == "POST" and r.path.endswith("/cards")]


def test_customer_filter_is_wired_to_the_recommendations_card(double, mb_settings, specs):
    provision(mb_settings, specs)
    st = double.state
    spec = next(s for s in specs if s.key == "products")
    dash = next(d for d in st.dashboards.values() if d["name"] == spec.name)
    customer = next(p for p in dash["parameters"] if p["slug"] == "customer")
    assert customer["id"] == parameter_id(spec, "customer")
    recs = next(c for c in st.cards.values() if c["name"] == "Recommendations for the customer")
    dc = next(dc for dc in dash["dashcards"] if dc["card_id"] == recs["id"])
    assert dc["parameter_mappings"] == [
        {
            "parameter_id": customer["id"],
            "card_id": recs["id"],
            "target": ["variable", ["template-tag", "customer_id"]],
        }
    ]
    assert "{{customer_id}}" in recs["dataset_query"]["native"]["query"]


def test_second_run_writes_nothing(double, mb_settings, specs):
    provision(mb_settings, specs)
    mark = len(double.state.log)
    result = provision(mb_settings, specs)
    assert double.state.writes(mark) == []
    assert result.writes == []
    assert all(c.action == "unchanged" for c in result.changes)


def test_edited_spec_updates_in_place(double, mb_settings, specs):
    provision(mb_settings, specs)
    st = double.state
    ids_before = (set(st.cards), set(st.dashboards), set(st.collections))
    spec = next(s for s in specs if s.key == "quality")
    card = spec.cards[0]
    edited_card = dataclasses.replace(
        card,
        sql=card.sql.replace("LIMIT 500", "LIMIT 400"),
        layout=dataclasses.replace(card.layout, size_y=card.layout.size_y + 1),
    )
    edited = dataclasses.replace(spec, cards=(edited_card, *spec.cards[1:]), description="edited description")
    mark = len(st.log)
    result = provision(mb_settings, [s if s is not spec else edited for s in specs])
    writes = st.writes(mark)
    assert (set(st.cards), set(st.dashboards), set(st.collections)) == ids_before  # nothing new
    assert [(w.method, w.path.rsplit("/", 1)[0]) for w in writes] == [
        ("PUT", "/api/card"),
        ("PUT", "/api/dashboard"),
    ]
    stored = next(c for c in st.cards.values() if c["name"] == card.name)
    assert "LIMIT 400" in stored["dataset_query"]["native"]["query"]
    card_put = writes[0].body
    assert set(card_put) == {"dataset_query"}  # only the field that changed
    dash = next(d for d in st.dashboards.values() if d["name"] == spec.name)
    assert dash["description"] == "edited description"
    dc = next(dc for dc in dash["dashcards"] if dc["card_id"] == stored["id"])
    assert dc["size_y"] == card.layout.size_y + 1
    assert len(dash["dashcards"]) == len(spec.cards)
    assert {c.action for c in result.changes} == {"update", "unchanged"}


def test_removed_card_is_dropped_from_dashboard_and_archived(double, mb_settings, specs):
    provision(mb_settings, specs)
    st = double.state
    spec = next(s for s in specs if s.key == "fraud")
    gone = spec.cards[-1]
    shorter = dataclasses.replace(spec, cards=spec.cards[:-1])
    provision(mb_settings, [s if s is not spec else shorter for s in specs])
    dash = next(d for d in st.dashboards.values() if d["name"] == spec.name)
    stored = next(c for c in st.cards.values() if c["name"] == gone.name)
    assert stored["archived"] is True
    assert stored["id"] not in {dc["card_id"] for dc in dash["dashcards"]}
    assert len(dash["dashcards"]) == len(spec.cards) - 1


def test_dry_run_reports_and_writes_nothing(double, mb_settings, specs, capsys):
    # fresh instance: the dry run says it would set up the admin and create everything, and touches nothing
    result = provision(mb_settings, specs, dry_run=True)
    assert double.state.writes() == [] and not double.state.users
    actions = {(c.action, c.kind) for c in result.changes}
    assert ("setup", "instance") in actions and ("create", "dashboard") in actions
    provision(mb_settings, specs)
    spec = next(s for s in specs if s.key == "customers")
    edited = dataclasses.replace(
        spec, cards=(dataclasses.replace(spec.cards[0], display="line"), *spec.cards[1:])
    )
    mark = len(double.state.log)
    result = provision(mb_settings, [s if s is not spec else edited for s in specs], dry_run=True)
    assert double.state.writes(mark) == []
    updates = [c for c in result.changes if c.action == "update"]
    assert [(c.kind, c.name) for c in updates] == [("card", f"{spec.name} / {spec.cards[0].name}")]
    assert updates[0].details == {"display": ("bar", "line")}
    assert "~ update" in result.report() and "display: bar -> line" in result.report()


def test_never_sends_an_empty_dashcard_list(double, mb_settings, specs):
    provision(mb_settings, specs)
    spec = specs[0]
    # a spec without cards is refused before any request
    with pytest.raises(Exception, match="at least one card"):
        parse_dashboard({"name": spec.name, "cards": []}, spec.key)
    # and across create + update runs no request carried an empty dashcards list
    edited = dataclasses.replace(spec, cards=spec.cards[:1])
    provision(mb_settings, [edited])
    bodies = [r.body for r in double.state.log if r.method == "PUT" and r.path.startswith("/api/dashboard/")]
    assert bodies and all(b.get("dashcards") != [] for b in bodies)
    assert double.state.wipes == []
    dash = next(d for d in double.state.dashboards.values() if d["name"] == spec.name)
    assert len(dash["dashcards"]) == 1


def test_session_login_when_instance_is_set_up(double, mb_settings, specs):
    provision(mb_settings, specs[:1])  # sets up the admin
    mark = len(double.state.log)
    provision(mb_settings, specs[:1])
    login = [r for r in double.state.log[mark:] if r.path == "/api/session"]
    assert [r.method for r in login] == ["POST"]
    later = [r for r in double.state.log[mark:] if r.path not in ("/api/session", "/api/session/properties")]
    assert later and all(r.headers.get("x-metabase-session") in double.state.sessions for r in later)


def test_api_key_auth(double, specs):
    provision(settings_for(double.url), specs[:1])
    double.state.api_keys.add("mb_testkey")
    keyed = settings_for(double.url, user="", password="", api_key="mb_testkey")
    mark = len(double.state.log)
    result = provision(keyed, specs[:1])
    assert result.writes == []
    assert all(r.path != "/api/session" for r in double.state.log[mark:])
    assert all(
        r.headers.get("x-api-key") == "mb_testkey"
        for r in double.state.log[mark:]
        if r.path.startswith("/api/") and r.path != "/api/session/properties"
    )


def test_double_rejects_malformed_requests_like_metabase(double):
    url = double.url
    assert requests.get(f"{url}/api/card/1", timeout=5).status_code == 401
    assert (
        requests.get(f"{url}/api/card/1", headers={"X-Metabase-Session": "nope"}, timeout=5).text
        == "Unauthenticated"
    )
    token = requests.get(f"{url}/api/session/properties", timeout=5).json()["setup-token"]
    bad = requests.post(f"{url}/api/setup", json={"token": token, "user": {"email": ADMIN}}, timeout=5)
    assert bad.status_code == 400 and "password" in bad.json()["errors"]
    sid = requests.post(
        f"{url}/api/setup",
        json={
            "token": token,
            "user": {"email": ADMIN, "password": ADMIN_PASSWORD},
            "prefs": {"site_name": "x"},
        },
        timeout=5,
    ).json()["id"]
    h = {"X-Metabase-Session": sid}
    again = requests.post(
        f"{url}/api/setup",
        json={
            "token": token,
            "user": {"email": "b@x.io", "password": ADMIN_PASSWORD},
            "prefs": {"site_name": "x"},
        },
        timeout=5,
    )
    assert again.status_code in (400, 403)
    assert requests.post(f"{url}/api/session", json={"username": ADMIN}, timeout=5).status_code == 400
    assert (
        requests.post(f"{url}/api/session", json={"username": ADMIN, "password": "no"}, timeout=5).status_code
        == 401
    )
    r = requests.post(f"{url}/api/card", json={"name": "x", "display": "table"}, headers=h, timeout=5)
    assert r.status_code == 400 and set(r.json()["errors"]) == {"dataset_query", "visualization_settings"}
    r = requests.post(f"{url}/api/database", json={"name": "x", "engine": "postgres"}, headers=h, timeout=5)
    assert r.status_code == 400 and "details" in r.json()["errors"]
    r = requests.post(f"{url}/api/dashboard", json={"name": " "}, headers=h, timeout=5)
    assert r.status_code == 400
    dash = requests.post(f"{url}/api/dashboard", json={"name": "d"}, headers=h, timeout=5).json()
    r = requests.put(
        f"{url}/api/dashboard/{dash['id']}",
        json={"dashcards": [{"id": -1, "card_id": None, "row": 0, "col": 0, "size_x": 0, "size_y": 2}]},
        headers=h,
        timeout=5,
    )
    assert r.status_code == 400  # size_x must be a positive int
    assert (
        requests.post(f"{url}/api/dashboard/{dash['id']}/cards", json={}, headers=h, timeout=5).status_code
        == 404
    )


# -------------------------------------------------------------------------------------------- one-line errors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli_error(capsys, monkeypatch, settings) -> str:
    monkeypatch.setattr("dashboards.cli.get_settings", lambda: settings)
    code = main(["metabase", "provision"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err


def test_unreachable_server_is_one_line(capsys, monkeypatch):
    url = f"http://127.0.0.1:{_free_port()}"
    err = _cli_error(capsys, monkeypatch, settings_for(url))
    assert err.startswith(f"ecom metabase: cannot reach Metabase at {url} (connection refused)")
    assert "METABASE_URL" in err


def test_wrong_url_is_one_line(capsys, monkeypatch, tmp_path):
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    # a web server that is not Metabase
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        err = _cli_error(capsys, monkeypatch, settings_for(f"http://127.0.0.1:{httpd.server_address[1]}"))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "is not a Metabase server" in err and "HTTP 404" in err and "fix METABASE_URL" in err
    err = _cli_error(capsys, monkeypatch, settings_for("localhost:3000"))
    assert "is not an http(s) URL" in err


def test_bad_credentials_are_one_line(double, capsys, monkeypatch, specs):
    provision(settings_for(double.url), specs[:1])
    err = _cli_error(capsys, monkeypatch, settings_for(double.url, password="wrong-password-1"))
    assert "rejected the login of METABASE_USER=" in err and "wrong user or password" in err
    err = _cli_error(capsys, monkeypatch, settings_for(double.url, user="", password="", api_key="mb_bogus"))
    assert "rejected METABASE_API_KEY" in err
    err = _cli_error(capsys, monkeypatch, settings_for(double.url, user="", password=""))
    assert "no Metabase credentials" in err


def test_fresh_instance_without_credentials_is_one_line(double, capsys, monkeypatch):
    err = _cli_error(capsys, monkeypatch, settings_for(double.url, user="", password=""))
    assert "not set up yet" in err and "METABASE_USER" in err


def test_cli_dry_run_prints_the_difference(double, capsys, monkeypatch):
    monkeypatch.setattr("dashboards.cli.get_settings", lambda: settings_for(double.url))
    assert main(["metabase", "provision", "--only", "quality"]) == 0
    capsys.readouterr()
    mark = len(double.state.log)
    assert main(["metabase", "provision", "--dry-run", "--only", "quality"]) == 0
    out = capsys.readouterr().out
    assert "would change 0 object(s)" in out
    assert double.state.writes(mark) == []


def test_wait_reports_unhealthy_server():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(MetabaseError, match="was not healthy after"):
        provision(settings_for(url), [], wait_s=0.5)


def test_starting_server_is_one_line_and_wait_rides_it_out(double, mb_settings, specs, capsys, monkeypatch):
    import threading

    double.double.starting = True
    err = _cli_error(capsys, monkeypatch, mb_settings)
    assert "is still starting (HTTP 503)" in err and "--wait" in err
    threading.Timer(1.0, lambda: setattr(double.double, "starting", False)).start()
    result = provision(mb_settings, specs[:1], wait_s=30)
    assert result.dashboard_urls and double.state.dashboards


def test_database_metabase_cannot_reach_is_one_line(double, capsys, monkeypatch):
    base = settings_for(double.url)
    unreachable = dataclasses.replace(base, metabase=dataclasses.replace(base.metabase, pg_host=""))
    err = _cli_error(capsys, monkeypatch, unreachable)
    assert "Metabase could not connect to Postgres at :" in err and "METABASE_PG_HOST" in err
    assert not double.state.databases and not double.state.cards
