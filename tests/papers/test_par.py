"""papers.par: PAR and every shaping baseline against hand-computed values, PAR's properties, the RM baselines'
losses and WARM's average, gradients, config validation and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from reprozoo.common.config import parse
from reprozoo.common.results import record, resolve_verdicts
from reprozoo.common.reward import RewardModel, bradley_terry_loss
from reprozoo.common.worlds.preference import WorldConfig
from reprozoo.papers.par.baselines import (
    NORMAL_Q85,
    OdinRewardModel,
    RewardShaper,
    RunningStats,
    length_penalty,
    lsc_reward,
    odin_loss,
    pearson,
    reg_loss,
    train_pairwise,
    warm_average,
)
from reprozoo.papers.par.claims import check
from reprozoo.papers.par.experiment import METHODS, PRESETS, Config, run, world_of
from reprozoo.papers.par.method import par_reward, sigmoid_reward

pytestmark = pytest.mark.usefixtures("float64_default")  # hand-computed checks in float64


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# --- PAR ---


@pytest.mark.points(2)
def test_par_hand_computed():
    r = torch.tensor([0.0, 1.0, 2.0])
    refs = torch.tensor([[0.0, 0.0], [0.0, 2.0], [1.0, 3.0]])
    expected = [0.5, (sig(1) + sig(-1)) / 2, (sig(1) + sig(-1)) / 2]
    torch.testing.assert_close(par_reward(r, refs), torch.tensor(expected))
    assert float(par_reward(torch.tensor([2.0]), torch.tensor([[0.0]]), k=2.0)) == pytest.approx(sig(4.0))
    assert float(par_reward(torch.tensor([0.5]), torch.tensor([[1.0, -1.0, 3.0]]), k=3.0)) == pytest.approx(
        (sig(-1.5) + sig(4.5) + sig(-7.5)) / 3
    )


@pytest.mark.points(1)
def test_par_bounded_monotone_and_centred_at_the_reference():
    gen = torch.Generator().manual_seed(0)
    refs = torch.randn(1, 10, generator=gen)
    r = torch.linspace(-4, 4, 401)
    for k in (1.0, 2.0, 3.0):
        v = par_reward(r, refs.expand(401, 10), k)
        assert bool(((v > 0) & (v < 1)).all())  # strictly inside (0, 1) while float64 can tell
        assert bool((v.diff() > 0).all())  # strictly increasing in r
    far = par_reward(torch.tensor([-1e6, 1e6]), refs.expand(2, 10))
    assert 0 <= float(far[0]) and float(far[1]) <= 1  # and never outside [0, 1] (saturates, no overflow)
    # centred: ½ where r equals every reference; symmetric about it
    same = torch.full((4, 5), 1.7)
    torch.testing.assert_close(par_reward(torch.full((4,), 1.7), same), torch.full((4,), 0.5))
    d = torch.tensor([0.3, 2.0])
    torch.testing.assert_close(par_reward(1.7 + d, same[:2]) + par_reward(1.7 - d, same[:2]), torch.ones(2))


@pytest.mark.points(1)
def test_design_principle_2_fast_then_slow():
    """σ's slope is largest at the reference and vanishes far above it."""
    r = torch.tensor([0.0, 2.0, 6.0], requires_grad=True)
    par_reward(r, torch.zeros(3, 1)).sum().backward()
    g = r.grad
    assert g[0] == pytest.approx(0.25) and g[0] > g[1] > g[2] and g[2] < 0.01


@pytest.mark.points(1)
def test_uncentred_sigmoid_is_par_with_zero_references():
    r = torch.tensor([-2.0, 0.0, 3.0])
    torch.testing.assert_close(sigmoid_reward(r, 2.0), torch.tensor([sig(-4), 0.5, sig(6)]))
    torch.testing.assert_close(sigmoid_reward(r, 2.0), par_reward(r, torch.zeros(3, 4), 2.0))
    # centred and uncentred differ once the references move away from 0
    assert not torch.allclose(par_reward(r, torch.full((3, 4), 2.0)), sigmoid_reward(r))


@pytest.mark.points(1)
def test_par_gradient_matches_analytic_and_finite_differences():
    r = torch.tensor([0.3, -1.2], requires_grad=True)
    refs = torch.tensor([[0.0, 1.0, -2.0], [0.5, 0.5, 4.0]])
    torch.autograd.gradcheck(lambda x: par_reward(x, refs, 2.0), (r,))
    par_reward(r, refs, 2.0).sum().backward()
    s = torch.sigmoid(2.0 * (r.detach()[:, None] - refs))
    torch.testing.assert_close(r.grad, (2.0 * s * (1 - s)).mean(-1))


# --- shaping baselines ---


def test_running_stats_match_numpy_over_all_rewards_seen():
    st = RunningStats()
    st.update(torch.tensor([1.0, 2.0, 3.0]))
    assert st.mean == pytest.approx(2.0) and st.std == pytest.approx(math.sqrt(2 / 3))
    st.update(torch.tensor([5.0]))
    seen = np.array([1.0, 2.0, 3.0, 5.0])
    assert (st.n, st.mean, st.std) == (4, pytest.approx(2.75), pytest.approx(seen.std()))
    assert (st.min, st.max) == (1.0, 5.0)
    gen = np.random.default_rng(0)
    st2, all_ = RunningStats(), []
    for b in (7, 1, 30, 2):
        x = gen.normal(3, 2, size=b)
        all_.append(x)
        st2.update(torch.tensor(x))
    cat = np.concatenate(all_)
    assert st2.mean == pytest.approx(cat.mean()) and st2.std == pytest.approx(cat.std())


def test_meanstd_clip_minmax_hand_computed():
    st = RunningStats()
    st.update(torch.tensor([1.0, 2.0, 3.0, 5.0]))
    mu, sd = 2.75, math.sqrt(8.75 / 4)
    torch.testing.assert_close(st.normalize(torch.tensor([2.75, 5.0])), torch.tensor([0.0, 2.25 / sd]))
    torch.testing.assert_close(st.clip(torch.tensor([0.0, 3.0, 10.0])), torch.tensor([mu - sd, 3.0, mu + sd]))
    torch.testing.assert_close(st.minmax(torch.tensor([1.0, 3.0, 5.0])), torch.tensor([0.0, 0.5, 1.0]))
    one = RunningStats()
    one.update(torch.tensor([4.0]))
    assert one.std == 0.0 and float(one.normalize(torch.tensor([5.0]))) == 1.0  # σ = 0 → divide by 1


def test_shaper_updates_statistics_with_the_current_batch_first():
    """Official order: update with this batch, then normalise; two batches → statistics of both."""
    sh = RewardShaper("meanstd", len_penalty=0.0)
    torch.testing.assert_close(sh(torch.tensor([1.0, 3.0]), None, None), torch.tensor([-1.0, 1.0]))
    out = sh(torch.tensor([5.0, 7.0]), None, None)
    seen = np.array([1.0, 3.0, 5.0, 7.0])
    torch.testing.assert_close(out, torch.tensor((np.array([5.0, 7.0]) - seen.mean()) / seen.std()))
    mm = RewardShaper("minmax", len_penalty=0.0)
    torch.testing.assert_close(mm(torch.tensor([2.0, 4.0, 3.0]), None, None), torch.tensor([0.0, 1.0, 0.5]))
    torch.testing.assert_close(mm(torch.tensor([3.0]), None, None), torch.tensor([0.5]))  # min/max still 2, 4


@pytest.mark.points(2)
def test_lsc_is_log_sigmoid_of_the_85th_percentile_centred_reward():
    assert NORMAL_Q85 == pytest.approx(1.0364333894937898)
    from scipy.stats import norm

    refs = torch.tensor([[0.0, 2.0], [1.0, 1.5]])
    r = torch.tensor([3.0, 0.0])
    ref85 = [
        norm.ppf(0.85, loc=1.0, scale=math.sqrt(2) + 1e-5),
        norm.ppf(0.85, loc=1.25, scale=math.sqrt(0.125) + 1e-5),
    ]
    expected = [math.log(sig(3.0 - ref85[0])), math.log(sig(0.0 - ref85[1]))]
    torch.testing.assert_close(lsc_reward(r, refs), torch.tensor(expected))
    assert ref85[0] == pytest.approx(1 + 1.036 * math.sqrt(2), abs=1e-3)  # μ + 1.036 σ


@pytest.mark.points(1)
def test_length_penalty_and_which_methods_pay_it():
    torch.testing.assert_close(
        length_penalty(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([9, 10, 13]), 10, 0.01),
        torch.tensor([1.0, 1.0, 0.97]),
    )
    sh = RewardShaper("vanilla", valid_len=10, len_penalty=0.5)
    torch.testing.assert_close(sh(torch.tensor([1.0]), torch.tensor([12]), None), torch.tensor([0.0]))
    torch.testing.assert_close(sh(torch.tensor([1.0]), None, None), torch.tensor([1.0]))  # ODIN: no length term
    # PAR applies the penalty before the sigmoid (official order)
    par = RewardShaper("par", valid_len=10, len_penalty=0.5)
    torch.testing.assert_close(par(torch.tensor([1.0]), torch.tensor([12]), torch.zeros(1, 1)), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="unknown shaping"):
        RewardShaper("nope")


def test_reg_loss_hand_computed():
    v = reg_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, -1.0]), coef=0.005)
    expected = np.mean([-math.log(sig(1)) + 0.005 * 1, -math.log(sig(3)) + 0.005 * 5])
    assert float(v) == pytest.approx(expected)
    assert float(reg_loss(torch.tensor([1.0]), torch.tensor([0.0]), coef=0.0)) == pytest.approx(-math.log(sig(1)))


def test_odin_loss_terms():
    q = torch.tensor([1.0, 2.0, 0.5, 3.0])
    ell = torch.tensor([0.2, -0.1, 0.4, 0.0])
    length = torch.tensor([3.0, 5.0, 4.0, 9.0])
    wq, wl = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    t = odin_loss(q, ell, length, wq, wl, half=2)
    r = (q + ell).tolist()
    assert float(t["vanilla"]) == pytest.approx(np.mean([-math.log(sig(r[0] - r[2])), -math.log(sig(r[1] - r[3]))]))
    rho = lambda a, b: np.corrcoef(a.numpy(), b.numpy())[0, 1]  # noqa: E731
    assert float(pearson(q, length)) == pytest.approx(rho(q, length))
    assert float(t["length"]) == pytest.approx(abs(rho(q, length)) - rho(ell, length))
    assert float(t["orthogonal"]) == pytest.approx(0.0)  # orthogonal heads
    par = odin_loss(q, ell, length, wq, -3 * wq, half=2)["orthogonal"]
    assert float(par) == pytest.approx(1.0, abs=1e-6)  # (anti-)parallel heads: |cos| = 1
    assert float(t["total"]) == pytest.approx(float(t["vanilla"] + t["length"] + t["orthogonal"]))


def test_odin_model_heads_and_gradients_reach_both():
    torch.set_default_dtype(torch.float32)
    base = RewardModel.tiny(10, d_model=16, n_layers=1, max_len=12, seed=0)
    odin = OdinRewardModel(base)
    ids = torch.randint(0, 10, (6, 8), generator=torch.Generator().manual_seed(0))
    am = torch.ones_like(ids)
    am[:3, 6:] = 0
    q, ell = odin.both(ids, am)
    torch.testing.assert_close(odin(ids, am), q)
    torch.testing.assert_close(q, base(ids, am))  # the quality head is the base RM's head
    t = odin_loss(q, ell, am.sum(-1), odin.head.weight, odin.length_head.weight, half=3)
    t["total"].backward()
    for p in (odin.head.weight, odin.length_head.weight, next(odin.body.parameters())):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_warm_averages_every_parameter():
    torch.set_default_dtype(torch.float32)
    ms = [torch.nn.Linear(3, 2) for _ in range(3)]
    avg = warm_average(ms)
    torch.testing.assert_close(avg.weight, torch.stack([m.weight for m in ms]).mean(0))
    torch.testing.assert_close(avg.bias, torch.stack([m.bias for m in ms]).mean(0))
    assert avg is not ms[0] and not torch.equal(ms[0].weight, avg.weight)  # members untouched
    x = torch.randn(4, 3)
    with torch.no_grad():  # linear in θ: the weight average is the output average
        torch.testing.assert_close(avg(x), torch.stack([m(x) for m in ms]).mean(0))


def test_train_pairwise_with_bt_loss_learns_a_preference():
    torch.set_default_dtype(torch.float32)
    gen = torch.Generator().manual_seed(0)
    n = 64
    ids = torch.randint(1, 8, (2 * n, 6), generator=gen)
    ids[:n, -1] = 0  # chosen sequences end in token 0
    am = torch.ones_like(ids)
    rm = RewardModel.tiny(8, d_model=16, n_layers=1, max_len=8, seed=0)

    def loss(m, x, mask, half):
        r = m(x, mask)
        return bradley_terry_loss(r[:half], r[half:])

    losses = train_pairwise(rm, (ids[:n], am[:n]), (ids[n:], am[n:]), loss, steps=60, batch_size=32, lr=3e-3, seed=0)
    assert losses[-1] < 0.3 < losses[0]
    with torch.no_grad():
        assert float((rm(ids[:n], am[:n]) > rm(ids[n:], am[n:])).float().mean()) > 0.95


# --- config and CLI ---


def test_config_validation_names_the_field(capsys):
    for argv, flag in (
        (["--runs", "vanilla", "nope"], "--runs"),
        (["--n-refs", "2", "--runs", "par", "par_m3"], "--n-refs"),  # ablation par_m3 needs M ≥ 3
        (["--kl-coef", "-1"], "--kl-coef"),
        (["--train-prompts", "100"], "--train-prompts"),
    ):
        with pytest.raises(SystemExit):
            parse(Config, PRESETS, ["--preset", "quick", *argv])
        assert flag in capsys.readouterr().err
    cfg = parse(Config, PRESETS, ["--preset", "quick"])
    assert cfg.iterations == cfg.prompt_epochs * cfg.train_prompts // cfg.ppo_batch


def test_cli_smoke(run_cli, tmp_path):
    proc = run_cli("reprozoo.papers.par", "--preset", "smoke", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["paper"] == "par" and len(summary["claims"]) == 11  # with the regime controls
    assert {c["kind"] for c in summary["claims"]} == {"premise", "claim", "control"}
    assert "par" in summary["methods"] and "claims" in proc.stdout
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    par_rl = [r["value"] for r in rows if r["method"] == "par" and r["metric"] == "rl_reward"]
    assert par_rl and all(0 < v < 1 for v in par_rl)
    beats = [r["value"] for r in rows if r["method"] == "vanilla" and r["metric"] == "beats_all_refs"]
    assert beats and all(0 <= v <= 1 for v in beats)  # claims v2's sign statistic is measured (context)
    excess = {r["step"]: r["value"] for r in rows if r["method"] == "vanilla" and r["metric"] == "excess_sd"}
    share = {r["step"]: r["value"] for r in rows if r["method"] == "vanilla" and r["metric"] == "excess_1sd"}
    assert excess and set(share) == set(excess) and all(0 <= v <= 1 for v in share.values())  # premise 1b's excess
    assert all(share[t] <= beats_t for t, beats_t in zip(sorted(share), beats, strict=True))  # ≥ 1 SD above ⊂ above
    assert [r for r in rows if r["method"] == "par" and r["metric"] == "ref_proxy_mean"]
    beatable = {r["metric"]: r["value"] for r in rows if r["method"] == "par" and "bon_beats" in r["metric"]}
    assert {k.split("_beats")[0] for k in beatable} == {"gold_bon", "proxy_bon"}
    assert all(0 <= v <= 1 for v in beatable.values())  # premise 1c is measured
    assert beatable["gold_bon_beats_all"] <= beatable["gold_bon_beats_frac"]


# --- claims v2 on synthetic rows ---

STEPS = list(range(0, 105, 5))
RISE_AND_COLLAPSE = [0.5 + 0.05 * min(t, 30) / 5 - 0.05 * max(t - 30, 0) / 5 * 0.6 for t in STEPS]  # .5 → .8 → .38
RISE_AND_HOLD = [min(0.5 + 0.05 * t / 5, 0.8) for t in STEPS]


def _par_rows(
    hold: dict[str, list[float]], excess: float = 2.0, ref_mean: float = 3.0, beatable: float = 0.85
) -> list[dict]:
    """3 seeds of win-rate curves (a per-seed offset shared by every run), a rising proxy, the rollouts' excess
    over the max of their references in reference SDs (rising to `excess`), the references' mean proxy reward, and
    the share of references the gold-best SFT sample beats."""
    rows = []
    for seed in range(3):
        j = 0.01 * seed
        for name in (*METHODS, "par_m1", "sigmoid", "vanilla_gold"):
            wr = hold.get(name, RISE_AND_COLLAPSE)
            for t, w in zip(STEPS, wr, strict=True):
                rows.append(record(name, seed, "winrate", w + j, step=t))
                if t:
                    rows.append(record(name, seed, "proxy", t / 10, step=t))
                    rows.append(record(name, seed, "excess_sd", excess * t / 100, step=t))
        rows.append(record("par", seed, "ref_proxy_mean", ref_mean))
        rows.append(record("par", seed, "gold_bon_beats_frac", beatable + j))
        rows.append(record("par", seed, "random_beats_frac", 0.5 + j))
    return rows


PAR_CFG = Config(preset="quick", runs=[*METHODS, "par_m1", "sigmoid", "vanilla_gold"])
HOLDS = {"par": RISE_AND_HOLD, "par_m1": RISE_AND_HOLD, "vanilla_gold": RISE_AND_HOLD}


def _par_verdicts(rows: list[dict]) -> dict[str, str]:
    return {c.id: c.verdict for c in resolve_verdicts(check(rows, PAR_CFG))}


def test_claims_pass_when_premises_hold_and_the_control_behaves_as_predicted():
    sigmoid_lower = [w - 0.1 for w in RISE_AND_HOLD]
    v = _par_verdicts(_par_rows(HOLDS | {"sigmoid": sigmoid_lower}))
    assert v == dict.fromkeys(v, "PASS") and len(v) == 10, v
    kinds = {c.id: c.kind for c in check(_par_rows(HOLDS), PAR_CFG)}
    assert kinds["0-control-no-proxy-error"] == "control"
    assert kinds["1-vanilla-hacks"] == kinds["1b-premise-par-regime"] == kinds["5-premise-proxy-offset"] == "premise"
    assert kinds["1c-premise-refs-beatable"] == "premise" and kinds["1c-control-random-pick"] == "control"
    requires = {c.id: c.requires for c in check(_par_rows(HOLDS), PAR_CFG)}
    assert requires["2-par-holds"] == ("1-vanilla-hacks", "1b-premise-par-regime", "1c-premise-refs-beatable")


def test_failed_premises_make_claims_untested_and_a_collapsing_control_fails():
    v = _par_verdicts(_par_rows({"par": RISE_AND_HOLD, "par_m1": RISE_AND_HOLD}, excess=0.5, ref_mean=0.1))
    assert v["1-vanilla-hacks"] == "PASS" and v["1b-premise-par-regime"] == "FAIL"
    for c in ("2-par-holds", "3-par-best", "4-one-reference", "5-centred-beats-uncentred"):
        assert v[c] == "UNTESTED", c
    assert v["0-control-no-proxy-error"] == "FAIL"  # PPO on gold collapses here: not as predicted
    v = _par_verdicts(_par_rows(HOLDS, beatable=0.6))  # gold-aligned responses beat only 60% of the references
    assert v["1c-premise-refs-beatable"] == "FAIL" and v["2-par-holds"] == "UNTESTED"
    assert v["5-centred-beats-uncentred"] != "UNTESTED"  # claim 5 does not rest on PAR's regime


def test_regime_controls_pass_only_where_the_control_world_switches_the_regime_off():
    cfg = Config(preset="quick", runs=[*PAR_CFG.runs, "vanilla_ctrl", "par_ctrl"], control_world=WorldConfig())
    rows = _par_rows(HOLDS)
    ctrl = []
    for r in rows:  # the control world's runs: copies of Vanilla's / PAR's records
        if r["method"] in ("vanilla", "par"):
            ctrl.append(r | {"method": r["method"] + "_ctrl"})
    v = {c.id: c.verdict for c in resolve_verdicts(check(rows + ctrl, cfg))}
    assert v["1b-control-regime-off"] == "FAIL"  # the regime is still on there
    for r in ctrl:
        if r["metric"] == "excess_sd":  # the excess shrinks below 1 reference SD (1.9 -> 0.6)
            r["value"] *= 0.3
    v = {c.id: c.verdict for c in resolve_verdicts(check(rows + ctrl, cfg))}
    assert v["1b-control-regime-off"] == "PASS"
    for r in rows:  # a "random" pick that beats most references: the measurement is not what it claims
        if r["metric"] == "random_beats_frac":
            r["value"] = 0.8
    assert {c.id: c.verdict for c in check(rows, cfg)}["1c-control-random-pick"] == "FAIL"
    with pytest.raises(ValueError, match="control_world"):
        Config(preset="quick", runs=["vanilla_ctrl"]).validate()


def test_claims_read_smoothed_peaks_final_means_and_paired_cis():
    out = {c.id: c.observed for c in check(_par_rows(HOLDS), PAR_CFG)}
    o = out["1-vanilla-hacks"]
    # the curve peaks at .8 at step 30 (one evaluation); the 3-point moving average peaks at (.75 + .8 + .77) / 3
    assert o["winrate_peak"] == pytest.approx((0.75 + 0.8 + 0.77) / 3 + 0.01)
    assert o["winrate_final"] == pytest.approx(np.mean(RISE_AND_COLLAPSE[-3:]) + 0.01)
    assert o["fall_ci95"] == pytest.approx(0.0, abs=1e-12)  # the per-seed offset cancels in the paired fall
    assert out["4-one-reference"]["m1_minus_m"] == pytest.approx(0.0, abs=1e-12)
    # a noisy M = 1 run: equivalence within ±0.10 needs the whole 95% CI inside the margin
    rows = _par_rows(HOLDS)
    for r in rows:
        if r["method"] == "par_m1" and r["metric"] == "winrate":
            r["value"] += (0.2, -0.2, 0.0)[r["seed"]]
    v = _par_verdicts(rows)
    assert v["4-one-reference"] == "FAIL"


# --- the quick preset's claims (slow) ---

CLAIMS = [  # claims v2 (README "Pre-registration v2")
    "0-control-no-proxy-error",
    "1-vanilla-hacks",
    "1b-premise-par-regime",
    "1c-premise-refs-beatable",
    "1c-control-random-pick",
    "1b-control-regime-off",
    "2-par-holds",
    "3-par-best",
    "4-one-reference",
    "5-premise-proxy-offset",
    "5-centred-beats-uncentred",
]
# The verdicts of the pre-registration v5 deciding quick run (README "Results"): every premise and control PASSes,
# claims 4 (on its own fresh seeds 23-27) and 5 PASS; claims 2 and 3 FAIL on Clip alone (as in v4).
KNOWN_FAILS: dict[str, str] = {
    "2-par-holds": "PAR - Clip -0.017 [-0.104, 0.069]: Clip ties PAR here (paper +0.31); the other four parts PASS",
    "3-par-best": "PAR - Clip lower bound -0.104 < -0.10 (a tie); Vanilla, Reg, Meanstd, LSC clear the margin",
}


@pytest.mark.slow
@pytest.mark.parametrize("claim", CLAIMS)
def test_quick_claims(check_quick_claim, claim):
    check_quick_claim("par", claim, KNOWN_FAILS)


@pytest.mark.slow  # ≈ 15 s with a cold control world
def test_regime_control_runs_train_in_the_control_world():
    """vanilla_ctrl / par_ctrl build their proxy, references and PPO in `control_world` (its own cache entry)."""
    ctrl = dataclasses.replace(PRESETS["smoke"].world, feature_penalty=0.0)
    cfg = dataclasses.replace(PRESETS["smoke"], runs=["par", "vanilla_ctrl"], control_world=ctrl)
    cfg.validate()
    assert world_of(cfg, "vanilla_ctrl") == ctrl and world_of(cfg, "par") == cfg.world
    rows = run(cfg)
    proxy = {r["method"]: r["value"] for r in rows if r["metric"] == "proxy" and r["step"] == 2}
    assert proxy["par"] != proxy["vanilla_ctrl"]  # a different world: different gold labels, proxy and references
