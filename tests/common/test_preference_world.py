"""The preference world: generator statistics, gold reward formula, labels, caching, and the demo CLI."""

from __future__ import annotations

import json

import pytest
import torch

from reprozoo.common.worlds import preference as W

TINY = W.WorldConfig(corpus_size=256, policy_d=16, policy_layers=1, sft_steps=5, sft_batch=32, gold_d=16, gold_layers=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import os

    old = os.environ.get("REPROZOO_CACHE")
    os.environ["REPROZOO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    torch.set_num_threads(1)
    yield W.build_world(TINY)
    if old is None:
        os.environ.pop("REPROZOO_CACHE")
    else:
        os.environ["REPROZOO_CACHE"] = old


def test_corpus_statistics():
    cfg = W.WorldConfig(corpus_size=4000)
    ids, loss_mask = W.build_corpus(cfg)
    P = cfg.prompt_len + 1
    assert (ids[:, cfg.prompt_len] == cfg.vocab + 1).all() and (loss_mask[:, :P] == 0).all()
    y, m = ids[:, P:], loss_mask[:, P:]
    lengths = m.sum(-1)
    assert lengths.min() >= cfg.min_response_len + 1 and lengths.max() <= cfg.max_response_len
    # every response ends with EOS, counted in the mask
    assert (y.gather(1, (lengths - 1)[:, None]) == cfg.vocab).all()
    feats = ((y < cfg.n_features) & (m == 1)).sum(-1).float()
    # each content position is a feature token w.p. feature_prob; the gold penalty region (c > c₀ = 2) is rare
    # in the data (README_preference.md: that is what makes proxies extrapolate "more is better" into it)
    assert abs(feats.sum() / (lengths - 1).sum() - cfg.feature_prob) < 0.01
    assert 0.002 < (feats > cfg.feature_cap).float().mean() < 0.03


def test_gold_bonus_formula(world):
    b = world.gold.bonus(torch.arange(6))
    assert torch.allclose(b, torch.tensor([0.0, 0.7, 1.4, 0.4, -2.6, -7.6]))


def test_comparisons_labels_follow_gold_and_flip(world):
    clean = world.comparisons(200, seed=1)
    ga = world.gold(clean.ids_a, clean.mask_a, clean.feat_a)
    gb = world.gold(clean.ids_b, clean.mask_b, clean.feat_b)
    clear = (ga - gb).abs() > 1e-4  # batch-size-dependent float noise may flip near-ties
    assert torch.equal(clean.labels[clear], (ga > gb).float()[clear]) and clear.float().mean() > 0.9
    noisy = world.comparisons(200, label_noise=0.25, seed=1)
    assert torch.equal(noisy.gold_labels, clean.gold_labels)
    flipped = (noisy.labels != noisy.gold_labels).float().mean().item()
    assert 0.15 < flipped < 0.35
    # the responses are base-policy samples: prompt ⊕ response with masks
    assert clean.ids_a.shape[1] == world.max_len and (clean.mask_a[:, : world.prompt_width] == 1).all()


def test_quirk_labeller_relabels_the_same_pairs(world):
    base = world.comparisons(300, label_noise=0.25, seed=2)
    token = 5
    quirky = world.comparisons(300, label_noise=0.25, seed=2, quirk_token=token, quirk_gain=100.0)
    # same pairs and gold labels
    assert torch.equal(quirky.ids_a, base.ids_a) and torch.equal(quirky.gold_labels, base.gold_labels)
    n_a = ((quirky.ids_a[:, world.prompt_width :] == token) & (quirky.mask_a[:, world.prompt_width :] == 1)).sum(-1)
    n_b = ((quirky.ids_b[:, world.prompt_width :] == token) & (quirky.mask_b[:, world.prompt_width :] == 1)).sum(-1)
    differ = n_a != n_b
    assert differ.any()
    # with a huge γ the quirk decides every pair whose counts differ (before the flips)
    unflipped = base.labels == base.gold_labels
    sel = differ & unflipped
    assert torch.equal(quirky.labels[sel], (n_a > n_b).float()[sel])
    # where the counts agree the quirk labeller is the gold labeller
    assert torch.equal(quirky.labels[~differ], base.labels[~differ])
    # γ = 0 changes nothing
    assert torch.equal(world.comparisons(300, label_noise=0.25, seed=2, quirk_token=token).labels, base.labels)


def test_proxy_key_of_a_quirk_free_proxy_is_unchanged():
    # the key cached proxies had before the quirk fields existed (config_hash of the old dataclass)
    assert W.proxy_key(W.ProxyConfig()) == "59fe376c80cb"
    assert W.proxy_key(W.ProxyConfig(quirk_gain=3.0)) == "59fe376c80cb"  # γ is unused without a token
    assert W.proxy_key(W.ProxyConfig(quirk_token=4)) != W.proxy_key(W.ProxyConfig(quirk_token=5))
    with pytest.raises(ValueError, match="quirk_token"):
        W.ProxyConfig(quirk_token=-1)


def test_ensemble_disagreement_detects_member_specific_errors():
    g = torch.Generator().manual_seed(0)
    gold = torch.randn(32, 64, generator=g)
    shared = 0.5 * torch.randn(32, 64, generator=g)
    noise = 0.05 * torch.randn(5, 32, 64, generator=g)
    herd = gold + shared + noise  # every member makes the same error
    h = W.ensemble_disagreement(herd, gold)
    assert 0.5 < h["var_ratio"] < 2.0 and abs(h["gap_corr"]) < 0.2
    own = torch.zeros(5, 32, 64)
    for k in range(5):  # member k over-rates its own samples
        own[k, :, k * 4 : k * 4 + 3] = 4.0
    quirky = herd + own
    q = W.ensemble_disagreement(quirky, gold)
    assert q["var_ratio"] > 3 and q["gap_corr"] > 0.2
    assert W.spearman(torch.arange(10.0), torch.arange(10.0) ** 3) == pytest.approx(1.0)


def test_gold_is_standardised_teacher_plus_bonus(world):
    gen = torch.Generator().manual_seed(0)
    prompts = world.sample_prompts(512, gen)
    g = world.sample(prompts, gen)
    ids, am = world.sequences(prompts, g.tokens, g.mask)
    teacher = (world.gold.teacher(ids, am) - world.gold.mu) / world.gold.sigma
    gold = world.gold_reward(prompts, g.tokens, g.mask)
    assert torch.allclose(gold - teacher, world.gold.bonus(world.feature_count(g.tokens, g.mask)), atol=1e-5)
    assert abs(teacher.mean().item()) < 0.25 and 0.7 < teacher.std().item() < 1.3


def test_cache_round_trip(world):
    again = W.build_world(TINY)
    for a, b in zip(world.policy.parameters(), again.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(world.gold.mu, again.gold.mu)
    pc = W.ProxyConfig(d_model=8, n_layers=1, n_pairs=32, steps=3, batch_size=16)
    rm1, rm2 = world.train_proxy(pc), world.train_proxy(pc)
    for a, b in zip(rm1.parameters(), rm2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(list(world.cache_dir.glob("proxy-*.pt"))) == 1
    acc = world.accuracy(rm1, world.comparisons(32, seed=5))
    assert 0.0 <= acc <= 1.0


def test_bon_curve_endpoints():
    proxy = torch.tensor([[0.1, 0.5, 0.3, 0.9]])
    gold = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    curve = W.bon_curve(proxy, gold, [1, 4])
    assert curve[0]["gold"] == pytest.approx(2.5) and curve[0]["kl_bon"] == 0.0
    assert curve[1]["gold"] == pytest.approx(4.0) and curve[1]["proxy"] == pytest.approx(0.9)


def test_world_config_validates():
    with pytest.raises(ValueError, match="n_features"):
        W.WorldConfig(n_features=0)
    with pytest.raises(ValueError, match="eos_prob"):
        W.WorldConfig(eos_prob=1.5)


def test_demo_smoke_cli(run_cli, tmp_path):
    out = tmp_path / "smoke"
    proc = run_cli("reprozoo.common.worlds.preference_demo", "--preset", "smoke", "--out", str(out))
    assert "claims" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["paper"] == "preference_world" and summary["preset"] == "smoke"
    v1 = {"rm_accuracy", "bon_overoptimisation", "ppo_overoptimisation"}
    v2 = {"gao_bon", "gao_ppo", "member_independence", "quirk_costs_gold", "shared_quirk_control", "par_regime"}
    claims = {c["id"]: c for c in summary["claims"]}
    assert set(claims) == v1 | v2 | {"par_regime_control"}  # the smoke world is v2 (every channel on)
    assert claims["shared_quirk_control"]["kind"] == "control" and claims["par_regime"]["kind"] == "premise"
    assert (out / "figure.png").stat().st_size > 0 and (out / "records.jsonl").exists()


def test_demo_rejects_bad_config(run_cli):
    proc = run_cli("reprozoo.common.worlds.preference_demo", "--preset", "smoke", "--label-noise", "1.5", expect_rc=2)
    assert "--label-noise" in proc.stderr


# committed findings of the world-v2.2 quick run (README_preference.md, "Results"): verdicts must not change
KNOWN_FAILS = {
    "gao_ppo": "v2.2: RL form R² 0.95 but smoothed peak only +0.24 above the start (< 0.3): seeds 1-2 exploit early",
}


@pytest.mark.slow
def test_quick_world_claims(run_cli, tmp_path):
    out = tmp_path / "quick"
    run_cli("reprozoo.common.worlds.preference_demo", "--preset", "quick", "--out", str(out))
    claims = {c["id"]: c for c in json.loads((out / "summary.json").read_text())["claims"]}
    assert {k for k, c in claims.items() if not c["passed"]} == set(KNOWN_FAILS), claims
