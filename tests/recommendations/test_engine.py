"""The built model (apps/recommendations/engine.py) and auto's blend and tuning (auto.py), without Django."""
import numpy as np
import pytest

from apps.recommendations import auto, engine

CATALOG = [engine.CatalogRow("shoes", "Trail Shoes", "running"), engine.CatalogRow("socks", "Running Socks", "running"),
           engine.CatalogRow("tent", "Tent", "camping"), engine.CatalogRow("gone", "Old Item", available=False)]
ROWS = [("u1", "shoes", "o1", 5.0), ("u1", "socks", "o1", 5.0), ("u2", "shoes", "o2", 5.0), ("u2", "ghost", "o2", 5.0),
        ("u3", "tent", "", 1.0), ("u3", "gone", "", 1.0), ("u4", "socks", "", 1.0), ("u4", "gone", "", 1.0)]


def build(**kw):
    return engine.build_model(version="v1", built_at=1.0, interactions=ROWS, catalog=CATALOG, **kw)


def test_build_knows_every_item_but_recommends_only_available_catalogue_items():
    model = build()
    assert model.item_ids == ("shoes", "socks", "tent", "gone", "ghost")
    assert model.recommendable.tolist() == [True, True, True, False, False]
    assert model.popularity.tolist() == [10.0, 6.0, 1.0, 2.0, 5.0]
    assert model.stats == {"users": 4, "items": 5, "catalog_items": 4, "interactions": 8, "baskets": 2,
                           "cf_method": "ease", "cf_nnz": model.cf.nnz, "fbt_nnz": 4}
    assert build(params=engine.BuildParams(max_dense_items=4)).cf_method == "rp3beta"


def test_the_blob_round_trips():
    model = build()
    again = engine.loads(engine.dumps(model))
    assert (again.version, again.item_ids, again.names, again.tokens, again.stats) == (
        model.version, model.item_ids, model.names, model.tokens, model.stats)
    for name in ("cf", "fbt", "content"):
        assert (getattr(again, name) != getattr(model, name)).nnz == 0
    assert again.recommendable.tolist() == model.recommendable.tolist()
    assert again.index == model.index


def test_each_model_strategy_excludes_history_and_unrecommendable_items():
    model = build()
    for name, strategy in engine.STRATEGIES.items():
        got = [s.item_id for s in strategy(model, {"shoes": 5.0}, 10)]
        assert "shoes" not in got and "ghost" not in got and "gone" not in got, name
    fbt = engine.STRATEGIES["frequently_bought_together"](model, {"shoes": 5.0}, 10)
    # baskets o1 {shoes, socks}, o2 {shoes, ghost}: shoes+socks once, n_shoes 2, n_socks 1 → 5 · 1/√2
    assert [(s.item_id, s.reason) for s in fbt] == [("socks", "bought with Trail Shoes")]
    assert fbt[0].score == pytest.approx(5 / 2 ** 0.5)
    assert engine.STRATEGIES["cf"](model, {"nothing-known": 1.0}, 10) == []


def test_compute_trending_and_its_reason():
    now = 100_000.0
    rows = [("a", 1.0, now), ("a", 1.0, now - 6 * 3600), ("b", 4.0, now - 12 * 3600), ("c", 9.0, now - 25 * 3600)]
    trending = engine.compute_trending(rows, now=now, half_life_hours=6, window_hours=24, keep=10)
    assert trending.items == (("a", 1.5, 2), ("b", 1.0, 1))
    assert engine.Trending.loads(trending.dumps()) == trending
    assert engine.trending_reason(24, 2) == "popular in the last 24 h (2 interactions)"
    assert engine.trending_reason(72, 1) == "popular in the last 3 days (1 interaction)"


def test_auto_adds_scaled_cf_and_trending_with_the_weight():
    model = build()
    trending = engine.Trending(computed_at=0, window_hours=24, items=(("tent", 8.0, 4), ("socks", 2.0, 1)))
    cf = engine.STRATEGIES["cf"](model, {"shoes": 5.0}, 10)
    cf_scores = {s.item_id: s.score for s in cf}
    peak = max(cf_scores.values())
    got = auto.score_auto(model, trending, {"shoes": 5.0}, 10, weight=2.0)
    expected = {item: cf_scores.get(item, 0) / peak + 2.0 * tr for item, tr in (("tent", 1.0), ("socks", 0.25))}
    assert {s.item_id: s.score for s in got} == pytest.approx(expected)
    assert got[0].item_id == "tent" and got[0].reason == "popular in the last 24 h (4 interactions)"
    assert [s.item_id for s in auto.score_auto(model, trending, {"shoes": 5.0}, 10, weight=0.0)] == [
        s.item_id for s in cf]


def test_tuning_needs_enough_users_and_finds_a_trend():
    assert auto.tune_weight([], CATALOG, params=engine.BuildParams(), half_life_hours=6, window_hours=24) == (None, {})
    catalog = [engine.CatalogRow(f"i{n}", f"Item {n}") for n in range(8)] + [engine.CatalogRow("hot", "Hot")]
    rows = []
    for u in range(50):  # older: pairs of items, then a run on "hot" by others; the newest 10 %: users buy "hot"
        rows += [(f"u{u}", f"i{u % 4}", "", 1.0, 1000.0 + u), (f"u{u}", f"i{u % 4 + 4}", "", 1.0, 1000.0 + u)] * 2
        rows.append((f"fan{u}", "hot", "", 1.0, 5000.0 + u))
    rows += [(f"u{u}", "hot", "", 1.0, 9000.0 + u) for u in range(25)]
    weight, table = auto.tune_weight(rows, catalog, params=engine.BuildParams(), half_life_hours=1, window_hours=24)
    assert set(table) == set(auto.WEIGHTS)
    assert table[0.0] == 0.0 and weight == 0.1 and table[0.1] == 1.0
    assert np.isclose(sum(table.values()), 5.0)


def test_auto_serves_what_the_tuning_ranks_by():
    """score_auto (sparse, serving) and the dense sum tune_weight ranks by agree."""
    from apps.recommendations import algorithms as alg

    model = build()
    trending = engine.Trending(computed_at=0, window_hours=24, items=(("tent", 8.0, 4), ("socks", 2.0, 1)))
    history = {"shoes": 5.0, "tent": 1.0}
    for w in auto.WEIGHTS:
        idx, _, cf, tr, _, _ = auto._parts(model, trending, history)
        dense = alg.top_n(cf + w * tr, 10, allowed=model.recommendable, exclude=idx)
        served = auto.score_auto(model, trending, history, 10, weight=w)
        assert [s.item_id for s in served] == [model.item_ids[t] for t in dense], w
        assert [s.score for s in served] == pytest.approx([(cf + w * tr)[t] for t in dense])
