"""ChampionCache between micro-batches: a registry or Postgres outage after the first load never stops
the query; it keeps the champion and context it has and retries (pure logic; Spark's broadcast stubbed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streaming.speed import scoring


class _Ctx:
    def __init__(self):
        self.broadcasts = []

    def broadcast(self, value):
        bc = SimpleNamespace(value=value, unpersist=lambda: None)
        self.broadcasts.append(bc)
        return bc


def _cache(monkeypatch, versions, contexts):
    spark = SimpleNamespace(sparkContext=_Ctx())
    cache = scoring.ChampionCache(
        spark,
        settings=SimpleNamespace(mlflow=SimpleNamespace(model_name="m")),
        model_name="m",
        poll_interval_s=0.0,
        context_refresh_s=0.0,
    )

    def poll():
        v = versions.pop(0)
        if isinstance(v, Exception):
            raise v
        return v

    def refresh():
        c = contexts.pop(0)
        if isinstance(c, Exception):
            raise c
        cache._baselines_bc = spark.sparkContext.broadcast(c)
        cache._chargebacks_bc = spark.sparkContext.broadcast(None)

    monkeypatch.setattr(cache, "_poll_version", poll)
    monkeypatch.setattr(cache, "_refresh_context", refresh)
    monkeypatch.setattr(
        "ml.registry.load_version", lambda v, *a, **k: SimpleNamespace(threshold=0.5, version=v)
    )
    return cache


def test_outages_after_the_first_load_keep_the_current_champion_and_context(monkeypatch):
    cache = _cache(
        monkeypatch,
        versions=["1", ConnectionError("mlflow down"), "2"],
        contexts=["baselines-a", OSError("postgres restarting"), "baselines-b"],
    )
    first = cache.current()
    assert (first.version, first.baselines.value) == ("1", "baselines-a")
    during = cache.current()
    assert (during.version, during.baselines.value) == ("1", "baselines-a")
    after = cache.current()
    assert (after.version, after.baselines.value) == ("2", "baselines-b")


def test_the_first_load_still_fails_loudly(monkeypatch):
    cache = _cache(monkeypatch, versions=[ConnectionError("mlflow down")], contexts=["x"])
    with pytest.raises(ConnectionError):
        cache.current()
