"""Recommenders: item-item CF, content, frequently-bought-together, personalized blend and its evaluation."""

from __future__ import annotations

import pandas as pd
import pytest

from analytics import recommend
from analytics.rfm import rfm_scores


def test_planted_pairs_show_up_in_frequently_bought_together_with_lift_above_1(shop, shop_result):
    fbt = shop_result.tables["recs_fbt"]
    found = fbt.set_index(["product_id", "fbt_product_id"])
    for a, b in shop.planted_pairs:
        assert (a, b) in found.index, f"planted pair {a} -> {b} missing"
        row = found.loc[(a, b)]
        assert row["lift"] > 1
        assert 0 < row["support"] <= row["confidence"] <= 1
    # the planted pairs are the strongest rules of their antecedents
    top = fbt[fbt["rank"] == 1].set_index("product_id")["fbt_product_id"]
    assert sum(top.get(a) == b for a, b in shop.planted_pairs) >= 0.8 * len(shop.planted_pairs)


def test_sparse_pair_miner_equals_mlxtend_fpgrowth(shop):
    lines = shop.lines[shop.lines["order_time"] < shop.lines["order_time"].min() + pd.Timedelta(days=60)]
    idx = recommend.Index.build(lines)
    pairs = recommend.frequently_bought_together(lines, idx, recommend.RecConfig(fbt_miner="pairs"))
    fp = recommend.frequently_bought_together(lines, idx, recommend.RecConfig(fbt_miner="fpgrowth"))
    assert len(pairs) > 0
    pd.testing.assert_frame_equal(pairs, fp, check_dtype=False)


def test_similarity_tables_never_recommend_the_item_itself(shop_result):
    for name, other in (
        ("recs_item_item", "similar_product_id"),
        ("recs_content", "similar_product_id"),
        ("recs_fbt", "fbt_product_id"),
    ):
        t = shop_result.tables[name]
        assert len(t) > 0, name
        assert (t["product_id"] != t[other]).all(), name
    ii = shop_result.tables["recs_item_item"]
    assert ii["similarity"].between(0, 1 + 1e-6).all()


def test_content_similarity_follows_product_attributes(shop, shop_result):
    content = shop_result.tables["recs_content"]
    cat = shop.products.set_index("product_id")["category"]
    top = content[content["rank"] <= 3]
    same = (top["product_id"].map(cat) == top["similar_product_id"].map(cat)).mean()
    assert same > 0.8


def test_personalized_excludes_the_last_basket_and_falls_back_for_cold_starts():
    lines = pd.DataFrame(
        [
            ("u1", "o1", "2024-01-01", "A"),
            ("u1", "o1", "2024-01-01", "B"),
            ("u2", "o2", "2024-01-02", "A"),
            ("u2", "o2", "2024-01-02", "B"),
            ("u2", "o3", "2024-01-03", "C"),
            ("u3", "o4", "2024-01-03", "B"),
            ("u3", "o4", "2024-01-03", "C"),
            ("u4", "o5", "2024-01-04", "D"),
        ],
        columns=["customer_id", "order_id", "order_time", "product_id"],
    )
    lines["order_time"] = pd.to_datetime(lines["order_time"])
    lines["amount"] = 10.0
    lines["quantity"] = 1.0
    cfg = recommend.RecConfig(top_n=3, fbt_min_count=1, fbt_min_support=0.0)
    segments = rfm_scores(lines)
    recs = recommend.recommendation_tables(lines, None, segments, cfg)["recs_personalized"]
    by = recs.groupby("customer_id")["product_id"].agg(list)
    assert "A" not in by["u1"] and "B" not in by["u1"]  # just bought
    assert by["u1"][0] == "C"  # bought with B by others
    assert "C" not in by["u2"]  # its last basket
    assert by["u4"][0] in {"A", "B", "C"} and "D" not in by["u4"]
    # u4 bought only D, which nobody else bought: no similarity signal, so the slots come from popularity
    assert set(recs.loc[recs["customer_id"] == "u4", "source"]) == {"segment_popularity"}
    assert (recs.groupby("customer_id")["rank"].max() == recs.groupby("customer_id").size()).all()


def test_personalized_never_repeats_a_product_and_covers_every_customer(shop_result):
    recs = shop_result.tables["recs_personalized"]
    assert not recs.duplicated(["customer_id", "product_id"]).any()
    assert set(recs["customer_id"]) == set(shop_result.tables["rfm_customers"]["customer_id"])
    assert recs.groupby("customer_id").size().max() == 10


def test_evaluation_blend_beats_the_popularity_baseline(shop_result):
    ev = shop_result.tables["recs_evaluation"].set_index("method")
    assert ev.loc["blend", "customers"] > 500
    assert ev.loc["blend", "hit_rate"] >= ev.loc["popularity_baseline", "hit_rate"]
    assert ev.loc["blend", "precision"] > ev.loc["popularity_baseline", "precision"]
    assert ev.loc["blend", "catalog_coverage"] > 5 * ev.loc["popularity_baseline", "catalog_coverage"]
    assert 0 < ev.loc["blend", "precision"] <= ev.loc["blend", "hit_rate"] <= 1


@pytest.mark.parametrize("miner", ["pairs", "fpgrowth"])
def test_no_rules_when_nothing_is_bought_together(miner):
    lines = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "order_id": ["o1", "o2"],
            "product_id": ["X", "Y"],
            "order_time": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "amount": [1.0, 2.0],
            "quantity": [1.0, 1.0],
        }
    )
    idx = recommend.Index.build(lines)
    out = recommend.frequently_bought_together(
        lines, idx, recommend.RecConfig(fbt_miner=miner, fbt_min_count=1)
    )
    assert out.empty


def test_results_do_not_depend_on_the_string_hash_seed(tmp_path):
    """Two interpreters with different PYTHONHASHSEED give identical tables (ties broken the same way)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import hashlib, pandas as pd\n"
        "from analytics.synthetic import SynthConfig, generate\n"
        "from analytics.pipeline import run_all\n"
        "d = generate(SynthConfig(n_customers=800, n_products=120))\n"
        "r = run_all(d.lines, d.products)\n"
        "for k in sorted(r.tables):\n"
        "    h = pd.util.hash_pandas_object(r.tables[k].astype(str), index=False).values.tobytes()\n"
        "    print(k, hashlib.md5(h).hexdigest())\n"
    )
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 0, done.stderr
        outs.append(done.stdout)
    assert "recs_content" in outs[0]
    assert outs[0] == outs[1]


def test_customers_without_purchases_get_the_most_bought_products(shop, shop_result):
    lines = shop.lines
    cfg = recommend.RecConfig()
    newcomers = pd.Index(["NEW-1", "NEW-2"])
    tables = recommend.recommendation_tables(
        lines,
        None,
        shop_result.tables["rfm_customers"],
        cfg,
        all_customers=newcomers.append(pd.Index(["C000001"])),
    )
    recs = tables["recs_personalized"]
    fresh = recs[recs["customer_id"].isin(newcomers)]
    assert len(fresh) == 2 * cfg.top_n
    assert set(fresh["source"]) == {"segment_popularity"}
    top = lines.drop_duplicates(["customer_id", "product_id"])["product_id"].value_counts()
    assert fresh.loc[fresh["customer_id"] == "NEW-1", "product_id"].tolist() == list(
        top.sort_index().sort_values(ascending=False, kind="stable").index[: cfg.top_n]
    )
    # a buyer in the list is not duplicated
    assert recs["customer_id"].eq("C000001").sum() <= cfg.top_n
