"""Exact small cases of every strategy's arithmetic (apps/recommendations/algorithms.py), by hand."""
import math

import numpy as np
import pytest
import scipy.sparse as sp

from apps.recommendations import algorithms as alg

A, B, C = 0, 1, 2


def matrix(rows, n_items=3):
    users, items = zip(*[(u, i) for u, its in enumerate(rows) for i in its], strict=True)
    return alg.user_item_matrix(users, items, None, (len(rows), n_items))


def dense(m):
    return np.asarray(m.todense())


def test_cosine_co_occurrence_over_norms():
    # users: {A,B}, {A,B,C}, {A,C} → columns A=(1,1,1) B=(1,1,0) C=(0,1,1)
    x = matrix([[A, B], [A, B, C], [A, C]])
    s = dense(alg.cosine_similarity(x, k=10))
    assert s[A, B] == pytest.approx(2 / math.sqrt(6))
    assert s[A, C] == pytest.approx(2 / math.sqrt(6))
    assert s[B, C] == pytest.approx(1 / 2)
    assert np.diag(s).tolist() == [0, 0, 0]
    assert (s == s.T).all()
    shrunk = dense(alg.cosine_similarity(x, k=10, shrink=1.0))
    assert shrunk[A, B] == pytest.approx(2 / (math.sqrt(6) + 1))


def test_top_k_keeps_the_largest_per_row():
    x = matrix([[A, B], [A, B, C], [A, C]])
    s = dense(alg.cosine_similarity(x, k=1))
    # B's neighbours: A (0.816) beats C (0.5); A's: B and C tie, the lower column wins
    assert s[B].tolist() == pytest.approx([2 / math.sqrt(6), 0, 0])
    assert s[A].tolist() == pytest.approx([0, 2 / math.sqrt(6), 0])
    m = sp.csr_matrix(np.array([[0.0, -3.0, 1.0, 2.0]], dtype=np.float32))
    assert dense(alg.top_k_per_row(m, 1)).tolist() == [[0, 0, 0, 2]]
    assert dense(alg.top_k_per_row(m, 1, by_magnitude=True)).tolist() == [[0, -3, 0, 0]]


def test_rp3beta_random_walk_with_popularity_penalty():
    # u0 {A,B}, u1 {B,C}: P(item|user) = 1/2 each; P(user|A) = 1, P(user|B) = 1/2, P(user|C) = 1;
    # popularity A=1, B=2, C=1; beta = 1/2
    x = matrix([[A, B], [B, C]])
    w = dense(alg.rp3beta_similarity(x, k=10, alpha=1.0, beta=0.5))
    assert w[A, B] == pytest.approx(1 * 0.5 / math.sqrt(2))
    assert w[A, C] == 0
    assert w[B, A] == pytest.approx(0.5 * 0.5 / 1)
    assert w[B, C] == pytest.approx(0.5 * 0.5 / 1)
    assert w[C, B] == pytest.approx(1 * 0.5 / math.sqrt(2))
    assert np.diag(w).tolist() == [0, 0, 0]


def test_ease_closed_form():
    # X = [[1,1],[1,0]]: XᵀX + I = [[3,1],[1,2]], P = 1/5 [[2,-1],[-1,3]], B_ij = -P_ij / P_jj
    x = matrix([[A, B], [A]], n_items=2)
    b = dense(alg.ease_similarity(x, lam=1.0, k=10))
    assert b[A, B] == pytest.approx(1 / 3)
    assert b[B, A] == pytest.approx(1 / 2)
    assert np.diag(b).tolist() == [0, 0]


def test_cf_similarity_switches_to_rp3beta_beyond_the_dense_limit():
    x = matrix([[A, B], [B, C]])
    assert alg.cf_similarity(x, max_dense_items=3)[1] == "ease"
    sim, method = alg.cf_similarity(x, max_dense_items=2, alpha=1.0, beta=0.5, k=10)
    assert method == "rp3beta"
    assert dense(sim)[A, B] == pytest.approx(0.5 / math.sqrt(2))


def test_basket_pair_counts_and_their_normalisation():
    baskets = [[A, B], [A, B, C], [A], [B, B]]  # a repeated item counts once per basket
    counts = dense(alg.basket_pair_counts(baskets, 3))
    assert counts.tolist() == [[0, 2, 1], [2, 0, 1], [1, 1, 0]]
    # n_A = 3, n_B = 3, n_C = 1 baskets
    norm = dense(alg.basket_pairs(baskets, 3, k=10))
    assert norm[A, B] == pytest.approx(2 / 3)
    assert norm[A, C] == pytest.approx(1 / math.sqrt(3))
    assert norm[B, C] == pytest.approx(1 / math.sqrt(3))
    assert alg.basket_pairs([], 3).nnz == 0


def test_tfidf_and_the_content_cosine():
    features, tokens = alg.tfidf_features([["category:x", "tag:a"], ["category:x"], ["category:y"]])
    idf_x, idf_a = math.log(4 / 3) + 1, math.log(4 / 2) + 1
    row0 = dense(features)[0]
    assert row0[tokens.index("category:x")] == pytest.approx(idf_x / math.hypot(idf_x, idf_a))
    assert row0[tokens.index("tag:a")] == pytest.approx(idf_a / math.hypot(idf_x, idf_a))
    history = alg.user_vector([1], [1.0], 3)  # the user chose item 1 (category x only)
    scores = alg.score_content(history, features)
    assert scores.tolist() == pytest.approx([idf_x / math.hypot(idf_x, idf_a), 1.0, 0.0])
    assert alg.score_content(alg.user_vector([], [], 3), features).tolist() == [0, 0, 0]


def test_item_tokens_bin_numbers_on_a_log_scale():
    assert alg.item_tokens(category=" Shoes ", tags=["Trail", " "], attributes={"weight_kg": 1.3, "colour": "red",
                                                                               "flag": True}, price=90) == [
        "category:shoes", "tag:trail", "price:2^6", "weight_kg:2^0"]
    assert alg.item_tokens(attributes={"a": 1.1})[0] == alg.item_tokens(attributes={"a": 1.9})[0]


def test_decayed_counts_halve_every_half_life_and_stop_at_the_window():
    hour = 3600.0
    items = np.array([0, 0, 1, 1])
    weights = np.array([1.0, 2.0, 4.0, 8.0])
    ages = np.array([0.0, 6 * hour, 12 * hour, 25 * hour])
    counts = alg.decayed_counts(items, weights, ages, 3, half_life_seconds=6 * hour, window_seconds=24 * hour)
    assert counts.tolist() == pytest.approx([1 + 2 * 0.5, 4 * 0.25, 0.0])


def test_top_n_excludes_and_masks_and_breaks_ties_by_index():
    scores = np.array([0.5, 0.9, 0.9, 0.0, 0.7])
    assert alg.top_n(scores, 3).tolist() == [1, 2, 4]
    assert alg.top_n(scores, 10, exclude=[1]).tolist() == [2, 4, 0]  # zero scores never count
    allowed = np.array([True, True, False, True, True])
    assert alg.top_n(scores, 2, allowed=allowed).tolist() == [1, 4]
    assert alg.top_n(np.zeros(3), 2).tolist() == []


def test_best_contributor_names_the_history_item_that_added_most():
    sim = sp.csr_matrix(np.array([[0, 0, 0.2], [0, 0, 0.5], [0, 0, 0]], dtype=np.float32))
    # history A (weight 3) and B (weight 1): C gets 3·0.2 = 0.6 from A, 1·0.5 from B → A
    assert alg.best_contributor(np.array([A, B]), np.array([3.0, 1.0]), sim, np.array([C, A])).tolist() == [A, -1]


def test_the_sparse_top_n_answers_what_the_dense_one_does():
    rng = np.random.default_rng(3)
    scores = np.where(rng.random(500) < 0.1, rng.integers(1, 6, 500).astype(float), 0.0)
    allowed = rng.random(500) < 0.8
    exclude = rng.choice(500, 20, replace=False).tolist()
    idx = np.flatnonzero(scores)
    for n in (1, 5, 50, 500):
        top, values = alg.top_n_entries(idx, scores[idx], n, allowed=allowed, exclude=exclude)
        assert top.tolist() == alg.top_n(scores, n, allowed=allowed, exclude=exclude).tolist()
        assert values.tolist() == scores[top].tolist()
    history = alg.user_vector([0, 2], [1.0, 2.0], 3)
    sim = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 0], [0, 3, 0]], dtype=np.float32))
    cols, vals = alg.sparse_scores(history, sim)
    assert (cols.tolist(), vals.tolist()) == ([1], [7.0])
