"""SubGM for robust, over-parameterised low-rank matrix recovery (Ma & Fattahi 2022), in JAX.

Problem: recover a PSD rank-r matrix X* ∈ R^{d×d} from y = A(X*) + s, A(X)_i = ⟨A_i, X⟩, with an
over-estimated rank r' ≥ r, by minimising the ℓ1 loss over the factor U ∈ R^{d×r'}:

    f_ℓ1(U) = (1/m) ‖y − A(U Uᵀ)‖₁.

Everything here works on one problem instance; `experiment.py` vmaps it over independent trials.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# --- method ---


def measure(A: jax.Array, X: jax.Array) -> jax.Array:
    """A(X) = [⟨A_i, X⟩]_{i=1..m} for measurement matrices A of shape (m, d, d)."""
    # BEGIN SOLUTION
    return jnp.einsum("mij,ij->m", A, X)
    # END SOLUTION


def l1_loss(U: jax.Array, A: jax.Array, y: jax.Array) -> jax.Array:
    """f_ℓ1(U) = (1/m) ‖y − A(U Uᵀ)‖₁."""
    # BEGIN SOLUTION
    return jnp.mean(jnp.abs(y - measure(A, U @ U.T)))
    # END SOLUTION


def subgradient(U: jax.Array, A: jax.Array, y: jax.Array) -> jax.Array:
    """D = (1/m) Σ_i sign(⟨A_i, U Uᵀ⟩ − y_i) (A_i + A_iᵀ) U  ∈ ∂f_ℓ1(U)   (sign(0) = 0).

    Computed as Q U with Q = (1/m) Σ_i sign_i (A_i + A_iᵀ), so one iteration costs O(m d² + d² r').
    """
    # BEGIN SOLUTION
    signs = jnp.sign(measure(A, U @ U.T) - y)
    Q = jnp.einsum("m,mij->ij", signs, A) / y.shape[0]
    return (Q + Q.T) @ U
    # END SOLUTION


def step_size(t: jax.Array, eta0: float, rho: float) -> jax.Array:
    """Geometrically decaying step η_t = η_0 ρ^t."""
    # BEGIN SOLUTION
    return eta0 * rho**t
    # END SOLUTION


def relative_error(U: jax.Array, X_star: jax.Array) -> jax.Array:
    """‖U Uᵀ − X*‖_F / ‖X*‖_F."""
    # BEGIN SOLUTION
    return jnp.linalg.norm(U @ U.T - X_star) / jnp.linalg.norm(X_star)
    # END SOLUTION


def subgm(
    U0: jax.Array, A: jax.Array, y: jax.Array, X_star: jax.Array, *, eta0: float, rho: float, iters: int, every: int
) -> tuple[jax.Array, jax.Array]:
    """Run U_{t+1} = U_t − η_t D_t for `iters` steps from U_0; return (U_T, errors every `every` steps).

    errors[k] is the relative error after k·`every` iterations (errors[0] is at U_0).
    """
    # BEGIN SOLUTION
    return _descend(subgradient, U0, A, y, X_star, eta0=eta0, rho=rho, iters=iters, every=every)
    # END SOLUTION


# --- plumbing shared with the ℓ2 baseline ---


def _descend(direction, U0, A, y, X_star, *, eta0, rho, iters, every):
    if iters % every:
        raise ValueError(f"iters={iters} must be a multiple of every={every}")

    def one(U, t):
        return U - step_size(t, eta0, rho) * direction(U, A, y), None

    def block(U, k):
        ts = k * every + jnp.arange(every)
        U, _ = jax.lax.scan(one, U, ts)
        return U, relative_error(U, X_star)

    U_T, errs = jax.lax.scan(block, U0, jnp.arange(iters // every))
    return U_T, jnp.concatenate([relative_error(U0, X_star)[None], errs])
