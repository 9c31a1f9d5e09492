"""The scale-out path on one machine: the speed layer on a local Spark standalone cluster (a master and one
worker started from pyspark's own scripts, `ecom cluster`), reading a 12-partition topic; the cluster stops
leaving no process behind."""

from __future__ import annotations

import time

import psutil
import pytest

from kernel.settings import REPO_ROOT, load_settings
from stack import spark_cluster
from tests.reliability.support import (
    ecom_cmd,
    free_port,
    fresh_events,
    is_loopback,
    listening_addresses,
    producer,
    send_events,
    speed_rows,
    start,
    tail,
)
from tests.streaming.support import create_topic, unique

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def cluster_settings(stack, monkeypatch, tmp_path):
    """Shared Postgres/Kafka/MLflow, but the cluster's ports and pid/log folder are this test's own."""
    state = REPO_ROOT / ".local" / "test-stacks" / f"cluster-{free_port()}"
    with monkeypatch.context() as m:
        m.setenv("ECOM_STATE_DIR", str(state))
        m.setenv("ECOM_PG_PASSWORD", stack.postgres.password)
        m.setenv("MLFLOW_TRACKING_URI", stack.mlflow.tracking_uri)
        for var in ("ECOM_SPARK_CLUSTER_PORT", "ECOM_SPARK_CLUSTER_UI_PORT", "ECOM_SPARK_WORKER_UI_PORT"):
            m.setenv(var, str(free_port()))
        s = load_settings()
    yield s
    spark_cluster.down(s)
    import shutil

    shutil.rmtree(state, ignore_errors=True)


def _tree(settings) -> set[int]:
    pids = set()
    for d in spark_cluster.daemons(settings):
        pid = d.pid()
        if pid and psutil.pid_exists(pid):
            pids |= {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    return pids


def test_stream_on_a_standalone_cluster_reads_a_12_partition_topic(cluster_settings, model_name, tmp_path):
    s = cluster_settings
    st = spark_cluster.up(s)
    assert [w["state"] for w in st["workers"]] == ["ALIVE"]
    for d in spark_cluster.daemons(s):  # master RPC + UI, worker RPC + UI: loopback only
        listening = listening_addresses(d.pid())
        assert listening and all(is_loopback(ip) for ip, _ in listening), (d.name, listening)
    topic = unique("t_rel_cluster")
    create_topic(s, topic, partitions=12)
    events = fresh_events(1200, seed=61, n_customers=300)
    ids = [e["transaction_id"] for e in events]
    prod = producer(s)
    send_events(prod, topic, events)
    prod.close()
    log = tmp_path / "cluster-stream.log"
    proc = start(
        ecom_cmd(
            "stream",
            "--topic",
            topic,
            "--checkpoint",
            str(tmp_path / "ckpt"),
            "--query-name",
            unique("q_rel_cluster"),
            "--model-name",
            model_name,
            "--available-now",
            "--max-offsets",
            "600",
        ),
        log,
        env=spark_cluster.client_env(s),
    )
    seen_app = False
    while proc.poll() is None:  # the driver registers with the master and gets an executor on the worker
        state = spark_cluster.master_state(s) or {}
        seen_app = seen_app or any(
            a.get("name", "").startswith("ecom-stream") for a in state.get("activeapps", [])
        )
        time.sleep(1)
    assert proc.returncode == 0, tail(log)
    assert seen_app, "the stream never registered with the standalone master"
    assert speed_rows(ids) == (1200, 1200)
    from kernel.db import connect

    with connect() as conn:
        partitions = conn.execute(
            "SELECT count(DISTINCT kafka_partition) FROM speed.scored_transactions WHERE transaction_id = ANY(%s)",
            (ids,),
        ).fetchone()[0]
    assert partitions == 12  # 300 customer keys spread over every partition
    pids = _tree(s)
    assert pids
    spark_cluster.down(s)
    time.sleep(1)
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left behind: {left}"
    assert spark_cluster.master_state(s) is None


@pytest.mark.stack  # module-wide marker; this one needs no service
def test_cluster_commands_bind_to_the_settings_address_and_ports(settings):
    master, worker = spark_cluster.daemons(settings)
    sp = settings.spark
    m = master.command()
    assert m[0].endswith("bin/spark-class") and "org.apache.spark.deploy.master.Master" in m
    assert m[m.index("--host") + 1] == settings.bind_host
    assert m[m.index("--port") + 1] == str(sp.cluster_master_port)
    assert m[m.index("--webui-port") + 1] == str(sp.cluster_master_ui_port)
    w = worker.command()
    assert sp.cluster_master_url(settings.bind_host) in w
    assert w[w.index("--cores") + 1] == str(sp.cluster_worker_cores)
    assert w[w.index("--memory") + 1] == sp.cluster_worker_memory
    env = master.env()
    assert env["SPARK_LOCAL_IP"] == settings.bind_host and env["SPARK_HOME"] == str(
        spark_cluster.spark_home()
    )
    assert "spark.master.rest.enabled=false" in env["SPARK_MASTER_OPTS"]
    assert spark_cluster.client_env(settings)["SPARK_MASTER"] == sp.cluster_master_url(settings.bind_host)
