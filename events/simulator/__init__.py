"""A seeded, deterministic e-commerce shop simulator: reference data, shopping behaviour, fraud with labels.

Public API (other rooms depend on it; keep it stable):

    from events.simulator import SimConfig, ShopSimulator
    sim = ShopSimulator(SimConfig(seed=7, n_customers=2000, n_products=300, n_merchants=50, days=60))
    sim.products / sim.customers / sim.merchants / sim.terminals   # pandas DataFrames
    for event, label in sim.history(): ...   # time-ordered; label is None or a chargeback.v1 dict
    sim.live(rate)                           # events stamped with the wall clock
    sim.ground_truth                         # transaction_id -> fraud scenario (evaluation only)
    sim.planted_pairs                        # planted co-purchase pairs (product_id, product_id)

See docs/events.md for the behaviour model and the fraud scenarios.
"""

from events.simulator.engine import INCIDENTS_PER_10K, SCENARIOS, ShopSimulator, SimConfig

__all__ = ["INCIDENTS_PER_10K", "SCENARIOS", "ShopSimulator", "SimConfig"]
