"""A local Spark standalone cluster (one master + one worker) from pyspark's own scripts and jars.

The scale-out path exercised on one machine: the same `ecom stream` runs against `spark://...` instead of
`local[*]` (set SPARK_MASTER to `cluster_master_url()`), so its executors are separate JVMs started by a
worker, exactly as on a real cluster. Nothing is downloaded: pyspark's wheel ships `bin/spark-class` and
every jar the master and worker need. Both bind to the stack's address only (settings.bind_host), keep their
pid and log under settings.state_dir like the stack's services, and stop as a whole process tree.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings
from stack.services import Service, log_tail, port_open


def spark_home() -> Path:
    """pyspark's install folder: it has bin/spark-class and jars/, which is all a standalone cluster needs."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def cluster_dir(settings: Settings) -> Path:
    return settings.state_dir / "spark-cluster"


def master_ui_url(settings: Settings) -> str:
    return f"http://{settings.bind_host}:{settings.spark.cluster_master_ui_port}"


def master_state(settings: Settings, timeout: float = 2.0) -> dict | None:
    """The master's JSON status (workers, apps), or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{master_ui_url(settings)}/json/", timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read())
    except Exception:
        return None


class _SparkDaemon(Service):
    """A master or worker JVM started through spark-class, in its own session (see stack.services.Service)."""

    def check_prerequisites(self) -> None:
        if not shutil.which("java"):
            raise EcomError(
                f"{self.name}: Java not found on PATH; install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"
            )
        if not (spark_home() / "bin" / "spark-class").exists():
            raise EcomError(
                f"{self.name}: {spark_home()}/bin/spark-class is missing; reinstall pyspark (make bootstrap)"
            )

    def env(self) -> dict[str, str]:
        s = self.settings
        work = cluster_dir(s)
        return {
            **super().env(),
            "SPARK_HOME": str(spark_home()),
            # every listener (RPC, web UI, executors, block managers) on the stack's address only
            "SPARK_LOCAL_IP": s.bind_host,
            "SPARK_LOCAL_HOSTNAME": s.bind_host,
            "SPARK_LOG_DIR": str(s.logs_dir),
            "SPARK_WORKER_DIR": str(work / "work"),
            "SPARK_LOCAL_DIRS": str(work / "tmp"),
            "SPARK_DAEMON_MEMORY": "512m",
            # no REST submission server (port 6066): drivers connect over the RPC port only
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
            "SPARK_NO_DAEMONIZE": "1",
        }

    def prepare(self) -> None:
        for sub in ("work", "tmp"):
            (cluster_dir(self.settings) / sub).mkdir(parents=True, exist_ok=True)

    def _spark_class(self, *args: str) -> list[str]:
        return [str(spark_home() / "bin" / "spark-class"), *args]


class SparkMaster(_SparkDaemon):
    def healthy(self) -> bool:
        return port_open(self.host, self.port) and master_state(self.settings) is not None

    def command(self) -> list[str]:
        sp = self.settings.spark
        return self._spark_class(
            "org.apache.spark.deploy.master.Master",
            "--host", self.host,
            "--port", str(sp.cluster_master_port),
            "--webui-port", str(sp.cluster_master_ui_port),
        )  # fmt: skip


class SparkWorker(_SparkDaemon):
    def healthy(self) -> bool:
        state = master_state(self.settings)
        return bool(state) and any(w.get("state") == "ALIVE" for w in state.get("workers", []))

    def command(self) -> list[str]:
        s, sp = self.settings, self.settings.spark
        return self._spark_class(
            "org.apache.spark.deploy.worker.Worker",
            sp.cluster_master_url(s.bind_host),
            "--host", self.host,
            "--cores", str(sp.cluster_worker_cores),
            "--memory", sp.cluster_worker_memory,
            "--webui-port", str(sp.cluster_worker_ui_port),
            "--work-dir", str(cluster_dir(s) / "work"),
        )  # fmt: skip


def daemons(settings: Settings | None = None) -> list[_SparkDaemon]:
    s = settings or get_settings()
    sp, host = s.spark, s.bind_host
    return [
        SparkMaster("spark-master", host, sp.cluster_master_port, sp.cluster_master_url(host), s),
        SparkWorker(
            "spark-worker", host, sp.cluster_worker_ui_port, f"http://{host}:{sp.cluster_worker_ui_port}", s
        ),
    ]


def up(settings: Settings | None = None, timeout: float = 120.0) -> dict[str, object]:
    """Start the master, then the worker; wait until the worker registered. Idempotent."""
    s = settings or get_settings()
    for svc in daemons(s):
        if not svc.healthy():
            svc.start()
            deadline = time.monotonic() + timeout
            while not svc.healthy():
                if not svc.running():
                    raise EcomError(
                        f"{svc.name}: exited during start-up; see {svc.log_file} ({log_tail(svc.log_file, 3)[-300:]})"
                    )
                if time.monotonic() > deadline:
                    raise EcomError(f"{svc.name}: not healthy after {timeout:.0f} s; see {svc.log_file}")
                time.sleep(0.5)
    return status(s)


def down(settings: Settings | None = None) -> None:
    """Stop the worker (and the executors it launched), then the master: no process left behind."""
    for svc in reversed(daemons(settings)):
        svc.stop()


def status(settings: Settings | None = None) -> dict[str, object]:
    s = settings or get_settings()
    state = master_state(s) or {}
    return {
        "master_url": s.spark.cluster_master_url(s.bind_host),
        "ui": master_ui_url(s),
        "daemons": [svc.status() for svc in daemons(s)],
        "workers": [
            {
                "id": w.get("id"),
                "state": w.get("state"),
                "cores": w.get("cores"),
                "memory_mb": w.get("memory"),
            }
            for w in state.get("workers", [])
        ],
        "running_apps": [a.get("name") for a in state.get("activeapps", [])],
    }


def client_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment for a driver (e.g. `ecom stream`) that should run on this cluster."""
    s = settings or get_settings()
    return {
        "SPARK_MASTER": s.spark.cluster_master_url(s.bind_host),
        "SPARK_LOCAL_IP": s.bind_host,
        "SPARK_LOCAL_HOSTNAME": s.bind_host,
        **({"SPARK_HOME": os.environ["SPARK_HOME"]} if "SPARK_HOME" in os.environ else {}),
    }
