"""The analytics benchmark's histories come from the shop simulator, sized to the request and deterministic."""

from __future__ import annotations

import dataclasses

import pandas as pd

from analytics.synthetic import SynthConfig, generate, sized_config
from events.simulator import ShopSimulator

SMALL = SynthConfig(
    seed=3, n_customers=300, n_products=80, n_merchants=20, days=120, orders_per_customer=12.0
)


def test_the_history_is_sized_to_the_requested_orders_and_the_world_stays_the_seeds() -> None:
    data = generate(SMALL)
    orders = data.lines["order_id"].nunique()
    assert abs(orders - 12.0 * 300) < 0.1 * 12.0 * 300, orders
    natural = ShopSimulator(dataclasses.replace(SMALL.sim_config(), purchase_rate=1.0))
    assert natural.expected_history_events() < 0.5 * orders  # the sizing did the work, not the seed
    # sizing scales the purchase rates only: same customers, tiers, catalog and planted pairs
    assert data.customers[["customer_id", "value_tier"]].equals(
        natural.customers[["customer_id", "value_tier"]]
    )
    assert data.products["product_id"].tolist() == natural.products["product_id"].tolist()
    assert data.planted_pairs == natural.planted_pairs
    assert set(data.lines["product_id"]) <= set(data.products["product_id"])


def test_same_config_same_lines_another_seed_other_lines() -> None:
    a, b = generate(SMALL), generate(SMALL)
    pd.testing.assert_frame_equal(a.lines, b.lines)
    c = generate(dataclasses.replace(SMALL, seed=4))
    assert not a.lines["amount"].equals(c.lines["amount"])


def test_sizing_is_linear_in_the_purchase_rate() -> None:
    base = SMALL.sim_config()
    doubled = sized_config(base, 2 * 12.0 * 300)
    assert abs(doubled.purchase_rate / base.purchase_rate - 2.0) < 1e-9
