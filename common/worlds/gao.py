"""Gao, Schulman & Hilton 2022 functional forms of gold reward against d = √KL (gold centred: R(0) = 0).

Best-of-n:  R_bon(d) = d (α − β d)
RL:         R_RL(d)  = d (α − β log d)
Both are linear in (α, β), so they are fitted by least squares; R² = 1 − SS_res / SS_tot.
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def gao_form(d: np.ndarray, alpha: float, beta: float, kind: Literal["bon", "rl"]) -> np.ndarray:
    """R(d) = d(α − βd) (best-of-n) or d(α − β log d) (RL); d = 0 gives 0."""
    d = np.asarray(d, dtype=float)
    if kind == "bon":
        return d * (alpha - beta * d)
    return d * (alpha - beta * np.log(np.where(d > 0, d, 1.0)))


def fit_gao(kl: np.ndarray, gold: np.ndarray, kind: Literal["bon", "rl"]) -> dict[str, float]:
    """Least-squares (α, β) of `gao_form` to centred gold reward at d = √KL; returns {alpha, beta, r2}."""
    d = np.sqrt(np.clip(np.asarray(kl, dtype=float), 0.0, None))
    y = np.asarray(gold, dtype=float)
    second = d**2 if kind == "bon" else d * np.log(np.where(d > 0, d, 1.0))
    X = np.stack([d, -second], 1)  # R = α d − β (d² or d log d)
    (alpha, beta), *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ np.array([alpha, beta])
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return {"alpha": float(alpha), "beta": float(beta), "r2": r2}
