"""papers.power_dl, pre-registration v4: the small clean data set runs on its own seeds (fresh evaluation seeds past
the ones seen before its size was re-chosen), the rest of the preset on the preset's seeds."""

from __future__ import annotations

import dataclasses

import pytest

from reprozoo.common.config import parse
from reprozoo.papers.power_dl.claims import dpo_overoptimises, win_rate_claim, world_curves
from reprozoo.papers.power_dl.experiment import PRESETS, Config, world_rows


def test_small_seed_list_is_relative_to_first_seed():
    cfg = dataclasses.replace(PRESETS["smoke"], seeds=3, small_seeds=4, small_seed_offset=8)
    assert cfg.seed_list() == [0, 1, 2] and cfg.small_seed_list() == [8, 9, 10, 11]
    dev = dataclasses.replace(cfg, first_seed=1000)  # a development run stays on development seeds
    assert dev.small_seed_list() == [1008, 1009, 1010, 1011]
    assert dataclasses.replace(cfg, small_seeds=None, small_seed_offset=0).small_seed_list() == cfg.seed_list()
    for bad in (["--small-seeds", "0"], ["--small-seed-offset", "-1"], ["--clean-eval-every", "3"]):
        with pytest.raises(SystemExit):  # the CLI's clear error (exit 2)
            parse(Config, PRESETS, ["--preset", "smoke", *bad])


def test_only_the_small_data_set_runs_on_its_own_seeds_and_the_clean_ones_on_their_grid():
    cfg = dataclasses.replace(PRESETS["smoke"], small_seeds=2, small_seed_offset=3, clean_eval_every=1)
    rows = world_rows(cfg, extras=True)
    parts = ("world", "world_clean", "world_small")
    seeds = {p: {r["seed"] for r in rows if r.get("part") == p} for p in parts}
    assert seeds == {"world": {0}, "world_clean": {0}, "world_small": {3, 4}}
    steps = {p: sorted({r["step"] for r in rows if r.get("part") == p}) for p in parts}
    assert steps == {"world": [0, 2, 4], "world_clean": [0, 1, 2, 3, 4], "world_small": [0, 1, 2, 3, 4]}
    small_data = {r["seed"] for r in rows if r.get("part") == "world_data" and r.get("pairs") == cfg.small_pairs}
    assert small_data == {3, 4}  # its Type I / II counts are measured on the same seeds
    _, premise = dpo_overoptimises(world_curves(rows, "dpo", "gold", 0.0, part="world_small"))
    claim = win_rate_claim(rows, "3-world-win-rate-clean", "clean labels", 0.0, [], part="world_small")
    assert premise["n_seeds"] == claim.observed["n_seeds"] == 2  # paired over the small data set's two seeds
