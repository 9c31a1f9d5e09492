"""A stateful double of the Metabase REST API, served over real HTTP on 127.0.0.1 in a thread.

Metabase itself cannot run on our machines, so the provisioning exchange is tested against this: it keeps
users, sessions, API keys, databases, collections, cards and dashboards (with dashcards) in memory and
validates request bodies the way Metabase's endpoint schemas do (metabase/metabase
`src/metabase/{setup,session,warehouses,collections,queries,dashboards}/api.clj`): 401 `Unauthenticated`
without a valid session or API key, 400 with `{"errors": {field: message}}` for a missing or ill-typed
required field, 403 for a second setup, 404 for unknown objects and for routes that do not exist (such as the
removed `POST /api/dashboard/:id/cards`). `PUT /api/dashboard/:id` with `dashcards` replaces the dashboard's
cards as Metabase does: negative ids create, omitted ids are deleted, so an empty list wipes the dashboard
(recorded in `wipes`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from kernel.settings import Settings, get_settings

ADMIN = "admin@ecom.example"
ADMIN_PASSWORD = "s3cret-pass-42"
REDACTED = "**MetabasePass**"
ENGINES = {"postgres", "h2", "mysql"}
WRITE_METHODS = {"POST", "PUT", "DELETE"}
# the Metabase whose API shape this double imitates (dashcards through PUT /api/dashboard/:id, MBQL 5 card
# reads unless ?legacy-mbql=true, no POST /api/dashboard/:id/cards): the image docker-compose.yml runs
API_SHAPE_VERSION = "v0.64.2"


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def bad_request(errors: dict[str, str]) -> ApiError:
    return ApiError(400, {"errors": errors, "specific-errors": {k: [v] for k, v in errors.items()}})


def _nonblank(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _pos_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check(body: dict[str, Any], rules: dict[str, tuple[bool, Any, str]]) -> None:
    """rules: field -> (required, predicate, message). Missing optional fields and None for optional pass."""
    errors = {}
    for name, (required, pred, message) in rules.items():
        if name not in body or body[name] is None:
            if required:
                errors[name] = message
            continue
        if not pred(body[name]):
            errors[name] = message
    if errors:
        raise bad_request(errors)


def _parameters_ok(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, dict) and _nonblank(p.get("id")) and _nonblank(p.get("type")) for p in value
    )


@dataclass
class Request:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class MetabaseState:
    setup_token: str = field(default_factory=lambda: str(uuid.uuid4()))
    users: dict[str, str] = field(default_factory=dict)  # email -> password
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> email
    api_keys: set[str] = field(default_factory=set)
    databases: dict[int, dict] = field(default_factory=dict)
    collections: dict[int, dict] = field(default_factory=dict)
    cards: dict[int, dict] = field(default_factory=dict)
    dashboards: dict[int, dict] = field(default_factory=dict)
    syncs: list[int] = field(default_factory=list)
    wipes: list[int] = field(
        default_factory=list
    )  # dashboards whose dashcards were replaced by an empty list
    log: list[Request] = field(default_factory=list)
    next_id: dict[str, int] = field(default_factory=dict)

    def new_id(self, kind: str) -> int:
        self.next_id[kind] = self.next_id.get(kind, 0) + 1
        return self.next_id[kind]

    def writes(self, since: int = 0) -> list[Request]:
        """State-changing requests (logging in is not one: it changes no Metabase object)."""
        return [r for r in self.log[since:] if r.method in WRITE_METHODS and r.path not in ("/api/session",)]


class MetabaseDouble:
    """The API surface provisioning uses, with Metabase's validation and replace semantics."""

    def __init__(self) -> None:
        self.state = MetabaseState()
        self.lock = threading.Lock()
        self.starting = False  # while True every route answers 503, as Metabase does while it initializes

    # -- helpers
    def _user(self, headers: dict[str, str]) -> str | None:
        key = headers.get("x-api-key")
        if key and key in self.state.api_keys:
            return "api-key"
        session = headers.get("x-metabase-session")
        return self.state.sessions.get(session or "")

    def _collection_exists(self, cid: Any) -> bool:
        return cid is None or cid in self.state.collections

    def _public_db(self, db: dict) -> dict:
        details = dict(db["details"])
        if "password" in details:
            details["password"] = REDACTED
        return {**db, "details": details}

    @staticmethod
    def _mbql5_view(card: dict) -> dict:
        dq = card["dataset_query"]
        native = dq.get("native") or {}
        stage = {"lib/type": "mbql.stage/native", "native": native.get("query")}
        if native.get("template-tags"):
            stage["template-tags"] = native["template-tags"]
        return {
            **card,
            "dataset_query": {"lib/type": "mbql/query", "database": dq.get("database"), "stages": [stage]},
        }

    def _dashboard_view(self, dash: dict) -> dict:
        dashcards = []
        for dc in dash["dashcards"]:
            card = self.state.cards.get(dc["card_id"])
            dashcards.append({**dc, "card": card, "dashboard_id": dash["id"]})
        return {**dash, "dashcards": dashcards, "tabs": []}

    # -- dispatch
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: dict[str, str]):
        with self.lock:
            self.state.log.append(Request(method, path, body, headers))
            return self._route(method, path, query, body, headers)

    def _route(self, method, path, query, body, headers):  # noqa: C901 - a router is a flat list of routes
        s = self.state
        if self.starting:
            raise ApiError(503, {"status": "initializing", "progress": 0.5})
        if method == "GET" and path == "/api/health":
            return 200, {"status": "ok"}
        if method == "GET" and path == "/api/session/properties":
            return 200, {
                "setup-token": None if s.users else s.setup_token,
                "has-user-setup": bool(s.users),
                "version": {"tag": API_SHAPE_VERSION},
            }
        if method == "POST" and path == "/api/setup":
            return self._setup(body)
        if method == "POST" and path == "/api/session":
            body = body if isinstance(body, dict) else {}
            _check(
                body,
                {
                    "username": (True, _nonblank, "value must be a non-blank string."),
                    "password": (True, _nonblank, "value must be a non-blank string."),
                },
            )
            if s.users.get(body["username"].lower()) != body["password"]:
                raise ApiError(401, {"errors": {"password": "did not match stored password"}})
            sid = str(uuid.uuid4())
            s.sessions[sid] = body["username"].lower()
            return 200, {"id": sid}

        if not path.startswith("/api/"):
            raise ApiError(404, "Not found.")
        user = self._user(headers)
        if user is None:
            raise ApiError(401, "Unauthenticated")

        if method == "GET" and path == "/api/user/current":
            return 200, {"id": 1, "email": user, "is_superuser": True}

        # databases
        if path == "/api/database":
            if method == "GET":
                dbs = [self._public_db(d) for d in s.databases.values()]
                return 200, {"data": dbs, "total": len(dbs)}
            if method == "POST":
                return self._create_database(body)
        m = re.fullmatch(r"/api/database/(\d+)(/sync_schema)?", path)
        if m:
            db = s.databases.get(int(m.group(1)))
            if db is None:
                raise ApiError(404, "Not found.")
            if m.group(2) and method == "POST":
                s.syncs.append(db["id"])
                return 200, {"status": "ok"}
            if not m.group(2) and method == "GET":
                return 200, self._public_db(db)
            if not m.group(2) and method == "PUT":
                return self._update_database(db, body)

        # collections
        if path == "/api/collection":
            if method == "GET":
                root = {"id": "root", "name": "Our analytics", "location": None, "archived": False}
                return 200, [root, *s.collections.values()]
            if method == "POST":
                return self._create_collection(body)
        m = re.fullmatch(r"/api/collection/(\d+)/items", path)
        if m and method == "GET":
            coll = s.collections.get(int(m.group(1)))
            if coll is None:
                raise ApiError(404, "Not found.")
            models = set(query.get("models", [])) or {"card", "dashboard"}
            items = []
            if "card" in models:
                items += [
                    {"id": c["id"], "name": c["name"], "model": "card", "display": c["display"]}
                    for c in s.cards.values()
                    if c["collection_id"] == coll["id"] and not c["archived"]
                ]
            if "dashboard" in models:
                items += [
                    {"id": d["id"], "name": d["name"], "model": "dashboard"}
                    for d in s.dashboards.values()
                    if d["collection_id"] == coll["id"] and not d["archived"]
                ]
            return 200, {"data": items, "total": len(items), "models": sorted(models)}

        # cards
        if path == "/api/card" and method == "POST":
            return self._create_card(body)
        m = re.fullmatch(r"/api/card/(\d+)", path)
        if m:
            card = s.cards.get(int(m.group(1)))
            if card is None:
                raise ApiError(404, "Not found.")
            if method == "GET":
                # like Metabase >= 0.57: queries come back as MBQL 5 unless ?legacy-mbql=true
                return 200, card if query.get("legacy-mbql") == ["true"] else self._mbql5_view(card)
            if method == "PUT":
                return self._update_card(card, body)

        # dashboards
        if path == "/api/dashboard" and method == "POST":
            return self._create_dashboard(body)
        m = re.fullmatch(r"/api/dashboard/(\d+)", path)
        if m:
            dash = s.dashboards.get(int(m.group(1)))
            if dash is None:
                raise ApiError(404, "Not found.")
            if method == "GET":
                return 200, self._dashboard_view(dash)
            if method == "PUT":
                return self._update_dashboard(dash, body)
        # anything else, including the removed POST /api/dashboard/:id/cards
        raise ApiError(404, "API endpoint does not exist.")

    # -- endpoints
    def _setup(self, body: Any):
        s = self.state
        body = body if isinstance(body, dict) else {}
        user = body.get("user") or {}
        prefs = body.get("prefs") or {}
        errors = {}
        if body.get("token") != s.setup_token:
            errors["token"] = "Token does not match the setup token."
        if not (_nonblank(user.get("email")) and "@" in user["email"]):
            errors["email"] = "value must be a valid email address."
        password = user.get("password") or ""
        if len(password) < 6 or not re.search(r"\d", password) or password.lower() in {"password1", "123456"}:
            errors["password"] = "password is too common."
        if not _nonblank(prefs.get("site_name")):
            errors["site_name"] = "value must be a non-blank string."
        if errors:
            raise bad_request(errors)
        if s.users:
            raise ApiError(
                403,
                "The /api/setup route can only be used to create the first user, however a user currently "
                "exists.",
            )
        s.users[user["email"].lower()] = password
        sid = str(uuid.uuid4())
        s.sessions[sid] = user["email"].lower()
        return 200, {"id": sid}

    def _create_database(self, body: Any):
        body = body if isinstance(body, dict) else {}
        _check(
            body,
            {
                "name": (True, _nonblank, "value must be a non-blank string."),
                "engine": (True, lambda v: v in ENGINES, "value must be a valid database engine."),
                "details": (True, lambda v: isinstance(v, dict), "value must be a map."),
            },
        )
        details = body["details"]
        if body["engine"] == "postgres":
            missing = [k for k in ("host", "port", "dbname", "user") if not details.get(k)]
            if missing:
                # Metabase tests the connection before saving and answers with the failing field
                raise ApiError(400, {"message": f"missing {missing[0]}", "errors": {missing[0]: "required"}})
        db_id = self.state.new_id("database")
        db = {
            "id": db_id,
            "name": body["name"],
            "engine": body["engine"],
            "details": dict(details),
            "is_full_sync": body.get("is_full_sync", True),
        }
        self.state.databases[db_id] = db
        return 200, self._public_db(db)

    def _update_database(self, db: dict, body: Any):
        body = body if isinstance(body, dict) else {}
        _check(
            body,
            {
                "name": (False, _nonblank, "value must be a non-blank string."),
                "engine": (False, lambda v: v in ENGINES, "value must be a valid database engine."),
                "details": (False, lambda v: isinstance(v, dict), "value must be a map."),
            },
        )
        if "details" in body and body["details"] is not None:
            details = dict(body["details"])
            if details.get("password") == REDACTED:  # the redacted placeholder keeps the stored secret
                details["password"] = db["details"].get("password")
            db["details"] = details
        for key in ("name", "engine"):
            if body.get(key) is not None:
                db[key] = body[key]
        return 200, self._public_db(db)

    def _create_collection(self, body: Any):
        body = body if isinstance(body, dict) else {}
        _check(
            body,
            {
                "name": (True, _nonblank, "value must be a non-blank string."),
                "parent_id": (False, _pos_int, "value must be an integer greater than zero."),
            },
        )
        parent = body.get("parent_id")
        if parent is not None and parent not in self.state.collections:
            raise ApiError(404, "Not found.")
        location = "/" if parent is None else f"{self.state.collections[parent]['location']}{parent}/"
        cid = self.state.new_id("collection")
        coll = {
            "id": cid,
            "name": body["name"],
            "description": body.get("description"),
            "location": location,
            "archived": False,
            "personal_owner_id": None,
        }
        self.state.collections[cid] = coll
        return 200, coll

    def _check_query(self, dq: Any) -> None:
        if not isinstance(dq, dict):
            raise bad_request({"dataset_query": "value must be a map."})
        if dq.get("database") not in self.state.databases:
            raise bad_request({"dataset_query": "query must reference an existing database"})
        if dq.get("type") == "native":
            native = dq.get("native") or {}
            if not _nonblank(native.get("query")):
                raise bad_request({"dataset_query": "native query must be a non-blank string"})
            tags = native.get("template-tags") or {}
            for name, tag in tags.items():
                if not (isinstance(tag, dict) and tag.get("name") == name and _nonblank(tag.get("type"))):
                    raise bad_request({"dataset_query": f"invalid template tag {name!r}"})

    def _create_card(self, body: Any):
        body = body if isinstance(body, dict) else {}
        _check(
            body,
            {
                "name": (True, _nonblank, "value must be a non-blank string."),
                "dataset_query": (True, lambda v: isinstance(v, dict), "value must be a map."),
                "display": (True, _nonblank, "value must be a non-blank string."),
                "visualization_settings": (True, lambda v: isinstance(v, dict), "value must be a map."),
                "description": (False, _nonblank, "value must be a non-blank string."),
                "collection_id": (False, _pos_int, "value must be an integer greater than zero."),
                "parameters": (False, _parameters_ok, "value must be a sequence of parameters."),
            },
        )
        self._check_query(body["dataset_query"])
        if not self._collection_exists(body.get("collection_id")):
            raise ApiError(404, "Not found.")
        cid = self.state.new_id("card")
        card = {
            "id": cid,
            "name": body["name"],
            "description": body.get("description"),
            "display": body["display"],
            "visualization_settings": body["visualization_settings"],
            "dataset_query": body["dataset_query"],
            "collection_id": body.get("collection_id"),
            "parameters": body.get("parameters") or [],
            "archived": False,
            "query_type": body["dataset_query"].get("type"),
            "database_id": body["dataset_query"].get("database"),
        }
        self.state.cards[cid] = card
        return 200, card

    def _update_card(self, card: dict, body: Any):
        body = body if isinstance(body, dict) else {}
        _check(
            body,
            {
                "name": (False, _nonblank, "value must be a non-blank string."),
                "dataset_query": (False, lambda v: isinstance(v, dict), "value must be a map."),
                "display": (False, _nonblank, "value must be a non-blank string."),
                "visualization_settings": (False, lambda v: isinstance(v, dict), "value must be a map."),
                "description": (False, lambda v: isinstance(v, str), "value must be a string."),
                "collection_id": (False, _pos_int, "value must be an integer greater than zero."),
                "archived": (False, lambda v: isinstance(v, bool), "value must be a boolean."),
                "parameters": (False, _parameters_ok, "value must be a sequence of parameters."),
            },
        )
        if body.get("dataset_query") is not None:
            self._check_query(body["dataset_query"])
        if not self._collection_exists(body.get("collection_id")):
            raise ApiError(404, "Not found.")
        for key, value in body.items():
            if key in card and (value is not None or key == "description"):
                card[key] = value
        return 200, card

    def _create_dashboard(self, body: Any):
        body = body if isinstance(body, dict) else {}
        _check(
            body,
            {
                "name": (True, _nonblank, "value must be a non-blank string."),
                "description": (False, lambda v: isinstance(v, str), "value must be a string."),
                "parameters": (False, _parameters_ok, "value must be a sequence of parameters."),
                "collection_id": (False, _pos_int, "value must be an integer greater than zero."),
                "cache_ttl": (False, _pos_int, "value must be an integer greater than zero."),
            },
        )
        if not self._collection_exists(body.get("collection_id")):
            raise ApiError(404, "Not found.")
        did = self.state.new_id("dashboard")
        dash = {
            "id": did,
            "name": body["name"],
            "description": body.get("description"),
            "collection_id": body.get("collection_id"),
            "parameters": body.get("parameters") or [],
            "width": "fixed",
            "archived": False,
            "dashcards": [],
        }
        self.state.dashboards[did] = dash
        return 200, self._dashboard_view(dash)

    def _dashcards_ok(self, value: Any) -> bool:
        if not isinstance(value, list):
            return False
        ids = [dc.get("id") for dc in value if isinstance(dc, dict)]
        if len(ids) != len(value) or len(set(ids)) != len(ids):
            return False  # "value must be seq of maps in which ids are unique"
        for dc in value:
            if not (isinstance(dc["id"], int) and _pos_int(dc.get("size_x")) and _pos_int(dc.get("size_y"))):
                return False
            if not all(isinstance(dc.get(k), int) and dc[k] >= 0 for k in ("row", "col")):
                return False
            for pm in dc.get("parameter_mappings") or []:
                if not (isinstance(pm, dict) and _nonblank(pm.get("parameter_id")) and "target" in pm):
                    return False
        return True

    def _update_dashboard(self, dash: dict, body: Any):
        body = body if isinstance(body, dict) else {}
        _check(
            body,
            {
                "name": (False, _nonblank, "value must be a non-blank string."),
                "description": (False, lambda v: isinstance(v, str), "value must be a string."),
                "parameters": (False, _parameters_ok, "value must be a sequence of parameters."),
                "collection_id": (False, _pos_int, "value must be an integer greater than zero."),
                "width": (False, lambda v: v in ("fixed", "full"), 'value must be one of "fixed", "full".'),
                "archived": (False, lambda v: isinstance(v, bool), "value must be a boolean."),
                "cache_ttl": (False, _pos_int, "value must be an integer greater than zero."),
                "dashcards": (False, self._dashcards_ok, "value must be seq of maps in which ids are unique"),
            },
        )
        if not self._collection_exists(body.get("collection_id")):
            raise ApiError(404, "Not found.")
        if body.get("dashcards") is not None:
            new = body["dashcards"]
            current = {dc["id"]: dc for dc in dash["dashcards"]}
            for dc in new:
                if dc["id"] > 0 and dc["id"] not in current:
                    raise ApiError(404, "Not found.")
                card_id = dc.get("card_id")
                if card_id is not None and (
                    card_id not in self.state.cards or self.state.cards[card_id]["archived"]
                ):
                    raise ApiError(404, "Not found.")
            if not new and dash["dashcards"]:
                self.state.wipes.append(dash["id"])
            result = []
            keys = (
                "card_id",
                "row",
                "col",
                "size_x",
                "size_y",
                "parameter_mappings",
                "visualization_settings",
                "series",
            )
            for dc in new:
                kept = {k: dc.get(k) for k in keys}
                kept["parameter_mappings"] = kept["parameter_mappings"] or []
                kept["visualization_settings"] = kept["visualization_settings"] or {}
                kept["series"] = kept["series"] or []
                kept["id"] = dc["id"] if dc["id"] > 0 else self.state.new_id("dashcard")
                result.append(kept)
            dash["dashcards"] = result
        for key in ("name", "description", "parameters", "collection_id", "width", "archived", "cache_ttl"):
            if key in body and (body[key] is not None or key == "description"):
                dash[key] = body[key]
        return 200, self._dashboard_view(dash)


def _make_handler(double: MetabaseDouble):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without NODELAY, Nagle + delayed ACK add ~40 ms per
            # request
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._send(400, {"errors": {"body": "malformed JSON"}})
                return
            if raw and headers.get("content-type", "").split(";")[0] != "application/json":
                self._send(400, {"errors": {"body": "Content-Type must be application/json"}})
                return
            try:
                status, payload = double.handle(method, url.path, parse_qs(url.query), body, headers)
            except ApiError as exc:
                status, payload = exc.status, exc.body
            self._send(status, payload)

        def _send(self, status: int, payload: Any) -> None:
            if isinstance(payload, str):
                data, ctype = payload.encode(), "text/plain"
            else:
                data, ctype = json.dumps(payload).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._serve("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

    return Handler


class DoubleServer:
    """Start the double on a free port of 127.0.0.1; `url`, `state`, `stop()`."""

    def __init__(self) -> None:
        self.double = MetabaseDouble()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self.double))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metabase-double", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def state(self) -> MetabaseState:
        return self.double.state

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def settings_for(url: str, user: str = ADMIN, password: str = ADMIN_PASSWORD, api_key: str = "") -> Settings:
    """The platform settings with Metabase pointed at `url` and the given credentials."""
    base = get_settings()
    mb = dataclasses.replace(base.metabase, url=url, user=user, password=password, api_key=api_key)
    return dataclasses.replace(base, metabase=mb)
