"""Shared data for the analytics tests: one simulated shop history (the issue-3 simulator), built once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import pytest

from analytics.io import lines_from_events
from events.simulator import ShopSimulator, SimConfig

SIM = SimConfig(
    seed=7, n_customers=2000, n_products=300, n_merchants=50, days=180, start=datetime(2026, 1, 1, tzinfo=UTC)
)


@dataclass
class Shop:
    lines: pd.DataFrame
    customers: pd.DataFrame
    products: pd.DataFrame
    planted_pairs: list[tuple[str, str]]


@pytest.fixture(scope="session")
def shop() -> Shop:
    sim = ShopSimulator(SIM)
    lines = lines_from_events(event for event, _label in sim.history())
    return Shop(lines, sim.customers.copy(), sim.products.copy(), sim.planted_pairs)


@pytest.fixture(scope="session")
def shop_result(shop: Shop):
    """The full pipeline on the simulated shop, with a 60-day lifetime-value hold-out."""
    from analytics.pipeline import run_all

    cal = shop.lines["order_time"].max().normalize() - pd.Timedelta(days=60)
    return run_all(shop.lines, shop.products, calibration_end=cal)
