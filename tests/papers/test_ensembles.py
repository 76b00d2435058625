"""papers.ensembles: aggregations against hand-computed values, gradient flow through the ensemble reward (and
PPO on it), Gao et al.'s functional-form fits on synthetic curves, config validation, and the quick claims."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from reprozoo.common.config import ConfigError
from reprozoo.common.lm import tiny_lm
from reprozoo.common.ppo import PPOConfig, PPOTrainer
from reprozoo.common.results import record, resolve_verdicts
from reprozoo.common.reward import RewardModel
from reprozoo.common.reward import aggregate as common_aggregate
from reprozoo.common.worlds.gao import fit_gao, gao_form
from reprozoo.common.worlds.preference import self_minus_others
from reprozoo.papers.ensembles import claims
from reprozoo.papers.ensembles.experiment import PRESETS
from reprozoo.papers.ensembles.members import all_member_configs, grid, member_config, window
from reprozoo.papers.ensembles.method import AGGREGATIONS, Ensemble, aggregate, mean, mean_minus_std, median, uwo, wco
from reprozoo.papers.ensembles.ppo import copied_single_rows, ppo_jobs, ppo_runs
from reprozoo.papers.ensembles.report import summary_rows

# k = 3 members (rows) × 2 samples (columns)
R = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]], dtype=torch.float64)
# column 0: 1, 3, 5 → mean 3, Σ(R − R̄)² = 8;  column 1: 2, 6, 1 → mean 3, Σ(R − R̄)² = 14
POP_VAR = torch.tensor([8 / 3, 14 / 3], dtype=torch.float64)
UNBIASED_VAR = torch.tensor([4.0, 7.0], dtype=torch.float64)


@pytest.mark.points(2)
def test_aggregations_hand_computed():
    torch.testing.assert_close(mean(R), torch.tensor([3.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(wco(R), torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(median(R), torch.tensor([3.0, 2.0], dtype=torch.float64))
    even = torch.tensor([[1.0], [3.0], [5.0], [7.0]], dtype=torch.float64)
    torch.testing.assert_close(median(even), torch.tensor([4.0], dtype=torch.float64))
    # UWO, best-of-n (official): λ = 0.5, population variance → 3 − 4/3, 3 − 7/3
    torch.testing.assert_close(aggregate(R, "uwo", stage="bon"), torch.tensor([5 / 3, 2 / 3], dtype=torch.float64))
    # UWO, PPO (official): λ = 0.1, unbiased variance → 3 − 0.4, 3 − 0.7
    torch.testing.assert_close(aggregate(R, "uwo", stage="ppo"), torch.tensor([2.6, 2.3], dtype=torch.float64))
    torch.testing.assert_close(uwo(R, 1.0, unbiased=False), 3 - POP_VAR)
    torch.testing.assert_close(uwo(R, 1.0, unbiased=True), 3 - UNBIASED_VAR)
    torch.testing.assert_close(mean_minus_std(R), 3 - POP_VAR.sqrt())
    torch.testing.assert_close(mean_minus_std(R, unbiased=True), 3 - UNBIASED_VAR.sqrt())
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(R, "max")


@pytest.mark.points(1)
def test_wco_is_the_member_minimum():
    torch.testing.assert_close(wco(R), torch.tensor([1.0, 1.0], dtype=torch.float64))
    x = torch.tensor([[0.5, -2.0, 3.0], [0.1, 4.0, -1.0]])
    torch.testing.assert_close(wco(x), torch.tensor([0.1, -2.0, -1.0]))


def test_aggregations_match_common_reward():
    x = torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name in AGGREGATIONS:
        for stage, lam, unbiased in (("bon", 0.5, False), ("ppo", 0.1, True)):
            lam = 1.0 if name == "mean_minus_std" else lam
            ref = common_aggregate(x, name, lam=lam, unbiased=unbiased)
            torch.testing.assert_close(aggregate(x, name, stage=stage), ref)


@pytest.mark.points(1)
def test_gradients_through_the_aggregation():
    r = R[:, 0].clone().requires_grad_(True)  # 1, 3, 5
    aggregate(r, "uwo", stage="ppo").backward()
    # ∂/∂R_i [R̄ − λ Σ(R_j − R̄)²/(k − 1)] = 1/k − 2λ (R_i − R̄)/(k − 1)
    expected = torch.tensor([1 / 3 - 0.1 * (1 - 3), 1 / 3, 1 / 3 - 0.1 * (5 - 3)], dtype=torch.float64)
    torch.testing.assert_close(r.grad, expected)
    r.grad = None
    wco(r).backward()
    torch.testing.assert_close(r.grad, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))


def _members(k=3, vocab=12, seed=0):
    return [RewardModel.tiny(vocab, d_model=8, n_layers=1, n_heads=2, max_len=16, seed=seed + i) for i in range(k)]


@pytest.mark.points(2)
def test_ensemble_standardises_members_and_gradient_reaches_only_the_worst_member():
    members = _members()
    ids = torch.randint(0, 12, (6, 10), generator=torch.Generator().manual_seed(1))
    am = torch.ones_like(ids)
    raw = torch.stack([m(ids, am) for m in members]).detach()
    mu, sd = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([2.0, 0.5, 1.0])
    ens = Ensemble(members, mu, sd)
    z = ens.member_rewards(ids, am)
    torch.testing.assert_close(z, (raw - mu[:, None]) / sd[:, None])
    torch.testing.assert_close(ens(ids[:1], am[:1], "wco"), z[:, :1].min(0).values)
    # the WCO reward of one sequence is differentiable and its gradient reaches the argmin member only
    ens(ids[:1], am[:1], "wco").sum().backward()
    worst = int(z[:, 0].argmin())
    for i, m in enumerate(members):
        g = m.head.weight.grad
        assert (g is not None and g.abs().sum() > 0) == (i == worst)


@pytest.mark.points(1)
def test_ppo_step_on_the_ensemble_reward_updates_the_policy():
    torch.manual_seed(0)
    vocab, eos = 12, 11
    policy = tiny_lm(vocab, d_model=16, n_layers=1, n_heads=2, max_len=16, seed=0)
    ref = tiny_lm(vocab, d_model=16, n_layers=1, n_heads=2, max_len=16, seed=0)
    ens = Ensemble(_members(vocab=vocab), torch.zeros(3), torch.ones(3)).eval()
    trainer = PPOTrainer(policy, ref, PPOConfig(lr=1e-2, epochs=1, minibatch_size=8, max_new_tokens=5), eos_id=eos)
    before = [p.detach().clone() for p in policy.parameters()]

    @torch.no_grad()
    def reward_fn(x, y, mask):
        ids = torch.cat([x, y], 1)
        am = torch.cat([torch.ones_like(x), mask.long()], 1)
        return ens(ids, am, "uwo", stage="ppo")

    prompts = torch.randint(0, 10, (8, 4), generator=torch.Generator().manual_seed(2))
    stats = trainer.step(prompts, reward_fn, generator=torch.Generator().manual_seed(3))
    assert all(math.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))


@pytest.mark.parametrize("kind", ["bon", "rl"])
def test_gao_fit_recovers_known_parameters(kind):
    kl = np.linspace(0.0, 12.0, 25)
    d = np.sqrt(kl)
    alpha, beta = 1.3, 0.4
    exact = gao_form(d, alpha, beta, kind)
    fit = fit_gao(kl, exact, kind)
    assert fit["alpha"] == pytest.approx(alpha, abs=1e-9) and fit["beta"] == pytest.approx(beta, abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0)
    noisy = exact + np.random.default_rng(0).normal(0, 0.02, size=exact.shape)
    fit = fit_gao(kl, noisy, kind)
    assert abs(fit["alpha"] - alpha) < 0.1 and abs(fit["beta"] - beta) < 0.1 and fit["r2"] > 0.9
    # the other form fits worse
    other = fit_gao(kl, exact, "rl" if kind == "bon" else "bon")
    assert other["r2"] < fit["r2"]


def test_gao_forms_by_hand():
    assert gao_form(np.array([2.0]), 1.0, 0.25, "bon")[0] == pytest.approx(2 * (1 - 0.5))
    assert gao_form(np.array([math.e]), 1.0, 0.5, "rl")[0] == pytest.approx(math.e * 0.5)
    assert gao_form(np.array([0.0]), 1.0, 0.5, "rl")[0] == 0.0


def test_members_share_data_and_differ_by_seed_and_quirk():
    cfg = PRESETS["quick"]
    k, q = cfg.members, cfg.quirk_tokens
    assert grid(cfg) == [(32, 0.0), (32, 0.25)] and grid(PRESETS["full"]) == [
        (32, 0.0),
        (32, 0.25),
        (64, 0.0),
        (64, 0.25),
    ]
    prem = [member_config(cfg, "premise", 32, 0.25, m) for m in window(cfg, 1)]
    ctrl = [member_config(cfg, "control", 32, 0.25, m) for m in window(cfg, 1)]
    # independent ensembles: seed 1 owns members k … 2k − 1; every member is trained on the same pairs
    assert [pc.seed for pc in prem] == list(range(k, 2 * k)) and {pc.data_seed for pc in prem + ctrl} == {0}
    assert not set(window(cfg, 0)) & set(window(cfg, 1))
    # premise: k distinct quirks (member m's token q[m mod len]); control: the first member's quirk for all
    assert [pc.quirk_token for pc in prem] == [q[m % len(q)] for m in range(k, 2 * k)]
    assert {pc.quirk_token for pc in ctrl} == {prem[0].quirk_token} and ctrl[0] == prem[0]
    assert set(q) <= set(cfg.world.quirk_tokens) and cfg.world.quirk_cost > 0  # the quirks cost gold (world v2)
    pre = [member_config(cfg, "control", 32, 0.25, m, "pretrain") for m in range(3)]
    fine = [member_config(cfg, "control", 32, 0.25, m, "finetune") for m in range(3)]
    assert [pc.pretrain_seed for pc in pre] == [0, 1, 2] and {pc.pretrain_seed for pc in fine} == {0}
    # per (size, noise): k·seeds premise members + (k − 1)·seeds control members (the first is shared), and the
    # pretrain/finetune pools (their member 0 coincides)
    n, s = len(grid(cfg)), cfg.seeds
    eis = (2 * k * s - 1) if cfg.eisenstein else 0
    assert len(all_member_configs(cfg)) == n * (k * s + (k - 1) * s) + eis


@pytest.mark.parametrize(
    "field, value",
    [
        ("members", 1),
        ("quirk_tokens", [3, 4]),  # quick needs members = 5
        ("quirk_tokens", [0, 4, 5]),  # 0 is a feature token
        ("ppo_methods", ["median"]),
        ("ppo_settings", ["nope"]),
        ("ppo_large_kl_methods", ["uwo"]),  # smoke runs PPO on single and wco only
        ("label_noises", [0.0]),
    ],
)
def test_config_validates(field, value):
    preset = "quick" if field == "quirk_tokens" and len(value) == 2 else "smoke"
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')}"):
        dataclasses.replace(PRESETS[preset], **{field: value}).validate()
    PRESETS[preset].validate()


def test_quick_ppo_runs_are_the_ones_the_claims_read():
    # every reward at β = 0.01 (claims 1, 3, 5); WCO and UWO at β = 0.1 in the premise setting (claim 3b); the
    # control's single-member run is the premise's (same member, same quirk), run once and copied
    cfg = PRESETS["quick"]
    every = ["single", "mean", "wco", "uwo"]
    assert ppo_runs(cfg) == {("premise", 0.01): every, ("premise", 0.1): ["wco", "uwo"], ("control", 0.01): every}
    assert len(ppo_jobs(cfg)) == (4 + 2 + 3) * cfg.seeds
    assert ("control", "single", 0.01, 0) not in ppo_jobs(cfg) and ("premise", "single", 0.01, 0) in ppo_jobs(cfg)
    assert not cfg.eisenstein  # claim 4 is underpowered at the quick budget (README "Seeds"): full only


def test_the_control_single_member_is_the_premise_one_and_its_records_are_copied():
    cfg = PRESETS["quick"]
    for seed in cfg.seed_list():
        m = window(cfg, seed)[0]
        assert member_config(cfg, "premise", 32, 0.0, m) == member_config(cfg, "control", 32, 0.0, m)
    rows = [
        record("ppo_single", 0, "gold", 0.5, setting="premise", beta=0.01, step=3),
        record("ppo_single", 0, "gold", 0.7, setting="premise", beta=0.1, step=3),
        record("ppo_wco", 0, "gold", 0.9, setting="premise", beta=0.01, step=3),
        record("ppo_single", 0, "member_std", 0.8, setting="premise", beta=0.01, step=3),  # other members: not copied
    ]
    assert copied_single_rows(rows, cfg) == [dict(rows[0], setting="control")]


def test_summary_rows_keep_peak_and_final_of_the_curves_claims_read():
    cfg = dataclasses.replace(PRESETS["smoke"], eisenstein_n=2)
    rows = []
    for seed, gold in ((0, [0.1, 0.5, 0.3]), (1, [0.2, 0.4, 0.6])):
        for n, g in zip((1, 2, 4), gold, strict=True):
            bon = {"setting": "premise", "d": 16, "step": n}
            rows += [
                record("bon_wco", seed, "gold", g, noise=0.25, **bon),
                record("bon_wco", seed, "gold", 9.0, noise=0.0, **bon),
            ]
            rows.append(record("eis_single", seed, "gold", g, setting="control", d=16, noise=0.25, step=n))
            rows.append(record("ppo_uwo", seed, "gold", -g, setting="control", beta=0.01, step=10 * n))
    got = {(r["method"], r["seed"], r["metric"]): r["value"] for r in summary_rows(rows, cfg)}
    assert got == {
        ("bon_wco", 0, "gold_peak"): 0.5,
        ("bon_wco", 0, "gold_final"): 0.3,
        ("bon_wco", 1, "gold_peak"): 0.6,
        ("bon_wco", 1, "gold_final"): 0.6,
        ("eis_single", 0, "gold_at_eis_n"): 0.5,
        ("eis_single", 1, "gold_at_eis_n"): 0.4,
        ("ppo_uwo", 0, "gold_peak"): -0.1,
        ("ppo_uwo", 0, "gold_final"): -0.3,
        ("ppo_uwo", 1, "gold_peak"): -0.2,
        ("ppo_uwo", 1, "gold_final"): -0.6,
    }  # the noise-0 best-of-n curve is in no claim: not aggregated


def test_bad_flag_exits_naming_it(run_cli):
    proc = run_cli("reprozoo.papers.ensembles", "--preset", "smoke", "--quirk-gain", "-1", expect_rc=2, timeout=120)
    assert "--quirk-gain" in proc.stderr


def test_self_minus_others_by_hand():
    # 2 members, 1 prompt, 3 samples: member 0 picks sample 0 (2 vs member 1's 0), member 1 picks sample 2 (3 vs 1)
    z = torch.tensor([[[2.0, 0.0, 1.0]], [[0.0, 1.0, 3.0]]])
    assert self_minus_others(z) == pytest.approx(((2 - 0) + (3 - 1)) / 2)
    assert self_minus_others(torch.randn(1, 4, 8).repeat(3, 1, 1)) == pytest.approx(0.0, abs=1e-6)  # herding: 0


# --- claims v2 on synthetic rows ---

CLAIM_CFG = dataclasses.replace(
    PRESETS["smoke"],
    seeds=3,
    ppo_methods=["single", "wco", "uwo"],
    ppo_large_kl_methods=["wco", "uwo"],
    eisenstein=False,
)
BON_N = (1, 2, 4, 8, 16)
PPO_STEPS = (1, 3, 5, 7, 9, 11)
OVEROPT_BON, HOLD_BON = [0.0, 0.5, 1.0, 0.6, 0.2], [0.0, 0.5, 1.0, 1.0, 1.0]
OVEROPT_PPO, HOLD_PPO = [0.0, 0.5, 1.0, 0.5, 0.0, -0.5], [0.0, 0.5, 1.0, 1.0, 1.0, 1.0]


def _claim_rows(smo: dict[str, float], helps: dict[str, bool]) -> list[dict]:
    """Synthetic records of 3 seeds: self − others per setting; best-of-n and PPO curves where the single member
    over-optimises and WCO / UWO hold their gold when `helps[setting]` (else they follow the single member)."""
    rows = []
    for seed in range(3):
        j = 0.01 * seed  # a per-seed offset shared by every method (paired differences are exact)
        for setting in ("premise", "control"):
            tag = {"setting": setting, "d": 16, "noise": 0.25}
            rows.append(record("premise", seed, "self_minus_others", smo[setting] + j, **tag))
            for a in ("single", *AGGREGATIONS):
                gold = HOLD_BON if helps[setting] and a in ("wco", "uwo") else OVEROPT_BON
                for i, n in enumerate(BON_N):
                    rows += [
                        record(f"bon_{a}", seed, "gold", gold[i] + j, step=n, n=n, **tag),
                        record(f"bon_{a}", seed, "proxy", float(i), step=n, n=n, **tag),
                        record(f"bon_{a}", seed, "features", 0.5 * i, step=n, n=n, **tag),
                    ]
            runs = [(a, 0.01) for a in ("single", "wco", "uwo")] + [(a, 0.1) for a in ("wco", "uwo")]
            for a, beta in runs:
                gold = HOLD_PPO if helps[setting] and a != "single" else OVEROPT_PPO
                if beta == 0.1:
                    gold = [0.0, 0.4, 0.9, 0.95, 0.95, 0.95]  # no fall, 95% of the small-β peak gain
                for i, step in enumerate(PPO_STEPS):
                    p = {"setting": setting, "beta": beta, "step": step}
                    rows += [
                        record(f"ppo_{a}", seed, "gold", gold[i] + j, **p),
                        record(f"ppo_{a}", seed, "proxy", float(i), **p),
                        record(f"ppo_{a}", seed, "features", 0.5 * i, **p),
                    ]
    return rows


def _verdicts(rows: list[dict]) -> dict[str, str]:
    return {c.id: c.verdict for c in resolve_verdicts(claims.check(rows, CLAIM_CFG))}


def test_claims_pass_when_the_premise_holds_and_controls_behave_as_predicted():
    rows = _claim_rows({"premise": 1.0, "control": 0.05}, {"premise": True, "control": False})
    checked = claims.check(rows, CLAIM_CFG)
    v = _verdicts(rows)
    assert v == dict.fromkeys(v, "PASS") and len(v) == 13, v
    kinds = {c.id: c.kind for c in checked}
    assert kinds["0-premise"] == kinds["1-single-overoptimises-ppo-control"] == "premise"
    assert kinds["0-control"] == kinds["2-bon-conservative-control"] == kinds["3-ppo-conservative-control"] == "control"
    requires = {c.id: c.requires for c in checked}
    assert requires["3-ppo-conservative-premise"] == ("0-premise", "1-single-overoptimises-ppo-premise")


def test_a_failed_premise_makes_its_claims_untested_and_a_control_fails_when_the_method_helps_there():
    v = _verdicts(_claim_rows({"premise": 0.1, "control": 0.05}, {"premise": True, "control": True}))
    assert v["0-premise"] == "FAIL"
    for c in ("2-bon-conservative-premise", "3-ppo-conservative-premise", "3b-ppo-small-penalty-premise"):
        assert v[c] == "UNTESTED", c
    assert v["1-single-overoptimises-bon-premise"] == "PASS" and v["5-shared-exploit-premise"] == "PASS"
    # the control setting's ensembles help as if members did not herd: the controls fail (not as predicted); the
    # control's self − others is not below the premise's by the premise threshold either
    assert v["0-control"] == "FAIL"
    assert v["2-bon-conservative-control"] == "FAIL" and v["3-ppo-conservative-control"] == "FAIL"


@pytest.mark.parametrize(("premise", "control", "verdict"), [(1.5, 0.4, "PASS"), (0.7, 0.4, "FAIL")])
def test_the_self_minus_others_control_is_read_against_the_premise_setting(premise, control, verdict):
    # claims v2.1: a label-noise floor in both settings (here 0.4) is not the members' planted error; the control
    # passes when sharing the quirk removes at least the premise threshold (0.5) of the premise setting's value
    v = _verdicts(_claim_rows({"premise": premise, "control": control}, {"premise": True, "control": False}))
    assert v["0-control"] == verdict


def test_claims_on_records_without_the_v2_premise_metric_leave_the_claims_untested():
    rows = [
        r
        for r in _claim_rows({"premise": 1.0, "control": 0.05}, {"premise": True, "control": False})
        if r["metric"] != "self_minus_others"
    ]
    v = _verdicts(rows)
    assert v["0-premise"] == "FAIL" and v["2-bon-conservative-premise"] == "UNTESTED"


def test_claims_use_smoothed_peaks_and_paired_differences():
    out = {
        c.id: c.observed
        for c in claims.check(
            _claim_rows({"premise": 1.0, "control": 0.05}, {"premise": True, "control": False}), CLAIM_CFG
        )
    }
    o = out["1-single-overoptimises-bon-premise"]
    # single best-of-n gold [0, .5, 1, .6, .2]: 3-point moving average peaks at .7 (not the raw 1.0); final = mean of
    # the last three = .6; the seeds' common offset cancels in the paired fall
    assert o["gold_peak"] == pytest.approx(0.71) and o["gold_final"] == pytest.approx(0.61)
    assert o["fall"] == pytest.approx(0.1) and o["fall_ci95"] == pytest.approx(0.0, abs=1e-12)
    assert out["2-bon-conservative-premise"]["d16_wco_minus_single"] == pytest.approx(0.4)


CLAIMS = [  # claims v2.1 (README "Pre-registration v2", "Pre-registration v2.1")
    "0-premise",
    "0-control",
    "1-single-overoptimises-bon-premise",
    "1-single-overoptimises-ppo-premise",
    "2-bon-conservative-premise",
    "3-ppo-conservative-premise",
    "3b-ppo-small-penalty-premise",
    "5-shared-exploit-premise",
    "1-single-overoptimises-bon-control",
    "1-single-overoptimises-ppo-control",
    "2-bon-conservative-control",
    "3-ppo-conservative-control",
    "5-shared-exploit-control",
]  # 4-pretrain-finetune-single runs in `full` only (underpowered at the quick budget, README Pre-registration v2.1)
# the verdicts of the deciding world-v2 run, claims v2.1 (README "Results (quick preset, world v2, claims v2.1, 3
# seeds)"); the slow test re-runs that preset, whose records are deterministic
KNOWN_FAILS = {
    "1-single-overoptimises-bon-premise": "p = 0.1: the single member's best-of-n gold plateaus (fall 0.016)",
    "1-single-overoptimises-bon-control": "p = 0.1: best-of-n gold plateaus (fall 0.0005)",
    "1-single-overoptimises-ppo-premise": "underpowered at 3 seeds: fall 0.27 [−0.25, 0.80], MDE 0.69",
    "1-single-overoptimises-ppo-control": "the premise setting's run (same member): underpowered, fall 0.27",
    "2-bon-conservative-premise": "UNTESTED (1-bon-premise fails); would pass: WCO − single +0.75 [0.45, 1.04]",
    "2-bon-conservative-control": "UNTESTED (1-bon-control fails)",
    "3-ppo-conservative-premise": "UNTESTED (1-ppo-premise fails); ensembles fall more than the single member",
    "3b-ppo-small-penalty-premise": "UNTESTED (1-ppo-premise fails)",
    "3-ppo-conservative-control": "UNTESTED (1-ppo-control fails)",
    "5-shared-exploit-control": "the shared exploit is the shared quirk: features fall (−0.34) under PPO",
}
UNDECIDED: dict[str, str] = {}


@pytest.mark.slow
@pytest.mark.parametrize("claim", CLAIMS)
def test_quick_claims(check_quick_claim, claim):
    if claim in UNDECIDED:
        pytest.skip(f"decided by issue 31's run: {UNDECIDED[claim]}")
    check_quick_claim("ensembles", claim, KNOWN_FAILS)
