"""A2PR: loss pieces vs hand-computed values and finite differences, baselines' formulas, data, CLI smoke."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reprozoo.papers.a2pr import baselines, data, experiment, method
from reprozoo.papers.a2pr.claims import MIXED_MARGIN, check


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def finite_diff(f, x, eps=1e-6):
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (float(f(jnp.asarray(x + e))) - float(f(jnp.asarray(x - e)))) / (2 * eps)
    return g


# ----------------------------------------------------------------------------- A2PR pieces


@pytest.mark.points(1)
def test_lambda_scale_value_and_no_gradient(x64):
    q = jnp.array([-2.0, 4.0, 1.0, -1.0])
    assert float(method.lambda_scale(2.5, q)) == pytest.approx(2.5 / 2.0)
    g = jax.grad(lambda q: method.lambda_scale(2.5, q) * q.sum())(q)  # λ is a constant: d/dq = λ
    np.testing.assert_allclose(g, np.full(4, 1.25))


@pytest.mark.points(2)
def test_advantage_guided_target_and_mask_weights():
    recon_pi = jnp.array([[0.1], [0.2], [0.3], [0.4], [0.5]])
    a = jnp.array([[-0.1], [-0.2], [-0.3], [-0.4], [-0.5]])
    v = jnp.array([1.0, 1.0, 1.0, 1.0, 1.0])
    q_recon = jnp.array([2.0, 0.0, 1.0, 3.0, 0.5])  # A_π = 1, -1, 0, 2, -0.5
    q_data = jnp.array([1.5, 0.5, 1.0, 3.0, 2.0])  # A_a = .5, -.5, 0, 2, 1
    target, w = method.advantage_guided_target(recon_pi, a, q_recon, q_data, v, mask=0.4)
    # a* = ã where A_π >= A_a (ties go to ã, as `>=` in the official code)
    np.testing.assert_allclose(target[:, 0], [0.1, -0.2, 0.3, 0.4, -0.5])
    # w = mask · (1[Q(s, ã) >= V] ∨ 1[Q(s, a) > V]): the official bool + bool is a logical OR, never 2·mask
    np.testing.assert_allclose(w, 0.4 * np.array([1, 0, 1, 1, 1]), rtol=1e-6)


@pytest.mark.points(1)
def test_bc_weight_matches_torch_bool_addition():
    """The official `self.mask * (adv_pi + adv_action)` on bool tensors, as torch evaluates it (hand-written
    from torch 2.13: tensor([T, T, T, F]) + ... gives dtype bool, weights [0.5, 0.5, 0.5, 0.0])."""
    v = jnp.zeros(4)
    q_recon = jnp.array([1.0, 1.0, -1.0, -1.0])  # adv_pi = [T, T, F, F]
    q_data = jnp.array([1.0, -1.0, 1.0, -1.0])  # adv_action = [T, F, T, F]
    _, w = method.advantage_guided_target(jnp.zeros((4, 1)), jnp.zeros((4, 1)), q_recon, q_data, v, mask=0.5)
    np.testing.assert_array_equal(np.asarray(w), [0.5, 0.5, 0.5, 0.0])


@pytest.mark.points(2)
def test_actor_objective_value_and_gradient(x64):
    rng = np.random.default_rng(0)
    pi, target = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    q, w = rng.normal(size=4), np.array([0.0, 0.5, 1.0, 0.5])
    lam = 0.7
    hand = -lam * q.mean() + np.mean(w[:, None] * (pi - target) ** 2)
    assert float(method.actor_objective(q, pi, target, w, lam)) == pytest.approx(hand, rel=1e-12)
    f = lambda p: method.actor_objective(jnp.asarray(q), p, jnp.asarray(target), jnp.asarray(w), lam)  # noqa: E731
    np.testing.assert_allclose(jax.grad(f)(jnp.asarray(pi)), finite_diff(f, pi), rtol=1e-6, atol=1e-9)
    # the hand gradient: d/dπ = 2 w (π − a*) / (B |A|)
    np.testing.assert_allclose(jax.grad(f)(jnp.asarray(pi)), 2 * w[:, None] * (pi - target) / 8, rtol=1e-10)


@pytest.mark.points(2)
def test_vae_loss_terms_hand_values_and_gradient(x64):
    recon = jnp.array([[0.5, 0.0], [0.2, 0.2]])
    a = jnp.array([[0.0, 0.0], [0.0, 1.0]])
    mean = jnp.array([[0.0, 1.0], [0.5, 0.0]])
    std = jnp.array([[1.0, 1.0], [2.0, 0.5]])
    q, v = jnp.array([2.0, 0.0]), jnp.array([1.0, 1.0])  # only the first action has positive advantage
    rec, kl = method.vae_loss_terms(recon, a, mean, std, q, v, vae_weight=1.5)
    assert float(rec) == pytest.approx(1.5 * (0.25 + 0.0) / 4)
    kl_hand = -0.5 * np.mean([1 + 0 - 0 - 1, 1 + 0 - 1 - 1, 1 + np.log(4) - 0.25 - 4, 1 + np.log(0.25) - 0 - 0.25])
    assert float(kl) == pytest.approx(kl_hand)
    f = lambda r: method.vae_loss_terms(r, a, mean, std, q, v, 1.5)[0]  # noqa: E731
    np.testing.assert_allclose(jax.grad(f)(recon), finite_diff(f, recon), atol=1e-8)
    g = lambda s: method.vae_loss_terms(recon, a, mean, s, q, v, 1.5)[1]  # noqa: E731
    np.testing.assert_allclose(jax.grad(g)(std), finite_diff(g, std), rtol=1e-6)


@pytest.mark.points(1)
def test_value_target_is_min_of_targets():
    y = jnp.array([1.0, 5.0])
    out = method.value_target(
        y, r=jnp.array([1.0, 1.0]), done=jnp.array([0.0, 1.0]), q_next=jnp.array([3.0, 9.0]), gamma=0.5
    )
    np.testing.assert_allclose(out, [min(1.0, 1 + 1.5), min(5.0, 1.0)])


@pytest.mark.points(2)
def test_a2pr_update_delays_actor_and_moves_critic():
    hp = method.A2PRConfig(hidden=8, vae_hidden=8)
    nets = method.make_nets(hp, 2)
    state = method.init(hp, nets, jax.random.key(0), 3, 2)
    k = jax.random.split(jax.random.key(1), 5)
    batch = (
        jax.random.normal(k[0], (16, 3)),
        jnp.tanh(jax.random.normal(k[1], (16, 2))),
        jax.random.normal(k[2], (16,)),
        jax.random.normal(k[3], (16, 3)),
        jnp.zeros(16),
    )
    upd = jax.jit(lambda s, key: method.update(hp, nets, s, batch, key))
    s1, m1 = upd(state, k[4])
    same = jax.tree.map(lambda x, y: bool(jnp.all(x == y)), s1["actor"], state["actor"])
    assert all(jax.tree.leaves(same)), "the actor must not move on the first (critic-only) step"
    assert not all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), s1["critic"], state["critic"])))
    s2, m2 = upd(s1, k[0])
    moved = jax.tree.map(lambda x, y: bool(jnp.all(x == y)), s2["actor"], s1["actor"])
    assert not all(jax.tree.leaves(moved)), "the actor moves every policy_freq = 2 steps"
    assert all(np.isfinite(float(v)) for v in {**m1, **m2}.values())


# ----------------------------------------------------------------------------- baselines and data


def test_td3_bc_actor_objective_formula(x64):
    q = jnp.array([1.0, -3.0])
    pi, a = jnp.array([[0.5], [0.0]]), jnp.array([[0.0], [1.0]])
    hand = -(2.5 / 2.0) * (-1.0) + (0.25 + 1.0) / 2
    assert float(baselines.td3_bc_actor_objective(q, pi, a, 2.5)) == pytest.approx(hand)


def test_iql_expectile_loss_formula(x64):
    u = jnp.array([2.0, -1.0, 0.5])
    hand = np.mean([0.7 * 4.0, 0.3 * 1.0, 0.7 * 0.25])
    assert float(baselines.expectile_loss(u, 0.7)) == pytest.approx(hand)
    f = lambda u: baselines.expectile_loss(u, 0.7)  # noqa: E731
    np.testing.assert_allclose(jax.grad(f)(u), finite_diff(f, u), rtol=1e-6)


def test_awr_weights_are_clipped_and_constant(x64):
    pi, a = jnp.array([[1.0], [0.0]]), jnp.array([[0.0], [0.0]])
    adv = jnp.array([10.0, 0.0])  # exp(3 · 10) is clipped to 100
    assert float(baselines.awr_actor_objective(pi, a, adv, 3.0, 100.0)) == pytest.approx(100.0 / 2)
    assert float(jax.grad(lambda d: baselines.awr_actor_objective(pi, a, d, 3.0, 100.0).sum())(adv).sum()) == 0.0


def test_normalized_score_formula():
    assert data.normalized_score(-150.0, -1200.0, -150.0) == pytest.approx(100.0)
    assert data.normalized_score(-1200.0, -1200.0, -150.0) == pytest.approx(0.0)
    assert data.normalized_score(55.0, 10.0, 100.0) == pytest.approx(50.0)


def test_mujoco_rollout_masks_terminated_steps():
    spec = data.ENVS["invpendulum"]
    ep = data.episodes(spec, data.uniform_policy, jnp.zeros(spec.act_dim), 3, jax.random.key(0), seed=1)
    lengths = ep["valid"].sum(1)
    assert np.all(lengths >= 1) and np.all(lengths < spec.horizon)  # random actions drop the pole quickly
    for i, n in enumerate(lengths.astype(int)):
        assert ep["done"][i, n - 1] == 1 and ep["done"][i, : n - 1].sum() == 0 and ep["valid"][i, n:].sum() == 0


def _episodes(lengths, obs0=0.0, terminal=False):
    """Flat transitions of episodes with the given lengths; obs = obs0 + episode index + t / 100 (s′_t = s_t+1)."""
    parts = []
    for i, n in enumerate(lengths):
        end = np.zeros(n, np.float32)
        end[-1] = 1
        parts.append(
            {
                "obs": np.repeat(obs0 + i + np.arange(n, dtype=np.float32)[:, None] / 100, 2, 1),
                "act": np.zeros((n, 1), np.float32),
                "rew": np.arange(n, dtype=np.float32),
                "next_obs": np.repeat(obs0 + i + np.arange(1, n + 1, dtype=np.float32)[:, None] / 100, 2, 1),
                "done": end.copy() if terminal else np.zeros(n, np.float32),
                "end": end,
            }
        )
    return {k: np.concatenate([p[k] for p in parts]) for k in data.FIELDS}


def test_flat_marks_episode_ends_and_mix_is_trajectory_level():
    ep = {k: np.zeros((2, 4, 1), np.float32) for k in ("obs", "act", "next_obs")}
    ep |= {"rew": np.zeros((2, 4)), "done": np.zeros((2, 4)), "valid": np.array([[1, 1, 0, 0], [1, 1, 1, 1.0]])}
    np.testing.assert_array_equal(data._flat(ep)["end"], [0, 1, 0, 0, 0, 1])
    random, expert = _episodes([5] * 40, obs0=0.0, terminal=True), _episodes([20] * 10, obs0=100.0)
    # N = 100 / (0.1·20 + 0.9·5) = 15.4 episodes -> n_e = round(1.54) = 2 whole expert episodes, then random ones
    mixed = data.mix_episodes(random, expert, 0.1, 100)
    assert len(mixed["rew"]) == 100
    bounds = data.episode_bounds(mixed)
    first = [mixed["obs"][a, 0] for a, _ in bounds]
    assert first[:2] == [100.0, 101.0] and all(x < 100 for x in first[2:])
    assert [b - a for a, b in bounds] == [20, 20] + [5] * 12
    assert data.episode_bounds(data.mix_episodes(random, expert, 0.001, 100))[0] == (0, 20)  # at least one expert


def test_minari_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROZOO_CACHE", str(tmp_path))
    d = _episodes([3, 1, 4], terminal=True)
    d["done"][3] = 0.0  # the 1-step episode is a time-out, not a terminal
    spec = data.ENVS["invpendulum"]
    d = {**d, "obs": np.repeat(d["obs"], 2, 1), "next_obs": np.repeat(d["next_obs"], 2, 1)}  # obs_dim 4
    data._with_minari_root(lambda: data.to_minari(d, "a2pr/test-0/random-v0", spec, "test"))
    import minari

    back = data._with_minari_root(lambda: data.from_minari(minari.load_dataset("a2pr/test-0/random-v0")))
    assert (tmp_path / "a2pr" / "minari" / "a2pr" / "test-0" / "random-v0").is_dir()
    for k in data.FIELDS:
        np.testing.assert_array_equal(back[k], d[k], err_msg=k)


def test_lambda_change_over_last_fifth():
    lam = np.array([[4.0, 1.0], [3.0, 1.0], [2.0, 1.0], [1.0, 1.0], [0.5, 1.02]])  # 5 evaluations, 2 runs
    np.testing.assert_allclose(experiment.lambda_change(lam), [0.5, 0.02])


def _row(method, seed, value, dataset, env="e", metric="score_final"):
    return {"method": method, "seed": seed, "metric": metric, "value": value, "env": env, "dataset": dataset}


def test_claims_decide_on_the_numbers():
    rows = []
    for seed in range(10):
        eps = 0.5 * (-1) ** seed  # small seed noise
        for d in ("mixed-5", "mixed-10"):
            for m, v in (("A2PR", 60.0), ("TD3+BC", 40.0), ("IQL", 70.0), ("BC", 10.0)):
                rows.append(_row(m, seed, v + eps * (m == "A2PR"), d))
        rows.append(_row("A2PR", seed, 80.0, "expert"))
        rows.append(_row("TD3+BC", seed, 79.0, "expert"))
        for m in ("A2PR", "TD3+BC", "IQL"):
            rows.append(_row(m, seed, 1.0, "expert", metric="converged"))
        for metric, val in (("vae_err_pos", 0.1 + 0.01 * seed), ("vae_err_neg", 0.3)):
            rows.append(_row("A2PR", seed, val, "mixed-5", metric=metric))
    claims = {c.id: c for c in check(rows, None)}
    assert claims["avg-score"].passed and claims["vae-advantage"].passed and claims["convergence-gate"].passed
    margin = claims["mixed-margin-e"]
    assert margin.passed and margin.observed["testable"] == 2 and margin.observed["diff"] == pytest.approx(20.0)
    assert MIXED_MARGIN == 10.0
    # premise unmet (BC >= IQL on every mixed set): the env cannot test the claim, whatever A2PR does
    no_premise = [{**r, "value": 80.0} if r["method"] == "BC" else r for r in rows]
    margin = {c.id: c for c in check(no_premise, None)}["mixed-margin-e"]
    assert not margin.passed and margin.observed["testable"] == 0
    # a margin below 10 points fails even with a CI above 0
    small = [{**r, "value": 45.0} if r["method"] == "A2PR" and r["dataset"].startswith("mixed") else r for r in rows]
    assert not {c.id: c for c in check(small, None)}["mixed-margin-e"].passed
    for r in rows:
        if r["metric"] == "vae_err_neg":
            r["value"] = 0.05
        if r["metric"] == "converged" and r["seed"] < 2:
            r["value"] = 0.0
    claims = {c.id: c for c in check(rows, None)}
    assert not claims["vae-advantage"].passed and not claims["convergence-gate"].passed  # 80% < 90% converged


# ----------------------------------------------------------------------------- CLI


def test_cli_rejects_unknown_env(run_cli):
    proc = run_cli("reprozoo.papers.a2pr", "--preset", "smoke", "--envs", "nope", expect_rc=2)
    assert "--envs" in proc.stderr


QUICK_CLAIMS = (
    "avg-score",
    "mixed-margin-pendulum",
    "mixed-margin-invpendulum",
    "vae-advantage",
    "convergence-gate",
)
KNOWN_FAILS = {
    "mixed-margin-invpendulum": "premise met (BC < IQL) on every mixed set, yet A2PR − TD3+BC = −10.9 ± 5.6",
}


@pytest.mark.slow
@pytest.mark.parametrize("claim", QUICK_CLAIMS)
def test_quick_claims(check_quick_claim, claim):
    check_quick_claim("a2pr", claim, KNOWN_FAILS, timeout=3600)
