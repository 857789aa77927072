"""Inference providers: where the CoLaNet forward pass runs (docs/RULES.md §1 "Providers").

A provider is bound to one immutable ``CoLaNetWeights``; hot reload builds a new provider and swaps
the reference, so a request that already holds a provider finishes on the weights it started with.

``CpuProvider`` computes layer 1 **factorised**: the user/request columns ``[0, 139)`` are the same
for every candidate, so ``user_row[:139] @ W1[:139]`` is computed once (1 x H), and only the
position column and the 64 offer features (columns ``[139, 204)``, contiguous) need an
``n x 65 @ 65 x H`` GEMM. Columns ``[204, 256)`` are zero by definition and cost nothing. The result
equals ``forward(weights, feature_matrix(...))`` up to float32 rounding (a hidden unit whose
pre-activation sits within rounding of its threshold could flip; with real-valued inputs that is a
measure-zero event and the tests check agreement to 1e-5).

BLAS threads: run bid workers with ``OPENBLAS_NUM_THREADS=1`` (scripts/test.sh and the Makefile
set it). Two BLAS threads on two cores give erratic 1.3-5x medians and 16 ms outliers for these small
GEMMs (docs/DESIGN.md "Measured limits behind the choices"); this module does not change thread counts itself.

Hardware providers check their SDK and device at construction and raise ``ProviderUnavailable``
naming everything that is missing; none of them ever falls back to, or fakes, scores.
"""
from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from apps.inference.features import N_FEATURES, N_OFFER, N_USER, OFFER_COLS, POSITION_COL, feature_matrix
from apps.inference.model import CoLaNetWeights, heads
from config import env

_colanet: ModuleType | None
try:  # the compiled per-request kernel (scripts/build_ext.py); without it the numpy path, same results
    import apps.inference._colanet as _colanet
except ImportError:  # pragma: no cover - a checkout where scripts/build_ext.py has not run
    _colanet = None

PROVIDER_ENV = "CAMPAIGN_EXPRESS__NPU__PROVIDER"
DEFAULT_PROVIDER = "cpu"

ScoreRequest = tuple[np.ndarray, np.ndarray, np.ndarray]  # (user_row[256], offer_features[n,64], positions[n])
ScoreResult = tuple[np.ndarray, np.ndarray]  # (score[n], predicted_ctr[n])
RankResult = tuple[list[int], list[float], list[float]]  # (candidates best score first, scores, predicted_ctrs)


class ProviderUnavailable(RuntimeError):
    """The configured provider cannot run here; the message names what is missing."""


@runtime_checkable
class InferenceProvider(Protocol):
    """What the bid path and the batcher need from a provider."""

    name: str
    weights: CoLaNetWeights

    def score(self, user_row: np.ndarray, offer_features: np.ndarray, positions: np.ndarray) -> ScoreResult:
        """Score n candidates of one request: float32[256], float32[n, 64], float32[n] ->
        (score float32[n] in (-1, 1), predicted_ctr float32[n] in (0, 1))."""
        ...

    def score_batch(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Score several requests in one pass; one result per request, in order."""
        ...


def check_request(user_row: np.ndarray, offer_features: np.ndarray, positions: np.ndarray) -> ScoreRequest:
    """Coerce to float32 (no copy when already float32) and check shapes, with messages naming the argument."""
    user_row = np.asarray(user_row, dtype=np.float32)
    offer_features = np.asarray(offer_features, dtype=np.float32)
    positions = np.asarray(positions, dtype=np.float32)
    if user_row.shape != (N_FEATURES,):
        raise ValueError(f"user_row must have shape ({N_FEATURES},), got {user_row.shape}")
    if offer_features.ndim != 2 or offer_features.shape[1] != N_OFFER:
        raise ValueError(f"offer_features must have shape (n, {N_OFFER}), got {offer_features.shape}")
    if positions.shape != (offer_features.shape[0],):
        raise ValueError(f"positions must have shape ({offer_features.shape[0]},), got {positions.shape}")
    return user_row, offer_features, positions


_EMPTY = np.zeros(0, dtype=np.float32)
_F32 = np.dtype(np.float32)  # numpy's built-in dtypes are singletons: `is` compares them
_F32_STRIDES = (4,)  # a contiguous float32 vector


class CpuProvider:
    """numpy on the CPU, layer 1 factorised (see module docstring): ~26 µs for 64 candidates here
    against ~60 µs for the full 64 x 256 forward (bench/inference_bench.py)."""

    name: ClassVar[str] = "cpu"

    def __init__(self, weights: CoLaNetWeights) -> None:
        self.check()
        self.weights = weights
        self._W1_user = np.ascontiguousarray(weights.W1[:N_USER])
        # position column 139 and offer columns 140..203 are contiguous: one GEMM covers both
        self._W1_offer = np.ascontiguousarray(weights.W1[POSITION_COL : OFFER_COLS.stop])
        # score_indexed: the offer columns alone (the per-offer table is built from them once per
        # snapshot) and the position column as a vector (its term is rank-1: positions x W1[139])
        self._W1_offer64 = np.asarray(weights.W1[OFFER_COLS], dtype=np.float64)
        self._w1_position = np.ascontiguousarray(weights.W1[POSITION_COL], dtype=np.float32)
        self._tables: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
        self._position_terms: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._position_cache: tuple[np.ndarray, np.ndarray] | None = None
        # X@W1 + b1 > theta  <=>  offer_part > theta - b1 - user_part: the per-request user term is
        # the (negated) threshold the offer part is compared against — no n x H add needed
        self._theta_minus_b1 = (weights.theta - weights.b1).astype(np.float32)
        self._W2 = weights.W2
        self._b2 = weights.b2
        # the compiled kernel's layer 2: W2 transposed (2 x H), zero-padded to a multiple of 8 units
        hp = -(-weights.hidden // 8) * 8
        self._W2t = np.zeros((2, hp), dtype=np.float32)
        self._W2t[:, : weights.hidden] = weights.W2.T
        self._W1_user32 = np.ascontiguousarray(self._W1_user, dtype=np.float32)
        self._local = threading.local()

    @classmethod
    def check(cls) -> None:
        """Raise ``ProviderUnavailable`` if this provider cannot run on this machine."""

    def _thresholds(self, users: np.ndarray) -> np.ndarray:
        """Per-request firing thresholds for the offer part: ``theta - b1 - users[:, :139] @ W1[:139]``."""
        term = users[..., :N_USER] @ self._W1_user
        np.subtract(self._theta_minus_b1, term, out=term)
        return term

    def _offer_part(self, positions: np.ndarray, offer_features: np.ndarray) -> np.ndarray:
        """``[positions | offer_features] @ W1[139:204]``: columns 139..203 are contiguous."""
        Z = np.empty((offer_features.shape[0], N_OFFER + 1), dtype=np.float32)
        Z[:, 0] = positions
        Z[:, 1:] = offer_features
        return Z @ self._W1_offer

    def offer_table(self, offer_features: np.ndarray) -> np.ndarray:
        """``offer_features @ W1[140:204]`` for every row of a feature table (n_offers x H, float32,
        read-only): each offer's share of layer 1, which depends only on the offer and the weights.
        Computed in float64. A read-only table (a snapshot's features are) is cached for the last two
        seen, keyed by the array object, which the cache keeps alive: built once per (snapshot, model
        version) — this provider is bound to one model version. A writable array could change under
        the cache, so its table is computed afresh on every call."""
        tables = self._tables
        for source, table in tables:
            if source is offer_features:
                return table
        features = np.asarray(offer_features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != N_OFFER:
            raise ValueError(f"offer_features must have shape (n, {N_OFFER}), got {features.shape}")
        table = (features.astype(np.float64) @ self._W1_offer64).astype(np.float32)
        table.setflags(write=False)
        if isinstance(offer_features, np.ndarray) and not offer_features.flags.writeable:
            self._tables = ((offer_features, table), *tables[:1])  # one assignment: safe across threads
        return table

    def score_indexed(self, user_row: np.ndarray, offer_features: np.ndarray, index: np.ndarray,
                      positions: np.ndarray) -> ScoreResult:
        """``score(user_row, offer_features[index], positions)`` from the cached offer table
        (``offer_table``): per request only a row gather, the rank-1 position term and the
        comparison, instead of an n x 65 @ 65 x H GEMM. ``offer_features`` is a whole snapshot's
        feature table (float32[n_offers, 64]) and ``index`` the candidates' rows in it."""
        table = self.offer_table(offer_features)
        user_row = np.asarray(user_row, dtype=np.float32)
        positions = np.asarray(positions, dtype=np.float32)
        if user_row.shape != (N_FEATURES,):
            raise ValueError(f"user_row must have shape ({N_FEATURES},), got {user_row.shape}")
        if index.ndim != 1 or positions.shape != index.shape:
            raise ValueError(f"positions must have shape {index.shape} (one per index), got {positions.shape}")
        n = index.shape[0]
        if n == 0:
            return _EMPTY.copy(), _EMPTY.copy()
        pre = table.take(index, axis=0)  # a new n x H array (IndexError for an index out of range)
        pre += self._position_term(positions)
        np.greater(pre, self._thresholds(user_row), out=pre, casting="unsafe")  # spike: 1.0/0.0 in place
        return self._output(pre)

    def rank_indexed(self, user_row: np.ndarray, offer_features: np.ndarray, candidates: list[int],
                     positions: np.ndarray) -> RankResult:
        """``score_indexed`` for the bid path, as plain lists: the candidates' positions best score first
        (``np.argsort(-score, kind="stable")``), then score and predicted CTR per candidate (Python
        floats of the float32 values). ``candidates`` is a list of row numbers of ``offer_features``.
        With the compiled kernel (``apps.inference._colanet.rank``) one call replaces the ~15 numpy calls
        of ``score_indexed``, both BLAS products included; without it, that numpy path. The two agree
        within a few float32 ulps (BLAS's own summation order differs between its CPU kernels)."""
        kernel = _colanet
        n = len(candidates)
        if kernel is None or n == 0 or n > 256:
            score, ctr = self.score_indexed(user_row, offer_features, np.array(candidates, dtype=np.intp), positions)
            return np.argsort(-score, kind="stable").tolist(), score.tolist(), ctr.tolist()
        table = self.offer_table(offer_features)
        # the bid path passes float32 arrays, contiguous: converted only when they are not (a no-op
        # np.asarray / np.ascontiguousarray still costs a call each)
        if type(user_row) is not np.ndarray or user_row.dtype is not _F32:
            user_row = np.asarray(user_row, dtype=np.float32)
        if type(positions) is not np.ndarray or positions.dtype is not _F32 or positions.strides != _F32_STRIDES:
            positions = np.ascontiguousarray(positions, dtype=np.float32)
        if user_row.shape != (N_FEATURES,):
            raise ValueError(f"user_row must have shape ({N_FEATURES},), got {user_row.shape}")
        if positions.shape != (n,):
            raise ValueError(f"positions must have shape ({n},) (one per candidate), got {positions.shape}")
        # layers, numpy's own float32 tanh loop (see _colanet.layers) and ranked, in one call
        return kernel.rank(table, candidates, positions, self._w1_position, user_row, self._W1_user32,
                           self._theta_minus_b1, self._W2t, self._b2)

    def _position_term(self, positions: np.ndarray) -> np.ndarray:
        """``positions x W1[139]`` (n x H), cached when the positions cannot change (read-only, and
        so is their base, if any): by identity — the bid processor passes the same prefix views of
        one ranked column every time — or, for a new view at the start of a cached read-only column,
        as a slice of that column's term. Anything else is multiplied out per call."""
        terms = self._position_terms
        hit = terms.get(id(positions))
        if hit is not None and hit[0] is positions:
            return hit[1]
        base = positions.base
        if positions.flags.writeable or (base is not None and (not isinstance(base, np.ndarray) or base.flags.writeable)):
            return np.multiply.outer(positions, self._w1_position)
        if (
            base is not None and base.ndim == 1 and base.dtype == np.float32 and positions.ndim == 1
            and positions.strides == base.strides
            and positions.__array_interface__["data"][0] == base.__array_interface__["data"][0]
        ):
            cached = self._position_cache
            if cached is None or cached[0] is not base:
                term = np.multiply.outer(base, self._w1_position)
                term.setflags(write=False)
                self._position_cache = cached = (base, term)  # one assignment: safe across threads
            term = cached[1][: positions.shape[0]]
        else:
            term = np.multiply.outer(positions, self._w1_position)
            term.setflags(write=False)
        if len(terms) >= 512:
            terms.clear()
        terms[id(positions)] = (positions, term)  # the key object is kept alive: its id stays its own
        return term

    def _output(self, hidden: np.ndarray) -> ScoreResult:
        out = hidden @ self._W2
        out += self._b2
        np.tanh(out, out=out)
        return heads(out)

    def score(self, user_row: np.ndarray, offer_features: np.ndarray, positions: np.ndarray) -> ScoreResult:
        user_row, offer_features, positions = check_request(user_row, offer_features, positions)
        if offer_features.shape[0] == 0:
            return _EMPTY.copy(), _EMPTY.copy()
        offer_part = self._offer_part(positions, offer_features)
        np.greater(offer_part, self._thresholds(user_row), out=offer_part, casting="unsafe")  # spike: 1.0/0.0 in place
        return self._output(offer_part)

    def score_batch(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """One user GEMM (k x 139 @ 139 x H) and one offer GEMM over all requests' rows."""
        if not requests:
            return []
        checked = [check_request(*request) for request in requests]
        counts = [offers.shape[0] for _, offers, _ in checked]
        total = sum(counts)
        if total == 0:
            return [(_EMPTY.copy(), _EMPTY.copy()) for _ in checked]
        Z, offer_part = self._workspace(total)
        start = 0
        for _, offers, positions in checked:
            Z[start : start + offers.shape[0], 0] = positions
            Z[start : start + offers.shape[0], 1:] = offers
            start += offers.shape[0]
        np.matmul(Z, self._W1_offer, out=offer_part)
        thresholds = self._thresholds(np.stack([user for user, _, _ in checked]))
        # spike each request's rows against its own thresholds in place (np.repeat-ing the
        # thresholds to rows x H would allocate another large temporary)
        start = 0
        for i, count in enumerate(counts):
            rows = offer_part[start : start + count]
            np.greater(rows, thresholds[i], out=rows, casting="unsafe")
            start += count
        score, ctr = self._output(offer_part)  # new arrays: nothing returned aliases the workspace
        bounds = np.cumsum(counts)[:-1]
        return list(zip(np.split(score, bounds), np.split(ctr, bounds), strict=True))

    def _workspace(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-thread buffers reused across batches. A 16 x 64-row batch needs ~0.8 MB of temporaries;
        allocated fresh each call, glibc hands them back to the kernel and every batch page-faults
        them in again (measured ~1 ms per batch against ~0.35 ms with reuse)."""
        local = self._local
        Z = getattr(local, "Z", None)
        if Z is None or Z.shape[0] < rows:
            local.Z = Z = np.empty((rows, N_OFFER + 1), dtype=np.float32)
            local.hidden = np.empty((rows, self.weights.hidden), dtype=np.float32)
        return Z[:rows], local.hidden[:rows]


class AmpereProvider(CpuProvider):
    """Ampere Altra (ARM Neoverse): the same numpy path, whose OpenBLAS kernels use NEON on aarch64."""

    name: ClassVar[str] = "ampere"

    @classmethod
    def check(cls) -> None:
        machine = platform.machine()
        if machine.lower() not in {"aarch64", "arm64"}:
            raise ProviderUnavailable(f"ampere provider needs an aarch64 CPU, this machine is {machine}")


# Accelerators get fixed-shape inputs (compilers want static shapes): full feature matrices,
# zero-padded to ACCEL_ROWS rows (16 requests x 64 candidates, the batcher's default maximum).
ACCEL_ROWS = 1024


class _AcceleratorProvider:
    """Common shape of the accelerator providers: check prerequisites, compile once, run padded batches.

    Subclasses define ``_build(weights)`` returning a function that maps float32[ACCEL_ROWS, 256]
    to the ACCEL_ROWS x 2 tanh output. Written against each vendor's documented Python API; this code
    base's CI box has none of these devices, so only the prerequisite checks are exercised by tests.
    """

    name: ClassVar[str]
    requirements: ClassVar[tuple[tuple[str, Callable[[], bool]], ...]]

    def __init__(self, weights: CoLaNetWeights) -> None:
        self.check()
        self.weights = weights
        self._run = self._build(weights)  # type: ignore[attr-defined]

    @classmethod
    def check(cls) -> None:
        missing = [what for what, present in cls.requirements if not present()]
        if missing:
            raise ProviderUnavailable(f"{cls.name} provider is unavailable on this machine: " + "; ".join(missing))

    def score(self, user_row: np.ndarray, offer_features: np.ndarray, positions: np.ndarray) -> ScoreResult:
        return self.score_batch([(user_row, offer_features, positions)])[0]

    def score_batch(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        checked = [check_request(*request) for request in requests]
        counts = [offers.shape[0] for _, offers, _ in checked]
        X = np.concatenate([feature_matrix(*request) for request in checked]) if checked else np.zeros((0, N_FEATURES), np.float32)
        outs = []
        for start in range(0, X.shape[0], ACCEL_ROWS):
            chunk = X[start : start + ACCEL_ROWS]
            padded = np.zeros((ACCEL_ROWS, N_FEATURES), dtype=np.float32)
            padded[: chunk.shape[0]] = chunk
            outs.append(np.asarray(self._run(padded), dtype=np.float32)[: chunk.shape[0]])
        out = np.concatenate(outs) if outs else np.zeros((0, 2), np.float32)
        score, ctr = heads(out)
        bounds = np.cumsum(counts)[:-1]
        return list(zip(np.split(score, bounds), np.split(ctr, bounds), strict=True))


def _module_present(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package raises instead of returning None
        return False


def _device_nodes(pattern: str) -> bool:
    import glob

    return bool(glob.glob(pattern))


def _torch_module(weights: CoLaNetWeights):
    """The full-matrix CoLaNet forward as a torch module (input for the Neuron and Groq compilers)."""
    import torch

    class CoLaNetModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name in ("W1", "b1", "theta", "W2", "b2"):
                self.register_buffer(name, torch.from_numpy(np.array(getattr(weights, name))))

        def forward(self, x):  # noqa: D401 - torch API
            hidden = ((x @ self.W1 + self.b1) > self.theta).to(x.dtype)
            return torch.tanh(hidden @ self.W2 + self.b2)

    return CoLaNetModule().eval()


class _NeuronProvider(_AcceleratorProvider):
    """AWS Inferentia through the Neuron SDK: ``torch_neuronx.trace`` compiles the module for the
    NeuronCores of this instance (neuronx-cc targets the instance it runs on)."""

    requirements = (
        ("the AWS Neuron SDK for PyTorch (Python module 'torch_neuronx', package torch-neuronx) is not installed",
         lambda: _module_present("torch_neuronx")),
        ("no Neuron device (/dev/neuron*) is present: run on an Inferentia instance with the aws-neuronx-dkms driver",
         lambda: _device_nodes("/dev/neuron*")),
    )

    def _build(self, weights: CoLaNetWeights) -> Callable[[np.ndarray], np.ndarray]:
        import torch
        import torch_neuronx

        traced = torch_neuronx.trace(_torch_module(weights), torch.zeros(ACCEL_ROWS, N_FEATURES))
        return lambda X: traced(torch.from_numpy(X)).numpy()


class Inferentia2Provider(_NeuronProvider):
    name: ClassVar[str] = "inferentia2"


class Inferentia3Provider(_NeuronProvider):
    name: ClassVar[str] = "inferentia3"


class GroqProvider(_AcceleratorProvider):
    """Groq LPU through GroqFlow (``groqit`` compiles with groq-devtools, runs with groq-runtime)."""

    name: ClassVar[str] = "groq"
    requirements = (
        ("GroqFlow is not installed (Python module 'groqflow'; it also needs the GroqWare Suite "
         "packages groq-devtools and groq-runtime)", lambda: _module_present("groqflow")),
        ("no GroqCard device (/dev/groq*) is present", lambda: _device_nodes("/dev/groq*")),
    )

    def _build(self, weights: CoLaNetWeights) -> Callable[[np.ndarray], np.ndarray]:
        import torch
        from groqflow import groqit

        gmodel = groqit(_torch_module(weights), {"x": torch.zeros(ACCEL_ROWS, N_FEATURES)})
        return lambda X: np.asarray(gmodel(x=torch.from_numpy(X)))


class TenstorrentProvider(_AcceleratorProvider):
    """Tenstorrent Wormhole/Blackhole through TT-NN: weights live on the device, each batch is one
    matmul/add/gt/matmul/add/tanh chain in float32 tile layout."""

    name: ClassVar[str] = "tenstorrent"
    requirements = (
        ("TT-NN is not installed (Python module 'ttnn', from tt-metal)", lambda: _module_present("ttnn")),
        ("no Tenstorrent device (/dev/tenstorrent/*) is present: install tt-kmd and a Tenstorrent card",
         lambda: _device_nodes("/dev/tenstorrent/*")),
    )

    def _build(self, weights: CoLaNetWeights) -> Callable[[np.ndarray], np.ndarray]:
        import torch
        import ttnn

        device = ttnn.open_device(device_id=0)

        def to_device(a: np.ndarray):
            t = torch.from_numpy(np.array(a, dtype=np.float32, ndmin=2))
            return ttnn.from_torch(t, dtype=ttnn.float32, layout=ttnn.TILE_LAYOUT, device=device)

        W1, b1, theta, W2, b2 = (to_device(getattr(weights, n)) for n in ("W1", "b1", "theta", "W2", "b2"))

        def run(X: np.ndarray) -> np.ndarray:
            pre = ttnn.add(ttnn.matmul(to_device(X), W1), b1)
            hidden = ttnn.gt(pre, theta)
            out = ttnn.tanh(ttnn.add(ttnn.matmul(hidden, W2), b2))
            return ttnn.to_torch(out).numpy()[:, :2]

        return run


PROVIDERS: dict[str, type] = {
    cls.name: cls
    for cls in (CpuProvider, GroqProvider, Inferentia2Provider, Inferentia3Provider, AmpereProvider, TenstorrentProvider)
}


def provider_name_from_env() -> str:
    """``CAMPAIGN_EXPRESS__NPU__PROVIDER`` as ``config.env`` read it, lower-cased (default ``cpu``)."""
    return env.NPU_PROVIDER or DEFAULT_PROVIDER


def get_provider(name: str | None = None, *, weights: CoLaNetWeights | None = None) -> InferenceProvider:
    """Build the provider ``name`` (default: ``CAMPAIGN_EXPRESS__NPU__PROVIDER``, else ``cpu``) bound
    to ``weights`` (default: the seeded initialisation). Raises ``ProviderUnavailable`` for an unknown
    name (listing the valid ones) or when the provider's SDK/hardware is missing."""
    chosen = (name or provider_name_from_env()).strip().lower()
    cls = PROVIDERS.get(chosen)
    if cls is None:
        raise ProviderUnavailable(
            f"unknown inference provider {chosen!r} ({PROVIDER_ENV}); valid names: {', '.join(sorted(PROVIDERS))}"
        )
    return cls(weights if weights is not None else CoLaNetWeights.seeded())
