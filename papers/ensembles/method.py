"""The papers' contribution: aggregate k reward models into one conservative reward.

Coste et al. 2023 ("Reward Model Ensembles Help Mitigate Overoptimization"): k members trained on the same
preference data with different seeds; optimise the mean, the worst case (WCO) or an uncertainty-weighted
objective (UWO). Eisenstein et al. 2023 ("Helping or Herding?"): median and mean − std, and ensembles whose
members differ in their pre-training seed rather than only their fine-tuning seed.

Member rewards R_1..R_k are stacked along dim 0: `rewards` has shape (k, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

Aggregation = Literal["mean", "wco", "uwo", "median", "mean_minus_std"]
AGGREGATIONS: tuple[str, ...] = ("mean", "wco", "uwo", "median", "mean_minus_std")
UWO_LAMBDA = {"bon": 0.5, "ppo": 0.1}
"""Official λ of UWO (tlc4418/llm_optimization): 0.5 in the best-of-n scripts, 0.1 in the PPO runs."""
UWO_UNBIASED = {"bon": False, "ppo": True}
"""Official variance: np.var (population, ddof 0) for best-of-n, torch.var (unbiased, k − 1) for PPO."""


def mean(rewards: torch.Tensor) -> torch.Tensor:
    """R_mean = (1/k) Σ_i R_i."""
    # BEGIN SOLUTION
    return rewards.mean(0)
    # END SOLUTION


def wco(rewards: torch.Tensor) -> torch.Tensor:
    """Worst-case optimisation: R_WCO = min_i R_i."""
    # BEGIN SOLUTION
    return rewards.min(0).values
    # END SOLUTION


def uwo(rewards: torch.Tensor, lam: float, *, unbiased: bool) -> torch.Tensor:
    """Uncertainty-weighted optimisation: R_UWO = (1/k) Σ_i R_i − λ · Var_i(R_i),

    Var = (1/k) Σ_i (R_i − R̄)² (population) or 1/(k − 1) Σ_i (R_i − R̄)² (unbiased)."""
    # BEGIN SOLUTION
    return rewards.mean(0) - lam * rewards.var(0, correction=int(unbiased))
    # END SOLUTION


def median(rewards: torch.Tensor) -> torch.Tensor:
    """Eisenstein et al.: the median of R_1..R_k (mean of the two middle values for even k)."""
    # BEGIN SOLUTION
    return rewards.quantile(0.5, dim=0) if rewards.shape[0] % 2 == 0 else rewards.median(0).values
    # END SOLUTION


def mean_minus_std(rewards: torch.Tensor, *, unbiased: bool = False) -> torch.Tensor:
    """Eisenstein et al.: R = (1/k) Σ_i R_i − Std_i(R_i)."""
    # BEGIN SOLUTION
    return rewards.mean(0) - rewards.std(0, correction=int(unbiased))
    # END SOLUTION


def aggregate(rewards: torch.Tensor, name: Aggregation, *, stage: Literal["bon", "ppo"] = "bon") -> torch.Tensor:
    """One of `AGGREGATIONS` with the official settings of `stage` (UWO's λ and variance)."""
    # BEGIN SOLUTION
    if name == "mean":
        return mean(rewards)
    if name == "wco":
        return wco(rewards)
    if name == "uwo":
        return uwo(rewards, UWO_LAMBDA[stage], unbiased=UWO_UNBIASED[stage])
    if name == "median":
        return median(rewards)
    if name == "mean_minus_std":
        return mean_minus_std(rewards, unbiased=UWO_UNBIASED[stage])
    raise ValueError(f"unknown aggregation {name!r}; choose one of {AGGREGATIONS}")
    # END SOLUTION


class Ensemble(nn.Module):
    """k reward models, each standardised under the base policy (z_i = (R_i − μ_i)/σ_i), and their aggregate."""

    def __init__(self, members: Sequence[nn.Module], mu: torch.Tensor, sigma: torch.Tensor):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("mu", torch.as_tensor(mu, dtype=torch.float32).reshape(-1, 1))
        self.register_buffer("sigma", torch.as_tensor(sigma, dtype=torch.float32).reshape(-1, 1))

    def member_rewards(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(k, B) standardised member rewards."""
        # BEGIN SOLUTION
        return (torch.stack([m(ids, mask) for m in self.members]) - self.mu) / self.sigma
        # END SOLUTION

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, name: Aggregation = "mean", stage: Literal["bon", "ppo"] = "ppo"
    ) -> torch.Tensor:
        # BEGIN SOLUTION
        return aggregate(self.member_rewards(ids, mask), name, stage=stage)
        # END SOLUTION
