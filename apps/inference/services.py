"""Writes of the inference slice: publishing model files (no ORM)."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog

from apps.core import redis as redis_store
from apps.inference import registry
from apps.inference.model import CoLaNetWeights, ModelFileError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PublishedModel:
    version: str
    path: Path
    sha256: str
    receivers: int | None  # processes subscribed to the announcement; None when not announced


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def model_publish(*, source: str | Path, model_dir: str | Path | None = None, announce: bool = True,
                  redis_client=None) -> PublishedModel:
    """Validate ``source``, copy it atomically to ``<model dir>/colanet-<version>.npz`` and announce it.

    The copy is written to a temporary file in the model directory and ``os.replace``-d into place,
    so no process can ever read a partial file. Publishing a version again with identical content
    makes it the current model again (roll back); the same version with different content is refused
    (``ModelFileError``) — versions are immutable. The announcement is a PUBLISH of the version on
    ``models:published`` (``apps.core.redis``); runtimes that miss it pick the file up by polling.
    """
    source = Path(source)
    weights = CoLaNetWeights.from_npz(source)  # raises ModelFileError with the reason
    directory = Path(model_dir) if model_dir is not None else registry.model_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = registry.model_path(directory, weights.version)
    sha = _sha256(source)
    if target.exists() and _sha256(target) != sha:
        raise ModelFileError(
            f"version {weights.version!r} is already published with different weights ({target}); "
            f"versions are immutable, publish under a new version"
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            for block in iter(lambda: src.read(1 << 16), b""):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    receivers = None
    if announce:
        publisher = redis_client or redis_store.client()
        receivers = int(publisher.publish(redis_store.channel(registry.MODEL_CHANNEL, publisher), weights.version))
    log.info("inference_model_published", version=weights.version, path=str(target), sha256=sha,
             announced=announce, receivers=receivers)
    return PublishedModel(version=weights.version, path=target, sha256=sha, receivers=receivers)


def model_export_seed(*, out: str | Path, seed: int, version: str | None = None, hidden: int | None = None) -> CoLaNetWeights:
    """Write the seeded initialisation (``CoLaNetWeights.seeded``) to ``out`` as a versioned file."""
    kwargs = {"hidden": hidden} if hidden is not None else {}
    weights = CoLaNetWeights.seeded(seed=seed, version=version, **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    weights.to_npz(out)
    log.info("inference_seed_model_exported", path=str(out), version=weights.version, seed=seed,
             hidden=weights.hidden)
    return weights
