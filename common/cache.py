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


OMIT_AT_DEFAULT = {"omit_at_default": True}
"""`dataclasses.field(default=..., metadata=OMIT_AT_DEFAULT)`: a field added after configs were hashed and recorded;
`recorded_fields` leaves it out while it holds its default, so every earlier cache key, recorded config (results/)
and checkpoint fingerprint stays valid for the configs that do not use it."""


def recorded_fields(obj) -> dict:
    """`dataclasses.asdict(obj)` without the fields marked `OMIT_AT_DEFAULT` that hold their default (in `obj` and in
    the dataclasses its fields hold): what cache keys, recorded configs and checkpoint fingerprints are made of."""
    out = dataclasses.asdict(obj)
    _drop_defaults(obj, out)
    return out


def _drop_defaults(obj, fields: dict) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("omit_at_default") and value == f.default:
            del fields[f.name]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            _drop_defaults(value, fields[f.name])


def config_hash(obj) -> str:
    """Short stable hash of a dataclass's fields (the cache key): equal configs → equal keys."""
    text = json.dumps(recorded_fields(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def save_atomic(obj, path: Path) -> None:
    """`torch.save(obj, path)` written to a per-process temporary file and moved into place with one `os.replace`,
    so a reader (another test worker, a parallel run) never sees a half-written file and concurrent writers of the
    same entry do not clobber each other's temporary file."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def enable_jax_compilation_cache(min_compile_time_s: float = 1.0) -> Path:
    """Persist XLA compilations under `cache_root()/jax` so that reruns of a JAX paper skip them.

    Only compilations slower than `min_compile_time_s` are stored. Takes effect for the computations compiled after
    the call (call it before the first jitted function runs). Returns the cache directory.
    """
    import jax

    path = cache_root() / "jax"
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_s)
    return path
