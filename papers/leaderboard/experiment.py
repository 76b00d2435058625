"""Every RLHF method of the project on one preference world, one budget and the same seeds.

Nothing here re-implements a method: each entry calls its paper's public functions.
- best-of-n (`bon_*`): `papers.ensembles.best_of_n.bon_pool`, `curve_rows`, `members.standardiser` with
  `papers.ensembles.method.aggregate` (mean, WCO, UWO, median, mean − std) or `baselines.single_member`;
- PPO with each shaping / RM baseline of Fu et al. (`ppo_<run>`: vanilla, Meanstd, Clip, Minmax, LSC, PAR, WARM,
  ODIN, Reg): `papers.par.ppo.ppo_run` (its RMs and references from `reward_models.reward_model` / `ppo.prompts`);
- PPO against the ensembles (`ppo_ens_<agg>`: mean, WCO, UWO): `papers.ensembles.ppo.ppo_rows`;
- offline (`dpo`, `ipo`, `simpo`, `cdpo`, `rdpo`, `chipo`, `power`, `power_dl`):
  `papers.power_dl.experiment.world_rows`.

One world and one budget. Seed s has one labelled data set: `proxy.n_pairs` gold-labelled pairs of π_SFT samples
(`world.comparisons(n_pairs, seed=s)`). The single proxy of seed s (PAR's proxy: `proxy` with seed = data_seed = s)
is trained on them, ensemble member j on the same pairs with fine-tune seed s + 1000 j (member 0 is the single
proxy), and the offline methods train on the same pairs. Every PPO run has the same β, learning rate, epochs,
minibatch and `iterations × ppo_batch` rollouts; every offline run the same steps × batch; best-of-n draws up to
`bon_samples` π_SFT samples per prompt. Each paper's remaining hyper-parameters (PAR's M, WARM's K, the offline
losses' β / η / γ, UWO's λ) come from that paper's preset of the same name.

Each paper's records are mapped onto one curve per (method, seed): gold reward, KL(π ‖ π_SFT), gold win-rate vs
π_SFT, the single proxy's reward (z-scored under π_SFT), feature-token count and length, against the paper's own
x (best-of-n: n; PPO: iteration; offline: step). `scalar_rows` reduces a curve to the leaderboard's metrics.

Here: the config, its presets, the run and the metrics. `budget.py` gives each paper its config with the shared
world, data and budget; `families.py` runs best-of-n and maps each paper's records onto the curves; `ranking.py`
ranks, tables and plots.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import check_positive, ensure
from reprozoo.common.progress import track
from reprozoo.common.results import record, select
from reprozoo.common.stats import final_mean, moving_average
from reprozoo.common.worlds.preference import (
    SMOKE_WORLD_V2,
    WORLD_V2,
    PreferenceWorld,
    ProxyConfig,
    WorldConfig,
    build_world,
)
from reprozoo.common.worlds.preference_ppo import PromptSetPPO
from reprozoo.papers.ensembles import best_of_n as ensembles_bon
from reprozoo.papers.ensembles import members as ensembles_members
from reprozoo.papers.ensembles import ppo as ensembles_ppo
from reprozoo.papers.ensembles.method import AGGREGATIONS, Ensemble
from reprozoo.papers.leaderboard.budget import (
    ensembles_config,
    member_configs,
    par_config,
    power_dl_config,
    proxy_stats,
)
from reprozoo.papers.leaderboard.families import (
    CURVE_METRICS,
    bon_curves,
    from_ensembles,
    from_par,
    from_power_dl,
    sft_reference,
)
from reprozoo.papers.par import ppo as par_ppo
from reprozoo.papers.par import reward_models as par_reward_models
from reprozoo.papers.par import variants as par_variants
from reprozoo.papers.power_dl import experiment as power_dl
from reprozoo.papers.power_dl.baselines import METHODS as OFFLINE_METHODS

BON = ("single", *AGGREGATIONS)
PAR_RUNS = ("vanilla", "meanstd", "clip", "minmax", "lsc", "par", "warm", "odin", "reg")
ENSEMBLE_PPO = ("mean", "wco", "uwo")
REFERENCE = "ppo_vanilla_gold"
"""PPO against the gold reward itself (PAR's control run): the premise (a proxy error) switched off; plotted and
checked, never ranked."""
WINDOW = 3
"""Smoothed peak: the maximum of the moving average of this many consecutive points of a curve."""
LAST = 3
"""Final value: the mean of a curve's last this-many points."""
SCALARS = (
    "gold_final",
    "gold_peak",
    "winrate_final",
    "kl_final",
    "kl_at_gold_peak",
    "gap_final",
    "features_drift",
    "length_drift",
)


@dataclass
class Config(PromptSetPPO):
    """One leaderboard: best-of-n, PPO (shaped, RM baselines, ensembles) and offline preference optimisation."""

    world: WorldConfig = field(default_factory=lambda: WORLD_V2)
    """The shared preference world (world v2, cached under .cache/preference_world/ by its hash)."""
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    """Single-proxy template: seed s uses seed = data_seed = s (PAR's proxy); its pairs are every method's data."""
    members: int = 5
    """Ensemble size k (Coste et al.: 5); member 0 is the single proxy."""
    bon: list[str] = field(default_factory=lambda: list(BON))
    """Best-of-n rankers: single (the single proxy) and the ensembles' aggregations."""
    bon_prompts: int = 64
    """Prompts of the best-of-n pool."""
    bon_samples: int = 512
    """π_SFT samples per prompt (N); n runs over powers of two up to N."""
    std_samples: int = 2048
    """π_SFT samples that standardise each proxy (z = (R − μ)/σ)."""
    ppo_runs: list[str] = field(default_factory=lambda: list(PAR_RUNS) + ["vanilla_gold"])
    """PPO runs of papers.par (VARIANTS names; vanilla_gold is the reference run on the gold reward)."""
    ensemble_ppo: list[str] = field(default_factory=lambda: list(ENSEMBLE_PPO))
    """Aggregations PPO optimises through papers.ensembles (single, mean, wco, uwo)."""
    offline: list[str] = field(
        default_factory=lambda: ["dpo", "ipo", "simpo", "cdpo", "rdpo", "chipo", "power", "power_dl"]
    )
    """Offline methods of papers.power_dl."""
    offline_steps: int = 400
    """Adam steps per offline run."""
    offline_batch: int = 64
    """Pairs per offline step."""
    offline_lr: float = 1e-3
    """Offline learning rate."""
    offline_eval_every: int = 50
    """Offline evaluation interval (steps)."""

    def validate(self) -> None:
        super().validate()
        check_positive(
            self,
            "bon_prompts",
            "std_samples",
            "kl_coef",
            "offline_steps",
            "offline_batch",
            "offline_lr",
            "offline_eval_every",
        )
        ensure(self.members >= 2, "members", f"must be >= 2, got {self.members}")
        ensure(self.bon_samples >= 2, "bon_samples", f"must be >= 2, got {self.bon_samples}")
        for name, allowed in (
            ("bon", BON),
            ("ppo_runs", tuple(par_variants.VARIANTS)),
            ("ensemble_ppo", ensembles_ppo.PPO_METHODS),
            ("offline", OFFLINE_METHODS),
        ):
            bad = [m for m in getattr(self, name) if m not in allowed]
            ensure(not bad, name, f"unknown {bad}; choose from {allowed}")
        ensure("vanilla" in self.ppo_runs, "ppo_runs", "must include vanilla (the premise is read on it)")
        ensure(self.offline_steps % self.offline_eval_every == 0, "offline_eval_every", "must divide offline_steps")
        ensure(self.offline_batch <= self.proxy.n_pairs, "offline_batch", "must be <= proxy.n_pairs")


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        workers=1,
        world=SMOKE_WORLD_V2,
        proxy=ProxyConfig(n_pairs=128, steps=10),
        members=2,
        bon=["single", "wco"],
        bon_prompts=4,
        bon_samples=8,  # smoke sizes of its own: no cache file shared with the papers' smoke tests (parallel tests)
        std_samples=64,
        ppo_runs=["vanilla", "par"],
        ensemble_ppo=["wco"],
        offline=["dpo", "power_dl"],
        train_prompts=16,
        ppo_batch=8,
        ppo_minibatch=8,
        eval_every=2,
        eval_prompts=12,
        offline_steps=4,
        offline_batch=16,
        offline_eval_every=2,
    ),
    # PAR's quick PPO budget (100 iterations × 64): on world v2.1 vanilla PPO was still rising at 60 iterations (PAR's
    # development-seed pilot); 3 seeds fit 15 min, vanilla gets 7 more for the premise (README, seeds rule)
    "quick": Config(preset="quick", seeds=3, premise_seeds=7, offline_steps=200, offline_eval_every=25),
    "full": Config(
        preset="full",
        seeds=5,
        ppo_runs=list(par_variants.VARIANTS),
        ensemble_ppo=list(ensembles_ppo.PPO_METHODS),
        offline=list(OFFLINE_METHODS),
        bon_prompts=256,
        bon_samples=1024,
        train_prompts=12800,
        ppo_batch=128,
        ppo_minibatch=64,
        eval_prompts=1024,
        offline_steps=2000,
        offline_eval_every=100,
    ),
}


# --- the run: reward models, PPO runs in workers, best-of-n, offline runs, scalars ---


def run(cfg: Config) -> list[dict]:
    """Reward models first; then the PPO runs in `workers` processes while this one scores best-of-n; then the
    offline runs (papers.power_dl's own `world_rows`, with its own workers); then per-seed scalars. Each PPO run,
    best-of-n and each offline run is a checkpointed unit (`--resume`)."""
    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world, verbose=True)
    _prepare(world, cfg)
    jobs = [(_par_job, run, s) for run in cfg.ppo_runs for s in cfg.seed_list()]
    jobs += [(_par_job, "vanilla", s) for s in cfg.premise_seed_list()]
    jobs += [(_ensemble_job, m, s) for m in cfg.ensemble_ppo for s in cfg.seed_list()]
    keys = [("ppo", fn.__name__, name, seed) for fn, name, seed in jobs]
    pool = cf.ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) if cfg.workers > 1 else None
    ppo = checkpoint.map_units(_job, [(cfg, *job) for job in jobs], keys, pool)
    rows = checkpoint.unit(("bon",), partial(bon_curves, world, cfg))
    for res in track(ppo, "PPO runs", total=len(jobs)):
        rows += res
    if pool is not None:
        pool.shutdown()
    offline = power_dl.world_rows(power_dl_config(cfg))
    for method in cfg.offline:
        for seed in cfg.seed_list():
            rows += from_power_dl(offline, method, seed)
    sft = sft_reference(ensembles_bon.bon_pool(world, ensembles_config(cfg)))
    rows += [record("sft", 0, k, v) for k, v in sft.items()]
    return rows + scalar_rows(rows, sft)


def _prepare(world: PreferenceWorld, cfg: Config) -> None:
    """Train (or load) every reward model and PAR's references here, once, before the workers read the cache."""
    pcfg = par_config(cfg)
    kinds = sorted({par_variants.VARIANTS[r].rm for r in cfg.ppo_runs} - {"gold"})
    for seed in track(cfg.seed_list() + cfg.premise_seed_list(), "reward models"):
        if seed in cfg.seed_list():  # premise-only seeds run vanilla alone: the single proxy and its references
            for pc in member_configs(cfg, seed):
                world.train_proxy(pc)
            for kind in kinds:
                par_reward_models.reward_model(world, pcfg, kind, seed)
        par_ppo.prompts(world, pcfg, seed, par_reward_models.reward_model(world, pcfg, "proxy", seed))


def _job(cfg: Config, fn, name: str, seed: int) -> list[dict]:
    return fn(cfg, name, seed)


def _par_job(cfg: Config, run: str, seed: int) -> list[dict]:
    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world)
    mu, sd = proxy_stats(world, cfg, seed)
    rows = from_par(par_ppo.ppo_run(world, par_config(cfg), run, seed), run, seed, mu, sd)
    if seed in cfg.premise_seed_list():  # premise-only seeds: kept out of the ranking's paired seeds
        rows = [{**r, "method": f"{r['method']}_extra"} for r in rows]
    return rows


def _ensemble_job(cfg: Config, method: str, seed: int) -> list[dict]:
    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world)
    rms = [world.train_proxy(pc) for pc in member_configs(cfg, seed)]
    ecfg = ensembles_config(cfg)
    mu, sd = ensembles_members.standardiser(world, rms, ecfg)
    ens = Ensemble(rms, mu, sd).eval()
    pcfg = par_config(cfg)
    p = par_ppo.prompts(world, pcfg, seed, par_reward_models.reward_model(world, pcfg, "proxy", seed))
    eval_gen = par_ppo.eval_generator(seed)  # PAR's evaluation stream on the same held-out prompts

    def winrate(policy: torch.nn.Module) -> float:
        return par_ppo.win_rate(world, policy, p, eval_gen)

    rows = ensembles_ppo.ppo_rows(world, ens, ecfg, method, cfg.kl_coef, seed, "control", winrate=winrate)
    return from_ensembles(rows, method, seed)


# --- curves → leaderboard metrics ---


def curve(rows: list[dict], method: str, seed: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, value) of one run's curve, sorted by x."""
    pts = sorted((r["step"], r["value"]) for r in select(rows, method=method, seed=seed, metric=metric) if "step" in r)
    return np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)


def smoothed_peak_at(values: np.ndarray) -> tuple[float, int]:
    """(smoothed peak, index of the centre of its window): the maximum of the `WINDOW`-point moving average."""
    smooth = moving_average(values, WINDOW)
    i = int(np.argmax(smooth))
    return float(smooth[i]), min(i + WINDOW // 2, len(values) - 1)


def scalars(curves: dict[str, tuple[np.ndarray, np.ndarray]], sft: dict[str, float]) -> dict[str, float]:
    """One run's leaderboard metrics from its curves. Final = the mean of the last `LAST` points (`final_mean`),
    peak = the smoothed peak (maximum of the `WINDOW`-point moving average), so one noisy evaluation makes neither:
    gold final and peak, KL at the end and at the centre of the gold peak's window, win-rate at the end, the
    proxy–gold gap at the end (Δ single-proxy z − Δ gold, both from π_SFT), feature-token and length drift from
    π_SFT. A metric whose curve the run lacks is left out. Gold and KL share their x."""
    (x, gold), (kx, kl) = curves["gold"], curves["kl"]
    if not np.array_equal(x, kx):
        raise ValueError("gold and KL curves must share their x")
    gold_peak, centre = smoothed_peak_at(gold)
    gold_final = final_mean(gold, LAST)
    out = {
        "gold_final": gold_final,
        "gold_peak": gold_peak,
        "kl_final": final_mean(kl, LAST),
        "kl_at_gold_peak": float(kl[centre]),
    }
    has = {m: len(curves.get(m, ((), ()))[1]) > 0 for m in CURVE_METRICS}
    if has["winrate"]:
        out["winrate_final"] = final_mean(curves["winrate"][1], LAST)
    if has["proxy_z"]:
        out["gap_final"] = final_mean(curves["proxy_z"][1], LAST) - (gold_final - sft["gold"])
    for m in ("features", "length"):
        if has[m]:
            out[f"{m}_drift"] = final_mean(curves[m][1], LAST) - sft[m]
    return out


def scalar_rows(rows: list[dict], sft: dict[str, float]) -> list[dict]:
    """Per-run leaderboard metrics (rows without `step`: summary.json aggregates them over seeds)."""
    runs = sorted({(r["method"], r["seed"]) for r in rows if "step" in r})
    out = []
    for method, seed in runs:
        curves = {m: curve(rows, method, seed, m) for m in CURVE_METRICS}
        out += [record(method, seed, k, v) for k, v in scalars(curves, sft).items()]
    return out
