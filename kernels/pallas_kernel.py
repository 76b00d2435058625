"""Pallas forward kernel for the `pallas` backend (runs with `interpret=True` off-GPU).

Grid (token blocks × vocabulary splits). Program (i, k) gets its (BM, D) hidden block and, through its BlockSpec,
only the k-th (VS, D) block of W (VS = `vocab_split` rows: the weight is tiled, never mapped whole); it loops over
tiles of BV rows of that block with `lax.fori_loop`, folds each (BM, BV) logits tile into the online stats with
the same `online_update` as the scan backend and writes the split's raw stats (m, l, a, s_t, m', l', b).
`combine_splits` merges the splits (with M = max_k m_k, w_k = e^{m_k − M}: l = Σ w_k l_k,
a = Σ w_k (a_k + (m_k − M) l_k), b = Σ w_k (b_k + (m'_k − M') l_k), l' = Σ e^{m'_k − M'} l'_k, s_t = Σ_k s_t,k).
Gradients: `jax.grad` cannot go through `pallas_call`, so this kernel is only the forward of the `custom_vjp` in
`kernels.jax_backend` (whose backward is the recompute scan).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from reprozoo.kernels.jax_online import _f32, compute_dtype, online_finish, online_init, online_update

BLOCK_M = 16
"""Tokens per program."""
BLOCK_V = 128
"""Vocabulary rows per tile inside a program."""
VOCAB_SPLIT = 4096
"""Vocabulary rows of W per program (a multiple of BLOCK_V)."""


def _kernel(*refs, vocab, vocab_split, block_v, has_ref, need_a):
    if has_ref:
        h_ref, w_ref, t_ref, it_ref, hr_ref, wr_ref, *out_refs = refs
    else:
        h_ref, w_ref, t_ref, it_ref, *out_refs = refs
    dt = compute_dtype(h_ref, w_ref)
    inv_t = it_ref[...][:, None]
    hs = _f32(h_ref[...], dt) * inv_t  # h / τ, one τ per token
    hrs = _f32(hr_ref[...], dt) * inv_t if has_ref else None
    t = t_ref[...]
    v0 = pl.program_id(1) * vocab_split

    def body(k, carry):
        cols = v0 + k * block_v + jnp.arange(block_v)
        s = hs @ _f32(w_ref[pl.ds(k * block_v, block_v), :], dt).T  # (BM, BV) tile of s = z / τ
        sr = hrs @ _f32(wr_ref[pl.ds(k * block_v, block_v), :], dt).T if has_ref else None
        return online_update(carry, s, sr, cols < vocab, cols, t, need_a)

    carry = lax.fori_loop(0, vocab_split // block_v, body, online_init(hs.shape[0], hs.dtype))
    for ref, val in zip(out_refs, carry, strict=True):
        ref[0, :] = val


def combine_splits(parts, has_ref, need_a):
    """Merge per-split raw stats (7 arrays of (S, N)) into the stats of the whole vocabulary, then finish them."""
    m_k, l_k, a_k, st_k, mr_k, lr_k, b_k = parts
    m = m_k.max(0)
    w = jnp.exp(m_k - m)
    l = (w * l_k).sum(0)
    a = (w * (a_k + (m_k - m) * l_k)).sum(0)
    mr = mr_k.max(0)
    lr = (jnp.exp(mr_k - mr) * lr_k).sum(0)
    b = (w * (b_k + (mr_k - mr) * l_k)).sum(0)
    return online_finish((m, l, a, st_k.sum(0), mr, lr, b), has_ref, need_a)


def stats_pallas(
    h,
    w,
    t,
    inv_t,
    hr=None,
    wr=None,
    *,
    need_a=True,
    block_m=BLOCK_M,
    block_v=BLOCK_V,
    vocab_split=VOCAB_SPLIT,
    interpret=None,
):
    """Per-token (log p(t), H, lse, lse', KL) like `_stats_scan`, computed by the Pallas kernel; inv_t (N,) = 1/τ."""
    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    n, v = h.shape[0], w.shape[0]
    # every split holds at least one real vocabulary row: VS = ⌈V / S⌉ rounded up to a multiple of BV
    vs = -(-min(vocab_split, v) // block_v) * block_v
    n_splits = -(-v // vs)
    n_pad, v_pad = -(-n // block_m) * block_m, n_splits * vs
    has_ref = hr is not None
    dt = compute_dtype(h, w)
    rows = lambda i, k: (i, 0)  # noqa: E731
    vec = lambda i, k: (i,)  # noqa: E731
    args = [jnp.pad(h, ((0, n_pad - n), (0, 0))), jnp.pad(w, ((0, v_pad - v), (0, 0))), jnp.pad(t, (0, n_pad - n))]
    args.append(jnp.pad(inv_t.astype(dt), (0, n_pad - n), constant_values=1.0))
    specs = [
        pl.BlockSpec((block_m, h.shape[1]), rows),
        pl.BlockSpec((vs, w.shape[1]), lambda i, k: (k, 0)),  # only this split's rows of W
        pl.BlockSpec((block_m,), vec),
        pl.BlockSpec((block_m,), vec),
    ]
    if has_ref:
        args += [jnp.pad(hr, ((0, n_pad - n), (0, 0))), jnp.pad(wr, ((0, v_pad - v), (0, 0)))]
        specs += [pl.BlockSpec((block_m, hr.shape[1]), rows), pl.BlockSpec((vs, wr.shape[1]), lambda i, k: (k, 0))]
    kernel = jax.tree_util.Partial(_kernel, vocab=v, vocab_split=vs, block_v=block_v, has_ref=has_ref, need_a=need_a)
    parts = pl.pallas_call(
        kernel,
        out_shape=[jax.ShapeDtypeStruct((n_splits, n_pad), dt)] * 7,
        grid=(n_pad // block_m, n_splits),
        in_specs=specs,
        out_specs=[pl.BlockSpec((1, block_m), lambda i, k: (k, i))] * 7,
        interpret=interpret,
    )(*args)
    lp, ent, lse, lse_r, kl = combine_splits([p[:, :n] for p in parts], has_ref, need_a)
    return lp, ent, lse, lse_r, kl
