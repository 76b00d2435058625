"""World v2 (issue 31): v1 cache keys unchanged, the quirk cost κ, the proxy bias λ and its count threshold t, the
insertion probe, validation."""

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
    """A world without SFT or teacher standardisation (the formulas do not need them)."""
    policy = tiny_lm(cfg.vocab + 2, d_model=16, n_layers=1, max_len=cfg.prompt_len + 1 + cfg.max_response_len)
    return W.PreferenceWorld(cfg, policy, W.GoldReward(cfg), tmp_path)


def _responses(cfg: W.WorldConfig, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """EOS-padded responses and their masks (content + EOS)."""
    L, eos = cfg.max_response_len, cfg.vocab
    tokens = torch.full((len(rows), L), eos)
    mask = torch.zeros(len(rows), L)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r) + 1] = 1
    return tokens, mask


def test_v1_cache_keys_are_unchanged():
    # the keys of the committed v1 worlds (quick and smoke presets) before the v2 fields existed
    assert W.world_key(W.WorldConfig()) == "e36744cf0a98"
    assert W.world_key(W.SMOKE_WORLD) == "aa3be2affd1b"
    # the proxy bias is not part of the key (no cached artefact depends on it); the quirk cost is
    assert W.world_key(dataclasses.replace(W.WORLD_V2, proxy_bias_gain=0.0)) == W.world_key(W.WORLD_V2)
    assert W.world_key(dataclasses.replace(W.WORLD_V2, quirk_cost=0.25)) != W.world_key(W.WORLD_V2)


def test_quirk_cost_is_kappa_times_overuse(tmp_path):
    v1 = dataclasses.replace(V2, quirk_cost=0.0)
    w2, w1 = _world(dataclasses.replace(V2, quirk_cost_power=1.0), tmp_path), _world(v1, tmp_path)
    q = W.member_quirks(V2)
    rows = [[q[0]] * 4 + [q[1]] * 2, [q[0]], [20, 21, 22], [V2.proxy_bias_token] * 3]
    tokens, mask = _responses(V2, rows)
    prompts = torch.zeros(len(rows), V2.prompt_len + 1, dtype=torch.long)
    diff = w2.gold_reward(prompts, tokens, mask) - w1.gold_reward(prompts, tokens, mask)
    # linear cost (v2.1): R*_v2 − R*_v1 = −κ Σ_{t∈Q} (n_t − 1)₊ : (3 + 1), 0, 0, 2 overused copies
    expected = -V2.quirk_cost * torch.tensor([4.0, 0.0, 0.0, 2.0])
    assert torch.allclose(diff, expected, atol=1e-5)
    # concave cost (v2.2, q = 0.5): −κ Σ_{t∈Q} (n_t − 1)₊^q, per token type
    assert V2.quirk_cost_power == 0.5
    diff = _world(V2, tmp_path).gold_reward(prompts, tokens, mask) - w1.gold_reward(prompts, tokens, mask)
    expected = -V2.quirk_cost * torch.tensor([3**0.5 + 1.0, 0.0, 0.0, 2**0.5])
    assert torch.allclose(diff, expected, atol=1e-5)


def test_quirk_cost_power_keys():
    # q = 1 (linear, v2) keeps every v2 key; any other q is a new world; q is meaningless without κ
    assert W.world_key(W.WORLD_V2_1) == "c1988ab1abbe"  # v2.1's cache entry from before q existed
    assert W.world_key(dataclasses.replace(W.WORLD_V2_1, quirk_cost_power=0.5)) != W.world_key(W.WORLD_V2_1)
    v1 = W.WorldConfig()
    assert W.world_key(dataclasses.replace(v1, quirk_cost_power=0.5)) == W.world_key(v1)


def test_proxy_bias_adds_lambda_per_token(tmp_path):
    w = _world(V2, tmp_path)
    off = _world(dataclasses.replace(V2, proxy_bias_gain=0.0), tmp_path)
    rm = RewardModel.tiny(V2.vocab + 2, d_model=16, n_layers=1, max_len=w.max_len, seed=0).eval()
    b = V2.proxy_bias_token
    tokens, mask = _responses(V2, [[b, b, b, 20], [20, 21], [b]])
    prompts = torch.zeros(3, V2.prompt_len + 1, dtype=torch.long)
    diff = w.proxy_reward(rm, prompts, tokens, mask) - off.proxy_reward(rm, prompts, tokens, mask)
    assert torch.allclose(diff, V2.proxy_bias_gain * torch.tensor([3.0, 0.0, 1.0]), atol=1e-5)


def test_insert_tokens_counts_and_masks(tmp_path):
    w = _world(V2, tmp_path)
    L = V2.max_response_len
    long = list(range(10, 10 + L))  # a response that hit the length limit (no EOS)
    tokens, mask = _responses(V2, [[20, 21], []])
    tokens = torch.cat([tokens, torch.tensor([long])])
    mask = torch.cat([mask, torch.ones(1, L)])
    out, m = w.insert_tokens(tokens, mask, 7, 3)
    assert out[0, :6].tolist() == [7, 7, 7, 20, 21, V2.vocab] and m[0].sum() == 6
    assert out[1, :4].tolist() == [7, 7, 7, V2.vocab] and m[1].sum() == 4
    assert out[2].tolist() == [7, 7, 7] + long[: L - 4] + [V2.vocab] and m[2].sum() == L
    assert w.token_count(out, m, 7).tolist() == [3, 3, 3]


@pytest.mark.parametrize(
    "bad",
    [
        {"quirk_tokens": (1, 7)},  # a feature token
        {"quirk_tokens": (7, 7)},
        {"proxy_bias_token": 40},
        {"quirk_cost": -0.1},
        {"proxy_bias_gain": -1.0},
        {"quirk_cost_power": 0.0},
        {"quirk_cost_power": 3.0},
    ],
)
def test_bad_v2_fields_raise(bad):
    with pytest.raises(ValueError, match="WorldConfig"):
        dataclasses.replace(W.WORLD_V2, **bad)


def test_member_quirks_leave_out_the_bias_token():
    q = W.member_quirks(W.WORLD_V2)
    assert W.WORLD_V2.proxy_bias_token not in q and set(q) < set(W.WORLD_V2.quirk_tokens)


def test_v1_args_rebuild_the_v1_demo_config():
    from reprozoo.common.cli import parse
    from reprozoo.common.worlds.preference_demo import PRESETS, V1_ARGS, Config

    cfg = parse(Config, PRESETS, ["--preset", "quick", *V1_ARGS.split()], prog="demo")
    assert cfg.world == W.WorldConfig() and W.world_key(cfg.world) == "e36744cf0a98"
    assert cfg.members == 0 and not cfg.bias_control  # no v2 measurement: the v1 quick run's records
    assert cfg.ppo_steps == 100


def test_v2_1_args_rebuild_the_v2_1_world():
    from reprozoo.common.cli import parse
    from reprozoo.common.worlds.preference_demo import PRESETS, V2_1_ARGS, Config

    cfg = parse(Config, PRESETS, ["--preset", "quick", *V2_1_ARGS.split()], prog="demo")
    assert cfg.world == W.WORLD_V2_1 and W.world_key(cfg.world) == "c1988ab1abbe"  # the v2.1 results' cache entry
    assert cfg.ppo_steps == 100 and PRESETS["quick"].ppo_steps == 75


# channel (iii)'s count threshold t (calibration round 9)


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
