"""Fused linear loss: the gradient is computed in the forward pass, so the logits are never recomputed.

When the loss is the only consumer of the per-token log-probs (SFT cross-entropy; PPO / GRPO / REINFORCE
per-token surrogates), each token's upstream gradient ∂L/∂log p_i is known as soon as its log p_i is: it is
an elementwise function of (log p_i, H_i). So one pass per token chunk (all V columns of the chunk's logits at
once) can do everything, as Liger-Kernel's fused linear cross-entropy does:

    s = (h/τ) Wᵀ,  m = max_v s,  e = e^{s−m},  l = Σ e,  lse = m + log l,  log p(t) = s_t − lse,
    H = log l − Σ e (s − m) / l                                             (only when asked)
    (g_lp, g_H) = ∂ℓ/∂(log p, H) for the chunk's tokens (autograd on chunk-sized vectors; ℓ = loss_fn(...))
    ds_v = g_lp (1[v = t] − p_v) − g_H p_v (log p_v + H)                    (p = e / l)
    grad h = ds W / τ,  grad W += dsᵀ (h/τ)                                 (fp32 accumulation)

Three GEMMs per chunk (6NDV FLOPs, like naive's forward + backward, against 8NDV for recompute) and one
chunk-sized logits buffer reused in place; the gradients are held until `loss.backward()` scales them (in place)
by the upstream scalar and hands them over (no copy; backward runs once). Ignored tokens (target == ignore_index)
are dropped before any work on CPU tensors and masked elsewhere; they contribute exactly 0. Returned log p / H /
lse are detached (for logging).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from reprozoo.kernels import api
from reprozoo.kernels.reference import compute_dtype
from reprozoo.kernels.torch_chunked import inverse_temperature

CHUNK_ELEMENTS = 1 << 24
"""Budget of logits values per token chunk (chunk × V, 64 MB in fp32). At N=4096, D=256, V=32768 on 2 CPU
cores, forward+backward CPU time / naive was 0.95× with 64-token chunks, 0.83× (128), 0.75× (256), 0.72× (512)."""
MIN_TOKEN_CHUNK = 128
"""Smallest token chunk: below this the rank-C update of the (V, D) grad W is bound by memory traffic."""

TokenLoss = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], torch.Tensor]
"""ℓ = loss_fn(logprobs, entropy, rows): per-token loss of the tokens `rows` (indices into the flattened
targets), elementwise in (logprobs, entropy); entropy is None unless `entropy=True`. Its other inputs
(advantages, old log-probs, masks) are constants: no gradient flows to them."""


class FusedLoss(NamedTuple):
    """Output of `fused_linear_loss`."""

    loss: torch.Tensor
    """L = Σ_i ℓ_i, a scalar whose backward gives grad hidden and grad weight."""
    logprobs: torch.Tensor
    """log π(t_i | h_i) per token, detached; 0 at ignored tokens."""
    entropy: torch.Tensor | None
    """Entropy per token, detached (None unless entropy=True); 0 at ignored tokens."""
    lse: torch.Tensor
    """logsumexp_v s_iv per token, detached; 0 at ignored tokens."""


def _on_host(t: torch.Tensor) -> bool:
    return api._on_host(t)


def _pick_chunk(n: int, v: int) -> int:
    return max(1, min(n, max(MIN_TOKEN_CHUNK, CHUNK_ELEMENTS // max(v, 1))))


def _token_grads(loss_fn, logp, ent, rows):
    """ℓ per token and (∂ℓ/∂log p, ∂ℓ/∂H) by autograd on chunk-sized vectors."""
    with torch.enable_grad():
        lp = logp.detach().requires_grad_(True)
        en = None if ent is None else ent.detach().requires_grad_(True)
        ell = loss_fn(lp, en, rows)
        if ell.shape != lp.shape:
            raise ValueError(f"loss_fn must return one loss per token, shape {tuple(lp.shape)}; got {tuple(ell.shape)}")
        leaves = [lp] if en is None else [lp, en]
        grads = torch.autograd.grad(ell.sum(), leaves, allow_unused=True)
    g_lp = torch.zeros_like(lp) if grads[0] is None else grads[0]
    g_ent = None if en is None else (torch.zeros_like(en) if grads[1] is None else grads[1])
    return ell.detach().sum(), g_lp.detach(), None if g_ent is None else g_ent.detach()


def _chunk(hs, w, tgt, rows, loss_fn, want_ent, buf, gw, need_h):
    """One token chunk: forward stats, per-token upstream gradients, ds in place, grad h rows (None unless need_h),
    grad W update (unless gw is None)."""
    s = torch.mm(hs, w.T, out=buf[: hs.shape[0]])  # s = (h/τ) Wᵀ
    st = s.gather(1, tgt.unsqueeze(1)).squeeze(1)
    m = s.amax(1, keepdim=True)
    s.sub_(m)  # s − m
    if want_ent:
        e = s.exp()
        l = e.sum(1)
        ent = l.log() - torch.linalg.vecdot(e, s) / l  # H = log l − Σ e (s − m) / l
    else:
        e = s.exp_()
        l, ent = e.sum(1), None
    lse = m.squeeze(1) + l.log()
    logp = st - lse  # log p(t) = s_t − lse ≤ 0
    ell, g_lp, g_ent = _token_grads(loss_fn, logp, ent, rows)
    if not need_h and gw is None:
        return ell, logp, ent, lse, None
    inv_l = (1.0 / l).unsqueeze(1)
    if want_ent:  # ds = p [β + α (s − m)], α = −g_H, β = −g_lp − g_H (H − log l);  log p_v = (s − m) − log l
        alpha = -g_ent.unsqueeze(1)
        beta = (-g_lp - g_ent * (ent - l.log())).unsqueeze(1)
        ds = s.mul_(alpha).add_(beta).mul_(e).mul_(inv_l)
    else:  # ds = −g_lp p
        ds = e.mul_((-g_lp).unsqueeze(1) * inv_l)
    ds[torch.arange(ds.shape[0], device=ds.device), tgt] += g_lp  # + g_lp 1[v = t]
    gh = ds @ w if need_h else None
    if gw is not None:
        gw.addmm_(ds.T, hs)  # hs = h/τ carries the 1/τ of dz = ds/τ
    return ell, logp, ent, lse, gh


class _FusedLinearLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, inv_t, rows, loss_fn, want_ent, token_chunk):
        dt = compute_dtype(hidden, weight)
        n = hidden.shape[0]
        w = weight.to(dt)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gh = torch.zeros(hidden.shape, dtype=dt, device=hidden.device) if need_h else None
        gw = torch.zeros(weight.shape, dtype=dt, device=weight.device) if need_w else None
        logp = torch.zeros(n, dtype=dt, device=hidden.device)
        lse, ent = torch.zeros_like(logp), torch.zeros_like(logp) if want_ent else None
        loss = torch.zeros((), dtype=dt, device=hidden.device)
        buf = torch.empty(min(n, token_chunk), weight.shape[0], dtype=dt, device=hidden.device)
        for n0 in range(0, n, token_chunk):
            n1 = min(n, n0 + token_chunk)
            it = inv_t if not isinstance(inv_t, torch.Tensor) else inv_t[n0:n1].unsqueeze(1)
            hs = hidden[n0:n1].to(dt) * it
            ell, lp, en, ls, g = _chunk(hs, w, targets[n0:n1], rows[n0:n1], loss_fn, want_ent, buf, gw, need_h)
            loss += ell
            logp[n0:n1], lse[n0:n1] = lp, ls
            if want_ent:
                ent[n0:n1] = en
            if need_h:
                gh[n0:n1] = g * it  # grad h = ds W / τ
        ctx.grads = (gh, gw)  # handed over (not copied) in backward
        ctx.dtypes = (hidden.dtype, weight.dtype)
        ctx.mark_non_differentiable(logp, lse, *(() if ent is None else (ent,)))
        return (loss, logp, lse) + ((ent,) if want_ent else ())

    @staticmethod
    def backward(ctx, g_loss, *_):
        if ctx.grads is None:
            raise RuntimeError(
                "fused_linear_loss: backward runs once (its gradients were computed in the forward and are handed "
                "over, not copied); compute the loss again for another backward"
            )
        (gh, gw), ctx.grads = ctx.grads, None
        h_dt, w_dt = ctx.dtypes
        out_h = None if gh is None else gh.mul_(g_loss).to(h_dt)  # in place: no second N × D / V × D buffer
        out_w = None if gw is None else gw.mul_(g_loss).to(w_dt)
        return out_h, out_w, None, None, None, None, None, None


def fused_linear_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: TokenLoss | None = None,
    *,
    coef: torch.Tensor | None = None,
    temperature: float | torch.Tensor = 1.0,
    entropy: bool = False,
    ignore_index: int = -100,
    token_chunk: int | None = None,
) -> FusedLoss:
    """L = Σ_i ℓ_i over the non-ignored tokens, with the gradient computed in the forward (no logits recompute).

    hidden (..., D) and weight (V, D) give s = h Wᵀ / τ (τ a number or one per token, shaped like targets);
    targets (...) are token ids, `ignore_index` marks tokens that contribute exactly 0.
    Either `loss_fn(logprobs, entropy, rows) -> ℓ` (see `TokenLoss`: e.g. a PPO clipped surrogate, with `rows`
    indexing its advantages / old log-probs), or `coef` (shaped like targets) for the linear loss
    ℓ_i = coef_i · log p_i (SFT: coef = −mask / Σ mask; on-policy policy gradient: coef = −A·mask / Σ mask).
    `entropy=True` also computes H_i and passes it to loss_fn (entropy bonus). Call `loss.backward()` once.
    """
    if (loss_fn is None) == (coef is None):
        raise ValueError("give exactly one of loss_fn (per-token loss) or coef (ℓ_i = coef_i · log p_i)")
    if hidden.shape[:-1] != targets.shape or weight.ndim != 2 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"need hidden (..., D), weight (V, D), targets (...); got {tuple(hidden.shape)}, {tuple(weight.shape)}, "
            f"{tuple(targets.shape)}"
        )
    for name, x in (("coef", coef), ("temperature", temperature)):
        if isinstance(x, torch.Tensor) and x.shape != targets.shape:
            raise ValueError(f"{name} shape {tuple(x.shape)} must equal targets shape {tuple(targets.shape)}")
    if not isinstance(temperature, torch.Tensor) and not (0 < float(temperature) < float("inf")):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer tensor, got {targets.dtype}")
    lead, d, v = targets.shape, hidden.shape[-1], weight.shape[0]
    h2, t1 = hidden.reshape(-1, d), targets.reshape(-1).long()
    tau = temperature.reshape(-1) if isinstance(temperature, torch.Tensor) else temperature
    if coef is not None:
        c1 = coef.reshape(-1)
        loss_fn = lambda lp, _ent, rows: c1[rows].to(lp.dtype) * lp  # noqa: E731  ℓ_i = c_i log p_i
    keep = t1 != ignore_index
    if _on_host(t1):
        bad = keep & ((t1 < 0) | (t1 >= v))
        if bool(bad.any()):
            raise ValueError(f"targets must lie in [0, V={v}) or equal ignore_index={ignore_index}")
        rows = keep.nonzero().squeeze(1)  # ignored tokens: no work at all
    else:  # no host sync: ignored tokens get target 0 and a zero upstream gradient
        rows = torch.arange(t1.shape[0], device=t1.device)
        user_fn = loss_fn
        loss_fn = lambda lp, ent, r: torch.where(keep[r], user_fn(lp, ent, r), 0.0)  # noqa: E731
    h_rows = h2 if rows.shape[0] == h2.shape[0] else h2[rows]
    t_rows = torch.where(keep, t1, 0)[rows]
    tau_rows = tau[rows] if isinstance(tau, torch.Tensor) else tau
    inv_t = inverse_temperature(tau_rows, h2)
    tc = token_chunk or _pick_chunk(rows.shape[0], v)
    outs = _FusedLinearLoss.apply(h_rows, weight, t_rows, inv_t, rows, loss_fn, entropy, tc)
    n = t1.shape[0]

    def full(x):
        if x.shape[0] == n:
            return torch.where(keep, x, 0.0).reshape(lead)
        return torch.zeros(n, dtype=x.dtype, device=x.device).index_copy_(0, rows, x).reshape(lead)

    return FusedLoss(outs[0], full(outs[1]), full(outs[3]) if entropy else None, full(outs[2]))
