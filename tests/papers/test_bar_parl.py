"""BARFI + PARL: hypergradients vs finite differences (float64), Neumann IHVP vs the exact inverse, reward / shaping
formulas, environment parity with gymnasium, and the CLI (smoke; quick claims marked slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from reprozoo.papers.bar_parl import baselines, method, train  # noqa: E402
from reprozoo.papers.bar_parl.envs import CartPole, GridWorld, linear_logits, rollout  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def tiny_batch(rng: np.random.Generator, B=3, T=5, S=3, A=2) -> dict:
    """A fixed batch of trajectories over S one-hot states; the last steps of episode 0 are past termination."""
    states = rng.integers(0, S, size=(B, T))
    mask = np.ones((B, T))
    mask[0, 3:] = 0.0
    return {
        "x": jnp.asarray(np.eye(S)[states]),
        "a": jnp.asarray(rng.integers(0, A, size=(B, T))),
        "r_p": jnp.asarray(rng.normal(0, 0.3, (B, T)) * mask),
        "r_aux": jnp.asarray(rng.normal(0, 0.3, (B, T)) * mask),
        "mask": jnp.asarray(mask),
    }


def numpy_returns(r, mask, gamma):
    g = np.zeros_like(r)
    for b in range(r.shape[0]):
        acc = 0.0
        for t in reversed(range(r.shape[1])):
            acc = (r[b, t] + gamma * acc) * mask[b, t]
            g[b, t] = acc
    return g


# ----------------------------------------------------------------------------- formulas


@pytest.mark.points(1)
def test_discounted_returns_match_loop():
    with jax.enable_x64(True):
        batch = tiny_batch(np.random.default_rng(0))
        got = method.discounted_returns(batch["r_p"], batch["mask"], 0.9)
        want = numpy_returns(np.asarray(batch["r_p"]), np.asarray(batch["mask"]), 0.9)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.points(1)
def test_blended_reward_and_gamma():
    batch = {
        "x": jnp.array([[[1.0, 0.0], [0.0, 1.0]]]),
        "r_p": jnp.array([[1.0, -0.1]]),
        "r_aux": jnp.array([[50.0, 2.0]]),
    }
    phi = {"phi1": jnp.array([0.5, -1.0]), "phi2": jnp.array([0.0, 2.0]), "psi": jnp.array(0.0)}
    # r_φ = φ_1(s) + r_p + φ_2(s) r_aux: [0.5 + 1 + 0·50, −1 − 0.1 + 2·2]
    np.testing.assert_allclose(np.asarray(method.blended_reward(phi, batch)), [[1.5, 2.9]], rtol=1e-6)
    assert float(method.gamma_phi(phi)) == pytest.approx(0.5)
    assert float(method.gamma_phi(method.init_phi(jnp.ones(3)))) == pytest.approx(0.99, abs=1e-3)


def test_potential_shaping_telescopes():
    """Σ_k γ^k (r_p + γΦ_{t+k+1} − Φ_{t+k}) = G^p_t − Φ_t, also when the episode ends before the horizon."""
    with jax.enable_x64(True):
        batch = tiny_batch(np.random.default_rng(1))
        gamma = 0.95
        shaped = batch["r_p"] + baselines.shaping_rewards(batch["r_aux"], batch["mask"], gamma)
        by_sum = method.discounted_returns(shaped, batch["mask"], gamma)
        closed = baselines.baseline_returns(batch, gamma, jnp.array(2))
        np.testing.assert_allclose(np.asarray(by_sum), np.asarray(closed), rtol=1e-10, atol=1e-12)
        naive = baselines.baseline_returns(batch, gamma, jnp.array(1))
        want = numpy_returns(np.asarray(batch["r_p"] + batch["r_aux"]), np.asarray(batch["mask"]), gamma)
        np.testing.assert_allclose(np.asarray(naive), want, rtol=1e-10, atol=1e-12)


@pytest.mark.points(2)
def test_pg_objective_gradient_is_reinforce():
    """∇_θ of the surrogate = mean_b (1/T) Σ_t mask G_t ∇ log π(a_t|s_t), computed by hand for a tabular softmax."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        batch = tiny_batch(rng)
        theta = jnp.asarray(rng.normal(size=(3, 2)))
        g = method.discounted_returns(batch["r_p"], batch["mask"], 0.9)
        got = jax.grad(lambda t: method.pg_objective(linear_logits, t, batch, g))(theta)
        x, a, m = np.asarray(batch["x"]), np.asarray(batch["a"]), np.asarray(batch["mask"])
        want = np.zeros((3, 2))
        B, T = a.shape
        for b in range(B):
            for t in range(T):
                s = int(np.argmax(x[b, t]))
                p = np.exp(np.asarray(theta)[s]) / np.exp(np.asarray(theta)[s]).sum()
                want[s] += m[b, t] * float(g[b, t]) * (np.eye(2)[a[b, t]] - p) / (B * T)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- Neumann and hypergradients


@pytest.mark.points(2)
def test_neumann_ihvp_matches_truncated_series_and_exact_inverse():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        Q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
        H = -(Q * rng.uniform(0.5, 3.0, 6)) @ Q.T  # negative definite, as at a maximum of the inner objective
        g = rng.normal(size=6)
        alpha, K = 0.1, 5
        series = sum(np.linalg.matrix_power(np.eye(6) + alpha * H, j) @ g for j in range(K + 1))
        got = method.neumann_ihvp(lambda v: jnp.asarray(H) @ v, jnp.asarray(g), alpha, K)
        np.testing.assert_allclose(np.asarray(got), -alpha * series, rtol=1e-10)
        converged = method.neumann_ihvp(lambda v: jnp.asarray(H) @ v, jnp.asarray(g), 0.3, 400)
        np.testing.assert_allclose(np.asarray(converged), np.linalg.solve(H, g), rtol=1e-8)
        np.testing.assert_allclose(np.asarray(method.first_order_ihvp(jnp.asarray(g))), -g)


@pytest.mark.points(1)
def test_damped_ihvp_is_the_exact_regularised_solve():
    """A-PARL's (∇²_θ f − μI)⁻¹ w equals numpy's solve for a quadratic f with a known, indefinite Hessian."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(8)
        A = rng.normal(size=(6, 6))
        H = (A + A.T) / 4  # indefinite, like the REINFORCE surrogate's Hessian
        w = rng.normal(size=(3, 2))
        got = method.damped_ihvp(lambda t: 0.5 * t.ravel() @ jnp.asarray(H) @ t.ravel(), jnp.zeros((3, 2)), w, 2.5)
        want = np.linalg.solve(H - 2.5 * np.eye(6), w.ravel()).reshape(3, 2)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10)


@pytest.mark.points(2)
def test_implicit_hypergradient_matches_finite_differences():
    """dJ_p(θ*(φ))/dφ from the implicit function theorem (exact inverse and a converged Neumann series) equals
    central finite differences through an exactly solved (Newton) inner problem, in float64."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(4)
        batch = tiny_batch(rng)
        kappa = 1.0

        def inner(theta, phi):  # BARFI's inner surrogate made strongly concave by an L2 term
            return method.inner_objective(linear_logits, theta, phi, batch, 0.1) - 0.5 * kappa * jnp.sum(theta**2)

        def outer(theta):
            return method.primary_objective(linear_logits, theta, batch, 0.99)

        @jax.jit
        def solve(phi):  # Newton's method on the strongly concave inner problem
            def newton(_, theta):
                grad = jax.grad(inner)(theta, phi).ravel()
                hess = jax.hessian(inner)(theta, phi).reshape(6, 6)
                return theta - jnp.linalg.solve(hess, grad).reshape(3, 2)

            return jax.lax.fori_loop(0, 20, newton, jnp.zeros((3, 2)))

        outer_at = jax.jit(lambda phi: outer(solve(phi)))

        phi = {
            "phi1": jnp.asarray(rng.normal(0, 0.3, 3)),
            "phi2": jnp.asarray(1 + rng.normal(0, 0.3, 3)),
            "psi": jnp.array(1.5),
        }
        theta = solve(phi)
        assert float(jnp.max(jnp.abs(jax.grad(inner)(theta, phi)))) < 1e-12
        H = np.asarray(jax.hessian(inner)(theta, phi).reshape(6, 6))
        assert np.all(np.linalg.eigvalsh(H) < 0)
        g = np.asarray(jax.grad(outer)(theta)).ravel()
        exact = method.implicit_hypergradient(inner, theta, phi, jnp.asarray(np.linalg.solve(H, g).reshape(3, 2)))
        neumann_ihvp = method.neumann_ihvp(
            lambda v: method.hvp(lambda t: inner(t, phi), theta, v), jnp.asarray(g.reshape(3, 2)), 0.5, 300
        )
        neumann = method.implicit_hypergradient(inner, theta, phi, neumann_ihvp)
        eps = 1e-6
        for name, i in (("phi1", 0), ("phi1", 2), ("phi2", 1), ("psi", 0)):
            flat = np.atleast_1d(np.asarray(phi[name]))

            def shifted(d, name=name, i=i, flat=flat):
                v = flat.copy()
                v[i] += d
                return float(outer_at({**phi, name: jnp.asarray(v.reshape(np.shape(phi[name])))}))

            fd = (shifted(eps) - shifted(-eps)) / (2 * eps)
            assert float(np.atleast_1d(np.asarray(exact[name]))[i]) == pytest.approx(fd, rel=1e-5, abs=1e-9)
            assert float(np.atleast_1d(np.asarray(neumann[name]))[i]) == pytest.approx(fd, rel=1e-4, abs=1e-8)


@pytest.mark.points(2)
def test_barfi_hypergradient_first_order_and_regulariser():
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        batch = tiny_batch(rng)
        theta = jnp.asarray(rng.normal(size=(3, 2)))
        phi = method.init_phi(jnp.ones(3))
        phi = {**phi, "phi1": phi["phi1"] + 0.2}
        kw = dict(gamma=0.99, entropy=0.0, alpha=1e-3, loops=5)
        fo = method.barfi_hypergradient(linear_logits, theta, phi, batch, batch, neumann=False, **kw)
        g = jax.grad(lambda t: method.primary_objective(linear_logits, t, batch, 0.99))(theta)
        want = method.implicit_hypergradient(
            lambda t, p: method.inner_objective(linear_logits, t, p, batch, 0.0), theta, phi, -g
        )
        for k in phi:
            np.testing.assert_allclose(np.asarray(fo[k]), np.asarray(want[k]), rtol=1e-10, atol=1e-14)
        reg = method.barfi_hypergradient(
            linear_logits, theta, phi, batch, batch, neumann=False, reward_l2_weight=0.5, gamma_l2_weight=2.0, **kw
        )
        # official reward_L2 · Σ‖φ_i‖ (a norm centred on 0, towards r_φ = r_p): ∇ = λ φ_i / ‖φ_i‖
        np.testing.assert_allclose(np.asarray(fo["phi1"] - reg["phi1"]), 0.5 / np.sqrt(3) * np.ones(3), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(fo["phi2"] - reg["phi2"]), 0.5 / np.sqrt(3) * np.ones(3), rtol=1e-10)
        sig = float(method.gamma_phi(phi))
        assert float(fo["psi"] - reg["psi"]) == pytest.approx(2.0 * sig * (1 - sig), rel=1e-10)  # gamma_L2 · γ_φ
        at_zero = jax.grad(method.reward_l2)({**phi, "phi1": jnp.zeros(3)})["phi1"]
        np.testing.assert_array_equal(np.asarray(at_zero), np.zeros(3))  # torch.norm's gradient at 0, not NaN


def test_torch_rmsprop_does_not_damp_small_gradients():
    """torch.optim.RMSprop (the official optimiser): the first step is lr · g / (√(0.01 g²) + 1e-8) ≈ 10 lr for
    any |g| >> 1e-10, so a 1e-6 hypergradient moves φ (optax's default, eps inside the root, would barely move it)."""
    opt = train.torch_rmsprop(0.05)
    g = jnp.array([1e-6, -1e-5, 2.0])
    updates, _ = opt.update(g, opt.init(g))
    want = -0.05 * np.asarray(g) / (np.sqrt(0.01 * np.asarray(g) ** 2) + 1e-8)
    np.testing.assert_allclose(np.asarray(updates), want, rtol=1e-5)
    assert np.all(np.abs(np.asarray(updates)) > 0.4)


def test_replay_buffer_is_fifo_and_skips_the_newest():
    buf = train.buffer_init({"v": jnp.zeros((2, 3))}, 4)
    for i in range(3):  # six episodes into four slots: episodes 2, 3, 4, 5 remain
        buf = train.buffer_push(buf, {"v": jnp.full((2, 3), float(i * 2)) + jnp.arange(2.0)[:, None]})
    assert int(buf["count"]) == 4
    assert sorted(np.asarray(buf["data"]["v"][:, 0]).tolist()) == [2.0, 3.0, 4.0, 5.0]
    older = train.buffer_sample(buf, jax.random.key(0), 200, skip=2)["v"][:, 0]
    assert set(np.asarray(older).tolist()) == {2.0, 3.0}  # official sample_wo_last: never the newest batch
    every = train.buffer_sample(buf, jax.random.key(1), 200)["v"][:, 0]
    assert set(np.asarray(every).tolist()) == {2.0, 3.0, 4.0, 5.0}


def test_shrink_control_decays_phi_towards_zero_without_hypergradient():
    """The control zeroes the hypergradient: φ_2 follows (1 − phi_shrink)^n exactly (towards 0 = r_p, the official
    reward_L2 target, not towards the naive φ⁰) and ψ (γ_φ) never moves; BARFI's hypergradient is non-zero."""
    env = GridWorld(horizon=12)
    hp = train.Hyper(
        iterations=4, inner_steps=1, batch=4, gamma=0.99, actor_lr=0.05, entropy=0.1, replay_steps=2,
        replay_buffer=16, hess_mul=2, phi_lr=0.05, phi_shrink=0.025,
    )  # fmt: skip
    logs = train.train_barfi(env, hp, jax.random.key(0), jnp.array(2), jnp.array(2))
    np.testing.assert_allclose(np.asarray(logs["phi2"]), (1 - 0.025) ** np.arange(1, 5), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(logs["gamma_phi"]), float(jax.nn.sigmoid(4.6)), rtol=1e-6)
    assert np.all(np.asarray(logs["hyper_norm"]) == 0)
    rand = train.train_barfi(env, hp, jax.random.key(0), jnp.array(2), jnp.array(4))  # control, official start
    assert abs(float(rand["phi2"][0])) < 1 / 6  # |φ_2| <= 1/√36 per cell, not the naive 1
    phi = method.init_phi_random(jax.random.key(3), jnp.ones(36))
    for name in ("phi1", "phi2"):
        assert float(jnp.max(jnp.abs(phi[name]))) <= 1 / 6 and float(jnp.std(phi[name])) > 0.05
    barfi = train.train_barfi(env, hp, jax.random.key(0), jnp.array(2), jnp.array(0))
    assert float(barfi["hyper_norm"][0]) == 0.0  # no older episodes at the first iteration: no outer step
    assert np.all(np.asarray(barfi["hyper_norm"][1:]) > 0)


# ----------------------------------------------------------------------------- PARL pieces


@pytest.mark.points(1)
def test_preference_likelihood_and_oracle():
    tau = lambda r, x: {"r_p": jnp.asarray(r), "x": jnp.asarray(x), "mask": jnp.ones(np.shape(r))}  # noqa: E731
    x0 = np.eye(2)[[[0, 0, 1]]]
    x1 = np.eye(2)[[[1, 1, 1]]]
    t0, t1 = tau([[1.0, 1.0, 1.0]], x0), tau([[0.0, 0.0, 1.0]], x1)
    assert float(baselines.oracle_labels(t0, t1)[0]) == 1.0
    assert float(baselines.oracle_labels(t1, t0)[0]) == 0.0
    assert float(baselines.oracle_labels(t0, t0)[0]) == 0.5
    nu = jnp.array([0.3, -0.2])
    d = (2 * 0.3 - 0.2) - (3 * -0.2)  # R_ν(τ0) − R_ν(τ1)
    got = method.preference_loglik(nu, t0, t1, jnp.array([1.0]))
    assert float(got[0]) == pytest.approx(float(jax.nn.log_sigmoid(d)), rel=1e-6)
    diffs = jnp.sum(t0["x"], 1) - jnp.sum(t1["x"], 1)
    grad = baselines.pebble_reward_gradient(nu, diffs, jnp.array([1.0]), jnp.array([1.0]), 0.0)
    want = jax.grad(lambda n: method.preference_loglik(n, t0, t1, jnp.array([1.0]))[0])(nu)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(want), rtol=1e-6)


# ----------------------------------------------------------------------------- environments


def test_cartpole_matches_gymnasium():
    gym = pytest.importorskip("gymnasium")
    with jax.enable_x64(True):
        env, rng = CartPole(), np.random.default_rng(6)
        g = gym.make("CartPole-v1").unwrapped
        steps = 0
        for ep in range(4):
            obs, _ = g.reset(seed=ep)
            state = {
                "s": jnp.asarray(np.asarray(g.state, dtype=np.float64)),
                "prev_theta": jnp.array(0.0),
                "done": jnp.array(False),
            }
            for _ in range(200):
                a = int(rng.integers(2))
                _, r, term, _, _ = g.step(a)
                nxt, r_p, _, done = env.step(state, jnp.array(a), None, jnp.array(0))
                np.testing.assert_allclose(
                    np.asarray(nxt["s"]), np.asarray(g.state, dtype=np.float64), rtol=1e-12, atol=1e-12
                )
                assert bool(done) == term and float(r_p) == r
                steps += 1
                if term:
                    break
                state = nxt
        assert steps > 40


def test_cartpole_pd_heuristic_matches_official_formula():
    env = CartPole()
    rng = np.random.default_rng(7)
    for theta, prev in rng.normal(0, 0.1, size=(50, 2)):
        u = 0.1 * theta + 0.5 * (theta - prev)
        official = int(np.round(1 / (1 + np.exp(-u))))  # barfi-cp PID_controller: round(sigmoid(P e + D Δe))
        assert int(env.pd_action(jnp.array(theta), jnp.array(prev))) == official
    state = {"s": jnp.array([0.0, 0.0, 0.05, 0.0]), "prev_theta": jnp.array(0.0), "done": jnp.array(False)}
    # the paper's figures: good = CartPoleBestAux2 (+5 matching / −1 not), bad = CartPoleBadAuxDebug (−5 / +1)
    for heuristic, match, miss in ((0, 0.0, 0.0), (1, 5.0, -1.0), (2, -5.0, 1.0)):
        assert float(env.step(state, jnp.array(1), None, jnp.array(heuristic))[2]) == match  # PD says push right
        assert float(env.step(state, jnp.array(0), None, jnp.array(heuristic))[2]) == miss
    falling = {"s": jnp.array([0.0, 0.0, 0.2, 2.0]), "prev_theta": jnp.array(0.19), "done": jnp.array(False)}
    for heuristic in (1, 2):  # no auxiliary reward on the terminating step
        _, _, r_aux, done = env.step(falling, jnp.array(0), None, jnp.array(heuristic))
        assert bool(done) and float(r_aux) == 0.0


def test_gridworld_rewards_and_heuristics():
    env = GridWorld(slip=0.0)
    no_slip = jnp.array([0.99, 0.0])
    state = env.reset(jax.random.key(0))
    total, aux_bad = 0.0, []
    for a in [1] * 5 + [0] * 5:  # right ×5, up ×5: the shortest path to the goal
        state, r_p, r_aux, done = env.step(state, jnp.array(a), no_slip, jnp.array(2))
        total += float(r_p)
        aux_bad.append(float(r_aux))
    assert bool(done) and total == pytest.approx(100 - 0.1 * 10)
    assert aux_bad == [0.0] * 10  # the border path never enters the central region
    centre = {"pos": jnp.array([2, 3]), "done": jnp.array(False)}
    assert float(env.step(centre, jnp.array(1), no_slip, jnp.array(2))[2]) == 50.0  # → (3, 3): still central
    assert float(env.step(centre, jnp.array(1), no_slip, jnp.array(1))[2]) == 1.0  # progress: (2, 3) → (3, 3), closer
    slipped = GridWorld().step(centre, jnp.array(1), jnp.array([0.05, 0.9]), jnp.array(0))[
        0
    ]  # slip: random action 3 = left
    assert np.asarray(slipped["pos"]).tolist() == [1, 3]


def test_gridworld_coarse_reward_basis():
    env = GridWorld()
    assert np.array_equal(np.asarray(env.reward_basis("tabular")), np.eye(36))
    P = np.asarray(env.reward_basis("coarse"))
    assert P.shape == (36, 4)
    cell = lambda x, y: x * 6 + y  # noqa: E731  (GridWorld.features: index = pos[0] · size + pos[1])
    np.testing.assert_allclose(P[cell(0, 0)], [0, 0, 1, 0])
    np.testing.assert_allclose(P[cell(5, 5)], [1, 1, 1, 0])
    np.testing.assert_allclose(P[cell(2, 3)], [0.4, 0.6, 1, 1])  # a central cell
    assert P[:, 3].sum() == 4


def test_rollout_masks_after_termination():
    env = GridWorld(horizon=30)
    # go right (action 1) until the right-hand column (cells x = 5, one-hot indices 30..35), then up (action 0)
    theta = jnp.zeros((env.n_features, 4)).at[:, 1].set(5.0).at[30:36, 0].set(10.0)
    batch = rollout(env, linear_logits, theta, jax.random.key(1), jnp.array(0), 8)
    m = np.asarray(batch["mask"])
    assert np.all(np.diff(m, axis=1) <= 0)  # once done, always done
    returns = np.asarray(batch["r_p"]).sum(1)
    reached = m.sum(1) < 30
    np.testing.assert_allclose(returns[reached], 100 - 0.1 * m.sum(1)[reached], rtol=1e-5)
    assert reached.mean() > 0.5


def test_lr_sensitivity_variant_scales_only_the_phi_step():
    """VARIANTS[5] is BARFI (Neumann) with the φ lr × phi_lr_sensitivity: same keys, so its first φ step (iteration
    1; iteration 0 has no older episodes) is exactly that many times the main variant's."""
    env = GridWorld(horizon=12)
    hp = train.Hyper(
        iterations=3, inner_steps=1, batch=4, gamma=0.99, actor_lr=0.05, entropy=0.1, replay_steps=2,
        replay_buffer=16, hess_mul=2, phi_lr=0.005, phi_shrink=0.0, phi_lr_sensitivity=10.0,
    )  # fmt: skip
    assert train.VARIANTS[5] == "neumann_lr_x"
    main = train.train_barfi(env, hp, jax.random.key(0), jnp.array(2), jnp.array(0))
    lr_x = train.train_barfi(env, hp, jax.random.key(0), jnp.array(2), jnp.array(5))
    np.testing.assert_allclose(float(lr_x["phi1"][1]), 10 * float(main["phi1"][1]), rtol=1e-4)
    assert float(main["phi1"][1]) != 0.0
    np.testing.assert_allclose(np.asarray(lr_x["hyper_norm"][:2]), np.asarray(main["hyper_norm"][:2]), rtol=1e-6)


def test_visit_mean_is_per_live_step_for_non_one_hot_features():
    """The logged φ_i is the mean of x(s_t)ᵀ w over the live steps (v1 divided by Σ mask · Σ_i x_i, which mis-scaled
    CartPole's signed features): a constant φ_2 = 0.975 on the bias feature logs 0.975 exactly."""
    env = CartPole(horizon=40)
    batch = rollout(env, linear_logits, jnp.zeros((5, 2)), jax.random.key(0), jnp.array(2), 6)
    w = 0.975 * env.constant_weights()
    assert float(train.visit_mean(batch, w)) == pytest.approx(0.975, rel=1e-6)
    x, m = np.asarray(batch["x"]), np.asarray(batch["mask"])
    w2 = np.array([1.0, -2.0, 0.5, 3.0, 0.1])
    want = (m * (x @ w2)).sum() / m.sum()
    assert float(train.visit_mean(batch, jnp.asarray(w2))) == pytest.approx(want, rel=1e-5)


def test_gridworld_progress_heuristic():
    """v2 good heuristic: +1 for a move one cell closer to the goal (Manhattan), −1 away, 0 against a wall."""
    env = GridWorld(slip=0.0)
    no_slip = jnp.array([0.99, 0.0])
    at = lambda x, y: {"pos": jnp.array([x, y]), "done": jnp.array(False)}  # noqa: E731
    good = jnp.array(1)
    assert float(env.step(at(0, 0), jnp.array(1), no_slip, good)[2]) == 1.0  # right: closer
    assert float(env.step(at(2, 2), jnp.array(3), no_slip, good)[2]) == -1.0  # left: away
    assert float(env.step(at(0, 0), jnp.array(2), no_slip, good)[2]) == 0.0  # down into the wall: no move
    assert float(env.step(at(5, 4), jnp.array(0), no_slip, good)[2]) == 0.0  # into the goal: no aux on the last step
    assert float(GridWorld(good="sqdist").step(at(2, 3), jnp.array(1), no_slip, good)[2]) == pytest.approx(
        -(2 * (2 / 5) ** 2)
    )


# ----------------------------------------------------------------------------- claims v2 on synthetic rows


def _rows(final: dict, early: dict | None = None, seeds=range(10), noise=0.02, aparl=300.0, pebble=400.0):
    """Records for every method × heuristic × seed on the gridworld (R_0 = 0, r_p's final ≈ 1, so scores ≈ values)
    and both PARL reward models; `final`/`early` map (method, heuristic) to a value, default 1."""
    from reprozoo.common.results import record
    from reprozoo.papers.bar_parl.experiment import BARFI_METHODS

    rng = np.random.default_rng(0)
    rows = []
    for m in BARFI_METHODS:
        for h in ("none", "good", "bad"):
            for s in seeds:
                f = final.get((m, h), 1.0) + rng.normal(0, noise)
                e = (early or {}).get((m, h), f) + rng.normal(0, noise)
                where = {"env": "gridworld", "heuristic": h}
                rows += [
                    record(m, s, "final_return", f, **where),
                    record(m, s, "early_return", e, **where),
                    record(m, s, "initial_return", 0.0, **where),
                ]
    for rm in ("tabular", "coarse"):
        where = {"env": "parl", "reward_model": rm}
        for m, v in (("aparl", aparl), ("pebble", pebble)):
            for s in seeds:
                rows += [
                    record(m, s, "episodes_to_target", v + rng.normal(0, 20), target=79.0, **where),
                    record(m, s, "final_return", 98.0, **where),
                    record(m, s, "indirect_ratio", 0.1, **where),
                ]
    return rows


def _verdicts(rows) -> dict:
    from types import SimpleNamespace

    from reprozoo.common.results import resolve_verdicts
    from reprozoo.papers.bar_parl import claims

    cfg = SimpleNamespace(envs=("gridworld",), parl_reward_models=("tabular", "coarse"), early_fraction=0.2)
    return {c.id: c for c in resolve_verdicts(claims.check(rows, cfg))}


TRAPPED = {("naive", "bad"): -0.3, ("potential", "bad"): 1.0, ("barfi", "bad"): 0.9, ("shrink", "bad"): 0.1}
HELPS = {("naive", "good"): 1.2, ("barfi", "good"): 1.2}


def test_claims_v2_pass_with_premises_present():
    c = _verdicts(_rows(TRAPPED, HELPS))
    assert {k: v.verdict for k, v in c.items()} == {
        "1-gridworld-premise": "PASS",
        "1-gridworld-control": "PASS",
        "1-gridworld": "PASS",
        "1-gridworld-hypergradient": "PASS",
        "2-gridworld-premise": "PASS",
        "2-gridworld": "PASS",
        "3": "PASS",
        "3-coarse": "PASS",
    }
    assert c["1-gridworld"].requires == ("1-gridworld-premise",) and c["1-gridworld-control"].kind == "control"
    assert c["2-gridworld-premise"].kind == "premise" and c["2-gridworld"].requires == ("2-gridworld-premise",)


def test_claims_v2_untested_when_the_premise_fails():
    """No trap (naive with the bad heuristic as good as r_p alone): claim 1, its hypergradient margin and the control
    are UNTESTED, numbers kept; a good heuristic that does not speed the naive learner makes claim 2 UNTESTED."""
    c = _verdicts(_rows({("naive", "bad"): 1.0, ("shrink", "bad"): 0.1}, {("naive", "good"): 1.0}))
    assert c["1-gridworld-premise"].verdict == "FAIL"
    for cid in ("1-gridworld", "1-gridworld-hypergradient", "1-gridworld-control", "2-gridworld"):
        assert c[cid].verdict == "UNTESTED" and not c[cid].passed, cid
    assert c["2-gridworld-premise"].verdict == "FAIL"
    assert c["1-gridworld-hypergradient"].observed["barfi_minus_shrink"] == pytest.approx(0.9, abs=0.05)


def test_claims_v2_fail_and_control_fail_with_premise_present():
    """Trap present, BARFI trapped like its control, potential shaping trapped too (the control's prediction fails):
    claim 1 and its margin FAIL; the control FAILs; BARFI slower than naive by 0.2 fails claim 2."""
    final = {**TRAPPED, ("barfi", "bad"): 0.1, ("potential", "bad"): -0.3}
    c = _verdicts(_rows(final, {**HELPS, ("barfi", "good"): 1.0}, aparl=400.0))
    assert c["1-gridworld-premise"].verdict == "PASS"
    assert c["1-gridworld"].verdict == "FAIL" and c["1-gridworld-hypergradient"].verdict == "FAIL"
    assert c["1-gridworld-control"].verdict == "FAIL"
    assert c["2-gridworld"].verdict == "FAIL"
    assert c["3"].verdict == "FAIL"  # no difference: the CI spans 0


def test_claims_v2_paired_ci_and_power():
    """The observed paired difference is the mean of per-seed differences with the Student-t half-width; the MDE is
    reported, and the noise shared by a seed cancels (paired, not two separate means)."""
    from scipy import stats

    rows = _rows(TRAPPED, HELPS, noise=0.0)
    rng = np.random.default_rng(5)
    shared = {s: rng.normal(0, 0.5) for s in range(10)}  # a per-seed offset common to BARFI and its control
    own = {s: rng.normal(0, 0.05) for s in range(10)}
    for r in rows:
        if r["metric"] == "final_return" and r.get("heuristic") == "bad" and r["method"] in ("barfi", "shrink"):
            r["value"] += shared[r["seed"]] + (own[r["seed"]] if r["method"] == "barfi" else 0.0)
    obs = _verdicts(rows)["1-gridworld-hypergradient"].observed
    d = np.array([0.8 + own[s] for s in range(10)])
    assert obs["barfi_minus_shrink"] == pytest.approx(d.mean())
    assert obs["barfi_minus_shrink_ci95"] == pytest.approx(stats.t.ppf(0.975, 9) * d.std(ddof=1) / np.sqrt(10))
    assert obs["barfi_minus_shrink_sd"] == pytest.approx(d.std(ddof=1)) and obs["n_seeds"] == 10
    assert 0 < obs["barfi_minus_shrink_mde80"] < 0.2 and obs["barfi_minus_shrink_power"] > 0.99


def test_parl_claim_is_a_paired_difference():
    """A-PARL faster on the means but the paired CI spans 0 → FAIL (v1 passed on "mean A < mean P")."""
    rows = _rows(TRAPPED, HELPS, aparl=390.0, pebble=400.0)
    c = _verdicts(rows)["3"]
    assert c.observed["aparl_episodes"] < c.observed["pebble_episodes"] or c.verdict == "FAIL"
    assert c.observed["aparl_minus_pebble_low"] < 0 < c.observed["aparl_minus_pebble_high"]
    assert c.verdict == "FAIL"
    assert c.observed["aparl_minus_pebble_design_effect"] == pytest.approx(0.63 * c.observed["pebble_episodes"])


# ----------------------------------------------------------------------------- CLI


def test_cli_rejects_bad_config(run_cli):
    proc = run_cli("reprozoo.papers.bar_parl", "--preset", "smoke", "--queries", "100", expect_rc=2)
    assert "--queries" in proc.stderr


def test_cli_smoke(run_cli, tmp_path):
    out = tmp_path / "smoke"
    proc = run_cli("reprozoo.papers.bar_parl", "--preset", "smoke", "--out", str(out))
    assert "claims" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["paper"] == "bar_parl" and summary["preset"] == "smoke"
    kinds = {c["id"]: c["kind"] for c in summary["claims"]}
    assert kinds == {
        "1-gridworld-premise": "premise",
        "1-gridworld-control": "control",
        "1-gridworld": "claim",
        "1-gridworld-hypergradient": "claim",
        "2-gridworld-premise": "premise",
        "2-gridworld": "claim",
        "3": "claim",
        "3-coarse": "claim",
    }
    assert all(c["verdict"] in ("PASS", "FAIL", "UNTESTED") for c in summary["claims"])
    for name in ("records.jsonl", "table.md", "figure.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.slow
def test_quick_claims(run_cli, tmp_path):
    """The quick preset reproduces the committed verdicts (results/bar_parl/quick/summary.json): the claims that
    PASS there still pass, those that FAIL still fail and the UNTESTED stay untested (a FAIL is a finding, see the
    README)."""
    committed = ROOT / "results" / "bar_parl" / "quick" / "summary.json"
    out = tmp_path / "quick"
    run_cli("reprozoo.papers.bar_parl", "--preset", "quick", "--out", str(out), timeout=1800)
    claims = {c["id"]: c for c in json.loads((out / "summary.json").read_text())["claims"]}
    want = {c["id"]: c["verdict"] for c in json.loads(committed.read_text())["claims"]}
    assert set(claims) == set(want)
    changed = {cid: claims[cid]["observed"] for cid in claims if claims[cid]["verdict"] != want[cid]}
    assert not changed, changed
