"""CoLaNet: a two-layer spiking scorer over the 256-float feature rows (docs/RULES.md §1 step 5).

::

    pre    = X @ W1 + b1                      (n x H)
    hidden = 1.0 where pre > theta else 0.0   (threshold / spiking activation, theta per unit)
    out    = tanh(hidden @ W2 + b2)           (n x 2)
    score         = out[:, 0]                 in (-1, 1)
    predicted_ctr = (out[:, 1] + 1) / 2       in (0, 1)

``(tanh(z) + 1) / 2`` is exactly ``sigmoid(2 z)``, so head 1 is a logistic CTR head whose logit is
``2 z``. float32 ``tanh`` saturates to exactly ±1 for large ``|z|``, so both outputs are clipped to
their open intervals (``score`` to ±(1 − 2⁻²⁴), ``predicted_ctr`` to ``[1e-6, 1 − 1e-6]``).

Everything is float32 (the first GEMM costs half as much as in float64). Weights are immutable
once built (arrays are read-only), so a scorer holding a reference can never see a half-swapped
model.
"""
from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.inference.features import (
    CTR_SCALE,
    FEATURE_LAYOUT_VERSION,
    N_FEATURES,
    OFFER_COLS,
    OFFER_CTR_SCALED,
    OFFER_MAX_BID,
)

DEFAULT_HIDDEN = 128
N_OUTPUTS = 2
SCORE_MAX = np.float32(np.nextafter(np.float32(1.0), np.float32(0.0)))
CTR_EPS = np.float32(1e-6)
CTR_MAX = np.float32(1.0) - CTR_EPS
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REQUIRED_ARRAYS = ("W1", "b1", "theta", "W2", "b2", "version")

# Seeded initialisation: the "ladder" units (see CoLaNetWeights.seeded).
SEED_CTR_UNITS = 32
SEED_BID_UNITS = 16
SEED_CTR_FLOOR = 0.25 / SEED_CTR_UNITS  # scaled-CTR level predicted when no CTR unit fires


class ModelFileError(ValueError):
    """A weights file that cannot be used; the message says which file and what is wrong."""


def validate_version(version: str) -> str:
    """Versions name files (``colanet-<version>.npz``): 1–64 of ``A-Z a-z 0-9 . _ -``."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ModelFileError(
            f"model version {version!r} is invalid: use 1-64 characters of letters, digits, '.', '_' "
            f"or '-', starting with a letter or digit"
        )
    return version


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class CoLaNetWeights:
    """One immutable, validated set of CoLaNet weights.

    ``W1`` float32[256, H], ``b1`` float32[H], ``theta`` float32[H] (per-unit firing threshold; a
    scalar in a file is broadcast), ``W2`` float32[H, 2], ``b2`` float32[2], ``version`` str.
    ``layout_version`` is the feature layout the weights read (``features.FEATURE_LAYOUT_VERSION``;
    a file without one is layout 1); ``metadata`` what the trainer recorded (metrics, data window…),
    stored in the file as JSON text.
    """

    W1: np.ndarray
    b1: np.ndarray
    theta: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    version: str
    layout_version: int = FEATURE_LAYOUT_VERSION
    metadata: dict | None = None

    def __post_init__(self) -> None:
        arrays = _checked_arrays({"W1": self.W1, "b1": self.b1, "theta": self.theta, "W2": self.W2, "b2": self.b2})
        for name, value in arrays.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "version", validate_version(self.version))

    @property
    def hidden(self) -> int:
        return self.W1.shape[1]

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference full-matrix forward pass (see module ``forward``)."""
        return forward(self, X)

    # --- files -------------------------------------------------------------------------------
    @classmethod
    def from_npz(cls, path: str | Path) -> "CoLaNetWeights":
        """Load and validate a ``.npz`` weights file (no pickles). Raises ``ModelFileError`` naming
        the file and the problem: unreadable, missing arrays, wrong shape or dtype, NaN/inf, bad version."""
        path = Path(path)
        try:
            if not path.is_file():
                raise ModelFileError(f"{path}: no such file")
            if not zipfile.is_zipfile(path):  # np.load would otherwise try to unpickle it
                raise ModelFileError(f"{path}: not an .npz file (not a zip archive)")
            with np.load(path, allow_pickle=False) as data:
                present = set(data.files)
                missing = [name for name in REQUIRED_ARRAYS if name not in present]
                if missing:
                    raise ModelFileError(
                        f"{path}: missing arrays {missing} (a CoLaNet file holds {list(REQUIRED_ARRAYS)})"
                    )
                raw = {name: data[name] for name in REQUIRED_ARRAYS}
                layout = int(data["layout_version"]) if "layout_version" in present else 1
                meta_text = str(data["metadata"][()]) if "metadata" in present else ""
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, TypeError) as exc:
            raise ModelFileError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
        if layout != FEATURE_LAYOUT_VERSION:
            raise ModelFileError(
                f"{path}: trained on feature layout {layout}, but this code builds layout {FEATURE_LAYOUT_VERSION} "
                f"rows; retrain it on layout-{FEATURE_LAYOUT_VERSION} data or run the code it was trained for"
            )
        try:
            metadata = json.loads(meta_text) if meta_text else None
        except ValueError as exc:
            raise ModelFileError(f"{path}: 'metadata' is not JSON ({exc})") from exc
        version = raw.pop("version")
        if version.shape != () or version.dtype.kind != "U":
            raise ModelFileError(f"{path}: 'version' must be a 0-d string array, got dtype {version.dtype} shape {version.shape}")
        try:
            return cls(version=str(version[()]), layout_version=layout, metadata=metadata, **raw)
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: {exc}") from exc

    def to_npz(self, path: str | Path) -> None:
        """Write the weights as an uncompressed ``.npz`` (the arrays ``from_npz`` reads, with the layout
        version and the metadata as JSON text)."""
        extra = {"layout_version": np.array(self.layout_version, dtype=np.int64)}
        if self.metadata is not None:
            extra["metadata"] = np.array(json.dumps(self.metadata, sort_keys=True))
        with open(path, "wb") as fh:
            np.savez(
                fh, W1=self.W1, b1=self.b1, theta=self.theta, W2=self.W2, b2=self.b2, version=np.array(self.version),
                **extra,
            )

    # --- seeded initialisation ----------------------------------------------------------------
    @classmethod
    def seeded(cls, seed: int = 42, version: str | None = None, hidden: int = DEFAULT_HIDDEN) -> "CoLaNetWeights":
        """A deterministic, documented initialisation used when no trained model is published.

        ``hidden`` units (default 128) are split into:

        * **CTR ladder**, units ``[0, 32)``: unit j reads only the scaled observed CTR (offer
          feature 50, ``min(ctr / 5 %, 1)``) with weight 1 and threshold ``(j + 0.5) / 32``, so the
          units that fire are always a prefix whose length is the CTR rounded to 1/32 of 5 %.
          Head 1's weights are the increments of ``z(k) = logit(target_k) / 2`` with
          ``target_k = 5 % · max(k, 0.25) / 32``, so before any training ``predicted_ctr`` follows the
          offer's observed CTR (to the nearest 0.156 %, floor 0.04 %) up to the small nudges below.
        * **bid ladder**, units ``[32, 48)``: the same on the normalised max bid (offer feature 48,
          ``min(cpm / 50, 1)``), 16 levels of $3.125 CPM.
        * **random units**, the rest: scaled normal weights ``N(0, 1/64)`` (std 0.125) on every live
          column ``[0, 204)`` (zero on the always-zero columns ``[204, 256)``), biases ``N(0, 0.1²)``,
          threshold 0 — these give each user × offer pair its own variation.

        Score head (0): ``b2 = -0.8``, CTR ladder ``+1.6/32`` per unit, bid ladder ``+0.4/16`` per
        unit, random units ``N(0, (0.5/√R)²)`` — higher observed CTR and higher max bid score higher.
        CTR head (1): the ladder increments above; random units ``N(0, (0.1/√R)²)``.
        """
        ladder = SEED_CTR_UNITS + SEED_BID_UNITS
        if hidden <= ladder:
            raise ValueError(f"hidden must exceed {ladder} (the ladder units), got {hidden}")
        rng = np.random.default_rng(seed)
        n_random = hidden - ladder
        live = OFFER_COLS.stop  # columns [204, 256) are always zero
        W1 = np.zeros((N_FEATURES, hidden), dtype=np.float64)
        b1 = np.zeros(hidden)
        theta = np.zeros(hidden)
        W2 = np.zeros((hidden, N_OUTPUTS))
        b2 = np.zeros(N_OUTPUTS)

        ctr_units = np.arange(SEED_CTR_UNITS)
        bid_units = SEED_CTR_UNITS + np.arange(SEED_BID_UNITS)
        W1[OFFER_COLS.start + OFFER_CTR_SCALED, ctr_units] = 1.0
        theta[ctr_units] = (ctr_units + 0.5) / SEED_CTR_UNITS
        W1[OFFER_COLS.start + OFFER_MAX_BID, bid_units] = 1.0
        theta[bid_units] = (np.arange(SEED_BID_UNITS) + 0.5) / SEED_BID_UNITS

        random_units = slice(ladder, hidden)
        W1[:live, random_units] = rng.normal(0.0, 0.125, size=(live, n_random))
        b1[random_units] = rng.normal(0.0, 0.1, size=n_random)

        levels = np.maximum(np.arange(SEED_CTR_UNITS + 1), SEED_CTR_FLOOR * SEED_CTR_UNITS)
        target = CTR_SCALE * levels / SEED_CTR_UNITS
        z = 0.5 * np.log(target / (1.0 - target))
        b2[1] = z[0]
        W2[ctr_units, 1] = np.diff(z)
        W2[random_units, 1] = rng.normal(0.0, 0.1 / np.sqrt(n_random), size=n_random)

        b2[0] = -0.8
        W2[ctr_units, 0] = 1.6 / SEED_CTR_UNITS
        W2[bid_units, 0] = 0.4 / SEED_BID_UNITS
        W2[random_units, 0] = rng.normal(0.0, 0.5 / np.sqrt(n_random), size=n_random)
        return cls(W1=W1, b1=b1, theta=theta, W2=W2, b2=b2, version=version or f"seed-{seed}")


def _checked_arrays(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate dtype, shape and finiteness; return read-only float32 copies (theta broadcast to H)."""
    out: dict[str, np.ndarray] = {}
    for name in ("W1", "b1", "theta", "W2", "b2"):
        value = np.asarray(raw[name])
        if value.dtype.kind != "f":
            raise ModelFileError(f"{name} must be a floating-point array, got dtype {value.dtype}")
        out[name] = value
    W1 = out["W1"]
    if W1.ndim != 2 or W1.shape[0] != N_FEATURES or W1.shape[1] < 1:
        raise ModelFileError(f"W1 must have shape ({N_FEATURES}, H), got {W1.shape}")
    hidden = W1.shape[1]
    expected = {"b1": (hidden,), "W2": (hidden, N_OUTPUTS), "b2": (N_OUTPUTS,)}
    for name, shape in expected.items():
        if out[name].shape != shape:
            raise ModelFileError(f"{name} must have shape {shape} (H={hidden}), got {out[name].shape}")
    theta = out["theta"]
    if theta.shape in {(), (1,)}:
        theta = np.full(hidden, float(theta.reshape(())), dtype=np.float32)
    elif theta.shape != (hidden,):
        raise ModelFileError(f"theta must be a scalar or have shape ({hidden},), got {theta.shape}")
    out["theta"] = theta
    for name, value in out.items():
        with np.errstate(over="ignore"):  # too-large values become inf and are reported just below
            as32 = value.astype(np.float32)
        bad = int(np.count_nonzero(~np.isfinite(as32)))
        if bad:
            raise ModelFileError(f"{name} has {bad} non-finite values (NaN/inf, or too large for float32)")
        out[name] = _readonly(as32)
    return out


def heads(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the n x 2 tanh output into (score, predicted_ctr), both float32[n], clipped open."""
    # np.minimum/np.maximum rather than np.clip: np.clip's Python wrapper costs ~2 µs per call here
    score = np.maximum(out[:, 0], -SCORE_MAX)
    np.minimum(score, SCORE_MAX, out=score)
    ctr = out[:, 1] + np.float32(1.0)
    ctr *= np.float32(0.5)
    np.maximum(ctr, CTR_EPS, out=ctr)
    np.minimum(ctr, CTR_MAX, out=ctr)
    return score, ctr


def forward(weights: CoLaNetWeights, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference full-matrix forward pass: ``X`` float32[n, 256] -> (score float32[n], predicted_ctr float32[n])."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        raise ValueError(f"X must have shape (n, {N_FEATURES}), got {X.shape}")
    pre = X @ weights.W1
    pre += weights.b1
    hidden = (pre > weights.theta).astype(np.float32)
    out = np.tanh(hidden @ weights.W2 + weights.b2)
    return heads(out)

