"""The methods compared: the base model, two RL baselines and TRAAC with its ablations.

Every trained method is GRPO from the reasoning world's base model with the same optimiser, batch, clip-higher and
k3 KL loss; they differ only in the reward and in whether (and how) rollouts are compressed.

| method          | reward                                                  | compression                   |
|-----------------|---------------------------------------------------------|-------------------------------|
| base            | (no training)                                           | —                             |
| grpo            | 1[correct]                                              | —                             |
| length_penalty  | 4·1[correct] + format + 1[correct]·(1 − L / L_cap)      | —                             |
| traac           | 4·1[correct] + format + 1[correct]·s_d·L_norm (method)  | attention, target by bucket   |
| no_difficulty   | 4·1[correct] + format + 1[correct]·L_norm, one bucket   | attention, target 0.6 for all |
| no_compression  | TRAAC's reward                                          | —                             |
| confidence      | TRAAC's reward                                          | confidence scores, no U gate  |
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    reward: str  # "correct" | "length_penalty" | "traac"
    compression: str | None  # None | "attention" | "confidence"
    difficulty: bool  # difficulty-calibrated targets and length scale (False: the no-difficulty ablation)


VARIANTS: dict[str, Variant | None] = {
    "base": None,
    "grpo": Variant("correct", None, True),
    "length_penalty": Variant("length_penalty", None, True),
    "traac": Variant("traac", "attention", True),
    "no_difficulty": Variant("traac", "attention", False),
    "no_compression": Variant("traac", None, True),
    "confidence": Variant("traac", "confidence", True),
}
METHODS = tuple(VARIANTS)


def correctness_reward(correct: bool) -> float:
    """GRPO with correctness only: R = 1[correct]."""
    return float(correct)


def length_penalty_reward(correct: bool, soft_format: bool, hard_format: bool, length: int, cap: int) -> float:
    """A plain length penalty: R = 4·1[correct] + 0.25·soft + 0.25·hard + 1[correct]·(1 − L / L_cap), the same
    scale as TRAAC's reward but with a fixed normaliser, no difficulty scaling and no compression."""
    return 4.0 * correct + 0.25 * soft_format + 0.25 * hard_format + (1.0 - length / cap if correct else 0.0)
