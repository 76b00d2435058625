"""The papers' headline experiments on the preference world (`common/worlds/preference.py`).

Two settings of the same world (v2: `ENSEMBLES_WORLD`, quirks that cost gold when overused):
- `premise`: each ensemble member's labeller has its own quirk (`ProxyConfig.quirk_token`), so members make
  member-specific, gold-costly errors on top of the shared one (more feature tokens look better): Coste et al.'s
  premise;
- `control`: every member's labeller has the same quirk (the seed's first member's, matched accuracy), so members
  share all their errors (Eisenstein et al.'s herding case).
In each: k = 5 members per proxy size (d = 32, 64) and label-noise level (0, 25%); best-of-n curves (unbiased
estimator, KL_BoN) of gold and proxy reward for a single member, mean, WCO, UWO, median and mean − std; PPO against
a single member and the mean / WCO / UWO ensembles with a small and a larger KL coefficient; the pretrain-seed vs
finetune-seed contrast (Eisenstein et al.); Gao et al.'s functional forms fitted to every curve.

Seed s uses its own members s·k .. s·k + k − 1 (independent ensembles; member m's quirk token is
quirk_tokens[m mod len]); the single-member baseline of seed s is its members' mean curve for best-of-n and its
first member s·k under PPO.

Here: the config, its presets and the run. The steps: `members.py` (which proxy each member is, standardisation),
`best_of_n.py` (the pool and every best-of-n curve), `ppo.py` (which PPO runs, one run's curves), `report.py`
(per-seed scalars, table, figure); the aggregations in `method.py` / `baselines.py`; the real-model path in `full.py`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import check_fraction, check_positive, ensure
from reprozoo.common.hf import HubConfig
from reprozoo.common.progress import track
from reprozoo.common.worlds.preference import (
    SMOKE_WORLD_V2,
    WORLD_V2,
    ProxyConfig,
    WorldConfig,
    build_world,
    member_quirks,
)
from reprozoo.common.worlds.preference_ppo import FreshPromptsPPO
from reprozoo.papers.ensembles.best_of_n import bon_rows
from reprozoo.papers.ensembles.members import SETTINGS, all_member_configs, log, member_config, standardiser, window
from reprozoo.papers.ensembles.method import Ensemble
from reprozoo.papers.ensembles.ppo import PPO_METHODS, copied_single_rows, ppo_jobs, ppo_rows
from reprozoo.papers.ensembles.report import summary_rows

# World v2.2 with channel (iii) (the proxy bias, PAR's premise) off: this paper's shared error is channel (i). Its
# member quirks (channel ii) cost gold linearly, κ = 1 per extra copy (world v2.2: 0.3 · (n − 1)^0.5), so that a
# single member's best-of-n picks pay for its quirk (README, deviation 10: with v2.2's price they plateau).
ENSEMBLES_WORLD_CHANGES = dict(proxy_bias_token=None, proxy_bias_gain=0.0, quirk_cost=1.0, quirk_cost_power=1.0)
ENSEMBLES_WORLD = dataclasses.replace(WORLD_V2, **ENSEMBLES_WORLD_CHANGES)
V2_2_QUIRK_GAIN = 1.5  # γ of the runs on world v2.2's own quirk price (κ 0.3, q 0.5): the v2.2 results, the leaderboard


@dataclass
class Config(FreshPromptsPPO, HubConfig):
    """Coste et al. 2023 + Eisenstein et al. 2023: reward-model ensembles against over-optimisation."""

    world: WorldConfig = field(default_factory=lambda: ENSEMBLES_WORLD)
    """The preference world (v2 without the proxy bias; cached under .cache/preference_world/ by its key)."""
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    """Proxy RM template (size, seeds, noise and quirk are set per member)."""
    members: int = 5
    """Ensemble size k (Coste et al.: 5)."""
    sizes: list[int] = field(default_factory=lambda: [32, 64])
    """Proxy widths d (Coste et al.: 44M and 1.3B proxies)."""
    label_noises: list[float] = field(default_factory=lambda: [0.0, 0.25])
    """Label-flip rates of the proxies' training data (Coste et al.: 0 and 25%)."""
    clean_sizes: list[int] = field(default_factory=lambda: [32])
    """Sizes also trained at the noise levels other than 25% (25%-noise members come at every size)."""
    quirk_tokens: list[int] = field(default_factory=lambda: member_quirks(WORLD_V2))
    """Member m's labeller quirk token is quirk_tokens[m mod len] (premise; the control shares the seed's first
    member's); content tokens, not features, at least `members` of them (v2: the world's Q, whose overuse costs
    gold)."""
    quirk_gain: float = 2.5
    """γ of every member's labeller quirk u = R* + γ · n_quirk(y) (deviation 10: 2.5, so that a second copy pays the
    labeller more than its gold cost κ = 1; runs on world v2.2's price: `V2_2_QUIRK_GAIN`)."""
    bon_prompts: int = 64
    """Prompts of the best-of-n evaluation."""
    bon_samples: int = 512
    """Base-policy samples per prompt (N); n runs over powers of two up to N."""
    std_samples: int = 2048
    """Base-policy samples that standardise each member (z = (R − μ)/σ) before aggregation."""
    test_pairs: int = 1000
    """Held-out gold-labelled pairs for proxy accuracy."""
    eisenstein: bool = True
    """Run the pretrain-seed vs finetune-seed contrast (control setting, d = sizes[0], 25% noise)."""
    eisenstein_n: int = 64
    """n at which the pretrain/finetune/single contrast is read (Eisenstein et al.: n = 64)."""
    ppo_size: int = 32
    """Proxy width of the PPO runs."""
    ppo_label_noise: float = 0.0
    """Label noise of the PPO proxies (0: the world demo's setting, where every seed over-optimises)."""
    ppo_settings: list[str] = field(default_factory=lambda: ["premise", "control"])
    """Settings with PPO runs at the small KL coefficient."""
    ppo_large_kl_settings: list[str] = field(default_factory=lambda: ["premise"])
    """Settings that also run PPO at the larger KL coefficient."""
    ppo_methods: list[str] = field(default_factory=lambda: list(PPO_METHODS))
    """Rewards PPO optimises: single (one member), mean, wco, uwo (λ = 0.1, unbiased variance)."""
    ppo_large_kl_methods: list[str] = field(default_factory=lambda: ["wco", "uwo"])
    """Rewards PPO optimises at the larger KL coefficient (a subset of ppo_methods; claim 3b reads WCO and UWO)."""
    ppo_kl_small: float = 0.01
    """Small fixed KL coefficient β (Coste et al.'s KL study: 0.01; the world demo's)."""
    ppo_kl_large: float = 0.1
    """Larger fixed KL coefficient β."""
    ppo_steps: int = 50
    """PPO iterations (the world demo's single proxy peaks near iteration 23 and collapses by ≈ 45)."""

    def validate(self) -> None:
        super().validate()
        check_positive(
            self,
            "sizes",
            "bon_prompts",
            "std_samples",
            "test_pairs",
            "eisenstein_n",
            "ppo_size",
            "quirk_gain",
        )
        check_fraction(self, "label_noises", "ppo_label_noise")
        ensure(self.members >= 2, "members", f"must be >= 2, got {self.members}")
        ensure(self.bon_samples >= 2, "bon_samples", f"must be >= 2, got {self.bon_samples}")
        ensure(self.eisenstein_n <= self.bon_samples, "eisenstein_n", "must be <= bon_samples")
        ensure(len(self.quirk_tokens) >= self.members, "quirk_tokens", f"needs members = {self.members} tokens")
        ensure(len(set(self.quirk_tokens)) == len(self.quirk_tokens), "quirk_tokens", "must be distinct")
        ensure(
            all(self.world.n_features <= t < self.world.vocab for t in self.quirk_tokens),
            "quirk_tokens",
            f"must be non-feature content tokens in [{self.world.n_features}, {self.world.vocab})",
        )
        for name in ("ppo_settings", "ppo_large_kl_settings"):
            bad = [s for s in getattr(self, name) if s not in SETTINGS]
            ensure(not bad, name, f"unknown settings {bad}; choose from {SETTINGS}")
        bad = [m for m in self.ppo_methods if m not in PPO_METHODS]
        ensure(not bad, "ppo_methods", f"unknown methods {bad}; choose from {PPO_METHODS}")
        bad = [m for m in self.ppo_large_kl_methods if m not in self.ppo_methods]
        ensure(not bad, "ppo_large_kl_methods", f"{bad} not in ppo_methods={self.ppo_methods}")
        ensure(0.25 in self.label_noises, "label_noises", "must include 0.25 (the claims read the 25% proxies)")
        ensure(self.ppo_size in self.sizes, "ppo_size", f"must be one of sizes={self.sizes}")
        ensure(set(self.clean_sizes) <= set(self.sizes), "clean_sizes", f"must be a subset of sizes={self.sizes}")
        ensure(
            self.ppo_label_noise == 0.25 or self.ppo_size in self.clean_sizes,
            "ppo_size",
            "PPO proxies with noise other than 25% need ppo_size in clean_sizes",
        )
        ensure(self.ppo_label_noise in self.label_noises, "ppo_label_noise", "must be one of label_noises")


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        workers=1,
        world=dataclasses.replace(SMOKE_WORLD_V2, **ENSEMBLES_WORLD_CHANGES),
        proxy=ProxyConfig(n_pairs=128, steps=10, pretrain_steps=5),
        members=3,
        sizes=[16],
        clean_sizes=[16],
        label_noises=[0.25],
        std_samples=64,
        test_pairs=64,
        bon_prompts=4,
        bon_samples=16,
        eisenstein_n=4,
        ppo_size=16,
        ppo_label_noise=0.25,
        ppo_methods=["single", "wco"],
        ppo_large_kl_methods=["wco"],
        ppo_steps=4,
        ppo_batch=16,
        ppo_minibatch=8,
        log_every=2,
    ),
    # world v2 (issue 31): independent ensembles double the members, so quick reads d = 32 only (full: 32 and 64);
    # the Eisenstein contrast (claim 4: 5 backbones + 10 members per seed, ≈ 1/3 of the CPU) is underpowered at any
    # seed count the 15-minute budget allows (README "Seeds"), so it runs in `full` only
    "quick": Config(preset="quick", seeds=3, sizes=[32], eisenstein=False),
    # The project's own scale-up of the synthetic preference world (5 seeds, larger best-of-n and PPO), not Coste et
    # al.'s or Eisenstein et al.'s LLM setting: no value here is quoted from the papers.
    "full": Config(
        preset="full",
        seeds=5,
        clean_sizes=[32, 64],
        bon_prompts=256,
        bon_samples=1024,
        ppo_steps=300,
        ppo_batch=256,
        ppo_large_kl_settings=["premise", "control"],
        ppo_large_kl_methods=list(PPO_METHODS),
        # Coste et al.'s best-of-n on their released data and real RMs (full.py; --model '' keeps the synthetic
        # scale-up above): official configs/config_rm.yaml model_name, run_bon_pipeline.py --gold-labelled-generations
        model="tlc4418/pythia_70m_sft",
        dataset="tlc4418/gold_labelled_gens",
        reward_dataset="tlc4418/1.4b-policy_preference_data_gold_labelled",  # data_utils/README.md: RM training
    ),
}


# --- the run: members, then best-of-n and PPO units in worker processes ---


def run(cfg: Config) -> list[dict]:
    """Members train in `workers` spawned processes (artefacts shared through the cache); then the best-of-n
    curves (the longest unit, first) and the PPO runs go to the same workers."""
    import concurrent.futures as cf
    import multiprocessing as mp

    clock = [time.perf_counter()]

    def stage(name: str) -> None:  # wall time per stage (README, deviation 6)
        clock.append(time.perf_counter())
        log(f"stage {name}: {clock[-1] - clock[-2]:.0f} s wall")

    torch.set_num_threads(cfg.threads)
    build_world(cfg.world, verbose=True)  # once, into the cache, before any worker starts
    stage("world")
    pcs = all_member_configs(cfg)
    backbones = sorted(
        {(pc.d_model, pc.n_layers, pc.pretrain_seed, pc.pretrain_steps) for pc in pcs if pc.pretrain_seed is not None}
    )
    pool = cf.ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) if cfg.workers > 1 else None
    if pool is not None:
        list(pool.map(_backbone_job, [cfg] * len(backbones), backbones))
        stage(f"{len(backbones)} backbones")
        list(pool.map(_train_job, [cfg] * len(pcs), pcs))
        stage(f"{len(pcs)} members")
    keys = [("bon",)] + [("ppo", *job) for job in ppo_jobs(cfg)]  # checkpointed units (--resume)
    rows = [r for res in checkpoint.map_units(_unit_job, [(cfg, k) for k in keys], keys, pool) for r in res]
    stage(f"best-of-n + {len(keys) - 1} PPO runs")
    if pool is not None:
        pool.shutdown()
    rows += copied_single_rows(rows, cfg)
    rows += summary_rows(rows, cfg)
    return rows


def _backbone_job(cfg: Config, key: tuple[int, int, int, int]) -> None:
    """Worker: pre-train one backbone into the cache."""
    torch.set_num_threads(cfg.threads)
    build_world(cfg.world).pretrained_backbone(*key)


def _train_job(cfg: Config, pc: ProxyConfig) -> None:
    """Worker: train one proxy (or its pre-trained backbone) into the cache."""
    torch.set_num_threads(cfg.threads)
    build_world(cfg.world).train_proxy(pc)


def _unit_job(cfg: Config, key: tuple) -> list[dict]:
    """Worker: checkpoint unit `key`, ("bon",) or ("ppo", setting, method, β, seed)."""
    return _bon_job(cfg) if key == ("bon",) else _ppo_job(cfg, *key[1:])


def _bon_job(cfg: Config) -> list[dict]:
    """Worker: every best-of-n curve (world and members come from the cache; members train here without workers)."""
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world)
    members = {pc: world.train_proxy(pc) for pc in track(all_member_configs(cfg), "members")}
    rows = bon_rows(world, cfg, members)
    log(f"best-of-n unit: {time.perf_counter() - t0:.0f} s wall ({len(members)} members scored)")
    return rows


def _ppo_job(cfg: Config, setting: str, method: str, beta: float, seed: int) -> list[dict]:
    """Worker: one PPO run (world and members come from the cache)."""
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world)
    pcs = [member_config(cfg, setting, cfg.ppo_size, cfg.ppo_label_noise, m) for m in window(cfg, seed)]
    rms = [world.train_proxy(pc) for pc in pcs]
    mu, sd = standardiser(world, rms, cfg)
    rows = ppo_rows(world, Ensemble(rms, mu, sd).eval(), cfg, method, beta, seed, setting)
    log(f"PPO unit {setting} {method} β={beta} seed {seed}: {time.perf_counter() - t0:.0f} s wall")
    return rows
