"""bar_parl's MountainCar (the paper's barfi-mc setting): gymnasium MountainCar-v0 parity, the official heuristics,
tile features, and the full preset through the CLI with --max-steps."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reprozoo.papers.bar_parl.envs import MountainCar


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


@pytest.mark.slow  # ≈ 95 s wall on 2 shared cores (XLA compiles of every program)
def test_full_preset_runs_mountaincar_capped(tmp_path):
    from reprozoo.common.cli import main
    from reprozoo.papers.bar_parl import claims, experiment

    out = tmp_path / "run"
    argv = ["--preset", "full", "--envs", "gridworld", "mountaincar", "--seeds", "2", "--max-steps", "2"]
    argv += ["--mc-horizon", "40", "--mc-replay-buffer", "8", "--replay-buffer", "8", "--hess-mul", "1"]
    argv += ["--parl-reward-models", "tabular", "--out", str(out)]
    kw = dict(paper="bar_parl", config_cls=experiment.Config, presets=experiment.PRESETS, run=experiment.run)
    assert main(argv=argv, claims=claims.check, results=tmp_path / "results", **kw) == 0
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    mc = [r for r in rows if r.get("env") == "mountaincar" and r["metric"] == "return"]
    assert {r["heuristic"] for r in mc} == {"none", "good", "bad"} and {r["step"] for r in mc} == {0, 1}
    assert {r["method"] for r in mc} >= {"barfi", "rp", "naive"}
    assert all(0.0 <= r["value"] <= 1.0 for r in mc)  # sparse r_p: at most one goal per episode
    summary = json.loads((out / "summary.json").read_text())
    assert any(c["id"].startswith("1-mountaincar") for c in summary["claims"])
    assert {c["verdict"] for c in summary["claims"]} == {"UNTESTED"}
