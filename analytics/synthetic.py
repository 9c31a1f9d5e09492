"""A fast, vectorised generator of purchase histories with known structure, for tests and the benchmark.

Known structure: customer value tiers (high / mid / low: purchase rate, spend and lifetime differ), products in
categories and brands with a price, and planted co-purchase pairs (when the first product of a pair is in a
basket, the second is added with probability `pair_prob`). The shop simulator (events.simulator) produces
full contract events; this one produces only what analytics reads, 1M orders in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TIERS = ("high", "mid", "low")


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 7
    n_customers: int = 2000
    n_products: int = 300
    days: int = 365
    orders_per_customer: float = 6.0  # mean over all customers
    n_pairs: int = 10
    pair_prob: float = 0.6
    start: str = "2025-01-01"


@dataclass
class SynthData:
    lines: pd.DataFrame
    customers: pd.DataFrame  # customer_id, value_tier
    products: pd.DataFrame  # product_id, category, brand, price, attributes
    planted_pairs: list[tuple[str, str]]


def generate(cfg: SynthConfig) -> SynthData:
    rng = np.random.default_rng(cfg.seed)
    n_c, n_p = cfg.n_customers, cfg.n_products
    # products: 12 categories, 40 brands, log-normal prices by category
    cat = rng.integers(0, 12, n_p)
    brand = rng.integers(0, 40, n_p)
    price = np.round(np.exp(rng.normal(3.0 + 0.15 * cat, 0.5)), 2)
    colours = np.array(["red", "blue", "green", "black", "white"])
    products = pd.DataFrame(
        {
            "product_id": [f"P{i:05d}" for i in range(n_p)],
            "category": [f"cat{c:02d}" for c in cat],
            "brand": [f"brand{b:02d}" for b in brand],
            "price": price,
            "attributes": [{"colour": str(colours[i % 5]), "size": "SML"[i % 3]} for i in range(n_p)],
        }
    )
    popularity = 1.0 / np.arange(1, n_p + 1) ** 0.8
    popularity = rng.permutation(popularity)
    popularity /= popularity.sum()

    # customers: tier decides purchase rate, spend multiplier and expected lifetime
    tier_ix = rng.choice(3, n_c, p=[0.1, 0.3, 0.6])
    rate_mult = np.array([4.0, 1.5, 0.5])[tier_ix]
    spend_mult = np.array([2.5, 1.2, 0.8])[tier_ix]
    life_days = rng.exponential(np.array([cfg.days * 3, cfg.days, cfg.days * 0.3])[tier_ix])
    acq = rng.uniform(0, cfg.days * 0.8, n_c)
    active = np.clip(np.minimum(acq + life_days, cfg.days) - acq, 1.0, None)
    base_rate = cfg.orders_per_customer / np.mean(rate_mult * active)
    n_orders = 1 + rng.poisson(base_rate * rate_mult * active)
    cust_of_order = np.repeat(np.arange(n_c), n_orders)
    first = np.r_[0, np.cumsum(n_orders)[:-1]]
    offsets = rng.uniform(0, 1, len(cust_of_order)) * active[cust_of_order]
    offsets[first] = 0.0  # the first order is the acquisition
    t = acq[cust_of_order] + offsets
    start = pd.Timestamp(cfg.start)
    order_time = start + pd.to_timedelta(np.floor(t * 86400), unit="s")
    n_ord = len(cust_of_order)

    # baskets: 1-3 products by popularity, plus the planted partner
    size = rng.choice([1, 2, 3], n_ord, p=[0.6, 0.3, 0.1])
    line_order = np.repeat(np.arange(n_ord), size)
    # each customer prefers one category: 60 % of their lines come from it (what collaborative filtering finds)
    fav = rng.integers(0, 12, n_c)
    line_cust = cust_of_order[line_order]
    line_prod = rng.choice(n_p, len(line_order), p=popularity)
    from_fav = rng.random(len(line_order)) < 0.6
    for c in range(12):
        in_cat = np.flatnonzero(cat == c)
        if len(in_cat) == 0:
            continue
        sel = from_fav & (fav[line_cust] == c)
        w = popularity[in_cat] / popularity[in_cat].sum()
        line_prod[sel] = rng.choice(in_cat, int(sel.sum()), p=w)
    pair_firsts = rng.choice(np.argsort(-popularity)[: max(cfg.n_pairs * 3, 30)], cfg.n_pairs, replace=False)
    others = np.setdiff1d(np.arange(n_p), pair_firsts)
    pair_seconds = rng.choice(others, cfg.n_pairs, replace=False)
    partner = np.full(n_p, -1)
    partner[pair_firsts] = pair_seconds
    add = (partner[line_prod] >= 0) & (rng.random(len(line_prod)) < cfg.pair_prob)
    line_order = np.r_[line_order, line_order[add]]
    line_prod = np.r_[line_prod, partner[line_prod[add]]]
    qty = rng.choice([1, 1, 1, 2, 3], len(line_prod)).astype(float)
    amount = np.round(price[line_prod] * qty * spend_mult[cust_of_order[line_order]], 2)
    lines = pd.DataFrame(
        {
            "customer_id": [f"C{c:06d}" for c in cust_of_order[line_order]],
            "order_id": [f"O{o:08d}" for o in line_order],
            "order_time": order_time[line_order].astype("datetime64[ns]"),
            "amount": amount,
            "product_id": products["product_id"].to_numpy()[line_prod],
            "quantity": qty,
        }
    )
    # one line per (order, product): a planted partner that was also drawn merges into the same line
    lines = (
        lines.groupby(["customer_id", "order_id", "order_time", "product_id"], as_index=False, sort=False)
        .agg(amount=("amount", "sum"), quantity=("quantity", "sum"))
        .sort_values(["order_time", "order_id", "product_id"])
        .reset_index(drop=True)[["customer_id", "order_id", "order_time", "amount", "product_id", "quantity"]]
    )
    customers = pd.DataFrame(
        {"customer_id": [f"C{c:06d}" for c in range(n_c)], "value_tier": np.array(TIERS)[tier_ix]}
    )
    pids = products["product_id"].to_numpy()
    pairs = [(str(pids[a]), str(pids[b])) for a, b in zip(pair_firsts, pair_seconds, strict=True)]
    return SynthData(lines, customers, products, pairs)
