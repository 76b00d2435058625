"""Online-softmax statistics over vocabulary tiles, shared by the `jax` (lax.scan) and `pallas` backends.

For scaled logits s (and reference logits s' for the exact KL) folded in one tile at a time, the running stats are
m = max s, l = Σ e^{s−m}, a = Σ e^{s−m}(s − m), s_t (the target's logit), m', l', b = Σ e^{s−m}(s' − m'); at the end
    lse = m + log l,   H = log l − a / l,   log p(t) = s_t − lse,   KL = (a − b) / l − log l + log l'.
"""

from __future__ import annotations

import jax.numpy as jnp


def compute_dtype(*xs):
    """float64 if any input is float64, else float32 (bf16 / fp16 / mixed inputs compute in fp32)."""
    return jnp.float64 if any(x.dtype == jnp.float64 for x in xs) else jnp.float32


def _f32(x, dt=None):
    return x.astype(dt or compute_dtype(x))


def online_update(carry, s, sr, valid, cols, t, need_a=True):
    """Fold one vocabulary tile into the running stats (m, l, a, s_t, m', l', b).

    s (and s') are (rows, C) scaled logits, valid (C,) masks padding, cols (C,) the tile's vocabulary ids;
    need_a=False skips a = Σ e^{s−m}(s − m) (no entropy, no KL)."""
    m, l, a, st, mr, lr, b = carry
    s = jnp.where(valid, s, -jnp.inf)  # padded columns → −∞
    st = st + jnp.sum(jnp.where(cols[None, :] == t[:, None], s, 0.0), axis=1)
    m_new = jnp.maximum(m, s.max(1))
    sh = jnp.where(valid, s - m_new[:, None], 0.0)  # s − m
    e = jnp.where(valid, jnp.exp(sh), 0.0)
    scale = jnp.exp(m - m_new)
    # a is relative to the old max: Σ e^{s−m_new}(s − m_new) = scale (a + (m − m_new) l)
    a_new = scale * (a + jnp.where(l > 0, (m - m_new) * l, 0.0)) + jnp.sum(e * sh, 1) if need_a else a
    l_new = scale * l + e.sum(1)
    if sr is not None:
        sr = jnp.where(valid, sr, -jnp.inf)
        mr_new = jnp.maximum(mr, sr.max(1))
        shr = jnp.where(valid, sr - mr_new[:, None], 0.0)
        b = scale * (b + jnp.where(l > 0, (mr - mr_new) * l, 0.0)) + jnp.sum(e * shr, 1)
        lr = jnp.exp(mr - mr_new) * lr + jnp.where(valid, jnp.exp(shr), 0.0).sum(1)
        mr = mr_new
    return m_new, l_new, a_new, st, mr, lr, b


def online_init(n, dtype):
    zero = jnp.zeros(n, dtype)
    return (jnp.full(n, -jnp.inf, dtype), zero, zero, zero, jnp.full(n, -jnp.inf, dtype), zero, zero)


def online_finish(carry, has_ref, need_a=True):
    """lse = m + log l, H = log l − a/l, log p(t) = s_t − lse, KL = (a − b)/l − log l + log l'."""
    m, l, a, st, mr, lr, b = carry
    lse, ent = m + jnp.log(l), jnp.log(l) - a / l if need_a else None
    if not has_ref:
        return st - lse, ent, lse, None, None
    return st - lse, ent, lse, mr + jnp.log(lr), (a - b) / l - jnp.log(l) + jnp.log(lr)
