"""The one public entry point, `fused_logprob`: input checks, backend choice, and the KL estimators.

KL estimators against reference log-probs ℓ_ref, with x = ℓ_ref − log p (Schulman's k1 / k2 / k3):
    k1 = −x,   k2 = x² / 2,   k3 = eˣ − x − 1
They are elementwise in log p, so they are computed here, outside the kernels, by ordinary autograd.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Literal, NamedTuple

BACKENDS = ("auto", "reference", "torch", "triton", "jax", "pallas")
KL_KINDS = ("k1", "k2", "k3", "exact")
Backend = Literal["auto", "reference", "torch", "triton", "jax", "pallas"]
KLKind = Literal["k1", "k2", "k3", "exact"]


class FusedLogprob(NamedTuple):
    """Per-token outputs, each shaped like `targets`."""

    logprobs: Any
    """log π(t_i | h_i) at temperature τ (always ≤ 0)."""
    entropy: Any
    """Entropy of π(· | h_i) at temperature τ."""
    kl: Any
    """KL(π ‖ π_ref) per token (estimator or exact), or None without a reference."""


def _is_jax(x) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.Array | jax.core.Tracer)


def kl_estimator(logprobs, ref_logprobs, kind: str):
    """k1 = −x, k2 = x²/2, k3 = eˣ − x − 1 with x = ℓ_ref − log p (works for torch and JAX arrays)."""
    x = ref_logprobs - logprobs
    if kind == "k1":
        return -x
    if kind == "k2":
        return 0.5 * x * x
    if _is_jax(x):
        import jax.numpy as jnp

        return jnp.expm1(x) - x  # eˣ − 1 − x, accurate for small x
    return x.expm1() - x


def _shape(x) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


def _check_inputs(hidden, weight, targets, temperature, ref_logprobs, ref_hidden, ref_weight, kl, backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if kl not in KL_KINDS:
        raise ValueError(f"kl must be one of {KL_KINDS}, got {kl!r}")
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    hs, ws, ts = _shape(hidden), _shape(weight), _shape(targets)
    if len(hs) < 1 or len(ws) != 2:
        raise ValueError(f"hidden must be (..., D) and weight (V, D); got hidden {hs}, weight {ws}")
    if hs[-1] != ws[1]:
        raise ValueError(f"hidden's last dim D={hs[-1]} does not match weight (V, D)={ws}")
    if ts != hs[:-1]:
        raise ValueError(f"targets shape {ts} must equal hidden's leading shape {hs[:-1]}")
    if ref_logprobs is not None and (ref_hidden is not None or ref_weight is not None):
        raise ValueError("give either ref_logprobs (k1/k2/k3 estimators) or ref_hidden + ref_weight (exact KL)")
    if (ref_hidden is None) != (ref_weight is None):
        raise ValueError("ref_hidden and ref_weight go together (exact KL needs both)")
    if ref_logprobs is not None:
        if kl == "exact":
            raise ValueError("kl='exact' needs ref_hidden and ref_weight, not ref_logprobs")
        if _shape(ref_logprobs) != ts:
            raise ValueError(f"ref_logprobs shape {_shape(ref_logprobs)} must equal targets shape {ts}")
    if ref_hidden is not None:
        if kl in ("k1", "k2"):
            raise ValueError(f"kl={kl!r} needs ref_logprobs; with ref_hidden/ref_weight the KL is exact")
        rhs, rws = _shape(ref_hidden), _shape(ref_weight)
        if rhs[:-1] != hs[:-1] or len(rws) != 2 or rws[0] != ws[0] or rws[1] != rhs[-1]:
            raise ValueError(
                f"ref_hidden must be (..., D_ref) with the leading shape of hidden {hs[:-1]} and ref_weight "
                f"(V={ws[0]}, D_ref); got ref_hidden {rhs}, ref_weight {rws}"
            )
    if kl == "exact" and ref_hidden is None:
        raise ValueError("kl='exact' needs ref_hidden and ref_weight")


def _check_values(xp_isfinite, hidden, targets, vocab: int, ref_hidden) -> None:
    """Value checks that need concrete arrays (skipped for JAX tracers inside jit)."""
    if not bool(xp_isfinite(hidden).all()):
        raise ValueError("hidden contains non-finite values (nan or inf)")
    if ref_hidden is not None and not bool(xp_isfinite(ref_hidden).all()):
        raise ValueError("ref_hidden contains non-finite values (nan or inf)")
    if targets.size if _is_jax(targets) else targets.numel():
        lo, hi = int(targets.min()), int(targets.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"targets must lie in [0, V={vocab}); got values in [{lo}, {hi}]")


def fused_logprob(
    hidden,
    weight,
    targets,
    *,
    temperature: float = 1.0,
    ref_logprobs=None,
    ref_hidden=None,
    ref_weight=None,
    kl: KLKind = "k3",
    backend: Backend = "auto",
) -> FusedLogprob:
    """Per-token log π(t | h), entropy and KL(π ‖ π_ref) from hidden states, never materialising N × V logits.

    hidden (..., D) and weight (V, D) give logits z = h Wᵀ, scaled to s = z / τ; targets (...) are token ids.
    KL: with `ref_logprobs` (...) the estimator `kl` ∈ {k1, k2, k3}; with `ref_hidden` (..., D_ref) and
    `ref_weight` (V, D_ref) the exact full-vocabulary KL (temperature τ applied to both policies); else None.
    Differentiable w.r.t. hidden, weight (and ref_hidden, ref_weight, ref_logprobs).
    backend: "auto" → jax for JAX arrays, triton on CUDA tensors, torch otherwise; or name one of
    reference / torch / triton / jax / pallas (pallas = the jax backend with a Pallas forward kernel).
    """
    _check_inputs(hidden, weight, targets, temperature, ref_logprobs, ref_hidden, ref_weight, kl, backend)
    jax_in = _is_jax(hidden)
    if backend == "auto":
        backend = "jax" if jax_in else ("triton" if hidden.device.type == "cuda" else "torch")
    if jax_in != (backend in ("jax", "pallas")):
        raise TypeError(f"backend {backend!r} does not take {type(hidden).__name__} inputs")
    lead, d = tuple(hidden.shape[:-1]), hidden.shape[-1]
    h2, t1 = hidden.reshape(-1, d), targets.reshape(-1)
    rh2 = None if ref_hidden is None else ref_hidden.reshape(-1, ref_hidden.shape[-1])
    if jax_in:
        import jax
        import jax.numpy as jnp

        if not isinstance(hidden, jax.core.Tracer):
            _check_values(jnp.isfinite, h2, t1, weight.shape[0], rh2)
        from kernels.jax_backend import fused_logprob_jax

        out = fused_logprob_jax(h2, weight, t1, temperature, rh2, ref_weight, pallas=backend == "pallas")
    else:
        import torch

        if t1.dtype.is_floating_point or t1.dtype == torch.bool:
            raise TypeError(f"targets must be an integer tensor, got {t1.dtype}")
        if not hidden.dtype.is_floating_point or hidden.dtype != weight.dtype:
            raise TypeError(f"hidden and weight must share one floating dtype, got {hidden.dtype}, {weight.dtype}")
        if weight.device != hidden.device or t1.device != hidden.device:
            raise ValueError(f"hidden, weight and targets must share a device; got {hidden.device}, {weight.device}")
        _check_values(torch.isfinite, h2, t1, weight.shape[0], rh2)
        out = _torch_backend(backend)(h2, weight, t1, temperature, rh2, ref_weight)
    logp, ent, kl_val = (x if x is None else x.reshape(lead) for x in out)
    if ref_logprobs is not None:
        kl_val = kl_estimator(logp, ref_logprobs, kl)
    return FusedLogprob(logp, ent, kl_val)


def _torch_backend(name: str):
    if name == "reference":
        from kernels.reference import fused_logprob_reference

        return fused_logprob_reference
    if name == "torch":
        from kernels.torch_chunked import fused_logprob_torch

        return fused_logprob_torch
    from kernels.triton_backend import fused_logprob_triton

    return fused_logprob_triton
