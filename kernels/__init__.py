"""Fused log-prob / entropy / KL without materialising logits.

`fused_logprob(hidden, weight, targets, *, temperature, ref_logprobs, ref_hidden, ref_weight, kl, backend)`
returns `FusedLogprob(logprobs, entropy, kl)` per token. Backends: reference, torch, triton, jax, pallas.
See kernels/README.md.
"""

from kernels.api import BACKENDS, FusedLogprob, fused_logprob, kl_estimator

__all__ = ["BACKENDS", "FusedLogprob", "fused_logprob", "kl_estimator"]
