"""`triton` backend: a fused forward kernel (online softmax over vocabulary tiles) and a recompute backward.

Forward (`_fwd_kernel`): program (i, k) takes BLOCK_M tokens and the k-th of S vocabulary splits (S chosen so that
about GPU_PROGRAMS programs run: the vocabulary is split across programs when N alone cannot fill the GPU) and
walks its split in BLOCK_V tiles; each logits tile s = h Wᵀ / τ is built from BLOCK_D slices with `tl.dot` (fp32
accumulate) and folded into running stats (max m, l = Σ e^{s−m}, a = Σ e^{s−m}(s − m), and for the exact KL
m', l', b = Σ e^{s−m}(s' − m')), exactly as the torch and JAX backends do. The (7, S, N) partial stats are merged
by `_combine` (a log-sum-exp of the splits). No N × V buffer exists.

Backward: recompute. The per-token output gradients are only known at backward time, so a gradient-in-forward
scheme (Liger's 6NDV instead of 8NDV) would have to assume a fixed scalar loss; this API returns per-token
log-probs, entropy and KL for arbitrary losses, so we recompute (`kernels.fused_loss` is the gradient-in-forward
path, in torch). `_bwd_kernel` program (i, j) recomputes the logits tile of token block i × vocabulary tile j from
the saved lse, forms the dlogits tile in registers and adds dz W into grad H and dzᵀ H into grad W with fp32
atomic adds (`_accumulate`): no dlogits buffer and no fp32 copy of W exist; the accumulators are fp32 (N × D and
V × D) and cast once at the end.

Products: on CUDA with bf16 / fp16 inputs (all one dtype) the `tl.dot` operands stay 16-bit with fp32
accumulation; otherwise they are cast to fp32 in registers and multiplied in IEEE fp32 (no TF32). On CPU the tests
run these kernels under TRITON_INTERPRET=1 at tiny shapes, always with fp32 products (the interpreter mishandles
bf16 `tl.dot`), so the 16-bit path is untested until a GPU is lent.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

BLOCK_M, BLOCK_V, BLOCK_D = 16, 32, 16
"""Tile sizes used in the CPU interpreter (and a safe default on GPU)."""
GPU_BLOCKS = (64, 64, 64)
"""Tile sizes on CUDA."""
GPU_PROGRAMS = 1024
"""Forward programs to aim for on CUDA (token blocks × vocabulary splits; ~8 per SM on an H100)."""


@triton.jit
def _logits_tile(
    h_ptr,
    w_ptr,
    rows,
    cols,
    n,
    v,
    d,
    stride_h,
    stride_w,
    inv_t,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """(BLOCK_M, BLOCK_V) tile of s = h Wᵀ / τ, summed over BLOCK_D slices with fp32 accumulation; inv_t (BLOCK_M,)
    = 1/τ. DOT_F32: operands cast to fp32 (IEEE products); else they stay in their 16-bit dtype (tensor cores)."""
    acc = tl.zeros((BLOCK_M, BLOCK_V), dtype=tl.float32)
    for d0 in range(0, d, BLOCK_D):
        ks = d0 + tl.arange(0, BLOCK_D)
        h = tl.load(
            h_ptr + rows[:, None] * stride_h + ks[None, :], mask=(rows[:, None] < n) & (ks[None, :] < d), other=0.0
        )
        w = tl.load(
            w_ptr + cols[:, None] * stride_w + ks[None, :], mask=(cols[:, None] < v) & (ks[None, :] < d), other=0.0
        )
        if DOT_F32:
            acc += tl.dot(h.to(tl.float32), tl.trans(w.to(tl.float32)), input_precision="ieee")
        else:
            acc += tl.dot(h, tl.trans(w))
    return acc * inv_t[:, None]


@triton.jit
def _fwd_kernel(
    h_ptr,
    w_ptr,
    t_ptr,
    hr_ptr,
    wr_ptr,
    part_ptr,
    it_ptr,
    n,
    v,
    d,
    dr,
    v_per_split,
    stride_h,
    stride_w,
    stride_hr,
    stride_wr,
    HAS_REF: tl.constexpr,
    NEED_A: tl.constexpr,
    DOT_F32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Program (i, k): tokens block i, vocabulary split k = [k·v_per_split, (k+1)·v_per_split). Writes the split's
    partial stats (m, l, a, s_t, m', l', b) to part[:, k, rows]; `_combine` merges the splits."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    split = tl.program_id(1)
    lo = split * v_per_split
    hi = tl.minimum(lo + v_per_split, v)
    tgt = tl.load(t_ptr + rows, mask=rows < n, other=0)
    inv_t = tl.load(it_ptr + rows, mask=rows < n, other=1.0)
    m = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l = tl.zeros((BLOCK_M,), tl.float32)
    a = tl.zeros((BLOCK_M,), tl.float32)
    st = tl.zeros((BLOCK_M,), tl.float32)
    mr = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    lr = tl.zeros((BLOCK_M,), tl.float32)
    b = tl.zeros((BLOCK_M,), tl.float32)
    for v0 in range(lo, hi, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        valid = (cols < hi)[None, :]
        s = _logits_tile(
            h_ptr, w_ptr, rows, cols, n, hi, d, stride_h, stride_w, inv_t, BLOCK_M, BLOCK_V, BLOCK_D, DOT_F32
        )
        s = tl.where(valid, s, float("-inf"))
        st += tl.sum(tl.where(cols[None, :] == tgt[:, None], s, 0.0), axis=1)
        m_new = tl.maximum(m, tl.max(s, axis=1))
        sh = tl.where(valid, s - m_new[:, None], 0.0)  # s − m
        e = tl.where(valid, tl.exp(sh), 0.0)
        scale = tl.exp(m - m_new)
        # a, b are relative to the old maxima: shift them by (m − m_new) l before rescaling
        if HAS_REF:
            sr = _logits_tile(
                hr_ptr, wr_ptr, rows, cols, n, hi, dr, stride_hr, stride_wr, inv_t, BLOCK_M, BLOCK_V, BLOCK_D, DOT_F32
            )
            sr = tl.where(valid, sr, float("-inf"))
            mr_new = tl.maximum(mr, tl.max(sr, axis=1))
            shr = tl.where(valid, sr - mr_new[:, None], 0.0)
            b = scale * (b + tl.where(l > 0, mr - mr_new, 0.0) * l) + tl.sum(e * shr, axis=1)
            lr = tl.exp(mr - mr_new) * lr + tl.sum(tl.where(valid, tl.exp(shr), 0.0), axis=1)
            mr = mr_new
        if NEED_A:
            a = scale * (a + tl.where(l > 0, m - m_new, 0.0) * l) + tl.sum(e * sh, axis=1)
        l = scale * l + tl.sum(e, axis=1)
        m = m_new
    ok = rows < n
    n_splits = tl.num_programs(1)
    base = part_ptr + split * n + rows
    stride_k = n_splits * n
    tl.store(base, m, mask=ok)
    tl.store(base + stride_k, l, mask=ok)
    tl.store(base + 2 * stride_k, a, mask=ok)
    tl.store(base + 3 * stride_k, st, mask=ok)
    tl.store(base + 4 * stride_k, mr, mask=ok)
    tl.store(base + 5 * stride_k, lr, mask=ok)
    tl.store(base + 6 * stride_k, b, mask=ok)


def _combine(part: torch.Tensor, has_ref: bool):
    """Merge per-split stats (7, S, N): with M = max_k m_k and w_k = e^{m_k − M},
    l = Σ w_k l_k,  a = Σ w_k (a_k + (m_k − M) l_k),  s_t = Σ s_t,k (one split holds the target),
    l' = Σ e^{m'_k − M'} l'_k,  b = Σ w_k (b_k + (m'_k − M') l_k); then
    lse = M + log l, H = log l − a/l, log p(t) = s_t − lse, KL = (a − b)/l − log l + log l'."""
    m_k, l_k, a_k, st_k, mr_k, lr_k, b_k = part
    m = m_k.amax(0)
    w = (m_k - m).exp()
    l = (w * l_k).sum(0)
    a = (w * (a_k + (m_k - m) * l_k)).sum(0)
    lse, ent = m + l.log(), l.log() - a / l
    logp = st_k.sum(0) - lse
    if not has_ref:
        return logp, ent, lse, torch.zeros_like(lse), torch.zeros_like(lse)
    mr = mr_k.amax(0)
    lr = ((mr_k - mr).exp() * lr_k).sum(0)
    b = (w * (b_k + (mr_k - mr) * l_k)).sum(0)
    return logp, ent, lse, mr + lr.log(), (a - b) / l - l.log() + lr.log()


def vocab_splits(n: int, v: int, block_m: int, block_v: int, programs: int) -> int:
    """Vocabulary splits so that about `programs` programs run in the forward (at least one tile per split)."""
    return max(1, min(triton.cdiv(v, block_v), triton.cdiv(programs, triton.cdiv(n, block_m))))


@triton.jit
def _accumulate(
    dz,
    h_ptr,
    w_ptr,
    gh_ptr,
    gw_ptr,
    rows,
    cols,
    n,
    v,
    d,
    stride_h,
    stride_w,
    BLOCK_D: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """grad H[rows] += dz W[cols] and grad W[cols] += dzᵀ H[rows], BLOCK_D columns at a time, by fp32 atomic adds:
    the (BLOCK_M, BLOCK_V) dlogits tile dz never leaves the program. Without DOT_F32, dz is rounded to the
    inputs' 16-bit dtype for the tensor-core products (as Liger-Kernel does); the sums stay fp32."""
    for d0 in range(0, d, BLOCK_D):
        ks = d0 + tl.arange(0, BLOCK_D)
        hm = (rows[:, None] < n) & (ks[None, :] < d)
        wm = (cols[:, None] < v) & (ks[None, :] < d)
        h = tl.load(h_ptr + rows[:, None] * stride_h + ks[None, :], mask=hm, other=0.0)
        w = tl.load(w_ptr + cols[:, None] * stride_w + ks[None, :], mask=wm, other=0.0)
        if DOT_F32:
            h, w = h.to(tl.float32), w.to(tl.float32)
            gh = tl.dot(dz, w, input_precision="ieee")
            gw = tl.dot(tl.trans(dz), h, input_precision="ieee")
        else:
            dz16 = dz.to(h.dtype)
            gh, gw = tl.dot(dz16, w), tl.dot(tl.trans(dz16), h)
        tl.atomic_add(gh_ptr + rows[:, None] * d + ks[None, :], gh, mask=hm)
        tl.atomic_add(gw_ptr + cols[:, None] * d + ks[None, :], gw, mask=wm)


@triton.jit
def _bwd_kernel(
    h_ptr,
    w_ptr,
    t_ptr,
    hr_ptr,
    wr_ptr,
    lse_ptr,
    ent_ptr,
    lser_ptr,
    kl_ptr,
    glp_ptr,
    glse_ptr,
    gent_ptr,
    gkl_ptr,
    gh_ptr,
    gw_ptr,
    ghr_ptr,
    gwr_ptr,
    it_ptr,
    n,
    v,
    d,
    dr,
    stride_h,
    stride_w,
    stride_hr,
    stride_wr,
    HAS_REF: tl.constexpr,
    DOT_F32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Program (i, j): tokens block i × vocabulary tile j. Recomputes the logits tile, forms
    ds_v = g_lp (1[v = t] − p_v) + g_lse p_v − g_H p_v (log p_v + H) + g_KL p_v (log p_v − log q_v − KL) and
    dsr_v = g_KL (q_v − p_v), scales by 1/τ (dz = ds / τ) and accumulates grad H, grad W (grad H', grad W')."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    ok = rows < n
    mask = ok[:, None] & (cols < v)[None, :]
    tgt = tl.load(t_ptr + rows, mask=ok, other=0)
    lse = tl.load(lse_ptr + rows, mask=ok, other=0.0)
    ent = tl.load(ent_ptr + rows, mask=ok, other=0.0)
    g_lp = tl.load(glp_ptr + rows, mask=ok, other=0.0)
    g_ent = tl.load(gent_ptr + rows, mask=ok, other=0.0)
    g_lse = tl.load(glse_ptr + rows, mask=ok, other=0.0)
    inv_t = tl.load(it_ptr + rows, mask=ok, other=1.0)
    s = _logits_tile(h_ptr, w_ptr, rows, cols, n, v, d, stride_h, stride_w, inv_t, BLOCK_M, BLOCK_V, BLOCK_D, DOT_F32)
    logp = s - lse[:, None]
    p = tl.where(mask, tl.exp(logp), 0.0)
    onehot = tl.where(cols[None, :] == tgt[:, None], 1.0, 0.0)
    ds = g_lp[:, None] * (onehot - p) + g_lse[:, None] * p - g_ent[:, None] * p * (logp + ent[:, None])
    if HAS_REF:
        sr = _logits_tile(
            hr_ptr, wr_ptr, rows, cols, n, v, dr, stride_hr, stride_wr, inv_t, BLOCK_M, BLOCK_V, BLOCK_D, DOT_F32
        )
        logq = sr - tl.load(lser_ptr + rows, mask=ok, other=0.0)[:, None]
        g_kl = tl.load(gkl_ptr + rows, mask=ok, other=0.0)[:, None]
        kl = tl.load(kl_ptr + rows, mask=ok, other=0.0)[:, None]
        ds += g_kl * p * (logp - logq - kl)
        dzr = tl.where(mask, g_kl * (tl.exp(logq) - p) * inv_t[:, None], 0.0)
        _accumulate(dzr, hr_ptr, wr_ptr, ghr_ptr, gwr_ptr, rows, cols, n, v, dr, stride_hr, stride_wr, BLOCK_D, DOT_F32)
    dz = tl.where(mask, ds * inv_t[:, None], 0.0)  # dz = ds / τ
    _accumulate(dz, h_ptr, w_ptr, gh_ptr, gw_ptr, rows, cols, n, v, d, stride_h, stride_w, BLOCK_D, DOT_F32)


def _dot_f32(*xs) -> bool:
    """fp32 products unless on CUDA with every input in one 16-bit dtype (the interpreter's bf16 `tl.dot` is wrong)."""
    xs = [x for x in xs if x is not None]
    half = len({x.dtype for x in xs}) == 1 and xs[0].dtype in (torch.bfloat16, torch.float16)
    return not (half and xs[0].device.type == "cuda")


def _blocks(device: torch.device) -> tuple[int, int, int]:
    return GPU_BLOCKS if device.type == "cuda" else (BLOCK_M, BLOCK_V, BLOCK_D)


class _TritonFusedLogprob(torch.autograd.Function):
    """Outputs (log p, lse, [H], [KL]) like the torch backend; inv_t (N,) fp32 = 1/τ per token."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, ref_hidden, ref_weight, inv_t, want_ent, splits):
        ctx.set_materialize_grads(False)
        hidden, weight = hidden.contiguous(), weight.contiguous()
        n, d = hidden.shape
        v = weight.shape[0]
        has_ref = ref_hidden is not None
        if has_ref:
            ref_hidden, ref_weight = ref_hidden.contiguous(), ref_weight.contiguous()
        hr, wr = (ref_hidden, ref_weight) if has_ref else (hidden, weight)
        bm, bv, bd = _blocks(hidden.device)
        splits = splits or vocab_splits(n, v, bm, bv, GPU_PROGRAMS if hidden.device.type == "cuda" else 1)
        per_split = triton.cdiv(triton.cdiv(v, splits), bv) * bv
        splits = triton.cdiv(v, per_split)
        part = torch.empty(7, splits, n, dtype=torch.float32, device=hidden.device)
        _fwd_kernel[(triton.cdiv(n, bm), splits)](
            hidden,
            weight,
            targets,
            hr,
            wr,
            part,
            inv_t,
            n,
            v,
            d,
            hr.shape[1],
            per_split,
            hidden.stride(0),
            weight.stride(0),
            hr.stride(0),
            wr.stride(0),
            HAS_REF=has_ref,
            NEED_A=want_ent or has_ref,
            DOT_F32=_dot_f32(hidden, weight, ref_hidden, ref_weight),
            BLOCK_M=bm,
            BLOCK_V=bv,
            BLOCK_D=bd,
        )
        logp, ent, lse, lse_r, kl = _combine(part, has_ref)
        ctx.save_for_backward(hidden, weight, targets, ref_hidden, ref_weight, lse, ent, lse_r, kl, inv_t)
        ctx.want_ent = want_ent
        return (logp, lse) + ((ent,) if want_ent else ()) + ((kl,) if has_ref else ())

    @staticmethod
    def backward(ctx, g_lp, g_lse, *rest):
        hidden, weight, targets, ref_hidden, ref_weight, lse, ent, lse_r, kl, inv_t = ctx.saved_tensors
        rest = list(rest)
        g_ent = rest.pop(0) if ctx.want_ent else None
        g_kl = rest.pop(0) if ref_hidden is not None else None
        n, d = hidden.shape
        v = weight.shape[0]
        has_ref = ref_hidden is not None
        zeros = torch.zeros(n, dtype=torch.float32, device=hidden.device)
        g_lp, g_lse, g_ent, g_kl = (zeros if g is None else g.float().contiguous() for g in (g_lp, g_lse, g_ent, g_kl))
        hr, wr = (ref_hidden, ref_weight) if has_ref else (hidden, weight)
        bm, bv, bd = _blocks(hidden.device)
        f32 = {"dtype": torch.float32, "device": hidden.device}
        gh, gw = torch.zeros(n, d, **f32), torch.zeros(v, d, **f32)  # fp32 accumulators
        ghr = torch.zeros(n, hr.shape[1], **f32) if has_ref else gh
        gwr = torch.zeros(v, hr.shape[1], **f32) if has_ref else gw
        _bwd_kernel[(triton.cdiv(n, bm), triton.cdiv(v, bv))](
            hidden,
            weight,
            targets,
            hr,
            wr,
            lse,
            ent,
            lse_r if has_ref else lse,
            kl if has_ref else lse,
            g_lp,
            g_lse,
            g_ent,
            g_kl,
            gh,
            gw,
            ghr,
            gwr,
            inv_t,
            n,
            v,
            d,
            hr.shape[1],
            hidden.stride(0),
            weight.stride(0),
            hr.stride(0),
            wr.stride(0),
            HAS_REF=has_ref,
            DOT_F32=_dot_f32(hidden, weight, ref_hidden, ref_weight),
            BLOCK_M=bm,
            BLOCK_V=bv,
            BLOCK_D=bd,
        )
        out = [gh.to(hidden.dtype), gw.to(weight.dtype), None]
        out += [ghr.to(hr.dtype), gwr.to(wr.dtype)] if has_ref else [None, None]
        return (*out, None, None, None)


def fused_logprob_triton(
    hidden, weight, targets, temperature=1.0, ref_hidden=None, ref_weight=None, *, entropy=True, splits=None
):
    """(log p(t), entropy or None, exact KL or None, lse) per token with Triton kernels (CUDA, or
    TRITON_INTERPRET=1 on CPU); temperature a number or (N,); `splits` vocabulary splits in the forward (default:
    enough programs to fill the GPU, 1 in the interpreter)."""
    if hidden.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            "the triton backend needs CUDA tensors; on CPU set TRITON_INTERPRET=1 before importing triton "
            "(slow: tests only) or use backend='torch'"
        )
    tau = temperature if isinstance(temperature, torch.Tensor) else torch.tensor(float(temperature))
    inv_t = (1.0 / tau.to(device=hidden.device, dtype=torch.float32)).expand(hidden.shape[0]).contiguous()
    out = list(
        _TritonFusedLogprob.apply(
            hidden, weight, targets.contiguous(), ref_hidden, ref_weight, inv_t, bool(entropy), splits
        )
    )
    logp, lse = out.pop(0), out.pop(0)
    ent = out.pop(0) if entropy else None
    kl = out.pop(0) if ref_hidden is not None else None
    return logp, ent, kl, lse
