"""The Spark drivers' memory bounds (kernel.spark): a fixed heap for the long-running queries, the landing's
own heap size, one RocksDB budget per JVM (no services, no JVM)."""

from __future__ import annotations

import dataclasses

import pytest

from kernel.errors import EcomError
from kernel.settings import load_settings
from kernel.spark import fixed_heap_options, spark_conf


@pytest.fixture
def settings(tmp_path, monkeypatch):
    for name in ("ECOM_SPARK_FIXED_HEAP", "ECOM_LANDING_DRIVER_MEMORY", "ECOM_ROCKSDB_MAX_MEMORY_MB"):
        monkeypatch.delenv(name, raising=False)
    return load_settings()


def test_a_long_running_driver_commits_its_whole_heap_up_front(settings):
    conf = spark_conf(settings, fixed_heap=True)
    memory = settings.spark.driver_memory
    assert conf["spark.driver.memory"] == memory
    assert f"-Xms{memory} -XX:+AlwaysPreTouch" in conf["spark.driver.extraJavaOptions"]
    assert "-Xss32m" in conf["spark.driver.extraJavaOptions"]


def test_other_drivers_keep_a_growing_heap(settings):
    # tests, benchmarks and `--available-now` runs: many JVMs at once, each pre-touching 2 GB would not fit
    opts = spark_conf(settings)["spark.driver.extraJavaOptions"]
    assert "-Xms" not in opts and "AlwaysPreTouch" not in opts


def test_the_fixed_heap_can_be_switched_off_and_sized_per_driver(settings):
    off = dataclasses.replace(settings, spark=dataclasses.replace(settings.spark, fixed_heap=False))
    assert "-Xms" not in spark_conf(off, fixed_heap=True)["spark.driver.extraJavaOptions"]
    conf = spark_conf(settings, driver_memory="1g", fixed_heap=True)
    assert conf["spark.driver.memory"] == "1g"
    assert "-Xms1g -XX:+AlwaysPreTouch" in conf["spark.driver.extraJavaOptions"]


def test_settings_defaults_and_environment(monkeypatch, tmp_path):
    s = load_settings(env_file=tmp_path / "none.env")
    assert (s.spark.fixed_heap, s.spark.landing_driver_memory, s.spark.rocksdb_max_memory_mb) == (
        True,
        "1g",
        500,
    )
    monkeypatch.setenv("ECOM_SPARK_FIXED_HEAP", "0")
    monkeypatch.setenv("ECOM_LANDING_DRIVER_MEMORY", "1536m")
    monkeypatch.setenv("ECOM_ROCKSDB_MAX_MEMORY_MB", "256")
    s = load_settings(env_file=tmp_path / "none.env")
    assert (s.spark.fixed_heap, s.spark.landing_driver_memory, s.spark.rocksdb_max_memory_mb) == (
        False,
        "1536m",
        256,
    )


def test_rocksdb_state_stores_share_one_bounded_budget(settings):
    conf = spark_conf(settings)
    assert conf["spark.sql.streaming.stateStore.rocksdb.boundedMemoryUsage"] == "true"
    assert conf["spark.sql.streaming.stateStore.rocksdb.maxMemoryUsageMB"] == str(
        settings.spark.rocksdb_max_memory_mb
    )


@pytest.mark.parametrize("bad", ["2gb", "2 g", "", "0g", "-1g", "1.5g"])
def test_a_size_the_jvm_would_refuse_is_one_clear_error(bad):
    with pytest.raises(EcomError, match="not a JVM size"):
        fixed_heap_options(bad)


@pytest.mark.parametrize("good", ["2g", "1536m", "1G", "4096M"])
def test_jvm_sizes(good):
    assert fixed_heap_options(good) == f"-Xms{good} -XX:+AlwaysPreTouch"
