"""Baselines the paper compares against: TD3+BC, IQL and behaviour cloning (CORL's formulas, JAX/optax).

Same state / parameter layout as `method.py` so that the experiment trains every method with one loop.
- TD3+BC (Fujimoto & Gu 2021; CORL `td3_bc.py`): TD3 critic; actor every 2 steps
  L_π = −λ · mean Q_1(s, π(s)) + mean (π(s) − a)²,  λ = α / mean|Q_1(s, π(s))|, α = 2.5.
- IQL (Kostrikov et al. 2022; CORL `iql.py`): expectile value L_V = mean |τ − 1(u < 0)| · u²,
  u = min_i Q′_i(s, a) − V(s); critic y = r + γ(1−d) V(s′); advantage-weighted regression
  L_π = mean(min(exp(β (min_i Q′_i(s, a) − V(s))), 100) · ‖π(s) − a‖²) (CORL's deterministic-policy variant),
  τ = 0.7, β = 3.0; target critic soft-updated every step.
- BC: L_π = mean (π(s) − a)².
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from reprozoo.papers.a2pr.method import Batch, lambda_scale, soft_update
from reprozoo.papers.a2pr.nets import Actor, DoubleCritic, Value


@dataclass(frozen=True)
class BaselineConfig:
    """Hyper-parameters of TD3+BC, IQL and BC (CORL defaults)."""

    hidden: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_freq: int = 2
    alpha: float = 2.5
    """TD3+BC α."""
    iql_tau: float = 0.7
    """IQL expectile τ."""
    iql_beta: float = 3.0
    """IQL inverse temperature β."""
    exp_adv_max: float = 100.0


class Nets(NamedTuple):
    actor: Actor
    critic: DoubleCritic
    value: Value


def make_nets(hp: BaselineConfig, act_dim: int) -> Nets:
    return Nets(Actor((hp.hidden,) * 3, act_dim), DoubleCritic((hp.hidden,) * 4), Value((hp.hidden,) * 4))


def init(hp: BaselineConfig, nets: Nets, key: jax.Array, obs_dim: int, act_dim: int) -> dict[str, Any]:
    ka, kc, kv = jax.random.split(key, 3)
    s, a = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
    p = {"actor": nets.actor.init(ka, s), "critic": nets.critic.init(kc, s, a), "value": nets.value.init(kv, s)}
    opt = optax.adam(hp.lr)
    return {
        **p,
        "actor_t": p["actor"],
        "critic_t": p["critic"],
        "step": jnp.zeros((), jnp.int32),
        **{f"opt_{k}": opt.init(v) for k, v in p.items()},
    }


# --- formulas ----------------------------------------------------------------------------------------


def td3_bc_actor_objective(q_pi, pi, a, alpha: float) -> jax.Array:
    """−λ mean Q_1(s, π(s)) + mean (π(s) − a)², λ = α / mean|Q_1(s, π(s))| (no gradient through λ)."""
    return -lambda_scale(alpha, q_pi) * q_pi.mean() + jnp.mean(jnp.square(pi - a))


def expectile_loss(u: jax.Array, tau: float) -> jax.Array:
    """IQL value loss mean |τ − 1(u < 0)| u², u = Q(s, a) − V(s)."""
    return jnp.mean(jnp.abs(tau - (u < 0).astype(u.dtype)) * jnp.square(u))


def awr_actor_objective(pi, a, adv, beta: float, max_weight: float) -> jax.Array:
    """mean(min(exp(β A), max) · ‖π(s) − a‖²) with the weights held constant."""
    w = jax.lax.stop_gradient(jnp.minimum(jnp.exp(beta * adv), max_weight))
    return jnp.mean(w * jnp.sum(jnp.square(pi - a), axis=-1))


# --- updates -----------------------------------------------------------------------------------------


def _step(opt, params, opt_state, loss_fn):
    loss, g = jax.value_and_grad(loss_fn)(params)
    upd, opt_state = opt.update(g, opt_state)
    return optax.apply_updates(params, upd), opt_state, loss


def td3_bc_update(hp: BaselineConfig, nets: Nets, state: dict, batch: Batch, key: jax.Array):
    s, a, r, s2, done = batch
    opt = optax.adam(hp.lr)
    noise = jnp.clip(hp.policy_noise * jax.random.normal(key, a.shape), -hp.noise_clip, hp.noise_clip)
    a2 = jnp.clip(nets.actor.apply(state["actor_t"], s2) + noise, -1.0, 1.0)
    y = r + hp.gamma * (1.0 - done) * jnp.minimum(*nets.critic.apply(state["critic_t"], s2, a2))

    def critic_loss(pc):
        q1, q2 = nets.critic.apply(pc, s, a)
        return jnp.mean((q1 - y) ** 2) + jnp.mean((q2 - y) ** 2)

    critic, opt_critic, lc = _step(opt, state["critic"], state["opt_critic"], critic_loss)

    def actor_loss(pa):
        pi = nets.actor.apply(pa, s)
        return td3_bc_actor_objective(nets.critic.apply(critic, s, pi)[0], pi, a, hp.alpha)

    actor_new, opt_actor, la = _step(opt, state["actor"], state["opt_actor"], actor_loss)
    do = (state["step"] + 1) % hp.policy_freq == 0
    pick = lambda new, old: jax.tree.map(lambda x, y: jnp.where(do, x, y), new, old)  # noqa: E731
    actor = pick(actor_new, state["actor"])
    new = {
        **state,
        "actor": actor,
        "critic": critic,
        "opt_critic": opt_critic,
        "step": state["step"] + 1,
        "opt_actor": pick(opt_actor, state["opt_actor"]),
        "actor_t": pick(soft_update(state["actor_t"], actor, hp.tau), state["actor_t"]),
        "critic_t": pick(soft_update(state["critic_t"], critic, hp.tau), state["critic_t"]),
    }
    return new, {"critic_loss": lc, "actor_loss": la}


def iql_update(hp: BaselineConfig, nets: Nets, state: dict, batch: Batch, key: jax.Array):
    """CORL order: V (from the target critic), then Q (towards r + γ V(s′)), then the AWR actor."""
    s, a, r, s2, done = batch
    opt = optax.adam(hp.lr)
    q_t = jnp.minimum(*nets.critic.apply(state["critic_t"], s, a))
    v_of = lambda pv, x: nets.value.apply(pv, x)  # noqa: E731
    value, opt_value, lv = _step(
        opt, state["value"], state["opt_value"], lambda pv: expectile_loss(q_t - v_of(pv, s), hp.iql_tau)
    )
    adv = q_t - v_of(state["value"], s)  # CORL: advantage and V(s') both use V before its update
    y = r + hp.gamma * (1.0 - done) * v_of(state["value"], s2)

    def critic_loss(pc):
        q1, q2 = nets.critic.apply(pc, s, a)
        return (jnp.mean((q1 - y) ** 2) + jnp.mean((q2 - y) ** 2)) / 2

    critic, opt_critic, lc = _step(opt, state["critic"], state["opt_critic"], critic_loss)
    actor, opt_actor, la = _step(
        opt,
        state["actor"],
        state["opt_actor"],
        lambda pa: awr_actor_objective(nets.actor.apply(pa, s), a, adv, hp.iql_beta, hp.exp_adv_max),
    )
    new = {
        **state,
        "actor": actor,
        "critic": critic,
        "value": value,
        "opt_actor": opt_actor,
        "opt_critic": opt_critic,
        "opt_value": opt_value,
        "step": state["step"] + 1,
        "critic_t": soft_update(state["critic_t"], critic, hp.tau),
    }
    return new, {"critic_loss": lc, "value_loss": lv, "actor_loss": la}


def bc_update(hp: BaselineConfig, nets: Nets, state: dict, batch: Batch, key: jax.Array):
    s, a = batch[0], batch[1]
    opt = optax.adam(hp.lr)
    actor, opt_actor, la = _step(
        opt, state["actor"], state["opt_actor"], lambda pa: jnp.mean(jnp.square(nets.actor.apply(pa, s) - a))
    )
    return {**state, "actor": actor, "opt_actor": opt_actor, "step": state["step"] + 1}, {"actor_loss": la}
