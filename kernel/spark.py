"""THE Spark session factory: every Spark caller (speed layer, batch landing, benchmarks, tests) gets its
session here, so master, jars, time zone and memory come from one place (`kernel.settings`).

The Kafka connector and the JDBC driver are handed to Spark as local jar files resolved by the Maven
build step (`settings.spark.jars_dir`); Spark never downloads anything at run time (no `--packages`).
`SPARK_MASTER` points the same code at a real cluster.
"""

from __future__ import annotations

import os
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


def spark_conf(
    settings: Settings | None = None, app_name: str = "ecom", ui_port: int | None = None
) -> dict[str, str]:
    """The Spark configuration every session uses (pure: unit-testable without a JVM)."""
    s = settings or get_settings()
    conf = {
        "spark.app.name": app_name,
        "spark.master": s.spark.master,
        "spark.jars": ",".join(str(j) for j in spark_jars(s)),
        "spark.driver.memory": s.spark.driver_memory,
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
        "spark.python.worker.reuse": "true",
        # the contract's validation is one deep CASE WHEN; Java's regex over its plan string recursed past
        # the default 1 MB thread stack in the stream thread (StackOverflowError seen in `ecom bench stream`).
        # The JVM's temp files go under the state dir, not /tmp: RocksDB unpacks its 15 MB native library
        # there at every start and a killed JVM never removes it (hundreds piled up in /tmp and filled a disk)
        "spark.driver.extraJavaOptions": f'-Xss32m -Djava.io.tmpdir="{s.state_dir / "spark-tmp"}"',
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


def get_spark(app_name: str = "ecom", settings: Settings | None = None, ui_port: int | None = None):
    """A SparkSession configured from settings (reuses the active one in this process)."""
    s = settings or get_settings()
    # the Python workers must run the project's venv interpreter (pandas, scikit-learn, the ml package)
    python = str(s.venv_bin / "python")
    os.environ.setdefault("PYSPARK_PYTHON", python)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", python)
    (s.state_dir / "spark-tmp").mkdir(parents=True, exist_ok=True)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_conf(s, app_name, ui_port).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
