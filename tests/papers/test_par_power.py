"""PAR on world v2 (issue 31, second deciding run): premise 1b's excess statistic, the premise seeds on which only
Vanilla runs, and the power pilot's table."""

from __future__ import annotations

import pytest
from test_par import HOLDS, PAR_CFG, RISE_AND_HOLD, STEPS, _par_rows

from reprozoo.common.results import record, resolve_verdicts
from reprozoo.papers.par.claims import EXCESS, check, pilot_table, power_tests
from reprozoo.papers.par.experiment import PRESETS, Config


def _extra_vanilla(seeds: list[int], curve: list[float]) -> list[dict]:
    return [record("vanilla", s, "winrate", w, step=t) for s in seeds for t, w in zip(STEPS, curve, strict=True)] + [
        record("vanilla", s, m, 1.0, step=t) for s in seeds for t in STEPS[1:] for m in ("proxy", "excess_sd")
    ]


def test_premise_seeds_run_only_vanilla_after_the_paired_seeds():
    cfg = Config(preset="quick", runs=["vanilla", "par"], seeds=3, first_seed=3, premise_seeds=4)
    cfg.validate()
    assert cfg.seed_list() == [3, 4, 5] and cfg.premise_seed_list() == [6, 7, 8, 9]
    assert Config(preset="quick", runs=["par"], premise_seeds=4).premise_seed_list() == []  # no Vanilla, no seeds
    quick = PRESETS["quick"]  # pre-registration v4: fresh seeds 13-19 for the compared runs, Vanilla on 10 seeds
    assert quick.seed_list() == list(range(13, 20)) and quick.premise_seed_list() == list(range(20, 23))
    assert quick.run_seeds("vanilla") == list(range(13, 23)) and quick.run_seeds("vanilla_gold") == [13, 14, 15]
    with pytest.raises(ValueError, match="premise-seeds"):
        Config(preset="quick", premise_seeds=-1).validate()


def test_premise_1_reads_every_vanilla_seed_and_the_paired_claims_the_common_ones():
    cfg = Config(preset="quick", runs=PAR_CFG.runs, seeds=3, premise_seeds=3)
    rows = _par_rows(HOLDS) + _extra_vanilla([3, 4, 5], RISE_AND_HOLD)  # three more seeds on which Vanilla holds
    claims = {c.id: c for c in resolve_verdicts(check(rows, cfg))}
    premise = claims["1-vanilla-hacks"].observed
    assert premise["n_seeds"] == 6 and premise["fall"] < check(_par_rows(HOLDS), PAR_CFG)[1].observed["fall"]
    assert claims["3-par-best"].observed["n_seeds"] == 3  # PAR − Vanilla paired over seeds 0-2 only
    assert claims["1b-premise-par-regime"].observed["per_seed"][3:] == [1.0] * 3


def test_regime_premise_measures_the_size_of_the_excess_not_its_sign():
    """Rollouts above every reference (sign) but by less than one reference SD: 1b FAILs; by 2 SDs: PASS."""
    for excess, verdict in ((0.5, "FAIL"), (2.0, "PASS")):
        rows = _par_rows(HOLDS, excess=excess)
        for seed in range(3):
            rows += [record("vanilla", seed, "beats_all_refs", 1.0, step=t) for t in STEPS[1:]]
        c = {c.id: c for c in check(rows, PAR_CFG)}["1b-premise-par-regime"]
        assert c.verdict == verdict and c.observed["beats_all_refs_final"] == 1.0
        assert (c.observed["excess_sd_final"] >= EXCESS) == (verdict == "PASS")


def test_pilot_table_lists_each_paired_test_with_its_seed_count():
    rows = _par_rows(HOLDS | {"sigmoid": [w - 0.1 for w in RISE_AND_HOLD]})
    for r in rows:  # seed-to-seed spread in Vanilla's collapse
        if r["method"] == "vanilla" and r["metric"] == "winrate" and r["step"] >= 50:
            r["value"] -= 0.1 * r["seed"]
    tests = power_tests(rows, PAR_CFG)
    assert tests["1 Vanilla's fall"][0].sd == pytest.approx(0.1, rel=0.05)
    assert {"2 PAR − vanilla", "3 PAR − warm > −margin", "4 M=1 − M=10 within ±margin", "5 PAR − σ(r)"} <= set(tests)
    table = pilot_table(rows, PAR_CFG)
    assert table.count("\n") == 2 + len(tests) + 1 and "excess of vanilla" in table


def test_few_seed_runs_run_on_the_first_seeds_and_pair_over_the_seeds_both_runs_have():
    """A few-seed run (here M = 1) runs on the first `few_seeds` seeds; claim 4 pairs it with PAR over those seeds,
    while claims 2 and 3 pair PAR with the full runs over every seed."""
    cfg = Config(preset="quick", runs=PAR_CFG.runs, seeds=3, few_seed_runs=["par_m1", "vanilla_gold"], few_seeds=2)
    cfg.validate()
    assert cfg.run_seeds("par_m1") == [0, 1] and cfg.run_seeds("par") == [0, 1, 2]
    rows = [r for r in _par_rows(HOLDS) if not (r["method"] in cfg.few_seed_runs and r["seed"] == 2)]
    claims = {c.id: c for c in check(rows, cfg)}
    assert claims["4-one-reference"].observed["n_seeds"] == 2 and claims["3-par-best"].observed["n_seeds"] == 3
    assert claims["0-control-no-proxy-error"].observed["n_seeds"] == 2
    with pytest.raises(ValueError, match="few-seeds"):
        Config(preset="quick", seeds=3, few_seed_runs=["par_m1"], few_seeds=4).validate()
    with pytest.raises(ValueError, match="few-seed-runs"):
        Config(preset="quick", few_seed_runs=["nope"]).validate()
