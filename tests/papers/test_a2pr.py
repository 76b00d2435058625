"""A2PR: loss pieces vs hand-computed values and finite differences, baselines' formulas, data, CLI smoke."""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from reprozoo.common.config import ConfigError
from reprozoo.common.results import resolve_verdicts
from reprozoo.common.stats import min_detectable_effect
from reprozoo.papers.a2pr import baselines, claims, data, experiment, method, training


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
    np.testing.assert_allclose(training.lambda_change(lam), [0.5, 0.02])


def _row(method, seed, value, dataset, env="pendulum", metric="score_final"):
    return {"method": method, "seed": seed, "metric": metric, "value": value, "env": env, "dataset": dataset}


def _world_rows(n_seeds=10, a2pr_mixed=60.0, a2pr_medium=80.0, bc_mixed=10.0, half_medium=50.0):
    """Synthetic records of one env ("pendulum"): mixed-5 / mixed-10 / medium for the four methods, the mask-0.5
    sensitivity run on medium, the VAE probe and the convergence flags; ±0.5 seed noise on A2PR."""
    rows = []
    for seed in range(n_seeds):
        eps = 0.5 * (-1) ** seed + 0.1 * seed
        for d in ("mixed-5", "mixed-10"):
            for m, v in (("A2PR", a2pr_mixed), ("TD3+BC", 40.0), ("IQL", 70.0), ("BC", bc_mixed)):
                rows.append(_row(m, seed, v + eps * (m == "A2PR"), d))
        for m, v in (("A2PR", a2pr_medium), ("TD3+BC", 79.0), ("IQL", 81.0), ("BC", 80.0)):
            rows.append(_row(m, seed, v + eps * (m == "A2PR"), "medium"))
        rows.append(_row(claims.MASK_SENSITIVITY, seed, half_medium + eps, "medium"))
        for m in ("A2PR", "TD3+BC", "IQL"):
            rows.append(_row(m, seed, 1.0, "medium", metric="converged"))
        for metric, val in (("vae_err_pos", 0.1 + 0.01 * seed), ("vae_err_neg", 0.3)):
            rows.append(_row("A2PR", seed, val, "mixed-5", metric=metric))
    return rows


def _verdicts(rows):
    return {c.id: c for c in resolve_verdicts(claims.check(rows, None))}


def test_claims_v2_kinds_requires_and_verdicts():
    out = _verdicts(_world_rows())
    kinds = {i: c.kind for i, c in out.items()}
    assert kinds == {
        "convergence-gate": "premise",
        "bc-overconstrains-pendulum": "premise",
        "medium-bc-adequate-pendulum": "premise",
        "avg-score": "claim",
        "mixed-margin-pendulum": "claim",
        "vae-advantage": "claim",
        "medium-no-margin-pendulum": "control",
        "mask-halved-medium-pendulum": "control",
    }
    assert out["mixed-margin-pendulum"].requires == ("convergence-gate", "bc-overconstrains-pendulum")
    assert out["medium-no-margin-pendulum"].requires == ("convergence-gate", "medium-bc-adequate-pendulum")
    assert all("convergence-gate" in c.requires for c in out.values() if c.kind != "premise")
    assert {i: c.verdict for i, c in out.items()} == dict.fromkeys(out, "PASS")
    margin = out["mixed-margin-pendulum"].observed
    assert margin["testable"] == 2 and margin["diff"] == pytest.approx(
        20.0 + np.mean([0.5 * (-1) ** s + 0.1 * s for s in range(10)])
    )
    assert margin["n_seeds"] == 10 and margin["effect"] == claims.MIXED_MARGIN == 10.0
    assert 0 < margin["mde"] < 10 and margin["power"] > 0.99


def test_paired_ci_is_the_t_interval_of_per_seed_differences():
    rows = _world_rows()
    # A2PR − TD3+BC per seed = mean over the 3 cells of (A2PR − TD3+BC)
    d = np.array([np.mean([20.0, 20.0, 1.0]) + 0.5 * (-1) ** s + 0.1 * s for s in range(10)])
    half = stats.t.ppf(0.975, 9) * d.std(ddof=1) / np.sqrt(10)
    obs = _verdicts(rows)["avg-score"].observed
    assert obs["diff"] == pytest.approx(d.mean()) and obs["diff_ci95"] == pytest.approx(half)
    assert obs["diff_sd"] == pytest.approx(d.std(ddof=1)) and obs["diff_low"] == pytest.approx(d.mean() - half)
    assert obs["mde"] == pytest.approx(min_detectable_effect(d.std(ddof=1), 10, alpha=claims.PREREGISTERED_ALPHA))


def test_premise_fail_makes_the_claim_untested_not_failed():
    # BC as good as IQL on every mixed set: the env cannot test claim 2, whatever A2PR does
    out = _verdicts(_world_rows(bc_mixed=80.0, a2pr_mixed=0.0))
    assert out["bc-overconstrains-pendulum"].verdict == "FAIL"
    assert out["mixed-margin-pendulum"].verdict == "UNTESTED" and not out["mixed-margin-pendulum"].passed
    assert out["mixed-margin-pendulum"].observed["testable"] == 0
    assert out["avg-score"].verdict == "FAIL"  # A2PR now loses on average: decided, not untested
    # the convergence gate fails (2 of 10 seeds not converged → 80% < 90%): every claim and control is UNTESTED
    out = _verdicts(_unconverged())
    assert out["convergence-gate"].verdict == "FAIL"
    assert all(c.verdict == "UNTESTED" for c in out.values() if c.kind != "premise")


def _unconverged():
    rows = _world_rows()
    for r in rows:
        if r["metric"] == "converged" and r["seed"] < 2:
            r["value"] = 0.0
    return rows


def test_margin_needs_ten_points_and_a_ci_above_zero():
    out = _verdicts(_world_rows(a2pr_mixed=45.0))  # +5 with a CI above 0: not a clear margin
    assert out["mixed-margin-pendulum"].verdict == "FAIL" and out["mixed-margin-pendulum"].observed["diff_low"] > 0


def test_controls_pass_when_they_behave_as_predicted():
    # A2PR far ahead on medium, where BC is adequate: the margin is not specific to the premise → control FAILs
    out = _verdicts(_world_rows(a2pr_medium=110.0))
    assert out["medium-bc-adequate-pendulum"].verdict == "PASS"
    assert out["medium-no-margin-pendulum"].verdict == "FAIL"
    # the v1 mask 0.5 no worse than the official 1.0: the collapse diagnosis is not confirmed → control FAILs
    out = _verdicts(_world_rows(half_medium=80.0))
    assert out["mask-halved-medium-pendulum"].verdict == "FAIL"
    # BC far below IQL on medium: the control's premise is off, so the control is UNTESTED
    rows = [{**r, "value": 40.0} if r["method"] == "BC" and r["dataset"] == "medium" else r for r in _world_rows()]
    out = _verdicts(rows)
    assert out["medium-bc-adequate-pendulum"].verdict == "FAIL"
    assert out["medium-no-margin-pendulum"].verdict == "UNTESTED"


def test_vae_advantage_and_mask_control_only_where_measured():
    rows = [{**r, "value": 0.05} if r["metric"] == "vae_err_neg" else r for r in _world_rows()]
    assert _verdicts(rows)["vae-advantage"].verdict == "FAIL"
    other = [{**r, "env": "invpendulum"} for r in _world_rows()]  # the mask control is pre-registered on pendulum
    assert "mask-halved-medium-invpendulum" not in _verdicts(other)
    assert "medium-no-margin-invpendulum" in _verdicts(other)


def test_config_masks_per_dataset_and_sensitivity_runs():
    cfg = replace(
        experiment.PRESETS["quick"], dataset_masks=("medium=1.0",), mask_sensitivity=("medium=0.5", "mixed-5=1.0")
    )
    cfg.validate()
    assert cfg.mask_of("medium") == 1.0 and cfg.mask_of("random") == cfg.mask == 0.5
    runs = cfg.a2pr_runs()
    assert runs[0] == ("A2PR", 0.5, ("random", "mixed-1", "mixed-5", "mixed-10"))
    assert runs[1] == ("A2PR", 1.0, ("medium",))
    assert runs[2:] == [("A2PR mask=0.5", 0.5, ("medium",)), ("A2PR mask=1", 1.0, ("mixed-5",))]
    assert experiment.PRESETS["quick"].mask_of("medium") == 1.0  # the official README's medium value
    with pytest.raises(ConfigError, match="dataset-masks"):
        replace(cfg, dataset_masks=("expert=1.0",)).validate()  # not a dataset of the quick run
    with pytest.raises(ConfigError, match="mask-sensitivity"):
        replace(cfg, mask_sensitivity=("medium=x",)).validate()


def test_diagnose_variants_switch_one_piece_of_the_bc_term():
    from reprozoo.papers.a2pr import diagnose

    recon_pi, a = jnp.array([[0.3], [0.4]]), jnp.array([[-0.1], [-0.2]])
    v, q_recon, q_data = jnp.zeros(2), jnp.array([1.0, -1.0]), jnp.array([0.0, -0.5])  # gate = [1, 0]
    target, w = diagnose._official(recon_pi, a, q_recon, q_data, v, 1.0)
    np.testing.assert_allclose(target[:, 0], [0.3, -0.2])
    np.testing.assert_allclose(w, [1.0, 0.0])
    t, w = diagnose._no_gate(recon_pi, a, q_recon, q_data, v, 1.0)
    np.testing.assert_allclose(t[:, 0], [0.3, -0.2])
    np.testing.assert_allclose(w, [1.0, 1.0])
    t, w = diagnose._data_target(recon_pi, a, q_recon, q_data, v, 1.0)
    np.testing.assert_allclose(t, a)
    np.testing.assert_allclose(w, [1.0, 0.0])
    t, w = diagnose._td3bc_inside(recon_pi, a, q_recon, q_data, v, 1.0)
    np.testing.assert_allclose(t, a)
    np.testing.assert_allclose(w, [1.0, 1.0])


# ----------------------------------------------------------------------------- CLI


def test_cli_rejects_unknown_env(run_cli):
    proc = run_cli("reprozoo.papers.a2pr", "--preset", "smoke", "--envs", "nope", expect_rc=2)
    assert "--envs" in proc.stderr


QUICK_CLAIMS = (
    "convergence-gate",
    "bc-overconstrains-pendulum",
    "bc-overconstrains-invpendulum",
    "avg-score",
    "mixed-margin-pendulum",
    "mixed-margin-invpendulum",
    "vae-advantage",
    "medium-bc-adequate-pendulum",
    "medium-bc-adequate-invpendulum",
    "medium-no-margin-pendulum",
    "medium-no-margin-invpendulum",
    "mask-halved-medium-pendulum",
)
KNOWN_FAILS = {  # v2 quick run (seeds 0-9): the only non-PASS verdict
    "mixed-margin-invpendulum": "premise met (IQL − BC CI > 0 on all 3 mixed sets), yet A2PR − TD3+BC = −10.6 ± 5.5",
}


@pytest.mark.slow
@pytest.mark.parametrize("claim", QUICK_CLAIMS)
def test_quick_claims(check_quick_claim, claim):
    check_quick_claim("a2pr", claim, KNOWN_FAILS, timeout=3600)
