"""GRPO-Guard (Wang et al. 2025): the Flow-GRPO SDE policy step and the regulated clipping on top of it.

The policy is Flow-GRPO's SDE step (official `sd3_sde_with_logprob.py`); GRPO-Guard (official
`train_sd3_GRPO_Guard.py`, the `config.rationorm` branches) changes only the ratio and the loss scale:
- RatioNorm: b = mean_d((μ_θ − μ_old)²)/(2s̄²) with s̄ = mean(√−dt)·mean(σ_t), and ρ̃ = exp((log π_θ − log π_old + b)·s̄).
  Since x' = μ_old + sε, log ρ = mean_d(εΔ)/s − mean_d(Δ²)/(2s²) with Δ = μ_θ − μ_old, so b cancels the
  left-shift −Δ²/(2s²) (in value and gradient: b is not detached) and the factor s̄ removes the 1/s scale.
  b is per sample as the paper writes it (`bias="sample"`); the official code's `.mean(dim=tuple(range(1, ndim)))`
  is applied to the 1-D log-prob, i.e. `mean(dim=())`, which torch reads as a mean over everything: one scalar
  b̄ = mean_{batch,d}(Δ²)/(2s̄²) per minibatch (`bias="batch"`), which cancels the shift only on average.
- Gradient reweighting: the clipped loss is divided by mean(√−dt)², equalising the per-step gradient scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from reprozoo.papers.grpo_guard.baselines import clipped_loss, flow_grpo_loss

GUARDED = ("grpo_guard", "ratio_norm")  # methods with RatioNorm (their ε is Guard's)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)  # of the off-policy ratio, per denoising step (RatioLog)

# --- method ---


def sde_std(sigma: torch.Tensor, sigma_1: float, eta: float) -> torch.Tensor:
    """Flow-GRPO's noise scale σ_t = η·√(σ / (1 − σ)); at σ = 1 the σ of the denominator is replaced by σ_1
    (the scheduler's second sigma), as the official code does."""
    # BEGIN SOLUTION
    denom = 1 - torch.where(sigma == 1, torch.full_like(sigma, sigma_1), sigma)
    return eta * torch.sqrt(sigma / denom)
    # END SOLUTION


def sde_step(
    x: torch.Tensor,
    v: torch.Tensor,
    sigma: torch.Tensor,
    sigma_next: torch.Tensor,
    sigma_1: float,
    eta: float,
    *,
    prev: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Flow-GRPO SDE step and its log-probability.

    dt = σ_next − σ < 0,  σ_t = `sde_std(σ)`,  s = σ_t·√−dt;
    μ_θ = x·(1 + σ_t²·dt/(2σ)) + v·(1 + σ_t²(1 − σ)/(2σ))·dt;   x' = μ_θ + s·ε (unless `prev` is given);
    log π_θ(x'|x) = mean_d[ −(x' − μ_θ)²/(2s²) − log s − log √(2π) ]   (a MEAN over latent dimensions).
    `sigma` and `sigma_next` are per-sample (B,) tensors; x' enters the density detached.
    Returns (x', log π (B,), μ_θ, σ_t (B,), √−dt (B,)).
    """
    # BEGIN SOLUTION
    shape = (-1,) + (1,) * (x.dim() - 1)
    s, sn = sigma.view(shape), sigma_next.view(shape)
    dt = sn - s
    std = sde_std(s, sigma_1, eta)
    mean = x * (1 + std**2 / (2 * s) * dt) + v * (1 + std**2 * (1 - s) / (2 * s)) * dt
    scale = std * torch.sqrt(-dt)
    if prev is None:
        prev = mean + scale * noise
    logp = -((prev.detach() - mean) ** 2) / (2 * scale**2) - torch.log(scale) - math.log(math.sqrt(2 * math.pi))
    return prev, logp.mean(dim=tuple(range(1, x.dim()))), mean, std.flatten(), torch.sqrt(-dt).flatten()
    # END SOLUTION


def ratio_norm(
    logp: torch.Tensor,
    logp_old: torch.Tensor,
    mean: torch.Tensor,
    mean_old: torch.Tensor,
    std: torch.Tensor,
    sqrt_dt: torch.Tensor,
    bias: str = "sample",
) -> torch.Tensor:
    """RatioNorm: s̄ = mean(√−dt)·mean(σ_t) over the minibatch; b = mean_d((μ_θ − μ_old)²)/(2s̄²) per sample
    (`bias="sample"`, the paper) or b̄ = mean_{batch,d}((μ_θ − μ_old)²)/(2s̄²), one scalar (`bias="batch"`, the
    official code); not detached. ρ̃ = exp((log π_θ − log π_old + b)·s̄)."""
    if bias not in ("sample", "batch"):
        raise ValueError(f"bias must be 'sample' or 'batch', got {bias!r}")
    # BEGIN SOLUTION
    s_bar = sqrt_dt.mean() * std.mean()
    dims = tuple(range(1, mean.dim())) if bias == "sample" else tuple(range(mean.dim()))
    b = (mean - mean_old).pow(2).mean(dim=dims) / (2 * s_bar**2)
    return torch.exp((logp - logp_old + b) * s_bar)
    # END SOLUTION


def reweight(loss: torch.Tensor, sqrt_dt: torch.Tensor) -> torch.Tensor:
    """Gradient reweighting: L / mean(√−dt)² (mean over the minibatch of one denoising step)."""
    # BEGIN SOLUTION
    return loss / sqrt_dt.mean() ** 2
    # END SOLUTION


def grpo_guard_loss(
    logp: torch.Tensor,
    logp_old: torch.Tensor,
    mean: torch.Tensor,
    mean_old: torch.Tensor,
    std: torch.Tensor,
    sqrt_dt: torch.Tensor,
    advantages: torch.Tensor,
    eps: float,
    *,
    reweighting: bool = True,
    bias: str = "sample",
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO-Guard's policy loss for one denoising step: ρ̃ = `ratio_norm` (b per `bias`),
    L = mean max(−Aρ̃, −A·clip(ρ̃, 1 ± ε)), divided by mean(√−dt)² (`reweighting=False` is the RatioNorm-only
    ablation). Returns (L, ρ̃)."""
    # BEGIN SOLUTION
    ratio = ratio_norm(logp, logp_old, mean, mean_old, std, sqrt_dt, bias)
    loss = clipped_loss(ratio, advantages, eps)
    return (reweight(loss, sqrt_dt) if reweighting else loss), ratio
    # END SOLUTION


# --- every compared method's loss of one denoising step ---


def step_loss(method: str, new: dict, old: dict, adv: torch.Tensor, eps: float, beta: float = 0.0, bias="sample"):
    """(loss, ratio) of one denoising step: `new` holds this step's logp, mean, std, sqrt_dt (and mean_ref for the
    KL) under the current policy, `old` the rollout's logp and mean: GRPO-Guard's loss for the GUARDED methods, else
    Flow-GRPO's (β·KL for flow_grpo_kl only). Shared by the world runs (experiment.py) and `full.py`."""
    if method in GUARDED:
        return grpo_guard_loss(
            new["logp"],
            old["logp"],
            new["mean"],
            old["mean"],
            new["std"],
            new["sqrt_dt"],
            adv,
            eps,
            reweighting=method == "grpo_guard",
            bias=bias,
        )
    return flow_grpo_loss(
        new["logp"],
        old["logp"],
        adv,
        eps,
        beta=beta if method == "flow_grpo_kl" else 0.0,
        mean=new["mean"],
        mean_ref=new.get("mean_ref"),
        std=new["std"],
    )


class RatioLog:
    """The ratio a loss used (ρ, or ρ̃ under RatioNorm) on off-policy minibatches, pooled per trained denoising step
    over a run: its distribution, and the fraction clipped on the side that binds for each sign of A (ρ > 1 + ε for
    A > 0, ρ < 1 − ε for A < 0), as the paper's analysis of the left-shifted ratio."""

    def __init__(self, steps: int):
        self.ratios: list[list[torch.Tensor]] = [[] for _ in range(steps)]
        self.clip_pos: list[list[float]] = [[] for _ in range(steps)]
        self.clip_neg: list[list[float]] = [[] for _ in range(steps)]

    def add(self, j: int, ratio: torch.Tensor, adv: torch.Tensor, eps: float) -> None:
        """One minibatch's ratios at denoising step j, with their advantages and the step's ε."""
        self.ratios[j].append(ratio)
        if (adv > 0).any():
            self.clip_pos[j].append(float((ratio[adv > 0] > 1 + eps).float().mean()))
        if (adv < 0).any():
            self.clip_neg[j].append(float((ratio[adv < 0] < 1 - eps).float().mean()))

    def stats(self) -> Iterator[tuple[int, dict[str, float]]]:
        """(j, {ratio_mean, ratio_std, ratio_qNN, clip_frac_pos, clip_frac_neg}) of each step that saw a ratio."""
        for j, pooled in enumerate(self.ratios):
            if not pooled:
                continue
            r = torch.cat(pooled).double()
            out = {"ratio_mean": float(r.mean()), "ratio_std": float(r.std())}
            out |= {f"ratio_q{int(q * 100):02d}": float(r.quantile(q)) for q in QUANTILES}
            out["clip_frac_pos"] = float(np.mean(self.clip_pos[j] or [np.nan]))
            out["clip_frac_neg"] = float(np.mean(self.clip_neg[j] or [np.nan]))
            yield j, out
