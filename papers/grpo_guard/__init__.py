"""GRPO-Guard (Wang et al. 2025): regulated clipping against implicit over-optimisation in flow-matching GRPO."""
