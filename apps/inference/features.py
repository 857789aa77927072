"""The 256-float feature row of docs/RULES.md §1 step 5, built with vectorised numpy.

Layout of one row (float32, one row per candidate offer):

===============  ==========================================================================
columns          meaning
===============  ==========================================================================
``[0, 64)``      user interests (the profile's 64 floats; shorter lists are zero-padded)
``[64, 128)``    segment one-hot: ``1.0`` at ``64 + segment_id % 64``
``[128, 136)``   loyalty vector (docs/RULES.md §2.7; zeros when the user has no loyalty data)
``[136]``        recency score
``[137]``        frequency-cap utilisation ``impressions_1h / max_per_hour``
``[138]``        device code (``DEVICE_CODES``; unknown ``-1.0``)
``[139]``        offer position / batch size
``[140, 204)``   offer features (``offer_features``; sub-layout documented there)
``[204, 256)``   zero
===============  ==========================================================================

Columns ``[0, 139)`` depend only on the user and the request, so the bid path builds them once per
request (``user_row``) and the model's first layer is factorised over them
(``apps.inference.providers``). Offer features depend only on the offer and are built once per
snapshot, not per request.

The bid path logs the compact inputs of every row it bids with (``bid_inputs`` in ClickHouse,
docs/DESIGN.md "Serve-time inputs"); :func:`feature_row` rebuilds the row from them offline with
these same functions, so serving and training share one copy of the layout.
:data:`FEATURE_LAYOUT_VERSION` travels with every logged row and every trained model: change it
whenever a column's meaning changes.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

#: Version of the layout below. Bump it when any column's meaning changes: logged rows and model
#: files carry it, and a model of another layout refuses to load (apps.inference.model).
FEATURE_LAYOUT_VERSION = 1
N_FEATURES = 256
USER_COLS = slice(0, 139)
INTEREST_COLS = slice(0, 64)
SEGMENT_COLS = slice(64, 128)
LOYALTY_COLS = slice(128, 136)
RECENCY_COL = 136
FREQ_COL = 137
DEVICE_COL = 138
POSITION_COL = 139
OFFER_COLS = slice(140, 204)
N_USER = 139
N_OFFER = 64
N_INTERESTS = 64
N_SEGMENT_SLOTS = 64
N_LOYALTY = 8

DEVICE_CODES: dict[str, float] = {"desktop": 0.0, "mobile": 1.0, "tablet": 0.5, "ctv": 0.75}
UNKNOWN_DEVICE_CODE = -1.0

# OpenRTB 2.6 ``device.devicetype`` (AdCOM 1.0 list "Device Types") -> our device type.
# 6 "Connected Device" (watches, speakers, appliances) and 8 "OOH Device" are none of the four
# targetable types, so they map to "unknown" rather than being passed off as mobile.
_OPENRTB_DEVICE_TYPES: dict[int, str] = {
    1: "mobile",   # Mobile/Tablet - General
    2: "desktop",  # Personal Computer
    3: "ctv",      # Connected TV
    4: "mobile",   # Phone
    5: "tablet",   # Tablet
    6: "unknown",  # Connected Device
    7: "ctv",      # Set Top Box
    8: "unknown",  # OOH Device
}

# --- offer feature sub-layout (indices inside the 64 offer features, absolute column = 140 + i) ---
OFFER_CATEGORY = slice(0, 32)         # hashed one-hot of the full IAB category ("IAB1-1")
OFFER_PARENT_CATEGORY = slice(32, 48)  # hashed one-hot of the tier-1 category ("IAB1")
OFFER_MAX_BID = 48                    # min(max_bid_cpm / MAX_BID_SCALE_CPM, 1)
OFFER_CTR = 49                        # observed CTR, clipped to [0, 1]
OFFER_CTR_SCALED = 50                 # min(observed CTR / CTR_SCALE, 1)
OFFER_FORMAT = slice(51, 55)          # one-hot: banner, video, native, other
N_CATEGORY_BUCKETS = 32
N_PARENT_BUCKETS = 16
MAX_BID_SCALE_CPM = 50.0
CTR_SCALE = 0.05
CREATIVE_FORMATS: tuple[str, ...] = ("banner", "video", "native")


def device_type_from_openrtb(devicetype: int | None) -> str:
    """Map OpenRTB 2.6 ``device.devicetype`` to ``desktop|mobile|tablet|ctv|unknown``.

    1 Mobile/Tablet-General and 4 Phone -> mobile; 2 PC -> desktop; 3 Connected TV and 7 Set Top
    Box -> ctv; 5 Tablet -> tablet; 6 Connected Device, 8 OOH, anything else or ``None`` -> unknown.
    """
    if devicetype is None:
        return "unknown"
    return _OPENRTB_DEVICE_TYPES.get(devicetype, "unknown")


def device_code(device_type: str | None) -> float:
    """The column-138 code of a device type (``-1.0`` when unknown)."""
    return DEVICE_CODES.get(device_type or "", UNKNOWN_DEVICE_CODE)


def user_row(
    *,
    interests: Sequence[float] | np.ndarray | None,
    segments: Sequence[int] | np.ndarray | None,
    loyalty: Sequence[float] | np.ndarray | None,
    recency: float,
    impressions_1h: int,
    max_per_hour: int,
    device_type: str | None,
) -> np.ndarray:
    """Build the user/request part of a feature row: a float32[256] with only ``USER_COLS`` filled.

    ``interests`` beyond 64 values and ``loyalty`` beyond 8 are ignored; shorter ones are
    zero-padded. ``segments`` are integer ids (one-hot at ``64 + id % 64``; negative ids wrap the
    same way Python's ``%`` does). ``max_per_hour <= 0`` gives utilisation 1.0 (fully used).
    """
    row = np.zeros(N_FEATURES, dtype=np.float32)
    if interests is not None and len(interests):
        values = np.asarray(interests, dtype=np.float32)[:N_INTERESTS]
        row[: values.shape[0]] = values
    if segments is not None and len(segments):
        ids = np.asarray(segments, dtype=np.int64)
        row[SEGMENT_COLS.start + ids % N_SEGMENT_SLOTS] = 1.0
    if loyalty is not None and len(loyalty):
        values = np.asarray(loyalty, dtype=np.float32)[:N_LOYALTY]
        row[LOYALTY_COLS.start : LOYALTY_COLS.start + values.shape[0]] = values
    row[RECENCY_COL] = recency
    row[FREQ_COL] = frequency_utilisation(impressions_1h, max_per_hour)
    row[DEVICE_COL] = DEVICE_CODES.get(device_type or "", UNKNOWN_DEVICE_CODE)
    return row


def frequency_utilisation(impressions_1h: int, max_per_hour: int) -> float:
    """Column 137: ``impressions_1h / max_per_hour``; 1.0 (fully used) when ``max_per_hour <= 0``."""
    return impressions_1h / max_per_hour if max_per_hour > 0 else 1.0


def _bucket(text: str, buckets: int) -> int:
    # zlib.crc32 is stable across processes and machines; Python's hash() is salted per process.
    return zlib.crc32(text.encode("utf-8")) % buckets


def offer_features(*, category: str, max_bid_cpm: float, observed_ctr: float, creative_format: str) -> np.ndarray:
    """Build an offer's 64 features (columns ``[140, 204)`` of its rows) as float32[64].

    Sub-layout (index inside the 64; absolute column = 140 + index):

    * ``[0, 32)``  hashed one-hot of the full category, ``crc32(category.strip().upper()) % 32``
    * ``[32, 48)`` hashed one-hot of the tier-1 category (text before the first ``-``, e.g.
      ``IAB1`` for ``IAB1-1``), ``crc32(parent) % 16`` — sub-categories of one parent share it
    * ``[48]``     normalised max bid ``min(max_bid_cpm / 50, 1)``
    * ``[49]``     observed CTR clipped to ``[0, 1]``
    * ``[50]``     scaled CTR ``min(observed_ctr / 0.05, 1)`` (typical CTRs are far below 1, so the
      model also sees them on a 0–5 % scale)
    * ``[51, 55)`` creative format one-hot: banner, video, native, other
    * ``[55, 64)`` zero (reserved)

    An empty category sets no category bit.
    """
    out = np.zeros(N_OFFER, dtype=np.float32)
    name = (category or "").strip().upper()
    if name:
        out[OFFER_CATEGORY.start + _bucket(name, N_CATEGORY_BUCKETS)] = 1.0
        parent = name.split("-", 1)[0]
        out[OFFER_PARENT_CATEGORY.start + _bucket(parent, N_PARENT_BUCKETS)] = 1.0
    out[OFFER_MAX_BID] = min(max(float(max_bid_cpm), 0.0) / MAX_BID_SCALE_CPM, 1.0)
    ctr = min(max(float(observed_ctr), 0.0), 1.0)
    out[OFFER_CTR] = ctr
    out[OFFER_CTR_SCALED] = min(ctr / CTR_SCALE, 1.0)
    fmt = (creative_format or "").strip().lower()
    slot = CREATIVE_FORMATS.index(fmt) if fmt in CREATIVE_FORMATS else len(CREATIVE_FORMATS)
    out[OFFER_FORMAT.start + slot] = 1.0
    return out


def position_column(n: int, batch_size: int) -> np.ndarray:
    """Column-139 values for ``n`` candidates in ranked order: ``i / batch_size`` for i in 0..n-1."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return np.arange(n, dtype=np.float32) / np.float32(batch_size)


def feature_matrix(user: np.ndarray, offers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The full float32[n, 256] matrix: the user row's ``USER_COLS`` repeated, positions in
    column 139, offer features in ``OFFER_COLS``, zeros elsewhere (reference path and tests)."""
    offers = np.asarray(offers, dtype=np.float32)
    n = offers.shape[0]
    X = np.zeros((n, N_FEATURES), dtype=np.float32)
    X[:, USER_COLS] = np.asarray(user, dtype=np.float32)[USER_COLS]
    X[:, POSITION_COL] = positions
    X[:, OFFER_COLS] = offers
    return X


def feature_row(
    *,
    interests: Sequence[float] | np.ndarray | None,
    segments: Sequence[int] | np.ndarray | None,
    loyalty: Sequence[float] | np.ndarray | None,
    recency: float,
    impressions_1h: int,
    max_per_hour: int,
    device_type: str | None,
    position: int,
    batch_size: int,
    category: str,
    max_bid_cpm: float,
    observed_ctr: float,
    creative_format: str,
) -> np.ndarray:
    """One complete float32[256] row from its compact inputs: what the bid path scored for the
    candidate ranked ``position`` (0-based) of a request, rebuilt with the serving functions
    (:func:`user_row`, :func:`offer_features`, :func:`position_column`, :func:`feature_matrix`)."""
    user = user_row(interests=interests, segments=segments, loyalty=loyalty, recency=recency,
                    impressions_1h=impressions_1h, max_per_hour=max_per_hour, device_type=device_type)
    offer = offer_features(category=category, max_bid_cpm=max_bid_cpm, observed_ctr=observed_ctr,
                           creative_format=creative_format)
    positions = position_column(position + 1, batch_size)[position:]
    return feature_matrix(user, offer[None, :], positions)[0]
