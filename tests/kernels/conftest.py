"""Shared input makers for the kernel tests (random, never zeros)."""

from __future__ import annotations

import pytest
import torch


def make_inputs(n, d, v, *, dtype=torch.float64, seed=0, scale=1.0, ref=False, d_ref=None):
    """hidden (n, d), weight (v, d), targets (n,), plus ref_hidden / ref_weight when `ref`; logits ~ N(0, scale²)."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=torch.float64) * (scale / d**0.5)
    w = torch.randn(v, d, generator=g, dtype=torch.float64)
    t = torch.randint(0, v, (n,), generator=g)
    out = {"hidden": h.to(dtype), "weight": w.to(dtype), "targets": t}
    if ref:
        dr = d_ref or d
        out["ref_hidden"] = (torch.randn(n, dr, generator=g, dtype=torch.float64) * (scale / dr**0.5)).to(dtype)
        out["ref_weight"] = torch.randn(v, dr, generator=g, dtype=torch.float64).to(dtype)
    return out


@pytest.fixture
def inputs():
    return make_inputs
