"""Jitted training loops (plumbing): REINFORCE baselines, BARFI, and the PARL / PEBBLE preference learners.

Every loop is a `lax.scan` over outer iterations. The reward-design loops (BARFI, its shrinkage control and the
fixed-reward baselines) share the official BARFI learner (barfi-cp/src/algorithms/BarfiNeumann.py `optimize`): an
iteration collects one fresh batch of `batch` episodes with π_θ into a FIFO replay buffer of episodes, BARFI then
updates φ (g on the fresh batch, the curvature terms on `hess_mul × batch` *older* replayed episodes), and the
policy takes `replay_steps` steps, each on `batch` episodes sampled from the buffer with r_φ recomputed under the
current φ (no importance weights, as the official code). The PARL loops stay on-policy.
`experiment.py` vmaps these over seeds and heuristics.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from reprozoo.papers.bar_parl import baselines, method
from reprozoo.papers.bar_parl.envs import linear_logits, rollout

VARIANTS: tuple[str, ...] = (
    "neumann",
    "first_order",
    "shrink",
    "neumann_random_init",
    "shrink_random_init",
    "neumann_lr_x",
)
"""BARFI variants (a traced index): Neumann IHVP, first-order IHVP, and the control with the hypergradient × 0
(only the shrinkage of φ towards 0, i.e. "fade the heuristic out", is left), all starting at the naive reward; then
the Neumann variant and its control from the official random start (`method.init_phi_random`); last, the Neumann
variant with the φ learning rate × `Hyper.phi_lr_sensitivity` (the sensitivity row: 10× the official rate, the
v1 main setting)."""


@dataclass(frozen=True)
class Hyper:
    """Static hyper-parameters of one training run (hashable: passed to jit as a static argument)."""

    iterations: int
    inner_steps: int
    batch: int
    gamma: float
    actor_lr: float
    entropy: float
    replay_steps: int = 1
    replay_buffer: int = 1
    hess_mul: int = 15
    phi_lr: float = 0.0
    neumann_alpha: float = 5e-4
    neumann_loops: int = 5
    reward_l2: float = 0.0
    gamma_l2: float = 0.0
    phi_shrink: float = 0.0
    phi_lr_sensitivity: float = 10.0
    queries: int = 0
    buffer: int = 0
    reward_steps: int = 0
    reward_lr: float = 0.0
    indirect_weight: float = 1.0
    damping: float = 0.0
    reward_basis: str = "tabular"


def torch_rmsprop(lr: float) -> optax.GradientTransformation:
    """torch.optim.RMSprop's defaults (the official optimiser, `optim: rmsprop`): v ← 0.99 v + 0.01 g²,
    Δ = −lr · g / (√v + 1e-8) — eps outside the square root, so gradients far below 1e-4 are not damped
    (optax's default puts eps inside the root, which shrinks BARFI's 1e-7 … 1e-4 hypergradients)."""
    return optax.rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False)


def _episode_return(batch) -> jax.Array:
    return jnp.mean(jnp.sum(batch["r_p"], axis=-1))


def _policy_step(opt, theta, opt_state, grad):
    """Gradient ascent on θ with optax (the optimiser minimises, so the ascent direction is negated)."""
    updates, opt_state = opt.update(jax.tree.map(jnp.negative, grad), opt_state, theta)
    return optax.apply_updates(theta, updates), opt_state


# ----------------------------------------------------------------------------- replay buffer of episodes


def buffer_init(batch, size: int) -> dict:
    """A FIFO buffer of `size` episodes shaped like `batch` (arrays or shapes; official utils.TrajectoryBuffer)."""
    data = jax.tree.map(lambda a: jnp.zeros((size, *a.shape[1:]), a.dtype), batch)
    return {"data": data, "ptr": jnp.array(0, jnp.int32), "count": jnp.array(0, jnp.int32)}


def buffer_push(buf: dict, batch) -> dict:
    """Write the batch's episodes at the next positions, overwriting the oldest once full."""
    size = jax.tree.leaves(buf["data"])[0].shape[0]
    n = jax.tree.leaves(batch)[0].shape[0]
    idx = (buf["ptr"] + jnp.arange(n)) % size
    data = jax.tree.map(lambda d, b: d.at[idx].set(b), buf["data"], batch)
    return {"data": data, "ptr": (buf["ptr"] + n) % size, "count": jnp.minimum(buf["count"] + n, size)}


def buffer_sample(buf: dict, key, n: int, skip: int = 0):
    """`n` episodes drawn uniformly with replacement among the stored ones, leaving out the `skip` newest
    (official `sample(n)` for skip = 0 and `sample_wo_last(n, delta)` for skip = delta)."""
    size = jax.tree.leaves(buf["data"])[0].shape[0]
    k = jax.random.randint(key, (n,), 0, jnp.maximum(buf["count"] - skip, 1))
    idx = (buf["ptr"] - 1 - skip - k) % size
    return jax.tree.map(lambda d: d[idx], buf["data"])


# ----------------------------------------------------------------------------- reward-design loops


def _replay_loop(env, hp: Hyper, key, heuristic, returns_fn, design_fn, design_state):
    """Shared skeleton: per iteration, a fresh batch into the buffer → `design_fn` (BARFI's φ update, or nothing)
    → `replay_steps` policy steps on replayed batches with returns `returns_fn(design_state, batch)`."""
    theta = jnp.zeros((env.n_features, env.n_actions))
    opt = torch_rmsprop(hp.actor_lr)
    shapes = jax.eval_shape(lambda: rollout(env, linear_logits, theta, jax.random.key(0), jnp.array(0), hp.batch))
    buf = buffer_init(shapes, hp.replay_buffer)

    def outer(carry, k):
        theta, opt_state, design, buf = carry
        k_roll, k_design, k_replay = jax.random.split(k, 3)
        batch = rollout(env, linear_logits, theta, k_roll, heuristic, hp.batch)
        buf = buffer_push(buf, batch)
        design, log = design_fn(design, theta, batch, buf, k_design)

        def policy_step(carry, k):
            theta, opt_state = carry
            replayed = buffer_sample(buf, k, hp.batch)
            g = returns_fn(design, replayed)
            grad = jax.grad(lambda t: method.pg_objective(linear_logits, t, replayed, g, hp.entropy))(theta)
            return _policy_step(opt, theta, opt_state, grad), None

        (theta, opt_state), _ = jax.lax.scan(
            policy_step, (theta, opt_state), jax.random.split(k_replay, hp.replay_steps)
        )
        return (theta, opt_state, design, buf), {"return": _episode_return(batch), **log}

    _, logs = jax.lax.scan(outer, (theta, opt.init(theta), design_state, buf), jax.random.split(key, hp.iterations))
    return logs


def train_fixed(env, hp: Hyper, key, heuristic, mode):
    """The BARFI learner on a fixed reward (baselines.baseline_returns `mode`); returns per-iteration logs."""
    return _replay_loop(
        env,
        hp,
        key,
        heuristic,
        lambda _, batch: baselines.baseline_returns(batch, hp.gamma, mode),
        lambda design, theta, batch, buf, k: (design, {}),
        jnp.zeros(()),
    )


def train_barfi(env, hp: Hyper, key, heuristic, variant):
    """BARFI: inner replayed REINFORCE on r_φ, γ_φ (φ held fixed); outer torch-RMSprop ascent on φ along dJ_p/dφ,
    then the decoupled shrinkage φ_i ← (1 − phi_shrink) φ_i per outer iteration (towards 0, i.e. r_φ → r_p, as the
    official reward_L2; independent of the φ learning rate, so the lr sensitivity row and the control shrink alike).
    `variant` indexes VARIANTS (may be traced); "shrink" zeroes the hypergradient."""
    # the learner's stream is `key` itself, as in train_fixed: BARFI, its controls and the fixed-reward baselines of a
    # seed see the same random numbers (common random numbers: their paired differences are the methods', not the
    # streams'); the official random φ start draws from a key folded off it
    k_init = jax.random.fold_in(key, 1)
    naive, rand = method.init_phi(env.constant_weights()), method.init_phi_random(k_init, env.constant_weights())
    random_start = (variant == 3) | (variant == 4)
    phi = jax.tree.map(lambda a, b: jnp.where(random_start, b, a), naive, rand)
    neumann, control = (variant == 0) | (variant == 3) | (variant == 5), (variant == 2) | (variant == 4)
    lr = jnp.where(variant == 5, hp.phi_lr * hp.phi_lr_sensitivity, hp.phi_lr)
    opt_phi = torch_rmsprop(1.0)  # the update is scaled by the (traced) learning rate below

    def returns_fn(design, batch):
        phi = design[0]
        return method.discounted_returns(method.blended_reward(phi, batch), batch["mask"], method.gamma_phi(phi))

    def design_fn(design, theta, batch, buf, k):
        phi, phi_state = design
        older = buffer_sample(buf, k, hp.hess_mul * hp.batch, skip=hp.batch)
        hyper = method.barfi_hypergradient(
            linear_logits,
            theta,
            phi,
            batch,
            older,
            gamma=hp.gamma,
            entropy=hp.entropy,
            neumann=neumann,
            alpha=hp.neumann_alpha,
            loops=hp.neumann_loops,
            reward_l2_weight=hp.reward_l2,
            gamma_l2_weight=hp.gamma_l2,
        )
        # no older episodes yet (first iteration: the official code skips the outer step), or the control
        use = (buf["count"] > hp.batch) & ~control
        hyper = jax.tree.map(lambda h: jnp.where(use, h, 0.0), hyper)
        updates, phi_state = opt_phi.update(jax.tree.map(jnp.negative, hyper), phi_state, phi)
        phi = optax.apply_updates(phi, jax.tree.map(lambda u: lr * u, updates))
        for name in ("phi1", "phi2"):
            phi[name] = phi[name] * (1.0 - hp.phi_shrink)
        log = {
            "phi1": visit_mean(batch, phi["phi1"]),
            "phi2": visit_mean(batch, phi["phi2"]),
            "gamma_phi": method.gamma_phi(phi),
            "hyper_norm": jnp.sqrt(sum(jnp.sum(h**2) for h in jax.tree.leaves(hyper))),
        }
        return (phi, phi_state), log

    return _replay_loop(env, hp, key, heuristic, returns_fn, design_fn, (phi, opt_phi.init(phi)))


def visit_mean(batch, w: jax.Array) -> jax.Array:
    """The mean of φ_i(s_t) = x(s_t)ᵀ w over the live steps of a batch: Σ_{b,t} mask · x ᵀw / Σ_{b,t} mask.
    (v1 divided by Σ mask · Σ_i x_i, right for one-hot gridworld features but not for CartPole's signed, non-one-hot
    features: the logged CartPole φ_2 was mis-scaled, 0.87–1.67 where the true value was 0.975.)"""
    return jnp.sum(batch["mask"] * (batch["x"] @ w)) / jnp.maximum(jnp.sum(batch["mask"]), 1.0)


def train_preference(env, hp: Hyper, key, mode):
    """Preference-based alignment: `mode` 0 = PEBBLE-style alternating learner, 1 = A-PARL (adds the term through
    ρ(τ; θ*(ν)), with dθ*/dν from the exact damped solve). `mode` may be traced (the indirect term is then computed
    for both modes and masked). Logs the return of every batch (the query batch first) and ‖indirect‖/‖direct‖.

    The reward is r_ν(s) = x(s)ᵀ P ν with P = env.reward_basis(hp.reward_basis); the method's functions take the
    per-cell reward P ν, and the chain rule (every term is linear in it) maps their ν-gradients back by Pᵀ."""
    theta = jnp.zeros((env.n_features, env.n_actions))
    basis = env.reward_basis(hp.reward_basis)
    nu = jnp.zeros(basis.shape[1])
    opt, opt_nu = torch_rmsprop(hp.actor_lr), optax.adam(hp.reward_lr)
    buf = {"d": jnp.zeros((hp.buffer, basis.shape[1])), "y": jnp.zeros(hp.buffer), "valid": jnp.zeros(hp.buffer)}
    zero = jnp.array(0, jnp.int32)

    def inner(carry, k):
        theta, opt_state, nu = carry
        batch = rollout(env, linear_logits, theta, k, zero, hp.batch)
        cell_reward = basis @ nu
        grad = jax.grad(
            lambda t: method.parl_lower_objective(linear_logits, t, cell_reward, batch, hp.gamma, hp.entropy)
        )(theta)
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
        counts = jnp.sum(batch["mask"][..., None] * batch["x"], axis=1) @ basis
        idx = (ptr + jnp.arange(q)) % hp.buffer
        buf = {
            "d": buf["d"].at[idx].set(counts[:q] - counts[q : 2 * q]),
            "y": buf["y"].at[idx].set(y),
            "valid": buf["valid"].at[idx].set(1.0),
        }
        direct, indirect = method.aparl_hypergradient(
            linear_logits,
            theta,
            basis @ nu,
            tau0,
            tau1,
            y,
            batch,
            gamma=hp.gamma,
            entropy=hp.entropy,
            damping=hp.damping,
        )
        direct, indirect = basis.T @ direct, basis.T @ indirect
        ratio = jnp.linalg.norm(indirect) / (jnp.linalg.norm(direct) + 1e-12)
        indirect = jnp.where(mode > 0, indirect, 0.0)

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
        log = {"return": jnp.concatenate([_episode_return(batch)[None], rets]), "indirect_ratio": ratio}
        return (theta, opt_state, nu, nu_state, buf, ptr + q), log

    init = (theta, opt.init(theta), nu, opt_nu.init(nu), buf, zero)
    _, logs = jax.lax.scan(outer, init, jax.random.split(key, hp.iterations))
    return logs
