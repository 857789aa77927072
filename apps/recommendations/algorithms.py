"""The recommendation strategies as pure functions over scipy.sparse (docs/RULES.md §7); Django-free.

Inputs are a user × item matrix of interaction weights (CSR, float32) and, per strategy, what it needs
(baskets, item features, times). Each builder returns an item × item (or item × feature) CSR matrix
that a user's history is multiplied by at serve time:

* ``cf`` — item-item collaborative filtering. ``rp3beta_similarity`` (the random walk user → item →
  user → item, its transition probabilities raised to ``alpha``, the arrival item's popularity divided
  out to the power ``beta``, top ``k`` neighbours kept) is what ``cf`` serves: it won the offline
  evaluation against shrunk cosine and ``implicit``'s models (bench/README.md "Recommendations").
  ``cosine_similarity`` (shrunk) is kept for the comparison and for tests.
* ``frequently_bought_together`` — pair counts within one basket, normalised by the geometric mean
  of the two items' basket counts (cosine over basket incidence), so a best seller does not pair with
  everything.
* ``content_based`` — TF-IDF over item tokens (category, tags, binned attributes), rows L2-normalised;
  the user's profile is the weighted mean of their items' rows and an item's score is its cosine with it.
* ``trending`` — interaction weights decayed with a half-life over a window.
* ``new_arrivals`` — newest first.

All matrices are built in row blocks so memory stays bounded at 100,000 items.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

BLOCK_ROWS = 2048


def user_item_matrix(users: Sequence[int], items: Sequence[int], weights: Sequence[float] | None,
                     shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR users × items; repeated (user, item) pairs add up."""
    data = np.ones(len(users), np.float32) if weights is None else np.asarray(weights, np.float32)
    m = sp.csr_matrix((data, (np.asarray(users), np.asarray(items))), shape=shape, dtype=np.float32)
    m.sum_duplicates()
    return m


def top_k_per_row(m: sp.csr_matrix, k: int, *, by_magnitude: bool = False) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of every row (largest ``|value|`` with ``by_magnitude``; ties
    broken by column, lowest first)."""
    m = m.tocsr()
    m.eliminate_zeros()
    counts = np.diff(m.indptr)
    if k <= 0 or counts.max(initial=0) <= k:
        m.sort_indices()
        return m
    keep = np.ones(m.nnz, dtype=bool)
    for row in np.flatnonzero(counts > k):
        start, end = m.indptr[row], m.indptr[row + 1]
        vals = np.abs(m.data[start:end]) if by_magnitude else m.data[start:end]
        order = np.lexsort((m.indices[start:end], -vals))  # by value desc, then column asc
        drop = order[k:]
        keep[start + drop] = False
    rows = np.repeat(np.arange(m.shape[0]), counts)[keep]
    out = sp.csr_matrix((m.data[keep], (rows, m.indices[keep])), shape=m.shape, dtype=np.float32)
    out.sort_indices()
    return out


def _blocked(left: sp.csr_matrix, right: sp.csr_matrix, finish, k: int) -> sp.csr_matrix:
    """``top_k(finish(rows, left[rows] @ right))`` block by block, stacked."""
    blocks = []
    for start in range(0, left.shape[0], BLOCK_ROWS):
        rows = np.arange(start, min(start + BLOCK_ROWS, left.shape[0]))
        product = (left[rows] @ right).tocsr()
        product = finish(rows, product)
        blocks.append(top_k_per_row(product, k))
    if not blocks:
        return sp.csr_matrix((0, right.shape[1]), dtype=np.float32)
    return sp.vstack(blocks, format="csr", dtype=np.float32)


def _zero_diagonal(rows: np.ndarray, m: sp.csr_matrix) -> sp.csr_matrix:
    m = m.tocoo()
    keep = rows[m.row] != m.col
    return sp.csr_matrix((m.data[keep], (m.row[keep], m.col[keep])), shape=m.shape, dtype=np.float32)


def cosine_similarity(x: sp.csr_matrix, *, k: int = 100, shrink: float = 0.0) -> sp.csr_matrix:
    """Item × item ``x_i·x_j / (|x_i| |x_j| + shrink)`` over the columns of users × items ``x``,
    diagonal removed, top ``k`` per row."""
    xt = x.T.tocsr().astype(np.float32)
    norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel()).astype(np.float32)

    def finish(rows, product):
        product = _zero_diagonal(rows, product).tocoo()
        denom = norms[rows][product.row] * norms[product.col] + shrink
        data = np.divide(product.data, denom, out=np.zeros_like(product.data), where=denom > 0)
        return sp.csr_matrix((data, (product.row, product.col)), shape=product.shape, dtype=np.float32)

    return _blocked(xt, x.tocsc().tocsr(), finish, k)


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64), where=sums > 0)
    return sp.diags(inv.astype(np.float32)) @ m


def rp3beta_similarity(x: sp.csr_matrix, *, k: int = 100, alpha: float = 1.0, beta: float = 0.5) -> sp.csr_matrix:
    """Item × item three-step random walk item → user → item (Paudel et al. 2017, "RP3beta"):
    ``W_ij = Σ_u P(u|i)^alpha P(j|u)^alpha / pop_j^beta``, diagonal removed, top ``k`` per row."""
    binary = x.copy().tocsr()
    binary.data = np.ones_like(binary.data)
    p_ui = _row_normalise(binary)  # user → item
    p_iu = _row_normalise(binary.T.tocsr())  # item → user
    if alpha != 1.0:
        p_ui = p_ui.power(alpha)
        p_iu = p_iu.power(alpha)
    pop = np.asarray(binary.sum(axis=0)).ravel()
    penalty = np.divide(1.0, np.power(pop, beta), out=np.zeros_like(pop, dtype=np.float64), where=pop > 0)
    right = (p_ui @ sp.diags(penalty.astype(np.float32))).tocsr()

    def finish(rows, product):
        return _zero_diagonal(rows, product)

    return _blocked(p_iu.tocsr(), right, finish, k)


def ease_similarity(x: sp.csr_matrix, *, lam: float = 300.0, k: int = 200) -> sp.csr_matrix:
    """EASE (Steck 2019): the item × item weights ``B = I - P / diag(P)``, ``P = (XᵀX + λI)⁻¹``, zero
    diagonal, the ``k`` largest by magnitude per row kept (negative weights matter: "people who
    watched A rarely watch B"). Dense ``n_items²`` memory and ``n_items³`` time, so only for
    catalogues up to ``RECS_EASE_MAX_ITEMS`` (``cf_similarity``)."""
    binary = x.copy().tocsr()
    binary.data = np.ones_like(binary.data)
    gram = (binary.T @ binary).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return top_k_per_row(sp.csr_matrix(b.astype(np.float32)), k, by_magnitude=True)


def cf_similarity(x: sp.csr_matrix, *, max_dense_items: int, lam: float = 300.0, k: int = 200,
                  alpha: float = 0.8, beta: float = 0.5) -> tuple[sp.csr_matrix, str]:
    """What ``cf`` serves: EASE while the catalogue has at most ``max_dense_items`` items, RP3beta
    (sparse, any size) beyond; returns the matrix and the method's name."""
    if x.shape[1] <= max_dense_items:
        return ease_similarity(x, lam=lam, k=k), "ease"
    return rp3beta_similarity(x, k=k, alpha=alpha, beta=beta), "rp3beta"


def basket_pairs(baskets: Iterable[Sequence[int]], n_items: int, *, k: int = 100) -> sp.csr_matrix:
    """Item × item pair counts within one basket normalised as ``c_ij / sqrt(n_i n_j)`` (``n_i``: the
    baskets holding ``i``), diagonal removed, top ``k`` per row."""
    rows, cols = [], []
    for b, items in enumerate(baskets):
        unique = sorted(set(items))
        rows.extend([b] * len(unique))
        cols.extend(unique)
    n_baskets = (rows[-1] + 1) if rows else 0
    incidence = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_baskets, n_items))
    return cosine_similarity(incidence, k=k)


def basket_pair_counts(baskets: Iterable[Sequence[int]], n_items: int) -> sp.csr_matrix:
    """Raw item × item pair counts (how many baskets hold both), diagonal removed: for reasons and tests."""
    rows, cols = [], []
    for b, items in enumerate(baskets):
        unique = sorted(set(items))
        rows.extend([b] * len(unique))
        cols.extend(unique)
    n_baskets = (rows[-1] + 1) if rows else 0
    incidence = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_baskets, n_items))
    counts = (incidence.T @ incidence).tocsr()
    counts.setdiag(0)
    counts.eliminate_zeros()
    return counts


def tfidf_features(item_tokens: Sequence[Sequence[str]]) -> tuple[sp.csr_matrix, list[str]]:
    """Items × tokens TF-IDF (``tf · log((1 + n) / (1 + df)) + 1`` idf, as scikit-learn's smooth idf),
    rows L2-normalised; returns the matrix and the token of each column."""
    vocabulary: dict[str, int] = {}
    rows, cols = [], []
    for row, tokens in enumerate(item_tokens):
        for token in set(tokens):
            rows.append(row)
            cols.append(vocabulary.setdefault(token, len(vocabulary)))
    n = len(item_tokens)
    counts = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, len(vocabulary)))
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    weighted = (counts @ sp.diags(idf)).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    tokens = [""] * len(vocabulary)
    for token, col in vocabulary.items():
        tokens[col] = token
    return (sp.diags(inv) @ weighted).tocsr().astype(np.float32), tokens


def item_tokens(*, category: str = "", tags: Iterable[str] = (), attributes: dict | None = None,
                price: float | None = None) -> list[str]:
    """The content tokens of one item: its category, each tag, and each numeric attribute (and the price)
    binned on a log2 scale, so "weight_kg: 1.1" and "weight_kg: 1.3" share a token."""
    tokens = []
    if category:
        tokens.append(f"category:{category.strip().lower()}")
    tokens.extend(f"tag:{t.strip().lower()}" for t in tags if t and t.strip())
    values = dict(attributes or {})
    if price is not None:
        values["price"] = price
    for name, value in sorted(values.items()):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        bucket = "0" if value == 0 else f"{'-' if value < 0 else ''}2^{math.floor(math.log2(abs(value)))}"
        tokens.append(f"{name}:{bucket}")
    return tokens


def decayed_counts(items: np.ndarray, weights: np.ndarray, ages_seconds: np.ndarray, n_items: int, *,
                   half_life_seconds: float, window_seconds: float) -> np.ndarray:
    """Per item: ``Σ weight · 0.5^(age / half_life)`` over the interactions younger than the window."""
    inside = (ages_seconds >= 0) & (ages_seconds <= window_seconds)
    decay = np.power(0.5, ages_seconds[inside] / half_life_seconds)
    return np.bincount(items[inside], weights=weights[inside] * decay, minlength=n_items).astype(np.float64)


def user_vector(item_indices: Sequence[int] | np.ndarray, weights: Sequence[float] | np.ndarray, n_items: int) -> sp.csr_matrix:
    """One user's history as a 1 × items CSR row (repeated items add up)."""
    idx = np.asarray(item_indices, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float32)
    return sp.csr_matrix((w, (np.zeros(len(idx), np.int64), idx)), shape=(1, n_items), dtype=np.float32)


def score_neighbours(history: sp.csr_matrix, similarity: sp.csr_matrix) -> np.ndarray:
    """Dense 1-D scores ``history @ similarity`` (item-item strategies)."""
    return np.asarray((history @ similarity).todense()).ravel()


def score_content(history: sp.csr_matrix, features: sp.csr_matrix) -> np.ndarray:
    """Cosine between the user's weighted mean feature vector and every item's (rows already L2-normalised)."""
    total = float(history.sum())
    if total <= 0:
        return np.zeros(features.shape[0])
    profile = np.asarray((history @ features).todense()).ravel() / total
    norm = float(np.linalg.norm(profile))
    if norm == 0:
        return np.zeros(features.shape[0])
    return np.asarray(features @ (profile / norm)).ravel()


def top_n(scores: np.ndarray, n: int, *, allowed: np.ndarray | None = None,
          exclude: Iterable[int] = ()) -> np.ndarray:
    """Indices of the ``n`` highest positive scores, best first (ties: lowest index first), among
    ``allowed`` (a boolean mask) and not in ``exclude``."""
    s = np.array(scores, dtype=np.float64, copy=True)
    if allowed is not None:
        s[~allowed] = -np.inf
    ex = np.fromiter(exclude, dtype=np.int64)
    if ex.size:
        s[ex] = -np.inf
    s[~(s > 0)] = -np.inf
    candidates = np.flatnonzero(np.isfinite(s))
    if candidates.size == 0 or n <= 0:
        return np.empty(0, dtype=np.int64)
    if candidates.size > n:
        part = np.argpartition(-s[candidates], n - 1)[:n]
        candidates = candidates[part]
    order = np.lexsort((candidates, -s[candidates]))
    return candidates[order]


def top_n_entries(indices: np.ndarray, values: np.ndarray, n: int, *, allowed: np.ndarray | None = None,
                  exclude: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``top_n`` over a sparse score vector given as (indices, values): the same answer as ``top_n`` on
    its dense form, without touching the items that scored nothing. Returns (indices, values)."""
    idx = np.asarray(indices, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    keep = vals > 0
    if allowed is not None:
        keep &= allowed[idx]
    ex = np.fromiter(exclude, dtype=np.int64)
    if ex.size:
        keep &= ~np.isin(idx, ex)
    idx, vals = idx[keep], vals[keep]
    if idx.size == 0 or n <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    if idx.size > n:
        part = np.argpartition(-vals, n - 1)[:n]
        idx, vals = idx[part], vals[part]
    order = np.lexsort((idx, -vals))
    return idx[order], vals[order]


def sparse_scores(history: sp.csr_matrix, similarity: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """``history @ similarity`` as (indices, values) of its non-zero entries."""
    row = (history @ similarity).tocsr()
    row.sum_duplicates()
    return row.indices.astype(np.int64), row.data.astype(np.float64)


def best_contributor(history_items: np.ndarray, history_weights: np.ndarray, matrix: sp.csr_matrix,
                     targets: np.ndarray) -> np.ndarray:
    """For each target item, the history item that added most to its score (``w_i · M[i, target]``),
    or -1 when none did: what a reason names ("bought with Trail Shoes")."""
    if len(history_items) == 0 or len(targets) == 0:
        return np.full(len(targets), -1, dtype=np.int64)
    block = matrix[history_items][:, targets].toarray() * np.asarray(history_weights, np.float64)[:, None]
    best = block.argmax(axis=0)
    out = np.asarray(history_items, dtype=np.int64)[best]
    out[block.max(axis=0) <= 0] = -1
    return out
