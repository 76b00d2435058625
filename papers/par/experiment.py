"""The reward-hacking experiment of Fu et al. 2025 on the preference world (`common/worlds/preference.py`).

Per seed: one clean proxy RM (the world's default proxy for that seed); the RM baselines' reward models (WARM's
weight average of K RMs fine-tuned from the proxy's initialisation, Reg, ODIN) trained on the same pairs; a fixed
set of training prompts whose M SFT reference responses are sampled and scored by the proxy once, offline; a
held-out evaluation set of prompts with one SFT response each. Then PPO from π_SFT for `prompt_epochs` passes over
the training prompts against each method's RL reward (per-token KL penalty −β (log π − log π_SFT), shaped reward on
the last token). Every `eval_every` iterations: gold win-rate of the policy against the SFT responses on the
evaluation prompts (the paper's metric; ties count ½); on each iteration's rollouts: proxy reward (the vanilla
proxy, for every method), RL reward, gold reward, KL, length and feature-token count.

Here: the config, its presets and the run. The steps: `variants.py` (the PPO run types), `reward_models.py` (the
proxy, WARM, Reg, ODIN; cached), `ppo.py` (prompts and references, one PPO run, its summaries), `report.py` (table,
figure); the shapings in `method.py` / `baselines.py`; the real-model path in `full.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import check_positive, ensure
from reprozoo.common.hf import HubConfig
from reprozoo.common.worlds.preference import SMOKE_WORLD_V2, WORLD_V2, ProxyConfig, WorldConfig, build_world
from reprozoo.common.worlds.preference_ppo import PromptSetPPO
from reprozoo.papers.par.ppo import ppo_run, prompts
from reprozoo.papers.par.reward_models import WARM_MEMBERS, reward_model
from reprozoo.papers.par.variants import ABLATIONS, CONTROLS, METHODS, VARIANTS

PAPER = "par"


@dataclass
class Config(PromptSetPPO, HubConfig):
    """PAR and the reward-shaping baselines: PPO against one proxy RM on the preference world, or (with --model,
    the full preset) the paper's own setting on real models through TRL (papers/par/full.py)."""

    world: WorldConfig = field(default_factory=WorldConfig)
    """The world (cached under .cache/preference_world/ by its hash)."""
    control_world: WorldConfig | None = None
    """The world of the regime controls `vanilla_ctrl` / `par_ctrl` (PAR's regime switched off); None: no controls."""
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    """Proxy RM template (seed and data seed are set per run seed; clean labels)."""
    runs: list[str] = field(default_factory=lambda: list(METHODS + ABLATIONS + CONTROLS))
    """PPO runs (methods and ablations) from VARIANTS."""
    n_refs: int = 10
    """M: SFT reference responses per training prompt (official `reward_maxref` = 10); LSC uses all of them."""
    whiten_advantages: bool = True
    """Normalise advantages over the batch (official `compute_advantages` does)."""
    valid_len: int = 10
    """Length beyond which every method but ODIN pays `len_penalty` per token (official 300 of 512 tokens)."""
    len_penalty: float = 0.01
    """Per-token length penalty (official 0.01)."""
    warm_k: int = 5
    """WARM: reward models averaged, the first K of the official members M1-M5 (official 5; at most 5)."""
    reg_coef: float = 0.005
    """Reg: coefficient of r⁺² + r⁻² (official `reward_reg_val` = 0.005)."""
    beat_prompts: int = 256
    """Premise 1c: training prompts on which the gold-best of `beat_n` SFT samples is scored against the prompt's
    M references (once per seed, on the `par` run)."""
    beat_n: int = 32
    """Premise 1c: SFT samples per prompt of the gold-aligned best-of-n."""
    proxy_offset: float = 0.0
    """A constant c added to every reward model's score (r + c; the references' too): Bradley–Terry training cannot
    see it, and of the shapings only the uncentred σ(r) does (claim 5). The paper's proxy sits at 3.5 under π_SFT."""
    final_evals: int = 2
    """'Final' values average the last this-many evaluation windows."""
    few_seed_runs: list[str] = field(default_factory=list)
    """Runs of `runs` that run only on the first `few_seeds` seeds (controls whose seed-to-seed spread is small; claim
    4's M = 1, underpowered at any affordable seed count); paired claims read the seeds both runs have."""
    few_seeds: int = 3
    """Seeds of the `few_seed_runs`."""
    m1_seeds: int = 0
    """Claim 4's own block of fresh seeds, after the premise seeds, on which only `par` and `par_m1` run (when both
    are in `runs`): claim 4 (M = 1 vs M = 10) is decided on this block alone and every other claim, the table and
    the figure ignore it (pre-registration v5, README). 0: claim 4 pairs `par_m1` with PAR over the seeds both have."""

    def premise_seed_list(self) -> list[int]:
        """The seeds on which only `vanilla` runs (premise 1), after `seed_list()`."""
        return super().premise_seed_list() if "vanilla" in self.runs else []

    def m1_seed_list(self) -> list[int]:
        """Claim 4's block: `m1_seeds` seeds after the premise seeds (whether or not `vanilla` runs, so the block
        does not move with `--runs`); empty unless both `par` and `par_m1` run."""
        start = self.first_seed + self.seeds + self.premise_seeds
        return list(range(start, start + self.m1_seeds)) if {"par", "par_m1"} <= set(self.runs) else []

    def run_seeds(self, name: str) -> list[int]:
        """The seeds run `name` runs on (`vanilla` also on `premise_seed_list()`, `par` and `par_m1` also on
        `m1_seed_list()`)."""
        seeds = self.seed_list()[: self.few_seeds] if name in self.few_seed_runs else self.seed_list()
        seeds = seeds + (self.premise_seed_list() if name == "vanilla" else [])
        return seeds + (self.m1_seed_list() if name in ("par", "par_m1") else [])

    def validate(self) -> None:
        super().validate()
        check_positive(
            self,
            "n_refs",
            "valid_len",
            "warm_k",
            "beat_prompts",
            "beat_n",
            "final_evals",
        )
        unknown = [r for r in self.runs if r not in VARIANTS]
        ensure(not unknown, "runs", f"unknown runs {unknown}; choose from {sorted(VARIANTS)}")
        ctrl = [r for r in self.runs if VARIANTS[r].world == "control"]
        ensure(not ctrl or self.control_world is not None, "runs", f"{ctrl} need a control_world")
        ensure(len(self.runs) > 0, "runs", "must not be empty")
        few = [r for r in self.few_seed_runs if r not in VARIANTS]
        ensure(not few, "few_seed_runs", f"unknown runs {few}; choose from {sorted(VARIANTS)}")
        ok = not self.few_seed_runs or 1 <= self.few_seeds <= self.seeds
        ensure(ok, "few_seeds", f"must be in 1..seeds with few_seed_runs, got {self.few_seeds}")
        ensure(self.m1_seeds >= 0, "m1_seeds", f"must be >= 0, got {self.m1_seeds}")
        ensure(self.len_penalty >= 0, "len_penalty", f"must be >= 0, got {self.len_penalty}")
        ensure(self.reg_coef >= 0, "reg_coef", f"must be >= 0, got {self.reg_coef}")
        ensure(self.warm_k <= len(WARM_MEMBERS), "warm_k", f"must be <= {len(WARM_MEMBERS)} (the official members)")
        ensure(self.beat_prompts <= self.train_prompts, "beat_prompts", "must be <= train_prompts")
        ensure(
            self.final_evals <= self.iterations // self.eval_every, "final_evals", "exceeds the number of evaluations"
        )
        m = [VARIANTS[r].n_refs for r in self.runs if VARIANTS[r].n_refs is not None]
        ensure(all(v <= self.n_refs for v in m), "n_refs", f"must be >= every ablation's M {m}")


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        workers=1,
        world=SMOKE_WORLD_V2,
        control_world=dataclasses.replace(SMOKE_WORLD_V2, proxy_bias_gain=0.0),
        proxy=ProxyConfig(n_pairs=128, steps=10),
        runs=[
            *("vanilla", "warm", "odin", "reg", "minmax", "lsc", "par", "par_m1", "sigmoid"),
            *CONTROLS,
            "vanilla_ctrl",
        ],
        proxy_offset=3.5,
        n_refs=3,
        warm_k=2,
        train_prompts=16,
        prompt_epochs=2,
        ppo_batch=8,
        ppo_minibatch=8,
        eval_prompts=16,
        beat_prompts=8,
        beat_n=4,
        eval_every=2,
        final_evals=1,
    ),
    # Issue 31: world v2 (common/worlds/README_preference.md, "API for papers"): channel (iii), the proxy bias that
    # keeps paying past the SFT references, is PAR's regime; the regime controls run the same world with it off.
    # The proxy sits at the paper's 3.5 under π_SFT (claim 5's premise); ablations M = 3, k = 2, 3 via --runs.
    # Pre-registration v4 (README; power from the v2.2 run's paired SDs): fresh evaluation seeds 13-19 for the runs
    # claims 2, 3 and 5 compare (7 paired seeds), Vanilla also on 20-22 (premise 1: 10 seeds); the controls and
    # claim 4's M = 1 on seeds 13-15 only; 128 evaluation prompts. Claim 3's other rivals (WARM, ODIN, Minmax) are the
    # secondary setting `--runs par warm odin minmax --out runs/par/quick_rivals` (README).
    # Pre-registration v5 (README, deviation 15): claim 4 is decided on its own block of fresh seeds 23-27, on which
    # only PAR (M = 10) and M = 1 run (power from the v4 run's paired SD); the v4 records of seeds 13-22 are unchanged.
    "quick": Config(
        preset="quick",
        seeds=7,
        first_seed=13,
        premise_seeds=3,
        world=WORLD_V2,
        control_world=dataclasses.replace(WORLD_V2, proxy_bias_gain=0.0),
        runs=["vanilla", "meanstd", "clip", "reg", "lsc", "par", "sigmoid", "par_m1", *CONTROLS, "vanilla_ctrl"],
        few_seed_runs=["par_m1", *CONTROLS, "vanilla_ctrl"],
        few_seeds=3,
        m1_seeds=5,
        eval_prompts=128,
        proxy_offset=3.5,
    ),
    # World v1 and claims' runs of the results committed before issue 31 (845ed0f).
    "quick_v1": Config(preset="quick_v1", seeds=3),
    # Fu et al.'s setting on real models (papers/par/full.py; its hyper-parameters are quoted there). With --model ''
    # the project's own scale-up of the synthetic world instead (5 seeds, more prompts; nothing quoted from the paper).
    "full": Config(
        preset="full",
        seeds=5,
        train_prompts=12800,
        ppo_batch=128,
        ppo_minibatch=64,
        eval_prompts=1024,
        model="google/gemma-2-2b",  # official auto_sh/gemma2-2b_ultrafb_bin.sh: --model_name gemma2-2b
        dataset="HuggingFaceH4/ultrafeedback_binarized",  # ibid.: --dataset ultrafb_bin
        gold_reward_model="Skywork/Skywork-Reward-Gemma-2-27B-v0.2",  # official autorating/skywork.py (oracle RM)
        runs=["vanilla", "meanstd", "clip", "minmax", "lsc", "par"],  # the shapings of one proxy RM (full.py)
        n_refs=10,  # official --reward_maxref default 10
        kl_coef=0.005,  # official --KL_coef default 0.005
        valid_len=300,  # official --gen_valid_len 300
        len_penalty=0.01,  # official --len_penalty 0.01
    ),
}


# --- the whole experiment ---


def split_m1_block(rows: list[dict], cfg: Config) -> tuple[list[dict], list[dict]]:
    """(the records of every seed but claim 4's block, the block's records): claim 4 reads only the block when
    there is one; every other claim, the table and the figure read only the rest."""
    block = set(cfg.m1_seed_list())
    return [r for r in rows if r["seed"] not in block], [r for r in rows if r["seed"] in block]


def world_of(cfg: Config, name: str) -> WorldConfig:
    """The world run `name` trains in (the control world for the regime controls)."""
    return cfg.control_world if VARIANTS[name].world == "control" else cfg.world


def run(cfg: Config) -> list[dict]:
    """Reward models and references per seed, then every (run, seed) PPO job, in `workers` spawned processes
    (`vanilla` also on the premise seeds)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    torch.set_num_threads(cfg.threads)
    for wc in dict.fromkeys(world_of(cfg, r) for r in cfg.runs):
        build_world(wc, verbose=True)  # once, here; the seeds' proxies and RMs are trained by the workers
    jobs = [(name, seed) for name in cfg.runs for seed in cfg.run_seeds(name)]
    keys = [("ppo", name, seed) for name, seed in jobs]  # checkpointed units (--resume)
    rows: list[dict] = []
    # workers = 1 runs the same jobs here, one by one (a fresh world per PPO run either way: records do not depend
    # on --workers)
    pool = cf.ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) if cfg.workers > 1 else None
    with pool or contextlib.nullcontext():
        seeds = dict.fromkeys(seed for _, seed in jobs)
        prep = [(seed, [name for name, s in jobs if s == seed]) for seed in seeds]
        list((pool.map if pool else map)(_prepare_job, [cfg] * len(prep), *zip(*prep, strict=True)))
        results = checkpoint.map_units(_ppo_job, [(cfg, name, seed) for name, seed in jobs], keys, pool)
        for (name, seed), res in zip(jobs, results, strict=True):
            rows += res
            fin = {r["metric"]: r["value"] for r in res if "step" not in r}
            print(
                f"[par] {name} seed {seed}: win-rate peak {fin['winrate_peak']:.3f} final {fin['winrate_final']:.3f}, "
                f"proxy final {fin['proxy_final']:.2f}, KL final {fin['kl_final']:.2f}",
                flush=True,
            )
    return rows


def _prepare_job(cfg: Config, seed: int, runs: list[str]) -> None:
    """Worker: train the reward models and sample/score the references the seed's `runs` need into the cache, in
    every world they train in."""
    torch.set_num_threads(cfg.threads)
    for wc in dict.fromkeys(world_of(cfg, r) for r in runs):
        world = build_world(wc)
        kinds = {VARIANTS[r].rm for r in runs if world_of(cfg, r) == wc} - {"gold"}
        for kind in sorted(kinds):
            reward_model(world, cfg, kind, seed)
        prompts(world, cfg, seed, reward_model(world, cfg, "proxy", seed))


def _ppo_job(cfg: Config, name: str, seed: int) -> list[dict]:
    """Worker: one PPO run (world, reward models and references come from the cache)."""
    torch.set_num_threads(cfg.threads)
    return ppo_run(build_world(world_of(cfg, name)), cfg, name, seed)
