"""Provision Metabase from the dashboard specs through its REST API: idempotent, by name, with a dry run.

Three layers, so the logic is testable without a server:
- pure payload builders (`card_payload`, `dashboard_parameters`, `desired_dashcards`) and diff functions
  (`diff`, `plan_dashcards`) that decide what a Metabase object should look like and what differs;
- `MetabaseClient`, a thin `requests` adapter that turns every transport or HTTP failure into one clear line;
- `Reconciler`, which walks setup -> auth -> database -> collections -> cards -> dashboards, writing only what
  differs (a second run writes nothing) or, in a dry run, only reporting it.

API facts this relies on (Metabase >= 0.48, checked against metabase/metabase `src/metabase/*/api.clj`; 0.48 is
the first release whose `PUT /api/dashboard/:id` takes `dashcards`, metabase#35406 / #35577):
`GET /api/session/properties` exposes `setup-token` and `has-user-setup`; `POST /api/setup` creates the
first admin and returns a session id; `POST /api/session` -> `{"id"}`, sent back as `X-Metabase-Session`;
API keys go in `x-api-key`; dashcards are replaced as a whole by `PUT /api/dashboard/:id` with `dashcards`
(negative ids create, omitted ids are deleted -- so an empty list wipes a dashboard and is never sent);
`POST /api/dashboard/:id/cards` is gone. Auto-refresh is not stored server-side: it lives in the dashboard
URL fragment (`#refresh=60`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests

from dashboards.spec import PARAMETER_TYPES, CardSpec, DashboardSpec
from kernel.errors import EcomError
from kernel.settings import Settings

ROOT_COLLECTION = "ecom-lambda"
ID_NAMESPACE = uuid.UUID("6f1c8c2e-5a43-4b8e-9d7e-0e3c2d1a9b55")
REDACTED = "**MetabasePass**"  # what Metabase returns instead of a stored secret
TAG_PARAMETER_TYPE = {"text": "category", "number": "number/=", "date": "date/single"}
SYNC_SCHEMAS = "master,speed,ops,quarantine,marts,serving,analytics,quality"


class MetabaseError(EcomError):
    """Metabase could not be reached, refused us, or answered something unexpected."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------------------ payloads (pure)


def stable_id(*parts: str) -> str:
    """A deterministic id (template tags, parameters) so a re-run produces byte-identical payloads."""
    return str(uuid.uuid5(ID_NAMESPACE, "/".join(parts)))


def parameter_id(spec: DashboardSpec, slug: str) -> str:
    return stable_id(spec.key, "parameter", slug)[:8]


def template_tags_payload(spec: DashboardSpec, card: CardSpec) -> dict[str, Any]:
    tags: dict[str, Any] = {}
    for t in card.template_tags:
        tag: dict[str, Any] = {
            "id": stable_id(spec.key, card.name, t.name),
            "name": t.name,
            "display-name": t.display_name,
            "type": t.type,
            "required": t.required,
        }
        if t.default is not None:
            tag["default"] = t.default
        tags[t.name] = tag
    return tags


def card_parameters(spec: DashboardSpec, card: CardSpec) -> list[dict[str, Any]]:
    """The card-level parameters Metabase derives from native template tags (the UI sends them too)."""
    params = []
    for t in card.template_tags:
        p: dict[str, Any] = {
            "id": stable_id(spec.key, card.name, t.name),
            "type": TAG_PARAMETER_TYPE[t.type],
            "target": ["variable", ["template-tag", t.name]],
            "name": t.display_name,
            "slug": t.name,
        }
        if t.default is not None:
            p["default"] = t.default
        params.append(p)
    return params


def card_payload(
    spec: DashboardSpec, card: CardSpec, database_id: int | None, collection_id: int | None
) -> dict:
    return {
        "name": card.name,
        "description": card.description or None,
        "display": card.display,
        "visualization_settings": card.visualization_settings,
        "collection_id": collection_id,
        "dataset_query": {
            "type": "native",
            "database": database_id,
            "native": {"query": card.sql, "template-tags": template_tags_payload(spec, card)},
        },
        "parameters": card_parameters(spec, card),
    }


def dashboard_parameters(spec: DashboardSpec) -> list[dict[str, Any]]:
    params = []
    for p in spec.parameters:
        section = PARAMETER_TYPES[p.type][0]
        param: dict[str, Any] = {
            "id": parameter_id(spec, p.slug),
            "name": p.name,
            "slug": p.slug,
            "type": p.type,
        }
        if section:
            param["sectionId"] = section
        if p.default is not None:
            param["default"] = p.default if isinstance(p.default, list) else [p.default]
        params.append(param)
    return params


def dashboard_fields(spec: DashboardSpec, collection_id: int | None) -> dict[str, Any]:
    return {
        "name": spec.name,
        "description": spec.description or None,
        "collection_id": collection_id,
        "parameters": dashboard_parameters(spec),
        "width": "full",
    }


def desired_dashcards(spec: DashboardSpec, card_ids: dict[str, int]) -> list[dict[str, Any]]:
    """Dashcards (without ids) for the spec's cards, with filters wired to template tags."""
    out = []
    for card in spec.cards:
        cid = card_ids[card.name]
        mappings = [
            {
                "parameter_id": parameter_id(spec, slug),
                "card_id": cid,
                "target": ["variable", ["template-tag", tag]],
            }
            for slug, tag in sorted(card.filters.items())
        ]
        lay = card.layout
        out.append(
            {
                "card_id": cid,
                "row": lay.row,
                "col": lay.col,
                "size_x": lay.size_x,
                "size_y": lay.size_y,
                "parameter_mappings": mappings,
                "visualization_settings": {},
                "series": [],
            }
        )
    return out


def normalize_dataset_query(dq: Any) -> Any:
    """Bring a card's stored query to the legacy native shape we send (newer servers may answer in MBQL 5)."""
    if not isinstance(dq, dict) or "stages" not in dq:
        return dq
    stage = (dq.get("stages") or [{}])[0]
    native = stage.get("native")
    return {
        "type": "native",
        "database": dq.get("database"),
        "native": {"query": native, "template-tags": stage.get("template-tags") or {}},
    }


def _num_equal(a: Any, b: Any) -> bool:
    return isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) and a == b


def diff(desired: Any, actual: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    """Differences as {path: (actual, desired)}; dicts compare only the keys we set (Metabase adds more)."""
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return {path or "value": (actual, desired)}
        out: dict[str, tuple[Any, Any]] = {}
        for key, want in desired.items():
            have = actual.get(key)
            # Metabase omits keys at their default (required: false, empty lists): absent equals empty
            if key not in actual and (
                want is None or want is False or want == [] or want == {} or want == ""
            ):
                continue
            out.update(diff(want, have, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(desired, list | tuple):
        if not isinstance(actual, list | tuple) or len(actual) != len(desired):
            return {path or "value": (actual, list(desired))}
        out = {}
        for i, (want, have) in enumerate(zip(desired, actual, strict=True)):
            out.update(diff(want, have, f"{path}[{i}]"))
        return out
    if desired == actual or _num_equal(desired, actual):
        return {}
    return {path or "value": (actual, desired)}


def plan_dashcards(
    desired: list[dict[str, Any]], existing: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, tuple[Any, Any]]]:
    """The full dashcard list to PUT (existing ids kept, new ones negative) and what differs.

    Matching is by card: one dashcard per card. Existing dashcards whose card is no longer in the spec are
    left out of the list, which is how Metabase deletes them. The list is never empty (that would wipe the
    dashboard).
    """
    if not desired:
        raise MetabaseError(
            "refusing to send an empty dashcard list (it would wipe the dashboard); add cards"
        )
    by_card: dict[Any, dict[str, Any]] = {}
    for dc in existing:
        by_card.setdefault(dc.get("card_id"), dc)
    payload: list[dict[str, Any]] = []
    changes: dict[str, tuple[Any, Any]] = {}
    new_id = -1
    for want in desired:
        have = by_card.pop(want["card_id"], None)
        if have is None:
            payload.append({"id": new_id, **want})
            new_id -= 1
            changes[f"dashcard card {want['card_id']}"] = (None, "added")
            continue
        for path, change in diff(want, have).items():
            changes[f"dashcard card {want['card_id']}.{path}"] = change
        payload.append({"id": have["id"], **want})
    for dc in by_card.values():
        changes[f"dashcard card {dc.get('card_id')}"] = ("present", "removed")
    return payload, changes


def database_details(settings: Settings) -> dict[str, Any]:
    pg = settings.postgres
    return {
        "host": settings.metabase.pg_host,
        "port": settings.metabase.pg_port,
        "dbname": pg.db,
        "user": pg.user,
        "password": pg.password,
        "ssl": False,
        "schema-filters-type": "inclusion",
        "schema-filters-patterns": SYNC_SCHEMAS,
    }


def dashboard_url(base_url: str, dashboard_id: int, refresh_seconds: int | None) -> str:
    """Auto-refresh is a client-side setting carried in the URL fragment, so the link we print carries it."""
    url = f"{base_url.rstrip('/')}/dashboard/{dashboard_id}"
    return f"{url}#refresh={refresh_seconds}" if refresh_seconds else url


# ----------------------------------------------------------------------------------------------- HTTP adapter


def _transport_reason(exc: BaseException) -> str:
    """The root cause of a failed connection in words (requests wraps it three levels deep)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = (
            cur.__cause__
            or cur.__context__
            or (cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None)
        )
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException) and reason not in seen:
            cur = reason
    text = " ".join(str(e) for e in seen)
    if any(isinstance(e, ConnectionRefusedError) for e in seen) or "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "NameResolution" in text or "nodename nor servname" in text:
        return "host name not found"
    if any(isinstance(e, TimeoutError) for e in seen) or "timed out" in text:
        return "connection timed out"
    return type(seen[-1]).__name__


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MetabaseClient:
    """`requests` against one Metabase; every failure becomes a `MetabaseError` with one actionable line."""

    def __init__(self, url: str, timeout: float = 30.0, http: requests.Session | None = None) -> None:
        parsed = urlparse(url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise MetabaseError(
                f"METABASE_URL {url!r} is not an http(s) URL; set it like METABASE_URL=http://127.0.0.1:3000"
            )
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = http or requests.Session()
        self.headers: dict[str, str] = {}
        self.writes: list[tuple[str, str]] = []  # (method, path) of every state-changing call, for reports

    # -- transport
    def request(self, method: str, path: str, body: Any = None, params: Any = None, auth: bool = True) -> Any:
        url = f"{self.url}{path}"
        try:
            resp = self.http.request(
                method,
                url,
                json=body,
                params=params,
                headers=self.headers if auth else {},
                timeout=(min(self.timeout, 10.0), self.timeout),
            )
        except requests.ConnectionError as exc:
            reason = _transport_reason(exc)
            raise MetabaseError(
                f"cannot reach Metabase at {self.url} ({reason}); start Metabase or fix METABASE_URL"
            ) from None
        except requests.Timeout:
            raise MetabaseError(
                f"Metabase at {self.url} did not answer {method} {path} within {self.timeout:.0f} s; "
                "check that it is up and not overloaded"
            ) from None
        if method != "GET" and path not in ("/api/session",):
            self.writes.append((method, path))
        if resp.status_code == 401:
            raise MetabaseError(
                f"Metabase at {self.url} answered 401 Unauthenticated to {method} {path}; "
                "check METABASE_API_KEY or METABASE_USER/METABASE_PASSWORD",
                status=401,
            )
        if resp.status_code >= 400:
            raise MetabaseError(
                f"Metabase {method} {path} failed with HTTP {resp.status_code}: {_short(resp.text)}",
                status=resp.status_code,
            )
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    # -- server identity and auth
    def properties(self) -> dict[str, Any]:
        """Public settings; also how we tell a Metabase from some other server at that URL."""
        try:
            resp = self.http.get(f"{self.url}/api/session/properties", timeout=(min(self.timeout, 10.0), 30))
        except requests.ConnectionError as exc:
            reason = _transport_reason(exc)
            raise MetabaseError(
                f"cannot reach Metabase at {self.url} ({reason}); start Metabase or fix METABASE_URL"
            ) from None
        except requests.Timeout:
            raise MetabaseError(
                f"Metabase at {self.url} did not answer within 30 s; check that it is up"
            ) from None
        if resp.status_code == 503:
            raise MetabaseError(
                f"Metabase at {self.url} is still starting (HTTP 503); wait for it or pass --wait SECONDS",
                status=503,
            )
        try:
            props = resp.json() if resp.status_code == 200 else None
        except ValueError:
            props = None
        if not isinstance(props, dict) or "has-user-setup" not in props:
            raise MetabaseError(
                f"{self.url} is not a Metabase server (GET /api/session/properties answered HTTP "
                f"{resp.status_code}); fix METABASE_URL"
            )
        return props

    def wait_until_healthy(self, timeout_s: float) -> None:
        """Poll `/api/health` (503 while Metabase initializes its metadata database) until it says ok."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while True:
            try:
                resp = self.http.get(f"{self.url}/api/health", timeout=5)
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            if time.monotonic() >= deadline:
                raise MetabaseError(
                    f"Metabase at {self.url} was not healthy after {timeout_s:.0f} s ({last}); "
                    "check its logs or raise --wait"
                )
            time.sleep(2)

    def setup(self, token: str, email: str, password: str, site_name: str) -> None:
        body = {
            "token": token,
            "user": {"email": email, "password": password, "first_name": "ecom", "last_name": "admin"},
            "prefs": {"site_name": site_name, "allow_tracking": False},
        }
        try:
            answer = self.post("/api/setup", body)
        except MetabaseError as exc:
            if exc.status is None:
                raise
            raise MetabaseError(
                f"first-run setup of {self.url} failed: {exc}; METABASE_USER must be an email and "
                "METABASE_PASSWORD strong enough for Metabase (letters and digits, 8+ characters)"
            ) from None
        self.headers = {"X-Metabase-Session": str(answer["id"])}

    def login(self, user: str, password: str) -> None:
        try:
            answer = self.request(
                "POST", "/api/session", {"username": user, "password": password}, auth=False
            )
        except MetabaseError as exc:
            if exc.status in (400, 401):
                raise MetabaseError(
                    f"Metabase at {self.url} rejected the login of METABASE_USER={user!r}: wrong user or "
                    "password; "
                    "fix METABASE_USER/METABASE_PASSWORD",
                    status=exc.status,
                ) from None
            raise
        self.headers = {"X-Metabase-Session": str(answer["id"])}

    def use_api_key(self, key: str) -> None:
        self.headers = {"x-api-key": key}
        try:
            self.get("/api/user/current")
        except MetabaseError as exc:
            if exc.status in (401, 403):
                raise MetabaseError(
                    f"Metabase at {self.url} rejected METABASE_API_KEY; create a key under Admin > "
                    "Settings > "
                    "Authentication > API keys and set METABASE_API_KEY"
                ) from None
            raise

    # -- listings (shapes differ across versions: a bare list or {"data": [...]})
    def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        answer = self.get(path, **params)
        if isinstance(answer, dict):
            answer = answer.get("data", [])
        return list(answer or [])


# ----------------------------------------------------------------------------------------------- reconcile


@dataclass
class Change:
    action: str  # create | update | archive | sync | setup | unchanged
    kind: str  # database | collection | card | dashboard | instance
    name: str
    details: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        mark = {"create": "+", "update": "~", "archive": "-", "sync": "*", "setup": "+", "unchanged": "="}
        head = f"{mark.get(self.action, '?')} {self.action:9} {self.kind:10} {self.name}"
        out = [head]
        for path, (old, new) in sorted(self.details.items()):
            out.append(f"      {path}: {_fmt(old)} -> {_fmt(new)}")
        return out


def _fmt(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return _short(text, 100)


@dataclass
class ProvisionResult:
    changes: list[Change]
    dashboard_urls: dict[str, str]
    dry_run: bool

    @property
    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.action != "unchanged"]

    def report(self) -> str:
        lines = []
        for c in self.changes:
            lines.extend(c.lines())
        verb = "would change" if self.dry_run else "changed"
        lines.append(f"{verb} {len(self.writes)} object(s); {len(self.changes) - len(self.writes)} unchanged")
        for name, url in self.dashboard_urls.items():
            lines.append(f"dashboard {name}: {url}")
        return "\n".join(lines)


class Reconciler:
    """Brings one Metabase in line with the specs; a dry run reads, compares and reports, and never writes."""

    def __init__(self, client: MetabaseClient, settings: Settings, dry_run: bool = False, sync: bool = False):
        self.client = client
        self.settings = settings
        self.dry_run = dry_run
        self.force_sync = sync
        self.changes: list[Change] = []
        self.fresh = False  # a dry run against an instance not set up yet: nothing can be read

    def _record(self, action: str, kind: str, name: str, details: dict | None = None) -> None:
        self.changes.append(Change(action, kind, name, details or {}))

    # -- instance and auth
    def connect(self) -> None:
        mb = self.settings.metabase
        props = self.client.properties()
        if not props.get("has-user-setup"):
            token = props.get("setup-token")
            if not (mb.user and mb.password):
                raise MetabaseError(
                    f"Metabase at {self.client.url} is not set up yet; set METABASE_USER (an email) and "
                    "METABASE_PASSWORD so provisioning can create the admin"
                )
            if not token:
                raise MetabaseError(
                    f"Metabase at {self.client.url} has no admin and no setup token; set it up by hand"
                )
            self._record("setup", "instance", f"admin {mb.user}")
            if self.dry_run:
                self.fresh = True
                return
            self.client.setup(token, mb.user, mb.password, site_name="ecom-lambda")
            return
        if mb.api_key:
            self.client.use_api_key(mb.api_key)
        elif mb.user and mb.password:
            self.client.login(mb.user, mb.password)
        else:
            raise MetabaseError(
                "no Metabase credentials: set METABASE_API_KEY, or METABASE_USER and METABASE_PASSWORD"
            )

    # -- database connection
    def ensure_database(self) -> int | None:
        mb = self.settings.metabase
        details = database_details(self.settings)
        existing = (
            None if self.fresh else self._find_by_name(self.client.list("/api/database"), mb.database_name)
        )
        if existing is not None:
            existing = self.client.get(f"/api/database/{existing['id']}")
        if existing is None:
            self._record("create", "database", mb.database_name, {"details.host": (None, details["host"])})
            if self.dry_run:
                return None
            try:
                db = self.client.post(
                    "/api/database",
                    {
                        "name": mb.database_name,
                        "engine": "postgres",
                        "details": details,
                        "is_full_sync": True,
                    },
                )
            except MetabaseError as exc:
                if exc.status != 400:
                    raise
                # Metabase tests the connection before saving: its answer is about reaching Postgres
                raise MetabaseError(
                    f"Metabase could not connect to Postgres at {details['host']}:{details['port']} "
                    f"({exc}); set METABASE_PG_HOST/METABASE_PG_PORT to how the Metabase server reaches it",
                    status=400,
                ) from None
            self._sync(db["id"], mb.database_name)
            return int(db["id"])
        # the stored password comes back redacted: compare everything else
        comparable = {k: v for k, v in details.items() if k != "password"}
        changes = diff({"engine": "postgres", "details": comparable}, existing)
        if changes:
            self._record("update", "database", mb.database_name, changes)
            if not self.dry_run:
                self.client.put(f"/api/database/{existing['id']}", {"engine": "postgres", "details": details})
            self._sync(existing["id"], mb.database_name)
        else:
            self._record("unchanged", "database", mb.database_name)
            if self.force_sync:
                self._sync(existing["id"], mb.database_name)
        return int(existing["id"])

    def _sync(self, db_id: int, name: str) -> None:
        self._record("sync", "database", name)
        if not self.dry_run:
            self.client.post(f"/api/database/{db_id}/sync_schema")

    # -- collections
    @staticmethod
    def _find_by_name(items: list[dict[str, Any]], name: str, **match: Any) -> dict[str, Any] | None:
        for item in items:
            if (
                item.get("name") == name
                and not item.get("archived")
                and all(item.get(k) == v for k, v in match.items())
            ):
                return item
        return None

    def ensure_collection(
        self, name: str, parent_id: int | None, all_collections: list[dict], label: str
    ) -> int | None:
        location = "/" if parent_id is None else f"/{parent_id}/"
        found = None
        if not self.fresh and (parent_id is not None or label == ROOT_COLLECTION):
            found = self._find_by_name(
                [
                    c
                    for c in all_collections
                    if isinstance(c.get("id"), int) and not c.get("personal_owner_id")
                ],
                name,
                location=location,
            )
        if found is None:
            self._record("create", "collection", label)
            if self.dry_run:
                return None
            body: dict[str, Any] = {"name": name, "description": "Provisioned from dashboards/specs by ecom"}
            if parent_id is not None:
                body["parent_id"] = parent_id
            created = self.client.post("/api/collection", body)
            return int(created["id"])
        self._record("unchanged", "collection", label)
        return int(found["id"])

    # -- cards and dashboards
    def _items(self, collection_id: int | None, model: str) -> list[dict[str, Any]]:
        if collection_id is None:
            return []
        return [
            i
            for i in self.client.list(f"/api/collection/{collection_id}/items", models=model)
            if i.get("model", model) == model
        ]

    def ensure_card(
        self,
        spec: DashboardSpec,
        card: CardSpec,
        db_id: int | None,
        coll_id: int | None,
        existing: list[dict],
    ) -> int | None:
        label = f"{spec.name} / {card.name}"
        want = card_payload(spec, card, db_id, coll_id)
        found = self._find_by_name(existing, card.name)
        if found is None:
            self._record("create", "card", label)
            if self.dry_run:
                return None
            return int(self.client.post("/api/card", want)["id"])
        # 0.57+ answers in MBQL 5 unless asked for the legacy shape we send; older versions ignore the flag
        actual = self.client.get(f"/api/card/{found['id']}", **{"legacy-mbql": "true"})
        actual = {**actual, "dataset_query": normalize_dataset_query(actual.get("dataset_query"))}
        changes = diff(want, actual)
        if not changes:
            self._record("unchanged", "card", label)
            return int(found["id"])
        self._record("update", "card", label, changes)
        if not self.dry_run:
            top = {k for k in {p.split(".")[0].split("[")[0] for p in changes}}
            self.client.put(f"/api/card/{found['id']}", {k: want[k] for k in sorted(top)})
        return int(found["id"])

    def ensure_dashboard(
        self, spec: DashboardSpec, coll_id: int | None, card_ids: dict[str, int | None], existing: list[dict]
    ) -> int | None:
        fields = dashboard_fields(spec, coll_id)
        found = self._find_by_name(existing, spec.name)
        placeholder_ids = {
            name: (cid if cid is not None else -(i + 1)) for i, (name, cid) in enumerate(card_ids.items())
        }
        desired = desired_dashcards(spec, placeholder_ids)
        if found is None:
            self._record("create", "dashboard", spec.name, {"dashcards": (None, len(desired))})
            if self.dry_run:
                return None
            created = self.client.post(
                "/api/dashboard",
                {k: fields[k] for k in ("name", "description", "collection_id", "parameters")},
            )
            dash_id = int(created["id"])
            payload, _ = plan_dashcards(desired, [])
            self.client.put(f"/api/dashboard/{dash_id}", {**fields, "dashcards": payload})
            return dash_id
        dash_id = int(found["id"])
        actual = self.client.get(f"/api/dashboard/{dash_id}")
        existing_dashcards = actual.get("dashcards", actual.get("ordered_cards")) or []
        field_changes = diff(fields, actual)
        payload, card_changes = plan_dashcards(desired, existing_dashcards)
        if not field_changes and not card_changes:
            self._record("unchanged", "dashboard", spec.name)
            return dash_id
        self._record("update", "dashboard", spec.name, {**field_changes, **card_changes})
        if not self.dry_run:
            body: dict[str, Any] = {
                k: fields[k] for k in {p.split(".")[0].split("[")[0] for p in field_changes}
            }
            if card_changes:
                body["dashcards"] = payload
            self.client.put(f"/api/dashboard/{dash_id}", body)
        return dash_id

    def archive_stale_cards(self, spec: DashboardSpec, existing: list[dict]) -> None:
        wanted = {c.name for c in spec.cards}
        for item in existing:
            if item.get("name") not in wanted and not item.get("archived"):
                self._record("archive", "card", f"{spec.name} / {item.get('name')}")
                if not self.dry_run:
                    self.client.put(f"/api/card/{item['id']}", {"archived": True})

    def run(self, specs: list[DashboardSpec]) -> ProvisionResult:
        self.connect()
        db_id = self.ensure_database()
        collections = [] if self.fresh else self.client.list("/api/collection")
        root_id = self.ensure_collection(ROOT_COLLECTION, None, collections, ROOT_COLLECTION)
        urls: dict[str, str] = {}
        for spec in specs:
            coll_id = self.ensure_collection(
                spec.name, root_id, collections, f"{ROOT_COLLECTION} / {spec.name}"
            )
            existing_cards = [] if self.fresh else self._items(coll_id, "card")
            card_ids = {c.name: self.ensure_card(spec, c, db_id, coll_id, existing_cards) for c in spec.cards}
            existing_dash = [] if self.fresh else self._items(coll_id, "dashboard")
            dash_id = self.ensure_dashboard(spec, coll_id, card_ids, existing_dash)
            # archive only after the dashboard no longer shows them
            self.archive_stale_cards(spec, existing_cards)
            if dash_id is not None:
                urls[spec.name] = dashboard_url(self.client.url, dash_id, spec.auto_refresh_seconds)
        return ProvisionResult(self.changes, urls, self.dry_run)


def provision(
    settings: Settings,
    specs: list[DashboardSpec],
    dry_run: bool = False,
    sync: bool = False,
    wait_s: float = 0.0,
    client: MetabaseClient | None = None,
) -> ProvisionResult:
    """Reconcile Metabase with `specs` (the CLI command and the Dagster asset both call this)."""
    client = client or MetabaseClient(settings.metabase.url)
    if wait_s > 0:
        client.wait_until_healthy(wait_s)
    return Reconciler(client, settings, dry_run=dry_run, sync=sync).run(specs)
