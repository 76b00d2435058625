"""Deterministic seeding for python, numpy, torch and JAX (each only if installed)."""

from __future__ import annotations

import importlib.util
import os
import random

import numpy as np


def seed_everything(seed: int, *, deterministic_torch: bool = True) -> np.random.Generator:
    """Seed python, numpy and (when installed) torch; return a fresh numpy Generator for `seed`.

    `deterministic_torch` asks torch for deterministic kernels (warn-only, so ops without a
    deterministic version still run) so that reruns give identical numbers on CPU.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)
        if deterministic_torch:
            torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def jax_key(seed: int):
    """A `jax.random.key` for `seed` (JAX is imported lazily: it is an optional extra)."""
    import jax

    return jax.random.key(seed)
