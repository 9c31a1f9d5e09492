"""Number-valued settings: a wrong value is a one-line error naming the variable (no services needed)."""

from __future__ import annotations

import pytest

from kernel.errors import EcomError
from kernel.settings import load_settings


def test_a_non_number_names_its_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("ECOM_SPEED_STATE_PARTITIONS", "two")
    with pytest.raises(EcomError, match="ECOM_SPEED_STATE_PARTITIONS must be a whole number, not 'two'"):
        load_settings(env_file=tmp_path / "none.env")
    monkeypatch.setenv("ECOM_SPEED_STATE_PARTITIONS", "2")
    monkeypatch.setenv("ECOM_MAX_EVENT_AHEAD_HOURS", "a day")
    with pytest.raises(EcomError, match="ECOM_MAX_EVENT_AHEAD_HOURS must be a number"):
        load_settings(env_file=tmp_path / "none.env")


def test_numbers_parse_and_buckets_follow_the_partitions(monkeypatch, tmp_path):
    monkeypatch.setenv("ECOM_SPEED_STATE_PARTITIONS", "4")
    monkeypatch.delenv("ECOM_SPEED_STATE_BUCKETS", raising=False)
    s = load_settings(env_file=tmp_path / "none.env")
    assert (s.spark.state_partitions, s.spark.state_buckets) == (4, 16)
    monkeypatch.setenv("ECOM_SPEED_STATE_PARTITIONS", "1")
    assert load_settings(env_file=tmp_path / "none.env").spark.state_buckets == 8
