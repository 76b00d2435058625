"""The baseline both papers compare against: one reward model (a single ensemble member)."""

from __future__ import annotations

import torch


def single_member(rewards: torch.Tensor, i: int) -> torch.Tensor:
    """R = R_i: optimise member i alone (rewards stacked along dim 0)."""
    return rewards[i]
