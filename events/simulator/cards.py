"""Seeded five-column card-transaction files: the shape of most public fraud datasets.

Only customer, terminal, amount, time and a fraud label: no devices, IPs, products or currencies. This is
what `ecom replay` gets from a real card file, so the model's behaviour on it is what a user with such a
file will see (tests/ml/test_card_file.py; `ecom bench train --shape cards`).

The behaviour model, vectorised (a million rows in a few seconds):

- customers live on a ring of terminals and pay at the `terminals_per_customer` terminals after a home
  terminal (neighbourhoods overlap, so terminals are shared); each customer has a daily rate (uniform, mean
  `tx_per_customer_day`), a log-normal spending habit of their own, and pays mostly during the day;
- a legitimate purchase is now and then a big one (`big_purchase_share`, 2-5x the habit), so a large amount
  alone is no proof of fraud;
- **compromised terminals**: a share of terminals is skimmed once, at a random time, for
  `terminal_compromise_days`; each payment there meanwhile is fraudulent with `terminal_fraud_share`
  (normal amounts: only the terminal's chargeback history gives it away);
- **compromised cards**: a share of customers has their card stolen once, for `card_compromise_days`; a
  third of their payments meanwhile are the fraudster's, 3-8x the customer's usual amount (a spending
  spike against the customer's own habit);
- labels: the file says which rows were fraud; the chargeback arrives later (`ecom replay
  --label-delay-days`, the same fixed delay for every label), so a model only learns a fraud once reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# the file's columns, named like the best-known public card-fraud file, and the `ecom replay` mapping
CARD_COLUMNS = ["customer_id", "terminal_id", "tx_amount", "tx_datetime", "tx_fraud"]
CARD_FILE_MAPPING = {
    "customer": "customer_id",
    "terminal": "terminal_id",
    "amount": "tx_amount",
    "timestamp": "tx_datetime",
    "label": "tx_fraud",
}
DAY_S = 86_400


@dataclass(frozen=True)
class CardFileConfig:
    seed: int = 7
    n_customers: int = 5000
    n_terminals: int = 10000
    days: int = 135
    start: str = "2024-01-01"
    tx_per_customer_day: float = 2.0
    terminals_per_customer: int = 25
    big_purchase_share: float = 0.01
    terminal_compromise_share: float = 0.03  # of terminals, over the whole period
    terminal_compromise_days: int = 28
    terminal_fraud_share: float = 0.8
    card_compromise_share: float = 0.08  # of customers, over the whole period
    card_compromise_days: int = 14
    card_fraud_share: float = 1 / 3

    @classmethod
    def for_rows(cls, rows: int, days: int = 135, seed: int = 7) -> CardFileConfig:
        """About `rows` transactions over `days`: customers scale with the rows, two terminals per customer
        (the proportions of the public file this shape comes from)."""
        customers = max(50, round(rows / (cls.tx_per_customer_day * days)))
        return cls(seed=seed, n_customers=customers, n_terminals=2 * customers, days=days)


def card_transactions(cfg: CardFileConfig = CardFileConfig()) -> pd.DataFrame:
    """The file's rows (CARD_COLUMNS) in time order: naive 'YYYY-MM-DD HH:MM:SS' times, as such files have."""
    rng = np.random.default_rng(cfg.seed)
    n_c, n_t = cfg.n_customers, cfg.n_terminals
    home = rng.integers(0, n_t, n_c)
    rate = rng.uniform(0.0, 2 * cfg.tx_per_customer_day, n_c)
    habit_mu = np.log(rng.uniform(10.0, 120.0, n_c))
    habit_sigma = rng.uniform(0.2, 0.6, n_c)

    cust = np.repeat(np.arange(n_c), rng.poisson(rate * cfg.days))
    n = len(cust)
    # daytime-heavy: a normal around 13:00, wrapped into the day
    second_of_day = rng.normal(13 * 3600, 5 * 3600, n).astype(np.int64) % DAY_S
    seconds = rng.integers(0, cfg.days, n) * DAY_S + second_of_day
    term = (home[cust] + rng.integers(0, cfg.terminals_per_customer, n)) % n_t
    amount = np.exp(rng.normal(habit_mu[cust], habit_sigma[cust]))
    big = rng.random(n) < cfg.big_purchase_share
    amount[big] *= rng.uniform(2.0, 5.0, int(big.sum()))

    # compromised terminals: each skimmed at most once, from a random moment on
    term_start = np.full(n_t, np.iinfo(np.int64).max)
    skimmed = rng.choice(n_t, int(round(cfg.terminal_compromise_share * n_t)), replace=False)
    term_start[skimmed] = rng.integers(0, cfg.days * DAY_S, len(skimmed))
    since = seconds - term_start[term]
    on_skimmed = (since >= 0) & (since < cfg.terminal_compromise_days * DAY_S)
    fraud = on_skimmed & (rng.random(n) < cfg.terminal_fraud_share)

    # compromised cards: a spending spike against the customer's own habit
    card_start = np.full(n_c, np.iinfo(np.int64).max)
    stolen = rng.choice(n_c, int(round(cfg.card_compromise_share * n_c)), replace=False)
    card_start[stolen] = rng.integers(0, cfg.days * DAY_S, len(stolen))
    since = seconds - card_start[cust]
    spiked = (
        (since >= 0) & (since < cfg.card_compromise_days * DAY_S) & (rng.random(n) < cfg.card_fraud_share)
    )
    amount[spiked] *= rng.uniform(3.0, 8.0, int(spiked.sum()))
    fraud |= spiked

    order = np.argsort(seconds, kind="stable")
    times = np.datetime64(cfg.start, "s") + seconds[order]
    return pd.DataFrame(
        {
            "customer_id": cust[order],
            "terminal_id": term[order],
            "tx_amount": np.round(amount[order], 2),
            "tx_datetime": np.char.replace(times.astype(str), "T", " "),
            "tx_fraud": fraud[order].astype(np.int8),
        }
    )


def write_card_file(path: Path, cfg: CardFileConfig = CardFileConfig(), shuffled: bool = False) -> Path:
    """The rows of `card_transactions(cfg)` as CSV (or Parquet when `path` ends in .parquet). Shuffled: the
    same rows in a seeded random order (an unsorted file, as exports often are)."""
    frame = card_transactions(cfg)
    if shuffled:
        frame = frame.sample(frac=1.0, random_state=cfg.seed).reset_index(drop=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path
