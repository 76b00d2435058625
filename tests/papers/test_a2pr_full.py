"""a2pr's `full` preset on real-format offline datasets: a small Minari dataset with Hopper-v5's spaces (made here,
MINARI_DATASETS_PATH in tmp_path) and a D4RL-layout hdf5 file, run through the CLI with --max-steps."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from reprozoo.papers.a2pr import tasks


def _hopper_episodes(n: int, seed: int = 0):
    """n Hopper-v5 episodes under uniform random actions (the layout of a real Minari dataset)."""
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    env, rng, out = gym.make("Hopper-v5"), np.random.default_rng(seed), []
    for i in range(n):
        obs, acts, rews, terms, truncs = [env.reset(seed=seed + i)[0]], [], [], [], []
        for t in range(200):
            a = rng.uniform(-1, 1, 3).astype(np.float32)
            o, r, term, trunc, _ = env.step(a)
            obs.append(o), acts.append(a), rews.append(r), terms.append(term), truncs.append(trunc or t == 199)
            if term:
                break
        out.append(
            EpisodeBuffer(
                id=i,
                observations=np.stack(obs),
                actions=np.stack(acts),
                rewards=np.array(rews),
                terminations=np.array(terms),
                truncations=np.array(truncs) & ~np.array(terms),
                infos={},
            )
        )
    return out


@pytest.fixture
def minari_hopper(tmp_path, monkeypatch):
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers("mujoco/hopper/medium-v0", _hopper_episodes(6), env="Hopper-v5")
    return "mujoco/hopper/medium-v0"


def test_entries_tasks_and_official_settings():
    assert tasks.parse_entry("mujoco/hopper/medium-v0")[0] == "hopper-medium"
    assert tasks.parse_entry("/d/halfcheetah_medium_replay-v2.hdf5")[0] == "halfcheetah-medium-replay"
    assert tasks.parse_entry("walker2d-expert=/x/y") == ("walker2d-expert", "/x/y")
    with pytest.raises(tasks.TaskError):
        tasks.parse_entry("ant-medium=/x")
    with pytest.raises(tasks.TaskError):
        tasks.parse_entry("mujoco/ant/medium-v0")
    assert len(tasks.PAPER_TASKS) == 15
    # official lines: medium tasks of halfcheetah and walker2d at mask 1.0, hopper-medium 0.4 with γ 0.995
    assert tasks.hyper("halfcheetah-medium") == tasks.Hyper(40.0, 1.0, 1.0, 0.99, "README.md")
    assert tasks.hyper("walker2d-medium").mask == 1.0 and tasks.hyper("walker2d-medium").vae_weight == 1.5
    assert (tasks.hyper("hopper-medium").mask, tasks.hyper("hopper-medium").gamma) == (0.4, 0.995)
    assert tasks.hyper("halfcheetah-random").alpha == 40.0 and tasks.hyper("hopper-expert").mask == 0.5


def test_d4rl_hdf5_as_qlearning_dataset(tmp_path):
    import h5py

    n = 7
    obs = np.arange(n * 11, dtype=np.float32).reshape(n, 11)
    path = tmp_path / "hopper_medium-v2.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"] = obs, np.zeros((n, 3), np.float32)
        f["rewards"] = np.arange(n, dtype=np.float32)
        f["terminals"] = np.array([0, 0, 1, 0, 0, 0, 0], bool)
        f["timeouts"] = np.array([0, 0, 0, 0, 1, 0, 0], bool)
    d, eval_id = tasks.load("hopper-medium", str(path))
    # qlearning_dataset: i < N - 1, time-out steps dropped (i = 4), next = i + 1, done = terminals
    assert d["rew"].tolist() == [0, 1, 2, 3, 5]
    assert np.array_equal(d["next_obs"], obs[[1, 2, 3, 4, 6]])
    assert d["done"].tolist() == [0, 0, 1, 0, 0] and d["end"].tolist() == [0, 0, 1, 1, 1]
    assert eval_id == "Hopper-v4"
    with pytest.raises(tasks.TaskError, match="no such D4RL file"):
        tasks.load("hopper-medium", str(tmp_path / "missing.hdf5"))


def _main(argv: list[str], tmp_path) -> int:
    """a2pr's CLI in this process (committed references looked up under tmp_path, so none is found)."""
    from reprozoo.common.cli import main
    from reprozoo.papers.a2pr.claims import check
    from reprozoo.papers.a2pr.experiment import PRESETS, Config, run
    from reprozoo.papers.a2pr.report import figure

    return main(
        argv=argv,
        paper="a2pr",
        config_cls=Config,
        presets=PRESETS,
        run=run,
        claims=check,
        figure=figure,
        results=tmp_path / "results",
    )


def test_full_preset_on_a_minari_dataset(minari_hopper, tmp_path, capsys):
    """The full preset (256-wide nets, 750-wide VAE, batch 256, official hopper-medium settings) trains and
    evaluates on the Minari dataset; the capped run writes its files with every claim UNTESTED."""
    out = tmp_path / "run"
    argv = ["--preset", "full", "--dataset", minari_hopper, "--methods", "A2PR", "TD3+BC", "--seeds", "2"]
    argv += ["--max-steps", "10", "--max-samples", "2", "--bootstrap-reps", "20", "--out", str(out)]
    assert _main(argv, tmp_path) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {c["verdict"] for c in summary["claims"]} == {"UNTESTED"}
    ids = {c["id"] for c in summary["claims"]}
    assert {"convergence-gate", "avg-score", "vae-advantage"} <= ids
    assert not [i for i in ids if "mixed" in i or "overconstrains" in i]  # no mixed sets in the D4RL task list
    assert summary["config"]["max_steps"] == 10
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    scores = [r for r in rows if r["metric"] == "score"]
    assert {r["step"] for r in scores} == {2, 4, 6, 8, 10}  # 5 evaluations over the capped 10 steps
    assert {(r["method"], r["env"], r["dataset"]) for r in scores} == {
        ("A2PR", "hopper", "medium"),
        ("TD3+BC", "hopper", "medium"),
    }
    assert all(np.isfinite(r["value"]) for r in scores)
    # the score is D4RL's normalisation of the evaluation returns (Hopper reference returns)
    lo, hi = tasks.REF_SCORES["hopper"]
    assert all(-10 < r["value"] < 100 for r in scores) and (lo, hi) == (-20.272305, 3234.3)
    assert [r for r in rows if r["metric"] == "iqm" and r["method"] == "A2PR"]
    assert "Hopper-v5" in capsys.readouterr().out  # evaluated on the env the Minari dataset names
    for f in ("records.jsonl", "summary.json", "table.md", "figure.png"):
        assert (out / f).is_file()


def test_bad_dataset_is_a_clear_error(minari_hopper, tmp_path, capsys):
    argv = ["--preset", "full", "--dataset", "walker2d-medium=" + minari_hopper, "--max-steps", "5"]
    assert _main([*argv, "--out", str(tmp_path / "o")], tmp_path) == 2
    assert "(obs, act) dims (11, 3)" in capsys.readouterr().err
