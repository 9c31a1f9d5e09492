"""The one settings module: every host, port, path and name the platform uses comes from here.

Values come from environment variables (or a `.env` file at the repo root), with local defaults that
run the whole stack on 127.0.0.1 under `.local/`. Nothing else in the code base hard-codes a host,
port or path. Call `get_settings()`; never read `os.environ` for platform config elsewhere.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from dotenv import dotenv_values

from kernel.errors import EcomError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str, file_values: dict[str, str | None]) -> str:
    value = os.environ.get(name)
    if value is None:
        value = file_values.get(name)
    return default if value in (None, "") else str(value)


def _local_secret(state_dir: Path, name: str) -> str:
    """A random local-only secret, made once and kept under the state folder (never in the repo)."""
    path = state_dir / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    value = secrets.token_urlsafe(18)
    # created exclusively: two processes making the same secret at once agree on the first one written
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


# The least-privilege Postgres roles of the platform's components (kernel/sql/080_component_roles.sql and,
# for the dashboards, 070_dashboards_reader.sql): component -> role name. The owner (`ECOM_PG_USER`) keeps
# the migrations, the launcher and the Dagster assets; each component below connects as its own role.
COMPONENT_ROLES = {
    "stream": "ecom_stream",  # the speed layer's sink: appends to speed.*, quarantine.events, ops.stream_batches
    "landing": "ecom_landing",  # the batch landing: appends to master.*, quarantine.*
    "dbt": "ecom_dbt",  # reads every platform schema, creates its own (not wired to dbt yet: docs/stack.md)
    "dashboards": "ecom_dashboards",  # read-only (070_dashboards_reader.sql)
}


@dataclass(frozen=True)
class RoleCredentials:
    user: str
    password: str


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    user: str
    password: str
    db: str  # the platform's own data (master dataset, speed layer, marts, analytics, quality, ops)
    dagster_db: str
    mlflow_db: str
    os_user: str  # unprivileged OS user that owns and runs the local cluster when we are root
    bin_dir: Path
    data_dir: Path
    # component -> its own login role (COMPONENT_ROLES), passwords generated under .local/secrets/
    roles: dict[str, RoleCredentials] = field(default_factory=dict)

    @property
    def socket_dir(self) -> Path:
        """The folder of the cluster's Unix socket (owner-only: 0700)."""
        return self.data_dir.parent / "run"

    def as_role(self, component: str | None) -> PostgresSettings:
        """These settings with the login of `component`'s role (None: the owner). The one place where a
        component's connection settings are chosen: `dsn()` / `url()` of the result carry its role."""
        if component is None:
            return self
        try:
            cred = self.roles[component]
        except KeyError:
            raise EcomError(
                f"no Postgres role for component {component!r}; known: {', '.join(sorted(self.roles))}"
            ) from None
        return replace(self, user=cred.user, password=cred.password)

    def url(self, db: str | None = None, driver: str = "psycopg") -> str:
        """SQLAlchemy URL; the driver is always explicit (SQLAlchemy 2.1 maps bare postgresql:// to psycopg 3)."""
        return f"postgresql+{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{db or self.db}"

    def jdbc_url(self, db: str | None = None) -> str:
        """JDBC URL (the speed layer's JVM sink); the login goes separately (user, password)."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{db or self.db}"

    def dsn(self, db: str | None = None) -> str:
        """libpq connection string for psycopg.connect()."""
        return (
            f"host={self.host} port={self.port} user={self.user} password={self.password} "
            f"dbname={db or self.db}"
        )


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    controller_port: int
    topic_transactions: str
    topic_dead_letter: str
    topic_labels: str
    partitions: int
    replication_factor: int
    heap: str
    data_dir: Path
    # the stream's Kafka consumers: how long the broker may hold a fetch that finds no new data. A task
    # whose offset range ends at the log end (every batch of a stream that keeps up) made such a fetch,
    # so Kafka's default (500 ms) was paid by every task of every batch (measured: 0.5 s per task, 1.5 s
    # per batch over 6 partitions on 2 cores)
    fetch_max_wait_ms: int = 10

    @property
    def host(self) -> str:
        return self.bootstrap_servers.split(",")[0].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])


@dataclass(frozen=True)
class MlflowSettings:
    host: str
    port: int
    tracking_uri: str
    artifacts_dir: Path
    model_name: str
    champion_alias: str
    experiment: str


@dataclass(frozen=True)
class DagsterSettings:
    host: str
    port: int
    home: Path
    # the one code server (`dagster code-server start`) the webserver and the daemon share (gRPC)
    code_server_port: int = 3301
    location_name: str = "ecom_lambda"

    @property
    def workspace_file(self) -> Path:
        """The workspace `ecom up` generates: one grpc_server entry pointing at the shared code server."""
        return self.home / "workspace.yaml"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class SparkSettings:
    master: str
    driver_memory: str
    shuffle_partitions: int
    checkpoint_dir: Path
    max_offsets_per_trigger: int
    trigger_interval: str
    jars_dir: Path
    # partitions of the speed layer's keyed state (its two stateful stages run one task per partition per
    # micro-batch); fixed in a checkpoint when it is created, a restored checkpoint keeps its own
    state_partitions: int = 1
    # hash buckets keying that state (each bucket's state holds all of its customers/terminals); recorded
    # in a new checkpoint, a restored one keeps its own
    state_buckets: int = 8
    # where that keyed state runs, for a new checkpoint: "jvm" (streaming/jvm's transformWithState
    # processors, no Python) or "python" (ml.features' own walk in applyInPandasWithState /
    # transformWithStateInPandas, the reference); a restored checkpoint keeps the engine it was created with
    state_engine: str = "jvm"
    # the order that keyed state walks events in, for a new checkpoint (a restored one keeps its own):
    # "arrival" (each micro-batch as Kafka's partitions deliver it: the lowest latency; on a topic with
    # several partitions a fast replay of history walks some terminals' events out of event-time order) or
    # "event_time" (each Kafka partition read as its own source with a zero-delay watermark, and rows held
    # until every partition has passed them, so the state walks events as the offline features do; rows
    # wait a micro-batch longer, and a zero trigger becomes `speed_ordered_trigger`; docs/speed.md)
    speed_order: str = "arrival"
    # event-time order: rows held while the watermark has not moved for this long are released anyway (a
    # partition gone quiet, the end of a replay)
    speed_hold_idle_ms: int = 5000
    # event-time order's trigger interval in place of a zero one: it runs a no-data micro-batch per interval
    # while idle (its timers), which a "0 seconds" trigger would run back to back
    speed_ordered_trigger: str = "1 second"
    # an event stamped this far after Kafka received it is quarantined by the stream and the landing (a
    # producer's clock is wrong): it would move the event-time watermark and with it forget every
    # customer's window state (0 = no such rule)
    max_event_ahead_hours: float = 24.0
    # the local standalone cluster (`ecom cluster up`): master RPC/UI ports, one worker's size
    cluster_master_port: int = 57077
    cluster_master_ui_port: int = 58080
    cluster_worker_ui_port: int = 58081
    cluster_worker_cores: int = 1
    cluster_worker_memory: str = "2g"
    # the long-running queries (`ecom stream`, `ecom land --continuous`) start with their whole heap
    # committed and touched (-Xms = -Xmx, -XX:+AlwaysPreTouch): G1 otherwise starts at 1/64 of the RAM and
    # grows the heap toward -Xmx over tens of minutes while the live set stays flat (~150-220 MB after a
    # collection at 1,000 events/s), which read as a leak in the soak (docs/reliability.md)
    fixed_heap: bool = True
    # the continuous landing's driver heap (its live set is ~150 MB; 2g only made the settling longer)
    landing_driver_memory: str = "1g"
    # RocksDB state stores of a JVM share one block cache + write-buffer budget of this size
    # (spark.sql.streaming.stateStore.rocksdb.boundedMemoryUsage); without it each instance has its own
    rocksdb_max_memory_mb: int = 500

    def cluster_master_url(self, host: str) -> str:
        return f"spark://{host}:{self.cluster_master_port}"


@dataclass(frozen=True)
class DbtSettings:
    project_dir: Path
    profiles_dir: Path
    target: str
    docs_port: int
    refresh_cron: str = "0 * * * *"  # schedule of the batch refresh (Dagster)
    sensor_min_new_rows: int = 50_000  # new rows in master.transactions that trigger a batch refresh


@dataclass(frozen=True)
class MetabaseSettings:
    url: str
    user: str
    password: str
    api_key: str
    specs_dir: Path
    # how the Metabase server reaches the platform Postgres (the compose service name inside compose)
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    database_name: str = "ecom-lambda platform"  # the name of the Postgres connection inside Metabase


@dataclass(frozen=True)
class DashboardsSettings:
    """`ecom dashboards serve`: the specs of dashboards/specs/ rendered without Metabase (Plotly Dash)."""

    host: str
    port: int
    # the read-only Postgres role the dashboards connect as (created by kernel/sql/070_dashboards_reader.sql;
    # its password is set by `ecom up` from this setting)
    pg_user: str
    pg_password: str
    statement_timeout_ms: int = 30_000

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    repo_root: Path
    state_dir: Path
    jars_dir: Path
    logs_dir: Path
    run_dir: Path
    bind_host: str
    postgres: PostgresSettings
    kafka: KafkaSettings
    mlflow: MlflowSettings
    dagster: DagsterSettings
    spark: SparkSettings
    dbt: DbtSettings
    metabase: MetabaseSettings
    dashboards: DashboardsSettings
    gx_context_dir: Path
    gx_data_docs_port: int
    # `ecom up`: how long a service's port may stay taken (e.g. by a process that is still exiting)
    # before the start gives up and names the process holding it
    port_wait_s: float = 30.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def venv_bin(self) -> Path:
        return self.repo_root / ".venv" / "bin"

    @property
    def walk_cache_dir(self) -> Path:
        """Training's history-walk cache (ml/walk_cache.py): a walk's end state and context per data source."""
        return self.state_dir / "ml" / "walk_cache"


def _number(name: str, raw: str, kind: type):
    """An integer/float setting, or a one-line error naming the variable (not a ValueError traceback)."""
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise EcomError(f"{name} must be {what}, not {raw!r}; fix it in the environment or .env") from None


def load_settings(env_file: Path | None = None) -> Settings:
    """Build settings from the environment (and `.env`), without caching."""
    env_path = env_file or (REPO_ROOT / ".env")
    fv = dotenv_values(env_path) if env_path.exists() else {}

    def e(name: str, default: str) -> str:
        return _env(name, default, fv)

    def i(name: str, default: str) -> int:
        return _number(name, e(name, default), int)

    def f(name: str, default: str) -> float:
        return _number(name, e(name, default), float)

    state_dir = Path(e("ECOM_STATE_DIR", str(REPO_ROOT / ".local"))).resolve()
    jars_dir = Path(e("ECOM_JARS_DIR", str(REPO_ROOT / ".jars"))).resolve()
    bind = e("ECOM_BIND_HOST", "127.0.0.1")

    pg_password = os.environ.get("ECOM_PG_PASSWORD") or fv.get("ECOM_PG_PASSWORD")
    if not pg_password:
        pg_password = _local_secret(state_dir, "postgres_password")

    postgres = PostgresSettings(
        host=e("ECOM_PG_HOST", bind),
        port=i("ECOM_PG_PORT", "55432"),
        user=e("ECOM_PG_USER", "ecom"),
        password=pg_password,
        db=e("ECOM_PG_DB", "ecom"),
        dagster_db=e("ECOM_PG_DAGSTER_DB", "dagster"),
        mlflow_db=e("ECOM_PG_MLFLOW_DB", "mlflow"),
        os_user=e("ECOM_PG_OS_USER", "ecompg"),
        bin_dir=Path(e("ECOM_PG_BIN_DIR", "/usr/lib/postgresql/15/bin")),
        data_dir=state_dir / "postgres" / "data",
        roles={
            component: RoleCredentials(
                user=role,
                # ECOM_<COMPONENT>_PG_PASSWORD, else a secret made once (`dashboards_password` as before)
                password=e(f"ECOM_{component.upper()}_PG_PASSWORD", "")
                or _local_secret(state_dir, f"{component}_password"),
            )
            for component, role in COMPONENT_ROLES.items()
        },
    )
    kafka = KafkaSettings(
        bootstrap_servers=e("ECOM_KAFKA_BOOTSTRAP", f"{bind}:59092"),
        controller_port=i("ECOM_KAFKA_CONTROLLER_PORT", "59093"),
        topic_transactions=e("ECOM_TOPIC_TRANSACTIONS", "transactions"),
        topic_dead_letter=e("ECOM_TOPIC_DEAD_LETTER", "transactions.dlq"),
        topic_labels=e("ECOM_TOPIC_LABELS", "chargebacks"),
        partitions=i("ECOM_KAFKA_PARTITIONS", "6"),
        replication_factor=i("ECOM_KAFKA_REPLICATION", "1"),
        heap=e("ECOM_KAFKA_HEAP", "768m"),
        data_dir=state_dir / "kafka",
        fetch_max_wait_ms=i("ECOM_KAFKA_FETCH_MAX_WAIT_MS", "10"),
    )
    mlflow_host = e("ECOM_MLFLOW_HOST", bind)
    mlflow_port = i("ECOM_MLFLOW_PORT", "5500")
    mlflow = MlflowSettings(
        host=mlflow_host,
        port=mlflow_port,
        tracking_uri=e("MLFLOW_TRACKING_URI", f"http://{mlflow_host}:{mlflow_port}"),
        artifacts_dir=state_dir / "mlflow" / "artifacts",
        model_name=e("ECOM_MODEL_NAME", "fraud_detector"),
        champion_alias=e("ECOM_MODEL_ALIAS", "champion"),
        experiment=e("ECOM_MLFLOW_EXPERIMENT", "fraud_detector"),
    )
    dagster_port = i("ECOM_DAGSTER_PORT", "3300")
    dagster = DagsterSettings(
        host=e("ECOM_DAGSTER_HOST", bind),
        port=dagster_port,
        home=Path(e("DAGSTER_HOME", str(state_dir / "dagster"))).resolve(),
        # next to the webserver's port by default, so a second stack on other ports moves it too
        code_server_port=i("ECOM_DAGSTER_CODE_SERVER_PORT", str(dagster_port + 1)),
    )
    # half the local cores: on 2 cores one task per stateful stage cut the speed layer's batch time by a
    # quarter at 1,000 events/s against two (docs/speed.md); a stage's per-task cost outweighed its
    # parallelism. Buckets: 8, or 4 per partition on bigger machines so that hash collisions of the bucket
    # keys leave no partition idle. (One bucket, i.e. one Python call per stateful stage per batch, cut
    # p50 at 1,000 events/s by a fifth but not p95, and cost 14 % of the throughput at 20,000/s.)
    state_partitions = i("ECOM_SPEED_STATE_PARTITIONS", str(max(1, (os.cpu_count() or 2) // 2)))
    spark = SparkSettings(
        master=e("SPARK_MASTER", "local[*]"),
        driver_memory=e("ECOM_SPARK_DRIVER_MEMORY", "2g"),
        # one partition per local core: every stateful stage of the stream runs one task per partition per
        # micro-batch, and on 2 cores 4 partitions doubled that fixed cost for no parallelism
        shuffle_partitions=i("ECOM_SPARK_SHUFFLE_PARTITIONS", str(os.cpu_count() or 2)),
        checkpoint_dir=Path(e("ECOM_CHECKPOINT_DIR", str(state_dir / "checkpoints"))).resolve(),
        max_offsets_per_trigger=i("ECOM_MAX_OFFSETS_PER_TRIGGER", "200000"),
        trigger_interval=e("ECOM_TRIGGER_INTERVAL", "0 seconds"),
        state_partitions=state_partitions,
        state_buckets=i("ECOM_SPEED_STATE_BUCKETS", str(max(8, 4 * state_partitions))),
        state_engine=e("ECOM_SPEED_STATE_ENGINE", "jvm"),
        speed_order=e("ECOM_SPEED_ORDER", "arrival"),
        speed_hold_idle_ms=i("ECOM_SPEED_HOLD_IDLE_MS", "5000"),
        speed_ordered_trigger=e("ECOM_SPEED_ORDERED_TRIGGER", "1 second"),
        max_event_ahead_hours=f("ECOM_MAX_EVENT_AHEAD_HOURS", "24"),
        jars_dir=jars_dir / "spark",
        cluster_master_port=i("ECOM_SPARK_CLUSTER_PORT", "57077"),
        cluster_master_ui_port=i("ECOM_SPARK_CLUSTER_UI_PORT", "58080"),
        cluster_worker_ui_port=i("ECOM_SPARK_WORKER_UI_PORT", "58081"),
        cluster_worker_cores=i("ECOM_SPARK_WORKER_CORES", "1"),
        cluster_worker_memory=e("ECOM_SPARK_WORKER_MEMORY", "2g"),
        fixed_heap=e("ECOM_SPARK_FIXED_HEAP", "1").lower() not in ("0", "false", "no"),
        landing_driver_memory=e("ECOM_LANDING_DRIVER_MEMORY", "1g"),
        rocksdb_max_memory_mb=i("ECOM_ROCKSDB_MAX_MEMORY_MB", "500"),
    )
    dbt = DbtSettings(
        project_dir=REPO_ROOT / "dbt_project",
        profiles_dir=REPO_ROOT / "dbt_project",
        target=e("ECOM_DBT_TARGET", "local"),
        docs_port=i("ECOM_DBT_DOCS_PORT", "8580"),
        refresh_cron=e("ECOM_BATCH_REFRESH_CRON", "0 * * * *"),
        sensor_min_new_rows=i("ECOM_BATCH_SENSOR_MIN_NEW_ROWS", "50000"),
    )
    metabase = MetabaseSettings(
        url=e("METABASE_URL", "http://127.0.0.1:3000"),
        user=e("METABASE_USER", ""),
        password=e("METABASE_PASSWORD", ""),
        api_key=e("METABASE_API_KEY", ""),
        specs_dir=REPO_ROOT / "dashboards" / "specs",
        pg_host=e("METABASE_PG_HOST", postgres.host),
        pg_port=i("METABASE_PG_PORT", str(postgres.port)),
        database_name=e("METABASE_DATABASE_NAME", "ecom-lambda platform"),
    )
    dashboards = DashboardsSettings(
        host=e("ECOM_DASHBOARDS_HOST", bind),
        port=i("ECOM_DASHBOARDS_PORT", "8050"),
        pg_user=postgres.roles["dashboards"].user,  # fixed: the migration creates the role under this name
        pg_password=postgres.roles["dashboards"].password,
        statement_timeout_ms=i("ECOM_DASHBOARDS_STATEMENT_TIMEOUT_MS", "30000"),
    )
    return Settings(
        repo_root=REPO_ROOT,
        state_dir=state_dir,
        jars_dir=jars_dir,
        logs_dir=state_dir / "logs",
        run_dir=state_dir / "run",
        bind_host=bind,
        postgres=postgres,
        kafka=kafka,
        mlflow=mlflow,
        dagster=dagster,
        spark=spark,
        dbt=dbt,
        metabase=metabase,
        dashboards=dashboards,
        gx_context_dir=state_dir / "gx",  # generated from expectations/suites.py at run time
        gx_data_docs_port=i("ECOM_DATA_DOCS_PORT", "8581"),
        port_wait_s=f("ECOM_PORT_WAIT_S", "30"),
    )


def as_component(settings: Settings, component: str) -> Settings:
    """The same settings with the Postgres login of `component`'s role (COMPONENT_ROLES): what a component
    hands to the code that connects for it (kernel.db.connect, a sink), so it runs with only its privileges."""
    return replace(settings, postgres=settings.postgres.as_role(component))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached). Tests that change the environment call `get_settings.cache_clear()`."""
    return load_settings()


def service_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment variables that child processes (dbt, GX, MLflow clients, Dagster) read."""
    s = settings or get_settings()
    pg = s.postgres
    return {
        "ECOM_PG_HOST": pg.host,
        "ECOM_PG_PORT": str(pg.port),
        "ECOM_PG_USER": pg.user,
        "ECOM_PG_PASSWORD": pg.password,
        "ECOM_PG_DB": pg.db,
        "ECOM_PG_URL": pg.url(),
        "MLFLOW_TRACKING_URI": s.mlflow.tracking_uri,
        "DAGSTER_HOME": str(s.dagster.home),
        "DBT_PROFILES_DIR": str(s.dbt.profiles_dir),
        "PYSPARK_PYTHON": str(s.venv_bin / "python"),
        "PYSPARK_DRIVER_PYTHON": str(s.venv_bin / "python"),
        # child tools (dbt, dagster, mlflow) resolve from the project venv even when it is not activated
        "PATH": f"{s.venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
    }
