"""THE Spark session factory: every Spark caller (speed layer, batch landing, benchmarks, tests) gets its
session here, so master, jars, time zone and memory come from one place (`kernel.settings`).

The Kafka connector and the JDBC driver are handed to Spark as local jar files resolved by the Maven
build step (`settings.spark.jars_dir`); Spark never downloads anything at run time (no `--packages`).
`SPARK_MASTER` points the same code at a real cluster.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings


def spark_jars(settings: Settings | None = None) -> list[Path]:
    """Every jar in the Spark jars folder (Kafka connector + its client libs + Postgres JDBC), and the
    speed layer's JVM module (streaming/jvm, built by the bootstrap into the `speed` folder beside it)."""
    s = settings or get_settings()
    jars = sorted(s.spark.jars_dir.glob("*.jar")) if s.spark.jars_dir.is_dir() else []
    jars += sorted((s.spark.jars_dir.parent / "speed").glob("*.jar"))
    if not any(j.name.startswith("spark-sql-kafka") for j in jars):
        raise EcomError(
            f"the Spark Kafka connector jar is missing from {s.spark.jars_dir}; "
            "run the Maven step (`ecom up` resolves it) or set ECOM_JARS_DIR"
        )
    return jars


JVM_SIZE = re.compile(r"[1-9][0-9]*[kmgt]?", re.IGNORECASE)


def fixed_heap_options(memory: str) -> str:
    """JVM options that commit and touch the whole heap at start (-Xms = -Xmx, AlwaysPreTouch). Pure.

    A long-running driver's resident memory is then flat from its first minute: left to itself, G1 starts
    at 1/64 of the RAM and grows the committed heap toward -Xmx over tens of minutes (and shrinks it again)
    while the live set stays flat - in the soak that read as a leak of 400-800 MB per query."""
    if not JVM_SIZE.fullmatch(memory):
        raise EcomError(
            f"driver memory {memory!r} is not a JVM size such as 2g or 1536m; "
            "fix ECOM_SPARK_DRIVER_MEMORY or ECOM_LANDING_DRIVER_MEMORY"
        )
    return f"-Xms{memory} -XX:+AlwaysPreTouch"


def spark_conf(
    settings: Settings | None = None,
    app_name: str = "ecom",
    ui_port: int | None = None,
    driver_memory: str | None = None,
    fixed_heap: bool = False,
) -> dict[str, str]:
    """The Spark configuration every session uses (pure: unit-testable without a JVM).

    `driver_memory`: the heap of this driver (default `settings.spark.driver_memory`); `fixed_heap`: a
    long-running query's driver, whose heap is committed up front when `settings.spark.fixed_heap`."""
    s = settings or get_settings()
    memory = driver_memory or s.spark.driver_memory
    java_options = f'-Xss32m -Djava.io.tmpdir="{s.state_dir / "spark-tmp"}"'
    if fixed_heap and s.spark.fixed_heap:
        java_options += " " + fixed_heap_options(memory)
    conf = {
        "spark.app.name": app_name,
        "spark.master": s.spark.master,
        "spark.jars": ",".join(str(j) for j in spark_jars(s)),
        "spark.driver.memory": memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(s.spark.shuffle_partitions),
        "spark.default.parallelism": str(s.spark.shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
        "spark.sql.adaptive.enabled": "false",  # micro-batches are small: skip re-planning per batch
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # every RocksDB instance of the JVM draws on one cache and write-buffer budget (native memory,
        # outside the heap): the stream's state stores cannot add more than this to its footprint
        "spark.sql.streaming.stateStore.rocksdb.boundedMemoryUsage": "true",
        "spark.sql.streaming.stateStore.rocksdb.maxMemoryUsageMB": str(s.spark.rocksdb_max_memory_mb),
        "spark.python.worker.reuse": "true",
        # the contract's validation is one deep CASE WHEN; Java's regex over its plan string recursed past
        # the default 1 MB thread stack in the stream thread (StackOverflowError seen in `ecom bench stream`).
        # The JVM's temp files go under the state dir, not /tmp: RocksDB unpacks its 15 MB native library
        # there at every start and a killed JVM never removes it (hundreds piled up in /tmp and filled a disk)
        "spark.driver.extraJavaOptions": java_options,
        "spark.ui.showConsoleProgress": "false",
        "spark.local.dir": str(s.state_dir / "spark-tmp"),
        "spark.sql.warehouse.dir": str(s.state_dir / "spark-warehouse"),
    }
    if s.spark.master.startswith("local"):
        # a local driver listens on the stack's bind address only; a cluster driver must be reachable
        conf["spark.driver.bindAddress"] = s.bind_host
        conf["spark.driver.host"] = s.bind_host
    if ui_port is None:
        conf["spark.ui.enabled"] = "false"
    else:
        conf["spark.ui.enabled"] = "true"
        conf["spark.ui.port"] = str(ui_port)
    return conf


def get_spark(
    app_name: str = "ecom",
    settings: Settings | None = None,
    ui_port: int | None = None,
    driver_memory: str | None = None,
    fixed_heap: bool = False,
):
    """A SparkSession configured from settings (reuses the active one in this process); `driver_memory`
    and `fixed_heap` as in `spark_conf` (they only apply when this call starts the JVM)."""
    s = settings or get_settings()
    # the Python workers must run the project's venv interpreter (pandas, scikit-learn, the ml package)
    python = str(s.venv_bin / "python")
    os.environ.setdefault("PYSPARK_PYTHON", python)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", python)
    (s.state_dir / "spark-tmp").mkdir(parents=True, exist_ok=True)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_conf(s, app_name, ui_port, driver_memory, fixed_heap).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
