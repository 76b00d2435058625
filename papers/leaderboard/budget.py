"""Each paper's config, with the leaderboard's shared world, data and budget: the preset of the same name of
papers.par, papers.ensembles and papers.power_dl, with the leaderboard's world, proxy (its pairs are every method's
data), PPO budget and evaluation set; the ensemble members of a seed and the single proxy's standardisation.

`cfg` is the leaderboard's `experiment.Config`.
"""

from __future__ import annotations

import dataclasses

from reprozoo.common.worlds.preference import PreferenceWorld, ProxyConfig
from reprozoo.common.worlds.preference_ppo import OPTIMISER, PROMPT_SET_BUDGET, budget
from reprozoo.papers.ensembles import experiment as ensembles
from reprozoo.papers.ensembles import members as ensembles_members
from reprozoo.papers.par import experiment as par
from reprozoo.papers.power_dl import experiment as power_dl


def par_config(cfg) -> par.Config:
    """PAR's preset of the same name with the leaderboard's world, proxy, PPO budget and evaluation set."""
    return dataclasses.replace(
        par.PRESETS[cfg.preset],
        seeds=cfg.seeds,
        world=cfg.world,
        proxy=cfg.proxy,
        runs=list(cfg.ppo_runs),
        **budget(cfg, PROMPT_SET_BUDGET),
        threads=cfg.threads,
        workers=1,
    )


def ensembles_config(cfg) -> ensembles.Config:
    """The ensembles' preset of the same name with the leaderboard's world, pool and PPO budget."""
    return dataclasses.replace(
        ensembles.PRESETS[cfg.preset],
        seeds=cfg.seeds,
        world=cfg.world,
        proxy=cfg.proxy,
        members=cfg.members,
        quirk_gain=ensembles.V2_2_QUIRK_GAIN,  # the leaderboard's world prices quirks as v2.2 (ensembles: deviation 10)
        bon_prompts=cfg.bon_prompts,
        bon_samples=cfg.bon_samples,
        std_samples=cfg.std_samples,
        ppo_steps=cfg.iterations,
        **budget(cfg, OPTIMISER),
        ppo_kl_small=cfg.kl_coef,
        log_every=cfg.eval_every,
        threads=cfg.threads,
        workers=1,
    )


def power_dl_config(cfg) -> power_dl.Config:
    """POWER-DL's preset of the same name with the leaderboard's world, data (the single proxy's pairs) and budget."""
    return dataclasses.replace(
        power_dl.PRESETS[cfg.preset],
        seeds=cfg.seeds,
        world=cfg.world,
        methods=list(cfg.offline),
        world_pairs=cfg.proxy.n_pairs,
        label_noises=[cfg.proxy.label_noise],
        world_steps=cfg.offline_steps,
        world_batch=cfg.offline_batch,
        world_lr=cfg.offline_lr,
        eval_every=cfg.offline_eval_every,
        eval_prompts=cfg.eval_prompts,
        threads=cfg.threads,
        workers=cfg.workers,
    )


def member_configs(cfg, seed: int) -> list[ProxyConfig]:
    """Seed `seed`'s ensemble: the single proxy's pairs and labels, fine-tune seeds seed + 1000 j (j = 0: the proxy)."""
    return [dataclasses.replace(cfg.proxy, seed=seed + 1000 * j, data_seed=seed) for j in range(cfg.members)]


def proxy_stats(world: PreferenceWorld, cfg, seed: int) -> tuple[float, float]:
    """(μ, σ) of the single proxy under π_SFT (the ensembles' `standardiser`), to z-score its reward everywhere."""
    mu, sd = ensembles_members.standardiser(
        world, [world.train_proxy(member_configs(cfg, seed)[0])], ensembles_config(cfg)
    )
    return float(mu[0]), float(sd[0])
