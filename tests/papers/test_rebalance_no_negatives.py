"""ReBalance when a calibration has no negative (confident plain) step, so S = μ_pos − μ_neg is undefined (the v3.2
control world): the calibration says so instead of raising, a control world runs its base model only and the
pre-registered premise 0d leaves claim 4 UNTESTED; a premise world stops with an error naming the world and the seed.
"""

import dataclasses
import math

import numpy as np
import pytest

from reprozoo.common.results import record, resolve_verdicts
from reprozoo.common.worlds import reasoning as rw
from reprozoo.papers.rebalance import calibration as C
from reprozoo.papers.rebalance import experiment as E
from reprozoo.papers.rebalance.claims import check


def _no_negatives(label_steps):
    return lambda *args: np.where(label_steps(*args) == -1, 0, label_steps(*args))


@pytest.fixture
def smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROZOO_CACHE", str(tmp_path))
    monkeypatch.setattr(C, "label_steps", _no_negatives(C.label_steps))
    cfg = dataclasses.replace(E.PRESETS["smoke"], lambda_sweep=[-1.0])
    return rw.build_world(rw.SMOKE_WORLD), cfg


def test_calibration_without_negatives_has_no_vector(smoke):
    world, cfg = smoke
    cals = C.calibrate(world, cfg, seed=0)
    assert all(cal.vector is None and cal.n_neg == 0 and cal.n_pos > 0 for cal in cals.values())


def test_control_world_runs_the_base_model_only_and_a_premise_world_stops(smoke):
    world, cfg = smoke
    with pytest.raises(ValueError, match=r"smoke world, seed 0: .* 0 negative steps"):
        E.seed_rows(world, "smoke", cfg, 0)
    world.cfg = dataclasses.replace(world.cfg, premise=False)  # the same model read as a control world
    with pytest.warns(UserWarning, match="only the base model runs"):
        rows = E.seed_rows(world, "control", cfg, 0)
    assert {r["method"] for r in rows} == {"calibration", "base"}
    assert all(math.isnan(r["value"]) for r in rows if r["metric"] == "steer_norm")
    assert [r["value"] for r in rows if r["metric"] == "n_neg"] == [0]


def test_claim_4_is_untested_when_the_control_had_no_vector():
    cfg = E.PRESETS["quick"]
    main, control = cfg.worlds
    good = dict(accuracy=0.8, think_len=18.0, redundant_tokens=3.0, underthink_hard=0.3, loop_len=2.0)
    rows = [record("world", 0, "tf_chain_accuracy", 1.0, world=w) for w in cfg.worlds]
    for s in range(4):
        for w in cfg.worlds:
            rows.append(record("calibration", s, "n_neg", 0 if w == control else 200, world=w))
            rows += [record("base", s, m, 0.8 + 0.01 * s, world=w) for m in ("auc_redundant", "auc_premature_end")]
            for method in ("base", "static", "rebalance", "no_w_low", "no_w_high") if w == main else ("base",):
                for i, readout in enumerate(cfg.readouts if method != "base" else cfg.readouts[:1]):
                    name = method if i == 0 else f"{method}@{readout}"
                    rows += [record(name, s, m, v + 0.001 * s, world=w) for m, v in good.items()]
    got = {c.id: c for c in resolve_verdicts(check(rows, cfg))}
    assert got["0d-premise-control-calibration"].verdict == "FAIL"
    claim = got["4-control-no-dynamic-advantage"]
    assert claim.verdict == "UNTESTED" and claim.observed == {"seeds_without_steering_vector": [0, 1, 2, 3]}
