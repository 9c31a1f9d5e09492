"""Local access to Postgres: every login asks for a password (socket and TCP), the socket folder is the
cluster owner's alone, a cluster made before these rules is brought in line by `ecom up`, and each
component's role is refused what it must not touch.

Every attempt runs inside a transaction that is rolled back, so a role that wrongly succeeds changes nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import uuid

import psycopg
import pytest

from kernel.db import connect
from kernel.settings import COMPONENT_ROLES, REPO_ROOT, load_settings
from stack import services as stack_mod

pytestmark = pytest.mark.stack

TX_COLUMNS = """(transaction_id, schema_version, customer_id, merchant_id, terminal_id, event_time, currency,
    amount, payment_method, channel, device_id, device_type, line_items, kafka_topic, kafka_partition,
    kafka_offset, kafka_timestamp)"""
TX_VALUES = (
    "('roles-{id}', 1, 'C', 'M', 'T', now(), 'USD', 1, 'card', 'web', 'D', 'desktop', '[]', 't', 0, 0, now())"
)
MARKER = "INSERT INTO speed.batch_commits (query_name, batch_id, rows_written) VALUES ('roles-{id}', 0, 0)"

# what each role must be refused, per statement (table names of kernel/sql/)
FORBIDDEN = {
    "stream": [
        f"INSERT INTO master.transactions {TX_COLUMNS} VALUES {TX_VALUES}",
        "INSERT INTO master.chargebacks (transaction_id) VALUES ('x')",
        "SELECT 1 FROM master.transactions LIMIT 1",
        "SELECT 1 FROM analytics.rfm_customers LIMIT 1",
        "SELECT 1 FROM reference.customers LIMIT 1",
        "UPDATE speed.scored_transactions SET fraud_score = 0 WHERE false",
        "DELETE FROM speed.batch_commits WHERE false",
        "TRUNCATE quarantine.events",
        "DROP TABLE speed.fraud_alerts",
        "CREATE TABLE speed.roles_probe (x int)",
        "CREATE SCHEMA roles_probe",
        "CREATE TABLE public.roles_probe (x int)",
    ],
    "landing": [
        "INSERT INTO speed.scored_transactions (transaction_id) VALUES ('x')",
        "INSERT INTO speed.fraud_alerts (transaction_id) VALUES ('x')",
        "SELECT 1 FROM speed.scored_transactions LIMIT 1",
        "SELECT 1 FROM analytics.rfm_customers LIMIT 1",
        "UPDATE master.transactions SET amount = 2 WHERE false",
        "DELETE FROM master.chargebacks WHERE false",
        "TRUNCATE master.transactions",
        "ALTER TABLE master.transactions DISABLE TRIGGER USER",
        "CREATE SCHEMA roles_probe",
        "CREATE TABLE public.roles_probe (x int)",
    ],
    "dbt": [
        f"INSERT INTO master.transactions {TX_COLUMNS} VALUES {TX_VALUES}",
        "INSERT INTO speed.scored_transactions (transaction_id) VALUES ('x')",
        MARKER,
        "DELETE FROM quarantine.events WHERE false",
        "UPDATE analytics.rfm_customers SET customer_id = customer_id WHERE false",
        "TRUNCATE speed.batch_commits",
        "DROP TABLE master.chargebacks",
        "CREATE TABLE master.roles_probe (x int)",
        "CREATE TABLE public.roles_probe (x int)",
    ],
    "dashboards": [
        f"INSERT INTO master.transactions {TX_COLUMNS} VALUES {TX_VALUES}",
        MARKER,
        "DELETE FROM quarantine.events WHERE false",
        "CREATE SCHEMA roles_probe",
        "CREATE TABLE public.roles_probe (x int)",
    ],
}

# what each role needs (proves the refusals above are the privileges, not a broken login)
ALLOWED = {
    "stream": [
        MARKER,
        "SELECT count(*) FROM speed.scored_transactions",
        "SELECT count(*) FROM master.chargebacks",
        "INSERT INTO quarantine.events (source, raw_payload, reason) VALUES ('roles', '\\x00', 'probe')",
        "INSERT INTO ops.stream_batches (query_name, batch_id, rows_in, rows_written, duration_ms) "
        "VALUES ('roles-{id}', 0, 0, 0, 0)",
    ],
    "landing": [
        f"INSERT INTO master.transactions {TX_COLUMNS} VALUES {TX_VALUES}",
        MARKER,
        "INSERT INTO quarantine.events (source, raw_payload, reason) VALUES ('roles', '\\x00', 'probe')",
    ],
    "dbt": [
        "SELECT count(*) FROM master.transactions",
        "SELECT count(*) FROM speed.scored_transactions",
        "SELECT count(*) FROM reference.customers",
        "CREATE SCHEMA roles_probe_dbt",
    ],
    "dashboards": [
        "SELECT count(*) FROM master.transactions",
        "SELECT count(*) FROM analytics.rfm_customers",
    ],
}


def _attempt(settings, component: str, statement: str) -> str | None:
    """Run one statement as the component's role in a rolled-back transaction: None if it ran, else the
    error's SQLSTATE."""
    with connect(settings, role=component) as conn:
        try:
            conn.execute(statement.replace("{id}", uuid.uuid4().hex[:8]))
            return None
        except psycopg.Error as exc:
            return exc.sqlstate or type(exc).__name__
        finally:
            conn.rollback()


def test_every_component_has_its_own_role():
    s = load_settings()
    assert set(COMPONENT_ROLES) == set(FORBIDDEN) == set(ALLOWED)
    users = [s.postgres.as_role(c).user for c in COMPONENT_ROLES]
    assert len(set(users)) == len(users) and s.postgres.user not in users


@pytest.mark.parametrize("component", sorted(FORBIDDEN))
def test_role_is_refused_what_it_must_not_touch(stack, component):
    with connect(stack, role=component) as conn:
        who, superuser = conn.execute(
            "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user"
        ).fetchone()
    assert who == COMPONENT_ROLES[component] and not superuser
    granted = {st: _attempt(stack, component, st) for st in FORBIDDEN[component]}
    # 42501 insufficient_privilege; 25006 read_only_sql_transaction (the dashboards' second wall)
    wrong = {st: code for st, code in granted.items() if code not in ("42501", "25006")}
    assert not wrong, f"{component} was allowed (None) or failed otherwise: {wrong}"


@pytest.mark.parametrize("component", sorted(ALLOWED))
def test_role_can_do_its_own_work(stack, component):
    refused = {st: code for st in ALLOWED[component] if (code := _attempt(stack, component, st)) is not None}
    assert not refused, f"{component} was refused its own work: {refused}"


@pytest.mark.parametrize("component", sorted(COMPONENT_ROLES))
def test_roles_cannot_open_dagster_or_mlflow_metadata(stack, component):
    for db in (stack.postgres.dagster_db, stack.postgres.mlflow_db):
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            connect(stack, db=db, role=component).close()


def test_a_wrong_password_is_refused_over_tcp(stack):
    dsn = stack.postgres.as_role("stream").dsn().replace(stack.postgres.roles["stream"].password, "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn, connect_timeout=5).close()


# ---------------------------------------------------------------------------------------------------------
# the socket and pg_hba.conf
# ---------------------------------------------------------------------------------------------------------


def _socket_dsn(settings, password: str | None) -> str:
    pg = settings.postgres
    dsn = f"host={pg.socket_dir} port={pg.port} user={pg.user} dbname=postgres connect_timeout=5"
    return dsn + (f" password={password}" if password is not None else "")


def _assert_locked_down(settings) -> None:
    pg = settings.postgres
    mode = stat.S_IMODE(pg.socket_dir.stat().st_mode)
    assert mode & 0o077 == 0, f"socket folder {pg.socket_dir} is {oct(mode)}, not owner-only"
    env = {"PGPASSFILE": os.devnull}  # no ~/.pgpass helping the client
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with pytest.raises(psycopg.OperationalError, match="no password supplied|password authentication"):
            psycopg.connect(_socket_dsn(settings, None)).close()
        with psycopg.connect(_socket_dsn(settings, pg.password)) as conn:
            methods = {r[0] for r in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert methods == {"scram-sha-256"}, methods


def test_the_running_cluster_asks_for_the_password_on_socket_and_tcp(stack):
    _assert_locked_down(stack)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_postgres(monkeypatch):
    """A Postgres cluster of this test's own (own state folder and port), stopped and removed after."""
    state = REPO_ROOT / ".local" / "test-stacks" / f"roles-{uuid.uuid4().hex[:8]}"
    state.mkdir(parents=True)
    monkeypatch.setenv("ECOM_STATE_DIR", str(state))
    monkeypatch.setenv("ECOM_PG_PORT", str(_free_port()))
    monkeypatch.delenv("ECOM_PG_PASSWORD", raising=False)
    s = load_settings()
    pg = next(svc for svc in stack_mod.services(s) if svc.name == "postgres")
    yield s, pg
    pg.stop()
    shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
def test_up_locks_down_a_cluster_made_with_trust_and_an_open_socket_folder(private_postgres):
    s, pg = private_postgres
    pg.start()
    stack_mod._wait(pg, __import__("time").monotonic() + 120, lambda m: None)
    # what a cluster initialised before this rule looks like: trust on the socket, the folder open to all
    hba = s.postgres.data_dir / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("local   all             all                                     scram-sha-256",
                                           "local   all             all                                     trust"))  # fmt: skip
    pg.reload()
    s.postgres.socket_dir.chmod(0o1777)
    with psycopg.connect(_socket_dsn(s, None)) as conn:  # anyone on the machine got in as the superuser
        assert conn.execute("SELECT current_user").fetchone() == (s.postgres.user,)
    pg.after_healthy()  # what `ecom up` runs on a healthy cluster: no restart
    _assert_locked_down(s)
    # the component roles exist and log in with their generated passwords
    for component in COMPONENT_ROLES:
        with connect(s, role=component) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (COMPONENT_ROLES[component],)
