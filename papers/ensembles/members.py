"""The ensembles' members (Coste et al.; Eisenstein et al.'s pretrain / finetune seeds): which proxy each member is,
the member pools of the grid, and the standardisation of the members' rewards under the base policy.

`cfg` is the paper's `experiment.Config`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from reprozoo.common.worlds.preference import PreferenceWorld, ProxyConfig

SETTINGS = ("premise", "control")
Kind = Literal["random", "pretrain", "finetune"]


def member_config(cfg, setting: str, d: int, noise: float, m: int, kind: Kind = "random") -> ProxyConfig:
    """Member m: same comparison data (data_seed 0) for every member, as in Coste et al.; its own fine-tune seed;
    its own labeller quirk (premise) or the quirk of its ensemble's first member (control: one shared quirk);
    pretrain-seed members get their own backbone."""
    anchor = m if setting == "premise" else m - m % cfg.members
    quirk = cfg.quirk_tokens[anchor % len(cfg.quirk_tokens)]
    pretrain = {"random": None, "pretrain": m, "finetune": 0}[kind]
    return dataclasses.replace(
        cfg.proxy,
        d_model=d,
        label_noise=noise,
        data_seed=0,
        seed=m,
        quirk_token=quirk,
        quirk_gain=cfg.quirk_gain,
        pretrain_seed=pretrain,
    )


def grid(cfg) -> list[tuple[int, float]]:
    """(size, label noise) of every member pool: 25% noise at every size, other levels at `clean_sizes`."""
    return [(d, noise) for d in cfg.sizes for noise in cfg.label_noises if noise == 0.25 or d in cfg.clean_sizes]


def window(cfg, seed: int) -> list[int]:
    """Members of seed `seed`'s ensemble: its own k (independent ensembles)."""
    return list(range(seed * cfg.members, (seed + 1) * cfg.members))


def all_member_configs(cfg) -> list[ProxyConfig]:
    pool = [m for seed in cfg.seed_list() for m in window(cfg, seed)]
    out = [member_config(cfg, s, d, noise, m) for s in SETTINGS for d, noise in grid(cfg) for m in pool]
    if cfg.eisenstein:
        out += [member_config(cfg, "control", cfg.sizes[0], 0.25, m, k) for k in ("pretrain", "finetune") for m in pool]
    return list(dict.fromkeys(out))


_STD_CACHE: dict[int, tuple] = {}


def standardiser(world: PreferenceWorld, rms: list, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ_i, σ_i) of each member's reward under the base policy (`std_samples` fresh samples, fixed seed)."""
    if cfg.std_samples not in _STD_CACHE:
        _STD_CACHE[cfg.std_samples] = world.bon_samples(cfg.std_samples, 1, seed=1)
    prompts, g = _STD_CACHE[cfg.std_samples]
    r = torch.stack([world.proxy_reward(rm, prompts, g.tokens, g.mask) for rm in rms])
    return r.mean(1), r.std(1)


def log(msg: str) -> None:
    """One progress line of the paper's run."""
    print(f"[ensembles] {msg}", flush=True)
