"""PAR pre-registration v5 (issue 31): claim 4 (M = 1 vs M = 10) is decided on its own block of fresh seeds, on which
only PAR and M = 1 run; every other claim, the table and the figure ignore that block."""

from __future__ import annotations

import dataclasses

import pytest
from test_par import HOLDS, PAR_CFG, RISE_AND_COLLAPSE, RISE_AND_HOLD, STEPS, _par_rows

from reprozoo.common.results import record
from reprozoo.papers.par.claims import check, power_tests
from reprozoo.papers.par.experiment import PRESETS, Config
from reprozoo.papers.par.report import COLUMNS, table

BLOCK_CFG = dataclasses.replace(PAR_CFG, m1_seeds=2)  # paired seeds 0-2, claim 4's block 3-4


def _block_rows(m1_offset: float) -> list[dict]:
    """PAR and M = 1 on the block seeds 3-4: PAR collapses there and its premise records would fail, so any claim but
    4 that read the block would change; M = 1 ends `m1_offset` from PAR."""
    rows = []
    for seed in (3, 4):
        for name, shift in (("par", 0.0), ("par_m1", m1_offset)):
            rows += [
                record(name, seed, "winrate", w + shift, step=t) for t, w in zip(STEPS, RISE_AND_COLLAPSE, strict=True)
            ]
            rows += [record(name, seed, m, 1.0) for m, _ in COLUMNS]
        rows += [record("par", seed, m, v) for m, v in (("ref_proxy_mean", -9.0), ("gold_bon_beats_frac", 0.1))]
    return rows


def _with_columns(rows: list[dict]) -> list[dict]:
    """The per-seed summaries the table reads, for every (run, seed) of `rows`."""
    runs = {(r["method"], r["seed"]) for r in rows}
    return rows + [record(n, s, m, 0.5 + 0.1 * s) for n, s in sorted(runs) for m, _ in COLUMNS]


def test_quick_preset_runs_claim_4_on_fresh_seeds_23_to_27_and_leaves_the_v4_seeds_alone():
    quick = PRESETS["quick"]
    assert quick.m1_seed_list() == list(range(23, 28))
    assert quick.run_seeds("par") == [*range(13, 20), *range(23, 28)]
    assert quick.run_seeds("par_m1") == [13, 14, 15, *range(23, 28)]
    assert quick.run_seeds("vanilla") == list(range(13, 23)) and quick.run_seeds("clip") == list(range(13, 20))
    assert quick.run_seeds("vanilla_gold") == [13, 14, 15]
    # without both PAR runs there is no block (the secondary setting `--runs par warm odin minmax`)
    assert dataclasses.replace(quick, runs=["par", "warm"]).m1_seed_list() == []
    with pytest.raises(ValueError, match="m1-seeds"):
        Config(preset="quick", m1_seeds=-1).validate()


@pytest.mark.parametrize(("m1_offset", "verdict"), [(-0.3, "FAIL"), (0.0, "PASS")])
def test_claim_4_reads_only_its_block_and_every_other_claim_only_the_rest(m1_offset, verdict):
    main = _par_rows(HOLDS | {"sigmoid": [w - 0.1 for w in RISE_AND_HOLD]})
    without = {c.id: c for c in check(main, PAR_CFG)}
    with_block = {c.id: c for c in check(main + _block_rows(m1_offset), BLOCK_CFG)}
    assert with_block.keys() == without.keys()
    for cid, c in with_block.items():
        if cid != "4-one-reference":
            assert (c.observed, c.verdict) == (without[cid].observed, without[cid].verdict), cid
    c4 = with_block["4-one-reference"]
    assert c4.observed["n_seeds"] == 2 and c4.observed["m1_minus_m"] == pytest.approx(m1_offset)
    assert c4.observed["pilot_m1_minus_m"] == 0.0 and c4.observed["pilot_n_seeds"] == 3  # seeds 0-2: not decided
    assert c4.verdict == verdict and "fresh seeds 3–4" in c4.statement
    assert power_tests(main + _block_rows(m1_offset), BLOCK_CFG)["4 M=1 − M=10 within ±margin"][0].n == 2


def test_table_keeps_the_block_in_rows_of_its_own():
    main = _with_columns(_par_rows(HOLDS))
    lines = table(main + _block_rows(-0.3), BLOCK_CFG).splitlines()
    assert lines[:-2] == table(main, PAR_CFG).splitlines()
    assert [line.split(" | ")[0] for line in lines[-2:]] == [
        "| par (claim 4's seeds 3–4)",
        "| par_m1 (claim 4's seeds 3–4)",
    ]
