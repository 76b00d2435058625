"""Jitted training loops (plumbing): REINFORCE baselines, BARFI, and the PARL / PEBBLE preference learners.

Every loop is a `lax.scan` over outer iterations; one iteration collects `inner_steps` batches of `batch` episodes
(the same number of environment samples for every method) and takes one policy step per batch. BARFI updates φ
once per iteration, on the iteration's first batch, before the policy steps (as the official `optimize()` does).
`experiment.py` vmaps these over seeds and heuristics.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from papers.bar_parl import baselines, method
from papers.bar_parl.envs import linear_logits, rollout


@dataclass(frozen=True)
class Hyper:
    """Static hyper-parameters of one training run (hashable: passed to jit as a static argument)."""

    iterations: int
    inner_steps: int
    batch: int
    gamma: float
    actor_lr: float
    entropy: float
    phi_lr: float = 0.0
    neumann_alpha: float = 5e-4
    neumann_loops: int = 5
    reward_l2: float = 0.0
    gamma_l2: float = 0.0
    phi_decay: float = 0.0
    phi_optimizer: str = "rmsprop"
    queries: int = 0
    buffer: int = 0
    reward_steps: int = 0
    reward_lr: float = 0.0
    indirect_weight: float = 1.0


def _episode_return(batch) -> jax.Array:
    return jnp.mean(jnp.sum(batch["r_p"], axis=-1))


def _policy_step(opt, theta, opt_state, grad):
    """Gradient ascent on θ with optax (the optimiser minimises, so the ascent direction is negated)."""
    updates, opt_state = opt.update(jax.tree.map(jnp.negative, grad), opt_state, theta)
    return optax.apply_updates(theta, updates), opt_state


def train_fixed(env, hp: Hyper, key, heuristic, mode):
    """REINFORCE on a fixed reward (baselines.baseline_returns `mode`); returns per-iteration mean return."""
    theta = jnp.zeros((env.n_features, env.n_actions))
    opt = optax.rmsprop(hp.actor_lr)

    def inner(carry, k):
        theta, opt_state = carry
        batch = rollout(env, linear_logits, theta, k, heuristic, hp.batch)
        g = baselines.baseline_returns(batch, hp.gamma, mode)
        grad = jax.grad(lambda t: method.pg_objective(linear_logits, t, batch, g, hp.entropy))(theta)
        theta, opt_state = _policy_step(opt, theta, opt_state, grad)
        return (theta, opt_state), _episode_return(batch)

    def outer(carry, k):
        carry, rets = jax.lax.scan(inner, carry, jax.random.split(k, hp.inner_steps))
        return carry, {"return": jnp.mean(rets)}

    _, logs = jax.lax.scan(outer, (theta, opt.init(theta)), jax.random.split(key, hp.iterations))
    return logs


def train_barfi(env, hp: Hyper, key, heuristic, neumann):
    """BARFI: inner REINFORCE on r_φ, γ_φ (φ held fixed); outer RMSprop ascent on φ along dJ_p/dφ.

    `neumann`: Neumann-series IHVP, else first-order (may be a traced flag)."""
    theta = jnp.zeros((env.n_features, env.n_actions))
    phi0 = method.init_phi(env.constant_weights())
    phi = phi0
    opt, opt_phi = optax.rmsprop(hp.actor_lr), getattr(optax, hp.phi_optimizer)(hp.phi_lr)

    def policy_update(theta, opt_state, phi, batch):
        phi_fixed = jax.lax.stop_gradient(phi)
        grad = jax.grad(lambda t: method.inner_objective(linear_logits, t, phi_fixed, batch, hp.entropy))(theta)
        return _policy_step(opt, theta, opt_state, grad)

    def inner(carry, k):
        theta, opt_state, phi = carry
        batch = rollout(env, linear_logits, theta, k, heuristic, hp.batch)
        theta, opt_state = policy_update(theta, opt_state, phi, batch)
        return (theta, opt_state, phi), _episode_return(batch)

    def outer(carry, k):
        theta, opt_state, phi, phi_state = carry
        k0, k_rest = jax.random.split(k)
        batch = rollout(env, linear_logits, theta, k0, heuristic, hp.batch)
        hyper = method.barfi_hypergradient(
            linear_logits,
            theta,
            phi,
            batch,
            batch,
            gamma=hp.gamma,
            entropy=hp.entropy,
            neumann=neumann,
            alpha=hp.neumann_alpha,
            loops=hp.neumann_loops,
            phi0=phi0,
            reward_l2=hp.reward_l2,
            gamma_l2=hp.gamma_l2,
        )
        updates, phi_state = opt_phi.update(jax.tree.map(jnp.negative, hyper), phi_state, phi)
        phi = optax.apply_updates(phi, updates)
        # decoupled decay of φ_1, φ_2 towards φ⁰ (independent of the hypergradient's scale)
        for name in ("phi1", "phi2"):
            phi[name] = phi[name] - hp.phi_lr * hp.phi_decay * (phi[name] - phi0[name])
        theta, opt_state = policy_update(theta, opt_state, phi, batch)
        (theta, opt_state, phi), rets = jax.lax.scan(
            inner, (theta, opt_state, phi), jax.random.split(k_rest, hp.inner_steps - 1)
        )
        visits = jnp.sum(batch["mask"][..., None] * batch["x"], axis=(0, 1))
        w = visits / jnp.maximum(jnp.sum(visits), 1.0)
        log = {
            "return": (_episode_return(batch) + jnp.sum(rets)) / hp.inner_steps,
            "phi1": jnp.sum(w * phi["phi1"]),
            "phi2": jnp.sum(w * phi["phi2"]),
            "gamma_phi": method.gamma_phi(phi),
        }
        return (theta, opt_state, phi, phi_state), log

    init = (theta, opt.init(theta), phi, opt_phi.init(phi))
    _, logs = jax.lax.scan(outer, init, jax.random.split(key, hp.iterations))
    return logs


def train_preference(env, hp: Hyper, key, mode):
    """Preference-based alignment: `mode` 0 = PEBBLE-style alternating learner, 1 = A-PARL (adds the term through
    ρ(τ; θ*(ν)) as given by the Neumann IHVP), 2 = A-PARL with that term rescaled to the direct term's norm.
    `mode` may be traced (the indirect term is then computed for every mode and masked)."""
    theta = jnp.zeros((env.n_features, env.n_actions))
    nu = jnp.zeros(env.n_features)
    opt, opt_nu = optax.rmsprop(hp.actor_lr), optax.adam(hp.reward_lr)
    buf = {"d": jnp.zeros((hp.buffer, env.n_features)), "y": jnp.zeros(hp.buffer), "valid": jnp.zeros(hp.buffer)}
    zero = jnp.array(0, jnp.int32)

    def inner(carry, k):
        theta, opt_state, nu = carry
        batch = rollout(env, linear_logits, theta, k, zero, hp.batch)
        grad = jax.grad(lambda t: method.parl_lower_objective(linear_logits, t, nu, batch, hp.gamma, hp.entropy))(theta)
        theta, opt_state = _policy_step(opt, theta, opt_state, grad)
        return (theta, opt_state, nu), _episode_return(batch)

    def outer(carry, k):
        theta, opt_state, nu, nu_state, buf, ptr = carry
        k0, k_rest = jax.random.split(k)
        batch = rollout(env, linear_logits, theta, k0, zero, hp.batch)
        q = hp.queries
        tau0 = jax.tree.map(lambda a: a[:q], batch)
        tau1 = jax.tree.map(lambda a: a[q : 2 * q], batch)
        y = baselines.oracle_labels(tau0, tau1)
        counts = jnp.sum(batch["mask"][..., None] * batch["x"], axis=1)
        idx = (ptr + jnp.arange(q)) % hp.buffer
        buf = {
            "d": buf["d"].at[idx].set(counts[:q] - counts[q : 2 * q]),
            "y": buf["y"].at[idx].set(y),
            "valid": buf["valid"].at[idx].set(1.0),
        }
        direct, indirect = method.aparl_hypergradient(
            linear_logits,
            theta,
            nu,
            tau0,
            tau1,
            y,
            batch,
            gamma=hp.gamma,
            entropy=hp.entropy,
            alpha=hp.neumann_alpha,
            loops=hp.neumann_loops,
        )
        # mode 2: the truncated Neumann series (small α) fixes the direction of (dθ*/dν)ᵀw, not its scale, so
        # rescale the indirect term to the direct term's norm on the same fresh pairs (an assumption; see README)
        scale = jnp.where(mode == 2, jnp.linalg.norm(direct) / (jnp.linalg.norm(indirect) + 1e-12), 1.0)
        indirect = jnp.where(mode > 0, indirect * scale, 0.0)

        def fit(c, _):
            nu, nu_state = c
            grad = baselines.pebble_reward_gradient(nu, buf["d"], buf["y"], buf["valid"], hp.reward_l2)
            grad = grad + hp.indirect_weight * indirect
            updates, nu_state = opt_nu.update(-grad, nu_state, nu)
            return (optax.apply_updates(nu, updates), nu_state), None

        (nu, nu_state), _ = jax.lax.scan(fit, (nu, nu_state), None, length=hp.reward_steps)
        (theta, opt_state, nu), rets = jax.lax.scan(
            inner, (theta, opt_state, nu), jax.random.split(k_rest, hp.inner_steps)
        )
        log = {"return": jnp.mean(rets), "queries": jnp.asarray(q, jnp.float32)}
        return (theta, opt_state, nu, nu_state, buf, ptr + q), log

    init = (theta, opt.init(theta), nu, opt_nu.init(nu), buf, zero)
    _, logs = jax.lax.scan(outer, init, jax.random.split(key, hp.iterations))
    return logs
