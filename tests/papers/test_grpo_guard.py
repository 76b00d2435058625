"""papers.grpo_guard: the Flow-GRPO SDE step and log-prob, RatioNorm, the reweighting, the clipped loss, config, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from reprozoo.common.config import parse
from reprozoo.papers.grpo_guard.baselines import clipped_loss, flow_grpo_loss, group_advantages, kl_penalty
from reprozoo.papers.grpo_guard.experiment import D_PAPER, PRESETS, Config, sigmas
from reprozoo.papers.grpo_guard.method import grpo_guard_loss, ratio_norm, reweight, sde_std, sde_step

pytestmark = pytest.mark.usefixtures("float64_default")  # hand-computed checks in float64


def _gaussian_logp(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """mean over dims of log N(x; mean, scale²), float64 by torch.distributions."""
    return torch.distributions.Normal(mean, scale).log_prob(x).flatten(1).mean(1)


@pytest.mark.points(1)
def test_sde_std_by_hand():
    sigma = torch.tensor([1.0, 0.75, 0.25])
    std = sde_std(sigma, 0.9, 0.7)  # at σ = 1 the denominator uses σ_1 = 0.9
    expect = 0.7 * torch.sqrt(torch.tensor([1 / (1 - 0.9), 0.75 / 0.25, 0.25 / 0.75]))
    torch.testing.assert_close(std, expect)


@pytest.mark.points(2)
def test_sde_step_mean_and_logprob_match_a_float64_gaussian():
    torch.manual_seed(0)
    b = 5
    x, v, noise = torch.randn(b, 1, 4, 4), torch.randn(b, 1, 4, 4), torch.randn(b, 1, 4, 4)
    sigma = torch.tensor([1.0, 0.9, 0.6, 0.4, 0.25])
    nxt = torch.tensor([0.9, 0.6, 0.4, 0.25, 0.0])
    prev, logp, mean, std, sq = sde_step(x, v, sigma, nxt, 0.96, 0.7, noise=noise)
    s4 = sigma.view(-1, 1, 1, 1)
    dt = (nxt - sigma).view(-1, 1, 1, 1)
    st = 0.7 * torch.sqrt(s4 / (1 - torch.where(s4 == 1, torch.tensor(0.96), s4)))
    mu = x * (1 + st**2 / (2 * s4) * dt) + v * (1 + st**2 * (1 - s4) / (2 * s4)) * dt
    torch.testing.assert_close(mean, mu)
    torch.testing.assert_close(prev, mu + st * torch.sqrt(-dt) * noise)
    torch.testing.assert_close(logp, _gaussian_logp(prev, mu, st * torch.sqrt(-dt)))
    torch.testing.assert_close(std, st.flatten())
    torch.testing.assert_close(sq, torch.sqrt(-dt).flatten())
    # a given x' is scored, not resampled; the density is a MEAN over the 16 dimensions
    other = torch.randn(b, 1, 4, 4)
    _, logp2, _, _, _ = sde_step(x, v, sigma, nxt, 0.96, 0.7, prev=other)
    torch.testing.assert_close(logp2, _gaussian_logp(other, mu, st * torch.sqrt(-dt)))


@pytest.mark.points(1)
@pytest.mark.hidden
def test_log_ratio_is_the_biased_gaussian_shift():
    """log ρ = mean_d(εΔ)/s − mean_d(Δ²)/(2s²) for x' = μ_old + sε and Δ = μ_θ − μ_old (the paper's premise)."""
    torch.manual_seed(1)
    x, v_old, noise = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    sigma, nxt = torch.full((3,), 0.4), torch.full((3,), 0.25)
    prev, logp_old, mu_old, std, sq = sde_step(x, v_old, sigma, nxt, 0.96, 0.7, noise=noise)
    _, logp, mu, _, _ = sde_step(x, v_old + 0.3 * torch.randn(3, 1, 4, 4), sigma, nxt, 0.96, 0.7, prev=prev)
    s = (std * sq).view(-1, 1, 1, 1)
    delta = mu - mu_old
    expect = (noise * delta).flatten(1).mean(1) / s.flatten() - delta.pow(2).flatten(1).mean(1) / (2 * s.flatten() ** 2)
    torch.testing.assert_close(logp - logp_old, expect)


@pytest.mark.points(2)
def test_ratio_norm_cancels_the_shift_in_value_and_gradient():
    """With x' = μ_old + sε and μ_θ = μ_old + Δ: ρ̃ = exp(s̄·mean(εΔ)/s) exactly (b cancels −Δ²/(2s²)), and so
    does its gradient with respect to Δ: ∂ρ̃/∂Δ = ρ̃·s̄·ε/(s·D). The raw ratio's gradient has the extra −Δ/s² term."""
    torch.manual_seed(2)
    b, d = 4, 16
    s = torch.full((b,), 0.05)  # σ_t √−dt, the same for the whole minibatch (one denoising step)
    std, sqrt_dt = torch.full((b,), 0.5), torch.full((b,), 0.1)
    mu_old, eps = torch.randn(b, d), torch.randn(b, d)
    x_next = mu_old + s[:, None] * eps
    delta = (0.02 * torch.randn(b, d)).requires_grad_(True)
    mu = mu_old + delta

    def logp(m):
        return (
            -((x_next - m) ** 2) / (2 * s[:, None] ** 2) - torch.log(s[:, None]) - 0.5 * math.log(2 * math.pi)
        ).mean(1)

    ratio = ratio_norm(logp(mu), logp(mu_old), mu, mu_old, std, sqrt_dt)
    s_bar = 0.5 * 0.1
    expect = torch.exp(s_bar * (eps * delta).mean(1) / s)
    torch.testing.assert_close(ratio, expect)
    (grad,) = torch.autograd.grad(ratio.sum(), delta)
    torch.testing.assert_close(grad, (expect * s_bar / s)[:, None] * eps.detach() / d)
    raw = torch.exp(logp(mu) - logp(mu_old))
    (raw_grad,) = torch.autograd.grad(raw.sum(), delta)
    analytic = raw[:, None] * (eps / s[:, None] - delta / s[:, None] ** 2) / d
    torch.testing.assert_close(raw_grad, analytic.detach())
    shift = torch.log(raw.detach()) - (eps * delta.detach()).mean(1) / s  # the raw ratio's left shift
    torch.testing.assert_close(shift, -delta.detach().pow(2).mean(1) / (2 * s**2))
    assert bool((shift < 0).all())


@pytest.mark.points(1)
def test_reweight_divides_by_the_squared_mean_sqrt_dt():
    loss = torch.tensor(0.3)
    sqrt_dt = torch.tensor([0.2, 0.4])
    torch.testing.assert_close(reweight(loss, sqrt_dt), torch.tensor(0.3 / 0.3**2))
    torch.testing.assert_close(reweight(torch.tensor(-2.0), torch.full((3,), 0.5)), torch.tensor(-8.0))


@pytest.mark.points(2)
def test_clipped_loss_by_hand():
    eps = 0.1
    ratio = torch.tensor([1.5, 0.5, 1.05, 1.5, 0.5], requires_grad=True)
    adv = torch.tensor([2.0, -1.0, 1.0, -1.0, 2.0])
    loss = clipped_loss(ratio, adv, eps)
    # A>0, ρ>1+ε: −A(1+ε) = −2.2, no gradient; A<0, ρ<1−ε: −A(1−ε) = 0.9, no gradient; inside: −Aρ = −1.05;
    # A<0, ρ>1+ε: max(1.5, 1.1) = 1.5 (unclipped); A>0, ρ<1−ε: max(−1.0, −1.8) = −1.0 (unclipped)
    torch.testing.assert_close(loss, torch.tensor((-2.2 + 0.9 - 1.05 + 1.5 - 1.0) / 5))
    loss.backward()
    torch.testing.assert_close(ratio.grad, torch.tensor([0.0, 0.0, -1.0, 1.0, -2.0]) / 5)


@pytest.mark.points(1)
def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 3.0, 10.0, 10.0, 0.0, 5.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    adv = group_advantages(rewards, groups, clip=5.0)
    torch.testing.assert_close(adv, torch.tensor([-1 / 1.0001, 1 / 1.0001, 0.0, 0.0, -2.5 / 2.5001, 2.5 / 2.5001]))
    tight = group_advantages(torch.tensor([0.0, 0.0, 0.0, 1.0]), torch.zeros(4, dtype=torch.long), clip=1.0)
    assert float(tight.max()) == 1.0  # √3 clipped to 1


@pytest.mark.points(1)
def test_kl_penalty_by_hand():
    mean = torch.tensor([[1.0, 3.0], [0.0, 0.0]])
    ref = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    std = torch.tensor([1.0, 2.0])
    # sample 1: mean(1, 4)/2 = 1.25; sample 2: mean(0, 4)/(2·4) = 0.25
    torch.testing.assert_close(kl_penalty(mean, ref, std), torch.tensor(0.75))


@pytest.mark.points(1)
@pytest.mark.hidden
def test_grpo_guard_loss_composes_ratio_norm_clip_and_reweighting():
    torch.manual_seed(3)
    logp, logp_old = torch.randn(6) * 0.01, torch.randn(6) * 0.01
    mu, mu_old = torch.randn(6, 4), torch.randn(6, 4)
    std, sq = torch.full((6,), 0.8), torch.full((6,), 0.3)
    adv = torch.randn(6)
    loss, ratio = grpo_guard_loss(logp, logp_old, mu, mu_old, std, sq, adv, 2e-3)
    torch.testing.assert_close(ratio, ratio_norm(logp, logp_old, mu, mu_old, std, sq))
    torch.testing.assert_close(loss, clipped_loss(ratio, adv, 2e-3) / 0.09)
    plain, _ = grpo_guard_loss(logp, logp_old, mu, mu_old, std, sq, adv, 2e-3, reweighting=False)
    torch.testing.assert_close(plain, clipped_loss(ratio, adv, 2e-3))


def test_flow_grpo_loss_is_on_policy_neutral_and_adds_the_kl():
    logp = torch.tensor([-1.0, -2.0])
    adv = torch.tensor([1.0, -1.0])
    loss, ratio = flow_grpo_loss(logp, logp, adv, 1e-4)
    torch.testing.assert_close(ratio, torch.ones(2))
    torch.testing.assert_close(loss, torch.tensor(0.0))
    mean, ref, std = torch.ones(2, 3), torch.zeros(2, 3), torch.ones(2)
    kl, _ = flow_grpo_loss(logp, logp, adv, 1e-4, beta=0.04, mean=mean, mean_ref=ref, std=std)
    torch.testing.assert_close(kl, torch.tensor(0.04 * 0.5))


def test_schedule_is_sd3_shifted_and_eps_is_dimension_matched():
    cfg = PRESETS["quick"]
    sig = sigmas(cfg.steps, cfg.shift).double()
    lin = torch.linspace(1, 0.1, 10, dtype=torch.float64)
    torch.testing.assert_close(sig[:-1], 3 * lin / (1 + 2 * lin), atol=1e-6, rtol=0)
    assert float(sig[-1]) == 0.0
    assert cfg.trained_steps() == 9  # ⌊10·0.99⌋: steps 0-8, as the official timestep_fraction
    assert cfg.eps("flow_grpo", "official") == 1e-4 and cfg.eps("grpo_guard", "official") == 2e-6
    assert cfg.eps("flow_grpo", "matched") == pytest.approx(1e-4 * math.sqrt(D_PAPER / 64)) == pytest.approx(3.2e-3)
    assert cfg.eps("ratio_norm", "matched") == pytest.approx(6.4e-5)


def test_config_rejects_bad_values(capsys):
    for argv, name in (
        (["--methods", "ppo"], "methods"),
        (["--clip", "wide"], "clip"),
        (["--image-size", "12"], "image-size"),
        (["--minibatches", "1000"], "minibatches"),
        (["--group", "1"], "group"),
    ):
        with pytest.raises(SystemExit):
            parse(Config, PRESETS, ["--preset", "smoke", *argv])
        assert f"--{name}" in capsys.readouterr().err


def test_cli_smoke_records_per_step_ratio_statistics(run_cli, tmp_path):
    args = ["--preset", "smoke", "--other-clip-seeds", "0", "--ablation-seeds", "0", "--control-seeds", "0"]
    args += ["--lever-seeds", "0", "--isolation-seeds", "0"]
    proc = run_cli("reprozoo.papers.grpo_guard", *args, "--out", str(tmp_path))
    assert "claims" in proc.stdout
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    cfg = PRESETS["smoke"]
    for method in ("flow_grpo", "grpo_guard"):
        steps = {r["step"] for r in rows if r["method"] == method and r["metric"] == "ratio_mean"}
        assert steps == set(range(cfg.trained_steps()))
        assert {r["step"] for r in rows if r["method"] == method and r["metric"] == "realism"} == {0, 1, 2}
    assert all(np.isfinite(r["value"]) for r in rows if r["metric"].startswith("ratio_"))
    bad = run_cli("reprozoo.papers.grpo_guard", "--preset", "smoke", "--methods", "ppo", expect_rc=2)
    assert "--methods" in bad.stderr


@pytest.mark.slow
def test_quick_claims_match_the_committed_verdicts(changed_quick_verdicts):
    """The quick run reproduces every committed verdict (README, Findings)."""
    assert changed_quick_verdicts("grpo_guard") == []


# ----------------------------------------------------------------------------- claims v2 on synthetic rows

_SLOPES = {  # method: (proxy gain per epoch, realism per unit of proxy, diversity per unit of proxy): Guard's frontier
    "flow_grpo": (0.14, 0.30, -0.50),  # is better than Flow-GRPO's and KL's, every premise holds
    "flow_grpo_kl": (0.11, 0.28, -0.45),
    "grpo_guard": (0.13, 0.05, -0.10),
    "ratio_norm": (0.13, 0.20, -0.30),
}
_BASE = {"proxy": 3.3, "realism": 2.95, "diversity": 3.48, "gold_rm": -0.2}


def _guard_rows(seeds=4, flow_ratio_low=0.99, control_gap=0.0, on_policy_gain=0.1, iso_slopes=None):
    from reprozoo.common.results import record

    cfg = PRESETS["quick"]
    t = cfg.trained_steps()
    rng = np.random.default_rng(2)
    rows = [record("base", 0, f"base_{m}", v) for m, v in _BASE.items()]
    main_epochs = [*range(0, cfg.epochs, cfg.eval_every), cfg.epochs]
    ctrl_epochs = list(range(0, cfg.control_epochs + 1, cfg.eval_every))
    for s in range(seeds):
        e = rng.normal(0, 0.01)
        for kind in ("main", "other_clip"):
            for j in range(t):
                low = j >= t - 2
                rows += [
                    record("flow_grpo", s, "ratio_mean", flow_ratio_low - 0.001 * j if low else 1.0, kind=kind, step=j),
                    record("flow_grpo", s, "ratio_std", 0.001 * (j + 1) ** 2, kind=kind, step=j),
                    record("grpo_guard", s, "ratio_mean", 1.0 + 1e-5, kind=kind, step=j),
                    record("grpo_guard", s, "ratio_std", 0.01 * (1 + 0.1 * j), kind=kind, step=j),
                    record("flow_grpo", s, "clip_frac_neg", 0.3 + e, kind=kind, step=j),
                    record("flow_grpo", s, "clip_frac_pos", 0.02, kind=kind, step=j),
                    record("grpo_guard", s, "clip_frac_neg", 0.2 + e, kind=kind, step=j),
                    record("grpo_guard", s, "clip_frac_pos", 0.2, kind=kind, step=j),
                ]
        for method, (gain, dr, dd) in _SLOPES.items():
            kinds = {"main": main_epochs, "other_clip": ctrl_epochs} if method != "ratio_norm" else {}
            if method == "ratio_norm":
                kinds = {"ablation": ctrl_epochs}
            if method == "flow_grpo_kl":
                kinds = {"iso_kl": main_epochs}
            if method == "grpo_guard":
                kinds["iso_eps"] = ctrl_epochs
            for kind, epochs in kinds.items():
                if kind == "iso_eps":
                    gain, dr, dd = iso_slopes or (gain, dr, dd)
                if kind == "other_clip" and method == "flow_grpo_kl":
                    continue
                for ep in epochs:
                    p = _BASE["proxy"] + gain * ep * (1 + e)
                    rows += [
                        record(method, s, "proxy", p, kind=kind, step=ep),
                        record(
                            method, s, "realism", _BASE["realism"] + dr * (p - _BASE["proxy"]) + e, kind=kind, step=ep
                        ),  # fmt: skip
                        record(
                            method,
                            s,
                            "diversity",
                            _BASE["diversity"] + dd * (p - _BASE["proxy"]) + e,
                            kind=kind,
                            step=ep,
                        ),  # fmt: skip
                        record(
                            method, s, "gold_rm", _BASE["gold_rm"] - 0.1 * (p - _BASE["proxy"]), kind=kind, step=ep
                        ),  # fmt: skip
                    ]
        for method in ("flow_grpo", "grpo_guard"):
            gap = control_gap if method == "grpo_guard" else 0.0
            for ep in ctrl_epochs:
                for metric, v in _BASE.items():
                    rows.append(record(method, s, metric, v + 0.01 * ep + gap + e / 10, kind="gold_reward", step=ep))
                    rows.append(record(method, s, metric, v + on_policy_gain * ep + e / 10, kind="on_policy", step=ep))
    return rows, cfg


def _guard_verdicts(rows, cfg):
    from reprozoo.common.results import resolve_verdicts
    from reprozoo.papers.grpo_guard.claims import check

    return {c.id: c for c in resolve_verdicts(check(rows, cfg))}


def test_claims_v2_all_pass_where_guard_has_the_better_frontier():
    got = _guard_verdicts(*_guard_rows())
    assert {c.kind for c in got.values()} == {"premise", "claim", "control"}
    assert all(c.verdict == "PASS" for c in got.values()), {k: (c.verdict, c.observed) for k, c in got.items()}
    assert got["8-control-gold-reward"].kind == "control"


def test_claims_v2_isolation_and_scaled_kl_arms():
    """Claim 6 reads the β-scaled KL arm (iso_kl); claim 9 FAILs when Guard with Flow-GRPO's clip band traces
    Flow-GRPO's frontier (the edge was only slower optimisation)."""
    got = _guard_verdicts(*_guard_rows())
    assert got["6-kl-comparison"].observed["kl_kind"] == "iso_kl"
    assert got["9-isolation-clip-band"].verdict == "PASS"
    got = _guard_verdicts(*_guard_rows(iso_slopes=_SLOPES["flow_grpo"]))
    assert got["9-isolation-clip-band"].verdict == "FAIL"
    assert got["4b-headline-frontier"].verdict == "PASS"


def test_claims_v2_no_ratio_bias_makes_the_headline_untested():
    got = _guard_verdicts(*_guard_rows(flow_ratio_low=1.01))
    assert got["1-ratio-bias-premise"].verdict == "FAIL"
    for cid in ("1b-guard-centres-ratio", "4a-headline-final", "4b-headline-frontier", "6-kl-comparison",
                "7-ablation", "9-isolation-clip-band"):  # fmt: skip
        assert got[cid].verdict == "UNTESTED", cid
    assert got["5-proxy-growth"].verdict == "PASS"  # needs only the over-optimisation regime


def test_claims_v2_controls_use_a_seed_noise_tolerance_and_need_a_learning_run():
    from reprozoo.papers.grpo_guard.claims import TOL

    got = _guard_verdicts(*_guard_rows(control_gap=3 * TOL["gold_rm"]))
    assert got["8-control-gold-reward"].verdict == "FAIL"  # Guard ends 3 seed SDs above Flow-GRPO on the gold RM
    got = _guard_verdicts(*_guard_rows(on_policy_gain=-0.1))  # the one-update runs diverge (v1)
    assert got["8'p-control-run-learns"].verdict == "FAIL"
    assert got["8'-control-one-update"].verdict == "UNTESTED"


def test_claims_v2_finals_are_means_of_the_last_three_evaluations():
    from reprozoo.papers.grpo_guard.claims import finals

    rows, _ = _guard_rows(seeds=2)
    curve = [r for r in rows if r["method"] == "flow_grpo" and r.get("kind") == "main" and r["metric"] == "proxy"]
    last = sorted((r["step"], r["value"]) for r in curve if r["seed"] == 0)[-3:]
    assert finals(rows, "flow_grpo", "main", "proxy")[0] == pytest.approx(np.mean([v for _, v in last]))
