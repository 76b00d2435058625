"""`torch` backend: a chunked `torch.autograd.Function` that never holds more than a (tokens × vocab) chunk of logits.

Forward, per token chunk, streams over vocabulary chunks with an online softmax (running max m, running sum
l = Σ e^{s−m}, running a = Σ e^{s−m}(s − m); shifting by m keeps |z| ~ 1e4 exact in fp32):
    lse = m + log l,   H = log l − a / l   (= lse − Σ p s),   log p(t) = s_t − lse
and, with reference states, the same stats for s' plus b = Σ e^{s−m}(s' − m') to get
    KL = Σ p (log p − log q) = (a − b) / l − log l + log l'.
Without entropy and KL the running a is skipped. Only lse, H (and lse', KL) per token are saved: O(N) memory
besides the inputs. The temperature τ is a number or one value per token (s_i = z_i / τ_i).

Backward recomputes each logits chunk (8NDV FLOPs; the per-token upstream gradients g are only known at backward
time — when they are known up front, `kernels.fused_loss` computes the gradient in the forward instead) and applies
    ∂ log p(t)/∂s_v = 1[v = t] − p_v,   ∂ lse/∂s_v = p_v
    ∂ H/∂s_v        = −p_v (log p_v + H)
    ∂ KL/∂s_v       = p_v (log p_v − log q_v − KL),     ∂ KL/∂s'_v = q_v − p_v
then dz = ds / τ, grad H = dz W, grad W = dzᵀ H — grad W accumulated in fp32 across token chunks.
"""

from __future__ import annotations

import torch

from reprozoo.kernels.reference import compute_dtype

TOKEN_CHUNK = 1024
"""Default tokens per chunk."""
CHUNK_ELEMENTS = 1 << 20
"""Default budget of logits elements per (token × vocab) chunk (4 MB in fp32: a chunk stays in cache between the
elementwise passes; 32 MB chunks made the torch backend 1.47× naive at N=4096, V=32768 on 2 idle CPU cores,
4 MB 1.16×)."""


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _rows(inv_t, n0: int, n1: int):
    """1/τ for rows [n0, n1): a number, or an (n1 − n0, 1) column for per-token temperatures."""
    return inv_t if not isinstance(inv_t, torch.Tensor) else inv_t[n0:n1].unsqueeze(1)


def _online_stats(hs, w, hrs, wr, tgt, vocab_chunk, need_a):
    """Stream one token chunk over the vocabulary. hs = h/τ, hrs = h_ref/τ (or None). Returns per-token stats."""
    m = l = a = mr = lr = b = None
    st = torch.empty(hs.shape[0], dtype=hs.dtype, device=hs.device)
    for v0, v1 in _chunks(w.shape[0], vocab_chunk):
        s = hs @ w[v0:v1].to(hs.dtype).T  # s = z / τ for this chunk
        in_chunk = (tgt >= v0) & (tgt < v1)
        st = torch.where(in_chunk, s.gather(1, (tgt - v0).clamp(0, v1 - v0 - 1).unsqueeze(1)).squeeze(1), st)
        cm = s.amax(1)
        m_new = cm if m is None else torch.maximum(m, cm)
        s.sub_(m_new.unsqueeze(1))  # s − m
        e = s.exp() if need_a else s.exp_()  # s − m is still needed for a
        l_prev = l
        if m is None:
            l = e.sum(1)
            a = torch.linalg.vecdot(e, s) if need_a else None
        else:
            scale = (m - m_new).exp()
            if need_a:  # a is relative to the old max: Σ e^{s−m_new}(s − m_new) = scale (a + (m − m_new) l)
                a = scale * (a + (m - m_new) * l) + torch.linalg.vecdot(e, s)
            l = scale * l + e.sum(1)
        if hrs is not None:
            sr = hrs @ wr[v0:v1].to(hrs.dtype).T
            cmr = sr.amax(1)
            mr_new = cmr if mr is None else torch.maximum(mr, cmr)
            sr.sub_(mr_new.unsqueeze(1))  # s' − m'
            if mr is None:
                lr, b = sr.exp().sum(1), torch.linalg.vecdot(e, sr)
            else:
                # b = Σ e^{s−m}(s' − m') shifted to the new maxima of both s and s'
                b = scale * (b + (mr - mr_new) * l_prev) + torch.linalg.vecdot(e, sr)
                lr = (mr - mr_new).exp() * lr + sr.exp().sum(1)
            mr = mr_new
        m = m_new
    lse = m + l.log()
    ent = l.log() - a / l if need_a else None
    logp = st - lse
    if hrs is None:
        return logp, ent, lse, None, None
    lse_r = mr + lr.log()
    kl = (a - b) / l - l.log() + lr.log()
    return logp, ent, lse, lse_r, kl


def _add_target(ds, tgt, g, v0, v1):
    """The g · 1[v = t] part of ∂ log p(t)/∂s_v for the targets inside vocabulary chunk [v0, v1)."""
    rows = ((tgt >= v0) & (tgt < v1)).nonzero().squeeze(1)
    ds[rows, tgt[rows] - v0] += g[rows]


def _coefficients(grads, n0, n1, ent, kl, like):
    """Per-row α, β with ∂L/∂s_v = p_v (α log p_v + β) + (terms in 1[v = t] and log p_v − log q_v), from
    ∂ log p(t)/∂s_v = 1[v = t] − p_v, ∂lse/∂s_v = p_v, ∂H/∂s_v = −p_v (log p_v + H),
    ∂KL/∂s_v = p_v (log p_v − log q_v − KL)."""
    g_lp, g_lse, g_ent, g_kl = grads
    alpha = torch.zeros_like(like[n0:n1])
    beta = torch.zeros_like(alpha)
    if g_lp is not None:
        beta -= g_lp[n0:n1]
    if g_lse is not None:
        beta += g_lse[n0:n1]
    if g_ent is not None:
        alpha -= g_ent[n0:n1]
        beta -= g_ent[n0:n1] * ent[n0:n1]
    if g_kl is not None:
        beta -= g_kl[n0:n1] * kl[n0:n1]
    return alpha.unsqueeze(1), beta.unsqueeze(1)


class _FusedLogprob(torch.autograd.Function):
    """Outputs (log p, lse, [H], [KL]): H when `want_ent`, KL with reference states."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, ref_hidden, ref_weight, inv_t, want_ent, token_chunk, vocab_chunk):
        ctx.set_materialize_grads(False)
        dt = compute_dtype(hidden, weight)
        n = hidden.shape[0]
        has_ref = ref_hidden is not None
        need_a = want_ent or has_ref
        logp = torch.empty(n, dtype=dt, device=hidden.device)
        lse = torch.empty_like(logp)
        ent = torch.empty_like(logp) if need_a else None
        lse_r = torch.empty_like(logp) if has_ref else None
        kl = torch.empty_like(logp) if has_ref else None
        for n0, n1 in _chunks(n, token_chunk):
            it = _rows(inv_t, n0, n1)
            hs = hidden[n0:n1].to(dt) * it
            hrs = ref_hidden[n0:n1].to(dt) * it if has_ref else None
            out = _online_stats(hs, weight, hrs, ref_weight, targets[n0:n1], vocab_chunk, need_a)
            logp[n0:n1], lse[n0:n1] = out[0], out[2]
            if need_a:
                ent[n0:n1] = out[1]
            if has_ref:
                lse_r[n0:n1], kl[n0:n1] = out[3], out[4]
        ctx.save_for_backward(hidden, weight, targets, ref_hidden, ref_weight, lse, ent, lse_r, kl)
        ctx.cfg = (inv_t, want_ent, token_chunk, vocab_chunk)
        return (logp, lse) + ((ent,) if want_ent else ()) + ((kl,) if has_ref else ())

    @staticmethod
    def backward(ctx, g_lp, g_lse, *rest):
        hidden, weight, targets, ref_hidden, ref_weight, lse, ent, lse_r, kl = ctx.saved_tensors
        inv_t, want_ent, token_chunk, vocab_chunk = ctx.cfg
        rest = list(rest)
        g_ent = rest.pop(0) if want_ent else None
        g_kl = rest.pop(0) if ref_hidden is not None else None
        has_ref = g_kl is not None
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_hr = has_ref and ctx.needs_input_grad[3]
        need_wr = has_ref and ctx.needs_input_grad[4]
        none = (None,) * 9
        if g_lp is None and g_lse is None and g_ent is None and not has_ref:
            return none
        dt = compute_dtype(hidden, weight)
        gh = torch.zeros(hidden.shape, dtype=dt, device=hidden.device) if need_h else None
        gw = torch.zeros(weight.shape, dtype=dt, device=weight.device) if need_w else None  # fp32 accumulator
        ghr = torch.zeros(ref_hidden.shape, dtype=dt, device=hidden.device) if need_hr else None
        gwr = torch.zeros(ref_weight.shape, dtype=dt, device=hidden.device) if need_wr else None
        grads = (g_lp, g_lse, g_ent, g_kl)
        for n0, n1 in _chunks(hidden.shape[0], token_chunk):
            it = _rows(inv_t, n0, n1)
            hs = hidden[n0:n1].to(dt) * it
            tgt = targets[n0:n1]
            neg_lse = -lse[n0:n1].unsqueeze(1)
            neg_lse_r = -lse_r[n0:n1].unsqueeze(1) if has_ref else None
            hrs = ref_hidden[n0:n1].to(dt) * it if has_ref else None
            alpha, beta = _coefficients(grads, n0, n1, ent, kl, lse)
            for v0, v1 in _chunks(weight.shape[0], vocab_chunk):
                w = weight[v0:v1].to(dt)
                logp_v = torch.addmm(neg_lse, hs, w.T)  # log p_v = s_v − lse
                if g_ent is None and not has_ref:  # ds = β p (+ g_lp 1[v = t]), in place
                    ds = logp_v.exp_().mul_(beta)
                else:
                    p = logp_v.exp()
                    if has_ref:
                        wr = ref_weight[v0:v1].to(dt)
                        logq_v = torch.addmm(neg_lse_r, hrs, wr.T)  # log q_v = s'_v − lse'
                        gk = g_kl[n0:n1].unsqueeze(1)
                        if need_hr or need_wr:
                            dsr = (logq_v.exp() - p).mul_(gk)  # ∂KL/∂s'_v = q_v − p_v
                            if need_hr:
                                ghr[n0:n1].addmm_(dsr, wr)
                            if need_wr:
                                gwr[v0:v1].addmm_(dsr.T, hrs)
                        kl_term = logq_v.neg_().add_(logp_v).mul_(p).mul_(gk)  # g_KL p (log p_v − log q_v)
                    # ds = p (α log p_v + β) [+ g_KL p (log p_v − log q_v)] [+ g_lp 1[v = t]]
                    ds = logp_v.mul_(alpha).add_(beta).mul_(p)
                    if has_ref:
                        ds.add_(kl_term)
                if g_lp is not None:
                    _add_target(ds, tgt, g_lp[n0:n1], v0, v1)
                if need_h:
                    gh[n0:n1].addmm_(ds, w)
                if need_w:
                    gw[v0:v1].addmm_(ds.T, hs)  # hs = h/τ carries the 1/τ of dz = ds/τ
        # grad H still misses the 1/τ of dz = ds/τ (grad W got it through hs)
        out_h = (gh * _rows(inv_t, 0, hidden.shape[0])).to(hidden.dtype) if need_h else None
        out_w = gw.to(weight.dtype) if need_w else None
        out_hr = (ghr * _rows(inv_t, 0, hidden.shape[0])).to(ref_hidden.dtype) if need_hr else None
        out_wr = gwr.to(ref_weight.dtype) if need_wr else None
        return out_h, out_w, None, out_hr, out_wr, None, None, None, None


def default_chunks(n: int, v: int) -> tuple[int, int]:
    """Token chunk and vocab chunk so that one logits chunk holds about CHUNK_ELEMENTS values."""
    token_chunk = max(1, min(n, TOKEN_CHUNK))
    vocab_chunk = max(1, min(v, CHUNK_ELEMENTS // token_chunk))
    return token_chunk, vocab_chunk


def inverse_temperature(temperature, like: torch.Tensor):
    """1/τ as a Python float, or as an (N,) tensor in the compute dtype for per-token temperatures."""
    if isinstance(temperature, torch.Tensor):
        return 1.0 / temperature.to(device=like.device, dtype=compute_dtype(like, temperature))
    return 1.0 / float(temperature)


def fused_logprob_torch(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
    ref_hidden: torch.Tensor | None = None,
    ref_weight: torch.Tensor | None = None,
    *,
    entropy: bool = True,
    token_chunk: int | None = None,
    vocab_chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """(log p(t), entropy or None, exact KL or None, lse) per token, chunked; hidden (N, D), weight (V, D),
    targets (N,), temperature a number or (N,)."""
    tc, vc = default_chunks(hidden.shape[0], weight.shape[0])
    inv_t = inverse_temperature(temperature, hidden)
    out = list(
        _FusedLogprob.apply(
            hidden, weight, targets, ref_hidden, ref_weight, inv_t, entropy, token_chunk or tc, vocab_chunk or vc
        )
    )
    logp, lse = out.pop(0), out.pop(0)
    ent = out.pop(0) if entropy else None
    kl = out.pop(0) if ref_hidden is not None else None
    return logp, ent, kl, lse
