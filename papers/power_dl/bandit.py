"""Tabular bandit: the direct max–min solver that checks POWER's closed form, and the Type I / Type II study.

A bandit has K arms (responses) with true rewards r*, one prompt, a tabular policy π_θ = softmax(θ) started at
the reference policy π_ref = π_0 (uniform for Type I, softmax(r*) for Type II: the paper's Fig. 1). A preference
dataset is a count matrix W with W[a, b] = number of pairs in which arm a was preferred to arm b (N = Σ W); a
batch of D datasets is a (D, K, K) tensor.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from reprozoo.papers.power_dl.baselines import Hyper, pair_loss
from reprozoo.papers.power_dl.method import power_margin, update_labels

# --- the max–min objective, solved directly (float64 numpy / scipy) ---


def _bt(r: np.ndarray, wins: np.ndarray) -> tuple[float, np.ndarray]:
    """L_BT(r) = −(1/N) Σ_ab W_ab log σ(r_a − r_b) and its gradient."""
    n = wins.sum()
    d = r[:, None] - r[None, :]
    loss = float((wins * np.logaddexp(0.0, -d)).sum() / n)
    s = wins * (1.0 / (1.0 + np.exp(d)))  # W_ab σ(−d_ab)
    return loss, -(s.sum(1) - s.sum(0)) / n


def maxmin_objective(pi: np.ndarray, r: np.ndarray, wins: np.ndarray, w: np.ndarray, beta: float, eta: float):
    """f(π, r) = E_π r − E_π′ r + β H_w(π) + η L_BT(r), π′ = the chosen-response distribution of the data   (P2)"""
    chosen = wins.sum(1) / wins.sum()
    bt, _ = _bt(r, wins)
    ent = -float((w * pi * np.log(pi)).sum())
    return float((pi - chosen) @ r) + beta * ent + eta * bt


def inner_min(pi: np.ndarray, wins: np.ndarray, eta: float) -> np.ndarray:
    """argmin_r E_π r − E_π′ r + η L_BT(r) for a fixed π (convex; the shift r + c is fixed by r_0 = 0)."""
    chosen = wins.sum(1) / wins.sum()

    def fun(z):
        r = np.concatenate([[0.0], z])
        bt, g = _bt(r, wins)
        return float((pi - chosen) @ r) + eta * bt, ((pi - chosen) + eta * g)[1:]

    res = minimize(fun, np.zeros(len(pi) - 1), jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 10_000})
    return np.concatenate([[0.0], res.x])


def solve_maxmin(wins: np.ndarray, w: np.ndarray, beta: float, eta: float) -> tuple[np.ndarray, float]:
    """max_π min_r f(π, r), solved directly: the outer max over π = softmax(θ) by BFGS, with the inner min solved
    numerically at every π and ∂/∂π min_r f = r*(π) − β w (log π + 1) (Danskin). Returns (π*, value)."""

    def neg(theta):
        pi = np.exp(theta - theta.max())
        pi /= pi.sum()
        r = inner_min(pi, wins, eta)
        g_pi = r - beta * w * (np.log(pi) + 1.0)
        g_theta = pi * (g_pi - pi @ g_pi)
        return -maxmin_objective(pi, r, wins, w, beta, eta), -g_theta

    res = minimize(neg, np.zeros(len(w)), jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 10_000})
    pi = np.exp(res.x - res.x.max())
    return pi / pi.sum(), -float(res.fun)


def power_bandit_loss(
    theta: torch.Tensor, wins: torch.Tensor, lengths: torch.Tensor, beta: float, eta: float
) -> torch.Tensor:
    """The closed-form POWER loss of a tabular policy, exact (the (β/η) E_π[w] term kept):

    L(θ) = (1/N) Σ_ab W_ab ℓ_POWER(a, b) + (β/η) Σ_y π_θ(y) w(y)                                         (P5)
    """
    logp = torch.log_softmax(theta, -1)
    a, b = torch.meshgrid(torch.arange(len(theta)), torch.arange(len(theta)), indexing="ij")
    per = pair_loss(
        "power", logp[a], logp[b], logp[a], logp[b], lengths[a], lengths[b], Hyper(power_beta=beta, power_eta=eta)
    )
    return (wins * per).sum() / wins.sum() + beta / eta * (logp.exp() / lengths).sum()


# --- Type I / Type II datasets and training ---


def make_datasets(
    kind: str,
    coverage: str,
    n_draws: int,
    common_rewards: list[float],
    rare_reward: float,
    n_pairs: int,
    n_cover: int,
    gen: torch.Generator,
) -> torch.Tensor:
    """`n_draws` count matrices (D, K, K) over K = len(common_rewards) + 1 arms; the last arm is the rare one.

    Common arms: `n_pairs` comparisons of uniformly drawn distinct common arms, labelled by Bradley–Terry on the
    true rewards. Rare arm, coverage "rare": ONE comparison against a uniform common arm whose outcome is the
    lucky / unlucky one (Type I: the bad rare arm wins; Type II: the good rare arm loses), i.e. the dataset is
    conditioned on the statistical fluctuation. Coverage "covered" (the control): `n_cover` comparisons with
    honest Bradley–Terry labels.
    """
    if kind not in ("type1", "type2") or coverage not in ("rare", "covered"):
        raise ValueError(f"kind must be type1/type2 and coverage rare/covered, got {kind}/{coverage}")
    r = torch.tensor([*common_rewards, rare_reward], dtype=torch.float64)
    m, rare = len(common_rewards), len(common_rewards)
    wins = torch.zeros(n_draws, m + 1, m + 1, dtype=torch.float64)
    rows = torch.arange(n_draws)

    def compare(a: torch.Tensor, b: torch.Tensor, outcome: torch.Tensor | None = None) -> None:
        a_wins = torch.rand(n_draws, generator=gen) < torch.sigmoid(r[a] - r[b]) if outcome is None else outcome
        win, lose = torch.where(a_wins, a, b), torch.where(a_wins, b, a)
        wins.index_put_((rows, win, lose), torch.ones(n_draws, dtype=torch.float64), accumulate=True)

    for _ in range(n_pairs):
        a = torch.randint(0, m, (n_draws,), generator=gen)
        b = (a + torch.randint(1, m, (n_draws,), generator=gen)) % m
        compare(a, b)
    rare_arm = torch.full((n_draws,), rare)
    for _ in range(1 if coverage == "rare" else n_cover):
        opponent = torch.randint(0, m, (n_draws,), generator=gen)
        forced = torch.full((n_draws,), kind == "type1") if coverage == "rare" else None
        compare(rare_arm, opponent, forced)
    return wins


def train_tabular(
    method: str,
    wins: torch.Tensor,
    hp: Hyper,
    *,
    steps: int,
    lr: float,
    optimizer: str = "sgd",
    lengths: torch.Tensor | None = None,
    init_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """Train tabular policies π = softmax(θ) from θ = `init_logits` (default 0: uniform), which is also the
    reference policy π_ref = π_0, on each dataset of the batch (D, K, K) by
    full-batch gradient descent ("sgd", the learning dynamics the paper analyses) or Adam on the count-weighted
    mean pair loss; POWER-DL's labels are updated after every step (every
    pair is visited once per step). Returns the final log π (D, K)."""
    D, K, _ = wins.shape
    lengths = torch.ones(K, dtype=wins.dtype) if lengths is None else lengths
    init = torch.zeros(K, dtype=wins.dtype) if init_logits is None else init_logits.to(wins.dtype)
    theta = init.expand(D, K).clone().requires_grad_(True)
    opt = torch.optim.SGD([theta], lr=lr) if optimizer == "sgd" else torch.optim.Adam([theta], lr=lr)
    a, b = torch.meshgrid(torch.arange(K), torch.arange(K), indexing="ij")
    ref = torch.log_softmax(init, -1)
    labels = torch.ones_like(wins) if method == "power_dl" else None
    n = wins.sum((1, 2))
    for _ in range(steps):
        logp = torch.log_softmax(theta, -1)
        per = pair_loss(method, logp[:, a], logp[:, b], ref[a], ref[b], lengths[a], lengths[b], hp, labels)
        loss = ((wins * per).sum((1, 2)) / n).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if labels is not None:
            delta = power_margin(logp[:, a], logp[:, b], lengths[a], lengths[b], beta=hp.power_beta)
            labels = update_labels(labels, delta, hp.dl_gamma)
    return torch.log_softmax(theta.detach(), -1)
