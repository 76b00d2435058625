"""`jax` backend: `lax.scan` over vocabulary chunks inside a `jax.custom_vjp`; `pallas`: same VJP, Pallas forward.

s = h Wᵀ / τ with τ one value per token (a number is broadcast). Forward scans vocabulary chunks of C columns with
the online-softmax stats of the torch backend (running max m, l = Σ e^{s−m}, a = Σ e^{s−m}(s − m), and for the
exact KL m', l', b = Σ e^{s−m}(s' − m')):
    lse = m + log l,   H = log l − a / l,   log p(t) = s_t − lse,   KL = (a − b) / l − log l + log l'.
Without entropy and KL the running a is skipped. The VJP saves only the inputs and (lse, H, lse', KL) per token;
backward scans the chunks again, recomputing s = h Wᵀ / τ, and applies ∂ log p(t)/∂s_v = 1[v = t] − p_v,
∂lse/∂s_v = p_v, ∂H/∂s_v = −p_v (log p_v + H), ∂KL/∂s_v = p_v (log p_v − log q_v − KL), ∂KL/∂s'_v = q_v − p_v;
grad W chunks are scan outputs.
The vocabulary is padded to a multiple of C; padded columns are masked out of every sum.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from reprozoo.kernels.jax_online import _f32, compute_dtype, online_finish, online_init, online_update

VOCAB_CHUNK = 4096
"""Default vocabulary columns per scan step."""


def _pad_chunks(w, c):
    """(V, D) → (V_pad / C, C, D) with zero rows appended, plus the (V_pad / C, C) validity mask."""
    v = w.shape[0]
    n_chunks = -(-v // c)
    pad = n_chunks * c - v
    wp = jnp.pad(w, ((0, pad), (0, 0))).reshape(n_chunks, c, w.shape[1])
    valid = (jnp.arange(n_chunks * c) < v).reshape(n_chunks, c)
    return wp, valid


# --- method: forward statistics ---------------------------------------------------------------------------
def _stats_scan(h, w, t, inv_t, hr, wr, c, need_a):
    """Per-token (log p(t), H, lse, lse', KL) by a scan over vocabulary chunks; H is None without need_a,
    lse', KL are None without ref."""
    dt = compute_dtype(h, w)
    hs = _f32(h, dt) * inv_t[:, None].astype(dt)
    hrs = None if hr is None else _f32(hr, compute_dtype(hr, wr)) * inv_t[:, None]
    wp, valid = _pad_chunks(w, c)
    wrp = None if wr is None else _pad_chunks(wr, c)[0]

    def step(carry, xs):
        s = hs @ _f32(xs[0], dt).T  # s = z / τ
        sr = None if hrs is None else hrs @ _f32(xs[3], hrs.dtype).T
        return online_update(carry, s, sr, xs[1], xs[2] * c + jnp.arange(c), t, need_a), None

    xs = (wp, valid, jnp.arange(wp.shape[0])) + (() if wrp is None else (wrp,))
    carry, _ = lax.scan(step, online_init(h.shape[0], hs.dtype), xs)
    return online_finish(carry, hrs is not None, need_a)


# --- method: backward by recompute ------------------------------------------------------------------------
def _grads_scan(h, w, t, inv_t, hr, wr, stats, cots, c):
    """Cotangents of (h, W, h_ref, W_ref) from the saved per-token stats and the output cotangents."""
    _, ent, lse, lse_r, kl = stats
    g_lp, g_ent, g_kl, g_lse = cots
    dt = compute_dtype(h, w)
    hs = _f32(h, dt) * inv_t[:, None].astype(dt)
    hrs = None if hr is None else _f32(hr, compute_dtype(hr, wr)) * inv_t[:, None]
    wp, valid = _pad_chunks(w, c)
    wrp = None if wr is None else _pad_chunks(wr, c)[0]

    def step(gh_carry, xs):
        gh, ghr = gh_carry
        wc, vc, k = xs[0], xs[1], xs[2]
        wc32 = _f32(wc, dt)
        logp = hs @ wc32.T - lse[:, None]  # log p_v = s_v − lse
        p = jnp.where(vc, jnp.exp(logp), 0.0)
        cols = k * c + jnp.arange(c)
        ds = g_lp[:, None] * ((cols[None, :] == t[:, None]) - p)  # ∂ log p(t)/∂s_v = 1[v = t] − p_v
        ds = ds + g_lse[:, None] * p  # ∂lse/∂s_v = p_v
        if g_ent is not None:
            ds = ds - g_ent[:, None] * p * (logp + ent[:, None])  # ∂H/∂s_v = −p_v (log p_v + H)
        out = {}
        if hrs is not None:
            wrc = _f32(xs[3], hrs.dtype)
            logq = hrs @ wrc.T - lse_r[:, None]
            q = jnp.where(vc, jnp.exp(logq), 0.0)
            ds = ds + g_kl[:, None] * p * (jnp.where(vc, logp - logq, 0.0) - kl[:, None])  # ∂KL/∂s_v
            dsr = g_kl[:, None] * (q - p)  # ∂KL/∂s'_v = q_v − p_v
            ghr = ghr + dsr @ wrc
            out["gwr"] = dsr.T @ hrs
        out["gw"] = ds.T @ hs
        return (gh + ds @ wc32, ghr), out

    xs = (wp, valid, jnp.arange(wp.shape[0])) + (() if wrp is None else (wrp,))
    ghr0 = None if hr is None else jnp.zeros(hrs.shape, hrs.dtype)
    (gh, ghr), outs = lax.scan(step, (jnp.zeros(hs.shape, hs.dtype), ghr0), xs)
    v = w.shape[0]
    gw = outs["gw"].reshape(-1, w.shape[1])[:v]
    grads = [(gh * inv_t[:, None]).astype(h.dtype), gw.astype(w.dtype)]
    if hr is not None:
        grads += [(ghr * inv_t[:, None]).astype(hr.dtype), outs["gwr"].reshape(-1, wr.shape[1])[:v].astype(wr.dtype)]
    return grads


# --- plumbing: custom_vjp wiring --------------------------------------------------------------------------
@partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _fused(h, w, t, inv_t, hr, wr, c, pallas, want_ent):
    lp, ent, lse, _, kl = _forward_stats(h, w, t, inv_t, hr, wr, c, pallas, want_ent or hr is not None)
    return lp, ent if want_ent else None, kl, lse


def _forward_stats(h, w, t, inv_t, hr, wr, c, pallas, need_a):
    if pallas:
        from reprozoo.kernels.pallas_kernel import stats_pallas

        return stats_pallas(h, w, t, inv_t, hr, wr, need_a=need_a)
    return _stats_scan(h, w, t, inv_t, hr, wr, c, need_a)


def _fused_fwd(h, w, t, inv_t, hr, wr, c, pallas, want_ent):
    stats = _forward_stats(h, w, t, inv_t, hr, wr, c, pallas, want_ent or hr is not None)
    return (stats[0], stats[1] if want_ent else None, stats[4], stats[2]), (h, w, t, inv_t, hr, wr, stats)


def _fused_bwd(c, pallas, want_ent, res, cots):
    h, w, t, inv_t, hr, wr, stats = res
    g_lp, g_ent, g_kl, g_lse = cots
    g_kl = jnp.zeros_like(g_lp) if g_kl is None else g_kl
    grads = _grads_scan(h, w, t, inv_t, hr, wr, stats, (g_lp, g_ent, g_kl, g_lse), c)
    t_ct = jnp.zeros(t.shape, jax.dtypes.float0)
    if hr is None:
        return grads[0], grads[1], t_ct, jnp.zeros_like(inv_t), None, None
    return grads[0], grads[1], t_ct, jnp.zeros_like(inv_t), grads[2], grads[3]


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_logprob_jax(
    hidden,
    weight,
    targets,
    temperature=1.0,
    ref_hidden=None,
    ref_weight=None,
    *,
    entropy: bool = True,
    vocab_chunk: int | None = None,
    pallas: bool = False,
):
    """(log p(t), entropy or None, exact KL or None, lse) per token; hidden (N, D), weight (V, D), targets (N,)
    int, temperature a number or (N,)."""
    c = int(min(vocab_chunk or VOCAB_CHUNK, weight.shape[0]))
    dt = compute_dtype(hidden, weight)
    inv_t = jnp.broadcast_to(1.0 / jnp.asarray(temperature, dt), (hidden.shape[0],))
    return _fused(hidden, weight, targets.astype(jnp.int32), inv_t, ref_hidden, ref_weight, c, pallas, bool(entropy))
