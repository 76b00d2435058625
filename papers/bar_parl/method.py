"""BARFI (Gupta et al. 2023) and A-PARL (Chakraborty et al. 2023): bilevel reward design, in JAX.

Both papers solve   max_φ  J_outer(θ*(φ))   s.t.   θ*(φ) ∈ argmax_θ J_φ(θ),
where the inner problem is policy optimisation on a designed reward and the outer objective measures the policy
that results. The implicit function theorem at ∇_θ J_φ(θ*) = 0 gives the hypergradient

    dJ_outer/dφ = ∂_φ J_outer − ∇²_{φθ} J_φ · (∇²_θ J_φ)⁻¹ · ∇_θ J_outer.                          (implicit)

Trajectory batches are dicts of (B, T) arrays: x (features of s_t), a, r_p, r_aux, mask (see envs.rollout).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

# --- method: BARFI ---


def init_phi(const: jax.Array) -> dict[str, jax.Array]:
    """φ_1 = 0, φ_2 = `const` with x(s)ᵀ const = 1 (so r_φ starts as the naive r_p + r_aux), ψ = 4.6 (γ_φ ≈ 0.99)."""
    return {"phi1": jnp.zeros_like(const), "phi2": jnp.asarray(const), "psi": jnp.array(4.6)}


def init_phi_random(key: jax.Array, const: jax.Array) -> dict[str, jax.Array]:
    """The official start: φ_1, φ_2 weights ~ U(−1/√n, 1/√n) (PyTorch's nn.Linear default, `Reward.py` leaves the
    init lines commented out), so r_φ starts near r_p plus a small random blend of r_aux; ψ = 4.6."""
    bound = 1.0 / jnp.sqrt(const.shape[0])
    k1, k2 = jax.random.split(key)
    draw = lambda k: jax.random.uniform(k, const.shape, minval=-bound, maxval=bound)  # noqa: E731
    return {"phi1": draw(k1), "phi2": draw(k2), "psi": jnp.array(4.6)}


def gamma_phi(phi: dict[str, jax.Array]) -> jax.Array:
    """γ_φ = sigmoid(ψ)  (barfi-gw/src/utils/Reward.py, Alignment_Gamma)."""
    # BEGIN SOLUTION
    return jax.nn.sigmoid(phi["psi"])
    # END SOLUTION


def blended_reward(phi: dict[str, jax.Array], batch: dict[str, jax.Array]) -> jax.Array:
    """r_φ(s, a) = φ_1(s) + r_p(s, a) + φ_2(s) · r_aux(s, a), with φ_i(s) = φ_iᵀ x(s) linear in the features."""
    # BEGIN SOLUTION
    return batch["x"] @ phi["phi1"] + batch["r_p"] + (batch["x"] @ phi["phi2"]) * batch["r_aux"]
    # END SOLUTION


def discounted_returns(r: jax.Array, mask: jax.Array, gamma: jax.Array) -> jax.Array:
    """G_t = Σ_{k≥t} γ^{k−t} r_k over the live steps (mask), for r of shape (B, T)."""

    # BEGIN SOLUTION
    def back(g_next, rm):
        r_t, m_t = rm
        g = (r_t + gamma * g_next) * m_t
        return g, g

    _, g = jax.lax.scan(back, jnp.zeros(r.shape[0]), (r.T * 1.0, mask.T), reverse=True)
    return g.T
    # END SOLUTION


def log_probs(logits_fn: Callable, theta, batch) -> tuple[jax.Array, jax.Array]:
    """log π_θ(a_t|s_t) of shape (B, T) and the per-step entropy H(π_θ(·|s_t))."""
    # BEGIN SOLUTION
    logp_all = jax.nn.log_softmax(logits_fn(theta, batch["x"]), axis=-1)
    logp = jnp.take_along_axis(logp_all, batch["a"][..., None], axis=-1)[..., 0]
    ent = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
    return logp, ent
    # END SOLUTION


def pg_objective(logits_fn: Callable, theta, batch, returns: jax.Array, entropy: float = 0.0) -> jax.Array:
    """Surrogate J(θ) = mean_b (1/T) Σ_t mask_t log π_θ(a_t|s_t) G_t + λ_H · mean_live H(π_θ(·|s_t)).

    Its gradient is the REINFORCE estimate of ∇_θ J (official code: mean over the fixed horizon, no γ^t weights).
    """
    # BEGIN SOLUTION
    logp, ent = log_probs(logits_fn, theta, batch)
    mask = batch["mask"]
    j = jnp.mean(jnp.mean(mask * logp * returns, axis=-1))
    return j + entropy * jnp.sum(ent * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    # END SOLUTION


def inner_objective(logits_fn, theta, phi, batch, entropy: float) -> jax.Array:
    """J_φ(θ): the surrogate on r_φ and γ_φ, differentiable in both θ and φ (for ∇²_{φθ} J_φ)."""
    # BEGIN SOLUTION
    g = discounted_returns(blended_reward(phi, batch), batch["mask"], gamma_phi(phi))
    return pg_objective(logits_fn, theta, batch, g, entropy)
    # END SOLUTION


def primary_objective(logits_fn, theta, batch, gamma: float) -> jax.Array:
    """J_p(θ): the surrogate on the primary reward r_p and the true discount γ, no entropy bonus."""
    # BEGIN SOLUTION
    return pg_objective(logits_fn, theta, batch, discounted_returns(batch["r_p"], batch["mask"], gamma))
    # END SOLUTION


def hvp(f: Callable, theta, v):
    """H v with H = ∇²_θ f(θ) (forward-over-reverse)."""
    # BEGIN SOLUTION
    return jax.jvp(jax.grad(f), (theta,), (v,))[1]
    # END SOLUTION


def neumann_ihvp(hvp_fn: Callable, g, alpha: float, loops: int):
    """H⁻¹ g ≈ −α Σ_{j=0}^{K} (I + α H)^j g   (Lorraine et al. 2020 Alg. 3; barfi-gw BarfiNeumann.outer_Neumann).

    v ← g; p ← g; K times: v ← v + α H v, p ← p + v; return −α p. Converges to H⁻¹ g when H is negative
    definite (the inner problem is a maximisation) and α ‖H‖ < 2.
    """

    # BEGIN SOLUTION
    def body(carry, _):
        v, p = carry
        v = jax.tree.map(lambda vi, hi: vi + alpha * hi, v, hvp_fn(v))
        return (v, jax.tree.map(jnp.add, p, v)), None

    (_, p), _ = jax.lax.scan(body, (g, g), None, length=loops)
    return jax.tree.map(lambda pi: -alpha * pi, p)
    # END SOLUTION


def first_order_ihvp(g):
    """H⁻¹ g ≈ −g: the first-order variant takes ∇²_θ J_φ ≈ −I (barfi-gw Barfi.py)."""
    # BEGIN SOLUTION
    return jax.tree.map(jnp.negative, g)
    # END SOLUTION


def implicit_hypergradient(inner_obj: Callable, theta, phi, ihvp):
    """−∇²_{φθ} J_φ · ihvp = −∇_φ ⟨∇_θ J_φ(θ, φ), ihvp⟩, with ihvp ≈ (∇²_θ J_φ)⁻¹ ∇_θ J_outer held fixed."""

    # BEGIN SOLUTION
    def inner_dot(p):
        grad_theta = jax.grad(inner_obj, argnums=0)(theta, p)
        return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(grad_theta), jax.tree.leaves(ihvp), strict=True))

    return jax.tree.map(jnp.negative, jax.grad(inner_dot)(phi))
    # END SOLUTION


def reward_l2(phi: dict[str, jax.Array]) -> jax.Array:
    """Σ ‖φ_i‖ over the reward parameters, a norm (not squared) centred on 0, so the pull is towards r_φ = r_p
    (barfi-*/src/utils/utils.py `L2_reg`: Σ torch.norm(param)); safe at φ_i = 0, where its gradient is 0 as in torch."""

    # BEGIN SOLUTION
    def norm(v):
        sq = jnp.sum(v**2)
        safe = jnp.where(sq > 0, sq, 1.0)
        return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)

    return norm(phi["phi1"]) + norm(phi["phi2"])
    # END SOLUTION


def barfi_hypergradient(
    logits_fn,
    theta,
    phi,
    batch_outer,
    batch_inner,
    *,
    gamma: float,
    entropy: float,
    neumann,
    alpha: float,
    loops: int,
    reward_l2_weight: float = 0.0,
    gamma_l2_weight: float = 0.0,
):
    """dJ_p/dφ of BARFI, minus the regularisers' gradients (ascent direction; barfi-cp BarfiNeumann.outer_Neumann).

    g = ∇_θ J_p(θ) on the fresh on-policy episodes (`batch_outer`, official `sample_last(delta)`); ihvp = Neumann
    (or first-order) estimate of (∇²_θ J_φ)⁻¹ g with ∇²_θ J_φ and ∇²_{φθ} J_φ on older replayed episodes
    (`batch_inner`, official `sample_wo_last(hess_mul · batch_size, delta)`);
    dJ_p/dφ = −∇²_{φθ} J_φ ihvp − ∇_φ [λ_r Σ_i ‖φ_i‖ + λ_γ γ_φ]   (official reward_L2, gamma_L2).
    `neumann` may be a traced flag (one compiled program then serves both variants under vmap).
    """
    # BEGIN SOLUTION
    g = jax.grad(lambda t: primary_objective(logits_fn, t, batch_outer, gamma))(theta)

    def inner(t, p):
        return inner_objective(logits_fn, t, p, batch_inner, entropy)

    if isinstance(neumann, bool):
        ihvp = (
            neumann_ihvp(lambda v: hvp(lambda t: inner(t, phi), theta, v), g, alpha, loops)
            if neumann
            else first_order_ihvp(g)
        )
    else:
        ihvp_n = neumann_ihvp(lambda v: hvp(lambda t: inner(t, phi), theta, v), g, alpha, loops)
        ihvp = jax.tree.map(lambda a, b: jnp.where(neumann, a, b), ihvp_n, first_order_ihvp(g))
    hyper = implicit_hypergradient(inner, theta, phi, ihvp)
    reg = jax.grad(lambda p: reward_l2_weight * reward_l2(p) + gamma_l2_weight * gamma_phi(p))(phi)
    return jax.tree.map(jnp.subtract, hyper, reg)
    # END SOLUTION


# --- method: A-PARL ---


def trajectory_reward(nu: jax.Array, batch) -> jax.Array:
    """R_ν(τ) = Σ_t mask_t r_ν(s_t), with the learned reward r_ν(s) = νᵀ x(s)."""
    # BEGIN SOLUTION
    return jnp.sum(batch["mask"] * (batch["x"] @ nu), axis=-1)
    # END SOLUTION


def preference_loglik(nu: jax.Array, tau0, tau1, y: jax.Array) -> jax.Array:
    """U_ν = y log σ(R_ν(τ0) − R_ν(τ1)) + (1 − y) log σ(R_ν(τ1) − R_ν(τ0))  (Bradley–Terry), per pair."""
    # BEGIN SOLUTION
    d = trajectory_reward(nu, tau0) - trajectory_reward(nu, tau1)
    return y * jax.nn.log_sigmoid(d) + (1 - y) * jax.nn.log_sigmoid(-d)
    # END SOLUTION


def parl_policy_term(logits_fn, theta, nu, tau0, tau1, y):
    """∇_θ E_{τ∼ρ(θ)}[U_ν] = E[(U_ν − b) (∇_θ log ρ_θ(τ0) + ∇_θ log ρ_θ(τ1))]: the score-function term through the
    trajectory distribution of the lower-level policy that PEBBLE-style alternating methods drop (b = mean U)."""
    # BEGIN SOLUTION
    u = jax.lax.stop_gradient(preference_loglik(nu, tau0, tau1, y))
    adv = u - jnp.mean(u)

    def surrogate(t):
        lp0, _ = log_probs(logits_fn, t, tau0)
        lp1, _ = log_probs(logits_fn, t, tau1)
        score = jnp.sum(lp0 * tau0["mask"], -1) + jnp.sum(lp1 * tau1["mask"], -1)
        return jnp.mean(adv * score)

    return jax.grad(surrogate)(theta)
    # END SOLUTION


def parl_lower_objective(logits_fn, theta, nu, batch, gamma: float, entropy: float) -> jax.Array:
    """V(θ; ν): the policy-gradient surrogate on the learned reward r_ν(s) = νᵀ x(s)."""
    # BEGIN SOLUTION
    r = batch["mask"] * (batch["x"] @ nu)
    return pg_objective(logits_fn, theta, batch, discounted_returns(r, batch["mask"], gamma), entropy)
    # END SOLUTION


def damped_ihvp(f: Callable, theta: jax.Array, w: jax.Array, damping: float) -> jax.Array:
    """(∇²_θ f(θ) − μ I)⁻¹ w, solved exactly (θ is small: 144 tabular parameters here).

    μ > 0 makes the lower level μ-strongly concave, as the implicit-function theorem behind dθ*/dν requires (the
    REINFORCE surrogate's own Hessian is not negative definite away from its maximum)."""
    # BEGIN SOLUTION
    n = theta.size
    hess = jax.hessian(f)(theta).reshape(n, n)
    return jnp.linalg.solve(hess - damping * jnp.eye(n), w.ravel()).reshape(theta.shape)
    # END SOLUTION


def aparl_hypergradient(logits_fn, theta, nu, tau0, tau1, y, batch_inner, *, gamma: float, entropy: float, damping):
    """A-PARL: ∇_ν G = E[∇_ν U_ν] + (dθ*/dν)ᵀ ∇_θ E_{ρ(θ*)}[U_ν],
    with (dθ*/dν)ᵀ w = −∇²_{νθ} V · (∇²_θ V − μI)⁻¹ w solved exactly (`damped_ihvp`). Returns (direct, indirect)."""
    # BEGIN SOLUTION
    direct = jax.grad(lambda n: jnp.mean(preference_loglik(n, tau0, tau1, y)))(nu)
    w = parl_policy_term(logits_fn, theta, nu, tau0, tau1, y)

    def lower(t, n):
        return parl_lower_objective(logits_fn, t, n, batch_inner, gamma, entropy)

    ihvp = damped_ihvp(lambda t: lower(t, nu), theta, w, damping)
    return direct, implicit_hypergradient(lower, theta, nu, ihvp)
    # END SOLUTION
