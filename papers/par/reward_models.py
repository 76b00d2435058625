"""The reward models PPO optimises (cached): the world's clean proxy, and the RM baselines trained on the proxy's
pairs from its initialisation: WARM (weight average of K), Reg, ODIN.

`cfg` is the paper's `experiment.Config`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from reprozoo.common.cache import cache_root, config_hash, save_atomic
from reprozoo.common.reward import RewardModel, bradley_terry_loss
from reprozoo.common.worlds.preference import PreferenceWorld, ProxyConfig
from reprozoo.papers.par.baselines import OdinRewardModel, odin_loss, reg_loss, train_pairwise, warm_average


def cache_dir(world: PreferenceWorld) -> Path:
    return cache_root() / "par" / config_hash(world.cfg)


def _chosen_rejected(world: PreferenceWorld, pc: ProxyConfig):
    """The proxy's training pairs, reordered into (chosen, rejected) by their labels."""
    d = world.comparisons(pc.n_pairs, label_noise=pc.label_noise, seed=pc.data_seed)
    a_wins = (d.labels > 0.5)[:, None]
    chosen = (torch.where(a_wins, d.ids_a, d.ids_b), torch.where(a_wins, d.mask_a, d.mask_b))
    rejected = (torch.where(a_wins, d.ids_b, d.ids_a), torch.where(a_wins, d.mask_b, d.mask_a))
    return chosen, rejected


def reward_model(world: PreferenceWorld, cfg, kind: str, seed: int) -> torch.nn.Module:
    """The RM a run of `kind` optimises: the world's clean proxy, WARM, Reg or ODIN (trained once, cached)."""
    pc = dataclasses.replace(cfg.proxy, seed=seed, data_seed=seed, label_noise=0.0)
    if kind == "proxy":
        return world.train_proxy(pc)
    if kind == "gold":
        return world.gold
    if kind == "warm":  # member 0 is the proxy itself; the others differ only in minibatch order
        return warm_average([world.train_proxy(pc)] + [_rm(world, cfg, pc, "bt", j) for j in range(1, cfg.warm_k)])
    return _rm(world, cfg, pc, kind, 0)


def _rm(world: PreferenceWorld, cfg, pc: ProxyConfig, kind: str, member: int) -> torch.nn.Module:
    """An RM from the proxy's initialisation (RewardModel.tiny(seed)) on the proxy's pairs, with loss `kind`
    (bt: Bradley–Terry; reg; odin) and minibatch-order seed seed + 1000·member."""
    base = RewardModel.tiny(
        world.vocab_size, d_model=pc.d_model, n_layers=pc.n_layers, max_len=world.max_len, seed=pc.seed
    )
    rm = OdinRewardModel(base) if kind == "odin" else base
    coef = cfg.reg_coef if kind == "reg" else 0.0
    path = cache_dir(world) / f"{kind}-{config_hash(pc)}-m{member}-c{coef}.pt"
    if path.exists():
        rm.load_state_dict(torch.load(path, weights_only=True))
        return rm.eval()
    width = world.prompt_width

    def loss_fn(model, ids, am, half):
        if kind == "odin":
            q, ell = model.both(ids, am)
            return odin_loss(q, ell, am.sum(-1) - width, model.head.weight, model.length_head.weight, half)["total"]
        r = model(ids, am)
        return reg_loss(r[:half], r[half:], coef) if kind == "reg" else bradley_terry_loss(r[:half], r[half:])

    chosen, rejected = _chosen_rejected(world, pc)
    train_pairwise(
        rm, chosen, rejected, loss_fn, steps=pc.steps, batch_size=pc.batch_size, lr=pc.lr, seed=pc.seed + 1000 * member
    )
    save_atomic(rm.state_dict(), path)
    return rm.eval()
