"""The methods BARFI and A-PARL are compared against.

BARFI (barfi-gw/src/algorithms/REINFORCE.py, REINFORCEPotential.py): the same REINFORCE learner with a fixed reward
  - `rp`:        r_p alone;
  - `naive`:     r_p + r_aux;
  - `potential`: potential-based shaping r_p + γ Φ(s') − Φ(s) with the heuristic as the potential, Φ_t = r_aux,t.
PARL: a PEBBLE-style alternating learner (Lee et al. 2021): fit the reward model by maximum likelihood on all the
preferences collected so far, then improve the policy on it; no term through the policy's trajectory distribution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reprozoo.papers.bar_parl.method import discounted_returns, preference_loglik

BASELINES: tuple[str, ...] = ("rp", "naive", "potential")


def shaping_rewards(r_aux: jax.Array, mask: jax.Array, gamma: float) -> jax.Array:
    """F_t = γ Φ_{t+1} − Φ_t with Φ_t = r_aux,t on live steps and Φ = 0 once the episode has ended (Ng et al. 1999)."""
    phi = r_aux * mask
    phi_next = jnp.concatenate([phi[:, 1:], jnp.zeros_like(phi[:, :1])], axis=1)
    return (gamma * phi_next - phi) * mask


def baseline_returns(batch: dict[str, jax.Array], gamma: float, mode: jax.Array) -> jax.Array:
    """G_t of the fixed-reward baselines, `mode` ∈ {0: rp, 1: naive, 2: potential} (traced, so one program serves all).

    rp: G^p_t;  naive: G of r_p + r_aux;  potential: Σ_k γ^k (r_p + F)_{t+k} = G^p_t − Φ_t (the shaping telescopes;
    this closed form is what the official REINFORCEPotential computes: `returns - aux_r`).
    """
    g_p = discounted_returns(batch["r_p"], batch["mask"], gamma)
    g_naive = discounted_returns(batch["r_p"] + batch["r_aux"], batch["mask"], gamma)
    g_pot = g_p - batch["r_aux"] * batch["mask"]
    return jnp.stack([g_p, g_naive, g_pot])[mode]


def pebble_reward_gradient(nu: jax.Array, diffs: jax.Array, y: jax.Array, valid: jax.Array, l2: float) -> jax.Array:
    """∇_ν [mean over stored pairs of U_ν − l2 ‖ν‖²]; pairs are stored as count differences d = c(τ0) − c(τ1),
    so that R_ν(τ0) − R_ν(τ1) = νᵀ d for the linear reward r_ν(s) = νᵀ x(s)."""

    def objective(n):
        d = diffs @ n
        u = y * jax.nn.log_sigmoid(d) + (1 - y) * jax.nn.log_sigmoid(-d)
        return jnp.sum(valid * u) / jnp.maximum(jnp.sum(valid), 1.0) - l2 * jnp.sum(n**2)

    return jax.grad(objective)(nu)


def oracle_labels(tau0, tau1) -> jax.Array:
    """Scripted teacher: y = 1 if R_p(τ0) > R_p(τ1), 0 if smaller, 1/2 on ties (BPref's 'oracle' teacher)."""
    r0 = jnp.sum(tau0["r_p"], -1)
    r1 = jnp.sum(tau1["r_p"], -1)
    return jnp.where(r0 > r1, 1.0, jnp.where(r0 < r1, 0.0, 0.5))


__all__ = [
    "BASELINES",
    "baseline_returns",
    "oracle_labels",
    "pebble_reward_gradient",
    "preference_loglik",
    "shaping_rewards",
]
