"""A2PR — Adaptive Advantage-guided Policy Regularization (Liu et al., ICML 2024), one update step.

Follows the official `A2PR.train` (github.com/ltlhuuu/A2PR, `A2PR.py`) line by line, in JAX/flax/optax in the
style of CORL's `algorithms/offline/rebrac.py`: a frozen hyper-parameter dataclass, a dict of parameters and
optimiser states, and one pure `update(hp, nets, state, batch, key)` that the experiment jits and vmaps.

Per step, with a batch (s, a, r, s', d):
1. TD3 critic:  y = r + γ(1−d) · min_{i=1,2} Q′_i(s′, ã′),  ã′ = clip(π′(s′) + clip(N(0, σ²), ±c), ±1);
   L_Q = Σ_i mean (Q_i(s, a) − y)².
2. Value net:   y_V = min(y, r + γ(1−d) · min_i Q_i(s′, ã′)) with the just-updated critic; L_V = mean (V(s) − y_V)².
3. VAE (the augmented behaviour policy, trained only on positive-advantage data actions):
   L_VAE = mean(w_vae · 1[Q_1(s, a) > V(s)] · ‖â − a‖²) + ½ · KL(N(μ, σ²) ‖ N(0, 1)).
4. Actor, every `policy_freq` steps: λ = α / mean|Q_1(s, π(s))| (no gradient); ã = VAE(s, π(s));
   A_π = Q_1(s, ã) − V(s), A_a = Q_1(s, a) − V(s); a* = ã if A_π ≥ A_a else a;
   w = mask · (1[Q_1(s, ã) ≥ V(s)] ∨ 1[Q_1(s, a) > V(s)]) ∈ {0, mask} — the official code writes
   `self.mask * (adv_pi + adv_action)` with two *bool* tensors, and torch's bool + bool is a logical OR;
   L_π = −λ · mean Q_1(s, π(s)) + mean(w · ‖π(s) − a*‖²).
5. Soft target updates θ′ ← τθ + (1 − τ)θ′ (actor and critic, on actor steps, as in the official code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from reprozoo.papers.a2pr.nets import VAE, Actor, DoubleCritic, Value

Batch = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]  # s, a, r, s', done


@dataclass(frozen=True)
class A2PRConfig:
    """A2PR hyper-parameters; defaults are the official `utils/config.py` / `A2PR.py` values."""

    hidden: int = 256
    """Width of actor (3 layers), critic heads (4 layers) and value net (4 layers)."""
    vae_hidden: int = 750
    """Width of the VAE encoder / decoder (2 layers each)."""
    lr: float = 3e-4
    """Adam learning rate of actor, critic and value net."""
    vae_lr: float = 1e-3
    """Adam learning rate of the VAE (torch's Adam default in the official code)."""
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_freq: int = 2
    alpha: float = 2.5
    """α in λ = α / mean|Q|."""
    mask: float = 0.5
    """Weight of each satisfied advantage indicator in the BC term."""
    vae_weight: float = 1.0
    """w_vae: weight of the positive-advantage reconstruction loss."""


class Nets(NamedTuple):
    actor: Actor
    critic: DoubleCritic
    value: Value
    vae: VAE


def make_nets(hp: A2PRConfig, act_dim: int) -> Nets:
    return Nets(
        Actor((hp.hidden,) * 3, act_dim),
        DoubleCritic((hp.hidden,) * 4),
        Value((hp.hidden,) * 4),
        VAE((hp.vae_hidden,) * 2, act_dim, 2 * act_dim),
    )


def init(hp: A2PRConfig, nets: Nets, key: jax.Array, obs_dim: int, act_dim: int) -> dict[str, Any]:
    """Parameters, target copies and Adam states of all four networks."""
    ka, kc, kv, ke, kz = jax.random.split(key, 5)
    s, a = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
    p = {
        "actor": nets.actor.init(ka, s),
        "critic": nets.critic.init(kc, s, a),
        "value": nets.value.init(kv, s),
        "vae": nets.vae.init(ke, s, a, kz),
    }
    opt = optimizers(hp)
    return {
        **p,
        "actor_t": p["actor"],
        "critic_t": p["critic"],
        "step": jnp.zeros((), jnp.int32),
        **{f"opt_{k}": opt[k].init(v) for k, v in p.items()},
    }


def optimizers(hp: A2PRConfig) -> dict[str, optax.GradientTransformation]:
    return {
        "actor": optax.adam(hp.lr),
        "critic": optax.adam(hp.lr),
        "value": optax.adam(hp.lr),
        "vae": optax.adam(hp.vae_lr),
    }


# --- method -----------------------------------------------------------------------------------------


def lambda_scale(alpha: float, q_pi: jax.Array) -> jax.Array:
    """λ = α / mean|Q_1(s, π(s))|, held constant in the gradient (TD3+BC's normaliser)."""
    # BEGIN SOLUTION
    return jax.lax.stop_gradient(alpha / jnp.abs(q_pi).mean())
    # END SOLUTION


def value_target(y: jax.Array, r: jax.Array, done: jax.Array, q_next: jax.Array, gamma: float) -> jax.Array:
    """y_V = min(y, r + γ(1−d) · min_i Q_i(s′, ã′)) — `q_next` is the updated critic's min over heads."""
    # BEGIN SOLUTION
    return jnp.minimum(y, r + gamma * (1.0 - done) * q_next)
    # END SOLUTION


def vae_loss_terms(recon, a, mean, std, q_data, v, vae_weight: float) -> tuple[jax.Array, jax.Array]:
    """Advantage-filtered reconstruction mean(w_vae · 1[Q_1(s,a) > V(s)] · (â − a)²) and the Gaussian KL
    −½ mean(1 + log σ² − μ² − σ²) (means over batch × action / latent entries, as torch's `.mean()`)."""
    # BEGIN SOLUTION
    keep = vae_weight * (q_data > v).astype(a.dtype)[:, None]
    recon_loss = (keep * jnp.square(recon - a)).mean()
    kl = -0.5 * (1.0 + jnp.log(jnp.square(std)) - jnp.square(mean) - jnp.square(std)).mean()
    return recon_loss, kl
    # END SOLUTION


def advantage_guided_target(recon_pi, a, q_recon_pi, q_data, v, mask: float) -> tuple[jax.Array, jax.Array]:
    """a* = ã where A_π = Q_1(s, ã) − V ≥ A_a = Q_1(s, a) − V, else the data action a;
    w = mask · (1[Q_1(s, ã) ≥ V] ∨ 1[Q_1(s, a) > V]) ∈ {0, mask} (weights carry no gradient).

    The official `adv = self.mask * (adv_pi + adv_action)` adds two bool tensors, which torch evaluates as a
    logical OR (dtype bool), so a sample where both indicators hold gets `mask`, not 2·mask."""
    # BEGIN SOLUTION
    adv_pi, adv_a = q_recon_pi - v, q_data - v
    target = jnp.where((adv_pi >= adv_a)[:, None], recon_pi, a)
    w = mask * jnp.logical_or(q_recon_pi >= v, q_data > v).astype(a.dtype)
    return target, jax.lax.stop_gradient(w)
    # END SOLUTION


def actor_objective(q_pi, pi, target, w, lam) -> jax.Array:
    """L_π = −λ · mean Q_1(s, π(s)) + mean(w · (π(s) − a*)²)."""
    # BEGIN SOLUTION
    return -lam * q_pi.mean() + (w[:, None] * jnp.square(pi - target)).mean()
    # END SOLUTION


def soft_update(target, online, tau: float):
    """θ′ ← τ θ + (1 − τ) θ′."""
    # BEGIN SOLUTION
    return jax.tree.map(lambda t, p: (1.0 - tau) * t + tau * p, target, online)
    # END SOLUTION


def update(hp: A2PRConfig, nets: Nets, state: dict, batch: Batch, key: jax.Array) -> tuple[dict, dict]:
    """One A2PR training iteration (official `A2PR.train`); returns the new state and scalar metrics."""
    # BEGIN SOLUTION
    s, a, r, s2, done = batch
    opt = optimizers(hp)
    k_noise, k_vae, k_pi = jax.random.split(key, 3)

    # 1. TD3 critic with target policy smoothing
    noise = jnp.clip(hp.policy_noise * jax.random.normal(k_noise, a.shape), -hp.noise_clip, hp.noise_clip)
    a2 = jnp.clip(nets.actor.apply(state["actor_t"], s2) + noise, -1.0, 1.0)
    y = r + hp.gamma * (1.0 - done) * jnp.minimum(*nets.critic.apply(state["critic_t"], s2, a2))

    def critic_loss(pc):
        q1, q2 = nets.critic.apply(pc, s, a)
        return jnp.mean((q1 - y) ** 2) + jnp.mean((q2 - y) ** 2)

    lc, g = jax.value_and_grad(critic_loss)(state["critic"])
    upd, opt_critic = opt["critic"].update(g, state["opt_critic"])
    critic = optax.apply_updates(state["critic"], upd)

    # 2. value net towards min(y, r + γ(1−d) min Q_new(s', ã'))
    y_v = value_target(y, r, done, jnp.minimum(*nets.critic.apply(critic, s2, a2)), hp.gamma)
    v = nets.value.apply(state["value"], s)  # V(s) before this step's update, as in the official code

    lv, g = jax.value_and_grad(lambda pv: jnp.mean((nets.value.apply(pv, s) - y_v) ** 2))(state["value"])
    upd, opt_value = opt["value"].update(g, state["opt_value"])
    value = optax.apply_updates(state["value"], upd)

    # 3. advantage-filtered VAE
    q_data = nets.critic.apply(critic, s, a)[0]

    def vae_loss(pz):
        recon, mean, std = nets.vae.apply(pz, s, a, k_vae)
        rec, kl = vae_loss_terms(recon, a, mean, std, q_data, v, hp.vae_weight)
        return rec + 0.5 * kl, rec

    (lz, rec), g = jax.value_and_grad(vae_loss, has_aux=True)(state["vae"])
    upd, opt_vae = opt["vae"].update(g, state["opt_vae"])
    vae = optax.apply_updates(state["vae"], upd)

    # 4. actor: λ-scaled Q plus advantage-guided behaviour cloning (applied every `policy_freq` steps)
    def actor_loss(pa):
        pi = nets.actor.apply(pa, s)
        q_pi = nets.critic.apply(critic, s, pi)[0]
        lam = lambda_scale(hp.alpha, q_pi)
        recon_pi, _, _ = nets.vae.apply(vae, s, pi, k_pi)  # ã = VAE(s, π(s)); gradient flows as in the code
        q_recon_pi = nets.critic.apply(critic, s, recon_pi)[0]
        target, w = advantage_guided_target(recon_pi, a, q_recon_pi, q_data, v, hp.mask)
        return actor_objective(q_pi, pi, target, w, lam), (lam, w.mean())

    (la, (lam, w_mean)), g = jax.value_and_grad(actor_loss, has_aux=True)(state["actor"])
    upd, opt_actor = opt["actor"].update(g, state["opt_actor"])
    do = (state["step"] + 1) % hp.policy_freq == 0
    pick = lambda new, old: jax.tree.map(lambda x, y: jnp.where(do, x, y), new, old)  # noqa: E731
    actor = pick(optax.apply_updates(state["actor"], upd), state["actor"])

    # 5. soft target updates (on actor steps)
    new = {
        "actor": actor,
        "critic": critic,
        "value": value,
        "vae": vae,
        "step": state["step"] + 1,
        "actor_t": pick(soft_update(state["actor_t"], actor, hp.tau), state["actor_t"]),
        "critic_t": pick(soft_update(state["critic_t"], critic, hp.tau), state["critic_t"]),
        "opt_actor": pick(opt_actor, state["opt_actor"]),
        "opt_critic": opt_critic,
        "opt_value": opt_value,
        "opt_vae": opt_vae,
    }
    metrics = {
        "critic_loss": lc,
        "value_loss": lv,
        "vae_loss": lz,
        "recon_loss": rec,
        "actor_loss": la,
        "lambda": lam,
        "bc_weight": w_mean,
    }
    return new, metrics
    # END SOLUTION


def vae_error_by_advantage(nets: Nets, state: dict, s, a, key) -> dict[str, jax.Array]:
    """Mean per-sample reconstruction error ‖VAE(s, a) − a‖² of data actions with A = Q_1 − V > 0 and ≤ 0."""
    # BEGIN SOLUTION
    recon, _, _ = nets.vae.apply(state["vae"], s, a, key)
    err = jnp.square(recon - a).sum(-1)
    pos = (nets.critic.apply(state["critic"], s, a)[0] > nets.value.apply(state["value"], s)).astype(err.dtype)
    return {
        "vae_err_pos": (err * pos).sum() / jnp.maximum(pos.sum(), 1.0),
        "vae_err_neg": (err * (1 - pos)).sum() / jnp.maximum((1 - pos).sum(), 1.0),
        "pos_fraction": pos.mean(),
    }
    # END SOLUTION
