"""papers.leaderboard: it runs every family through its paper's own public entry points, on one world, data and
budget; the metric, ranking, Pareto and CI code on synthetic records; claims; the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from reprozoo.common.config import ConfigError
from reprozoo.common.results import aggregate, record
from reprozoo.common.reward import best_of_n
from reprozoo.common.worlds.preference import build_world
from reprozoo.papers.ensembles import best_of_n as ensembles_bon
from reprozoo.papers.ensembles import members as ensembles_members
from reprozoo.papers.ensembles import ppo as ensembles_ppo
from reprozoo.papers.leaderboard import budget, claims, experiment, families, ranking
from reprozoo.papers.leaderboard.experiment import PRESETS
from reprozoo.papers.par import ppo as par_ppo
from reprozoo.papers.par import reward_models as par_reward_models
from reprozoo.papers.power_dl import experiment as power_dl
from reprozoo.papers.power_dl.world import preference_data

SUMMARY_KEYS = ["paper", "preset", "seeds", "config", "env", "wall_time_s", "methods", "claims"]
ENTRY_POINTS = [
    (ensembles_bon, "bon_pool"),
    (ensembles_members, "standardiser"),
    (ensembles_bon, "curve_rows"),
    (ensembles_ppo, "ppo_rows"),
    (par_ppo, "ppo_run"),
    (par_reward_models, "reward_model"),
    (par_ppo, "prompts"),
    (power_dl, "world_rows"),
]


# --- the papers' own code, through their public names ---


def test_every_family_goes_through_its_papers_entry_points(monkeypatch):
    """A spy on each public entry point: the smoke run must call every one (a renamed or dropped function fails
    here, and no family can silently drop out of the leaderboard)."""
    calls: dict[str, int] = {}
    for module, name in ENTRY_POINTS:
        original = getattr(module, name)

        def spy(*args, _original=original, _name=f"{module.__name__}.{name}", **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    cfg = dataclasses.replace(PRESETS["smoke"], train_prompts=24)  # PAR's cached prompts differ from the CLI test's
    rows = experiment.run(cfg)
    assert set(calls) == {f"{m.__name__}.{n}" for m, n in ENTRY_POINTS}
    expected = (
        {f"bon_{b}" for b in cfg.bon}
        | {f"ppo_{r}" for r in cfg.ppo_runs}
        | {f"ppo_ens_{m}" for m in cfg.ensemble_ppo}
        | set(cfg.offline)
    )
    ran = {r["method"] for r in rows if "step" in r}
    assert ran == expected
    for m in expected:  # every run has the metrics the table ranks by
        assert {"gold_final", "gold_peak", "kl_final"} <= {r["metric"] for r in rows if r["method"] == m}


def test_one_budget_and_one_data_set_for_every_paper():
    cfg = PRESETS["quick"]
    p, e, d = budget.par_config(cfg), budget.ensembles_config(cfg), budget.power_dl_config(cfg)
    assert p.iterations == e.ppo_steps == cfg.iterations == 100  # PAR's quick budget
    assert p.kl_coef == e.ppo_kl_small == cfg.kl_coef
    for field in ("ppo_batch", "ppo_lr", "ppo_epochs", "ppo_minibatch"):
        assert getattr(p, field) == getattr(e, field) == getattr(cfg, field)
    assert p.eval_every == e.log_every and p.eval_prompts == d.eval_prompts
    assert p.world == e.world == d.world == cfg.world
    assert d.world_pairs == cfg.proxy.n_pairs and d.label_noises == [cfg.proxy.label_noise]
    # member 0 of every seed's ensemble is PAR's proxy; all members share its pairs
    for seed in cfg.seed_list():
        pcs = budget.member_configs(cfg, seed)
        assert pcs[0] == dataclasses.replace(cfg.proxy, seed=seed, data_seed=seed)
        assert {pc.data_seed for pc in pcs} == {seed} and len({pc.seed for pc in pcs}) == cfg.members


def test_offline_methods_train_on_the_proxys_pairs():
    cfg = PRESETS["smoke"]
    world = build_world(cfg.world)
    pairs = world.comparisons(cfg.proxy.n_pairs, label_noise=cfg.proxy.label_noise, seed=0)
    data = preference_data(world, budget.power_dl_config(cfg).world_pairs, cfg.proxy.label_noise, 0)
    chosen = torch.where(pairs.labels.bool()[:, None], pairs.ids_a, pairs.ids_b)
    assert torch.equal(data["prompts"], chosen[:, : world.prompt_width])
    assert torch.equal(data["y_w"], chosen[:, world.prompt_width :])


@pytest.mark.parametrize(
    "field, value",
    [
        ("ppo_runs", ["par"]),  # vanilla is required (the premise)
        ("ppo_runs", ["vanilla", "nope"]),
        ("ensemble_ppo", ["median"]),
        ("offline", ["ppo"]),
        ("bon", ["max"]),
        ("members", 1),
        ("eval_every", 3),
        ("offline_eval_every", 3),
    ],
)
def test_config_validates(field, value):
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')}"):
        dataclasses.replace(PRESETS["smoke"], **{field: value}).validate()
    for preset in PRESETS.values():
        preset.validate()


# --- metrics on synthetic curves ---


def test_scalars_hand_computed():
    x = np.arange(6) * 10
    curves = {
        "gold": (x, np.array([0.0, 1.0, 1.3, 0.4, 0.2, -0.3])),
        "kl": (x, np.array([0.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
        "proxy_z": (x, np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
        "features": (x, np.array([0.4, 1.0, 3.0, 3.0, 3.0, 3.0])),
        "length": (x, np.array([6.0, 6.5, 9.0, 9.0, 9.0, 12.0])),
    }
    sft = {"gold": 0.3, "features": 0.4, "length": 6.0}
    out = experiment.scalars(curves, sft)
    final = (0.4 + 0.2 - 0.3) / 3  # the mean of the last 3 points, not the last point
    assert out == pytest.approx(
        {
            "gold_final": final,
            "gold_peak": (1.0 + 1.3 + 0.4) / 3,  # the best 3-point moving average (points 1-3), not the max 1.3
            "kl_final": 5.0,
            "kl_at_gold_peak": 3.0,  # KL at the centre of the peak's window
            "gap_final": 4.0 - (final - 0.3),
            "features_drift": 2.6,
            "length_drift": 10.0 - 6.0,
        }
    )
    assert "winrate_final" not in out  # a curve the run lacks leaves its metric out
    with pytest.raises(ValueError, match="share"):
        experiment.scalars({**curves, "kl": (x + 1, curves["kl"][1])}, sft)


def test_win_probability_and_best_of_n_win_rate():
    gold = torch.tensor([[0.0, 1.0, 1.0, 3.0]])
    w = families.win_probability(gold)
    torch.testing.assert_close(w, torch.tensor([[0.125, 0.5, 0.5, 0.875]], dtype=torch.float64))
    score = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    gold = torch.randn(5, 64, generator=torch.Generator().manual_seed(1))
    w = families.win_probability(gold)
    assert float(best_of_n(score, w, 1).mean()) == pytest.approx(0.5)  # n = 1 is π_SFT: a fair coin
    assert float(best_of_n(gold, w, 64).mean()) == pytest.approx(1 - 0.5 / 64)  # the best sample beats all but itself


def test_paper_records_map_onto_one_curve_schema():
    par_rows = [
        record("vanilla", 0, "winrate", 0.5, step=0),
        record("vanilla", 0, "proxy", 3.0, step=5),
        record("vanilla", 0, "gold", 0.4, step=5),
        record("vanilla", 0, "rl_reward", 9.0, step=5),
        record("vanilla", 0, "gold_final", 0.4),
    ]
    out = families.from_par(par_rows, "vanilla", 0, mu=1.0, sd=2.0)
    assert {(r["method"], r["metric"], r["value"], r["step"]) for r in out} == {
        ("ppo_vanilla", "winrate", 0.5, 0),
        ("ppo_vanilla", "proxy_z", 1.0, 5),
        ("ppo_vanilla", "gold", 0.4, 5),
    }
    ens_rows = [
        record("ppo_wco", 0, "proxy", 2.0, setting="control", beta=0.005, step=3),
        record("ppo_wco", 0, "member_std", 0.3, setting="control", beta=0.005, step=3),
        record("ppo_wco", 0, "kl", 1.0, setting="control", beta=0.005, step=3),
    ]
    out = families.from_ensembles(ens_rows, "wco", 0)
    assert [(r["method"], r["metric"]) for r in out] == [("ppo_ens_wco", "kl")]  # an aggregate is not the proxy
    pdl_rows = [
        record("dpo", 0, "win_rate", 0.6, part="world", noise=0.0, step=50, epoch=1.0),
        record("dpo", 0, "label_clean", 1.0, part="world", noise=0.0, step=50, epoch=1.0),
        record("dpo", 0, "gold_peak", 1.0, part="world_summary", noise=0.0),
    ]
    out = families.from_power_dl(pdl_rows, "dpo", 0)
    assert [(r["method"], r["metric"], r["step"]) for r in out] == [("dpo", "winrate", 50)]


# --- ranking, CIs, Pareto front ---


def _synthetic() -> list[dict]:
    rows = []
    for seed, (a, b, c) in enumerate([(1.0, 0.0, 5.0), (2.0, 0.5, 5.0), (3.0, 1.0, 5.0)]):
        rows += [record("ppo_a", seed, "gold_final", a), record("ppo_a", seed, "kl_final", 4.0)]
        rows += [record("bon_b", seed, "gold_final", b), record("bon_b", seed, "kl_final", 1.0)]
        rows += [record("ppo_vanilla_gold", seed, "gold_final", c), record("ppo_vanilla_gold", seed, "kl_final", 9.0)]
        rows += [record("dpo", seed, "gold_final", -1.0 + 0.1 * seed), record("dpo", seed, "kl_final", 2.0)]
    return rows + [record("sft", 0, "gold", 0.2)]


def test_rank_uses_mean_and_student_t_ci_and_leaves_references_out():
    ranked = ranking.rank(aggregate(_synthetic()))
    assert [m for m, _, _ in ranked] == ["ppo_a", "bon_b", "dpo"]  # ppo_vanilla_gold is a reference
    m, mean, ci = ranked[0]
    assert mean == pytest.approx(2.0)
    assert ci == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))  # t(0.975, 2) · s / √n
    seeds = ranking.per_seed(_synthetic())
    assert seeds["bon_b"] == {0: 0.0, 1: 0.5, 2: 1.0}
    # separate CIs overlap (ppo_a 2.0 ± 2.48, bon_b 0.5 ± 1.24), but the paired leader − bon_b = 1, 1.5, 2 has the
    # CI 1.5 ± 4.30 · 0.5 / √3 = [0.26, 2.74]: the same seeds separate them
    assert ranking.tied_with_best(ranked, seeds) == {"ppo_a"}
    noisy = {**seeds, "bon_b": {0: 2.5, 1: 0.5, 2: 1.0}}  # leader − bon_b = −1.5, 1.5, 2: CI contains 0
    assert ranking.tied_with_best(ranked, noisy) == {"ppo_a", "bon_b"}


def test_pareto_front_hand_example():
    points = {"a": (1.0, 1.0), "b": (2.0, 2.0), "c": (2.0, 1.5), "d": (3.0, 2.0), "e": (0.5, 0.0)}
    assert ranking.pareto_front(points) == ["e", "a", "b"]  # c and d are dominated by b


def test_ranked_table_rows_and_references():
    table = ranking.ranked_table(_synthetic())
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[1].startswith("| 1 | **ppo_a** | PPO | par | 2.00 ± 2.48 |")
    assert lines[2].startswith("| 2 | bon_b | best-of-n | ensembles |") and lines[2].endswith("✓ |")
    assert lines[3].startswith("| 3 | dpo | offline | power_dl |") and lines[3].endswith("|  |")  # bon_b dominates it
    assert lines[-2].startswith("| ref | sft |") and lines[-1].startswith("| ref | ppo_vanilla_gold |")
    assert "| — |" in lines[1]  # no win-rate measured: a dash, not a number


# --- claims ---


def _curve_rows(method: str, gold: list[float], proxy: list[float] | None = None) -> list[dict]:
    rows = []
    for seed in range(2):
        for x, g in enumerate(gold):
            rows.append(record(method, seed, "gold", g + 0.01 * seed, step=x))
            if proxy is not None:
                rows.append(record(method, seed, "proxy_z", proxy[x], step=x))
    return rows


RISE_FALL, RISE_HOLD = [0.0, 0.5, 1.0, 1.0, 0.6, 0.3, 0.2], [0.0, 0.5, 1.0, 1.0, 0.95, 1.0, 0.95]
PROXY = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def test_claims_decide_on_the_data():
    cfg = dataclasses.replace(PRESETS["smoke"], ppo_runs=["vanilla", "vanilla_gold"])
    sft = [record("sft", 0, "gold", 0.0)]
    origin = [record("bon_single", 0, "winrate", 0.5, step=1), record("bon_single", 0, "gold", 0.0, step=1)]
    hack = _curve_rows("ppo_vanilla", RISE_FALL, PROXY)
    holds = _curve_rows("ppo_vanilla_gold", RISE_HOLD)
    checked = claims.check(sft + origin + hack + holds, cfg)
    assert {c.id: c.verdict for c in checked} == {
        "0-premise-vanilla-overoptimises": "PASS",
        "0-control-gold-reward-holds": "PASS",
        "1-sft-origin": "PASS",
    }
    assert [c.kind for c in checked] == ["premise", "control", "premise"]
    o = checked[0].observed  # smoothed peak (1 + 1 + .6) / 3 + seed offset, final mean (.6 + .3 + .2) / 3
    assert o["gold_peak"] == pytest.approx(0.8667 + 0.005, abs=1e-4)
    assert o["gold_final"] == pytest.approx(0.3667 + 0.005, abs=1e-4)
    assert o["fall"] == pytest.approx(0.5) and o["fall_ci95"] == pytest.approx(0.0, abs=1e-12)
    no_hack = _curve_rows("ppo_vanilla", RISE_HOLD, PROXY)
    off = [record("bon_single", 0, "winrate", 0.6, step=1), record("bon_single", 0, "gold", 0.0, step=1)]
    collapses = _curve_rows("ppo_vanilla_gold", RISE_FALL)
    verdicts = {c.id: c.verdict for c in claims.check(sft + off + no_hack + collapses, cfg)}
    assert verdicts == {
        "0-premise-vanilla-overoptimises": "FAIL",
        "0-control-gold-reward-holds": "FAIL",
        "1-sft-origin": "FAIL",
    }


# --- CLI ---


def test_smoke_through_cli(run_cli, tmp_path):
    proc = run_cli("reprozoo.papers.leaderboard", "--preset", "smoke", "--out", str(tmp_path))
    assert "claims" in proc.stdout
    assert {"records.jsonl", "summary.json", "table.md", "figure.png"} <= {p.name for p in tmp_path.iterdir()}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == SUMMARY_KEYS and summary["paper"] == "leaderboard"
    assert {c["id"] for c in summary["claims"]} == {"0-premise-vanilla-overoptimises", "1-sft-origin"}
    assert (tmp_path / "table.md").read_text().startswith("Ranked by final gold reward")


def test_bad_flag_exits_naming_it(run_cli):
    proc = run_cli("reprozoo.papers.leaderboard", "--preset", "smoke", "--ppo-runs", "nope", expect_rc=2, timeout=120)
    assert "--ppo-runs" in proc.stderr


# --- the quick preset's checks (slow) ---

CHECKS = ["0-premise-vanilla-overoptimises", "0-control-gold-reward-holds", "1-sft-origin"]


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS)
def test_quick_checks(quick_summary_of, check):
    result = next(c for c in quick_summary_of("leaderboard")["claims"] if c["id"] == check)
    assert result["passed"], result["observed"]
