"""On-disk cache for costly world artefacts (trained models, datasets), keyed by a hash of their config."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cache_root() -> Path:
    """`$REPROZOO_CACHE` or `<repo>/.cache` (git-ignored)."""
    return Path(os.environ.get("REPROZOO_CACHE", ROOT / ".cache"))


def config_hash(obj) -> str:
    """Short stable hash of a dataclass's fields (the cache key): equal configs → equal keys."""
    text = json.dumps(dataclasses.asdict(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
