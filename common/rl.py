"""Policy optimisation for language models: GAE, PPO losses and KL control, GRPO advantages and loss.

Token tensors are (B, T) over response positions with a 0/1 `mask`; the reward of a sequence sits on its last
response token (Ziegler et al. 2019; Ouyang et al. 2022). The trainer that ties these together is in
`common.ppo` (`PPOTrainer`).
"""

from __future__ import annotations

from typing import Literal

import torch

from reprozoo.common.policy import KLEstimator, kl_estimate, masked_mean

# --- method: advantages ---


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over response tokens.

    δ_t = r_t + γ V_{t+1} − V_t,   A_t = δ_t + γ λ A_{t+1},   returns R_t = A_t + V_t,
    with V_{t+1} = A_{t+1} = 0 past the last unmasked token. Masked positions get A = R = 0.
    """
    mask = mask.to(values.dtype)
    T = rewards.shape[-1]
    adv = torch.zeros_like(values)
    next_adv = torch.zeros_like(values[..., 0])
    next_value = torch.zeros_like(values[..., 0])
    for t in reversed(range(T)):
        m = mask[..., t]
        delta = rewards[..., t] + gamma * next_value - values[..., t]
        a = (delta + gamma * lam * next_adv) * m
        adv[..., t] = a
        next_adv = a
        next_value = values[..., t] * m
    return adv, (adv + values) * mask


def kl_penalised_rewards(
    score: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    *,
    beta: float,
    kind: KLEstimator = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards r_t = −β k(log π_t, log π_ref,t) + 1[t = last] · score; returns (rewards, per-token KL)."""
    kl = kl_estimate(logp, ref_logp, kind) * mask
    rewards = -beta * kl
    last = mask.long().cumsum(-1).argmax(-1)  # index of the last unmasked token
    rewards[torch.arange(rewards.shape[0], device=rewards.device), last] += score.to(rewards.dtype)
    return rewards, kl


# --- method: PPO ---


def ppo_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, *, clip: float = 0.2
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate L^CLIP = E_t[max(−A_t ρ_t, −A_t clip(ρ_t, 1 − ε, 1 + ε))], ρ_t = π_θ/π_old (token mean)."""
    ratio = torch.exp(logp - old_logp)
    loss = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    stats = {
        "clipfrac": masked_mean(((ratio - 1).abs() > clip).to(logp.dtype), mask).detach(),
        "approx_kl": masked_mean(kl_estimate(old_logp, logp, "k3"), mask).detach(),
    }
    return masked_mean(loss, mask), stats


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float | None = 0.2,
) -> torch.Tensor:
    """L^V = ½ E_t[max((V − R)², (V_old + clip(V − V_old, −ε, ε) − R)²)] (no clipping when `clip` is None)."""
    err = (values - returns) ** 2
    if clip is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        err = torch.maximum(err, (clipped - returns) ** 2)
    return 0.5 * masked_mean(err, mask)


class AdaptiveKLController:
    """Ziegler et al. 2019: β ← β (1 + K_β e), e = clip(KL/KL_target − 1, −0.2, 0.2), K_β = n_steps / horizon."""

    def __init__(self, init_beta: float, target: float, horizon: int = 10000):
        self.beta, self.target, self.horizon = init_beta, target, horizon

    def update(self, kl: float, n_steps: int) -> float:
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.beta *= 1.0 + error * n_steps / self.horizon
        return self.beta


class FixedKLController:
    """A constant KL coefficient β."""

    def __init__(self, beta: float):
        self.beta = beta

    def update(self, kl: float, n_steps: int) -> float:
        return self.beta


# --- method: GRPO ---


def grpo_advantages(
    rewards: torch.Tensor, *, center: Literal["mean", "median"] = "mean", normalize: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """Group-relative advantages for rewards of shape (groups, G) (G responses per prompt):

    A_i = (r_i − c) / (std(r) + ε) with c = mean(r) or median(r); no division when `normalize` is False.
    std is the unbiased group standard deviation (as in DeepSeekMath / TRL). A group of one response has no
    relative signal: its advantage is 0 (the unbiased std of one sample is undefined).
    """
    if rewards.shape[-1] == 1:
        return torch.zeros_like(rewards)
    if center == "mean":
        c = rewards.mean(-1, keepdim=True)
    elif center == "median":
        c = rewards.median(-1, keepdim=True).values
    else:
        raise ValueError(f"unknown center {center!r}; choose mean or median")
    adv = rewards - c
    if normalize:
        adv = adv / (rewards.std(-1, keepdim=True) + eps)
    return adv


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float = 0.2,
    clip_high: float | None = None,
    beta: float = 0.04,
    aggregation: Literal["sequence", "token"] = "sequence",
) -> torch.Tensor:
    """GRPO (Shao et al. 2024): per token ℓ_t = −min(ρ_t A, clip(ρ_t, 1 − ε_low, 1 + ε_high) A) + β k3(π_θ, π_ref),

    with ε_low = `clip` and ε_high = `clip_high` (DAPO's clip-higher, e.g. 0.2 / 0.28; default ε_high = ε_low),
    averaged over each sequence's tokens then over sequences ("sequence", the paper), or over all tokens of
    the batch ("token", DAPO). `adv` is per sequence (B,).
    """
    high = clip if clip_high is None else clip_high
    ratio = torch.exp(logp - old_logp)
    a = adv[:, None].to(logp.dtype)
    per_token = -torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + high) * a)
    if ref_logp is not None and beta:
        per_token = per_token + beta * kl_estimate(logp, ref_logp, "k3")
    if aggregation == "sequence":
        return masked_mean(per_token, mask, dim=-1).mean()
    if aggregation == "token":
        return masked_mean(per_token, mask)
    raise ValueError(f"unknown aggregation {aggregation!r}; choose sequence or token")
