"""Baselines of the paper's experiments.

- ℓ2-loss gradient descent from the same small initialisation (non-robust: fails under outliers);
- SubGM from a large initialisation is `method.subgm` with α = 1 (chosen in `experiment.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reprozoo.papers.subgm.method import _descend, measure


def l2_gradient(U: jax.Array, A: jax.Array, y: jax.Array) -> jax.Array:
    """∇f_ℓ2(U) = (1/m) Σ_i (⟨A_i, U Uᵀ⟩ − y_i) (A_i + A_iᵀ) U,  for f_ℓ2(U) = (1/2m) ‖y − A(U Uᵀ)‖²."""
    residual = measure(A, U @ U.T) - y
    Q = jnp.einsum("m,mij->ij", residual, A) / y.shape[0]
    return (Q + Q.T) @ U


def l2_gd(U0, A, y, X_star, *, eta0: float, rho: float, iters: int, every: int):
    """Gradient descent U_{t+1} = U_t − η_t ∇f_ℓ2(U_t) with the same step schedule as SubGM."""
    return _descend(l2_gradient, U0, A, y, X_star, eta0=eta0, rho=rho, iters=iters, every=every)
