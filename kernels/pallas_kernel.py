"""Pallas forward kernel for the `pallas` backend (runs with `interpret=True` off-GPU).

Grid over blocks of BM tokens; each program keeps its (BM, D) hidden block, loops over vocabulary tiles of BV
rows of W with `lax.fori_loop`, and folds each (BM, BV) logits tile into the online stats with the same
`online_update` as the scan backend. Gradients: `jax.grad` cannot go through `pallas_call`, so this kernel is
only the forward of the `custom_vjp` in `kernels.jax_backend` (whose backward is the recompute scan).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from kernels.jax_backend import _f32, compute_dtype, online_finish, online_init, online_update

BLOCK_M = 16
"""Tokens per program."""
BLOCK_V = 128
"""Vocabulary rows per tile."""


def _kernel(*refs, vocab, block_v, n_tiles, has_ref, need_a):
    if has_ref:
        h_ref, w_ref, t_ref, it_ref, hr_ref, wr_ref, *out_refs = refs
    else:
        h_ref, w_ref, t_ref, it_ref, *out_refs = refs
    dt = compute_dtype(h_ref, w_ref)
    inv_t = it_ref[...][:, None]
    hs = _f32(h_ref[...], dt) * inv_t  # h / τ, one τ per token
    hrs = _f32(hr_ref[...], dt) * inv_t if has_ref else None
    t = t_ref[...]

    def body(k, carry):
        cols = k * block_v + jnp.arange(block_v)
        s = hs @ _f32(w_ref[pl.ds(k * block_v, block_v), :], dt).T  # (BM, BV) tile of s = z / τ
        sr = hrs @ _f32(wr_ref[pl.ds(k * block_v, block_v), :], dt).T if has_ref else None
        return online_update(carry, s, sr, cols < vocab, cols, t, need_a)

    carry = lax.fori_loop(0, n_tiles, body, online_init(hs.shape[0], hs.dtype))
    outs = online_finish(carry, has_ref, need_a)
    for ref, val in zip(out_refs, (o for o in outs if o is not None), strict=True):
        ref[...] = val


def stats_pallas(h, w, t, inv_t, hr=None, wr=None, *, need_a=True, block_m=BLOCK_M, block_v=BLOCK_V, interpret=None):
    """Per-token (log p(t), H, lse, lse', KL) like `_stats_scan`, computed by the Pallas kernel; inv_t (N,) = 1/τ."""
    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    n, v = h.shape[0], w.shape[0]
    n_pad, v_pad = -(-n // block_m) * block_m, -(-v // block_v) * block_v
    has_ref = hr is not None
    dt = compute_dtype(h, w)
    args = [jnp.pad(h, ((0, n_pad - n), (0, 0))), jnp.pad(w, ((0, v_pad - v), (0, 0))), jnp.pad(t, (0, n_pad - n))]
    args.append(jnp.pad(inv_t.astype(dt), (0, n_pad - n), constant_values=1.0))
    specs = [
        pl.BlockSpec((block_m, h.shape[1]), lambda i: (i, 0)),
        pl.BlockSpec(args[1].shape, lambda i: (0, 0)),
        pl.BlockSpec((block_m,), lambda i: (i,)),
        pl.BlockSpec((block_m,), lambda i: (i,)),
    ]
    if has_ref:
        args += [jnp.pad(hr, ((0, n_pad - n), (0, 0))), jnp.pad(wr, ((0, v_pad - v), (0, 0)))]
        specs += [pl.BlockSpec((block_m, hr.shape[1]), lambda i: (i, 0)), pl.BlockSpec(args[5].shape, lambda i: (0, 0))]
    n_out = (5 if has_ref else 3) - (0 if need_a else 1)
    kernel = jax.tree_util.Partial(
        _kernel, vocab=v, block_v=block_v, n_tiles=v_pad // block_v, has_ref=has_ref, need_a=need_a
    )
    outs = pl.pallas_call(
        kernel,
        out_shape=[jax.ShapeDtypeStruct((n_pad,), dt)] * n_out,
        grid=(n_pad // block_m,),
        in_specs=specs,
        out_specs=[pl.BlockSpec((block_m,), lambda i: (i,))] * n_out,
        interpret=interpret,
    )(*args)
    outs = [o[:n] for o in outs]
    if has_ref:
        return tuple(outs)
    return (outs[0], outs[1], outs[2], None, None) if need_a else (outs[0], None, outs[1], None, None)
