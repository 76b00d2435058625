"""The public entry point `fused_logprob`: input checks, ignored tokens, reductions, backend choice, KL estimators.

KL estimators against reference log-probs ℓ_ref, with x = ℓ_ref − log p (Schulman's k1 / k2 / k3):
    k1 = −x,   k2 = x² / 2,   k3 = eˣ − x − 1   (textbook, as TRL's GRPO)
    k3_clamped = min(e^c − c − 1, 10) with c = clip(x, −20, 20)   (verl's `low_var_kl`)
They are elementwise in log p, so they are computed here, outside the kernels, by ordinary autograd.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Literal, NamedTuple

BACKENDS = ("auto", "reference", "torch", "triton", "jax", "pallas")
KL_KINDS = ("k1", "k2", "k3", "k3_clamped", "exact")
KL_ESTIMATORS = ("k1", "k2", "k3", "k3_clamped")
REDUCTIONS = ("none", "sum", "mean")
Backend = Literal["auto", "reference", "torch", "triton", "jax", "pallas"]
KLKind = Literal["k1", "k2", "k3", "k3_clamped", "exact"]
Reduction = Literal["none", "sum", "mean"]
K3_LOG_RATIO_CLAMP = 20.0
"""k3_clamped clamps x = ℓ_ref − log p to [−20, 20] before eˣ (verl `low_var_kl`): e^20 ≈ 4.9e8 is finite in fp32,
where the textbook k3's eˣ overflows to inf at x ≈ 88.7 (fp32). Gradient 0 outside the band."""
K3_CLAMP = 10.0
"""k3_clamped is then clamped to ≤ 10 (verl `low_var_kl`), reached at x ≈ −11.0 and x ≈ 2.61; gradient 0 beyond.
The textbook k3 (TRL's GRPO) has neither clamp."""


class FusedLogprob(NamedTuple):
    """Per-token outputs, each shaped like `targets` (scalars with reduction "sum" / "mean")."""

    logprobs: Any
    """log π(t_i | h_i) at temperature τ (always ≤ 0; 0 at ignored tokens)."""
    entropy: Any
    """Entropy of π(· | h_i) at temperature τ, or None with entropy=False."""
    kl: Any
    """KL(π ‖ π_ref) per token (estimator or exact), or None without a reference."""
    lse: Any
    """logsumexp_v (z_iv / τ_i), differentiable (e.g. for a z-loss)."""


def _is_jax(x) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.Array | jax.core.Tracer)


def _is_tracer(x) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


def kl_estimator(logprobs, ref_logprobs, kind: str):
    """With x = ℓ_ref − log p (torch or JAX arrays): k1 = −x, k2 = x²/2, k3 = eˣ − x − 1 (textbook, TRL), or
    k3_clamped = min(e^c − c − 1, K3_CLAMP) with c = clip(x, ±K3_LOG_RATIO_CLAMP) (verl's `low_var_kl`)."""
    x = ref_logprobs - logprobs
    if kind == "k1":
        return -x
    if kind == "k2":
        return 0.5 * x * x
    if kind not in ("k3", "k3_clamped"):
        raise ValueError(f"kind must be one of {KL_ESTIMATORS}, got {kind!r}")
    if _is_jax(x):
        import jax.numpy as jnp

        if kind == "k3":
            return jnp.expm1(x) - x  # eˣ − 1 − x, accurate for small x
        x = jnp.clip(x, -K3_LOG_RATIO_CLAMP, K3_LOG_RATIO_CLAMP)
        return jnp.minimum(jnp.expm1(x) - x, K3_CLAMP)
    if kind == "k3":
        return x.expm1() - x
    x = x.clamp(-K3_LOG_RATIO_CLAMP, K3_LOG_RATIO_CLAMP)
    return (x.expm1() - x).clamp(max=K3_CLAMP)


def _shape(x) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


def _check_args(hidden, weight, targets, temperature, ref_logprobs, ref_hidden, ref_weight, kl, backend, reduction):
    """Metadata checks only (shapes, kinds, combinations): never reads array data."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if kl is not None and kl not in KL_KINDS:
        raise ValueError(f"kl must be None or one of {KL_KINDS}, got {kl!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    hs, ws, ts = _shape(hidden), _shape(weight), _shape(targets)
    if len(hs) < 1 or len(ws) != 2:
        raise ValueError(f"hidden must be (..., D) and weight (V, D); got hidden {hs}, weight {ws}")
    if hs[-1] != ws[1]:
        raise ValueError(f"hidden's last dim D={hs[-1]} does not match weight (V, D)={ws}")
    if ts != hs[:-1]:
        raise ValueError(f"targets shape {ts} must equal hidden's leading shape {hs[:-1]}")
    if isinstance(temperature, int | float):
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    elif not hasattr(temperature, "shape") or _shape(temperature) != ts:
        raise ValueError(f"temperature must be a number or an array shaped like targets {ts}, got {temperature!r}")
    has_lp, has_states = ref_logprobs is not None, ref_hidden is not None or ref_weight is not None
    if (ref_hidden is None) != (ref_weight is None):
        raise ValueError("ref_hidden and ref_weight go together (exact KL needs both)")
    if kl is None and (has_lp or has_states):
        raise ValueError(
            "a reference was given without kl: pass kl='k1'/'k2'/'k3'/'k3_clamped' with ref_logprobs, or "
            "kl='exact' with ref_hidden and ref_weight"
        )
    if kl in KL_ESTIMATORS and (not has_lp or has_states):
        raise ValueError(f"kl={kl!r} is an estimator from ref_logprobs: give ref_logprobs and no ref_hidden/ref_weight")
    if kl == "exact" and (not has_states or has_lp):
        raise ValueError("kl='exact' needs ref_hidden and ref_weight, and no ref_logprobs")
    if has_lp and _shape(ref_logprobs) != ts:
        raise ValueError(f"ref_logprobs shape {_shape(ref_logprobs)} must equal targets shape {ts}")
    if has_states:
        rhs, rws = _shape(ref_hidden), _shape(ref_weight)
        if rhs[:-1] != hs[:-1] or len(rws) != 2 or rws[0] != ws[0] or rws[1] != rhs[-1]:
            raise ValueError(
                f"ref_hidden must be (..., D_ref) with the leading shape of hidden {hs[:-1]} and ref_weight "
                f"(V={ws[0]}, D_ref); got ref_hidden {rhs}, ref_weight {rws}"
            )


def _on_host(x) -> bool:
    """Reading x costs no device synchronisation (CPU torch tensor, or concrete JAX array on CPU)."""
    if _is_jax(x):
        return not _is_tracer(x) and all(d.platform == "cpu" for d in x.devices())
    return x.device.type == "cpu"


def _check_values(xp, named: dict, targets, vocab: int, ignore_index: int, temperature, finite: bool) -> None:
    """Value checks that read the data: target range and positive temperatures; with `finite`, every float input.
    JAX arrays are read as NumPy arrays (inside a jit trace every jnp op is staged, even on constants)."""
    if _is_jax(targets):
        import numpy as xp

        if finite:  # (check_inputs=True is refused earlier for traced inputs)
            named = {k: None if x is None else xp.asarray(x) for k, x in named.items()}
        targets = xp.asarray(targets)
        temperature = None if temperature is None or _is_tracer(temperature) else xp.asarray(temperature)
    if finite:
        for name, x in named.items():
            if x is not None and not bool(xp.isfinite(x).all()):
                raise ValueError(f"{name} contains non-finite values (nan or inf)")
    kept = targets[targets != ignore_index]
    if kept.size if not hasattr(kept, "numel") else kept.numel():
        lo, hi = int(kept.min()), int(kept.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(
                f"targets must lie in [0, V={vocab}) or equal ignore_index={ignore_index}; got values in [{lo}, {hi}]"
            )
    if temperature is None:
        return
    if not bool((temperature > 0).all() & xp.isfinite(temperature).all()):
        raise ValueError("temperature must be finite and > 0 for every token")


def fused_logprob(
    hidden,
    weight,
    targets,
    *,
    temperature: Any = 1.0,
    ref_logprobs=None,
    ref_hidden=None,
    ref_weight=None,
    kl: KLKind | None = None,
    entropy: bool = True,
    ignore_index: int = -100,
    reduction: Reduction = "none",
    check_inputs: bool = False,
    backend: Backend = "auto",
) -> FusedLogprob:
    """Per-token log π(t | h), entropy, KL(π ‖ π_ref) and logsumexp from hidden states, never materialising N × V
    logits.

    hidden (..., D) and weight (V, D) (bf16 / fp16 / fp32 / fp64, mixed allowed; fp32 compute, fp64 when an
    input is fp64) give logits z = h Wᵀ, scaled to s = z / τ; τ is a number or an array shaped like targets
    (per-token temperature). targets (...) are token ids; tokens equal to `ignore_index` give exactly 0 in every
    output and gradient (on CPU torch tensors they are dropped before any work).
    KL is explicit: kl=None (no KL), kl='k1'/'k2'/'k3'/'k3_clamped' with `ref_logprobs` (...) (estimators:
    textbook k3 as TRL, k3_clamped as verl, see K3_CLAMP), or kl='exact' with `ref_hidden` (..., D_ref) and
    `ref_weight` (V, D_ref) (full-vocabulary KL, τ applied to both policies). Any other combination raises.
    entropy=False skips the entropy's cost (returns None). reduction: "none" (per token), "sum" or "mean" over
    the non-ignored tokens (0 when there are none), applied to every output.
    Value checks (targets in [0, V) or ignore_index, temperatures > 0) run when the data is on the host (no
    device sync); check_inputs=True adds a finite check of every float input and runs the checks on device
    data too (one sync; not possible under jax.jit). Without it, a target outside [0, V) on device data gives
    NaN outputs for its token instead of an error.
    backend: "auto" → jax for JAX arrays, triton on CUDA tensors, torch otherwise; or name one of
    reference / torch / triton / jax / pallas (pallas = the jax backend with a Pallas forward kernel).
    """
    _check_args(hidden, weight, targets, temperature, ref_logprobs, ref_hidden, ref_weight, kl, backend, reduction)
    jax_in = _is_jax(hidden)
    if backend == "auto":
        backend = "jax" if jax_in else ("triton" if hidden.device.type == "cuda" else "torch")
    if jax_in != (backend in ("jax", "pallas")):
        raise TypeError(f"backend {backend!r} does not take {type(hidden).__name__} inputs")
    lead, d = tuple(hidden.shape[:-1]), hidden.shape[-1]
    named = {"hidden": hidden, "weight": weight, "ref_logprobs": ref_logprobs, "ref_hidden": ref_hidden}
    named |= {"ref_weight": ref_weight, "temperature": temperature if hasattr(temperature, "shape") else None}
    flat = {
        "hidden": hidden.reshape(-1, d),
        "ref_hidden": None if ref_hidden is None else ref_hidden.reshape(-1, ref_hidden.shape[-1]),
        "ref_logprobs": None if ref_logprobs is None else ref_logprobs.reshape(-1),
        "temperature": None if named["temperature"] is None else temperature.reshape(-1),
    }
    t1 = targets.reshape(-1)
    if jax_in:
        import jax.numpy as jnp

        xp = jnp
        if not jnp.issubdtype(t1.dtype, jnp.integer):
            raise TypeError(f"targets must be an integer array, got {t1.dtype}")
        if check_inputs and any(_is_tracer(x) for x in (*named.values(), targets) if x is not None):
            raise ValueError("check_inputs=True needs concrete arrays (call it outside jax.jit)")
    else:
        import torch

        xp = torch
        if t1.dtype.is_floating_point or t1.dtype == torch.bool:
            raise TypeError(f"targets must be an integer tensor, got {t1.dtype}")
        for name in ("hidden", "weight", "ref_hidden", "ref_weight"):
            if named[name] is not None and not named[name].dtype.is_floating_point:
                raise TypeError(f"{name} must be a floating tensor, got {named[name].dtype}")
        if weight.device != hidden.device or t1.device != hidden.device:
            raise ValueError(f"hidden, weight and targets must share a device; got {hidden.device}, {weight.device}")
    if check_inputs or _on_host(t1):
        _check_values(xp, named, t1, weight.shape[0], ignore_index, flat["temperature"], check_inputs)
        host_checked = True
    else:
        host_checked = False
    keep = t1 != ignore_index
    bad = None if host_checked else keep & ((t1 < 0) | (t1 >= weight.shape[0]))
    tau = temperature if flat["temperature"] is None else flat["temperature"]
    args = (flat["hidden"], weight, t1, tau, flat["ref_hidden"], ref_weight, flat["ref_logprobs"])
    if not jax_in and _on_host(t1):
        out = _compact(args, keep, kl, entropy, backend)
    else:
        out = _masked(xp, args, keep, bad, kl, entropy, backend)
    count = keep.sum()
    out = [None if x is None else _reduce(xp, x, count, lead, reduction) for x in out]
    return FusedLogprob(*out)


def _run(args, kl, entropy, backend):
    """(log p, H or None, KL or None, lse) per token from a backend, plus the KL estimator."""
    h2, w, t1, tau, rh2, rw, ref_lp = args
    if backend in ("jax", "pallas"):
        from reprozoo.kernels.jax_backend import fused_logprob_jax

        logp, ent, kl_val, lse = fused_logprob_jax(h2, w, t1, tau, rh2, rw, entropy=entropy, pallas=backend == "pallas")
    else:
        logp, ent, kl_val, lse = _torch_backend(backend)(h2, w, t1, tau, rh2, rw, entropy=entropy)
    if ref_lp is not None:
        kl_val = kl_estimator(logp, ref_lp, kl)
    return [logp, ent if entropy else None, kl_val, lse]


def _compact(args, keep, kl, entropy, backend):
    """CPU torch: run on the kept tokens only and scatter into zeros (ignored tokens cost nothing)."""
    import torch

    n = keep.shape[0]
    if bool(keep.all()):
        return _run(args, kl, entropy, backend)
    rows = keep.nonzero().squeeze(1)
    h2, w, t1, tau, rh2, rw, ref_lp = args
    pick = lambda x: x if x is None or not isinstance(x, torch.Tensor) else x[rows]  # noqa: E731
    out = _run((h2[rows], w, t1[rows], pick(tau), pick(rh2), rw, pick(ref_lp)), kl, entropy, backend)
    return [None if x is None else x.new_zeros(n).index_copy(0, rows, x) for x in out]


def _masked(xp, args, keep, bad, kl, entropy, backend):
    """Device / JAX data: no host sync; ignored (and out-of-range) tokens get target 0, then outputs 0 (NaN)."""
    h2, w, t1, tau, rh2, rw, ref_lp = args
    ok = keep if bad is None else keep & ~bad
    out = _run((h2, w, xp.where(ok, t1, 0), tau, rh2, rw, ref_lp), kl, entropy, backend)
    res = []
    for x in out:
        if x is not None:
            x = xp.where(keep, x, 0.0)
            if bad is not None:
                x = xp.where(bad, float("nan"), x)
        res.append(x)
    return res


def _reduce(xp, x, count, lead, reduction):
    if reduction == "none":
        return x.reshape(lead)
    total = x.sum()
    if reduction == "sum":
        return total
    return total / xp.maximum(count, 1).astype(total.dtype) if _is_jax(total) else total / count.clamp_min(1)


def _torch_backend(name: str):
    if name == "reference":
        from reprozoo.kernels.reference import fused_logprob_reference

        return fused_logprob_reference
    if name == "torch":
        from reprozoo.kernels.torch_chunked import fused_logprob_torch

        return fused_logprob_torch
    from reprozoo.kernels.triton_backend import fused_logprob_triton

    return fused_logprob_triton
