"""Fused log-prob / entropy / KL without materialising logits.

`fused_logprob(hidden, weight, targets, *, temperature, ref_logprobs, ref_hidden, ref_weight, kl, backend)`
returns `FusedLogprob(logprobs, entropy, kl, lse)` per token. Backends: reference, torch, triton, jax, pallas.
`fused_linear_loss(hidden, weight, targets, loss_fn | coef=...)` returns a scalar loss whose gradient was computed
in the forward (no logits recompute) when the per-token loss is the only consumer. See kernels/README.md.
"""

from kernels.api import BACKENDS, FusedLogprob, fused_logprob, kl_estimator
from kernels.fused_loss import FusedLoss, fused_linear_loss

__all__ = ["BACKENDS", "FusedLogprob", "FusedLoss", "fused_linear_loss", "fused_logprob", "kl_estimator"]
