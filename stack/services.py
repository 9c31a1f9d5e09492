"""The local stack without Docker: start, stop and check PostgreSQL, Kafka (KRaft), MLflow and Dagster,
and the UIs a person opens beside Dagster and MLflow: the dbt docs site, the GX Data Docs and the dashboards.

Every service runs as a child process in its own session, with a pid file under `.local/run/`, a log
under `.local/logs/`, and a health check. `up` is idempotent (healthy services are left alone), `down`
stops exactly what `up` started (the whole process tree, so Dagster's code servers go too), and
`status` reports each service. The UIs are started on request (`up(uis=True)`, `ecom up --uis`, the end of
`ecom demo`): each is the room's own serving command (`ecom docs`, `ecom quality docs --serve`,
`ecom dashboards serve`) run as a service. Everything a service keeps lives under settings.state_dir, so
deleting that folder is a full reset.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings, service_env

START_TIMEOUT_S = 180


# ---------------------------------------------------------------------------------------------------------
# small process helpers
# ---------------------------------------------------------------------------------------------------------


def _restore_default_signals() -> None:
    # a launcher started from `make`, nohup or a CI shell may ignore SIGINT/SIGTERM; ignored signals are
    # inherited across exec, and `dagster` then never stops. Reset them in the child before exec.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (local URL from settings)
            return 200 <= resp.status < 300
    except Exception:
        return False


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_tree(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM a process and all its descendants, then SIGKILL whatever is left after `timeout`."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [root, *root.children(recursive=True)]
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def port_free(host: str, port: int) -> bool:
    """True when a server could bind host:port now. A bind test, not a connect: a socket that is bound but
    not (yet) listening, e.g. a server half way through its start or stop, refuses connections but still
    makes the next bind fail with "Address already in use"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as the servers themselves do: a closed connection's TIME_WAIT does not hold the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_holders(port: int) -> list[str]:
    """Who holds a local TCP port (listening or merely bound): "pid 123 (java: java -cp ...)" each. Read from
    /proc/net/tcp{,6} and /proc/<pid>/fd by psutil; processes of other users show without a pid unless
    we are root."""
    found = []
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return []
    for c in conns:
        if not c.laddr or c.laddr.port != port or c.raddr:
            continue  # a connection to or from the port is not what keeps it from being bound
        if c.pid is None:
            found.append("a process of another user (run as root to see which)")
            continue
        try:
            proc = psutil.Process(c.pid)
            cmd = " ".join(proc.cmdline())[:120] or proc.name()
            found.append(f"pid {c.pid} ({proc.name()}: {cmd})")
        except psutil.Error:
            found.append(f"pid {c.pid}")
    return sorted(set(found))


BIND_ERRORS = ("Address already in use", "could not bind", "BindException", "address already in use")


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_since(path: Path, offset: int) -> str:
    """What a log gained after `offset` (this start's lines, not an earlier run's)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------------------
# services
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Service:
    """One local service: how to start it, how to tell it is healthy, where its pid and log are."""

    name: str
    host: str
    port: int
    url: str
    settings: Settings

    @property
    def pid_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _recorded_start_time(self) -> float | None:
        try:
            return float(self.pid_file.read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return None  # a pid file from before start times were recorded

    def running(self) -> bool:
        """Our process is alive. A stale pid file (the process gone, or its pid reused by another process
        after a reboot or a crash) is not: the pid file records the process' start time besides its pid."""
        pid = self.pid()
        if not pid_alive(pid):
            return False
        recorded = self._recorded_start_time()
        try:
            proc = psutil.Process(pid)
            if recorded is not None:
                return abs(proc.create_time() - recorded) < 1.0
            # a pid file from before start times were recorded: the process must at least run our program
            return Path(self.command()[0]).name in " ".join(proc.cmdline())
        except (psutil.Error, EcomError, OSError):
            return False

    def healthy(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time set-up before the first start (idempotent)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, **service_env(self.settings)}

    def check_prerequisites(self) -> None:
        """Raise EcomError naming what is missing."""

    # False for a service that listens on no port of its own (the Dagster daemon)
    owns_port = True

    def check_port_free(self, wait_s: float | None = None) -> None:
        """Wait (up to settings.port_wait_s) for the service's port to be bindable: a process that is still
        exiting, or a start racing another, frees it a moment later. A port that stays taken is an error
        naming the process that holds it."""
        if not self.owns_port:
            return
        wait_s = self.settings.port_wait_s if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        while not port_free(self.host, self.port):
            if time.monotonic() >= deadline:
                holders = "; ".join(port_holders(self.port)) or (
                    "no process visible: a socket bound but not listening is listed nowhere"
                )
                raise EcomError(
                    f"{self.name}: port {self.port} on {self.host} is already in use (held by {holders}) "
                    f"after waiting {wait_s:g} s; stop that process or move {self.name} to another port in "
                    f".env (see .env.example) (log: {self.log_file})"
                )
            time.sleep(0.25)

    # offset of the log when this start began: a bind failure is looked for in this start's lines only
    _log_offset = 0

    def start(self) -> None:
        if self.running():
            return
        self.pid_file.unlink(missing_ok=True)  # stale: its process is gone (or the pid is another's now)
        self.check_prerequisites()
        self.check_port_free()
        self.prepare()
        self._spawn()

    def failed_to_bind(self) -> bool:
        """This start's log says the port was taken (a race the port check cannot close)."""
        return any(marker in log_since(self.log_file, self._log_offset) for marker in BIND_ERRORS)

    def _spawn(self) -> None:
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = log_size(self.log_file)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(  # noqa: S603 (fixed argv built from settings)
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.settings.repo_root,
                env=self.env(),
                start_new_session=True,
                preexec_fn=_restore_default_signals,  # noqa: PLW1509
            )
        try:
            started_at = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            started_at = 0.0
        self.pid_file.write_text(f"{proc.pid} {started_at:.2f}\n")

    def after_healthy(self) -> None:
        """Work that needs the service up (databases, topics)."""

    def stop(self) -> None:
        pid = self.pid()
        if pid and self.running():  # never a process that only inherited a stale pid file's number
            kill_tree(pid)
        self.pid_file.unlink(missing_ok=True)

    group = "core"  # "ui": started on request, see ui_services()

    def status(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.url,
            "pid": self.pid() if self.running() else None,
            "healthy": self.healthy(),
            "group": self.group,
            # a pid file means `up` started it and `down` has not stopped it: unhealthy then is a failure
            "started": self.pid_file.exists() if self.group == "ui" else True,
        }


class Postgres(Service):
    """A project-owned PostgreSQL 15 cluster under .local/postgres, run as an unprivileged OS user."""

    @property
    def pg(self):
        return self.settings.postgres

    @property
    def root(self) -> Path:
        return self.pg.data_dir.parent

    @property
    def log_file(self) -> Path:  # written by the postgres user, so it lives in a folder that user owns
        return self.root / "postgres.log"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", self.pg.os_user, "--", *argv]
        return argv

    def _ensure_os_user(self) -> None:
        if os.geteuid() != 0:
            return
        try:
            pwd.getpwnam(self.pg.os_user)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self.pg.os_user],
                check=True,
                capture_output=True,
            )

    def check_prerequisites(self) -> None:
        if not (self.pg.bin_dir / "initdb").exists():
            raise EcomError(
                f"postgres: no PostgreSQL server binaries in {self.pg.bin_dir}; install postgresql-15 "
                "(apt-get install postgresql-15) or set ECOM_PG_BIN_DIR"
            )

    def pid(self) -> int | None:
        try:
            return int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        # postmaster.pid outlives a crash or a reboot, and its pid may belong to another process by now
        pid = self.pid()
        if not pid_alive(pid):
            return False
        try:
            return psutil.Process(pid).name().startswith("postgres")
        except psutil.Error:
            return False

    def _remove_stale_lock_files(self) -> None:
        """postmaster.pid and the socket's lock file of a cluster that is not running (crash, kill -9, reboot):
        Postgres refuses to start while their pid is alive, even when that pid is another process now."""
        if self.running():
            return
        for lock in (self.pg.data_dir / "postmaster.pid", self.pg.socket_dir / f".s.PGSQL.{self.port}.lock"):
            lock.unlink(missing_ok=True)

    def healthy(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        try:
            import psycopg

            with psycopg.connect(self.pg.dsn("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except Exception:
            return False

    def _make_traversable(self) -> None:
        # the cluster runs as an unprivileged user: it must be able to walk down to its data folder even
        # when the checkout sits under a private (0700) directory, as CI clones can. Only the search bit
        # (o+x) is added, never read: nobody can list those folders because of this.
        for folder in reversed(self.root.parents):
            mode = folder.stat().st_mode
            if not mode & 0o001:
                folder.chmod(mode | 0o001)

    def secure_access(self) -> bool:
        """Lock local access down, also on a cluster made before this rule (initdb --auth-local=trust, socket
        folder open to every user): every pg_hba.conf line that trusts is rewritten to scram-sha-256 (socket
        and TCP both ask for the password) and the socket folder is the cluster owner's alone (0700).
        Returns True when pg_hba.conf changed (a running cluster must reload it)."""
        sock_dir = self.pg.socket_dir
        sock_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(sock_dir, self.pg.os_user)
        sock_dir.chmod(0o700)
        hba = self.pg.data_dir / "pg_hba.conf"
        if not hba.exists():
            return False
        text = hba.read_text()
        secured = hba_without_trust(text)
        if secured == text:
            return False
        hba.write_text(secured)  # keeps the file's owner and mode (0600, the cluster's user)
        return True

    def reload(self) -> None:
        subprocess.run(
            self._as_owner([str(self.pg.bin_dir / "pg_ctl"), "-D", str(self.pg.data_dir), "reload"]),
            capture_output=True,
            check=True,
        )

    def prepare(self) -> None:
        self._ensure_os_user()
        if os.geteuid() == 0:
            self._make_traversable()
        self.root.mkdir(parents=True, exist_ok=True)
        sock_dir = self.pg.socket_dir
        if os.geteuid() == 0:
            shutil.chown(self.root, self.pg.os_user)
        self.secure_access()
        if (self.pg.data_dir / "PG_VERSION").exists():
            return
        pwfile = self.root / ".pwfile"
        pwfile.write_text(self.pg.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, self.pg.os_user)
        pwfile.chmod(0o600)
        try:
            out = subprocess.run(
                self._as_owner(
                    [
                        str(self.pg.bin_dir / "initdb"),
                        "-D",
                        str(self.pg.data_dir),
                        "-U",
                        self.pg.user,
                        f"--pwfile={pwfile}",
                        "--auth-local=scram-sha-256",
                        "--auth-host=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--no-locale",
                    ]
                ),
                capture_output=True,
                text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if out.returncode != 0:
            raise EcomError(f"postgres: initdb failed: {out.stderr.strip()[-300:]}")
        conf = self.pg.data_dir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# ecom-lambda local cluster\n"
                f"listen_addresses = '{self.host}'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{sock_dir}'\n"
                "unix_socket_permissions = 0700\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "work_mem = 32MB\n"
                "maintenance_work_mem = 256MB\n"
                "wal_compression = on\n"
                "max_wal_size = 2GB\n"
                "log_min_duration_statement = 5000\n"
            )

    def start(self) -> None:
        if self.running():
            return
        self.check_prerequisites()
        self.prepare()
        self._remove_stale_lock_files()
        deadline = time.monotonic() + self.settings.port_wait_s
        while True:
            self.check_port_free(wait_s=max(0.0, deadline - time.monotonic()))
            self._log_offset = log_size(self.log_file)
            out = self._pg_ctl_start()
            if out.returncode == 0:
                return
            if self.failed_to_bind() and time.monotonic() < deadline:
                time.sleep(0.5)  # taken between the check and the bind: try again while the wait lasts
                continue
            raise EcomError(
                f"postgres: did not start ({out.stdout.strip()[-200:]}); see its log: {self.log_file}"
            )

    def _pg_ctl_start(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            self._as_owner(
                [
                    str(self.pg.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.pg.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
            preexec_fn=_restore_default_signals,  # noqa: PLW1509
        )

    def stop(self) -> None:
        if not self.running():
            return
        subprocess.run(
            self._as_owner(
                [
                    str(self.pg.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.pg.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ]
            ),
            capture_output=True,
        )
        pid = self.pid()
        if pid and pid_alive(pid):
            kill_tree(pid)

    def after_healthy(self) -> None:
        import psycopg
        from psycopg import sql

        if self.secure_access():  # a cluster made before local access was locked down
            self.reload()
        with psycopg.connect(self.pg.dsn("postgres"), autocommit=True) as conn:
            have = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            for db in (self.pg.db, self.pg.dagster_db, self.pg.mlflow_db):
                if db not in have:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
            # Dagster's and MLflow's metadata: their owner's only, not every role's (PUBLIC may connect
            # to a new database by default)
            for db in (self.pg.dagster_db, self.pg.mlflow_db):
                conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)))
        from kernel.db import migrate

        migrate(self.settings)  # the schemas, the component roles and their passwords


def hba_without_trust(text: str) -> str:
    """pg_hba.conf with every `trust` method replaced by scram-sha-256 (comments and layout kept)."""
    out = []
    for line in text.splitlines(keepends=True):
        fields = line.split("#", 1)[0].split()
        if fields and fields[0] in ("local", "host", "hostssl", "hostnossl") and "trust" in fields:
            line = line.replace("trust", "scram-sha-256")
        out.append(line)
    return "".join(out)


def _kafka_cluster_id() -> str:
    """A random KRaft cluster id (URL-safe base64 of a UUID). Like Kafka's own `Uuid.randomUuid()`, never
    one starting with "-": the storage tool's argument parser would read it as an option ("argument
    --cluster-id/-t: expected one argument"), which failed 1 in 64 broker formats."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka(Service):
    """One Kafka 4.x broker + controller in KRaft mode, from the jars Maven resolved into .jars/kafka."""

    @property
    def root(self) -> Path:
        return self.settings.kafka.data_dir

    @property
    def properties_file(self) -> Path:
        return self.root / "server.properties"

    def check_prerequisites(self) -> None:
        if not shutil.which("java"):
            raise EcomError(
                "kafka: Java not found on PATH; install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"
            )
        jars = self.settings.jars_dir / "kafka"
        if not any(jars.glob("kafka_2.13-*.jar")):
            raise EcomError(
                f"kafka: broker jars missing in {jars}; run `make bootstrap` (Maven resolves them)"
            )

    def healthy(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        try:
            from kernel.kafka import admin_client, topic_partitions

            topic_partitions(
                admin_client(self.settings.kafka.bootstrap_servers, **{"client.id": "ecom-health"}), 3
            )
            return True
        except Exception:
            return False

    def _java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        cp = str(self.settings.jars_dir / "kafka" / "*")
        log4j = self.settings.repo_root / "stack" / "kafka" / "log4j2.properties"
        return [
            "java",
            f"-Xmx{heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.settings.logs_dir}",
            "-cp",
            cp,
            main,
            *args,
        ]

    def prepare(self) -> None:
        k = self.settings.kafka
        self.root.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(
            "\n".join(
                [
                    "# generated by ecom up from kernel/settings.py; edit settings, not this file",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{self.host}:{k.controller_port}",
                    f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{k.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.root / 'data'}",
                    f"num.partitions={k.partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=168",
                    "message.max.bytes=10485760",
                    "",
                ]
            )
        )
        if (self.root / "data" / "meta.properties").exists():
            return
        cluster_id = _kafka_cluster_id()
        out = subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.properties_file)
            ),
            capture_output=True,
            text=True,
            cwd=self.settings.repo_root,
        )
        if out.returncode != 0:
            raise EcomError(f"kafka: storage format failed: {(out.stderr or out.stdout).strip()[-300:]}")

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.properties_file), heap=self.settings.kafka.heap)

    def after_healthy(self) -> None:
        ensure_topics(self.settings)


def ensure_topics(
    settings: Settings, names: list[str] | None = None, partitions: int | None = None
) -> list[str]:
    """Create the platform topics (or `names`) if missing; returns the ones created."""
    from kernel.kafka import create_topics

    k = settings.kafka
    wanted = names or [k.topic_transactions, k.topic_dead_letter, k.topic_labels]
    return create_topics(k.bootstrap_servers, wanted, partitions or k.partitions, k.replication_factor)


class Mlflow(Service):
    """MLflow tracking server + model registry, Postgres backend store, local artifact root."""

    def healthy(self) -> bool:
        return http_ok(f"{self.url}/health")

    def env(self) -> dict[str, str]:
        # job execution off: the idle server drops from ~3 GB to under 1 GB
        return {**super().env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def command(self) -> list[str]:
        s = self.settings
        s.mlflow.artifacts_dir.mkdir(parents=True, exist_ok=True)
        return [
            str(s.venv_bin / "mlflow"),
            "server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--backend-store-uri",
            s.postgres.url(s.postgres.mlflow_db, driver="psycopg"),
            "--serve-artifacts",
            "--artifacts-destination",
            str(s.mlflow.artifacts_dir),
            "--workers",
            "1",
        ]


class DagsterProcess(Service):
    """dagster-webserver or dagster-daemon, sharing DAGSTER_HOME (instance storage in Postgres)."""

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            **super().env(),
            "ECOM_DAGSTER_PG_URL": s.postgres.url(s.postgres.dagster_db, driver="psycopg2"),
            "DAGSTER_HOME": str(s.dagster.home),
        }

    def prepare(self) -> None:
        write_dagster_yaml(self.settings.dagster.home)
        write_workspace_yaml(self.settings)
        ensure_dbt_manifest(self.settings)


class DagsterCodeServer(DagsterProcess):
    """The one code server of the `ecom_lambda` location, shared over gRPC by the webserver and the daemon.

    Left to themselves, both load the location from a python_module entry by spawning a code server of
    their own, and the daemon throws its away and spawns a new one at every workspace refresh (every 60 s,
    dagster._daemon.controller.RELOAD_WORKSPACE_INTERVAL). With a grpc_server entry in the workspace they
    connect to this one instead; the daemon's refresh then only reconnects. Runs are launched from here
    (DefaultRunLauncher), so it carries the same environment as the webserver and the daemon."""

    def healthy(self) -> bool:
        # the proxy answers at once and loads the definitions in its child: healthy when they loaded
        return self.running() and code_server_ready(self.settings)

    def command(self) -> list[str]:
        d = self.settings.dagster
        return [
            str(self.settings.venv_bin / "dagster"),
            "code-server",
            "start",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-m",
            "orchestration.definitions",
            "-a",
            "defs",
            "-d",
            str(self.settings.repo_root),
            "--location-name",
            d.location_name,
            "--startup-timeout",
            "180",
        ]


def code_server_ready(settings: Settings) -> bool:
    """The shared code server answers over gRPC with its definitions loaded."""
    try:
        from dagster._grpc.client import DagsterGrpcClient

        client = DagsterGrpcClient(host=settings.dagster.host, port=settings.dagster.code_server_port)
        client.ping("ecom")
        return client.list_repositories() is not None
    except Exception:
        return False


def write_workspace_yaml(settings: Settings) -> Path:
    """The workspace the webserver and the daemon load: the shared code server (gRPC), nothing they spawn.
    (The repo's workspace.yaml stays the one a person runs `dagster dev` with.)"""
    d = settings.dagster
    d.home.mkdir(parents=True, exist_ok=True)
    path = d.workspace_file
    path.write_text(
        "# generated by ecom up (stack/services.py) from kernel/settings.py: the one code server that\n"
        "# `ecom up` starts (dagster code-server start), shared by dagster-webserver and dagster-daemon\n"
        "load_from:\n"
        "  - grpc_server:\n"
        f"      host: {d.host}\n"
        f"      port: {d.code_server_port}\n"
        f"      location_name: {d.location_name}\n"
    )
    return path


class DagsterWebserver(DagsterProcess):
    def healthy(self) -> bool:
        return http_ok(f"{self.url}/server_info")

    def command(self) -> list[str]:
        return [
            str(self.settings.venv_bin / "dagster-webserver"),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-w",
            str(self.settings.dagster.workspace_file),
        ]


class DagsterDaemon(DagsterProcess):
    owns_port = False  # shares the webserver's host/port only for its status URL

    def healthy(self) -> bool:
        # the daemon has no port: alive, and its instance answers with a recent heartbeat
        if not self.running():
            return False
        try:
            return daemon_heartbeat_ok(self.settings)
        except Exception:
            return False

    def command(self) -> list[str]:
        return [
            str(self.settings.venv_bin / "dagster-daemon"),
            "run",
            "-w",
            str(self.settings.dagster.workspace_file),
        ]


def daemon_heartbeat_ok(settings: Settings, max_age_s: float = 120.0) -> bool:
    """True when the Dagster instance has a recent heartbeat from the daemon (read from its Postgres)."""
    import psycopg

    with psycopg.connect(settings.postgres.dsn(settings.postgres.dagster_db), connect_timeout=2) as conn:
        row = conn.execute("SELECT extract(epoch FROM max(timestamp)) FROM daemon_heartbeats").fetchone()
    if not row or row[0] is None:
        return False
    # daemon_heartbeats.timestamp is naive UTC
    return (time.time() - float(row[0])) < max_age_s


def write_dagster_yaml(home: Path) -> Path:
    """dagster.yaml in `home` (DAGSTER_HOME): run, event-log and schedule storage in the Postgres database
    the environment's ECOM_DAGSTER_PG_URL names (the platform's `dagster` database; the batch benchmark's
    scratch one), through `orchestration.instance_storage.PooledPostgresStorage` (dagster-postgres' storage
    keeping a pooled connection per storage, in every process: a run no longer opens one per event)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    path.write_text(
        "# generated by stack/services.py (ecom up, ecom bench batch); the URL comes from the environment, never in clear here\n"
        "storage:\n"
        "  custom:\n"
        "    module: orchestration.instance_storage\n"
        "    class: PooledPostgresStorage\n"
        "    config:\n"
        "      postgres_url:\n"
        "        env: ECOM_DAGSTER_PG_URL\n"
        "run_coordinator:\n"
        "  module: dagster._core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n"
        "  config:\n"
        "    max_concurrent_runs: 2\n"
        "run_launcher:\n"
        "  module: dagster._core.launcher\n"
        "  class: DefaultRunLauncher\n"
        "telemetry:\n"
        "  enabled: false\n"
        # no first-visit "join the community" dialog over the asset graph (screenshots, operators)
        "nux:\n"
        "  enabled: false\n"
        "code_servers:\n"
        "  local_startup_timeout: 180\n"
    )
    return path


def ensure_dbt_manifest(settings: Settings) -> None:
    """Dagster loads dbt assets from a prepared manifest: build it once if it is missing (no DB needed)."""
    manifest = settings.dbt.project_dir / "target" / "manifest.json"
    prepare_module = settings.repo_root / "orchestration" / "prepare.py"
    if manifest.exists() or not prepare_module.exists():
        return
    out = subprocess.run(
        [str(settings.venv_bin / "python"), "-m", "orchestration.prepare"],
        cwd=settings.repo_root,
        env={**os.environ, **service_env(settings)},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise EcomError(
            f"dagster: preparing the dbt manifest failed: {(out.stderr or out.stdout).strip()[-300:]}"
        )


class UiService(Service):
    """A UI served by its room's own `ecom` command, run as a service (its room owns what it serves)."""

    group = "ui"
    argv: tuple[str, ...] = ()
    health_path = "/"

    def healthy(self) -> bool:
        return http_ok(f"http://{self.host}:{self.port}{self.health_path}")

    def command(self) -> list[str]:
        return [str(self.settings.venv_bin / "ecom"), *self.argv]


class DbtDocsSite(UiService):
    """`ecom docs`: `dbt docs generate` against the live database, then the site over HTTP."""

    argv = ("docs",)


class DataDocsSite(UiService):
    """`ecom quality docs --serve`: the Great Expectations Data Docs, rebuilt at start, served over HTTP."""

    argv = ("quality", "docs", "--serve")
    health_path = "/index.html"


class DashboardsServer(UiService):
    """`ecom dashboards serve`: the dashboards of dashboards/specs/ (Plotly Dash, read-only role)."""

    argv = ("dashboards", "serve")
    health_path = "/health"  # answers 200 only when the read-only role can query Postgres


# ---------------------------------------------------------------------------------------------------------
# the stack
# ---------------------------------------------------------------------------------------------------------


def services(settings: Settings | None = None) -> list[Service]:
    s = settings or get_settings()
    pg, k, m, d = s.postgres, s.kafka, s.mlflow, s.dagster
    return [
        Postgres("postgres", pg.host, pg.port, f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.db}", s),
        Kafka("kafka", k.host, k.port, f"kafka://{k.bootstrap_servers}", s),
        Mlflow("mlflow", m.host, m.port, f"http://{m.host}:{m.port}", s),
        DagsterCodeServer(
            "dagster-code-server", d.host, d.code_server_port, f"grpc://{d.host}:{d.code_server_port}", s
        ),
        DagsterWebserver("dagster-webserver", d.host, d.port, d.url, s),
        DagsterDaemon("dagster-daemon", d.host, d.port, f"{d.url}/deployment/daemons", s),
    ]


def ui_services(settings: Settings | None = None) -> list[Service]:
    """The UIs beside Dagster and MLflow, started on request (`up(uis=True)`)."""
    s = settings or get_settings()
    host, d = s.bind_host, s.dashboards
    return [
        DbtDocsSite("dbt-docs", host, s.dbt.docs_port, f"http://{host}:{s.dbt.docs_port}/", s),
        DataDocsSite(
            "data-docs", host, s.gx_data_docs_port, f"http://{host}:{s.gx_data_docs_port}/index.html", s
        ),
        DashboardsServer("dashboards", d.host, d.port, f"{d.url}/", s),
    ]


def all_services(settings: Settings | None = None) -> list[Service]:
    s = settings or get_settings()
    return [*services(s), *ui_services(s)]


def _wait(svc: Service, deadline: float, progress: Callable[[str], None]) -> None:
    bind_deadline = time.monotonic() + svc.settings.port_wait_s
    while time.monotonic() < deadline:
        if svc.healthy():
            return
        if not svc.running() and not isinstance(svc, Postgres):
            if svc.failed_to_bind() and time.monotonic() < bind_deadline:
                # the port was taken between the check and the bind (a process still exiting, a start
                # racing ours): wait for it to free and start again, for a bounded time
                progress(f"{svc.name}: port {svc.port} was taken at bind; starting again once it is free")
                svc.check_port_free(wait_s=max(0.0, bind_deadline - time.monotonic()))
                svc._spawn()
                continue
            raise EcomError(
                f"{svc.name}: exited during start-up; see its log: {svc.log_file} ({log_tail(svc.log_file, 3)[-300:]})"
            )
        time.sleep(0.5)
    raise EcomError(f"{svc.name}: not healthy after {START_TIMEOUT_S} s; see its log: {svc.log_file}")


def up(
    settings: Settings | None = None, progress: Callable[[str], None] = print, uis: bool = False
) -> list[dict[str, object]]:
    """Start every service that is not healthy yet, wait until all are healthy; idempotent. `uis` also
    starts the UIs (dbt docs, Data Docs, dashboards)."""
    s = settings or get_settings()
    for d in (s.state_dir, s.logs_dir, s.run_dir):
        d.mkdir(parents=True, exist_ok=True)
    svcs = {svc.name: svc for svc in services(s)}
    deadline = time.monotonic() + START_TIMEOUT_S

    pg = svcs["postgres"]
    if not pg.healthy():
        progress("starting postgres")
        pg.start()
        _wait(pg, deadline, progress)
    pg.after_healthy()  # databases + migrations (idempotent)

    started = []
    # the code server first: the webserver and the daemon connect to it (they retry until it answers)
    for name in ("kafka", "mlflow", "dagster-code-server", "dagster-webserver", "dagster-daemon"):
        svc = svcs[name]
        if svc.healthy():
            continue
        if not svc.running():
            progress(f"starting {name}")
            svc.start()
        started.append(svc)
    for svc in started:
        _wait(svc, deadline, progress)
    svcs["kafka"].after_healthy()
    statuses = [svc.status() for svc in svcs.values()]
    if uis:
        statuses += up_uis(s, progress)
    return statuses


def up_uis(
    settings: Settings | None = None, progress: Callable[[str], None] = print
) -> list[dict[str, object]]:
    """Start the UIs that are not healthy yet (the core stack must be up) and wait for them; idempotent."""
    s = settings or get_settings()
    uis = ui_services(s)
    deadline = time.monotonic() + START_TIMEOUT_S
    started = []
    for svc in uis:
        if svc.healthy():
            continue
        if not svc.running():
            progress(f"starting {svc.name}")
            svc.start()
        started.append(svc)
    for svc in started:
        _wait(svc, deadline, progress)
    return [svc.status() for svc in uis]


def down(settings: Settings | None = None, progress: Callable[[str], None] = print) -> None:
    """Stop everything `up` started (the UIs first), in reverse order, leaving no process behind."""
    for svc in reversed(all_services(settings)):
        if svc.running():
            progress(f"stopping {svc.name}")
        svc.stop()


def status(settings: Settings | None = None, uis: bool = False) -> list[dict[str, object]]:
    """Each core service (and with `uis` each UI): name, url, pid, healthy, group ("core" | "ui"), started."""
    return [svc.status() for svc in (all_services(settings) if uis else services(settings))]


def status_ok(statuses: list[dict[str, object]]) -> bool:
    """Healthy enough for `ecom status` to exit 0: every core service healthy, and every UI that was started
    (and not stopped) healthy; a UI never started is reported but is not a failure."""
    return all(st["healthy"] for st in statuses if st["group"] == "core" or st["started"])


def status_json(settings: Settings | None = None) -> str:
    return json.dumps({"services": status(settings, uis=True)})
