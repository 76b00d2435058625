"""The paper's two studies, scaled: (a) Type I / Type II reward hacking on a tabular bandit over many dataset
draws (Adam, the study's optimiser; plus the labelled variant `bandit_sgd`: the Type II datasets under full-batch
gradient descent at the mechanism test's β/η, the dynamics under which dynamic labels are proven to act);
(b) offline preference optimisation of the preference world's tiny LM with clean and 25%-flipped gold labels, gold
win-rate against the SFT policy and gold reward vs KL through training, the data's Type I / Type II pair counts,
and DPO on a control world whose shared error costs no gold.

Seeds: each seed is one batch of `bandit_draws` bandit datasets and one world dataset / training run per method.

Here: the config, its presets and the two studies' steps. The bandit's datasets and tabular training in
`bandit.py`, the world's data and training in `world.py`, the methods' losses in `method.py` / `baselines.py`, the
figure and table in `report.py`, the real-model path in `full.py`.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import itertools
import multiprocessing as mp
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import check_fraction, check_positive, ensure
from reprozoo.common.hf import HubConfig
from reprozoo.common.progress import track
from reprozoo.common.results import record, select
from reprozoo.common.worlds.preference import SMOKE_WORLD_V2, WORLD_V2, WorldConfig, build_world
from reprozoo.papers.power_dl.bandit import make_datasets, train_tabular
from reprozoo.papers.power_dl.baselines import METHODS, Hyper
from reprozoo.papers.power_dl.world import pair_types, preference_data, train_method

DATASETS = (("type1", "rare"), ("type1", "covered"), ("type2", "rare"), ("type2", "covered"))
CLEAN_PARTS = ("world_small", "world_clean")  # the clean-label data sets (`clean_eval_every`)


@dataclass
class Config(HubConfig):
    """POWER-DL (Rashidinejad & Tian 2025): tabular Type I / II study and the preference world, or (with --model,
    the full preset) the methods on real models through TRL (papers/power_dl/full.py)."""

    bandit_draws: int = 200
    """Bandit datasets drawn per seed (and per dataset type)."""
    common_rewards: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.0, -0.5])
    """True rewards of the well-covered arms."""
    rare_bad: float = -1.0
    """True reward of the rare arm in Type I datasets (worse than every common arm)."""
    rare_good: float = 2.0
    """True reward of the rare arm in Type II datasets (better than every common arm)."""
    bandit_pairs: int = 40
    """Comparisons among the common arms per dataset."""
    bandit_cover: int = 20
    """Comparisons of the rare arm in the "covered" control datasets (the "rare" ones have exactly one)."""
    bandit_steps: int = 500
    """Full-batch optimisation steps per bandit policy."""
    bandit_lr: float = 0.05
    """Bandit learning rate."""
    bandit_optimizer: str = "adam"
    """Bandit optimiser: adam or sgd (full-batch gradient descent)."""
    aligned_init: bool = True
    """Type II datasets start from (and use as π_ref) π_0 = softmax(r*), an initial model aligned with the true
    rewards (the paper's Fig. 1b); Type I from the uniform policy (Fig. 1a). False: uniform for both."""
    bandit_hp: Hyper = Hyper(power_beta=2.0, power_eta=2.0, dl_gamma=0.1)
    """Method hyper-parameters on the bandit."""
    sgd_variant: bool = True
    """Also run the Type II datasets (rare and covered) under full-batch gradient descent with `sgd_hp`, `sgd_lr`
    and `sgd_steps` (records part=bandit_sgd): the dynamics of the mechanism test
    (tests/papers/test_power_dl.py::test_dynamic_labels_shrink_gradients_on_weakly_supported_pairs), a labelled
    variant beside the Adam study."""
    sgd_hp: Hyper = Hyper(power_beta=1.0, power_eta=10.0, dl_gamma=0.05)
    """Method hyper-parameters of the gradient-descent variant (the mechanism test's: β/η = 0.1, γ = 0.05)."""
    sgd_lr: float = 1.0
    """Learning rate of the gradient-descent variant (the mechanism test's)."""
    sgd_steps: int = 500
    """Steps of the gradient-descent variant."""
    world: WorldConfig = WorldConfig()
    """The preference world (default: the committed one, cached after its first build)."""
    methods: list[str] = field(default_factory=lambda: ["dpo", "ipo", "simpo", "rdpo", "chipo", "power", "power_dl"])
    """Methods trained on the world (the bandit always runs all of them, cDPO included; claim 3 reads dpo and
    power_dl)."""
    world_pairs: int = 2048
    """Gold-labelled pairs of SFT samples in each world dataset."""
    label_noises: list[float] = field(default_factory=lambda: [0.0, 0.25])
    """Label-flip rates of the world datasets (0.25: Coste et al.)."""
    world_steps: int = 400
    """Adam steps per world run (batch `world_batch`)."""
    world_batch: int = 64
    """Pairs per step."""
    world_lr: float = 1e-3
    """Adam learning rate on the world."""
    eval_every: int = 50
    """Evaluate every this many steps."""
    clean_eval_every: int | None = None
    """Evaluate the clean-label data sets (the small one, part=world_small, and its clean control, part=world_clean)
    every this many steps instead (None: `eval_every`): DPO's gold peaks within ~50 steps on a small data set, which
    a 3-evaluation smoothed peak on a 50-step grid averages with the start (README "Pre-registration v5")."""
    eval_prompts: int = 384
    """Held-out prompts of each evaluation (one sample each, against one SFT sample each)."""
    world_hp: Hyper = Hyper(power_beta=2.0, power_eta=20.0, dl_gamma=0.1)
    """Method hyper-parameters on the world."""
    coverage_quantile: float = 0.25
    """A response is poorly covered when its SFT log-probability lies below this quantile of the data set's
    responses (Type I / Type II pair counts)."""
    control_feature_penalty: float | None = 0.0
    """DPO also trains, at every flip rate, on the world with this feature penalty p (the gold cost of the shared
    feature error; 0 = switched off): the world-channel control of premise 3 (records part=world_control). None:
    skip it."""
    clean_control: bool = False
    """DPO also trains on the `world_pairs` pairs with clean labels (the flipped data sets' pairs before the flips;
    records part=world_clean): the data control of premise 3 — the same pairs without the label noise's Type I / II
    pairs, and 4× the pairs of `small_pairs` (less statistical fluctuation)."""
    small_pairs: int | None = None
    """Also train `methods` on a clean-label data set of this many gold-labelled pairs (records part=world_small):
    a smaller sample of the same SFT pairs' distribution, so larger statistical fluctuation of its coverage (the
    paper's source of reward hacking). Claim 3 (clean labels) is decided there when set. None: skip."""
    small_seeds: int | None = None
    """Seeds of the small data set's runs (None: `seeds`); they start at `first_seed` + `small_seed_offset`."""
    small_seed_offset: int = 0
    """The small data set's first seed is `first_seed` + this offset (quick: 8, fresh seeds past the 0–7 whose runs
    were seen before pre-registration v4 chose its size; a `--first-seed 1000` run stays on development seeds)."""
    threads: int = 1
    """torch CPU threads per process."""
    workers: int = 2
    """Processes for the world runs (1 = all in this process)."""

    def validate(self) -> None:
        super().validate()
        check_positive(
            self,
            "bandit_draws",
            "bandit_pairs",
            "bandit_cover",
            "bandit_steps",
            "bandit_lr",
            "sgd_lr",
            "sgd_steps",
            "world_pairs",
            "world_steps",
            "world_batch",
            "world_lr",
            "eval_every",
            "eval_prompts",
            "threads",
            "workers",
        )
        ensure(len(self.common_rewards) >= 2, "common_rewards", "needs at least two common arms")
        ensure(self.rare_bad < min(self.common_rewards), "rare_bad", "must be below every common reward")
        ensure(self.rare_good > max(self.common_rewards), "rare_good", "must be above every common reward")
        ensure(
            self.bandit_optimizer in ("adam", "sgd"), "bandit_optimizer", f"adam or sgd, got {self.bandit_optimizer!r}"
        )
        bad = [m for m in self.methods if m not in METHODS]
        ensure(not bad, "methods", f"unknown {bad}; choose from {METHODS}")
        ensure({"dpo", "power_dl"} <= set(self.methods), "methods", "must include dpo and power_dl")
        check_fraction(self, "label_noises")
        ensure(self.world_steps % self.eval_every == 0, "eval_every", "must divide world_steps")
        every = self.clean_eval_every
        ensure(
            every is None or every > 0 and self.world_steps % every == 0, "clean_eval_every", "must divide world_steps"
        )
        ensure(self.world_batch <= self.world_pairs, "world_batch", "must be <= world_pairs")
        ensure(0 < self.coverage_quantile < 1, "coverage_quantile", f"must lie in (0, 1), got {self.coverage_quantile}")
        ensure(
            self.small_pairs is None or self.small_pairs >= self.world_batch, "small_pairs", "must be >= world_batch"
        )
        n = self.small_seeds
        ensure(n is None or n >= 1, "small_seeds", f"must be >= 1 or None, got {n}")
        ensure(self.small_seed_offset >= 0, "small_seed_offset", f"must be >= 0, got {self.small_seed_offset}")
        p = self.control_feature_penalty
        ensure(p is None or p >= 0, "control_feature_penalty", f"must be >= 0 or None, got {p}")
        for name in ("bandit_hp", "world_hp", "sgd_hp"):
            hp = getattr(self, name)
            ensure(0 <= hp.dl_gamma <= 1, name, f"dl_gamma must lie in [0, 1], got {hp.dl_gamma}")
            ensure(0 <= hp.eps < 0.5, name, f"eps must lie in [0, 0.5), got {hp.eps}")
            ensure(min(hp.dpo_beta, hp.ipo_tau, hp.simpo_beta, hp.power_beta, hp.power_eta) > 0, name, "β, τ, η > 0")

    def eval_interval(self, part: str) -> int:
        """Evaluation interval of the runs of a world data set (`part`)."""
        return self.clean_eval_every if self.clean_eval_every is not None and part in CLEAN_PARTS else self.eval_every

    def small_seed_list(self) -> list[int]:
        """Seeds of the small data set (part=world_small)."""
        first = self.first_seed + self.small_seed_offset
        return list(range(first, first + (self.seeds if self.small_seeds is None else self.small_seeds)))


SMALL_PAIRS = 512  # claim 3 (clean labels): chosen by the dev-seed pilots (README "Pre-registration v3", v4)
SMALL_SEEDS = 8  # its fresh evaluation seeds 8 … 15: the v5 power pilot (README "Pre-registration v5")

PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        bandit_draws=8,
        bandit_steps=20,
        sgd_steps=20,
        world=SMOKE_WORLD_V2,
        methods=["dpo", "power", "power_dl"],
        world_pairs=64,
        world_steps=4,
        world_batch=16,
        eval_every=2,
        eval_prompts=16,
        clean_control=True,  # every data set of the quick preset, in miniature
        small_pairs=32,
        workers=1,
    ),
    # Issue 31: world v2 (common/worlds/README_preference.md, "API for papers"; offline gold-labelled data see its
    # gold, whose shared feature error costs p = 0.1); the world runs trimmed to the two methods claim 3 reads, so
    # that the pre-registered 8 seeds fit the budget. Claims v3 (README "Pre-registration v3"): claim 3 at 25% flips
    # on 2048 pairs, claim 3 on clean labels on `small_pairs`, DPO on the 2048 pairs' clean labels as the control;
    # the p = 0 control world is cut (README "Quick preset"). Pre-registration v5: the clean-label data sets (small set
    # and its control) are evaluated every 10 steps; the small set runs on fresh seeds.
    "quick": Config(
        preset="quick",
        seeds=8,
        world=WORLD_V2,
        methods=["dpo", "power_dl"],
        label_noises=[0.25],
        control_feature_penalty=None,
        clean_control=True,
        small_pairs=SMALL_PAIRS,
        small_seeds=SMALL_SEEDS,
        small_seed_offset=8,  # past the seeds 0–7 seen at 512 pairs before v4 / v5 (README "Pre-registration v5")
        clean_eval_every=10,  # resolves DPO's early peak on the small data set; its control on the same grid
    ),
    # World v1 without issue 31's additions: the results committed before issue 31.
    "quick_v1": Config(preset="quick_v1", seeds=3, sgd_variant=False, control_feature_penalty=None),
    # The project's own scale-up of the bandit and the synthetic preference world (5 seeds, more draws and steps), not
    # Rashidinejad & Tian's LLM experiments: no value here is quoted from the paper.
    "full": Config(
        preset="full",
        seeds=5,
        bandit_draws=1000,
        methods=list(METHODS),
        world_pairs=8192,
        world_steps=2000,
        eval_every=100,
        eval_prompts=1024,
        # the real-model path (full.py; --model '' keeps the synthetic scale-up above). No official code and the
        # paper's setting could not be read here: the SimPO Llama-3-Base setting its benchmarks follow (assumed)
        model="princeton-nlp/Llama-3-Base-8B-SFT",
        dataset="HuggingFaceH4/ultrafeedback_binarized",  # the paper: UltraFeedback
        gold_reward_model="Skywork/Skywork-Reward-Llama-3.1-8B-v0.2",  # stand-in judge (paper: GPT-4 judges)
    ),
}


# --- (a) bandit ---


def bandit_rows(cfg: Config, seed: int) -> list[dict]:
    """True expected reward and rare-arm mass (means over the seed's draws) per method and dataset type; with
    `sgd_variant`, the Type II datasets again under full-batch gradient descent (part=bandit_sgd)."""
    rows = []
    for k, (kind, coverage) in enumerate(DATASETS):
        rare = cfg.rare_bad if kind == "type1" else cfg.rare_good
        gen = torch.Generator().manual_seed(1000 * seed + k)
        wins = make_datasets(
            kind, coverage, cfg.bandit_draws, cfg.common_rewards, rare, cfg.bandit_pairs, cfg.bandit_cover, gen
        )
        r_true = torch.tensor([*cfg.common_rewards, rare], dtype=torch.float64)
        init = r_true if kind == "type2" and cfg.aligned_init else None
        pi0 = torch.softmax(torch.zeros_like(r_true) if init is None else init, -1)
        variants = [("bandit", cfg.bandit_hp, cfg.bandit_optimizer, cfg.bandit_lr, cfg.bandit_steps)]
        if cfg.sgd_variant and kind == "type2":
            variants.append(("bandit_sgd", cfg.sgd_hp, "sgd", cfg.sgd_lr, cfg.sgd_steps))
        for part, hp, optimizer, lr, steps in variants:
            setting = dict(part=part, kind=kind, coverage=coverage)
            rows.append(record("initial", seed, "true_reward", float(pi0 @ r_true), **setting))
            rows.append(record("initial", seed, "rare_mass", float(pi0[-1]), **setting))
            for method in METHODS:
                pi = train_tabular(method, wins, hp, steps=steps, lr=lr, optimizer=optimizer, init_logits=init).exp()
                rows.append(record(method, seed, "true_reward", float((pi @ r_true).mean()), **setting))
                rows.append(record(method, seed, "rare_mass", float(pi[:, -1].mean()), **setting))
    return rows


# --- (b) preference world ---


def _world_job(
    cfg: Config, world_cfg: WorldConfig, data: dict, eval_prompts, sft_gold, method: str, seed: int, setting: dict
):
    torch.set_num_threads(cfg.threads)
    world = build_world(world_cfg)
    return train_method(
        world,
        data,
        method,
        cfg.world_hp,
        steps=cfg.world_steps,
        batch_size=cfg.world_batch,
        lr=cfg.world_lr,
        eval_every=cfg.eval_interval(setting["part"]),
        eval_prompts=eval_prompts,
        sft_gold=sft_gold,
        seed=seed,
        setting=setting,
    )


def control_world(cfg: Config) -> WorldConfig | None:
    """The world of premise 3's control: the same world with the shared error's gold cost p set to
    `control_feature_penalty` (the SFT policy is shared: p is not a policy field)."""
    if cfg.control_feature_penalty is None:
        return None
    return dataclasses.replace(cfg.world, feature_penalty=cfg.control_feature_penalty)


def curve_summary(rows: list[dict], method: str, seed: int, setting: dict) -> list[dict]:
    """Start / peak / final of the win-rate and gold curves of one run, and the KL at the end and at the peak
    (records part=<the run's part>_summary)."""
    out = []
    run = dict(method=method, seed=seed, **setting)
    summary = {**setting, "part": f"{setting['part']}_summary"}
    for metric in ("win_rate", "gold"):
        pts = sorted(select(rows, metric=metric, **run), key=lambda r: r["step"])
        v = np.array([r["value"] for r in pts])
        kl = [select(rows, metric="kl", step=r["step"], **run)[0]["value"] for r in pts]
        i = int(np.argmax(v))
        out += [
            record(method, seed, f"{metric}_start", float(v[0]), **summary),
            record(method, seed, f"{metric}_peak", float(v[i]), **summary),
            record(method, seed, f"{metric}_final", float(v[-1]), **summary),
            record(method, seed, f"{metric}_peak_step", float(pts[i]["step"]), **summary),
            record(method, seed, f"kl_at_{metric}_peak", float(kl[i]), **summary),
        ]
    out.append(record(method, seed, "kl_final", float(kl[-1]), **summary))
    return out


def world_settings(cfg: Config, extras: bool = True) -> list[tuple[str, WorldConfig, int, float, list[str]]]:
    """(part, world, pairs, flip rate, methods) of every world data set: `methods` on the `world_pairs` data set at
    each flip rate (part=world), DPO on the control world (part=world_control); with `extras`, DPO on the clean
    `world_pairs` data (part=world_clean) and `methods` on the small clean data set (part=world_small)."""
    out = [("world", cfg.world, cfg.world_pairs, noise, cfg.methods) for noise in cfg.label_noises]
    if (ctrl := control_world(cfg)) is not None:
        out += [("world_control", ctrl, cfg.world_pairs, noise, ["dpo"]) for noise in cfg.label_noises]
    if extras and cfg.clean_control:
        out.append(("world_clean", cfg.world, cfg.world_pairs, 0.0, ["dpo"]))
    if extras and cfg.small_pairs is not None:
        out.append(("world_small", cfg.world, cfg.small_pairs, 0.0, cfg.methods))
    return out


def world_rows(cfg: Config, extras: bool = False, during: Callable[[], list[dict]] | None = None) -> list[dict]:
    """Every (seed, data set of `world_settings`): the data set's Type I / Type II pair counts (part=world_data;
    with `pairs` beside the flip rate for the extra data sets) and every method's run. Each data set's runs are
    submitted to the workers as soon as it is built; `during` (e.g. the bandit) then runs in this process while
    the workers train. The leaderboard calls it without `extras`."""
    pool = cf.ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) if cfg.workers > 1 else None
    jobs, rows, results, worlds = [], [], [], {}
    for part, world_cfg, n_pairs, noise, methods in world_settings(cfg, extras):
        key = repr(world_cfg)  # one world object per config: its memoised pairs are shared by the flip rates
        world = worlds[key] = worlds.get(key) or build_world(world_cfg, verbose=True)
        for seed in cfg.small_seed_list() if part == "world_small" else cfg.seed_list():
            gen = torch.Generator().manual_seed(30_000 + seed)
            prompts = world.sample_prompts(cfg.eval_prompts, gen)
            g = world.sample(prompts, gen)
            sft_gold = world.gold_reward(prompts, g.tokens, g.mask)
            data = preference_data(world, n_pairs, noise, seed)
            setting = dict(part=part, noise=noise)
            if part not in ("world", "world_control"):  # the extra data sets name their size
                setting["pairs"] = n_pairs
            if part != "world_control":
                tag = {k: v for k, v in setting.items() if k != "part"}
                types = pair_types(data, cfg.coverage_quantile)
                rows += [record("data", seed, k, v, part="world_data", **tag) for k, v in types.items()]
            new = [(cfg, world_cfg, data, prompts, sft_gold, method, seed, setting) for method in methods]
            keys = [(*setting.values(), method, seed) for method in methods]  # checkpointed units (--resume)
            results.append(checkpoint.map_units(_world_job, new, keys, pool))  # in a pool: submitted here
            jobs += new
    if during is not None:
        rows += during()
    for res in track(itertools.chain.from_iterable(results), "world runs", total=len(jobs)):
        rows += res
    if pool is not None:
        pool.shutdown()
    for *_, method, seed, setting in jobs:
        if setting["part"] != "world_control":
            rows += curve_summary(rows, method, seed, setting)
    return rows


def run(cfg: Config) -> list[dict]:
    """The world runs are submitted first; the bandit runs in this process while the workers train."""
    torch.set_num_threads(cfg.threads)

    def bandit() -> list[dict]:
        rows: list[dict] = []
        for seed in track(cfg.seed_list(), description="bandit seeds"):
            rows += checkpoint.unit(("bandit", seed), partial(bandit_rows, cfg, seed))
        return rows

    return world_rows(cfg, extras=True, during=bandit)
