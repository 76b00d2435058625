"""`reference` backend: full N × V logits, float64-capable. The ground truth in tests; never fast or lean.

With z = H Wᵀ and s = z / τ (τ a number or one temperature per token):
    lse_i      = logsumexp(s_i)
    log p(t_i) = s_i[t_i] − lse_i
    H_i        = lse_i − Σ_v p_iv s_iv                         (entropy)
    KL_i       = Σ_v p_iv (log p_iv − log q_iv)               (exact, q from s' = H_ref W_refᵀ / τ)
Gradients come from plain autograd through these formulas.
"""

from __future__ import annotations

import torch


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (bf16 / fp16 / mixed inputs compute in fp32)."""
    return torch.float64 if any(x.dtype == torch.float64 for x in tensors) else torch.float32


def fused_logprob_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
    ref_hidden: torch.Tensor | None = None,
    ref_weight: torch.Tensor | None = None,
    *,
    entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """(log p(t), entropy (None with entropy=False), exact KL or None, lse) per token; hidden (N, D),
    weight (V, D), targets (N,), temperature a number or (N,)."""
    dtype = compute_dtype(hidden, weight)
    tau = temperature.to(dtype).unsqueeze(-1) if isinstance(temperature, torch.Tensor) else temperature
    s = (hidden.to(dtype) @ weight.to(dtype).T) / tau  # s = z / τ, (N, V)
    lse = torch.logsumexp(s, dim=-1)
    logp_all = s - lse.unsqueeze(-1)  # log p_v = s_v − logsumexp(s)
    p = logp_all.exp()
    logp = logp_all.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    ent = -(p * logp_all).sum(-1) if entropy else None  # H = −Σ p log p
    kl = None
    if ref_hidden is not None:
        s_ref = (ref_hidden.to(dtype) @ ref_weight.to(dtype).T) / tau
        logq_all = torch.log_softmax(s_ref, dim=-1)
        kl = (p * (logp_all - logq_all)).sum(-1)  # KL(π‖π_ref) = Σ p (log p − log q)
    return logp, ent, kl, lse
