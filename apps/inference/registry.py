"""Where published models live: ``<model dir>/colanet-<version>.npz``, announced on Redis.

The model directory is ``CAMPAIGN_EXPRESS__NPU__MODEL_DIR`` (default ``var/models``; a relative
path is taken from the project root). A file appears there only complete: publishing writes a
temporary file in the same directory and ``os.replace``-s it into place. The *current* model is the
most recently published file (newest modification time), so re-publishing an older version rolls
back to it. Every publish is announced on the pub/sub channel ``models:published`` (of the Redis
database: ``apps.core.redis.channel``) with the version as message; runtimes also poll the
directory in case they missed the announcement.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from config import env

DEFAULT_MODEL_DIR = "var/models"
MODEL_CHANNEL = "models:published"
FILE_PREFIX = "colanet-"
FILE_SUFFIX = ".npz"
_FILE_RE = re.compile(r"^colanet-(?P<version>[A-Za-z0-9][A-Za-z0-9._-]{0,63})\.npz$")
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class ModelFile:
    version: str
    path: Path
    mtime_ns: int
    size: int


def model_dir() -> Path:
    """The configured model directory (absolute)."""
    path = Path(env.NPU_MODEL_DIR or DEFAULT_MODEL_DIR)
    return path if path.is_absolute() else PROJECT_ROOT / path


def model_path(directory: Path, version: str) -> Path:
    return directory / f"{FILE_PREFIX}{version}{FILE_SUFFIX}"


def published_models(directory: Path) -> list[ModelFile]:
    """Every ``colanet-<version>.npz`` in ``directory``, oldest publication first."""
    found: list[ModelFile] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = _FILE_RE.match(entry.name)
        if not match or not entry.is_file():
            continue
        try:
            stat = entry.stat()
        except FileNotFoundError:  # replaced or removed between scandir and stat
            continue
        found.append(ModelFile(match["version"], Path(entry.path), stat.st_mtime_ns, stat.st_size))
    found.sort(key=lambda f: (f.mtime_ns, f.version))
    return found


def newest_model(directory: Path) -> ModelFile | None:
    """The current (most recently published) model file, or ``None`` when there is none."""
    models = published_models(directory)
    return models[-1] if models else None
