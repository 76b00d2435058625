"""POWER and POWER-DL (Rashidinejad & Tian, ICLR 2025, arXiv 2412.09544) — reconstructed, see README "Derivation".

The paper's equations could not be read here; every formula below is derived in the README from the construction
the abstract gives (Guiaşu's weighted entropy + robust reward maximisation against a baseline policy π′, with a
Bradley–Terry fit of the reward to the data), and checked numerically against a direct max–min solver in the tests.
Equation numbers (P1)–(P6) refer to the README's derivation, not to the paper.

Notation: log π(y|x) summed over response tokens, |y| the response length, w(y) = 1/|y| (Guiaşu weights),
l ∈ [0, 1] the (soft) label P(y⁺ ≻ y⁻) of a pair, σ the logistic function.
"""

from __future__ import annotations

import torch
from torch.nn.functional import logsigmoid


def weighted_entropy(probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Guiaşu's weighted entropy H_w(π) = −Σ_y w(y) π(y) log π(y) over the last axis   (P1)."""
    # BEGIN SOLUTION
    return -(weights * torch.special.xlogy(probs, probs)).sum(-1)
    # END SOLUTION


def power_reward(logp: torch.Tensor, length: torch.Tensor, beta: float) -> torch.Tensor:
    """The reward whose weighted-entropy-regularised best response is π (up to a prompt-only Z(x)):

    r_π(x, y) = β w(y) (log π(y|x) + 1),  w(y) = 1/|y|                                                   (P3)
    """
    # BEGIN SOLUTION
    return beta / length * (logp + 1.0)
    # END SOLUTION


def power_margin(
    pol_w: torch.Tensor, pol_l: torch.Tensor, len_w: torch.Tensor, len_l: torch.Tensor, *, beta: float
) -> torch.Tensor:
    """Δ_θ = r_π(y⁺) − r_π(y⁻) = β (log π(y⁺)/|y⁺| − log π(y⁻)/|y⁻|) + β (1/|y⁺| − 1/|y⁻|)                (P4)"""
    # BEGIN SOLUTION
    return power_reward(pol_w, len_w, beta) - power_reward(pol_l, len_l, beta)
    # END SOLUTION


def power_loss(
    pol_w: torch.Tensor,
    pol_l: torch.Tensor,
    len_w: torch.Tensor,
    len_l: torch.Tensor,
    *,
    beta: float = 2.0,
    eta: float = 2.0,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pair POWER loss (POWER-DL when `labels` are the dynamic labels l_t):

    ℓ = −[l log σ(Δ_θ) + (1 − l) log σ(−Δ_θ)] − (β/η) [l log π(y⁺|x)/|y⁺| + (1 − l) log π(y⁻|x)/|y⁻|]      (P5)

    The first term is Bradley–Terry on the POWER reward margin (P4) with label l (l = 1: plain POWER); the second
    is the baseline term −E_{π′}[r_π]/η with π′ the data's chosen responses, up to a constant: a soft label l
    makes y⁺ the chosen response of the pair with probability l and y⁻ with probability 1 − l. The
    remaining policy term (β/η)·E_{y∼π}[w(y)] of (P5) needs on-policy samples and is dropped here (README,
    deviation 2); the tabular loss `power_bandit_loss` in `bandit.py` keeps it exactly.
    """
    # BEGIN SOLUTION
    delta = power_margin(pol_w, pol_l, len_w, len_l, beta=beta)
    if labels is None:
        return -logsigmoid(delta) - (beta / eta) * pol_w / len_w
    bt = -(labels * logsigmoid(delta) + (1 - labels) * logsigmoid(-delta))
    return bt - (beta / eta) * (labels * pol_w / len_w + (1 - labels) * pol_l / len_l)
    # END SOLUTION


@torch.no_grad()
def update_labels(labels: torch.Tensor, delta: torch.Tensor, gamma: float) -> torch.Tensor:
    """Dynamic labels: l_{t+1} = (1 − γ) l_t + γ σ(Δ_{θ_t}), l_0 = 1 (γ = 0: POWER)                       (P6)

    For a fixed model the labels converge geometrically to the stationary label l* = σ(Δ_θ), where the pair's
    Bradley–Terry gradient −(l − σ(Δ_θ)) ∂Δ_θ/∂θ vanishes; pairs the rest of the data does not move the model
    towards (weakly supported, or flipped) have their labels pulled to the model's own preference first.
    """
    # BEGIN SOLUTION
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    return (1 - gamma) * labels + gamma * torch.sigmoid(delta.detach())
    # END SOLUTION
