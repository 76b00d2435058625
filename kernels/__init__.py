"""Fused log-prob / entropy / KL without materialising logits."""
