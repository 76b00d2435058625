"""`reference` backend: full N × V logits, float64-capable. The ground truth in tests; never fast or lean.

With z = H Wᵀ and s = z / τ:
    log p(t_i) = s_i[t_i] − logsumexp(s_i)
    H_i        = logsumexp(s_i) − Σ_v p_iv s_iv               (entropy)
    KL_i       = Σ_v p_iv (log p_iv − log q_iv)               (exact, q from s' = H_ref W_refᵀ / τ)
Gradients come from plain autograd through these formulas.
"""

from __future__ import annotations

import torch


def fused_logprob_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    ref_hidden: torch.Tensor | None = None,
    ref_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(log p(t), entropy, exact KL or None) per token; hidden (N, D), weight (V, D), targets (N,)."""
    dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    s = (hidden.to(dtype) @ weight.to(dtype).T) / temperature  # s = z / τ, (N, V)
    logp_all = torch.log_softmax(s, dim=-1)  # log p_v = s_v − logsumexp(s)
    p = logp_all.exp()
    logp = logp_all.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    entropy = -(p * logp_all).sum(-1)  # H = −Σ p log p
    kl = None
    if ref_hidden is not None:
        s_ref = (ref_hidden.to(dtype) @ ref_weight.to(dtype).T) / temperature
        logq_all = torch.log_softmax(s_ref, dim=-1)
        kl = (p * (logp_all - logq_all)).sum(-1)  # KL(π‖π_ref) = Σ p (log p − log q)
    return logp, entropy, kl
