"""bar_parl's full-preset environments: MountainCar (barfi-mc: gymnasium MountainCar-v0 parity, the official
heuristics, tile features), the continuous maze (barfi-gw), and the full preset through the CLI with --max-steps."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reprozoo.papers.bar_parl.envs import ContinuousMaze, MountainCar


def test_dynamics_match_gymnasium_mountaincar():
    import gymnasium as gym

    env, mc = gym.make("MountainCar-v0").unwrapped, MountainCar()
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    s = jnp.asarray(env.state, jnp.float32)
    for _ in range(300):
        a = int(rng.integers(3))
        obs, _, term, _, _ = env.step(a)
        s = mc.dynamics(s, jnp.array(a))
        np.testing.assert_allclose(np.asarray(s), obs, atol=1e-5)
        if term:
            break


def test_rewards_heuristics_and_features():
    mc = MountainCar()
    state = {"s": jnp.array([-0.5, 0.01]), "done": jnp.array(False)}
    u = jnp.zeros(2)
    aux = {(h, a): float(mc.step(state, jnp.array(a), u, jnp.array(h))[2]) for h in (1, 2) for a in (0, 2)}
    # moving right: the bang heuristic rewards pushing right, penalises left; the one-sided (bad) one gives 0 there
    assert aux == {(1, 0): -1.0, (1, 2): 1.0, (2, 0): 0.0, (2, 2): 0.0}
    left = {"s": jnp.array([-0.5, -0.01]), "done": jnp.array(False)}
    assert float(mc.step(left, jnp.array(0), u, jnp.array(2))[2]) == 1.0
    assert float(mc.step(left, jnp.array(2), u, jnp.array(2))[2]) == -1.0
    goal = {"s": jnp.array([0.49, 0.05]), "done": jnp.array(False)}
    _, r_p, r_aux, done = mc.step(goal, jnp.array(2), u, jnp.array(1))
    assert (float(r_p), float(r_aux), bool(done)) == (1.0, 0.0, True)  # sparse goal reward, no aux at the end
    assert float(mc.step(state, jnp.array(2), u, jnp.array(0))[1]) == 0.0
    for x in (-1.2, -0.5, 0.6):
        for v in (-0.07, 0.0, 0.07):
            f = mc.features({"s": jnp.array([x, v]), "done": jnp.array(False)})
            assert f.shape == (125,) and float(f.sum()) == 5.0
            assert float(f @ mc.constant_weights()) == pytest.approx(1.0)
    starts = jax.vmap(mc.reset)(jax.random.split(jax.random.key(0), 64))["s"]
    assert (
        float(starts[:, 0].min()) >= -0.6 and float(starts[:, 0].max()) <= -0.4 and float(abs(starts[:, 1]).max()) == 0
    )


def test_continuous_maze_moves_rewards_and_features():
    mz, u = ContinuousMaze(), jnp.array([0.5, 0.0])  # u[0] >= slip: the chosen action is taken
    s0 = mz.reset(jax.random.key(0))
    s1, r_p, r_aux, done = mz.step(s0, jnp.array(1), u, jnp.array(0))  # right: 4 sub-steps of 0.045
    np.testing.assert_allclose(np.asarray(s1["pos"]), [0.125 + 4 * 0.045, 0.125], atol=1e-6)
    assert (float(r_p), float(r_aux), bool(done)) == pytest.approx((-0.1, 0.0, False))
    s2 = mz.step(s0, jnp.array(2), u, jnp.array(0))[0]  # down: the first sub-step would leave [0, 1]², so none
    np.testing.assert_allclose(np.asarray(s2["pos"]), [0.125, 0.125 - 2 * 0.045], atol=1e-6)
    slipped = mz.step(s0, jnp.array(1), jnp.array([0.05, 0.99]), jnp.array(0))[0]  # slip: random action 3 (left)
    np.testing.assert_allclose(np.asarray(slipped["pos"]), [0.125 - 2 * 0.045, 0.125], atol=1e-6)
    inside = {"pos": jnp.array([0.36, 0.5]), "done": jnp.array(False)}  # right: sub-steps at x = .405 … .54 in A1
    assert float(mz.step(inside, jnp.array(1), u, jnp.array(2))[2]) == pytest.approx(4 * 50.0)
    good = float(mz.step(inside, jnp.array(1), u, jnp.array(1))[2])
    xs = 0.36 + 0.045 * np.arange(1, 5)
    assert good == pytest.approx(-np.sum((xs - 0.87) ** 2 + (0.75 - 0.87) ** 2), rel=1e-5)  # official −dist
    near = {"pos": jnp.array([0.8, 0.7]), "done": jnp.array(False)}  # up: the second sub-step enters G1
    s3, r_p, r_aux, done = mz.step(near, jnp.array(0), u, jnp.array(2))
    assert bool(done) and float(r_p) == pytest.approx(99.9) and float(r_aux) == 0.0
    np.testing.assert_allclose(np.asarray(s3["pos"]), [0.8, 0.79], atol=1e-6)  # stops on entering the goal
    f = mz.features(s0)
    assert f.shape == (16,) and float(f @ mz.constant_weights()) == 1.0
    assert float(f[5]) == pytest.approx(np.cos(np.pi * (0.125 + 0.125)))  # c = (1, 1)


@pytest.mark.slow  # 23 s CPU with a warm XLA cache, ≈ 95 s wall cold on 2 loaded cores (compiles of every program)
def test_full_preset_runs_mountaincar_capped(tmp_path):
    from reprozoo.common.cli import main
    from reprozoo.papers.bar_parl import claims, experiment, report

    out = tmp_path / "run"
    argv = ["--preset", "full", "--envs", "gridworld", "mountaincar", "maze", "--seeds", "2", "--max-steps", "2"]
    argv += ["--mc-horizon", "40", "--mc-replay-buffer", "8", "--replay-buffer", "8", "--hess-mul", "1"]
    argv += ["--parl-reward-models", "tabular", "--out", str(out)]
    kw = dict(paper="bar_parl", config_cls=experiment.Config, presets=experiment.PRESETS, run=experiment.run)
    kw["figure"] = report.figure
    assert main(argv=argv, claims=claims.check, results=tmp_path / "results", **kw) == 0
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    mc = [r for r in rows if r.get("env") == "mountaincar" and r["metric"] == "return"]
    assert {r["heuristic"] for r in mc} == {"none", "good", "bad"} and {r["step"] for r in mc} == {0, 1}
    assert {r["method"] for r in mc} >= {"barfi", "rp", "naive"}
    assert all(0.0 <= r["value"] <= 1.0 for r in mc)  # sparse r_p: at most one goal per episode
    summary = json.loads((out / "summary.json").read_text())
    assert any(c["id"].startswith("1-mountaincar") for c in summary["claims"])
    assert any(c["id"].startswith("1-maze") for c in summary["claims"])
    assert {c["verdict"] for c in summary["claims"]} == {"UNTESTED"}
    assert (out / "figure.png").is_file()
