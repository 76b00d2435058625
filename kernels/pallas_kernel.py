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

from kernels.jax_backend import _f32, online_finish, online_init, online_update

BLOCK_M = 16
"""Tokens per program."""
BLOCK_V = 128
"""Vocabulary rows per tile."""


def _kernel(*refs, temperature, vocab, block_v, n_tiles, has_ref):
    if has_ref:
        h_ref, w_ref, t_ref, hr_ref, wr_ref, *out_refs = refs
    else:
        h_ref, w_ref, t_ref, *out_refs = refs
    hs = _f32(h_ref[...]) / temperature
    hrs = _f32(hr_ref[...]) / temperature if has_ref else None
    t = t_ref[...]

    def body(k, carry):
        cols = k * block_v + jnp.arange(block_v)
        s = hs @ _f32(w_ref[pl.ds(k * block_v, block_v), :]).T  # (BM, BV) tile of s = z / τ
        sr = hrs @ _f32(wr_ref[pl.ds(k * block_v, block_v), :]).T if has_ref else None
        return online_update(carry, s, sr, cols < vocab, cols, t)

    carry = lax.fori_loop(0, n_tiles, body, online_init(hs.shape[0], hs.dtype))
    outs = online_finish(carry, has_ref)
    for ref, val in zip(out_refs, (o for o in outs if o is not None), strict=True):
        ref[...] = val


def stats_pallas(h, w, t, temperature, hr=None, wr=None, *, block_m=BLOCK_M, block_v=BLOCK_V, interpret=None):
    """Per-token (log p(t), H, lse, lse', KL) like `_stats_scan`, computed by the Pallas kernel."""
    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    n, v = h.shape[0], w.shape[0]
    n_pad, v_pad = -(-n // block_m) * block_m, -(-v // block_v) * block_v
    has_ref = hr is not None
    dt = jnp.float64 if h.dtype == jnp.float64 else jnp.float32
    args = [jnp.pad(h, ((0, n_pad - n), (0, 0))), jnp.pad(w, ((0, v_pad - v), (0, 0))), jnp.pad(t, (0, n_pad - n))]
    specs = [
        pl.BlockSpec((block_m, h.shape[1]), lambda i: (i, 0)),
        pl.BlockSpec(args[1].shape, lambda i: (0, 0)),
        pl.BlockSpec((block_m,), lambda i: (i,)),
    ]
    if has_ref:
        args += [jnp.pad(hr, ((0, n_pad - n), (0, 0))), jnp.pad(wr, ((0, v_pad - v), (0, 0)))]
        specs += [pl.BlockSpec((block_m, hr.shape[1]), lambda i: (i, 0)), pl.BlockSpec(args[4].shape, lambda i: (0, 0))]
    n_out = 5 if has_ref else 3
    kernel = jax.tree_util.Partial(
        _kernel, temperature=temperature, vocab=v, block_v=block_v, n_tiles=v_pad // block_v, has_ref=has_ref
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
    return tuple(outs) if has_ref else (*outs, None, None)
