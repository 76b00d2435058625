"""Offline preference-optimisation losses as plain functions of sequence log-probs (per-pair losses, shape (B,)).

Notation: π_w = log π_θ(y_w | x), π_l = log π_θ(y_l | x) (summed over response tokens), r_w, r_l the same under
the reference policy, and the log-ratio margin h = (π_w − r_w) − (π_l − r_l).
"""

from __future__ import annotations

import torch
from torch.nn.functional import logsigmoid


def _margin(pol_w: torch.Tensor, pol_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor) -> torch.Tensor:
    return (pol_w - ref_w) - (pol_l - ref_l)


# --- method ---


def dpo_loss(
    pol_w: torch.Tensor, pol_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor, *, beta: float = 0.1
) -> torch.Tensor:
    """DPO (Rafailov et al. 2023): L = −log σ(β h)."""
    return -logsigmoid(beta * _margin(pol_w, pol_l, ref_w, ref_l))


def cdpo_loss(
    pol_w: torch.Tensor,
    pol_l: torch.Tensor,
    ref_w: torch.Tensor,
    ref_l: torch.Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.1,
) -> torch.Tensor:
    """Conservative / label-smoothed DPO: L = −(1 − ε) log σ(β h) − ε log σ(−β h)."""
    z = beta * _margin(pol_w, pol_l, ref_w, ref_l)
    return -(1 - label_smoothing) * logsigmoid(z) - label_smoothing * logsigmoid(-z)


def rdpo_loss(
    pol_w: torch.Tensor,
    pol_l: torch.Tensor,
    ref_w: torch.Tensor,
    ref_l: torch.Tensor,
    *,
    beta: float = 0.1,
    flip_rate: float = 0.1,
) -> torch.Tensor:
    """Robust DPO (Chowdhury et al. 2024), unbiased under label flips with rate ε < ½:

    L = [(1 − ε) (−log σ(β h)) − ε (−log σ(−β h))] / (1 − 2ε).
    """
    if not 0 <= flip_rate < 0.5:
        raise ValueError(f"flip_rate must lie in [0, 0.5), got {flip_rate}")
    z = beta * _margin(pol_w, pol_l, ref_w, ref_l)
    return (-(1 - flip_rate) * logsigmoid(z) + flip_rate * logsigmoid(-z)) / (1 - 2 * flip_rate)


def ipo_loss(
    pol_w: torch.Tensor, pol_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor, *, tau: float = 0.1
) -> torch.Tensor:
    """IPO (Azar et al. 2023): L = (h − 1/(2τ))²."""
    return (_margin(pol_w, pol_l, ref_w, ref_l) - 1.0 / (2.0 * tau)) ** 2


def simpo_loss(
    pol_w: torch.Tensor,
    pol_l: torch.Tensor,
    len_w: torch.Tensor,
    len_l: torch.Tensor,
    *,
    beta: float = 2.0,
    gamma: float = 0.5,
) -> torch.Tensor:
    """SimPO (Meng et al. 2024), reference-free and length-normalised:

    L = −log σ(β/|y_w| · log π(y_w) − β/|y_l| · log π(y_l) − γ).
    """
    return -logsigmoid(beta * pol_w / len_w - beta * pol_l / len_l - gamma)


def implicit_reward(pol: torch.Tensor, ref: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's implicit reward β (log π_θ(y|x) − log π_ref(y|x))."""
    return beta * (pol - ref)
