"""The paper's two studies, scaled: (a) Type I / Type II reward hacking on a tabular bandit over many dataset
draws (Adam, the study's optimiser; plus the labelled variant `bandit_sgd`: the Type II datasets under full-batch
gradient descent at the mechanism test's β/η, the dynamics under which dynamic labels are proven to act);
(b) offline preference optimisation of the preference world's tiny LM with clean and 25%-flipped gold labels, gold
win-rate against the SFT policy and gold reward vs KL through training, the data's Type I / Type II pair counts,
and DPO on a control world whose shared error costs no gold.

Seeds: each seed is one batch of `bandit_draws` bandit datasets and one world dataset / training run per method.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import check_fraction, check_positive, ensure
from reprozoo.common.hf import HubConfig
from reprozoo.common.progress import track
from reprozoo.common.results import record, select, values
from reprozoo.common.worlds.preference import SMOKE_WORLD_V2, WORLD_V2, WorldConfig, build_world
from reprozoo.papers.power_dl.bandit import make_datasets, train_tabular
from reprozoo.papers.power_dl.baselines import METHODS, Hyper
from reprozoo.papers.power_dl.world import pair_types, preference_data, train_method

DATASETS = (("type1", "rare"), ("type1", "covered"), ("type2", "rare"), ("type2", "covered"))


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
    eval_prompts: int = 384
    """Held-out prompts of each evaluation (one sample each, against one SFT sample each)."""
    world_hp: Hyper = Hyper(power_beta=2.0, power_eta=20.0, dl_gamma=0.1)
    """Method hyper-parameters on the world."""
    coverage_quantile: float = 0.25
    """A response is poorly covered when its SFT log-probability lies below this quantile of the data set's
    responses (Type I / Type II pair counts)."""
    control_feature_penalty: float | None = 0.0
    """DPO also trains, at every flip rate, on the world with this feature penalty p (the gold cost of the shared
    feature error; 0 = switched off): the control of premise 3 (records part=world_control). None: skip it."""
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
        ensure(self.world_batch <= self.world_pairs, "world_batch", "must be <= world_pairs")
        ensure(0 < self.coverage_quantile < 1, "coverage_quantile", f"must lie in (0, 1), got {self.coverage_quantile}")
        p = self.control_feature_penalty
        ensure(p is None or p >= 0, "control_feature_penalty", f"must be >= 0 or None, got {p}")
        for name in ("bandit_hp", "world_hp", "sgd_hp"):
            hp = getattr(self, name)
            ensure(0 <= hp.dl_gamma <= 1, name, f"dl_gamma must lie in [0, 1], got {hp.dl_gamma}")
            ensure(0 <= hp.eps < 0.5, name, f"eps must lie in [0, 0.5), got {hp.eps}")
            ensure(min(hp.dpo_beta, hp.ipo_tau, hp.simpo_beta, hp.power_beta, hp.power_eta) > 0, name, "β, τ, η > 0")


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
        workers=1,
    ),
    # Issue 31: world v2 (common/worlds/README_preference.md, "API for papers"; offline gold-labelled data see its
    # gold, whose shared feature error costs p = 0.1); the world runs trimmed to the two methods claim 3 reads, so
    # that the pre-registered 8 seeds fit the budget (README "Pre-registration v2").
    "quick": Config(preset="quick", seeds=8, world=WORLD_V2, methods=["dpo", "power_dl"]),
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
        eval_every=cfg.eval_every,
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


def curve_summary(rows: list[dict], method: str, seed: int, noise: float) -> list[dict]:
    """Start / peak / final of the win-rate and gold curves of one run, and the KL at the end and at the peak."""
    out = []
    setting = dict(part="world_summary", noise=noise)
    for metric in ("win_rate", "gold"):
        pts = sorted(
            select(rows, part="world", method=method, seed=seed, noise=noise, metric=metric), key=lambda r: r["step"]
        )
        v = np.array([r["value"] for r in pts])
        kl = [
            select(rows, part="world", method=method, seed=seed, noise=noise, metric="kl", step=r["step"])[0]["value"]
            for r in pts
        ]
        i = int(np.argmax(v))
        out += [
            record(method, seed, f"{metric}_start", float(v[0]), **setting),
            record(method, seed, f"{metric}_peak", float(v[i]), **setting),
            record(method, seed, f"{metric}_final", float(v[-1]), **setting),
            record(method, seed, f"{metric}_peak_step", float(pts[i]["step"]), **setting),
            record(method, seed, f"kl_at_{metric}_peak", float(kl[i]), **setting),
        ]
    out.append(record(method, seed, "kl_final", float(kl[-1]), **setting))
    return out


def world_rows(cfg: Config) -> list[dict]:
    """Every (seed, flip rate): the data set's Type I / Type II pair counts (part=world_data), every method's run
    (part=world) and, with a control world, DPO's run there (part=world_control)."""
    worlds = [("world", cfg.world, cfg.methods)]
    if (ctrl := control_world(cfg)) is not None:
        worlds.append(("world_control", ctrl, ["dpo"]))
    jobs, rows = [], []
    for part, world_cfg, methods in worlds:
        world = build_world(world_cfg, verbose=True)
        for seed in cfg.seed_list():
            gen = torch.Generator().manual_seed(30_000 + seed)
            prompts = world.sample_prompts(cfg.eval_prompts, gen)
            g = world.sample(prompts, gen)
            sft_gold = world.gold_reward(prompts, g.tokens, g.mask)
            for noise in cfg.label_noises:
                data = preference_data(world, cfg.world_pairs, noise, seed)
                if part == "world":
                    types = pair_types(data, cfg.coverage_quantile)
                    rows += [record("data", seed, k, v, part="world_data", noise=noise) for k, v in types.items()]
                setting = dict(part=part, noise=noise)
                jobs += [(cfg, world_cfg, data, prompts, sft_gold, method, seed, setting) for method in methods]
    keys = [(st["part"], m, s, st["noise"]) for *_, m, s, st in jobs]  # checkpointed units (--resume)
    if cfg.workers > 1:
        with cf.ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
            for res in track(checkpoint.map_units(_world_job, jobs, keys, pool), "world runs", total=len(jobs)):
                rows += res
    else:
        for res in track(checkpoint.map_units(_world_job, jobs, keys, None), "world runs", total=len(jobs)):
            rows += res
    for *_, method, seed, setting in jobs:
        if setting["part"] == "world":
            rows += curve_summary(rows, method, seed, setting["noise"])
    return rows


def run(cfg: Config) -> list[dict]:
    torch.set_num_threads(cfg.threads)
    rows: list[dict] = []
    for seed in track(cfg.seed_list(), description="bandit seeds"):
        rows += checkpoint.unit(("bandit", seed), partial(bandit_rows, cfg, seed))
    return rows + world_rows(cfg)


# --- figure and table ---

LABELS = {
    "dpo": "DPO",
    "ipo": "IPO",
    "simpo": "SimPO",
    "cdpo": "cDPO",
    "rdpo": "rDPO",
    "chipo": "χPO",
    "power": "POWER",
    "power_dl": "POWER-DL",
}


def _world_curve(rows: list[dict], method: str, noise: float, metric: str) -> tuple[np.ndarray, np.ndarray]:
    pts = select(rows, part="world", method=method, noise=noise, metric=metric)
    steps = sorted({r["step"] for r in pts})
    return np.array(steps), np.array([np.mean([r["value"] for r in pts if r["step"] == s]) for s in steps])


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Top: bandit true reward and rare-arm mass per method (Type I / II, rare vs covered); bottom: gold
    win-rate over SFT vs KL through training, per method, for each label-flip rate."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, max(2, len(cfg.label_noises)), figsize=(13, 9))
    x = np.arange(len(METHODS))
    for j, (metric, title) in enumerate((("true_reward", "true expected reward"), ("rare_mass", "mass on rare arm"))):
        for k, (kind, coverage) in enumerate(DATASETS):
            v = [
                np.mean(values(rows, part="bandit", method=m, metric=metric, kind=kind, coverage=coverage))
                for m in METHODS
            ]
            ax[0, j].bar(x + 0.2 * (k - 1.5), v, 0.2, label=f"{kind} / {coverage}")
        ax[0, j].set_xticks(x, [LABELS[m] for m in METHODS], rotation=30)
        ax[0, j].set(title=f"bandit: {title} (mean over {cfg.seeds} × {cfg.bandit_draws} datasets)")
        ax[0, j].legend(fontsize=7)
        ax[0, j].grid(alpha=0.3, axis="y")
    for j, noise in enumerate(cfg.label_noises):
        for i, m in enumerate(cfg.methods):
            _, kl = _world_curve(rows, m, noise, "kl")
            _, win = _world_curve(rows, m, noise, "win_rate")
            style = "-o" if m.startswith("power") else "--."
            ax[1, j].plot(kl, win, style, color=f"C{i}", ms=4, label=LABELS[m])
        ax[1, j].axhline(0.5, color="k", lw=0.5)
        ax[1, j].set(
            title=f"preference world, {noise:.0%} label flips: gold win-rate vs SFT through training",
            xlabel="KL(π ‖ π_SFT) estimate (nats)",
            ylabel="gold win-rate over SFT",
        )
        ax[1, j].legend(fontsize=7)
        ax[1, j].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def table(rows: list[dict], cfg: Config) -> str:
    """Bandit: per method and dataset type; world: per method and flip rate, start / peak / final."""
    lines = [
        f"Bandit (mean over {cfg.seeds} seeds × {cfg.bandit_draws} datasets): true expected reward / mass on the "
        "rare arm (Type I: lucky bad arm; Type II: unlucky good arm).",
        "",
        "| method | " + " | ".join(f"{k} {c}" for k, c in DATASETS) + " |",
        "|---|" + "---|" * len(DATASETS),
    ]
    for m in ("initial", *METHODS):
        cells = []
        for kind, coverage in DATASETS:
            s = dict(part="bandit", method=m, kind=kind, coverage=coverage)
            r, p = np.mean(values(rows, metric="true_reward", **s)), np.mean(values(rows, metric="rare_mass", **s))
            cells.append(f"{r:.3f} / {p:.3f}")
        lines.append(f"| {LABELS.get(m, 'initial π_0')} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Preference world (mean over {cfg.seeds} seeds): gold win-rate over SFT at the start, at its peak (step) "
        "and at the end of training; gold reward peak → final; KL at the end.",
        "",
        "| flips | method | win start | win peak (step) | win final | gold peak → final | KL final |",
        "|---|---|---|---|---|---|---|",
    ]
    for noise in cfg.label_noises:
        for m in cfg.methods:
            s = dict(part="world_summary", method=m, noise=noise)

            def v(metric: str, s=s) -> float:
                return float(np.mean(values(rows, metric=metric, **s)))

            lines.append(
                f"| {noise:g} | {LABELS[m]} | {v('win_rate_start'):.3f} | {v('win_rate_peak'):.3f} "
                f"({v('win_rate_peak_step'):.0f}) | {v('win_rate_final'):.3f} | {v('gold_peak'):.3f} → "
                f"{v('gold_final'):.3f} | {v('kl_final'):.2f} |"
            )
    return "\n".join(lines)
