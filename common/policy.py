"""Policy primitives for language-model RL: log-probs, entropy, KL estimators, masked reductions, sampling.

Shapes: logits (..., T, V), tokens / masks (..., T). Everything is device- and dtype-agnostic (float64
inputs give float64 outputs, which the tests use as the reference).
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal

import torch

KLEstimator = Literal["k1", "k2", "k3"]

# --- method ---


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log π(y_t | ·) = z_{y_t}/τ − logsumexp_v(z_v/τ) for the given tokens; shape of `tokens`, always ≤ 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)


FUSED_MIN_VOCAB = 4096
"""With backend="auto", vocabularies at least this large go through `reprozoo.kernels.api.fused_logprob`; tiny ones
take the plain path, which is faster when the N×V logits are small."""


def logprobs_from_hidden(
    hidden: torch.Tensor, weight: torch.Tensor, tokens: torch.Tensor, *, temperature: float = 1.0, backend: str = "auto"
) -> torch.Tensor:
    """log π(y_t) from hidden states h (..., T, d) and an LM head W (V, d): logits = h Wᵀ / τ.

    backend: "plain" materialises the logits; "auto" uses `reprozoo.kernels.api.fused_logprob` (no N×V logits) when
    V ≥ FUSED_MIN_VOCAB and the kernels package is importable; any other name is passed to the kernels.
    """
    fused = _fused_logprob() if backend != "plain" else None
    if fused is not None and (backend != "auto" or weight.shape[0] >= FUSED_MIN_VOCAB):
        return fused(hidden, weight, tokens.long(), temperature=temperature, backend=backend).logprobs
    if backend not in ("auto", "plain"):
        raise ValueError(f"backend {backend!r} needs the kernels package")
    return logprobs_from_logits(hidden @ weight.T, tokens, temperature)


@functools.cache
def _fused_logprob():
    """`reprozoo.kernels.api.fused_logprob`, or None (with one warning) when it cannot be imported."""
    try:
        from reprozoo.kernels.api import fused_logprob
    except ImportError as err:
        warnings.warn(
            f"the fused log-prob kernels cannot be imported ({err}): logprobs_from_hidden materialises the N×V logits",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return fused_logprob


def fused_kernels_status() -> str:
    """Which log-prob path `logprobs_from_hidden(backend="auto")` takes for large vocabularies (summary.json's env)."""
    return "fused (reprozoo.kernels.api)" if _fused_logprob() is not None else "unavailable: plain logits"


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H(π_t) = −Σ_v p_v log p_v per position."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLEstimator = "k3") -> torch.Tensor:
    """Per-token estimators of KL(π ‖ π_ref) from samples y ∼ π, with r = π_ref(y)/π(y) (Schulman 2020).

    k1 = log π − log π_ref = −log r          (unbiased, can be negative)
    k2 = ½ (log r)²                          (biased, low variance, ≥ 0)
    k3 = (r − 1) − log r                     (unbiased, ≥ 0)
    """
    log_ratio = ref_logp - logp  # log r
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio**2
    if kind == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}; choose k1, k2 or k3")


def kl_exact(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Full-distribution KL(π ‖ π_ref) = Σ_v p_v (log p_v − log q_v) per position."""
    logp = torch.log_softmax(logits, dim=-1)
    logq = torch.log_softmax(ref_logits, dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ x·m over `dim` (all elements when None)."""
    x = x * mask
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ x·m / Σ m over `dim` (all elements when None); 0 where the mask is empty."""
    mask = mask.to(x.dtype)
    count = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(x, mask, dim) / count.clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance of the masked elements."""
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    n = mask.sum()
    return masked_sum((x - mean) ** 2, mask) / (n - 1).clamp_min(1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x − mean)/std over the masked elements (mean added back when `shift_mean` is False)."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    white = (x - mean) * torch.rsqrt(var + 1e-8)
    return white if shift_mean else white + mean


def sequence_logprob(token_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log π(y | x) = Σ_t m_t log π(y_t | x, y_<t) per sequence (last dim summed)."""
    return masked_sum(token_logp, mask.to(token_logp.dtype), dim=-1)


# --- sampling ---


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set logits outside the smallest set of tokens whose probability mass reaches `top_p` to −inf."""
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    # drop a token when the mass strictly before it already reaches top_p (the top token is always kept)
    drop_sorted = (probs.cumsum(-1) - probs) >= top_p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_from_logits(
    logits: torch.Tensor, *, temperature: float = 1.0, top_p: float = 1.0, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row from softmax(z/τ) restricted to the top-p nucleus.

    Returns (tokens, log-prob of each token under the sampling distribution actually used).
    temperature == 0 is greedy decoding (log-prob 0).
    """
    if temperature == 0:
        tok = logits.argmax(-1)
        return tok, torch.zeros(tok.shape, dtype=logits.dtype, device=logits.device)
    z = top_p_filter(logits / temperature, top_p)
    logp = torch.log_softmax(z, dim=-1)
    flat = logp.reshape(-1, logp.shape[-1]).exp()
    tok = torch.multinomial(flat, 1, generator=generator).reshape(logp.shape[:-1])
    return tok, logp.gather(-1, tok.unsqueeze(-1)).squeeze(-1)


def response_mask(tokens: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """1 for response tokens up to and including the first EOS, 0 after it (all ones if `eos_id` is None)."""
    if eos_id is None:
        return torch.ones_like(tokens, dtype=torch.float32)
    is_eos = (tokens == eos_id).long()
    after = (is_eos.cumsum(-1) - is_eos) > 0
    return (~after).float()


def _check_kind(kind: str) -> None:
    if kind not in ("k1", "k2", "k3"):
        raise ValueError(f"unknown KL estimator {kind!r}; choose k1, k2 or k3")


def token_kl(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, kind: KLEstimator = "k1") -> torch.Tensor:
    """Per-sequence KL estimate Σ_t m_t k(·) (k1 by default, the usual RLHF report)."""
    _check_kind(kind)
    return sequence_logprob(kl_estimate(logp, ref_logp, kind), mask)


__all__ = [
    "entropy_from_logits",
    "kl_estimate",
    "kl_exact",
    "logprobs_from_hidden",
    "logprobs_from_logits",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "response_mask",
    "sample_from_logits",
    "sequence_logprob",
    "token_kl",
    "top_p_filter",
]
