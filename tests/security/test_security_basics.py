"""Security basics: services listen on loopback only, no credential is committed, and user input that reaches
SQL (replay column mappings and values, dashboard filters, CLI arguments, Dagster config) is bound or quoted.

Every injection attempt aims at a canary table in a schema of this test's own; the test then checks the
canary is still there. Shared tables are never the target.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from kernel.db import connect
from kernel.settings import REPO_ROOT, load_settings
from stack import services as stack_mod

LOOPBACK = {"127.0.0.1", "::1"}


def _listening(pid: int) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every listening TCP socket of a process tree."""
    root = psutil.Process(pid)
    out = []
    for p in [root, *root.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        out += [(c.laddr.ip, c.laddr.port, p.pid) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


# ---------------------------------------------------------------------------------------------------------
# binding
# ---------------------------------------------------------------------------------------------------------


def test_default_settings_bind_every_service_to_loopback(monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith(("ECOM_", "MLFLOW_", "METABASE_")) or var in ("SPARK_MASTER", "DAGSTER_HOME"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))  # no .env read beyond the repo's (git-ignored) one
    s = load_settings(env_file=tmp_path / "no.env")
    hosts = {
        "bind": s.bind_host,
        "postgres": s.postgres.host,
        "kafka": s.kafka.host,
        "mlflow": s.mlflow.host,
        "dagster": s.dagster.host,
        "metabase": s.metabase.url.split("//")[1].rsplit(":", 1)[0],
    }
    assert all(h == "127.0.0.1" for h in hosts.values()), hosts
    assert s.spark.master.startswith("local")


@pytest.mark.stack
def test_every_running_service_listens_on_loopback_only(stack):
    found = {}
    for svc in stack_mod.services(stack):
        pid = svc.pid()
        assert pid and stack_mod.pid_alive(pid), f"{svc.name} is not running"
        found[svc.name] = _listening(pid)
    assert found["postgres"] and found["kafka"] and found["mlflow"] and found["dagster-webserver"], found
    exposed = {name: [s for s in socks if not _is_loopback(s[0])] for name, socks in found.items()}
    assert not any(exposed.values()), f"listening beyond loopback: {exposed}"


# ---------------------------------------------------------------------------------------------------------
# no credential in the repository
# ---------------------------------------------------------------------------------------------------------

SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)
    \b[\w.-]*(password|passwd|secret|api[_-]?key|access[_-]?key|token)[\w.-]*\b   # a secret-ish name
    \s*[:=]\s*                                                                    # assigned
    ["']?(?P<value>[^\s"'#,)}]{4,})                                               # a literal value
    """
)
URL_WITH_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://(?P<user>[^\s:/@'\"]+):(?P<value>[^\s@/'\"]+)@")
# values that are references, not secrets: env lookups, template variables, code expressions, placeholders
NOT_A_SECRET = re.compile(
    r"""(?ix)^(
        \$\{?[\w:-]+\}?.* | \{\{.* | \{[\w.]*\}.* | <[^>]*>.* | %\(.* | os\.environ.* | os\.getenv.* | env.* |
        self\.[\w.]+.* | s\.[\w.]+.* | settings\.[\w.]+.* | pg\.[\w.]+.* | [\w.]*\(.* | [\w.]+\[.* |
        none | null | true | false | str | bool | int | optional.* | secretstr | field.* |
        changeme | change-me | example | placeholder | xxx+ | \*+ | redacted | dummy | test | secret | password
    )$"""
)


def _credential_findings(path: Path, text: str) -> list[str]:
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for rx in (SECRET_ASSIGNMENT, URL_WITH_PASSWORD):
            for m in rx.finditer(line):
                value = m.group("value").strip().rstrip(";")
                if NOT_A_SECRET.match(value) or value.startswith(("$", "{", "%", "?", "os.", "get_", "_")):
                    continue
                if (
                    rx is SECRET_ASSIGNMENT
                    and not re.search(r"[A-Za-z]", value)
                    and not re.search(r"\d{6,}", value)
                ):
                    continue  # a number of small size, an operator, etc.
                if (
                    rx is SECRET_ASSIGNMENT
                    and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", value)
                    and not re.search(r"\d", value)
                ):
                    continue  # an identifier (a variable or attribute), not a literal
                hits.append(f"{path}:{lineno}: {line.strip()[:160]}")
    return hits


def test_the_scanner_finds_planted_credentials():
    planted = (
        'DB_PASSWORD = "hunter2hunter2"\n'
        "url: postgresql://ecom:S3cr3tPass@db:5432/ecom\n"
        "api_key: sk-live-abcdef123456\n"
        'password = os.environ["ECOM_PG_PASSWORD"]\n'
        "postgres_url: postgresql://{user}:{password}@{host}/db\n"
    )
    hits = _credential_findings(Path("planted.py"), planted)
    assert [h.split(":")[1] for h in hits] == ["1", "2", "3"], hits


ALLOWED_FAKES = ("tests/security/", "tests/dashboards/")


def test_no_credential_in_tracked_files():
    files = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    findings = []
    for name in filter(None, files):
        path = REPO_ROOT / name
        # .env.example holds empty placeholders (checked below); this file plants fakes for the scanner's own
        # test; the Metabase test double authenticates a fake server with made-up credentials
        if name == ".env.example" or name.startswith(ALLOWED_FAKES) or not path.is_file():
            continue
        if "vendor" in name or ".min." in name:  # third-party minified assets
            continue
        if (
            path.suffix in {".png", ".jpg", ".gz", ".parquet", ".jar", ".ico", ".lock"}
            or path.stat().st_size > 2_000_000
        ):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        findings += _credential_findings(Path(name), text)
    assert not findings, "possible credentials committed:\n" + "\n".join(findings)
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_env_example_holds_no_values_for_secrets():
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        m = re.match(r"#?\s*(\w*(PASSWORD|SECRET|API_KEY|TOKEN)\w*)=(\S*)", line)
        if m:
            assert m.group(3) == "", f".env.example gives a value to {m.group(1)}"


# ---------------------------------------------------------------------------------------------------------
# SQL injection through user input
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def canary(stack):
    """A schema + table of this test only; every injection tries to drop it."""
    schema = f"sectest_{uuid.uuid4().hex[:8]}"
    with connect(stack, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.canary (x int)")
        conn.execute(f"INSERT INTO {schema}.canary VALUES (1), (2)")
    yield f"{schema}.canary"
    with connect(stack, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _canary_rows(table: str) -> int | None:
    with connect(autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            return None
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _ecom(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecom.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.stack
@pytest.mark.slow
def test_injection_through_replay_mapping_values_and_query_name_is_inert(stack, canary, tmp_path):
    """A CSV whose column names and values are SQL, replayed to Kafka and landed into master by `ecom land`
    under a query name that is SQL too: the values arrive literally, nothing else runs."""
    from tests.streaming.support import create_topic, unique

    topic, labels = unique("t_sec_replay"), unique("t_sec_labels")
    create_topic(stack, topic, partitions=1)
    create_topic(stack, labels, partitions=1)
    cust_col = f'x"; DROP TABLE {canary}; --'
    attacks = [f"'; DROP TABLE {canary};--", f"a') OR 1=1; DELETE FROM {canary};--", 'c"; TRUNCATE x; --']
    attacks = [a[:32] for a in attacks]  # customer_id is at most 32 characters by contract
    rows = [
        {cust_col: a, "when": f"2026-11-2{i}T10:00:00Z", "amt": 10 + i, "tx": f"sec-{uuid.uuid4().hex[:12]}"}
        for i, a in enumerate(attacks)
    ]
    import pandas as pd

    csv = tmp_path / "attack.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        f"customer: '{cust_col.replace(chr(39), chr(39) * 2)}'\ntimestamp: when\namount: amt\ntransaction_id: tx\n"
    )
    out = _ecom(
        "replay", str(csv), "--mapping", str(mapping), "--topic", topic, "--labels-topic", labels, "--quiet"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    query_name = f"q'); DROP TABLE {canary}; --"
    out = _ecom(
        "land",
        "--topic",
        topic,
        "--labels-topic",
        labels,
        "--query-name",
        query_name,
        "--checkpoint",
        str(tmp_path / "land"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _canary_rows(canary) == 2
    ids = [r["tx"] for r in rows]
    with connect() as conn:
        landed = dict(
            conn.execute(
                "SELECT transaction_id, customer_id FROM master.transactions WHERE transaction_id = ANY(%s)",
                (ids,),
            ).fetchall()
        )
        marker = conn.execute(
            "SELECT count(*) FROM speed.batch_commits WHERE query_name = %s", (query_name,)
        ).fetchone()[0]
    assert landed == {r["tx"]: r[cust_col] for r in rows}  # stored literally
    assert marker >= 1  # the query name was a bound parameter too


@pytest.mark.stack
def test_injection_through_dashboard_filters_via_check_sql_is_inert(stack, canary):
    """`ecom metabase check-sql` runs every card of every spec with filter values from the command line."""
    attack = f"1'; DROP TABLE {canary}; --"
    args = ["metabase", "check-sql"]
    for tag in ("customer_id", "model_version", "segment", "suite"):
        args += ["--param", f"{tag}={attack}"]
    out = _ecom(*args, timeout=300)
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.returncode in (0, 1), out.stderr[-2000:]
    assert _canary_rows(canary) == 2
    out = _ecom("metabase", "check-sql", "--param", f"window_minutes=5; DROP TABLE {canary}", timeout=300)
    assert (
        out.returncode != 0
        and "Traceback" not in out.stderr
        and "window_minutes" in (out.stdout + out.stderr)
    )
    assert _canary_rows(canary) == 2


@pytest.mark.stack
def test_injection_through_the_analytics_table_config_is_inert(stack, canary):
    from analytics import io

    with connect() as conn:
        try:
            io.read_lines_from_db(conn, f"master.transactions LIMIT 0; DROP TABLE {canary}; --")
            conn.commit()
        except Exception:
            conn.rollback()
    assert _canary_rows(canary) == 2


def test_a_topic_name_with_quotes_is_refused_in_one_line():
    out = _ecom(
        "generate",
        "--events",
        "1",
        "--rate",
        "0",
        "--seed",
        "1",
        "--no-reference",
        "--topic",
        "x'; DROP TABLE t; --",
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "topic" in out.stderr


@pytest.mark.stack
@pytest.mark.slow
def test_stream_with_a_quoted_topic_name_fails_cleanly(stack, tmp_path):
    out = _ecom(
        "stream",
        "--topic",
        "x'; DROP TABLE t; --",
        "--available-now",
        "--query-name",
        f"sec_{uuid.uuid4().hex[:8]}",
        "--checkpoint",
        str(tmp_path / "ck"),
        timeout=300,
    )
    assert out.returncode != 0
    assert "Traceback (most recent call last)" not in out.stderr, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ecom stream:") and "InvalidTopicException" in last, last
