"""Recommendations: item-item collaborative filtering, content similarity, frequently-bought-together rules,
a blended personalized top-N per customer, and an offline evaluation against a popularity baseline.

All functions take the canonical lines frame (see analytics.io) and return DataFrames.

- item-item CF: cosine between product columns of the implicit, binary customer x product matrix (scipy sparse);
- content: cosine between product feature vectors (category, brand, price band, attribute key=value tokens);
- frequently-bought-together: association rules between products in the same order (mlxtend fpgrowth +
  association_rules; support, confidence, lift);
- personalized: for each customer a weighted blend of CF (from their whole history), content (same) and FBT
  (from their last basket), each scaled to [0, 1] per customer; the items of the last basket are left out;
  slots left empty (cold start, tiny histories) are filled with what is popular in the customer's RFM segment.
"""

from __future__ import annotations

import ast
import json
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mlxtend.frequent_patterns import association_rules, fpgrowth
from sklearn.preprocessing import normalize

from analytics.io import compact_ids


@dataclass(frozen=True)
class RecConfig:
    top_n: int = 10
    neighbours: int = 20  # similar items kept per product (tables and blending)
    fbt_min_support: float = 0.0005  # share of orders; also at least fbt_min_count orders
    fbt_min_count: int = 5
    fbt_min_confidence: float = 0.01
    fbt_miner: str = "pairs"  # "pairs" (sparse co-occurrence, exact) or "fpgrowth" (mlxtend)
    w_cf: float = 0.5
    w_fbt: float = 0.3
    w_content: float = 0.2
    max_eval_customers: int = 5000
    seed: int = 7


@dataclass
class Index:
    """Dense integer ids for customers and products."""

    customers: pd.Index
    products: pd.Index

    @classmethod
    def build(cls, lines: pd.DataFrame, catalog: pd.Series | None = None) -> Index:
        prods = pd.Index(
            sorted(set(lines["product_id"].unique()) | set(catalog if catalog is not None else []))
        )
        return cls(pd.Index(sorted(lines["customer_id"].unique())), prods)


def interaction_matrix(lines: pd.DataFrame, idx: Index) -> sp.csr_matrix:
    """Binary customer x product matrix (1 = bought at least once)."""
    rows = idx.customers.get_indexer(lines["customer_id"])
    cols = idx.products.get_indexer(lines["product_id"])
    m = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(idx.customers), len(idx.products))
    )
    m.data[:] = 1.0  # duplicates were summed
    return m


def _top_k_sparse(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries per row (diagonal removed): the neighbour lists."""
    sim = sim.tocsr().astype(np.float32)
    sim.setdiag(0)
    sim.eliminate_zeros()
    rows, cols, vals = [], [], []
    for i in range(sim.shape[0]):
        start, end = sim.indptr[i], sim.indptr[i + 1]
        if start == end:
            continue
        d, c = sim.data[start:end], sim.indices[start:end]
        if len(d) > k:
            keep = np.argpartition(-d, k - 1)[:k]
            d, c = d[keep], c[keep]
        rows.append(np.full(len(d), i))
        cols.append(c)
        vals.append(d)
    if not rows:
        return sp.csr_matrix(sim.shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=sim.shape
    )


def item_item_matrix(interactions: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Cosine similarity between product columns, top-k per product."""
    cols = normalize(interactions.tocsc().astype(np.float32), axis=0)
    return _top_k_sparse((cols.T @ cols).tocsr(), k)


def _neighbour_table(sim: sp.csr_matrix, idx: Index, score_name: str = "score") -> pd.DataFrame:
    coo = sim.tocoo()
    df = pd.DataFrame(
        {
            "product_id": idx.products[coo.row],
            "similar_product_id": idx.products[coo.col],
            score_name: np.round(coo.data.astype(float), 6),
        }
    )
    df = df[df[score_name] > 0].sort_values(
        ["product_id", score_name, "similar_product_id"], ascending=[True, False, True]
    )
    df["rank"] = df.groupby("product_id", observed=True).cumcount() + 1
    return df.reset_index(drop=True)


def content_features(products: pd.DataFrame, idx: Index) -> sp.csr_matrix:
    """Product x token matrix: category/brand/other low-cardinality columns, price band, attribute key=value."""
    prods = products.drop_duplicates("product_id").set_index("product_id").reindex(idx.products)
    tokens: list[list[str]] = [[] for _ in range(len(prods))]
    for col in prods.columns:
        series = prods[col]
        if col == "price" or col.endswith("_price"):
            if col != "price":
                continue
            num = pd.to_numeric(series, errors="coerce")
            if num.notna().sum() >= 5:
                band = pd.qcut(num.rank(method="first"), 5, labels=False)
                for i, b in enumerate(band):
                    if pd.notna(b):
                        tokens[i].append(f"price_band={int(b) + 1}")
            continue
        if col in ("attributes", "attrs", "tags") or series.map(lambda v: isinstance(v, dict)).any():
            for i, v in enumerate(series):
                for key, val in _attr_items(v):
                    tokens[i].append(f"attr:{key}={val}")
            continue
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
            continue
        # numbers read from a CSV arrive as text: other numeric columns (scores, counts) are not attributes
        if pd.to_numeric(series.dropna(), errors="coerce").notna().all():
            continue
        s = series.astype("string")
        # names, descriptions and ids are unique per product: they say nothing about similarity
        if s.nunique() > max(0.5 * len(s), 50) or s.nunique() <= 1:
            continue
        for i, v in enumerate(s):
            if pd.notna(v):
                tokens[i].append(f"{col}={v}")
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, toks in enumerate(tokens):
        # sorted: the column order sets float summation order, so ties must not depend on the hash seed
        for t in sorted(set(toks)):
            rows.append(i)
            cols.append(vocab.setdefault(t, len(vocab)))
    f = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(idx.products), max(len(vocab), 1))
    )
    # rarer tokens (a brand) say more than common ones (a big category): idf weighting
    df_counts = np.asarray((f > 0).sum(axis=0)).ravel()
    idf = np.log((1 + f.shape[0]) / (1 + df_counts)) + 1.0
    return normalize(f @ sp.diags(idf.astype(np.float32)), axis=1)


def _attr_items(value: object) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [(str(k), str(v)) for k, v in value.items()]
    if isinstance(value, str) and value.startswith("{"):
        for parse in (json.loads, ast.literal_eval):  # JSON, or a Python dict written by pandas to CSV
            try:
                return [(str(k), str(v)) for k, v in parse(value).items()]
            except (ValueError, SyntaxError, AttributeError):
                continue
    return []


def content_matrix(products: pd.DataFrame, idx: Index, k: int) -> sp.csr_matrix:
    f = content_features(products, idx)
    return _top_k_sparse((f @ f.T).tocsr(), k)


# ------------------------------------------------------------------------------------------------ FBT


def frequently_bought_together(lines: pd.DataFrame, idx: Index, cfg: RecConfig) -> pd.DataFrame:
    """Pair rules A -> B between products bought in the same order: support, confidence, lift (mlxtend)."""
    orders = lines[["order_id", "product_id"]].drop_duplicates()
    n_orders = orders["order_id"].nunique()
    cols_out = ["product_id", "fbt_product_id", "support", "confidence", "lift", "order_count", "rank"]
    if n_orders == 0:
        return pd.DataFrame(columns=cols_out)
    order_ix, order_codes = pd.factorize(orders["order_id"])
    prod_ix = idx.products.get_indexer(orders["product_id"])
    basket = sp.csr_matrix(
        (np.ones(len(orders), dtype=bool), (order_ix, prod_ix)), shape=(len(order_codes), len(idx.products))
    )
    # a product bought in fewer orders than the threshold cannot be in a frequent pair: drop its column early
    min_support = max(cfg.fbt_min_support, cfg.fbt_min_count / n_orders)
    counts = np.asarray(basket.sum(axis=0)).ravel()
    keep = np.flatnonzero(counts >= min_support * n_orders)
    if len(keep) < 2:
        return pd.DataFrame(columns=cols_out)
    sub = basket[:, keep]
    if cfg.fbt_miner == "fpgrowth":
        itemsets = _fpgrowth_itemsets(sub, idx.products[keep], counts[keep], n_orders, min_support)
    else:
        itemsets = _pair_itemsets(sub, idx.products[keep], counts[keep], n_orders, min_support)
    if itemsets.empty:
        return pd.DataFrame(columns=cols_out)
    singles = itemsets["itemsets"].map(len) == 1
    if not (~singles).any():
        return pd.DataFrame(columns=cols_out)
    rules = association_rules(
        itemsets, num_itemsets=n_orders, metric="confidence", min_threshold=cfg.fbt_min_confidence
    )
    out = pd.DataFrame(
        {
            "product_id": rules["antecedents"].map(lambda s: next(iter(s))),
            "fbt_product_id": rules["consequents"].map(lambda s: next(iter(s))),
            "support": rules["support"].round(6),
            "confidence": rules["confidence"].round(6),
            "lift": rules["lift"].round(6),
        }
    )
    out["order_count"] = np.rint(rules["support"] * n_orders).astype(int)
    out = out[out["lift"] > 1.0].sort_values(
        ["product_id", "lift", "fbt_product_id"], ascending=[True, False, True]
    )
    out["rank"] = out.groupby("product_id", observed=True).cumcount() + 1
    return out.reset_index(drop=True)[cols_out]


def _pair_itemsets(
    basket: sp.csr_matrix, names: pd.Index, counts: np.ndarray, n_orders: int, min_support: float
) -> pd.DataFrame:
    """Frequent itemsets of size 1 and 2, exactly as fpgrowth(max_len=2) finds them, from one sparse product
    (basket^T basket = co-occurrence counts): milliseconds where fpgrowth's Python tree build takes ~15 s on 1M
    orders. tests/analytics checks both give the same itemsets."""
    b = basket.astype(np.int32)
    co = sp.triu((b.T @ b).tocsr(), k=1).tocoo()
    frequent = co.data >= min_support * n_orders - 1e-9
    pairs = pd.DataFrame(
        {
            "support": co.data[frequent] / n_orders,
            "itemsets": [
                frozenset((names[i], names[j]))
                for i, j in zip(co.row[frequent], co.col[frequent], strict=True)
            ],
        }
    )
    singles = pd.DataFrame({"support": counts / n_orders, "itemsets": [frozenset([n]) for n in names]})
    return pd.concat([singles, pairs], ignore_index=True)


def _fpgrowth_itemsets(
    basket: sp.csr_matrix, names: pd.Index, counts: np.ndarray, n_orders: int, min_support: float
) -> pd.DataFrame:
    """mlxtend fpgrowth(max_len=2), mined on the multi-item orders only (single-item orders add nothing to a
    pair) with supports put back on the scale of all orders."""
    multi = np.asarray(basket.sum(axis=1)).ravel() >= 2
    n_multi = int(multi.sum())
    if n_multi == 0:
        return pd.DataFrame(columns=["support", "itemsets"])
    with warnings.catch_warnings():  # pandas' notice about the bool fill value of mlxtend's sparse input
        warnings.simplefilter("ignore", FutureWarning)
        onehot = pd.DataFrame.sparse.from_spmatrix(basket[multi], columns=names)
    itemsets = fpgrowth(
        onehot, min_support=min(1.0, min_support * n_orders / n_multi), use_colnames=True, max_len=2
    )
    itemsets["support"] = itemsets["support"] * n_multi / n_orders
    singles = itemsets["itemsets"].map(len) == 1
    itemsets = itemsets[~singles]
    # every kept product is frequent over all orders, whatever its count among multi-item orders
    all_singles = pd.DataFrame({"support": counts / n_orders, "itemsets": [frozenset([n]) for n in names]})
    return pd.concat([all_singles, itemsets], ignore_index=True)


def fbt_matrix(fbt: pd.DataFrame, idx: Index) -> sp.csr_matrix:
    """Product x product confidence of the FBT rules (for blending)."""
    if fbt.empty:
        return sp.csr_matrix((len(idx.products), len(idx.products)), dtype=np.float32)
    r = idx.products.get_indexer(fbt["product_id"])
    c = idx.products.get_indexer(fbt["fbt_product_id"])
    return sp.csr_matrix(
        (fbt["confidence"].to_numpy(np.float32), (r, c)), shape=(len(idx.products), len(idx.products))
    )


# ------------------------------------------------------------------------------------------------ personalized


def last_baskets(lines: pd.DataFrame) -> pd.DataFrame:
    """customer_id, order_id of each customer's latest order (same-instant ties: the later one in the input)."""
    lines = compact_ids(lines)
    cust = lines["customer_id"].cat.codes.to_numpy()
    order = lines["order_id"].cat.codes.to_numpy()
    when = lines["order_time"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    by = np.lexsort((order, when, cust))  # customer, then time, then order id: the last row per customer wins
    cust_sorted = cust[by]
    last = by[np.r_[cust_sorted[1:] != cust_sorted[:-1], True]]
    return lines.iloc[last][["customer_id", "order_id"]].reset_index(drop=True)


def segment_popularity(lines: pd.DataFrame, segments: pd.DataFrame | None, top: int = 50) -> pd.DataFrame:
    """segment, product_id, buyers, rank: products by distinct buyers within each RFM segment (plus '*' = all)."""
    buyers = lines[["customer_id", "product_id"]].drop_duplicates()
    glob = (
        buyers.groupby("product_id", observed=True).size().rename("buyers").reset_index().assign(segment="*")
    )
    parts = [glob]
    if segments is not None and not segments.empty:
        seg = buyers.merge(segments[["customer_id", "segment"]], on="customer_id")
        parts.append(
            seg.groupby(["segment", "product_id"], observed=True).size().rename("buyers").reset_index()
        )
    pop = pd.concat(parts, ignore_index=True).sort_values(
        ["segment", "buyers", "product_id"], ascending=[True, False, True]
    )
    pop["rank"] = pop.groupby("segment", observed=True).cumcount() + 1
    return pop[pop["rank"] <= top].reset_index(drop=True)


def _row_scale(m: np.ndarray) -> np.ndarray:
    mx = m.max(axis=1, keepdims=True)
    return np.divide(m, mx, out=np.zeros_like(m), where=mx > 0)


def personalized(
    lines: pd.DataFrame,
    idx: Index,
    cf: sp.csr_matrix,
    content: sp.csr_matrix | None,
    fbt_conf: sp.csr_matrix,
    popularity: pd.DataFrame,
    segments: pd.DataFrame | None,
    cfg: RecConfig,
    customers: pd.Index | None = None,
) -> pd.DataFrame:
    """Top-N per customer: customer_id, rank, product_id, score, source ('blend' or 'segment_popularity')."""
    customers = idx.customers if customers is None else customers
    hist = interaction_matrix(lines, idx)
    last = last_baskets(lines)
    last_lines = lines.merge(last, on=["customer_id", "order_id"])[["customer_id", "product_id"]]
    last_m = interaction_matrix(last_lines.assign(order_id=""), idx)
    seg_of = (
        segments.set_index("customer_id")["segment"] if segments is not None and not segments.empty else None
    )
    pop_lists = {s: g["product_id"].tolist() for s, g in popularity.groupby("segment", observed=True)}
    prod_pos = {p: i for i, p in enumerate(idx.products)}
    weights = [(cfg.w_cf, cf), (cfg.w_fbt, fbt_conf)] + (
        [(cfg.w_content, content)] if content is not None else []
    )
    rows_c: list[str] = []
    rows_p: list[str] = []
    rows_s: list[float] = []
    rows_src: list[str] = []
    rows_r: list[int] = []
    cust_pos = idx.customers.get_indexer(customers)
    n = cfg.top_n
    chunk = 4096
    for start in range(0, len(customers), chunk):
        pos = cust_pos[start : start + chunk]
        known = pos >= 0
        h = hist[pos[known]]
        lb = last_m[pos[known]]
        score = np.zeros((len(pos), len(idx.products)), dtype=np.float32)
        part = np.zeros((int(known.sum()), len(idx.products)), dtype=np.float32)
        for w, mat in weights:
            src = lb if mat is fbt_conf else h
            part += w * _row_scale((src @ mat).toarray())
        score[known] = part
        # leave out what they just bought
        excl = np.zeros_like(score, dtype=bool)
        excl[known] = lb.toarray() > 0
        score[excl] = 0.0
        k = min(n, score.shape[1])
        top = np.argpartition(-score, k - 1, axis=1)[:, :k] if k else np.zeros((len(pos), 0), int)
        for j in range(len(pos)):
            cid = customers[start + j]
            cand = top[j][score[j, top[j]] > 0]
            cand = cand[np.lexsort((cand, -score[j, cand]))]
            chosen = list(cand)
            srcs = ["blend"] * len(chosen)
            if len(chosen) < n:
                seg = seg_of.get(cid, "*") if seg_of is not None else "*"
                taken = set(chosen) | set(np.flatnonzero(excl[j]))
                for p in pop_lists.get(seg, []) + pop_lists.get("*", []):
                    pi = prod_pos[p]
                    if pi not in taken:
                        chosen.append(pi)
                        srcs.append("segment_popularity")
                        taken.add(pi)
                    if len(chosen) >= n:
                        break
            for r, (pi, s) in enumerate(zip(chosen, srcs, strict=True), start=1):
                rows_c.append(cid)
                rows_p.append(idx.products[pi])
                rows_s.append(round(float(score[j, pi]), 6) if s == "blend" else 0.0)
                rows_src.append(s)
                rows_r.append(r)
    return pd.DataFrame(
        {"customer_id": rows_c, "rank": rows_r, "product_id": rows_p, "score": rows_s, "source": rows_src}
    )


# ------------------------------------------------------------------------------------------------ all + evaluation


@dataclass
class RecModels:
    idx: Index
    cf: sp.csr_matrix
    content: sp.csr_matrix | None
    fbt: pd.DataFrame
    fbt_conf: sp.csr_matrix
    popularity: pd.DataFrame


def fit_models(
    lines: pd.DataFrame, products: pd.DataFrame | None, segments: pd.DataFrame | None, cfg: RecConfig
) -> RecModels:
    catalog = products["product_id"] if products is not None else None
    idx = Index.build(lines, catalog)
    cf = item_item_matrix(interaction_matrix(lines, idx), cfg.neighbours)
    content = content_matrix(products, idx, cfg.neighbours) if products is not None else None
    fbt = frequently_bought_together(lines, idx, cfg)
    return RecModels(idx, cf, content, fbt, fbt_matrix(fbt, idx), segment_popularity(lines, segments))


def recommendation_tables(
    lines: pd.DataFrame,
    products: pd.DataFrame | None,
    segments: pd.DataFrame | None,
    cfg: RecConfig,
    all_customers: pd.Index | None = None,
) -> dict[str, pd.DataFrame]:
    """recs_item_item, recs_content (when product attributes are given), recs_fbt, recs_personalized.

    all_customers: customers to recommend for beyond those with purchases (e.g. every signed-up customer):
    without a history they are cold starts and get the overall most-bought products.
    """
    lines = compact_ids(lines)
    m = fit_models(lines, products, segments, cfg)
    targets = m.idx.customers
    if all_customers is not None:
        targets = targets.append(pd.Index(all_customers, dtype=object).difference(targets)).astype(str)
    out = {
        "recs_item_item": _neighbour_table(m.cf, m.idx, "similarity"),
        "recs_fbt": m.fbt,
        "recs_personalized": personalized(
            lines, m.idx, m.cf, m.content, m.fbt_conf, m.popularity, segments, cfg, customers=targets
        ),
    }
    if m.content is not None:
        out["recs_content"] = _neighbour_table(m.content, m.idx, "similarity")
    return out


def evaluate(
    lines: pd.DataFrame,
    products: pd.DataFrame | None,
    segment_fn,
    cfg: RecConfig,
) -> pd.DataFrame:
    """Offline evaluation: hold out each repeat customer's last basket, train on the rest, score top-N.

    segment_fn(train_lines) -> frame customer_id, segment (RFM on the training data, so nothing leaks).
    Returns one row per method (blend, popularity baseline): hit_rate, precision, recall at k = top_n, and
    catalog coverage (distinct recommended products / catalog size).
    """
    lines = compact_ids(lines)
    last = last_baskets(lines)
    n_orders = lines.groupby("customer_id", observed=True)["order_id"].nunique()
    repeaters = n_orders[n_orders >= 2].index
    last = last[last["customer_id"].isin(repeaters)]
    rng = np.random.default_rng(cfg.seed)
    if len(last) > cfg.max_eval_customers:
        last = last.iloc[np.sort(rng.choice(len(last), cfg.max_eval_customers, replace=False))]
    # (customer, order) pairs as one integer each: membership on 1M+ lines without Python tuples
    n_codes = len(lines["order_id"].cat.categories)
    key = lines["customer_id"].cat.codes.to_numpy(np.int64) * n_codes + lines["order_id"].cat.codes.to_numpy()
    held = last["customer_id"].cat.codes.to_numpy(np.int64) * n_codes + last["order_id"].cat.codes.to_numpy()
    is_held = np.isin(key, held)
    train, test = lines[~is_held], lines[is_held]
    truth = test.groupby("customer_id", observed=True)["product_id"].agg(set)
    truth = truth.set_axis(truth.index.astype(str))
    segments = segment_fn(train)
    m = fit_models(train, products, segments, cfg)
    users = pd.Index(truth.index)
    blend = personalized(
        train, m.idx, m.cf, m.content, m.fbt_conf, m.popularity, segments, cfg, customers=users
    )
    # baseline: globally most popular products, same "not what they just bought" rule
    base_pop = m.popularity[m.popularity["segment"] == "*"].assign(segment="*")
    baseline = personalized(
        train,
        m.idx,
        sp.csr_matrix(m.cf.shape, dtype=np.float32),
        None,
        sp.csr_matrix(m.cf.shape, dtype=np.float32),
        base_pop,
        None,
        cfg,
        customers=users,
    )
    n_catalog = len(m.idx.products)
    rows = []
    for name, recs in (("blend", blend), ("popularity_baseline", baseline)):
        got = recs.groupby("customer_id", observed=True)["product_id"].agg(list).reindex(users)
        hits = np.array([len(truth[c] & set(got[c] if isinstance(got[c], list) else [])) for c in users])
        sizes = np.array([len(truth[c]) for c in users])
        rows.append(
            {
                "method": name,
                "k": cfg.top_n,
                "customers": len(users),
                "hit_rate": round(float((hits > 0).mean()), 6),
                "precision": round(float((hits / cfg.top_n).mean()), 6),
                "recall": round(float((hits / sizes).mean()), 6),
                "catalog_coverage": round(recs["product_id"].nunique() / n_catalog, 6),
                "catalog_size": n_catalog,
            }
        )
    return pd.DataFrame(rows)
