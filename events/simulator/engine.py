"""The event engine: legitimate shopping behaviour and fraud scenarios, generated in vectorised chunks.

Events are planned as columns of numpy arrays (a `Plan`: one entry per transaction), merged in time
order, and only then rendered to contract dicts, so the per-event Python work is one dict literal.
Two clocks share the same behaviour model: `history` walks simulated days in the past as fast as it
can; `live` stamps events with the wall clock at a target rate.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from events.simulator import world as W

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

SCENARIOS = ["card_testing", "account_takeover", "velocity_spree", "compromised_terminal", "amount_outlier"]
# Incidents per 10,000 legitimate transactions at fraud_rate=1 (each incident is 1..~30 transactions);
# together ~1% of transactions are fraud, in the range card networks report for e-commerce.
INCIDENTS_PER_10K = {
    "card_testing": 2.5,
    "account_takeover": 8.0,
    "velocity_spree": 2.0,
    "compromised_terminal": 0.4,
    "amount_outlier": 12.0,
}
# Local-time shape of a day (share of purchases per hour, 00-23): quiet nights, lunch and evening peaks.
HOURLY = np.array(
    [
        0.35,
        0.2,
        0.12,
        0.08,
        0.07,
        0.1,
        0.25,
        0.5,
        0.8,
        1.0,
        1.1,
        1.2,
        1.35,
        1.3,
        1.15,
        1.1,
        1.1,
        1.2,
        1.35,
        1.5,
        1.6,
        1.45,
        1.1,
        0.7,
    ]
)
HOURLY_CDF = np.cumsum(HOURLY) / HOURLY.sum()
# Monday .. Sunday: busier towards the weekend.
WEEKLY = np.array([0.92, 0.95, 0.97, 1.0, 1.08, 1.15, 1.05])
MAX_TZ_EAST_HOURS = 2  # the easternmost home city's offset: bounds how early a local day starts in UTC

HIGH_TICKET = [-1, W.ELECTRONICS, W.FASHION, W.CATEGORY_NAMES.index("home"), W.CATEGORY_NAMES.index("sports")]
# basket modes
LEGIT, SMALL_DIGITAL, HIGH_VALUE, BULK = 0, 1, 2, 3


@dataclass
class SimConfig:
    seed: int = 7
    n_customers: int = 2000
    n_products: int = 300
    n_merchants: int = 50
    days: float = 60
    start: datetime | None = None  # tz-aware; None -> today 00:00 UTC minus `days`
    fraud_rate: float = 1.0  # multiplier on INCIDENTS_PER_10K
    chargeback_share: float = 1.0  # share of fraud transactions that are eventually charged back
    namespace: str = ""  # prefix of every id (tests use it to keep their reference rows apart)
    # multiplier on every customer's purchase rate: sizes a history (more purchases per customer-day)
    # without changing the world, the tiers or the shape of the behaviour
    purchase_rate: float = 1.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]*", self.namespace):
            raise ValueError("namespace may only contain letters, digits, '_', '.', '-'")
        if not self.purchase_rate > 0:
            raise ValueError("purchase_rate must be > 0")

    def resolved_start(self) -> datetime:
        if self.start is not None:
            if self.start.tzinfo is None:
                raise ValueError("SimConfig.start must be timezone-aware")
            return self.start.astimezone(UTC)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today - timedelta(days=self.days)


@dataclass
class Plan:
    """Columns of planned transactions (one entry each); rendered to dicts only when emitted."""

    t: np.ndarray  # event time, epoch ms
    cust: np.ndarray
    merchant: np.ndarray
    terminal: np.ndarray
    channel: np.ndarray
    dtype: np.ndarray
    device: np.ndarray  # object (str)
    pay: np.ndarray
    ip: np.ndarray  # object (str)
    city: np.ndarray  # index into world.ALL_CITIES
    lat: np.ndarray
    lon: np.ndarray
    mode: np.ndarray
    cat: np.ndarray  # basket category, -1 = per item from the customer's taste
    q: np.ndarray  # target price quantile for fraud baskets (NaN for legit)
    scen: np.ndarray  # 0 = legitimate, k = SCENARIOS[k - 1]

    def __len__(self) -> int:
        return len(self.t)

    def take(self, idx: np.ndarray) -> Plan:
        return Plan(*(getattr(self, f.name)[idx] for f in fields(self)))

    @staticmethod
    def concat(plans: list[Plan]) -> Plan:
        plans = [p for p in plans if p is not None and len(p)]
        if not plans:
            return Plan.empty()
        return Plan(*(np.concatenate([getattr(p, f.name) for p in plans]) for f in fields(Plan)))

    @staticmethod
    def empty() -> Plan:
        z = np.zeros(0, dtype=np.int64)
        zo = np.zeros(0, dtype=object)
        zf = np.zeros(0)
        return Plan(z, z, z, z, z, z, zo, z, zo, z, zf, zf, z, z, zf, z)


def _i(n: int, v: int) -> np.ndarray:
    return np.full(n, v, dtype=np.int64)


class ShopSimulator:
    """A seeded, deterministic shop: same config -> same world, same history, same ids."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = c = config or SimConfig()
        start = c.resolved_start()
        self.start_ms = W.utc_ms(start)
        self.end_ms = self.start_ms + int(c.days * DAY_MS)
        seeds = np.random.SeedSequence(c.seed).spawn(3)
        self._history_seed, self._live_seed = seeds[1], seeds[2]
        rng = np.random.default_rng(seeds[0])
        self._cat = W.build_catalog(rng, c.n_products, c.namespace)
        self._mer = W.build_merchants(rng, c.n_merchants, c.namespace)
        self._cus = W.build_customers(
            rng, c.n_customers, self.start_ms, self.end_ms, self._cat, self._mer, c.namespace, c.purchase_rate
        )
        self._product_ids = self._cat.products.product_id.to_numpy(dtype=object)
        self._customer_ids = self._cus.customers.customer_id.to_numpy(dtype=object)
        self._merchant_ids = self._mer.merchants.merchant_id.to_numpy(dtype=object)
        self._city_names = np.array([x[0] for x in W.ALL_CITIES], dtype=object)
        self._city_countries = np.array([x[1] for x in W.ALL_CITIES], dtype=object)
        self._city_lat = np.array([x[2] for x in W.ALL_CITIES])
        self._city_lon = np.array([x[3] for x in W.ALL_CITIES])
        self._merchant_cat = self._mer.category
        self.ground_truth: dict[str, str] = {}
        key = (
            f"{c.seed}|{c.n_customers}|{c.n_products}|{c.n_merchants}|{self.start_ms}|{c.days}|{c.namespace}"
            + (f"|{c.purchase_rate}" if c.purchase_rate != 1.0 else "")  # ids of existing configs unchanged
        )
        self._history_prefix = c.namespace + "h" + hashlib.blake2b(key.encode(), digest_size=5).hexdigest()
        self._seq = 0

    # --- public reference data ----------------------------------------------------------------------
    @property
    def products(self) -> pd.DataFrame:
        return self._cat.products

    @property
    def customers(self) -> pd.DataFrame:
        return self._cus.customers

    def customers_as_of(self, when: datetime) -> pd.DataFrame:
        """The customers as a CRM knows them at `when`: signed up by then, with the home after any move."""
        cu = self._cus
        t = W.utc_ms(when)
        df = cu.customers[cu.signup_ms <= t].copy()
        idx = df.index.to_numpy()
        moved = t >= cu.move_ms[idx]
        if moved.any():
            rows = idx[moved]
            names = np.array([c[0] for c in W.HOME_CITIES])
            countries = np.array([c[1] for c in W.HOME_CITIES])
            df.loc[rows, "home_city"] = names[cu.new_city[rows]]
            df.loc[rows, "home_country"] = countries[cu.new_city[rows]]
            df.loc[rows, "home_lat"] = np.round(cu.new_lat[rows], 4)
            df.loc[rows, "home_lon"] = np.round(cu.new_lon[rows], 4)
        return df

    @property
    def merchants(self) -> pd.DataFrame:
        return self._mer.merchants

    @property
    def terminals(self) -> pd.DataFrame:
        return self._mer.terminals

    @property
    def planted_pairs(self) -> list[tuple[str, str]]:
        return list(self._cat.planted_pairs)

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ms / 1000, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_ms / 1000, UTC)

    # --- history clock --------------------------------------------------------------------------------
    def history(
        self, max_events: int | None = None
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        """(event, label) pairs in event-time order over [start, start + days)."""
        for events, labels in self.history_chunks(max_events):
            yield from zip(events, labels, strict=True)

    def history_chunks(
        self,
        max_events: int | None = None,
        as_json: bool = False,
        window: tuple[datetime | None, datetime | None] | None = None,
    ) -> Iterator[tuple[list[Any], list[dict[str, Any] | None]]]:
        """The history as chunks (one simulated day each) of (events, labels) lists, in time order.

        With `as_json` each event is (customer_id key bytes, contract JSON bytes): the producer's fast path.
        `window` = (from, until) keeps only events with from <= event time < until, out of the same
        simulated history (same ids): a history sent in parts is the history sent at once.
        """
        lo_ms = hi_ms = None
        if window is not None:
            lo_ms = None if window[0] is None else int(window[0].timestamp() * 1000)
            hi_ms = None if window[1] is None else int(window[1].timestamp() * 1000)
        rng = np.random.default_rng(self._history_seed)
        self._seq = 0
        self._last_tids: list[str] = []
        prefix = self._history_prefix
        incidents = self._schedule_incidents(rng)
        carry = Plan.empty()
        emitted = 0
        first_day = self.start_ms // DAY_MS
        d = first_day
        while True:
            day_utc = d * DAY_MS
            legit = self._plan_history_day(rng, day_utc)
            todays = [inc for inc in incidents if day_utc <= inc[0] < day_utc + DAY_MS]
            fraud = [self._plan_incident(rng, scen, t0) for t0, scen in todays]
            plan = Plan.concat([carry, legit, *fraud])
            plan = plan.take(np.flatnonzero((plan.t >= self.start_ms) & (plan.t < self.end_ms)))
            plan = plan.take(np.argsort(plan.t, kind="stable"))
            # every later day's events start at or after this horizon, so what is before it is final
            horizon = day_utc + DAY_MS - MAX_TZ_EAST_HOURS * HOUR_MS
            cut = int(np.searchsorted(plan.t, horizon))
            ready, carry = plan.take(np.arange(cut)), plan.take(np.arange(cut, len(plan)))
            if len(ready):
                # render the whole day before capping, so a capped run is a prefix of the uncapped one
                events, labels = self._render(rng, ready, prefix, as_json)
                if max_events is not None and emitted + len(events) > max_events:
                    keep = max_events - emitted
                    for tid in self._last_tids[keep:]:
                        self.ground_truth.pop(tid, None)
                    events, labels = events[:keep], labels[:keep]
                emitted += len(events)
                if lo_ms is not None or hi_ms is not None:
                    t = ready.t[: len(events)]
                    inside = np.ones(len(events), dtype=bool)
                    if lo_ms is not None:
                        inside &= t >= lo_ms
                    if hi_ms is not None:
                        inside &= t < hi_ms
                    idx = np.flatnonzero(inside)
                    events, labels = [events[i] for i in idx], [labels[i] for i in idx]
                if events:
                    yield events, labels
            if (max_events is not None and emitted >= max_events) or horizon >= self.end_ms:
                return
            d += 1

    def expected_history_events(self) -> float:
        """Expected number of legitimate transactions over the history window (for progress bars)."""
        cu = self._cus
        lo = np.maximum(cu.signup_ms, self.start_ms)
        hi = np.minimum(cu.churn_ms, self.end_ms)
        active_days = np.clip(hi - lo, 0, None) / DAY_MS
        return float((cu.rate * active_days).sum() * WEEKLY.mean())

    def _plan_history_day(self, rng: np.random.Generator, day_utc: int) -> Plan:
        cu = self._cus
        local_start = day_utc - cu.tz_hours.astype(np.int64) * HOUR_MS
        active = (cu.signup_ms < local_start + DAY_MS) & (cu.churn_ms > local_start)
        dow = int((day_utc // DAY_MS + 3) % 7)  # 1970-01-01 was a Thursday
        counts = rng.poisson(cu.rate * WEEKLY[dow] * active)
        cust = np.repeat(np.arange(len(counts)), counts)
        hour = np.searchsorted(HOURLY_CDF, rng.random(len(cust))) + rng.random(len(cust))
        t = local_start[cust] + (hour * HOUR_MS).astype(np.int64)
        keep = (t >= cu.signup_ms[cust]) & (t < cu.churn_ms[cust])
        return self._plan_legit(rng, cust[keep], t[keep])

    def _schedule_incidents(self, rng: np.random.Generator) -> list[tuple[int, str]]:
        """Fraud incidents over the history: Poisson counts in proportion to volume, at least one each."""
        expected = self.expected_history_events()
        span = self.end_ms - self.start_ms
        # leave the first part of the window fraud-free so victims have a history to deviate from
        lo = self.start_ms + min(span * 0.15, 14 * DAY_MS)
        hi = self.end_ms - min(span * 0.1, DAY_MS)
        out = []
        for scen in SCENARIOS:
            n = rng.poisson(INCIDENTS_PER_10K[scen] * expected / 10_000 * self.config.fraud_rate)
            n = max(n, 1 if self.config.fraud_rate > 0 and span >= 2 * DAY_MS else 0)
            out.extend((int(t), scen) for t in rng.uniform(lo, hi, n))
        return sorted(out)

    # --- live clock -----------------------------------------------------------------------------------
    def live(self, rate: float, max_events: int | None = None) -> Iterator[dict[str, Any]]:
        """Events stamped with the wall clock at `rate` events/s (0 = as fast as possible)."""
        for events, _ in self.live_chunks(rate, max_events=max_events):
            yield from events

    def live_chunks(
        self,
        rate: float,
        max_events: int | None = None,
        tick_s: float = 0.2,
        chunk: int = 5000,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        as_json: bool = False,
    ) -> Iterator[tuple[list[Any], list[dict[str, Any] | None]]]:
        """Chunks of (events, labels), paced to `rate` events/s; the labels are due days later."""
        if rate < 0:
            raise ValueError("rate must be >= 0")
        started = clock()
        run_token = int(started * 1e6)
        rng = np.random.default_rng([*self._live_seed.generate_state(2), run_token % (2**32)])
        prefix = (
            self.config.namespace
            + "l"
            + hashlib.blake2b(f"{self._history_prefix}|{run_token}".encode(), digest_size=5).hexdigest()
        )
        self._seq = 0
        pending = Plan.empty()
        emitted = 0
        owed = 0.0
        next_tick = started
        last_ms = int(started * 1000)
        cu = self._cus
        base_w = cu.rate
        while max_events is None or emitted < max_events:
            if rate > 0:
                wait = next_tick - clock()
                if wait > 0:
                    sleep(wait)
                next_tick += tick_s
                owed += rate * tick_s
                n_target = int(owed)
                owed -= n_target
            else:
                n_target = chunk
            now_ms = int(clock() * 1000)
            span_ms = max(1, now_ms - last_ms)
            if max_events is not None:
                n_target = min(n_target, max_events - emitted)
            if n_target <= 0:
                continue
            # new incidents, in proportion to the volume of this tick; their later events wait in `pending`
            lam = sum(INCIDENTS_PER_10K.values()) * n_target / 10_000 * self.config.fraud_rate
            new = []
            for _ in range(rng.poisson(lam)):
                scen = SCENARIOS[rng.choice(len(SCENARIOS), p=_incident_mix())]
                new.append(self._plan_incident(rng, scen, now_ms - int(rng.uniform(0, span_ms))))
            pending = Plan.concat([pending, *new])
            due_idx = np.flatnonzero(pending.t <= now_ms)
            due = pending.take(due_idx[:n_target])
            pending = pending.take(np.setdiff1d(np.arange(len(pending)), due_idx[:n_target]))
            # who shops now: rate x active x the local hour of day x day of week
            local_hour = ((now_ms / HOUR_MS + cu.tz_hours) % 24).astype(int)
            dow = int((now_ms // DAY_MS + 3) % 7)
            w = (
                base_w
                * HOURLY[local_hour]
                * WEEKLY[dow]
                * ((cu.signup_ms <= now_ms) & (cu.churn_ms > now_ms))
            )
            if w.sum() <= 0:
                w = base_w.copy()
            cdf = np.cumsum(w)
            n_legit = n_target - len(due)
            cust = np.minimum(np.searchsorted(cdf, rng.random(n_legit) * cdf[-1]), len(cdf) - 1)
            t = now_ms - rng.integers(0, span_ms, n_legit)
            plan = Plan.concat([self._plan_legit(rng, cust, t), due])
            plan = plan.take(np.argsort(plan.t, kind="stable"))
            last_ms = now_ms
            events, labels = self._render(rng, plan, prefix, as_json)
            emitted += len(events)
            yield events, labels

    # --- behaviour: legitimate ------------------------------------------------------------------------
    def _plan_legit(self, rng: np.random.Generator, cust: np.ndarray, t: np.ndarray) -> Plan:
        n = len(cust)
        cu, me = self._cus, self._mer
        u = rng.random(n)
        home_city, home_lat, home_lon, moved = cu.home_at(cust, np.asarray(t, dtype=np.int64))
        has_pos = me.pos_by_city_count[home_city] > 0
        pos = has_pos & (u < 0.22)
        phone = (~pos) & (u > 0.99)
        online = ~(pos | phone)
        # merchant: one of the customer's favourites 80% of the time, else by popularity
        fav = cu.favourites[cust, rng.integers(0, 3, n)]
        anyone = rng.choice(len(me.popularity), n, p=me.popularity)
        merchant = np.where(rng.random(n) < 0.8, fav, anyone)
        # device: main device most of the time; occasionally a brand-new device (a new phone is not fraud)
        slot = np.where(rng.random(n) < 0.75, 0, rng.integers(1, 3, n))
        slot = np.minimum(slot, cu.n_devices[cust] - 1)
        device = cu.devices[cust, slot].copy()
        dtype = cu.device_type[cust, slot].copy()
        ip = np.where(moved, cu.new_device_ip[cust, slot], cu.device_ip[cust, slot])
        fresh = online & (rng.random(n) < 0.004)
        if fresh.any():
            device[fresh] = W.device_ids(rng, int(fresh.sum()), self.config.namespace)
        channel = np.where(dtype == 0, 0, np.where(rng.random(n) < 0.7, 1, 0))
        terminal = np.where(channel == 0, me.web_terminal[merchant], me.app_terminal[merchant])
        city = home_city.copy()
        lat = home_lat + rng.normal(0, 0.03, n)
        lon = home_lon + rng.normal(0, 0.03, n)
        # travel: 2% of online purchases from another city, on the customer's own phone
        travel = online & (rng.random(n) < 0.02)
        if travel.any():
            k = int(travel.sum())
            tc = rng.integers(0, W.N_HOME_CITIES, k)
            city[travel] = tc
            lat[travel] = self._city_lat[tc] + rng.normal(0, 0.03, k)
            lon[travel] = self._city_lon[tc] + rng.normal(0, 0.03, k)
            a, b = W.city_ip_prefix(tc)
            ip[travel] = W._ip(a, b, rng)
        if pos.any():
            k = int(pos.sum())
            hc = home_city[pos]
            term = me.pos_sorted[
                me.pos_by_city_start[hc] + (rng.random(k) * me.pos_by_city_count[hc]).astype(int)
            ]
            terminal[pos] = term
            merchant[pos] = me.terminal_merchant[term]
            channel[pos] = 2
            dtype[pos] = 3
            device[pos] = me.terminal_ids[term]
            a, b = W.city_ip_prefix(hc)
            ip[pos] = np.array(
                [f"{x}.{y}.250.{z % 250 + 1}" for x, y, z in zip(a, b, term, strict=True)], dtype=object
            )
        if phone.any():
            k = int(phone.sum())
            channel[phone] = 3
            dtype[phone] = 0
            terminal[phone] = me.web_terminal[merchant[phone]]
            device[phone] = np.array(
                [f"{self.config.namespace}CC{m:04d}" for m in merchant[phone]], dtype=object
            )
        pay = np.where(
            rng.random(n) < 0.85, cu.payment[cust], rng.choice(len(W.PAYMENT_METHODS), n, p=W.PAYMENT_SHARE)
        )
        pay = np.where(pos & (pay != 2) & (pay != 3), 0, pay)  # in store: card or wallet
        return Plan(
            t=np.asarray(t, dtype=np.int64),
            cust=cust,
            merchant=merchant,
            terminal=terminal,
            channel=channel,
            dtype=dtype,
            device=device,
            pay=pay,
            ip=ip,
            city=city,
            lat=lat,
            lon=lon,
            mode=_i(n, LEGIT),
            cat=self._merchant_cat[merchant].astype(np.int64),
            q=np.full(n, np.nan),
            scen=_i(n, 0),
        )

    # --- behaviour: fraud -----------------------------------------------------------------------------
    def _victim(self, rng: np.random.Generator, t0: int, avoid_city: int | None = None) -> int:
        """A customer active at t0 with at least a week of history (so deviations are measurable)."""
        cu = self._cus
        ok = (cu.signup_ms < t0 - 7 * DAY_MS) & (cu.churn_ms > t0)
        if avoid_city is not None:
            ok_far = ok & (cu.city != avoid_city)
            ok = ok_far if ok_far.any() else ok
        if not ok.any():
            ok = cu.signup_ms < t0
        if not ok.any():
            ok = np.ones(len(cu.rate), dtype=bool)
        # inverse-CDF draw (rng.choice(p=...) re-validates p: ~10x slower, and this runs per incident)
        cdf = np.cumsum(np.where(ok, cu.rate + 0.01, 0.0))
        return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))

    def _home_city(self, v: int, t_ms: int) -> int:
        cu = self._cus
        return int(cu.new_city[v] if t_ms >= cu.move_ms[v] else cu.city[v])

    def _far_location(self, rng: np.random.Generator, home: int, n: int) -> tuple[np.ndarray, ...]:
        """A fraudster's location: a foreign fraud hub (60%) or a home-market city in another country."""
        foreign = rng.random(n) < 0.6
        hubs = W.N_HOME_CITIES + rng.integers(0, len(W.FRAUD_CITIES), n)
        home_country = W.HOME_CITIES[home][1]
        others = np.array([i for i, c in enumerate(W.HOME_CITIES) if c[1] != home_country])
        city = np.where(foreign, hubs, rng.choice(others, n))
        return self._located(rng, city)

    def _located(self, rng: np.random.Generator, city: np.ndarray) -> tuple[np.ndarray, ...]:
        n = len(city)
        a, b = W.city_ip_prefix(city)
        return (
            city,
            self._city_lat[city] + rng.normal(0, 0.03, n),
            self._city_lon[city] + rng.normal(0, 0.03, n),
            W._ip(a, b, rng),
        )

    def _plan_incident(self, rng: np.random.Generator, scen: str, t0: int) -> Plan:
        cu, me = self._cus, self._mer
        ns = self.config.namespace
        s = SCENARIOS.index(scen) + 1
        if scen == "card_testing":
            # a stolen card number checked with a burst of tiny digital purchases from a new device, abroad
            v = self._victim(rng, t0)
            n = int(rng.integers(5, 21))
            t = t0 + np.cumsum(rng.exponential(40_000, n)).astype(np.int64)
            cand = np.flatnonzero((me.category == W.DIGITAL) | (me.category < 0))
            merchant = _i(n, int(rng.choice(cand)))
            city, lat, lon, ip = self._far_location(rng, self._home_city(v, t0), 1)
            return Plan(
                t,
                _i(n, v),
                merchant,
                me.web_terminal[merchant],
                _i(n, 0),
                _i(n, 0),
                np.repeat(W.device_ids(rng, 1, ns), n),
                _i(n, 0),
                np.repeat(ip, n),
                np.repeat(city, n),
                np.repeat(lat, n),
                np.repeat(lon, n),
                _i(n, SMALL_DIGITAL),
                _i(n, W.DIGITAL),
                rng.uniform(0, 0.3, n),
                _i(n, s),
            )
        if scen == "account_takeover":
            # stolen credentials: new device, far away, a few high-value electronics orders within minutes
            v = self._victim(rng, t0)
            n = int(rng.integers(1, 4))
            t = t0 + np.cumsum(rng.exponential(8 * 60_000, n)).astype(np.int64)
            cand = np.flatnonzero((me.category == W.ELECTRONICS) | (me.category < 0))
            merchant = rng.choice(cand, n)
            mobile = rng.random() < 0.5
            city, lat, lon, ip = self._far_location(rng, self._home_city(v, t0), 1)
            return Plan(
                t,
                _i(n, v),
                merchant,
                np.where(mobile, me.app_terminal[merchant], me.web_terminal[merchant]),
                _i(n, 1 if mobile else 0),
                _i(n, 1 if mobile else 0),
                np.repeat(W.device_ids(rng, 1, ns), n),
                _i(n, int(cu.payment[v])),
                np.repeat(ip, n),
                np.repeat(city, n),
                np.repeat(lat, n),
                np.repeat(lon, n),
                _i(n, HIGH_VALUE),
                _i(n, W.ELECTRONICS),
                rng.uniform(0.75, 1.0, n),
                _i(n, s),
            )
        if scen == "velocity_spree":
            # a cloned card emptied fast: many mid/high-value orders at many merchants within an hour or two
            v = self._victim(rng, t0)
            n = int(rng.integers(6, 17))
            t = t0 + np.cumsum(rng.exponential(6 * 60_000, n)).astype(np.int64)
            # resellable goods: electronics, fashion, home, sports and department stores
            cand = np.flatnonzero(np.isin(me.category, HIGH_TICKET))
            w = me.popularity[cand] / me.popularity[cand].sum()
            merchant = rng.choice(cand, n, p=w)
            # from another city of the victim's country (the card was cloned, the holder is at home)
            home = self._home_city(v, t0)
            same_country = [
                i for i, c in enumerate(W.HOME_CITIES) if c[1] == W.HOME_CITIES[home][1] and i != home
            ]
            if same_country:
                city, lat, lon, ip = self._located(rng, np.array([rng.choice(same_country)]))
            else:
                city, lat, lon, ip = self._far_location(rng, home, 1)
            cat = np.where(me.category[merchant] >= 0, me.category[merchant], W.ELECTRONICS)
            return Plan(
                t,
                _i(n, v),
                merchant,
                me.app_terminal[merchant],
                _i(n, 1),
                _i(n, 1),
                np.repeat(W.device_ids(rng, 1, ns), n),
                _i(n, 0),
                np.repeat(ip, n),
                np.repeat(city, n),
                np.repeat(lat, n),
                np.repeat(lon, n),
                _i(n, HIGH_VALUE),
                cat.astype(np.int64),
                rng.uniform(0.55, 1.0, n),
                _i(n, s),
            )
        if scen == "compromised_terminal":
            # a skimmed / tampered store terminal: for days, cloned cards of customers from elsewhere are
            # charged high amounts at that one terminal
            # high-ticket stores are the ones worth skimming
            pos = np.flatnonzero(me.terminal_kind == 2)
            pricey = pos[np.isin(me.category[me.terminal_merchant[pos]], HIGH_TICKET)]
            pos = pricey if len(pricey) else pos
            term = int(rng.choice(pos)) if len(pos) else int(me.web_terminal[0])
            tcity = int(me.terminal_city[term])
            days = float(rng.uniform(2, 5))
            n = max(2, int(rng.poisson(6 * days)))
            t = np.sort(t0 + rng.uniform(0, days * DAY_MS, n)).astype(np.int64)
            victims = np.array([self._victim(rng, int(x), avoid_city=tcity) for x in t])
            merchant = int(me.terminal_merchant[term])
            mcat = int(me.category[merchant])
            a, b = W.city_ip_prefix(np.array([tcity]))
            ip = f"{a[0]}.{b[0]}.250.{term % 250 + 1}"
            return Plan(
                t,
                victims,
                _i(n, merchant),
                _i(n, term),
                _i(n, 2),
                _i(n, 3),
                np.full(n, me.terminal_ids[term], dtype=object),
                _i(n, 0),
                np.full(n, ip, dtype=object),
                _i(n, tcity),
                self._city_lat[tcity] + rng.normal(0, 0.01, n),
                self._city_lon[tcity] + rng.normal(0, 0.01, n),
                _i(n, HIGH_VALUE),
                _i(n, mcat if mcat >= 0 else W.ELECTRONICS),
                rng.uniform(0.6, 1.0, n),
                _i(n, s),
            )
        if scen == "amount_outlier":
            # one order far above anything the customer ever spends (bulk of expensive goods), at home
            v = self._victim(rng, t0)
            moved = t0 >= cu.move_ms[v]
            merchant = np.array([cu.favourites[v, 0]])
            new_device = rng.random() < 0.5
            device = W.device_ids(rng, 1, ns) if new_device else np.array([cu.devices[v, 0]], dtype=object)
            mcat = int(me.category[merchant[0]])
            cat = mcat if mcat >= 0 else int(np.searchsorted(cu.cat_pref_cdf[v], rng.random()))
            dt = int(cu.device_type[v, 0]) if not new_device else 0
            return Plan(
                np.array([t0]),
                _i(1, v),
                merchant,
                me.web_terminal[merchant],
                _i(1, 0),
                _i(1, dt),
                device,
                _i(1, int(cu.payment[v])),
                np.array([(cu.new_device_ip if moved else cu.device_ip)[v, 0]], dtype=object),
                _i(1, self._home_city(v, t0)),
                np.array([(cu.new_lat if moved else cu.lat)[v]]),
                np.array([(cu.new_lon if moved else cu.lon)[v]]),
                _i(1, BULK),
                _i(1, min(cat, len(W.CATEGORY_NAMES) - 1)),
                rng.uniform(0.8, 1.0, 1),
                _i(1, s),
            )
        raise ValueError(f"unknown fraud scenario {scen!r}")

    # --- rendering ------------------------------------------------------------------------------------
    def _render(
        self, rng: np.random.Generator, p: Plan, prefix: str, as_json: bool = False
    ) -> tuple[list[Any], list[dict[str, Any] | None]]:
        """Plan -> (events, labels). Events are contract dicts, or (key, JSON bytes) with `as_json`."""
        n = len(p)
        if n == 0:
            return [], []
        cu, ca = self._cus, self._cat
        n_cat = len(W.CATEGORY_NAMES)
        n_prod = len(ca.category)
        n_items = np.ones(n, dtype=np.int64)
        legit = p.mode == LEGIT
        n_items[legit] = np.minimum(rng.geometric(0.55, int(legit.sum())), 6)
        hv = p.mode == HIGH_VALUE
        n_items[hv] = 1 + (rng.random(int(hv.sum())) < 0.3)
        ev = np.repeat(np.arange(n), n_items)
        m = len(ev)
        icat = p.cat[ev].copy()
        need = icat < 0
        if need.any():
            cdf = cu.cat_pref_cdf[p.cust[ev[need]]]
            icat[need] = np.minimum((cdf < rng.random(int(need.sum()))[:, None]).sum(axis=1), n_cat - 1)
        lo = ca.cat_start[icat]
        hi = lo + ca.cat_size[icat] - 1
        # legit items: two candidates by popularity, keep the one nearer the customer's price level
        c1 = np.clip(np.searchsorted(ca.pop_cdf, icat + rng.random(m)), lo, hi)
        c2 = np.clip(np.searchsorted(ca.pop_cdf, icat + rng.random(m)), lo, hi)
        target = cu.price_level[p.cust[ev]] + rng.normal(0, 0.15, m)
        prod = np.where(
            np.abs(ca.price_quantile[c1] - target) <= np.abs(ca.price_quantile[c2] - target), c1, c2
        )
        direct = p.mode[ev] != LEGIT
        if direct.any():
            q = np.clip(p.q[ev[direct]] + rng.normal(0, 0.03, int(direct.sum())), 0, 0.999)
            prod[direct] = lo[direct] + (q * ca.cat_size[icat[direct]]).astype(np.int64)
        # planted complements: the partner joins the basket half of the time
        partner = ca.partner[prod]
        add = (p.mode[ev] == LEGIT) & (partner >= 0) & (rng.random(m) < 0.5)
        ev = np.concatenate([ev, ev[add]])
        prod = np.concatenate([prod, partner[add]])
        qty = rng.choice([1, 2, 3], len(ev), p=[0.8, 0.14, 0.06])
        qty[p.mode[ev] != LEGIT] = 1
        # merge repeats of a product within a basket into one line (sorted by event, then product)
        keys, inv = np.unique(ev * n_prod + prod, return_inverse=True)
        qty = np.bincount(inv, weights=qty).astype(np.int64)
        ev, prod = keys // n_prod, keys % n_prod
        cur = cu.currency[p.cust]
        unit = ca.price_cents[prod, cur[ev]]
        promo = (p.mode[ev] == LEGIT) & (rng.random(len(ev)) < 0.08)
        unit = np.where(promo, np.round(unit * 0.85), unit).astype(np.int64)
        unit = np.maximum(unit, 1)
        bulk = p.mode[ev] == BULK
        if bulk.any():
            target_cents = (
                rng.uniform(8, 25, int(bulk.sum()))
                * cu.typical_amount_usd[p.cust[ev[bulk]]]
                * 100
                * W.USD_TO[cur[ev[bulk]]]
            )
            qty[bulk] = np.clip(np.ceil(target_cents / unit[bulk]), 3, 60).astype(np.int64)
        amount = np.bincount(ev, weights=qty * unit, minlength=n).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(ev, minlength=n))])

        pids = self._product_ids[prod].tolist()
        times = [
            s + "+00:00" for s in np.datetime_as_string(p.t.astype("datetime64[ms]"), unit="ms").tolist()
        ]
        tids = [f"{prefix}-{i}" for i in range(self._seq, self._seq + n)]
        self._seq += n
        self._last_tids = tids
        cids = self._customer_ids[p.cust].tolist()
        cols = zip(
            tids,
            cids,
            self._merchant_ids[p.merchant].tolist(),
            self._mer.terminal_ids[p.terminal].tolist(),
            times,
            np.array(W.CURRENCIES, dtype=object)[cur].tolist(),
            (amount / 100).tolist(),
            np.array(W.PAYMENT_METHODS, dtype=object)[p.pay].tolist(),
            np.array(W.CHANNELS, dtype=object)[p.channel].tolist(),
            p.device.tolist(),
            np.array(W.DEVICE_TYPES, dtype=object)[p.dtype].tolist(),
            p.ip.tolist(),
            self._city_countries[p.city].tolist(),
            self._city_names[p.city].tolist(),
            np.round(np.clip(p.lat, -90, 90), 4).tolist(),
            np.round(np.clip(p.lon, -180, 180), 4).tolist(),
            offsets[:-1].tolist(),
            offsets[1:].tolist(),
            strict=True,
        )
        events: list[Any]
        if as_json:
            # The producer's fast path: the JSON text directly, without building dicts (about half the
            # cost of dict + orjson). Safe without escaping because every string here is generated from
            # [A-Za-z0-9 ._:+-] (ids, enums, ISO times, IPs, ASCII city names); a test checks that it
            # parses to exactly the dict rendering.
            items = [
                f'{{"product_id":"{a}","quantity":{b},"unit_price":{c!r}}}'
                for a, b, c in zip(pids, qty.tolist(), (unit / 100).tolist(), strict=True)
            ]
            events = [
                (
                    cid.encode(),
                    (
                        f'{{"schema_version":1,"transaction_id":"{tid}","customer_id":"{cid}",'
                        f'"merchant_id":"{mid}","terminal_id":"{term}","event_time":"{ts}",'
                        f'"currency":"{curr}","amount":{amt!r},"payment_method":"{pm}","channel":"{ch}",'
                        f'"device_id":"{dev}","device_type":"{dt}","ip_address":"{ip}","ip_country":"{ic}",'
                        f'"ip_city":"{icity}","ip_lat":{la!r},"ip_lon":{lo_!r},'
                        f'"line_items":[{",".join(items[a:b])}]}}'
                    ).encode(),
                )
                for tid, cid, mid, term, ts, curr, amt, pm, ch, dev, dt, ip, ic, icity, la, lo_, a, b in cols
            ]
        else:
            items = [
                {"product_id": a, "quantity": b, "unit_price": c}
                for a, b, c in zip(pids, qty.tolist(), (unit / 100).tolist(), strict=True)
            ]
            events = [
                {
                    "schema_version": 1,
                    "transaction_id": tid,
                    "customer_id": cid,
                    "merchant_id": mid,
                    "terminal_id": term,
                    "event_time": ts,
                    "currency": curr,
                    "amount": amt,
                    "payment_method": pm,
                    "channel": ch,
                    "device_id": dev,
                    "device_type": dt,
                    "ip_address": ip,
                    "ip_country": ic,
                    "ip_city": icity,
                    "ip_lat": la,
                    "ip_lon": lo_,
                    "line_items": items[a:b],
                }
                for tid, cid, mid, term, ts, curr, amt, pm, ch, dev, dt, ip, ic, icity, la, lo_, a, b in cols
            ]
        labels: list[dict[str, Any] | None] = [None] * n
        fraud = np.flatnonzero(p.scen > 0)
        if len(fraud):
            delay = (1.0 + rng.gamma(2.0, 3.5, len(fraud))) * DAY_MS
            reported = (p.t[fraud] + delay.astype(np.int64)).astype("datetime64[ms]")
            rep = np.datetime_as_string(reported, unit="ms").tolist()
            charged = rng.random(len(fraud)) < self.config.chargeback_share
            for k, i in enumerate(fraud.tolist()):
                scen = SCENARIOS[p.scen[i] - 1]
                self.ground_truth[tids[i]] = scen
                if charged[k]:
                    labels[i] = {
                        "schema_version": 1,
                        "transaction_id": tids[i],
                        "customer_id": cids[i],
                        "reported_at": rep[k] + "+00:00",
                        "fraud_scenario": scen,
                        "amount": int(amount[i]) / 100,
                    }
        return events, labels


def _incident_mix() -> np.ndarray:
    w = np.array([INCIDENTS_PER_10K[s] for s in SCENARIOS])
    return w / w.sum()
