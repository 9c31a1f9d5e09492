"""The fraud model's feature code: ONE implementation, used by training (batch) and by the Spark stream.

Two steps, both pure:

1. `history_context(tx, chargebacks, state)` gives every transaction its *context*: what was known about
   its customer and its terminal strictly before it (velocity over 10 min / 1 h / 24 h, the customer's
   usual amount, devices, countries, location and hours, and chargebacks *reported* before the event).
   It walks the transactions in (event_time, transaction_id) order and keeps a small per-customer and
   per-terminal state; the state it returns continues the walk on the next call. Training calls it once on
   the whole history (state=None); the stream calls it per micro-batch with the state it kept, and gets the
   same numbers (tests/ml/test_features.py proves both, and that no row sees a later row).
   Chargeback context is stateless: it counts labels with `reported_at` before the event (never the fraud's
   own event time, so a label that arrived later cannot leak) over the CHARGEBACK_LOOKBACK before each row's
   own event time; the stream passes every chargeback (the batch layer's truth, a stream-static join), so
   no look-back depends on the wall clock.
2. `fill_from_baselines(enriched, baselines)` is the cold-start fill (the Lambda merge): a customer the walk
   has barely seen (fewer than MIN_HABIT_HISTORY earlier events in its state) gets its habits from the
   batch layer's `marts.customer_baselines`, whose rows are `customer_baselines(state)` computed in SQL
   (dbt_project/models/marts/customer_baselines.sql, proven equal in tests/orchestration). A baseline is only
   used for an event after the baseline's last event (`last_seen_at`, event time), never one it already
   knows the future of. `history_context(..., baselines=...)` applies it; see its docstring for training.
3. `derive_features(enriched)` turns contract columns + context into `FEATURE_COLUMNS` (what the model sees).
   It is the first step of the model's sklearn Pipeline, so scoring anywhere runs exactly this code.

Amounts are handled in integer cents inside the state so running sums are exact and the incremental walk
is bit-identical to the batch walk.
"""

from __future__ import annotations

import bisect
import gc
import json
import math
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from events.contract import UNKNOWN_COUNTRY

NS = 1_000_000_000
CUSTOMER_WINDOWS = {"10m": 600, "1h": 3600, "24h": 86400}  # seconds
TERMINAL_WINDOWS = {"1h": 3600, "24h": 86400, "far_24h": 86400}  # far_24h: only far-from-home customers
AMOUNT_HISTORY = 50  # the customer's "usual amount" = median / p95 of the last 50 amounts
DEVICE_MEMORY = 20  # devices remembered per customer (most recently used)
COUNTRY_MEMORY = 20
MIN_HABIT_HISTORY = 5  # hour-of-day habit only means something after a few purchases
TERMINAL_CHARGEBACK_WINDOW = pd.Timedelta(days=7)
CUSTOMER_CHARGEBACK_WINDOW = pd.Timedelta(days=30)
# how far back the chargebacks handed to history_context must reach (the longest window above)
CHARGEBACK_LOOKBACK = max(TERMINAL_CHARGEBACK_WINDOW, CUSTOMER_CHARGEBACK_WINDOW)
PROGRESS_EVERY = 4096  # rows walked between two ticks of the progress bar

# contract columns the feature code reads (all in events/contract/transaction.v1.json)
INPUT_COLUMNS = [
    "transaction_id",
    "customer_id",
    "merchant_id",
    "terminal_id",
    "event_time",
    "currency",
    "amount",
    "payment_method",
    "channel",
    "device_id",
    "device_type",
    "ip_country",
    "ip_lat",
    "ip_lon",
    "line_items",
]
CUSTOMER_CONTEXT_COLUMNS = [
    "cust_n_prior",
    "cust_count_10m",
    "cust_count_1h",
    "cust_count_24h",
    "cust_amount_10m",
    "cust_amount_1h",
    "cust_amount_24h",
    "cust_amount_median",
    "cust_amount_p95",
    "cust_secs_since_last",
    "cust_device_seen",
    "cust_new_devices_1h",
    "cust_home_distance_km",
    "cust_country_seen",
    "cust_hour_share",
]
TERMINAL_CONTEXT_COLUMNS = [
    "term_count_1h",
    "term_count_24h",
    "term_amount_1h",
    "term_amount_24h",
    "term_far_24h",
]
FAR_FROM_HOME_KM = 500.0  # a terminal's customer this far from their usual location counts as "far"
CHARGEBACK_CONTEXT_COLUMNS = ["term_chargebacks_7d", "cust_chargebacks_30d"]
CONTEXT_COLUMNS = CUSTOMER_CONTEXT_COLUMNS + TERMINAL_CONTEXT_COLUMNS + CHARGEBACK_CONTEXT_COLUMNS
# The currency a card from an IP's country is usually charged in (the contract's four currencies). A card
# charged in USD from an IP in Nigeria or Germany is a cross-border payment: a classic risk signal that needs
# no history, so it still speaks for a customer's very first transaction.
EURO_COUNTRIES = {
    "AT",
    "BE",
    "CY",
    "DE",
    "EE",
    "ES",
    "FI",
    "FR",
    "GR",
    "HR",
    "IE",
    "IT",
    "LT",
    "LU",
    "LV",
    "MT",
    "NL",
    "PT",
    "SI",
    "SK",
}
COUNTRY_CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP", **{c: "EUR" for c in EURO_COUNTRIES}}

# columns a chargebacks frame needs (terminal_id comes from joining the disputed transaction)
CHARGEBACK_COLUMNS = ["transaction_id", "customer_id", "terminal_id", "reported_at"]

# One customer's habits as the batch layer knows them: what `CustomerState` holds beyond the short windows,
# per customer (`customer_baselines(state)`; in SQL marts.customer_baselines, same names, same numbers).
BASELINE_COLUMNS = [
    "customer_id",
    "n_transactions",  # every transaction of the customer
    "median_amount",  # median / p95 of the last AMOUNT_HISTORY amounts (as the walk computes them)
    "p95_amount",
    "usual_device_ids",  # the DEVICE_MEMORY most recently used devices, most recent last
    "usual_countries",  # the COUNTRY_MEMORY most recently used IP countries, most recent last
    "home_lat",  # mean IP position over every located transaction (NaN: never located)
    "home_lon",
    "hour_counts",  # transactions per UTC hour of day, 24 counts
    "last_seen_at",  # the customer's latest event: the baseline knows nothing after it
]

FEATURE_COLUMNS = [
    "log_amount",
    "amount_to_median",
    "amount_to_p95",
    "is_first_tx",
    "log_prior_tx",
    "cust_count_10m",
    "cust_count_1h",
    "cust_count_24h",
    "amount_1h_to_median",
    "log_secs_since_last",
    "is_new_device",
    "new_devices_1h",
    "log_home_distance_km",
    "is_new_country",
    "hour_share",
    "term_count_1h",
    "term_burst",
    "term_far_24h",
    "currency_mismatch",
    "term_chargebacks_7d",
    "cust_chargebacks_30d",
    "n_items",
]


# --------------------------------------------------------------------------------------------- state
class _Window:
    """Events of one key inside a sliding time window, with exact running count and cent sum."""

    __slots__ = ("seconds", "times", "cents", "total")

    def __init__(self, seconds: int, times=(), cents=()) -> None:
        self.seconds = seconds
        self.times: deque[int] = deque(times)
        self.cents: deque[int] = deque(cents)
        self.total = int(sum(self.cents))

    def expire(self, t_ns: int) -> None:
        horizon = t_ns - self.seconds * NS
        while self.times and self.times[0] <= horizon:
            self.times.popleft()
            self.total -= self.cents.popleft()

    def add(self, t_ns: int, cents: int) -> None:
        self.times.append(t_ns)
        self.cents.append(cents)
        self.total += cents

    def to_dict(self) -> dict[str, Any]:
        return {"t": list(self.times), "c": list(self.cents)}


@dataclass
class CustomerState:
    """What the walk remembers about one customer (small: bounded by the windows and memories above)."""

    n: int = 0
    last_t: int | None = None
    windows: dict[str, _Window] = field(
        default_factory=lambda: {k: _Window(s) for k, s in CUSTOMER_WINDOWS.items()}
    )
    recent_amounts: deque = field(default_factory=deque)  # last AMOUNT_HISTORY cents, time order
    sorted_amounts: list = field(default_factory=list)  # the same, sorted (median / p95 in O(1))
    devices: list = field(default_factory=list)  # most recent last
    new_device_times: deque = field(default_factory=deque)  # times a never-seen device was used
    countries: list = field(default_factory=list)
    geo_n: int = 0
    lat_sum: float = 0.0
    lon_sum: float = 0.0
    hours: list = field(default_factory=lambda: [0] * 24)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "last_t": self.last_t,
            "windows": {k: w.to_dict() for k, w in self.windows.items()},
            "recent_amounts": list(self.recent_amounts),
            "devices": list(self.devices),
            "new_device_times": list(self.new_device_times),
            "countries": list(self.countries),
            "geo": [self.geo_n, self.lat_sum, self.lon_sum],
            "hours": list(self.hours),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CustomerState:
        st = cls(
            n=d["n"],
            last_t=d["last_t"],
            windows={k: _Window(CUSTOMER_WINDOWS[k], w["t"], w["c"]) for k, w in d["windows"].items()},
            recent_amounts=deque(d["recent_amounts"]),
            sorted_amounts=sorted(d["recent_amounts"]),
            devices=list(d["devices"]),
            new_device_times=deque(d["new_device_times"]),
            countries=list(d["countries"]),
            hours=list(d["hours"]),
        )
        st.geo_n, st.lat_sum, st.lon_sum = d["geo"]
        return st


@dataclass
class TerminalState:
    windows: dict[str, _Window] = field(
        default_factory=lambda: {k: _Window(s) for k, s in TERMINAL_WINDOWS.items()}
    )

    def to_dict(self) -> dict[str, Any]:
        return {"windows": {k: w.to_dict() for k, w in self.windows.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TerminalState:
        saved = d.get("windows", {})
        # a state saved before a window existed starts that window empty (old checkpoints keep loading)
        return cls(
            windows={
                k: _Window(s, saved[k]["t"], saved[k]["c"]) if k in saved else _Window(s)
                for k, s in TERMINAL_WINDOWS.items()
            }
        )


@dataclass
class HistoryState:
    """The whole walk's state: per-customer and per-terminal. `to_json` / `from_json` for checkpoints;
    `customer_state_json(id)` etc. let a keyed Spark operator keep one key's part."""

    customers: dict[str, CustomerState] = field(default_factory=dict)
    terminals: dict[str, TerminalState] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "customers": {k: v.to_dict() for k, v in self.customers.items()},
                "terminals": {k: v.to_dict() for k, v in self.terminals.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> HistoryState:
        if not text:
            return cls()
        d = json.loads(text)
        return cls(
            customers={k: CustomerState.from_dict(v) for k, v in d.get("customers", {}).items()},
            terminals={k: TerminalState.from_dict(v) for k, v in d.get("terminals", {}).items()},
        )


# ------------------------------------------------------------------------------------------ helpers
def _utc_ns(values: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(values, utc=True, format="ISO8601") if values.dtype == object else values
    if getattr(ts.dt, "tz", None) is None:
        raise ValueError("event_time must be timezone-aware (the contract requires a UTC offset)")
    return ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").astype("int64").to_numpy()


def _cents(values: pd.Series) -> np.ndarray:
    return np.round(pd.to_numeric(values, errors="coerce").astype(float).to_numpy() * 100).astype(np.int64)


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


def _median_p95(sorted_cents: list[int]) -> tuple[float, float]:
    """Median (mean of the two middle values, numpy's and SQL percentile_cont's) and p95 (nearest rank: the
    ceil(0.95 k)-th smallest, SQL percentile_disc's) of sorted integer cents, in currency units."""
    k = len(sorted_cents)
    median = (sorted_cents[(k - 1) // 2] + sorted_cents[k // 2]) / 200.0
    return median, sorted_cents[max(0, math.ceil(0.95 * k) - 1)] / 100.0


def _walk_order(tx: pd.DataFrame, t_ns: np.ndarray) -> np.ndarray:
    # (event_time, transaction_id) is a total order, so any split of the data into batches walks the same way
    ids = tx["transaction_id"].astype(str).to_numpy()
    # already in that order (the master dataset and the replay are loaded sorted): the order lexsort gives
    # (a stable sort keeps equal keys in place), without its string comparisons (~1 s per million rows)
    steps = np.diff(t_ns)
    if not (steps < 0).any():
        ties = np.flatnonzero(steps == 0)
        if not len(ties) or bool((ids[ties] <= ids[ties + 1]).all()):
            return np.arange(len(t_ns))
    return np.lexsort((ids, t_ns))


def _walk_parts(order: np.ndarray, desc: str, progress: bool) -> Iterator[list[int]]:
    """The walk order as plain ints (numpy scalars are slow one at a time), in slices of PROGRESS_EVERY
    rows with a tqdm bar when `progress` (shown on a terminal only: tqdm's own TTY check)."""
    if not progress:
        yield order.tolist()
        return
    from tqdm import tqdm

    with tqdm(total=len(order), unit="tx", desc=desc, disable=None, mininterval=1.0) as bar:
        for lo in range(0, len(order), PROGRESS_EVERY):
            part = order[lo : lo + PROGRESS_EVERY].tolist()
            yield part
            bar.update(len(part))


def _context_frame(rows: list[tuple], order: np.ndarray, columns: list[str], index: pd.Index) -> pd.DataFrame:
    """Rows produced in walk order -> a frame on the input's index and row order."""
    out = np.full((len(order), len(columns)), np.nan)
    if rows:
        out[order] = np.array(rows, dtype=float)
    return pd.DataFrame(out, columns=columns, index=index)


# ------------------------------------------------------------------------------------------ context
def customer_context(
    tx: pd.DataFrame, state: dict[str, CustomerState] | None = None, progress: bool = False
) -> tuple[pd.DataFrame, dict[str, CustomerState]]:
    """Per-customer context of each row from earlier rows only; returns (context on tx.index, state).

    The loop reads plain Python lists, not numpy arrays: the same values and the same arithmetic (so the same
    numbers), without boxing a numpy scalar at every access."""
    state = {} if state is None else state
    t_ns = _utc_ns(tx["event_time"])
    order = _walk_order(tx, t_ns)
    times = t_ns.tolist()
    cents = _cents(tx["amount"]).tolist()
    cust = tx["customer_id"].astype(str).tolist()
    dev = tx["device_id"].astype(str).tolist()
    country = tx["ip_country"].fillna("").astype(str).tolist()
    lat = pd.to_numeric(tx["ip_lat"], errors="coerce").to_numpy(dtype=float).tolist()
    lon = pd.to_numeric(tx["ip_lon"], errors="coerce").to_numpy(dtype=float).tolist()
    hour = ((t_ns // (3600 * NS)) % 24).tolist()
    isnan, nan, hour_ns = math.isnan, math.nan, 3600 * NS
    rows: list[tuple] = []  # one per row, in walk order
    emit = rows.append

    for part in _walk_parts(order, "customer context", progress):
        for i in part:
            t = times[i]
            st = state.get(cust[i])
            if st is None:
                st = state[cust[i]] = CustomerState()
            w10, w1, w24 = st.windows.values()
            w10.expire(t)
            w1.expire(t)
            w24.expire(t)
            median = p95 = secs = distance = hour_share = nan
            if st.sorted_amounts:
                median, p95 = _median_p95(st.sorted_amounts)
            if st.last_t is not None:
                secs = (t - st.last_t) / NS
            device = dev[i]
            seen = device in st.devices
            nd = st.new_device_times
            while nd and nd[0] <= t - hour_ns:
                nd.popleft()
            la, lo = lat[i], lon[i]
            located = not (isnan(la) or isnan(lo))
            if st.geo_n and located:
                distance = _haversine_km(la, lo, st.lat_sum / st.geo_n, st.lon_sum / st.geo_n)
            c = country[i]
            h = hour[i]
            if st.n >= MIN_HABIT_HISTORY:
                hours = st.hours
                hour_share = (hours[(h - 1) % 24] + hours[h] + hours[(h + 1) % 24]) / st.n
            emit(
                (
                    st.n,
                    len(w10.times),
                    len(w1.times),
                    len(w24.times),
                    w10.total / 100.0,
                    w1.total / 100.0,
                    w24.total / 100.0,
                    median,
                    p95,
                    secs,
                    1.0 if seen else 0.0,
                    # the count includes this event when its device is new: "3rd new device this hour"
                    len(nd) + (0 if seen else 1),
                    distance,
                    1.0 if (c in st.countries or not c) else 0.0,
                    hour_share,
                )
            )

            # ---- fold this event into the state (after its own context was taken)
            amount = cents[i]
            st.n += 1
            st.last_t = t if st.last_t is None else max(st.last_t, t)
            w10.add(t, amount)
            w1.add(t, amount)
            w24.add(t, amount)
            st.recent_amounts.append(amount)
            bisect.insort(st.sorted_amounts, amount)
            if len(st.recent_amounts) > AMOUNT_HISTORY:
                old = st.recent_amounts.popleft()
                del st.sorted_amounts[bisect.bisect_left(st.sorted_amounts, old)]
            if seen:
                st.devices.remove(device)
            else:
                nd.append(t)
            st.devices.append(device)
            if len(st.devices) > DEVICE_MEMORY:
                st.devices.pop(0)
            # countries, like devices, are remembered most-recently-used (a set the batch layer can recompute)
            if c and not (st.countries and st.countries[-1] == c):
                if c in st.countries:
                    st.countries.remove(c)
                st.countries.append(c)
                if len(st.countries) > COUNTRY_MEMORY:
                    st.countries.pop(0)
            if located:
                st.geo_n += 1
                st.lat_sum += la
                st.lon_sum += lo
            st.hours[h] += 1

    return _context_frame(rows, order, CUSTOMER_CONTEXT_COLUMNS, tx.index), state


def terminal_context(
    tx: pd.DataFrame,
    state: dict[str, TerminalState] | None = None,
    home_distance_km: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, TerminalState]]:
    """Per-terminal recent volume of each row from earlier rows only.

    `home_distance_km` (customer_context's cust_home_distance_km, aligned to tx; by default tx's own
    `cust_home_distance_km` column when customer context was added first, as the stream does) marks
    customers far from their usual location; a skimmed store terminal suddenly serves many of them.
    """
    state = {} if state is None else state
    if home_distance_km is None and "cust_home_distance_km" in tx.columns:
        home_distance_km = pd.to_numeric(tx["cust_home_distance_km"], errors="coerce").to_numpy(dtype=float)
    far = (
        np.zeros(len(tx), dtype=bool)
        if home_distance_km is None
        else np.nan_to_num(home_distance_km) > FAR_FROM_HOME_KM
    ).tolist()
    t_ns = _utc_ns(tx["event_time"])
    order = _walk_order(tx, t_ns)
    times = t_ns.tolist()
    cents = _cents(tx["amount"]).tolist()
    term = tx["terminal_id"].astype(str).tolist()
    rows: list[tuple] = []
    emit = rows.append
    for part in _walk_parts(order, "terminal context", progress):
        for i in part:
            t = times[i]
            st = state.get(term[i])
            if st is None:
                st = state[term[i]] = TerminalState()
            w1, w24, wfar = st.windows["1h"], st.windows["24h"], st.windows["far_24h"]
            w1.expire(t)
            w24.expire(t)
            wfar.expire(t)
            emit((len(w1.times), len(w24.times), w1.total / 100.0, w24.total / 100.0, len(wfar.times)))
            amount = cents[i]
            w1.add(t, amount)
            w24.add(t, amount)
            if far[i]:
                wfar.add(t, amount)
    return _context_frame(rows, order, TERMINAL_CONTEXT_COLUMNS, tx.index), state


def _count_reported_before(
    keys: np.ndarray, t_ns: np.ndarray, cb_keys: np.ndarray, cb_ns: np.ndarray, window_ns: int
) -> np.ndarray:
    """For each (key, t): chargebacks of that key reported in [t - window, t).

    Linear-logarithmic in rows + chargebacks, whatever the number of keys: every time involved is replaced
    by its rank among them (order-preserving, so `<` and `<=` mean what they meant in nanoseconds), a key
    by its code, and (code, rank) packs into one int64 that a single sorted array answers with two binary
    searches per row. (A loop over keys, each scanning every row, was O(keys x rows): on a card file with
    thousands of terminals and customers holding chargebacks it took most of the training walk.)"""
    out = np.zeros(len(keys))
    if len(cb_keys) == 0 or len(keys) == 0:
        return out
    codes, _ = pd.factorize(np.concatenate([np.asarray(cb_keys), np.asarray(keys)]))
    cb_code, tx_code = codes[: len(cb_keys)].astype(np.int64), codes[len(cb_keys) :].astype(np.int64)
    since = t_ns - window_ns
    # with duplicates kept, a value's rank (how many are smaller) still orders them exactly: no unique()
    times = np.sort(np.concatenate([cb_ns, t_ns, since]))
    span = np.int64(len(times))
    reported = np.sort(cb_code * span + np.searchsorted(times, cb_ns))
    hi = np.searchsorted(reported, tx_code * span + np.searchsorted(times, t_ns), side="left")
    lo = np.searchsorted(reported, tx_code * span + np.searchsorted(times, since), side="left")
    out[:] = hi - lo
    return out


def chargeback_context(tx: pd.DataFrame, chargebacks: pd.DataFrame | None) -> pd.DataFrame:
    """Chargebacks *reported* before each event: on its terminal (7 days) and on its customer (30 days)."""
    t_ns = _utc_ns(tx["event_time"])
    out = pd.DataFrame(0.0, index=tx.index, columns=CHARGEBACK_CONTEXT_COLUMNS)
    if chargebacks is None or len(chargebacks) == 0:
        return out
    missing = [c for c in CHARGEBACK_COLUMNS if c not in chargebacks.columns]
    if missing:
        raise ValueError(
            f"chargebacks frame lacks {missing}; join them to their transactions (ml.data.load_chargebacks)"
        )
    cb = chargebacks.drop_duplicates("transaction_id")
    cb_ns = _utc_ns(cb["reported_at"])
    out["term_chargebacks_7d"] = _count_reported_before(
        tx["terminal_id"].astype(str).to_numpy(),
        t_ns,
        cb["terminal_id"].astype(str).to_numpy(),
        cb_ns,
        TERMINAL_CHARGEBACK_WINDOW.value,
    )
    out["cust_chargebacks_30d"] = _count_reported_before(
        tx["customer_id"].astype(str).to_numpy(),
        t_ns,
        cb["customer_id"].astype(str).to_numpy(),
        cb_ns,
        CUSTOMER_CHARGEBACK_WINDOW.value,
    )
    return out


# ------------------------------------------------------------------------------------- cold start
def customer_baselines(customers: dict[str, CustomerState]) -> pd.DataFrame:
    """BASELINE_COLUMNS of every customer in a walk's state: the reference marts.customer_baselines equals.

    `customer_baselines(history_context(tx)[1].customers)` is what the batch layer builds from the same rows
    (tests/orchestration/test_customer_baselines.py runs the dbt model and compares)."""
    rows = []
    for customer_id, st in customers.items():
        median, p95 = _median_p95(st.sorted_amounts) if st.sorted_amounts else (math.nan, math.nan)
        rows.append(
            (
                customer_id,
                st.n,
                median,
                p95,
                list(st.devices),
                list(st.countries),
                st.lat_sum / st.geo_n if st.geo_n else math.nan,
                st.lon_sum / st.geo_n if st.geo_n else math.nan,
                list(st.hours),
                pd.Timestamp(st.last_t, tz="UTC") if st.last_t is not None else pd.NaT,
            )
        )
    out = pd.DataFrame(rows, columns=BASELINE_COLUMNS)
    out["last_seen_at"] = pd.to_datetime(out["last_seen_at"], utc=True)
    return out


def _in_list(value: Any, values: Any) -> bool:
    if not value or not isinstance(values, list | tuple | np.ndarray):
        return False
    return value in (values if isinstance(values, list | tuple) else values.tolist())


def fill_from_baselines(enriched: pd.DataFrame, baselines: pd.DataFrame | None) -> pd.DataFrame:
    """The cold-start fill: a barely-seen customer's habits from the batch layer's baseline. Pure.

    A row is filled when its walk state knew fewer than MIN_HABIT_HISTORY earlier events of the customer,
    the baseline knows more, and the baseline's last event is strictly before the row (event time: a
    baseline built over a replayed future is never used for the past). Filled: the prior count, median and
    p95 amount, seconds since the last purchase (when the state has none), device and country seen (the
    state's or the baseline's), new devices in the hour (minus this one when the baseline knows its device),
    distance from home, and the hour-of-day habit. For a row whose customer the state does not know at all
    (a fresh checkpoint, or a customer forgotten after STATE_TTL) and a baseline holding every earlier event,
    the filled numbers are exactly those of a walk over the whole history; with 1-4 events in the state the
    baseline's numbers replace the state's (the events after the baseline are not added).
    No baselines (the batch layer has not built them yet) or nobody cold: `enriched` itself is returned.
    """
    if baselines is None or len(baselines) == 0 or len(enriched) == 0:
        return enriched
    missing = [c for c in BASELINE_COLUMNS if c not in baselines.columns]
    if missing:
        raise ValueError(
            f"baselines lack {missing}: rebuild marts.customer_baselines (`ecom batch`) or pass "
            "ml.features.customer_baselines(state)"
        )
    b = (
        baselines.drop_duplicates("customer_id", keep="last")
        .assign(customer_id=lambda d: d["customer_id"].astype(str))
        .set_index("customer_id")
        .reindex(enriched["customer_id"].astype(str).to_numpy())
    )
    prior = enriched["cust_n_prior"].astype(float).fillna(0).to_numpy()
    n_base = pd.to_numeric(b["n_transactions"], errors="coerce").astype(float).fillna(0).to_numpy()
    t_ns = _utc_ns(enriched["event_time"])
    last_seen = pd.to_datetime(b["last_seen_at"], utc=True)
    seen_ns = last_seen.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view("int64")
    cold = (prior < MIN_HABIT_HISTORY) & (n_base > prior) & last_seen.notna().to_numpy() & (seen_ns < t_ns)
    if not cold.any():
        return enriched
    out = enriched.copy()
    idx = np.flatnonzero(cold)
    # plain Python values for the row loop (numpy scalars are slow one at a time)
    cols = {c: out[c].astype(float).to_numpy(copy=True) for c in CUSTOMER_CONTEXT_COLUMNS}
    row = {c: v[idx].tolist() for c, v in cols.items()}

    def numbers(frame: pd.DataFrame, column: str) -> list[float]:
        return pd.to_numeric(frame[column], errors="coerce").astype(float).to_numpy()[idx].tolist()

    median, p95 = numbers(b, "median_amount"), numbers(b, "p95_amount")
    home_lat, home_lon = numbers(b, "home_lat"), numbers(b, "home_lon")
    lat, lon = numbers(enriched, "ip_lat"), numbers(enriched, "ip_lon")
    devices = b["usual_device_ids"].to_numpy()[idx].tolist()
    countries = b["usual_countries"].to_numpy()[idx].tolist()
    hours = b["hour_counts"].to_numpy()[idx].tolist()
    device = enriched["device_id"].astype(str).to_numpy()[idx].tolist()
    country = enriched["ip_country"].fillna("").astype(str).to_numpy()[idx].tolist()
    t_list, seen_list = t_ns[idx].tolist(), seen_ns[idx].tolist()
    # the same scalar arithmetic as the walk (customer_context), so the numbers are bit-identical
    for j in range(len(idx)):
        n = int(n_base[idx[j]])
        row["cust_n_prior"][j] = n
        if not math.isnan(median[j]):
            row["cust_amount_median"][j], row["cust_amount_p95"][j] = median[j], p95[j]
        if math.isnan(row["cust_secs_since_last"][j]):
            row["cust_secs_since_last"][j] = (t_list[j] - seen_list[j]) / NS
        if _in_list(device[j], devices[j]) and row["cust_device_seen"][j] != 1.0:
            row["cust_device_seen"][j] = 1.0
            row["cust_new_devices_1h"][j] = max(0.0, row["cust_new_devices_1h"][j] - 1.0)
        if _in_list(country[j], countries[j]):
            row["cust_country_seen"][j] = 1.0
        if not (
            math.isnan(lat[j]) or math.isnan(lon[j]) or math.isnan(home_lat[j]) or math.isnan(home_lon[j])
        ):
            row["cust_home_distance_km"][j] = _haversine_km(lat[j], lon[j], home_lat[j], home_lon[j])
        counts = hours[j]
        if n >= MIN_HABIT_HISTORY and isinstance(counts, list | tuple | np.ndarray) and len(counts) == 24:
            h = (t_list[j] // (3600 * NS)) % 24
            row["cust_hour_share"][j] = (
                int(counts[(h - 1) % 24]) + int(counts[h]) + int(counts[(h + 1) % 24])
            ) / n
    for c, values in cols.items():
        values[idx] = row[c]
    for c, values in cols.items():
        out[c] = values
    return out


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The walk allocates millions of small, acyclic objects (window entries, per-key states): the cyclic
    collector only rescans them (20 % of the CPU at 100k rows, more as the state grows). Off for the walk."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def history_context(
    tx: pd.DataFrame,
    chargebacks: pd.DataFrame | None = None,
    state: HistoryState | None = None,
    baselines: pd.DataFrame | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, HistoryState]:
    """`tx` plus CONTEXT_COLUMNS (same index, same row order), and the state to continue from.

    Batch: `history_context(all_tx, all_chargebacks)`. Incremental: keep the returned state and pass it with
    the next batch (events later than those already walked); the chargebacks must cover the last
    CHARGEBACK_LOOKBACK before the batch's events. Rows of one call are walked in (event_time, transaction_id)
    order, so the result does not depend on how the input is sorted.

    `baselines` (BASELINE_COLUMNS, e.g. marts.customer_baselines) applies `fill_from_baselines` after the
    walk, as the stream does after its keyed state. Training passes none, on purpose: it walks the master
    dataset from its first event, so at every row the walk's own state holds every earlier event of the
    customer, which is all a batch layer caught up to that row could have built (and a lagging one knows
    less). The fill only acts where a baseline knows more than the state and was built before the row;
    over a walk from the first event no such row exists, so the point-in-time fill is the identity there
    (tests/ml/test_features.py proves it). It matters where a walk starts mid-history: the stream after a
    fresh checkpoint or once a customer idle for STATE_TTL was forgotten, or a walk over a later window.
    The chargeback look-back is each row's own event time (never the wall clock).

    Cost is linear in the rows (plus a sort): one pass per key kind with a bounded state per key, and the
    chargeback counts by binary search. `progress` shows a bar per pass on a terminal (training's walk).
    """
    state = HistoryState() if state is None else state
    if len(tx) == 0:
        return tx.assign(**{c: pd.Series(dtype=float) for c in CONTEXT_COLUMNS}), state
    with _no_cyclic_gc():
        cust, state.customers = customer_context(tx, state.customers, progress)
        term, state.terminals = terminal_context(
            tx, state.terminals, cust["cust_home_distance_km"].to_numpy(), progress
        )
    cb = chargeback_context(tx, chargebacks)
    enriched = fill_from_baselines(pd.concat([tx, cust, term, cb], axis=1), baselines)
    return enriched, state


# ------------------------------------------------------------------------------------------ features
def _n_items(line_items: pd.Series) -> np.ndarray:
    def count(items: Any) -> float:
        if isinstance(items, str):
            items = json.loads(items)
        if items is None or (isinstance(items, float) and math.isnan(items)):
            return 1.0
        return float(sum(int(it.get("quantity", 1)) for it in items)) if len(items) else 1.0

    return np.fromiter((count(x) for x in line_items), dtype=float, count=len(line_items))


def _currency_mismatch(e: pd.DataFrame) -> np.ndarray:
    if "currency" not in e.columns:
        return np.zeros(len(e))
    # the IP's country does not use the charged currency; an IP without a country (empty, or the contract's
    # UNKNOWN_COUNTRY that replay sets for files without IP data) is no evidence either way
    country = e["ip_country"].fillna("").astype(str)
    expected = country.map(COUNTRY_CURRENCY).fillna("other")
    known = (country != "") & (country != UNKNOWN_COUNTRY)
    return (known & (expected != e["currency"].astype(str))).to_numpy(dtype=float)


def derive_features(enriched: pd.DataFrame) -> pd.DataFrame:
    """Contract columns + CONTEXT_COLUMNS -> FEATURE_COLUMNS (floats, no NaN); the Pipeline's first step."""
    missing = [c for c in ["amount", *CONTEXT_COLUMNS] if c not in enriched.columns]
    if missing:
        raise ValueError(
            f"derive_features needs the context columns {missing}: run ml.features.history_context"
        )
    e = enriched
    amount = pd.to_numeric(e["amount"], errors="coerce").astype(float).fillna(0.0).to_numpy()
    n_prior = e["cust_n_prior"].astype(float).fillna(0).to_numpy()
    # with no history the customer's "usual" is this amount itself (ratio 1): novelty is its own feature
    median = e["cust_amount_median"].astype(float).to_numpy()
    median = np.where(np.isnan(median) | (median <= 0), np.maximum(amount, 0.01), median)
    p95 = e["cust_amount_p95"].astype(float).to_numpy()
    p95 = np.where(np.isnan(p95) | (p95 <= 0), np.maximum(amount, 0.01), p95)
    secs = e["cust_secs_since_last"].astype(float).to_numpy()
    dist = e["cust_home_distance_km"].astype(float).fillna(0.0).to_numpy()
    hour_share = e["cust_hour_share"].astype(float).fillna(3 / 24).to_numpy()
    t24 = e["term_count_24h"].astype(float).fillna(0).to_numpy()
    t1 = e["term_count_1h"].astype(float).fillna(0).to_numpy()
    if "line_items" in e.columns:
        n_items = _n_items(e["line_items"])
    elif "n_items" in e.columns:  # counted upstream by the same rule (the stream does it in the JVM)
        n_items = pd.to_numeric(e["n_items"], errors="coerce").astype(float).fillna(1.0).to_numpy()
    else:
        n_items = np.ones(len(e))
    feats = {
        "log_amount": np.log1p(amount),
        "amount_to_median": amount / median,
        "amount_to_p95": amount / p95,
        "is_first_tx": (n_prior == 0).astype(float),
        "log_prior_tx": np.log1p(n_prior),
        "cust_count_10m": e["cust_count_10m"].astype(float).fillna(0).to_numpy(),
        "cust_count_1h": e["cust_count_1h"].astype(float).fillna(0).to_numpy(),
        "cust_count_24h": e["cust_count_24h"].astype(float).fillna(0).to_numpy(),
        "amount_1h_to_median": (e["cust_amount_1h"].astype(float).fillna(0).to_numpy() + amount) / median,
        # no previous purchase: a month, i.e. "long ago"
        "log_secs_since_last": np.log1p(np.where(np.isnan(secs), 30 * 86400.0, np.maximum(secs, 0))),
        "is_new_device": 1.0 - e["cust_device_seen"].astype(float).fillna(0).to_numpy(),
        "new_devices_1h": e["cust_new_devices_1h"].astype(float).fillna(1).to_numpy(),
        "log_home_distance_km": np.log1p(dist),
        "is_new_country": 1.0 - e["cust_country_seen"].astype(float).fillna(1).to_numpy(),
        "hour_share": hour_share,
        "term_count_1h": t1,
        # last hour against the terminal's hourly average over the day: a burst of activity
        "term_burst": (t1 + 1.0) / (t24 / 24.0 + 1.0),
        "term_far_24h": e["term_far_24h"].astype(float).fillna(0).to_numpy(),
        "currency_mismatch": _currency_mismatch(e),
        "term_chargebacks_7d": e["term_chargebacks_7d"].astype(float).fillna(0).to_numpy(),
        "cust_chargebacks_30d": e["cust_chargebacks_30d"].astype(float).fillna(0).to_numpy(),
        "n_items": n_items,
    }
    return pd.DataFrame(feats, index=enriched.index)[FEATURE_COLUMNS]


def enrich(
    tx: pd.DataFrame,
    chargebacks: pd.DataFrame | None = None,
    state: HistoryState | None = None,
    baselines: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, HistoryState]:
    """Alias of history_context (reads better at call sites that go on to score)."""
    return history_context(tx, chargebacks, state, baselines)
