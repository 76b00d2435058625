"""The reward models PPO optimises (cached): the world's clean proxy, and the RM baselines trained on the proxy's
pairs from its initialisation: WARM (weight average of K members that differ as the official ones do), Reg, ODIN.

`cfg` is the paper's `experiment.Config`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from reprozoo.common.cache import cache_root, config_hash, save_atomic
from reprozoo.common.reward import RewardModel, bradley_terry_loss
from reprozoo.common.worlds.preference import PreferenceWorld, ProxyConfig
from reprozoo.papers.par.baselines import OdinRewardModel, odin_loss, reg_loss, train_pairwise, warm_average

# WARM's members as the official code trains them (auto_sh/gemma2-2b_ultrafb_bin.sh:16-20, "For WARM"; merged by
# utils/model_merge.py): each from the same base model with its own seed (23-27; the proxy's is 22), learning rate,
# batch size and number of training examples, one pass over them. The proxy (lr 5e-6, batch 32, one epoch of all of
# train_prefs) is not a member.
WARM_MEMBERS = (  # (learning rate, batch size, --n_examples)
    (7e-6, 32, 9_700),
    (6e-6, 32, 14_300),
    (5e-6, 24, 19_200),
    (4e-6, 24, 24_000),
    (3e-6, 24, 28_800),
)
OFFICIAL_RM_LR, OFFICIAL_RM_BATCH = 5e-6, 32  # the proxy RM's (`reward_gemma2-2b_ultrafb_bin`)
ULTRAFB_TRAIN_PAIRS = 61_135  # train_prefs of HuggingFaceH4/ultrafeedback_binarized (before the official filter)


def warm_member(pc: ProxyConfig, j: int) -> tuple[float, int, int, int]:
    """(lr, batch size, pairs, steps) of WARM member j = 1…5, scaled from the official member to this proxy:

    lr_j = lr · lr_j^off / 5e-6,  B_j = round(B · B_j^off / 32),  n_j = round(N · n_j^off / 61,135),
    steps_j = round(steps · (n_j / N) · (B / B_j)),

    i.e. the official ratios to the proxy's settings, and as many passes over its n_j pairs as the proxy makes over
    its N (officially one each). The official filter shrinks train_prefs below 61,135 pairs (its size is not in the
    repository), so n_j / N is a lower bound of the official share (16–47%)."""
    if not 1 <= j <= len(WARM_MEMBERS):
        raise ValueError(f"WARM member {j}: the official WARM has members 1..{len(WARM_MEMBERS)}")
    lr, batch, n_examples = WARM_MEMBERS[j - 1]
    b = max(1, round(pc.batch_size * batch / OFFICIAL_RM_BATCH))
    n = max(1, round(pc.n_pairs * n_examples / ULTRAFB_TRAIN_PAIRS))
    steps = max(1, round(pc.steps * n / pc.n_pairs * pc.batch_size / b))
    return pc.lr * lr / OFFICIAL_RM_LR, b, n, steps


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
    if kind == "warm":  # θ = (1/K) Σ_j θ_j over members 1..K (official: M1-M5; the proxy is not one of them)
        return warm_average([_rm(world, cfg, pc, "warm", j) for j in range(1, cfg.warm_k + 1)])
    return _rm(world, cfg, pc, kind, 0)


def _rm(world: PreferenceWorld, cfg, pc: ProxyConfig, kind: str, member: int) -> torch.nn.Module:
    """An RM from the proxy's initialisation (RewardModel.tiny(seed)) on the proxy's pairs with the proxy's
    settings and loss `kind` (reg; odin), or (kind "warm") WARM member `member` ≥ 1: Bradley–Terry with the member's
    seed s + 1000·member (its head's initialisation, its share of the pairs, its minibatch order) and its lr, batch,
    pairs and steps from `warm_member` — the shared body initialisation stands in for the official shared base model."""
    base = RewardModel.tiny(
        world.vocab_size, d_model=pc.d_model, n_layers=pc.n_layers, max_len=world.max_len, seed=pc.seed
    )
    rm = OdinRewardModel(base) if kind == "odin" else base
    coef = cfg.reg_coef if kind == "reg" else 0.0
    seed, lr, batch, steps = pc.seed + 1000 * member, pc.lr, pc.batch_size, pc.steps
    gen = torch.Generator().manual_seed(seed)
    if kind == "warm":  # a fresh head for the member's seed, as RewardModel initialises one (official: set_seed)
        lr, batch, n_pairs, steps = warm_member(pc, member)
        d = base.head.in_features
        with torch.no_grad():
            base.head.weight.copy_(torch.randn(base.head.weight.shape, generator=gen) / math.sqrt(d))
            base.head.bias.zero_()
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
    if kind == "warm":  # the member's share of the pairs (official: the first n_examples of a seeded shuffle)
        keep = torch.randperm(pc.n_pairs, generator=gen)[:n_pairs]
        chosen, rejected = (tuple(t[keep] for t in pair) for pair in (chosen, rejected))
    train_pairwise(rm, chosen, rejected, loss_fn, steps=steps, batch_size=batch, lr=lr, seed=seed)
    save_atomic(rm.state_dict(), path)
    return rm.eval()
