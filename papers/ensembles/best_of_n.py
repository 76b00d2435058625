"""Best-of-n against single members and ensembles (Coste et al.; Eisenstein et al.'s contrast): the shared
pool of base-policy samples, unbiased best-of-n curves, and every curve of the experiment with the premise
measurement.

`cfg` is the paper's `experiment.Config`.
"""

from __future__ import annotations

import numpy as np
import torch

from reprozoo.common.cache import save_atomic
from reprozoo.common.results import record
from reprozoo.common.reward import best_of_n, kl_bon
from reprozoo.common.worlds.preference import (
    PreferenceWorld,
    ProxyConfig,
    ensemble_disagreement,
    self_minus_others,
)
from reprozoo.papers.ensembles.baselines import single_member
from reprozoo.papers.ensembles.members import SETTINGS, grid, log, member_config, standardiser, window
from reprozoo.papers.ensembles.method import AGGREGATIONS, aggregate


def bon_pool(world: PreferenceWorld, cfg) -> dict[str, torch.Tensor]:
    """The shared best-of-n pool: `bon_prompts` × `bon_samples` base-policy responses, gold and feature counts
    (cached beside the world)."""
    P, N = cfg.bon_prompts, cfg.bon_samples
    path = world.cache_dir / f"bon-pool-P{P}-N{N}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    prompts, g = world.bon_samples(P, N, seed=0)
    pool = {
        "prompts": prompts,
        "tokens": g.tokens,
        "mask": g.mask,
        "gold": world.gold_reward(prompts, g.tokens, g.mask).view(P, N),
        "features": world.feature_count(g.tokens, g.mask).float().view(P, N),
    }
    save_atomic(pool, path)
    return pool


def curve_rows(method: str, seed: int, score: torch.Tensor, pool: dict, ns: list[int], **setting) -> list[dict]:
    """Best-of-n curve by `score` (prompts, N): unbiased gold, proxy and feature-count estimates for each n."""
    rows = []
    for n in ns:
        kw = {**setting, "n": n, "kl": kl_bon(n), "step": n}
        rows += [
            record(method, seed, "gold", float(best_of_n(score, pool["gold"], n).mean()), **kw),
            record(method, seed, "proxy", float(best_of_n(score, score, n).mean()), **kw),
            record(method, seed, "features", float(best_of_n(score, pool["features"], n).mean()), **kw),
        ]
    return rows


def single_rows(seed: int, z: torch.Tensor, pool: dict, ns: list[int], **setting) -> list[dict]:
    """The single-RM baseline: the mean over members of each member's own best-of-n curve."""
    per_member = [curve_rows("bon_single", seed, single_member(z, i), pool, ns, **setting) for i in range(z.shape[0])]
    return [dict(rows[0], value=float(np.mean([r["value"] for r in rows]))) for rows in zip(*per_member, strict=True)]


def bon_rows(world: PreferenceWorld, cfg, members: dict) -> list[dict]:
    """Best-of-n curves of every aggregation, the premise measurement, and the Eisenstein contrast."""
    pool = bon_pool(world, cfg)
    P, N = cfg.bon_prompts, cfg.bon_samples
    ns = [2**k for k in range(int(np.log2(N)) + 1)]
    test = world.comparisons(cfg.test_pairs, seed=10**6)
    scored: dict[ProxyConfig, torch.Tensor] = {}

    def z_scores(pcs: list[ProxyConfig]) -> torch.Tensor:
        rms = [members[pc] for pc in pcs]
        for pc, rm in zip(pcs, rms, strict=True):
            if pc not in scored:
                scored[pc] = world.proxy_reward(rm, pool["prompts"], pool["tokens"], pool["mask"]).view(P, N)
        mu, sd = standardiser(world, rms, cfg)
        return (torch.stack([scored[pc] for pc in pcs]) - mu[:, None, None]) / sd[:, None, None]

    rows = []
    for setting in SETTINGS:
        for d, noise in grid(cfg):
            tag = {"setting": setting, "d": d, "noise": noise}
            for seed in cfg.seed_list():
                pcs = [member_config(cfg, setting, d, noise, m) for m in window(cfg, seed)]
                z = z_scores(pcs)
                acc = np.mean([world.accuracy(members[pc], test) for pc in pcs])
                rows.append(record("proxy", seed, "accuracy", acc, **tag))
                prem = ensemble_disagreement(z, pool["gold"]) | {"self_minus_others": self_minus_others(z)}
                rows += [record("premise", seed, k, v, **tag) for k, v in prem.items()]
                rows += single_rows(seed, z, pool, ns, **tag)
                for agg in AGGREGATIONS:
                    rows += curve_rows(f"bon_{agg}", seed, aggregate(z, agg, stage="bon"), pool, ns, **tag)
            log(f"best-of-n {tag}: premise {prem}, accuracy {acc:.3f}")
    if cfg.eisenstein:
        tag = {"setting": "control", "d": cfg.sizes[0], "noise": 0.25}
        for seed in cfg.seed_list():
            for kind in ("pretrain", "finetune"):
                pcs = [member_config(cfg, "control", tag["d"], 0.25, m, kind) for m in window(cfg, seed)]
                z = z_scores(pcs)
                rows += curve_rows(f"eis_{kind}_mean", seed, aggregate(z, "mean"), pool, ns, **tag)
                if kind == "pretrain":
                    rows += [dict(r, method="eis_single") for r in single_rows(seed, z, pool, ns, **tag)]
    return rows
