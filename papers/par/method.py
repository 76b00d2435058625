"""Preference As Reward (PAR), Fu et al. 2025, "Reward Shaping to Mitigate Reward Hacking in RLHF".

PAR replaces the proxy reward r(x, y) in RLHF by the policy response's average preference, under the proxy's own
Bradley–Terry model, over M reference responses y_ref,m ~ π_SFT(·|x) scored once, offline:

    r_RL(x, y) = (1/M) Σ_{m=1..M} σ(k · (r(x, y) − r(x, y_ref,m)))            (paper, Eq. 3; official
                                                                                `calculate_relative_sigmoid`)

The paper's three design principles for a shaped reward f(r):
  1. f is bounded (so the policy gains nothing from pushing the proxy into its unreliable tail);
  2. f grows fast at first and then converges gradually (a sigmoid: the largest gradient near the reference,
     vanishing far above it);
  3. f is best written as a function of the *centred* reward r − r_ref (it then measures preference over the
     SFT policy, and the flat region starts where the policy already beats the references).
PAR is the sigmoid choice satisfying all three; `sigmoid_reward` is the same function uncentred (principle 3's
ablation, official `calculate_sigmoid`).
"""

from __future__ import annotations

import torch


def par_reward(reward: torch.Tensor, ref_rewards: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """r_RL = (1/M) Σ_m σ(k (r − r_ref,m)): reward (B,), ref_rewards (B, M) → (B,), bounded in (0, 1).

    Equals 1/2 when r equals every reference reward (centred at the reference); strictly increasing in r.
    """
    # BEGIN SOLUTION
    return torch.sigmoid(k * (reward[:, None] - ref_rewards)).mean(-1)
    # END SOLUTION


def sigmoid_reward(reward: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """Uncentred sigmoid σ(k r) (design principle 3's control: bounded and sigmoid-shaped, but not centred)."""
    # BEGIN SOLUTION
    return torch.sigmoid(k * reward)
    # END SOLUTION
