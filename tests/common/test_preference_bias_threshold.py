"""Channel (iii)'s count threshold t (calibration round 9): bias λ · (n_b − t)₊, t = 0 is every earlier world."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reprozoo.common.cache import recorded_fields
from reprozoo.common.lm import tiny_lm
from reprozoo.common.reward import RewardModel
from reprozoo.common.worlds import preference as W

V2 = dataclasses.replace(
    W.SMOKE_WORLD_V2, corpus_size=64, policy_d=16, policy_layers=1, sft_steps=1, gold_d=16, gold_layers=1
)


def _world(cfg: W.WorldConfig, tmp_path) -> W.PreferenceWorld:
    policy = tiny_lm(cfg.vocab + 2, d_model=16, n_layers=1, max_len=cfg.prompt_len + 1 + cfg.max_response_len)
    return W.PreferenceWorld(cfg, policy, W.GoldReward(cfg), tmp_path)


def _responses(cfg: W.WorldConfig, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    L, eos = cfg.max_response_len, cfg.vocab
    tokens = torch.full((len(rows), L), eos)
    mask = torch.zeros(len(rows), L)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r) + 1] = 1
    return tokens, mask


@pytest.mark.parametrize("t", [0, 1, 2])
def test_bias_pays_lambda_per_copy_beyond_the_threshold(tmp_path, t):
    cfg = dataclasses.replace(V2, proxy_bias_threshold=t)
    w, off = _world(cfg, tmp_path), _world(dataclasses.replace(cfg, proxy_bias_gain=0.0), tmp_path)
    rm = RewardModel.tiny(V2.vocab + 2, d_model=16, n_layers=1, max_len=w.max_len, seed=0).eval()
    b = V2.proxy_bias_token
    counts = [0, 1, 2, 3, 5]
    tokens, mask = _responses(V2, [[b] * n + [20] for n in counts])
    prompts = torch.zeros(len(counts), V2.prompt_len + 1, dtype=torch.long)
    diff = w.proxy_reward(rm, prompts, tokens, mask) - off.proxy_reward(rm, prompts, tokens, mask)
    expected = V2.proxy_bias_gain * torch.tensor([max(n - t, 0) for n in counts], dtype=torch.float)
    assert torch.allclose(diff, expected, atol=1e-5)


def test_threshold_keeps_every_key_and_recorded_config():
    for cfg in (W.WorldConfig(), W.WORLD_V2, W.WORLD_V2_1, W.SMOKE_WORLD_V2):
        assert "proxy_bias_threshold" not in recorded_fields(cfg)  # t = 0: recorded configs unchanged
        shifted = dataclasses.replace(cfg, proxy_bias_threshold=2)
        assert W.world_key(shifted) == W.world_key(cfg)  # no cached artefact depends on t
        assert recorded_fields(shifted)["proxy_bias_threshold"] == 2
    assert W.world_key(W.WORLD_V2_1) == "c1988ab1abbe"


def test_negative_threshold_raises():
    with pytest.raises(ValueError, match="proxy_bias_threshold"):
        dataclasses.replace(W.WORLD_V2, proxy_bias_threshold=-1)
