"""A plain numpy float64 version of the same iterations, for the parity test against the JAX code."""

from __future__ import annotations

import numpy as np


def subgradient(U: np.ndarray, A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """D = (1/m) Σ_i sign(⟨A_i, U Uᵀ⟩ − y_i) (A_i + A_iᵀ) U, written as an explicit sum over i."""
    X = U @ U.T
    D = np.zeros_like(U)
    for A_i, y_i in zip(A, y, strict=True):
        D += np.sign(np.sum(A_i * X) - y_i) * (A_i + A_i.T) @ U
    return D / len(y)


def l2_gradient(U: np.ndarray, A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(1/m) Σ_i (⟨A_i, U Uᵀ⟩ − y_i) (A_i + A_iᵀ) U."""
    X = U @ U.T
    D = np.zeros_like(U)
    for A_i, y_i in zip(A, y, strict=True):
        D += (np.sum(A_i * X) - y_i) * (A_i + A_i.T) @ U
    return D / len(y)


def descend(U0, A, y, X_star, *, loss: str, eta0: float, rho: float, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """U_{t+1} = U_t − η_0 ρ^t D_t; returns (U_T, relative error after every iteration, starting at U_0)."""
    direction = {"l1": subgradient, "l2": l2_gradient}[loss]
    U = np.array(U0, dtype=np.float64)
    norm = np.linalg.norm(X_star)
    errors = [np.linalg.norm(U @ U.T - X_star) / norm]
    for t in range(iters):
        U = U - eta0 * rho**t * direction(U, A, y)
        errors.append(np.linalg.norm(U @ U.T - X_star) / norm)
    return U, np.array(errors)
