"""papers.par WARM (issue 31): members that differ as the official ones do (seed, learning rate, batch size, data
share), averaged without the proxy."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reprozoo.common.worlds.preference import ProxyConfig, build_world
from reprozoo.papers.par import reward_models
from reprozoo.papers.par.experiment import PRESETS, Config
from reprozoo.papers.par.reward_models import warm_member


def test_warm_members_scale_the_official_settings_to_the_proxy():
    """Official M1-M5: lr 7e-6…3e-6, batch 32/32/24/24/24, 9,700…28,800 of 61,135 pairs, one pass; proxy 5e-6,
    batch 32. Hand-scaled to the world's proxy (lr 1e-3, batch 128, 1,536 pairs, 150 steps = 12.5 passes)."""
    pc = ProxyConfig()
    expected = [
        (1.4e-3, 128, 244, 24),
        (1.2e-3, 128, 359, 35),
        (1e-3, 96, 482, 63),
        (8e-4, 96, 603, 79),
        (6e-4, 96, 724, 94),
    ]
    for j, (lr, batch, pairs, steps) in enumerate(expected, 1):
        got = warm_member(pc, j)
        assert got[0] == pytest.approx(lr) and got[1:] == (batch, pairs, steps), j
    for j in (0, 6):
        with pytest.raises(ValueError, match="members 1..5"):
            warm_member(pc, j)
    with pytest.raises(ValueError, match="warm-k"):
        Config(preset="quick", warm_k=6).validate()


def test_warm_averages_its_members_and_not_the_proxy(monkeypatch, tmp_path):
    """Each member trains with its own seed, lr, batch, steps and share of the proxy's pairs; WARM is the mean of
    their parameters, and the proxy (trained by the world, not here) is not one of them."""
    cfg = dataclasses.replace(PRESETS["smoke"], warm_k=3)
    world = build_world(cfg.world)
    monkeypatch.setattr(reward_models, "cache_dir", lambda w: tmp_path)
    calls, train = [], reward_models.train_pairwise

    def spy(rm, chosen, rejected, loss_fn, **kw):
        calls.append((chosen[0].shape[0], rejected[0].shape[0], kw))
        return train(rm, chosen, rejected, loss_fn, **kw)

    monkeypatch.setattr(reward_models, "train_pairwise", spy)
    seed = 7
    warm = reward_models.reward_model(world, cfg, "warm", seed)
    pc = dataclasses.replace(cfg.proxy, seed=seed, data_seed=seed)
    want = [
        (n, n, {"steps": s, "batch_size": b, "lr": lr, "seed": seed + 1000 * j})
        for j, (lr, b, n, s) in ((j, warm_member(pc, j)) for j in (1, 2, 3))
    ]
    assert calls == want
    members = [reward_models._rm(world, cfg, pc, "warm", j) for j in (1, 2, 3)]  # now from the cache
    assert len(calls) == 3
    for name, p in warm.named_parameters():
        torch.testing.assert_close(p, torch.stack([dict(m.named_parameters())[name] for m in members]).mean(0))
    heads = [m.head.weight for m in members] + [reward_models.reward_model(world, cfg, "proxy", seed).head.weight]
    assert all(not torch.allclose(a, b) for i, a in enumerate(heads) for b in heads[i + 1 :])
