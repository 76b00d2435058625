"""TRAAC (Singh et al. 2025, "Think Right"): difficulty calibration, attention-based step compression and the
difficulty-scaled length reward, as the official code (github joykirat18/TRAAC, on verl) computes them.

Per training step, for each prompt's group of n rollouts:
1. difficulty from the group pass rate p: easy (p ≥ 0.8), medium (p ≥ 0.3) or hard;
2. for each correct, well-formatted rollout, the frozen scorer reads "THINK + thinking + stop-and-summarise cue +
   END"; the attention row of that final END token, averaged over heads and over the first half of the layers, gives
   each thinking step an importance (the mean over its tokens); the uniformity U (normalised entropy of the
   importances) gates the eviction: fraction = 0 if U > 0.8, else min(target_d · (1 − U), 0.8), with target 0.6 /
   0.4 / 0.2 for easy / medium / hard; the ⌊n_steps · fraction⌋ least important steps are dropped;
3. the answer is regenerated after the compressed thinking, original and compressed rollouts are pooled per prompt,
   shuffled, and n of them are kept;
4. reward R = 4 · correct + 0.25 · soft_format + 0.25 · hard_format + 1[correct] · s_d · L_norm (s_d = 1 / 0.75 /
   0.5), with L_norm from the correct-response lengths of the last 10 batches in the same difficulty bucket.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

Difficulty = Literal["easy", "medium", "hard"]
TARGET_REDUCTION: dict[str, float] = {"easy": 0.6, "medium": 0.4, "hard": 0.2}  # get_reduction_score
NO_DIFFICULTY_TARGET = 0.6  # the "compression_no_difficulty" ablation: every prompt gets the easy target
DIFFICULTY_SCALE: dict[str, float] = {"easy": 1.0, "medium": 0.75, "hard": 0.5}  # sumLinear.get_difficulty_scale
UNIFORMITY_GATE = 0.8  # U above this: no eviction
MAX_EVICTION = 0.8  # never evict more than 80% of the steps


# ----------------------------------------------------------------------------- difficulty


def difficulty_bucket(pass_rate: float) -> Difficulty:
    """easy if p ≥ 0.8, medium if p ≥ 0.3, else hard (p = fraction of the group's rollouts that are correct)."""
    # BEGIN SOLUTION
    if not 0.0 <= pass_rate <= 1.0:
        raise ValueError(f"pass rate must lie in [0, 1], got {pass_rate}")
    if pass_rate >= 0.8:
        return "easy"
    if pass_rate >= 0.3:
        return "medium"
    return "hard"
    # END SOLUTION


# ----------------------------------------------------------------------------- attention-based step importance


def trigger_attention(attentions: Sequence[torch.Tensor], query: int) -> torch.Tensor:
    """α(t) = mean over heads h and layers l < L/2 of A^{(l,h)}[query, t]  — the row of the final END token.

    `attentions` holds one (heads, T, T) (or (1, heads, T, T)) tensor per layer, as transformers returns them
    with `output_attentions=True`; the first ⌊L/2⌋ layers are used (at least one), as the official Qwen3 host."""
    # BEGIN SOLUTION
    layers = attentions[: max(1, len(attentions) // 2)]
    rows = [a.reshape(-1, a.shape[-2], a.shape[-1])[:, query, :].mean(0) for a in layers]
    return torch.stack(rows).mean(0)
    # END SOLUTION


def step_importance(token_scores: torch.Tensor, steps: Sequence[Sequence[int]]) -> torch.Tensor:
    """importance_j = (1/|S_j|) Σ_{t ∈ S_j} α(t) for each step S_j (token positions); 0 for an empty step."""
    # BEGIN SOLUTION
    out = [token_scores[list(s)].double().mean() if len(s) else torch.tensor(0.0, dtype=torch.float64) for s in steps]
    return torch.stack(out) if out else torch.zeros(0, dtype=torch.float64)
    # END SOLUTION


def uniformity(importance: torch.Tensor) -> float:
    """U = H(p) / log n with p_j = imp_j / Σ imp (negatives clamped to 0); U = 1 for n ≤ 1 or Σ imp = 0."""
    # BEGIN SOLUTION
    values = importance.double().clamp(min=0.0)
    n, total = values.numel(), float(values.sum())
    if n <= 1 or total <= 0.0:
        return 1.0
    p = values / total
    entropy = float(-(p * torch.log(p + 1e-12)).sum())
    return entropy / math.log(n)
    # END SOLUTION


def eviction_fraction(u: float, target: float) -> float:
    """0 if U > 0.8, else min(target · (1 − U), 0.8)."""
    # BEGIN SOLUTION
    if u > UNIFORMITY_GATE:
        return 0.0
    return min(target * (1.0 - u), MAX_EVICTION)
    # END SOLUTION


def steps_to_evict(importance: torch.Tensor, fraction: float) -> list[int]:
    """The ⌊n · fraction⌋ least important steps (ties: earlier step first), in increasing index order."""
    # BEGIN SOLUTION
    n_evict = int(importance.numel() * fraction)
    order = sorted(range(importance.numel()), key=lambda j: (float(importance[j]), j))
    return sorted(order[:n_evict])
    # END SOLUTION


def compress(importance: torch.Tensor, target: float, *, gate: bool = True) -> tuple[list[int], float, float]:
    """(evicted step indices, U, fraction). `gate=False` is the confidence-score variant of the official code,
    which skips the uniformity gate (U := 0, so the fraction is the target itself)."""
    # BEGIN SOLUTION
    u = uniformity(importance) if gate else 0.0
    fraction = eviction_fraction(u, target)
    return steps_to_evict(importance, fraction), u, fraction
    # END SOLUTION


def token_confidence(top_logprobs: torch.Tensor) -> torch.Tensor:
    """C_i = 1 − H(q_i) / log k, q_i = softmax over the top-k log-probabilities at position i (official
    `token_confidence`, k = 20); the confidence-score ablation's importance is its mean over a step's tokens."""
    # BEGIN SOLUTION
    q = torch.softmax(top_logprobs.double(), dim=-1)
    entropy = -(q * torch.log(q + 1e-12)).sum(-1)
    return 1.0 - entropy / math.log(top_logprobs.shape[-1])
    # END SOLUTION


# ----------------------------------------------------------------------------- reward


def length_norm(length: float, history: Sequence[float]) -> float | None:
    """L_norm = max(clip((L_max − L) / max(L_max − L_min, ε), 0, 1), σ((median − L) / (0.1 · median)))

    over the correct-response lengths `history` of the bucket (None when it is empty: the official code then gives
    no length reward)."""
    # BEGIN SOLUTION
    if len(history) == 0:
        return None
    lengths = np.asarray(history, dtype=float)
    lo, hi, med = float(lengths.min()), float(lengths.max()), float(np.median(lengths))
    linear = min(1.0, max(0.0, (hi - length) / max(hi - lo, 1e-6)))
    soft = 1.0 / (1.0 + math.exp(min(700.0, (length - med) / (0.1 * med))))
    return max(linear, soft)
    # END SOLUTION


def traac_reward(
    correct: bool, soft_format: bool, hard_format: bool, l_norm: float | None, difficulty: Difficulty | None
) -> float:
    """R = 4 · 1[correct] + 0.25 · soft + 0.25 · hard + 1[correct] · s_d · L_norm  (s_d = 1 when `difficulty` is
    None: the no-difficulty ablation's `sumLinearNoDifficulty`)."""
    # BEGIN SOLUTION
    scale = 1.0 if difficulty is None else DIFFICULTY_SCALE[difficulty]
    bonus = scale * l_norm if (correct and l_norm is not None) else 0.0
    return 4.0 * correct + 0.25 * soft_format + 0.25 * hard_format + bonus
    # END SOLUTION


class LengthHistory:
    """Per bucket, the correct-response lengths of the last `window` batches (official: 10)."""

    def __init__(self, window: int = 10):
        self.window = window
        self.batches: dict[str, deque[list[float]]] = {}

    def add_batch(self, lengths_by_bucket: dict[str, list[float]]) -> None:
        """Append this batch's correct lengths for every bucket seen in it (an empty list counts as a batch)."""
        # BEGIN SOLUTION
        for bucket, lengths in lengths_by_bucket.items():
            self.batches.setdefault(bucket, deque(maxlen=self.window)).append(list(lengths))
        # END SOLUTION

    def lengths(self, bucket: str) -> list[float]:
        # BEGIN SOLUTION
        return [x for batch in self.batches.get(bucket, ()) for x in batch]
        # END SOLUTION


# ----------------------------------------------------------------------------- pooling


def pool(original: list, compressed: list, n: int, rng: np.random.Generator) -> list:
    """Shuffle a prompt's original and compressed rollouts together and keep n (official: random.shuffle, [:n])."""
    # BEGIN SOLUTION
    everything = list(original) + list(compressed)
    order = rng.permutation(len(everything))
    return [everything[i] for i in order[:n]]
    # END SOLUTION
