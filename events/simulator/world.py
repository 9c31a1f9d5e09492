"""The simulated shop's world: geography, catalog, customers, merchants and terminals.

Everything here is reference data (state, not events): built once per seed from numpy random streams,
returned both as pandas DataFrames (the public view, and what lands in Postgres `reference.*`) and as
flat numpy arrays the event engine indexes without Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

# --- geography -------------------------------------------------------------------------------------
# (city, country, lat, lon, share of customers). Home cities of customers and merchants.
HOME_CITIES: list[tuple[str, str, float, float, float]] = [
    ("New York", "US", 40.71, -74.01, 8.0),
    ("Los Angeles", "US", 34.05, -118.24, 5.0),
    ("Chicago", "US", 41.88, -87.63, 4.0),
    ("Houston", "US", 29.76, -95.37, 3.0),
    ("Seattle", "US", 47.61, -122.33, 2.0),
    ("Miami", "US", 25.76, -80.19, 2.0),
    ("Boston", "US", 42.36, -71.06, 2.0),
    ("Toronto", "CA", 43.65, -79.38, 3.0),
    ("Vancouver", "CA", 49.28, -123.12, 1.5),
    ("Montreal", "CA", 45.50, -73.57, 1.5),
    ("London", "GB", 51.51, -0.13, 6.0),
    ("Manchester", "GB", 53.48, -2.24, 2.0),
    ("Edinburgh", "GB", 55.95, -3.19, 1.0),
    ("Berlin", "DE", 52.52, 13.40, 3.0),
    ("Munich", "DE", 48.14, 11.58, 2.0),
    ("Hamburg", "DE", 53.55, 9.99, 1.5),
    ("Paris", "FR", 48.86, 2.35, 4.0),
    ("Lyon", "FR", 45.76, 4.84, 1.5),
    ("Madrid", "ES", 40.42, -3.70, 2.0),
    ("Barcelona", "ES", 41.39, 2.17, 2.0),
    ("Milan", "IT", 45.46, 9.19, 2.0),
    ("Rome", "IT", 41.90, 12.50, 2.0),
    ("Amsterdam", "NL", 52.37, 4.90, 1.5),
]
# Where fraudsters connect from in the foreign-origin scenarios (never a customer's home).
FRAUD_CITIES: list[tuple[str, str, float, float]] = [
    ("Lagos", "NG", 6.52, 3.38),
    ("Bucharest", "RO", 44.43, 26.10),
    ("Jakarta", "ID", -6.21, 106.85),
    ("Sao Paulo", "BR", -23.55, -46.63),
    ("Manila", "PH", 14.60, 120.98),
    ("Ho Chi Minh City", "VN", 10.82, 106.63),
]
ALL_CITIES = [c[:4] for c in HOME_CITIES] + FRAUD_CITIES
N_HOME_CITIES = len(HOME_CITIES)

CURRENCIES = ["USD", "EUR", "GBP", "CAD"]  # order = column order of price tables
CURRENCY_OF_COUNTRY = {"US": "USD", "CA": "CAD", "GB": "GBP"}  # everything else in the list: EUR
USD_TO = np.array(
    [1.0, 0.92, 0.79, 1.37]
)  # fixed FX: prices are listed in USD, charged in the card's currency

# --- catalog ---------------------------------------------------------------------------------------
# category -> (median list price in USD, log-sd of price, brands, product nouns, share of catalog)
CATEGORIES: dict[str, tuple[float, float, list[str], list[str], float]] = {
    "electronics": (
        160.0,
        0.9,
        ["Voltix", "Nexa", "Orbitron", "Sonique", "Kaido"],
        ["Headphones", "Smartphone", "Tablet", "Speaker", "Smartwatch", "Camera", "Charger", "Monitor"],
        0.14,
    ),
    "fashion": (
        45.0,
        0.6,
        ["Aurelle", "Northline", "Modo", "Kestrel", "Vela"],
        ["Jacket", "Sneakers", "Jeans", "Dress", "Shirt", "Scarf", "Boots", "Hoodie"],
        0.16,
    ),
    "home": (
        55.0,
        0.8,
        ["Hearth", "Lumen", "Oakridge", "Nido"],
        ["Lamp", "Cookware Set", "Throw Blanket", "Vase", "Knife Set", "Coffee Maker", "Rug"],
        0.12,
    ),
    "beauty": (
        18.0,
        0.5,
        ["Lumiere", "Purea", "Solenne", "Verdant"],
        ["Shampoo", "Conditioner", "Face Serum", "Moisturizer", "Lipstick", "Perfume"],
        0.1,
    ),
    "grocery": (
        6.0,
        0.6,
        ["FarmFresh", "Golden Mill", "Blue Harbor", "Terra"],
        ["Coffee Beans", "Olive Oil", "Pasta", "Tea", "Chocolate", "Granola", "Honey"],
        0.14,
    ),
    "sports": (
        50.0,
        0.8,
        ["Stride", "Apex", "Summit", "Flux"],
        ["Running Shoes", "Yoga Mat", "Dumbbells", "Bike Helmet", "Tent", "Water Bottle"],
        0.1,
    ),
    "toys": (
        25.0,
        0.6,
        ["Brickly", "Wonderbox", "Tiny Tots"],
        ["Building Set", "Puzzle", "Plush Bear", "Board Game", "RC Car"],
        0.08,
    ),
    "books": (
        15.0,
        0.4,
        ["Inkwell Press", "Meridian", "Folio"],
        ["Novel", "Cookbook", "Biography", "Travel Guide", "Comic"],
        0.1,
    ),
    "digital": (
        3.0,
        0.6,
        ["PlayVault", "StreamOn", "AppWorks"],
        ["Game Credit", "App Subscription", "E-Gift Card", "Music Album", "Ringtone Pack"],
        0.06,
    ),
}
CATEGORY_NAMES = list(CATEGORIES)
DIGITAL = CATEGORY_NAMES.index("digital")
ELECTRONICS = CATEGORY_NAMES.index("electronics")
FASHION = CATEGORY_NAMES.index("fashion")
COLORS = ["black", "white", "red", "blue", "green", "grey", "beige", "navy"]
ADJECTIVES = ["Classic", "Pro", "Lite", "Max", "Eco", "Smart", "Urban", "Essential", "Premium", "Mini"]

PAYMENT_METHODS = ["card", "paypal", "apple_pay", "google_pay", "bank_transfer", "gift_card"]
PAYMENT_SHARE = np.array([0.58, 0.16, 0.1, 0.08, 0.03, 0.05])
CHANNELS = ["web", "mobile_app", "pos", "phone"]
DEVICE_TYPES = ["desktop", "mobile", "tablet", "pos_terminal"]
TERMINAL_KINDS = ["web_checkout", "mobile_sdk", "pos"]
MERCHANT_NAMES = ["Bazaar", "Corner", "Depot", "Emporium", "Outlet", "Market", "House", "Store", "Hub", "Co"]
FIRST_NAMES = [
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Yara",
]


def _attributes(rng: np.random.Generator, category: str) -> dict[str, object]:
    """Category-specific product attributes (what content-based recommendations compare)."""
    color = COLORS[rng.integers(len(COLORS))]
    if category == "electronics":
        return {
            "color": color,
            "warranty_years": int(rng.choice([1, 2, 3])),
            "wireless": bool(rng.random() < 0.6),
        }
    if category == "fashion":
        return {
            "color": color,
            "size": str(rng.choice(["XS", "S", "M", "L", "XL"])),
            "material": str(rng.choice(["cotton", "wool", "denim", "leather", "polyester"])),
        }
    if category == "home":
        return {
            "color": color,
            "material": str(rng.choice(["wood", "ceramic", "steel", "glass", "linen"])),
            "room": str(rng.choice(["kitchen", "living", "bedroom", "bath"])),
        }
    if category == "beauty":
        return {
            "skin_type": str(rng.choice(["all", "dry", "oily", "sensitive"])),
            "volume_ml": int(rng.choice([30, 50, 100, 250])),
        }
    if category == "grocery":
        return {"organic": bool(rng.random() < 0.35), "weight_g": int(rng.choice([250, 500, 1000]))}
    if category == "sports":
        return {
            "color": color,
            "sport": str(rng.choice(["running", "yoga", "cycling", "camping", "fitness"])),
        }
    if category == "toys":
        return {"age_range": str(rng.choice(["0-3", "3-6", "6-12", "12+"]))}
    if category == "books":
        return {
            "format": str(rng.choice(["paperback", "hardcover", "ebook"])),
            "genre": str(rng.choice(["fiction", "food", "history", "travel", "comics"])),
        }
    return {"delivery": "instant", "platform": str(rng.choice(["ios", "android", "pc", "any"]))}


@dataclass
class Catalog:
    products: pd.DataFrame
    category: np.ndarray  # int per product (products are sorted by category, then price)
    price_cents: np.ndarray  # (n_products, len(CURRENCIES)) int64 list price per currency
    price_quantile: np.ndarray  # position of the product's price within its category, in [0, 1)
    cat_start: np.ndarray  # first product index of each category
    cat_size: np.ndarray
    pop_cdf: np.ndarray  # category c's popularity CDF occupies the interval [c, c + 1)
    partner: np.ndarray  # planted co-purchase partner (-1 when none)
    planted_pairs: list[tuple[str, str]]


def build_catalog(rng: np.random.Generator, n_products: int, ns: str) -> Catalog:
    n_cat = len(CATEGORY_NAMES)
    if n_products < 2 * n_cat:
        raise ValueError(f"n_products must be at least {2 * n_cat} (two per category)")
    shares = np.array([CATEGORIES[c][4] for c in CATEGORY_NAMES])
    sizes = np.maximum(2, np.floor(shares / shares.sum() * n_products)).astype(int)
    sizes[np.argmax(sizes)] += n_products - sizes.sum()
    rows = []
    for ci, cname in enumerate(CATEGORY_NAMES):
        median, sigma, brands, nouns, _ = CATEGORIES[cname]
        prices = np.round(median * np.exp(rng.normal(0.0, sigma, sizes[ci])), 2)
        prices = np.clip(prices, 0.49, 4999.0)
        for price in np.sort(prices):
            brand = brands[rng.integers(len(brands))]
            name = f"{brand} {ADJECTIVES[rng.integers(len(ADJECTIVES))]} {nouns[rng.integers(len(nouns))]}"
            rows.append((cname, brand, name, float(price), _attributes(rng, cname)))
    n = len(rows)
    products = pd.DataFrame(rows, columns=["category", "brand", "name", "price", "attributes"])
    products.insert(0, "product_id", [f"{ns}P{i:05d}" for i in range(n)])
    products["currency"] = "USD"
    category = np.repeat(np.arange(n_cat), sizes)
    cat_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    within = np.arange(n) - cat_start[category]
    price_quantile = (within + 0.5) / sizes[category]
    # Zipf-like popularity within each category, independent of price, so a few items sell a lot
    rank = np.concatenate([rng.permutation(s) for s in sizes])
    popularity = 1.0 / (rank + 1.0) ** 0.9
    pop_cdf = np.empty(n)
    for ci in range(n_cat):
        sl = slice(cat_start[ci], cat_start[ci] + sizes[ci])
        w = np.cumsum(popularity[sl])
        pop_cdf[sl] = ci + w / w[-1]
    pop_cdf[cat_start + sizes - 1] = np.arange(n_cat) + 1.0 - 1e-12
    products["popularity"] = np.round(popularity, 5)
    # planted complements within a category (phone + case, shampoo + conditioner ...): one partner each
    partner = np.full(n, -1)
    pairs: list[tuple[str, str]] = []
    n_pairs = max(n_cat, n // 12)
    for k in range(n_pairs):
        ci = k % n_cat if k < n_cat else rng.integers(n_cat)
        free = np.flatnonzero((category == ci) & (partner < 0))
        if len(free) < 2:
            continue
        # anchor among the more popular items, so the pair has support for frequently-bought-together
        weights = popularity[free] / popularity[free].sum()
        a = rng.choice(free, p=weights)
        b = rng.choice(free[free != a])
        partner[a], partner[b] = b, a
        pairs.append((products.product_id[a], products.product_id[b]))
    return Catalog(
        products=products,
        category=category,
        price_cents=np.round(products.price.to_numpy()[:, None] * USD_TO[None, :] * 100).astype(np.int64),
        price_quantile=price_quantile,
        cat_start=cat_start,
        cat_size=sizes,
        pop_cdf=pop_cdf,
        partner=partner,
        planted_pairs=pairs,
    )


@dataclass
class Merchants:
    merchants: pd.DataFrame
    terminals: pd.DataFrame
    category: np.ndarray  # int category, -1 = department store (sells every category)
    city: np.ndarray
    popularity: np.ndarray
    web_terminal: np.ndarray  # per merchant
    app_terminal: np.ndarray
    terminal_merchant: np.ndarray
    terminal_city: np.ndarray
    terminal_kind: np.ndarray
    pos_by_city_start: np.ndarray  # pos terminals sorted by city: [start, start + count)
    pos_by_city_count: np.ndarray
    pos_sorted: np.ndarray
    terminal_ids: np.ndarray  # object array of ids


def build_merchants(rng: np.random.Generator, n_merchants: int, ns: str) -> Merchants:
    if n_merchants < 3:
        raise ValueError("n_merchants must be at least 3")
    n_cat = len(CATEGORY_NAMES)
    city_w = np.array([c[4] for c in HOME_CITIES])
    city = rng.choice(N_HOME_CITIES, n_merchants, p=city_w / city_w.sum())
    # 25% department stores; the rest specialise, covering every category before repeating
    category = np.where(rng.random(n_merchants) < 0.25, -1, np.arange(n_merchants) % n_cat)
    category[:n_cat] = np.arange(min(n_cat, n_merchants))
    popularity = rng.pareto(1.5, n_merchants) + 1.0
    has_stores = rng.random(n_merchants) < 0.6
    rows, t_rows = [], []
    for m in range(n_merchants):
        mid = f"{ns}M{m:04d}"
        cat = "department_store" if category[m] < 0 else CATEGORY_NAMES[category[m]]
        cname, country = HOME_CITIES[city[m]][0], HOME_CITIES[city[m]][1]
        word = MERCHANT_NAMES[rng.integers(len(MERCHANT_NAMES))]
        rows.append(
            (mid, f"{cname} {cat.replace('_', ' ').title()} {word}", cat, country, cname, bool(has_stores[m]))
        )
        t_rows.append((m, 0, city[m]))
        t_rows.append((m, 1, city[m]))
        if has_stores[m]:
            # stores in the home city and possibly other cities of the same country
            same_country = [i for i, c in enumerate(HOME_CITIES) if c[1] == country]
            store_cities = {int(city[m])} | {int(c) for c in rng.choice(same_country, rng.integers(0, 3))}
            for sc in sorted(store_cities):
                for _ in range(int(rng.integers(1, 3))):
                    t_rows.append((m, 2, sc))
    merchants = pd.DataFrame(
        rows, columns=["merchant_id", "name", "category", "country", "city", "has_stores"]
    )
    t_merchant = np.array([r[0] for r in t_rows])
    t_kind = np.array([r[1] for r in t_rows])
    t_city = np.array([r[2] for r in t_rows])
    terminal_ids = np.array([f"{ns}T{i:05d}" for i in range(len(t_rows))], dtype=object)
    terminals = pd.DataFrame(
        {
            "terminal_id": terminal_ids,
            "merchant_id": merchants.merchant_id.to_numpy()[t_merchant],
            "kind": np.array(TERMINAL_KINDS)[t_kind],
            "city": [HOME_CITIES[c][0] for c in t_city],
            "country": [HOME_CITIES[c][1] for c in t_city],
            "lat": [HOME_CITIES[c][2] for c in t_city],
            "lon": [HOME_CITIES[c][3] for c in t_city],
        }
    )
    web = np.flatnonzero(t_kind == 0)
    app = np.flatnonzero(t_kind == 1)
    pos = np.flatnonzero(t_kind == 2)
    pos_sorted = pos[np.argsort(t_city[pos], kind="stable")]
    counts = np.bincount(t_city[pos], minlength=N_HOME_CITIES)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return Merchants(
        merchants=merchants,
        terminals=terminals,
        category=category,
        city=city,
        popularity=popularity / popularity.sum(),
        web_terminal=web[np.argsort(t_merchant[web])],
        app_terminal=app[np.argsort(t_merchant[app])],
        terminal_merchant=t_merchant,
        terminal_city=t_city,
        terminal_kind=t_kind,
        pos_by_city_start=starts,
        pos_by_city_count=counts,
        pos_sorted=pos_sorted,
        terminal_ids=terminal_ids,
    )


@dataclass
class Customers:
    customers: pd.DataFrame
    rate: np.ndarray  # purchases per day while active (gamma-distributed across customers)
    signup_ms: np.ndarray
    churn_ms: np.ndarray  # when the customer silently stops buying (exponential lifetime)
    city: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    tz_hours: np.ndarray
    currency: np.ndarray  # index into CURRENCIES
    cat_pref_cdf: np.ndarray  # (n, n_categories) cumulative category preference
    price_level: np.ndarray  # preferred price quantile within a category
    payment: np.ndarray  # preferred payment method index
    devices: np.ndarray  # (n, 3) object: device ids (only the first n_devices are real)
    device_type: np.ndarray  # (n, 3) int
    device_ip: np.ndarray  # (n, 3) object: home IP of each device
    n_devices: np.ndarray
    favourites: np.ndarray  # (n, 3) merchant indices
    typical_amount_usd: np.ndarray
    # a few customers move house once: from move_ms on they live (and shop, and connect) in new_city
    move_ms: np.ndarray  # int64; far future for customers who never move
    new_city: np.ndarray
    new_lat: np.ndarray
    new_lon: np.ndarray
    new_device_ip: np.ndarray  # (n, 3) object: the devices' IPs after the move

    def home_at(
        self, cust: np.ndarray, t_ms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(city, lat, lon, moved) of customers `cust` at times `t_ms` (vectorised)."""
        moved = t_ms >= self.move_ms[cust]
        city = np.where(moved, self.new_city[cust], self.city[cust])
        lat = np.where(moved, self.new_lat[cust], self.lat[cust])
        lon = np.where(moved, self.new_lon[cust], self.lon[cust])
        return city, lat, lon, moved


def _ip(prefix_a: np.ndarray, prefix_b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    c = rng.integers(0, 256, len(prefix_a))
    d = rng.integers(1, 255, len(prefix_a))
    return np.array(
        [f"{a}.{b}.{x}.{y}" for a, b, x, y in zip(prefix_a, prefix_b, c, d, strict=True)], dtype=object
    )


def city_ip_prefix(city: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A fixed /16 per city, so an IP address and its geolocation agree."""
    city = np.asarray(city)
    return 20 + (city * 7) % 200, (city * 37 + 11) % 256


def device_ids(rng: np.random.Generator, n: int, ns: str) -> np.ndarray:
    raw = rng.integers(0, 2**48, n)
    return np.array([f"{ns}D{x:012x}" for x in raw], dtype=object)


def build_customers(
    rng: np.random.Generator,
    n: int,
    start_ms: int,
    end_ms: int,
    catalog: Catalog,
    merchants: Merchants,
    ns: str,
    purchase_rate: float = 1.0,
) -> Customers:
    day = 86_400_000
    n_cat = len(CATEGORY_NAMES)
    # Pareto/NBD: purchase rate ~ Gamma(shape 0.7) across customers (few heavy buyers, a long rare tail);
    # lifetime ~ Exponential with a gamma-distributed dropout rate (median ~230 days, a long loyal tail).
    rate = rng.gamma(0.7, 0.08 / 0.7, n) * purchase_rate
    dropout = rng.gamma(1.5, (1 / 260) / 1.5, n)
    lifetime_days = np.minimum(rng.exponential(1.0 / dropout), 20 * 365)
    # 30% joined during the year before the window (the established base), 70% join during it (cohorts)
    span = end_ms - start_ms
    before = rng.random(n) < 0.3
    signup = np.where(
        before,
        start_ms - rng.uniform(0, 365 * day, n),
        start_ms + span * rng.beta(1.2, 1.0, n),  # slight growth: more signups later
    ).astype(np.int64)
    churn = signup + (lifetime_days * day).astype(np.int64)
    city_w = np.array([c[4] for c in HOME_CITIES])
    city = rng.choice(N_HOME_CITIES, n, p=city_w / city_w.sum())
    lat = np.array([c[2] for c in HOME_CITIES])[city] + rng.normal(0, 0.04, n)
    lon = np.array([c[3] for c in HOME_CITIES])[city] + rng.normal(0, 0.04, n)
    tz_hours = np.round(np.array([c[3] for c in HOME_CITIES])[city] / 15.0)
    country = np.array([c[1] for c in HOME_CITIES])[city]
    currency = np.array([CURRENCIES.index(CURRENCY_OF_COUNTRY.get(c, "EUR")) for c in country])
    # category taste: sparse Dirichlet (most customers stick to 2-3 categories; what item-item CF picks up)
    pref = rng.dirichlet(np.full(n_cat, 0.35), n)
    cat_pref_cdf = np.cumsum(pref, axis=1)
    cat_pref_cdf[:, -1] = 1.0
    price_level = rng.beta(2.0, 2.0, n)
    payment = rng.choice(len(PAYMENT_METHODS), n, p=PAYMENT_SHARE)
    n_devices = rng.choice([1, 2, 3], n, p=[0.45, 0.4, 0.15])
    dev = device_ids(rng, n * 3, ns).reshape(n, 3)
    # device 0 is the main device: desktop for ~45%, phone for the rest
    dtype = rng.choice([0, 1, 2], (n, 3), p=[0.35, 0.5, 0.15])
    pa, pb = city_ip_prefix(np.repeat(city, 3))
    dev_ip = _ip(pa, pb, rng).reshape(n, 3)
    # favourite merchants: popularity x taste for the merchant's category (Gumbel top-3)
    m_cat = merchants.category
    taste = np.where(m_cat[None, :] >= 0, pref[:, np.maximum(m_cat, 0)], 0.35)
    domestic = country[:, None] == merchants.merchants.country.to_numpy()[None, :]
    score = np.log(merchants.popularity[None, :] * (taste + 0.02) * np.where(domestic, 3.0, 1.0))
    score += rng.gumbel(size=score.shape)
    k = min(3, score.shape[1])
    favourites = np.argsort(-score, axis=1)[:, :k]
    if k < 3:
        favourites = np.pad(favourites, ((0, 0), (0, 3 - k)), mode="edge")
    # typical basket value: price at the customer's level in each category, weighted by taste
    cat_typical = np.empty((n, n_cat))
    prices = catalog.products.price.to_numpy()
    for ci in range(n_cat):
        idx = catalog.cat_start[ci] + np.minimum(
            (price_level * catalog.cat_size[ci]).astype(int), catalog.cat_size[ci] - 1
        )
        cat_typical[:, ci] = prices[idx]
    typical = (pref * cat_typical).sum(axis=1) * 1.9  # ~1.9 items per basket
    annual_value = rate * 365 * typical
    q = np.quantile(annual_value, [0.5, 0.8, 0.95])
    tier = np.select(
        [annual_value >= q[2], annual_value >= q[1], annual_value >= q[0]],
        ["platinum", "gold", "silver"],
        "bronze",
    )
    first = np.array(FIRST_NAMES)[rng.integers(len(FIRST_NAMES), size=n)]
    # 5% move once, at a time spread over their life up to 90 days past the window (later runs, e.g. a live
    # run days after a history, see the move): the address change is what an SCD2 snapshot records
    movers = rng.random(n) < 0.05
    move_at = signup + rng.uniform(0.1, 1.0, n) * np.minimum(churn - signup, end_ms + 90 * day - signup)
    never = np.iinfo(np.int64).max
    move_ms = np.where(movers & (move_at > signup), move_at.astype(np.int64), never)
    options = [
        [j for j, c in enumerate(HOME_CITIES) if c[1] == h[1] and j != i] or [i]
        for i, h in enumerate(HOME_CITIES)
    ]
    pick = rng.random(n)
    same_country_pick = np.array(
        [options[c][int(u * len(options[c]))] for c, u in zip(city, pick, strict=True)]
    )
    new_city = np.where(rng.random(n) < 0.7, same_country_pick, rng.integers(0, N_HOME_CITIES, n))
    new_city = np.where(new_city == city, (city + 1) % N_HOME_CITIES, new_city)
    new_lat = np.array([c[2] for c in HOME_CITIES])[new_city] + rng.normal(0, 0.04, n)
    new_lon = np.array([c[3] for c in HOME_CITIES])[new_city] + rng.normal(0, 0.04, n)
    na, nb = city_ip_prefix(np.repeat(new_city, 3))
    new_dev_ip = _ip(na, nb, rng).reshape(n, 3)
    customers = pd.DataFrame(
        {
            "customer_id": [f"{ns}C{i:06d}" for i in range(n)],
            "first_name": first,
            "signup_at": pd.to_datetime(signup, unit="ms", utc=True),
            "home_country": country,
            "home_city": np.array([c[0] for c in HOME_CITIES])[city],
            "home_lat": np.round(lat, 4),
            "home_lon": np.round(lon, 4),
            "currency": np.array(CURRENCIES)[currency],
            "value_tier": tier,
            "preferred_payment": np.array(PAYMENT_METHODS)[payment],
            "preferred_channel": np.where(dtype[:, 0] == 0, "web", "mobile_app"),
            "n_devices": n_devices,
            "favourite_category": np.array(CATEGORY_NAMES)[pref.argmax(axis=1)],
            # simulation ground truth (behaviour parameters), not CRM data: kept out of Postgres
            "purchase_rate_per_day": rate,
            "churn_at": pd.to_datetime(churn, unit="ms", utc=True),
            "price_level": price_level,
            "moves_at": pd.to_datetime(
                np.where(move_ms < end_ms + 366 * day, move_ms, 0), unit="ms", utc=True
            ).where(move_ms < end_ms + 366 * day),
            "moves_to": np.where(move_ms < never, np.array([c[0] for c in HOME_CITIES])[new_city], None),
        }
    )
    return Customers(
        customers=customers,
        rate=rate,
        signup_ms=signup,
        churn_ms=churn,
        city=city,
        lat=lat,
        lon=lon,
        tz_hours=tz_hours,
        currency=currency,
        cat_pref_cdf=cat_pref_cdf,
        price_level=price_level,
        payment=payment,
        devices=dev,
        device_type=dtype,
        device_ip=dev_ip,
        n_devices=n_devices,
        favourites=favourites,
        typical_amount_usd=typical,
        move_ms=move_ms,
        new_city=new_city,
        new_lat=new_lat,
        new_lon=new_lon,
        new_device_ip=new_dev_ip,
    )


def utc_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError("start must be a timezone-aware datetime")
    return int(ts.astimezone(UTC).timestamp() * 1000)
