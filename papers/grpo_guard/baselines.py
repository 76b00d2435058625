"""Flow-GRPO (Liu et al. 2025, official `scripts/train_sd3.py`): group advantages, the importance ratio, the clipped
policy loss and the KL penalty to the reference policy. GRPO-Guard reuses the advantages and the clipped loss."""

from __future__ import annotations

import torch

# --- method ---


def group_advantages(rewards: torch.Tensor, groups: torch.Tensor, clip: float = 5.0) -> torch.Tensor:
    """Per-prompt advantages (`global_std=False`): A = (r − mean_prompt)/(std_prompt + 1e-4), clipped to ±clip.
    The std is numpy's (population, ddof = 0), as the official stat tracker's `np.std`."""
    # BEGIN SOLUTION
    adv = torch.zeros_like(rewards)
    for g in groups.unique():
        m = groups == g
        r = rewards[m]
        adv[m] = (r - r.mean()) / (r.std(unbiased=False) + 1e-4)
    return adv.clamp(-clip, clip)
    # END SOLUTION


def clipped_loss(ratio: torch.Tensor, advantages: torch.Tensor, eps: float) -> torch.Tensor:
    """The clipped surrogate: L = mean max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε))."""
    # BEGIN SOLUTION
    return torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1 - eps, 1 + eps)).mean()
    # END SOLUTION


def kl_penalty(mean: torch.Tensor, mean_ref: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Flow-GRPO's KL between the equal-variance Gaussian steps of θ and the reference:
    mean_batch[ mean_d((μ_θ − μ_ref)²) / (2σ_t²) ] (official: divided by σ_t², not by s² = σ_t²|dt|)."""
    # BEGIN SOLUTION
    per = (mean - mean_ref).pow(2).mean(dim=tuple(range(1, mean.dim())))
    return (per / (2 * std**2)).mean()
    # END SOLUTION


def flow_grpo_loss(
    logp: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    eps: float,
    *,
    beta: float = 0.0,
    mean: torch.Tensor | None = None,
    mean_ref: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow-GRPO's loss for one denoising step: ρ = exp(log π_θ − log π_old),
    L = mean max(−Aρ, −A·clip(ρ, 1 ± ε)) + β·KL (the KL term only when β > 0). Returns (L, ρ)."""
    ratio = torch.exp(logp - logp_old)
    loss = clipped_loss(ratio, advantages, eps)
    if beta > 0:
        loss = loss + beta * kl_penalty(mean, mean_ref, std)
    return loss, ratio
