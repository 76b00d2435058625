"""papers.grpo_guard issue 35's design: the official 2 updates per rollout batch in the main runs, the labelled
variants, the isolation arms (Guard at Flow-GRPO's clip band; KL with β × 32) and the whole-batch on-policy control."""

from __future__ import annotations

import math

import pytest
import torch

from reprozoo.papers.grpo_guard.experiment import PRESETS, plan, sigmas, step_eps
from reprozoo.papers.grpo_guard.method import ratio_norm, sde_std


def test_quick_plan_has_the_official_main_row_variants_and_isolation_arms():
    cfg = PRESETS["quick"]
    runs = plan(cfg)
    main = [r for r in runs if r.kind == "main"]
    assert {r.minibatches for r in main} == {2} and len({r.seed for r in main}) == 10
    assert {r.minibatches for r in runs if r.kind == "lever8"} == {8}
    assert {r.clip for r in runs if r.kind == "other_clip"} == {"official"}
    iso_kl = [r for r in runs if r.kind == "iso_kl"]
    assert iso_kl and all(r.beta == pytest.approx(0.04 * math.sqrt(16 * 64 * 64 / 64)) for r in iso_kl)
    assert {(r.method, r.clip) for r in runs if r.kind == "iso_eps"} == {("grpo_guard", "flow_band")}
    on = [r for r in runs if r.kind == "on_policy"]
    assert {(r.minibatches, r.prompts, r.group) for r in on} == {(1, cfg.prompts_per_epoch, cfg.group)}
    shifted = plan(PRESETS["quick"].__class__(**{**PRESETS["quick"].__dict__, "first_seed": 1000}))
    assert min(r.seed for r in shifted) == 1000  # every arm pairs with the main runs by seed


def test_flow_band_maps_guards_clip_band_onto_flow_grpos():
    """ε_j = ε_flow·s̄_j: a ρ̃ at the edge of Guard's band is a log-ratio (after centring) at the edge of Flow-GRPO's."""
    cfg = PRESETS["quick"]
    sig = sigmas(cfg.steps, cfg.shift)
    eps = step_eps(cfg, "grpo_guard", "flow_band", sig)
    eps_f = cfg.eps("flow_grpo", cfg.clip)
    for j, e in enumerate(eps):
        s_bar = float(sde_std(sig[j : j + 1], float(sig[1]), cfg.eta) * torch.sqrt(sig[j] - sig[j + 1]))
        assert e == pytest.approx(eps_f * s_bar)
        # a centred log-ratio of exactly log(1 + ε_flow) gives ρ̃ = (1 + ε_flow)^s̄ ≈ 1 + ε_j
        zero = torch.zeros(1, 4)
        rho = ratio_norm(torch.tensor([math.log1p(eps_f)]), torch.zeros(1), zero, zero,
                         torch.full((1,), s_bar), torch.ones(1))  # fmt: skip
        assert float(rho) - 1 == pytest.approx(e, rel=0.01)
    assert step_eps(cfg, "grpo_guard", "matched", sig) == [cfg.eps("grpo_guard", "matched")] * cfg.trained_steps()
