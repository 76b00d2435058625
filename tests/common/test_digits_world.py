"""The digits world (MultiColorDigits): geometry, colouring statistics, determinism, control, demo CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reprozoo.common.worlds.digits import (
    GROUPS,
    N_PATCHES,
    PALETTE,
    MultiColorDigits,
    canvas,
    colour_indices,
    colour_maps,
    colour_vote,
    group_sp,
    label_colour_rate,
    load_digits,
    paint,
    patch_corners,
)


def test_patches_tile_the_outer_ring_exactly():
    mask = np.zeros((24, 24), dtype=int)
    for r, c in patch_corners():
        mask[r : r + 4, c : c + 4] += 1
    assert len(patch_corners()) == N_PATCHES == 32
    assert mask[8:16, 8:16].sum() == 0  # the centre block (the digit) is never painted
    mask[8:16, 8:16] = 1
    assert np.all(mask == 1)  # every outer pixel belongs to exactly one patch


def test_canvas_places_the_grey_digit_in_the_centre():
    digits = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    x = canvas(digits)
    assert x.shape == (2, 3, 24, 24)
    for ch in range(3):
        np.testing.assert_array_equal(x[:, ch, 8:16, 8:16], digits)
    x[:, :, 8:16, 8:16] = 0
    assert not x.any()


def test_sp_one_paints_every_patch_in_its_label_colour():
    rng = np.random.default_rng(1)
    maps = colour_maps(rng)
    assert all(sorted(row) == list(range(10)) for row in maps)  # each patch map is a permutation
    y = np.array([0, 3, 9])
    idx = colour_indices(y, 1.0, maps, 32, rng)
    np.testing.assert_array_equal(idx, maps.T[y])  # c_ij = π_j(y_i)
    x = paint(canvas(np.zeros((3, 8, 8), np.float32)), idx)
    r, c = patch_corners()[5]
    np.testing.assert_allclose(
        x[1, :, r : r + 4, c : c + 4], np.broadcast_to(PALETTE[maps[5, 3]][:, None, None], (3, 4, 4))
    )


@pytest.mark.parametrize("sp", [0.0, 0.3, 0.9])
def test_label_colour_rate_matches_sp_plus_chance(sp):
    rng = np.random.default_rng(2)
    maps = colour_maps(rng)
    y = rng.integers(0, 10, 4000)
    idx = colour_indices(y, sp, maps, 32, rng)
    rate = np.mean(idx == maps.T[y])
    q = sp + (1 - sp) / 10
    assert abs(rate - q) < 4 * np.sqrt(q * (1 - q) / idx.size)


def test_one_colour_control_uses_one_draw_for_all_patches():
    rng = np.random.default_rng(3)
    maps = colour_maps(rng)
    y = rng.integers(0, 10, 500)
    idx = colour_indices(y, 0.5, maps, 1, rng)
    assert np.all(idx == idx[:, :1])
    hit = idx[:, 0] == maps[0, y]
    assert 0.45 < hit.mean() < 0.65  # 0.5 + 0.5/10 = 0.55 in expectation


def test_bad_arguments_raise():
    maps = colour_maps(np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_colors"):
        colour_indices(np.zeros(2, int), 0.5, maps, 7, np.random.default_rng(0))
    with pytest.raises(ValueError, match="sp"):
        colour_indices(np.zeros(2, int), 1.5, maps, 32, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_colors"):
        MultiColorDigits(n_colors=3)
    with pytest.raises(ValueError, match="n_test"):
        MultiColorDigits(n_test=5)
    with pytest.raises(ValueError, match="n_finetune"):
        MultiColorDigits(n_finetune=1295)


def test_world_splits_are_deterministic_and_shaped():
    a, b = MultiColorDigits(seed=4), MultiColorDigits(seed=4)
    tr_a, tr_b = a.train(1.0), b.train(1.0)
    np.testing.assert_array_equal(tr_a.x, tr_b.x)
    assert tr_a.x.shape == (1300, 3, 24, 24) and tr_a.flat().shape == (1300, 1728)
    te = a.test(0.3)
    assert te.x.shape == (497, 3, 24, 24) and te.sp == 0.3
    assert not np.array_equal(a.test(0.3).colours, a.test(0.1).colours)
    assert not np.array_equal(a.maps, MultiColorDigits(seed=5).maps)
    assert np.bincount(te.y).min() >= 45  # stratified: every digit is in the test split
    assert label_colour_rate(tr_a, a.maps) == 1.0
    np.testing.assert_array_equal(colour_vote(tr_a, a.maps), tr_a.y)  # sp = 1: colours alone give the label


def test_one_colour_world_follows_patch_zero_map():
    w = MultiColorDigits(seed=6, n_colors=1)
    s = w.train(1.0)
    assert np.all(s.colours == w.maps[0, s.y][:, None])
    assert label_colour_rate(s, w.label_maps) == 1.0


def test_groups_split_the_patches_in_two():
    a, b = set(GROUPS["A"]), set(GROUPS["B"])
    assert len(a) == len(b) == 16 and not a & b and a | b == set(range(N_PATCHES))
    sp = group_sp(A=0.8)
    assert np.all(sp[GROUPS["A"]] == 0.8) and np.all(sp[GROUPS["B"]] == 0.0)


def test_per_patch_sp_colours_each_group_at_its_own_rate():
    rng = np.random.default_rng(8)
    maps = colour_maps(rng)
    y = rng.integers(0, 10, 4000)
    idx = colour_indices(y, group_sp(A=0.6, B=0.2), maps, 32, rng)
    hit = idx == maps.T[y]
    for group, sp in (("A", 0.6), ("B", 0.2)):
        q, n = sp + (1 - sp) / 10, hit[:, GROUPS[group]].size
        assert abs(hit[:, GROUPS[group]].mean() - q) < 4 * np.sqrt(q * (1 - q) / n)
    with pytest.raises(ValueError, match="sp must be a number"):
        colour_indices(y, group_sp(A=0.5), maps, 1, rng)  # one colour: one draw, one sp


def test_pretrain_and_finetune_digits_are_disjoint_and_coloured_by_their_own_group():
    w = MultiColorDigits(seed=2)
    pre, ft = w.pretrain(1.0), w.finetune(1.0)
    assert len(pre.y) == 800 and len(ft.y) == 500
    all_x = {x.tobytes() for x in w.train(0.0).x[:, 0, 8:16, 8:16]}
    pre_digits = {x.tobytes() for x in pre.x[:, 0, 8:16, 8:16]}
    ft_digits = {x.tobytes() for x in ft.x[:, 0, 8:16, 8:16]}
    assert pre_digits <= all_x and ft_digits <= all_x
    assert len(pre_digits & ft_digits) <= 5  # disjoint draws; sklearn holds a few identical images
    assert np.all(pre.colours[:, GROUPS["A"]] == w.maps[GROUPS["A"]][:, pre.y].T)  # A in its label colours
    assert np.all(ft.colours[:, GROUPS["B"]] == w.maps[GROUPS["B"]][:, ft.y].T)
    assert abs(np.mean(pre.colours[:, GROUPS["B"]] == w.maps[GROUPS["B"]][:, pre.y].T) - 0.1) < 0.02  # B random
    np.testing.assert_array_equal(np.bincount(pre.y), np.bincount(w.pretrain(0.0).y))  # same digits, any sp


def test_colour_only_blanks_the_digit_and_shows_one_group():
    w = MultiColorDigits(seed=4)
    s = w.colour_only("B")
    assert not s.x[:, :, 8:16, 8:16].any()
    assert np.all(s.colours[:, GROUPS["B"]] == w.maps[GROUPS["B"]][:, s.y].T)
    _, labels = load_digits()
    assert len(s.y) == 497 and set(s.y) == set(labels)


def test_demo_cli_smoke(run_cli, tmp_path):
    run_cli("reprozoo.common.worlds.digits", "--preset", "smoke", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["paper"] == "digits_world" and (tmp_path / "figure.png").exists()
    assert {c["id"] for c in summary["claims"]} >= {"1-colour-correlation", "2-one-colour-control"}
    assert all(c["passed"] for c in summary["claims"]), summary["claims"]
