"""Resuming real papers: an interrupted smoke run, rerun with --resume, writes records byte-identical to an
uninterrupted run's; a training loop interrupted mid-unit continues from its last saved step with identical results."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import torch

from reprozoo.common import checkpoint
from reprozoo.common.checkpoint import Checkpoints
from reprozoo.common.cli import main

# every run split into checkpointed units (the papers' and the world demos'); traac runs in the fast tier
RESUMABLE = (
    "reprozoo.papers.a2pr",
    "reprozoo.papers.bang",
    "reprozoo.papers.bar_parl",
    "reprozoo.papers.ensembles",
    "reprozoo.papers.par",
    "reprozoo.papers.power_dl",
    "reprozoo.papers.rebalance",
    "reprozoo.papers.subgm",
    "reprozoo.common.worlds.preference",
    "reprozoo.common.worlds.reasoning",
)


def smoke(module: str, out, results, *extra: str) -> int:
    """One smoke run of `module` through the real CLI code, in this process (papers: without the figure)."""
    argv = ["--preset", "smoke", "--out", str(out), *extra]
    if module.startswith("reprozoo.common.worlds."):
        return importlib.import_module(f"{module}_demo").main(argv)
    experiment = importlib.import_module(f"{module}.experiment")
    claims = importlib.import_module(f"{module}.claims")
    return main(
        paper=module.removeprefix("papers."),
        config_cls=experiment.Config,
        presets=experiment.PRESETS,
        run=experiment.run,
        claims=claims.check,
        argv=argv,
        results=results,
    )


def interrupted_and_resumed(module: str, tmp_path, monkeypatch, *extra: str) -> None:
    assert smoke(module, tmp_path / "whole", tmp_path, *extra) == 0
    monkeypatch.setenv(checkpoint.STOP_ENV, "1")  # SIGTERM once the first unit is saved
    assert smoke(module, tmp_path / "cut", tmp_path, *extra) == 143
    assert (
        not (tmp_path / "cut/records.jsonl").exists()
        and len(list((tmp_path / "cut/checkpoints").glob("*.unit.pkl"))) == 1
    )
    monkeypatch.delenv(checkpoint.STOP_ENV)
    assert smoke(module, tmp_path / "cut", tmp_path, "--resume", *extra) == 0
    assert (tmp_path / "cut/records.jsonl").read_bytes() == (tmp_path / "whole/records.jsonl").read_bytes()
    assert not (tmp_path / "cut/checkpoints").exists()


def test_traac_smoke_interrupted_then_resumed_writes_identical_records(tmp_path, monkeypatch):
    interrupted_and_resumed("reprozoo.papers.traac", tmp_path, monkeypatch, "--checkpoint-every", "1")


@pytest.mark.slow
@pytest.mark.parametrize("module", RESUMABLE)
def test_smoke_interrupted_then_resumed_writes_identical_records(tmp_path, monkeypatch, module):
    interrupted_and_resumed(module, tmp_path, monkeypatch)


def test_traac_training_resumes_mid_unit_with_identical_policy_and_curves(tmp_path, monkeypatch):
    from reprozoo.common.worlds.reasoning import build_world, world_config
    from reprozoo.papers.traac import experiment, training
    from reprozoo.papers.traac.baselines import VARIANTS

    cfg = dataclasses.replace(experiment.PRESETS["smoke"], iterations=3)
    world = build_world(world_config(cfg.world))
    variant = VARIANTS["traac"]
    policy, curves = training.train(world, variant, cfg, 0, "traac")
    folder = tmp_path / "checkpoints"
    collect = training.collect

    def stop_at_step_2(world, policy, scorer, variant, cfg, seed, it):
        if it == 2:
            raise KeyboardInterrupt
        return collect(world, policy, scorer, variant, cfg, seed, it)

    monkeypatch.setattr(training, "collect", stop_at_step_2)
    with checkpoint.active(Checkpoints(folder, every=1)), pytest.raises(KeyboardInterrupt):
        training.train(world, variant, cfg, 0, "traac")
    monkeypatch.setattr(training, "collect", collect)
    steps = []
    monkeypatch.setattr(training, "collect", lambda *a: steps.append(a[-1]) or collect(*a))
    with checkpoint.active(Checkpoints(folder, resume=True, every=1)):
        resumed, resumed_curves = training.train(world, variant, cfg, 0, "traac")
    assert steps == [2]  # steps 0 and 1 came from the checkpoint
    assert resumed_curves == curves
    for a, b in zip(policy.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
