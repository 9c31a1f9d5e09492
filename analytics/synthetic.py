"""Purchase histories of a requested size for the analytics benchmark and tests, from the shop simulator.

There is one generator of synthetic data, `events.simulator.ShopSimulator`; this module only sizes it and
reshapes its history into the canonical lines frame (`analytics.io.lines_from_events`, the same path the
tests' simulated shop takes). Known structure comes from the simulator: customer value tiers, a catalog of
categories and brands with prices, per-customer category taste and planted co-purchase pairs.

Sizing: the simulator's customers buy at their own Pareto/NBD rates; `sized_config` scales every rate by
one factor (`SimConfig.purchase_rate`) so the history holds about the requested number of transactions
over the requested window, without changing the world (ids, tiers, catalog) of the seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from analytics.io import lines_from_events
from events.simulator import ShopSimulator, SimConfig


def sized_config(config: SimConfig, transactions: float) -> SimConfig:
    """`config` with `purchase_rate` set so its history holds about `transactions` transactions.

    The expected number of legitimate transactions is linear in the purchase rate, so one look at the
    seed's world at rate 1 gives the factor (fraud adds well under 1 % on top).
    """
    if transactions <= 0:
        raise ValueError("the number of transactions to simulate must be > 0")
    base = ShopSimulator(dataclasses.replace(config, purchase_rate=1.0)).expected_history_events()
    if base <= 0:
        raise ValueError(
            f"a simulated shop of {config.n_customers} customers over {config.days} days buys nothing"
        )
    return dataclasses.replace(config, purchase_rate=transactions / base)


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 7
    n_customers: int = 2000
    n_products: int = 300
    n_merchants: int = 50
    days: int = 365
    orders_per_customer: float = 6.0  # mean over all customers: sizes the history (see sized_config)
    start: str = "2025-01-01"

    def sim_config(self) -> SimConfig:
        start = datetime.fromisoformat(self.start).replace(tzinfo=UTC)
        base = SimConfig(
            seed=self.seed,
            n_customers=self.n_customers,
            n_products=self.n_products,
            n_merchants=self.n_merchants,
            days=self.days,
            start=start,
        )
        return sized_config(base, self.orders_per_customer * self.n_customers)


@dataclass
class SynthData:
    lines: pd.DataFrame  # canonical lines (analytics.io): one row per purchased product line
    customers: pd.DataFrame  # the simulator's customers (customer_id, value_tier, ...)
    products: pd.DataFrame  # product_id, name, category, brand, price, currency, attributes
    planted_pairs: list[tuple[str, str]]


def generate(cfg: SynthConfig) -> SynthData:
    """The simulated shop's history as canonical lines, with its customers, catalog and planted pairs."""
    sim = ShopSimulator(cfg.sim_config())
    lines = lines_from_events(event for events, _labels in sim.history_chunks() for event in events)
    return SynthData(lines, sim.customers.copy(), sim.products.copy(), sim.planted_pairs)
