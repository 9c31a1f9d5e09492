"""The local stack against the real services: each part answers, and the launcher's life cycle holds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from dagster._daemon.controller import RELOAD_WORKSPACE_INTERVAL

from kernel.errors import EcomError
from kernel.settings import REPO_ROOT
from stack import services as stack_mod

pytestmark = pytest.mark.stack


def test_postgres_answers_and_has_the_platform_schemas(stack):
    from kernel.db import connect

    with connect(stack) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        schemas = {r[0] for r in conn.execute("SELECT schema_name FROM information_schema.schemata")}
        dbs = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert {"master", "speed", "quarantine", "ops", "analytics", "quality"} <= schemas
    assert {stack.postgres.db, stack.postgres.dagster_db, stack.postgres.mlflow_db} <= dbs


def test_master_dataset_is_append_only(stack):
    from kernel.db import connect

    conn = connect(stack)
    try:
        # inside one transaction that is rolled back: nobody else ever sees the row
        conn.execute(
            """INSERT INTO master.transactions (transaction_id, schema_version, customer_id, merchant_id,
               terminal_id, event_time, currency, amount, payment_method, channel, device_id, device_type,
               line_items, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp)
               VALUES (%s, 1, 'C', 'M', 'T', now(), 'USD', 1, 'card', 'web', 'D', 'desktop', '[]', 't', 0, 0, now())""",
            (f"append-only-{uuid.uuid4()}",),
        )
        with pytest.raises(Exception, match="append-only"):
            conn.execute(
                "UPDATE master.transactions SET amount = 2 WHERE customer_id = 'C' AND kafka_topic = 't'"
            )
    finally:
        conn.rollback()
        conn.close()


def test_message_round_trips_through_kafka(stack):
    from confluent_kafka import Producer

    from kernel.kafka import consumer as kafka_consumer

    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    stack_mod.ensure_topics(stack, [topic], partitions=3)
    delivered = []
    producer = Producer({"bootstrap.servers": stack.kafka.bootstrap_servers, "acks": "all"})
    producer.produce(topic, b"hello", b"C1", on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(30) == 0 and delivered == [None]
    consumer = kafka_consumer(stack.kafka.bootstrap_servers)  # its own consumer group
    consumer.subscribe([topic])
    values, deadline = [], time.monotonic() + 30
    while not values and time.monotonic() < deadline:
        values = [(m.key(), m.value()) for m in consumer.consume(10, timeout=1) if not m.error()]
    consumer.close()
    assert values == [(b"C1", b"hello")]


def test_platform_topics_exist_with_several_partitions(stack):
    from kernel.kafka import admin_client, topic_partitions

    parts = topic_partitions(admin_client(stack.kafka.bootstrap_servers))
    assert parts.get(stack.kafka.topic_transactions) == stack.kafka.partitions >= 3
    assert parts.get(stack.kafka.topic_dead_letter)
    assert parts.get(stack.kafka.topic_labels)


def test_mlflow_logs_a_run_and_registers_a_model_version(stack, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(stack.mlflow.tracking_uri)
    name = f"stack_check_{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment("stack-checks")
    with mlflow.start_run() as run:
        mlflow.log_metric("answer", 42.0)
        (tmp_path / "note.txt").write_text("artifact through the server")
        mlflow.log_artifact(str(tmp_path / "note.txt"))
    client = MlflowClient(stack.mlflow.tracking_uri)
    assert client.get_run(run.info.run_id).data.metrics["answer"] == 42.0
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/note.txt", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", mv.version)
    assert client.get_model_version_by_alias(name, "champion").version == mv.version
    client.delete_registered_model(name)


def test_dagster_graphql_answers_with_the_loaded_definitions(stack):
    query = """
    { workspaceOrError { ... on Workspace { locationEntries { name
        locationOrLoadError { __typename ... on RepositoryLocation { repositories { name
            assetNodes { assetKey { path } } } } ... on PythonError { message } } } } } }
    """
    deadline = time.monotonic() + 120
    while True:
        body = requests.post(f"{stack.dagster.url}/graphql", json={"query": query}, timeout=30).json()
        entries = body["data"]["workspaceOrError"]["locationEntries"]
        loaded = [
            e
            for e in entries
            if e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        ]
        still_loading = any(e["locationOrLoadError"] is None for e in entries)
        if loaded or not still_loading or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert loaded, f"no code location loaded: {json.dumps(entries)[:500]}"
    keys = {
        "/".join(n["assetKey"]["path"])
        for r in loaded[0]["locationOrLoadError"]["repositories"]
        for n in r["assetNodes"]
    }
    assert "master/transactions" in keys


def test_status_json_reports_every_service(stack):
    out = subprocess.run(
        [sys.executable, "-m", "ecom.cli", "status", "--json"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert out.returncode == 0, out.stderr
    names = [s["name"] for s in json.loads(out.stdout)["services"]]
    assert names == [
        "postgres", "kafka", "mlflow", "dagster-code-server", "dagster-webserver", "dagster-daemon",
        "dbt-docs", "data-docs", "dashboards",  # the UIs (`ecom up --uis`), listed even when not started
    ]  # fmt: skip


# --- the launcher's life cycle, on a second stack of its own (other ports, own state folder) --------------


def _code_servers(s) -> set[int]:
    """Dagster code-server processes (`code-server start`, `api grpc`) anywhere in the stack's trees."""
    found = set()
    for pid in _tree_pids(s):
        try:
            cmd = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            continue
        if "code-server" in cmd or "api grpc" in cmd:
            found.add(pid)
    return found


def _tree_pids(s) -> set[int]:
    pids = set()
    for svc in stack_mod.services(s):
        pid = svc.pid()
        if pid and stack_mod.pid_alive(pid):
            proc = psutil.Process(pid)
            pids |= {pid, *(c.pid for c in proc.children(recursive=True))}
    return pids


def _alive(pid: int) -> bool:
    """A process that still runs (not a zombie); one that exits while it is looked at is gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_up_twice_is_a_no_op_and_down_leaves_no_process(private_settings):
    s = private_settings
    statuses = stack_mod.up(s, progress=lambda m: None)
    assert all(st["healthy"] for st in statuses), statuses
    pids_before = {st["name"]: st["pid"] for st in statuses}
    # one code server for the webserver and the daemon, and the same one across the daemon's workspace
    # refreshes (each of which used to spawn a new code server): measured over more than one refresh
    servers = _code_servers(s)
    assert len(servers) == 2, servers  # `dagster code-server start` and the child that holds the code
    time.sleep(RELOAD_WORKSPACE_INTERVAL + 15)
    assert _code_servers(s) == servers
    tree = _tree_pids(s)
    messages: list[str] = []
    again = stack_mod.up(s, progress=messages.append)
    assert messages == [], "a second up must not start anything"
    assert {st["name"]: st["pid"] for st in again} == pids_before
    stack_mod.down(s, progress=lambda m: None)
    time.sleep(1)
    left = [p for p in tree if _alive(p)]
    assert left == [], f"processes left behind: {left}"
    assert not any(st["healthy"] for st in stack_mod.status(s))


def test_a_taken_port_is_reported_in_one_line_naming_the_service(private_settings):
    s = private_settings
    with socket.socket() as blocker:
        blocker.bind((s.kafka.host, s.kafka.port))
        blocker.listen(1)
        kafka = next(svc for svc in stack_mod.services(s) if svc.name == "kafka")
        with pytest.raises(EcomError) as err:
            kafka.start()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("kafka:") and str(s.kafka.port) in msg and "in use" in msg
    assert f"pid {os.getpid()}" in msg, msg  # names what holds the port (this test)


def test_missing_java_is_reported_clearly(private_settings, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    kafka = next(svc for svc in stack_mod.services(private_settings) if svc.name == "kafka")
    with pytest.raises(EcomError, match=r"^kafka: Java not found"):
        kafka.start()


def test_cli_reports_a_bad_flag_in_one_line():
    out = subprocess.run(
        [sys.executable, "-m", "ecom.cli", "status", "--jsn"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ},
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "unrecognized arguments: --jsn" in lines[0]


def test_paths_are_under_the_state_folder(private_settings):
    s = private_settings
    for p in (
        s.postgres.data_dir,
        s.kafka.data_dir,
        s.mlflow.artifacts_dir,
        s.dagster.home,
        s.logs_dir,
        s.spark.checkpoint_dir,
    ):
        assert Path(p).is_relative_to(s.state_dir)
