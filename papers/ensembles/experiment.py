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
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.cache import save_atomic
from reprozoo.common.config import check_fraction, check_positive, ensure
from reprozoo.common.hf import HubConfig
from reprozoo.common.ppo import PPOConfig, PPOTrainer
from reprozoo.common.progress import track
from reprozoo.common.results import record, select
from reprozoo.common.reward import best_of_n, kl_bon
from reprozoo.common.worlds.gao import fit_gao
from reprozoo.common.worlds.preference import (
    SMOKE_WORLD_V2,
    WORLD_V2,
    PreferenceWorld,
    ProxyConfig,
    WorldConfig,
    build_world,
    copy_policy,
    ensemble_disagreement,
    member_quirks,
    self_minus_others,
)
from reprozoo.papers.ensembles.baselines import single_member
from reprozoo.papers.ensembles.method import AGGREGATIONS, Ensemble, aggregate

SETTINGS = ("premise", "control")
# World v2 with channel (iii) (the proxy bias, PAR's premise) off: this paper's shared error is channel (i).
ENSEMBLES_WORLD = dataclasses.replace(WORLD_V2, proxy_bias_token=None, proxy_bias_gain=0.0)
PPO_METHODS = ("single", "mean", "wco", "uwo")
Kind = Literal["random", "pretrain", "finetune"]


@dataclass
class Config(HubConfig):
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
    quirk_gain: float = 1.5
    """Premise setting: γ of the labeller quirk u = R* + γ · n_quirk(y)."""
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
    ppo_batch: int = 128
    """Prompts (= rollouts) per PPO iteration."""
    ppo_lr: float = 2e-4
    """PPO learning rate."""
    ppo_epochs: int = 2
    """PPO epochs per batch."""
    ppo_minibatch: int = 64
    """PPO minibatch size."""
    log_every: int = 5
    """PPO curve resolution: statistics are averaged over windows of this many iterations."""
    threads: int = 1
    """torch CPU threads per process."""
    workers: int = 2
    """Processes for proxy training and PPO runs (1 = all in this process)."""

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
            "ppo_steps",
            "ppo_batch",
            "ppo_lr",
            "ppo_epochs",
            "ppo_minibatch",
            "log_every",
            "threads",
            "workers",
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
        ensure(self.ppo_steps % self.log_every == 0, "log_every", "must divide ppo_steps")


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        workers=1,
        world=dataclasses.replace(SMOKE_WORLD_V2, proxy_bias_token=None, proxy_bias_gain=0.0),
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


# --- members ---


def member_config(cfg: Config, setting: str, d: int, noise: float, m: int, kind: Kind = "random") -> ProxyConfig:
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


def grid(cfg: Config) -> list[tuple[int, float]]:
    """(size, label noise) of every member pool: 25% noise at every size, other levels at `clean_sizes`."""
    return [(d, noise) for d in cfg.sizes for noise in cfg.label_noises if noise == 0.25 or d in cfg.clean_sizes]


def window(cfg: Config, seed: int) -> list[int]:
    """Members of seed `seed`'s ensemble: its own k (independent ensembles)."""
    return list(range(seed * cfg.members, (seed + 1) * cfg.members))


def all_member_configs(cfg: Config) -> list[ProxyConfig]:
    pool = [m for seed in cfg.seed_list() for m in window(cfg, seed)]
    out = [member_config(cfg, s, d, noise, m) for s in SETTINGS for d, noise in grid(cfg) for m in pool]
    if cfg.eisenstein:
        out += [member_config(cfg, "control", cfg.sizes[0], 0.25, m, k) for k in ("pretrain", "finetune") for m in pool]
    return list(dict.fromkeys(out))


_STD_CACHE: dict[int, tuple] = {}


def standardiser(world: PreferenceWorld, rms: list, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ_i, σ_i) of each member's reward under the base policy (`std_samples` fresh samples, fixed seed)."""
    if cfg.std_samples not in _STD_CACHE:
        _STD_CACHE[cfg.std_samples] = world.bon_samples(cfg.std_samples, 1, seed=1)
    prompts, g = _STD_CACHE[cfg.std_samples]
    r = torch.stack([world.proxy_reward(rm, prompts, g.tokens, g.mask) for rm in rms])
    return r.mean(1), r.std(1)


def _log(msg: str) -> None:
    print(f"[ensembles] {msg}", flush=True)


# --- best-of-n ---


def bon_pool(world: PreferenceWorld, cfg: Config) -> dict[str, torch.Tensor]:
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


def bon_rows(world: PreferenceWorld, cfg: Config, members: dict) -> list[dict]:
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
            _log(f"best-of-n {tag}: premise {prem}, accuracy {acc:.3f}")
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


# --- PPO ---


def ppo_rows(
    world: PreferenceWorld,
    ens: Ensemble,
    cfg: Config,
    method: str,
    beta: float,
    seed: int,
    setting: str,
    winrate: Callable[[torch.nn.Module], float] | None = None,
):
    """PPO from π_SFT against `method` (single member 0 of `ens`, or an aggregation with the PPO settings);
    per-window means of the optimised reward, gold, KL, length, feature count, the members' spread, member 0's own
    reward (`member0_z`, z units: the single proxy's view of an ensemble run), and the quirk tokens: `quirk_single`
    = count of member 0's quirk token, `quirk_members` = count of any member's quirk token. `winrate` (optional, the
    leaderboard's): an evaluator of the policy, recorded as `winrate` at iteration 0 and at each window's end."""
    torch.manual_seed(seed)
    pcfg = PPOConfig(
        lr=cfg.ppo_lr,
        epochs=cfg.ppo_epochs,
        minibatch_size=cfg.ppo_minibatch,
        kl_coef=beta,
        max_new_tokens=world.cfg.max_response_len,
    )
    trainer = PPOTrainer(copy_policy(world), world.policy, pcfg, eos_id=world.eos_id)
    gen = torch.Generator().manual_seed(30_000 + seed)
    logged: dict[str, list[float]] = {}
    tokens = [member_config(cfg, setting, cfg.ppo_size, cfg.ppo_label_noise, m).quirk_token for m in window(cfg, seed)]

    @torch.no_grad()
    def reward_fn(x, y, mask):
        ids, am = world.sequences(x, y, mask)
        z = ens.member_rewards(ids, am)
        r = single_member(z, 0) if method == "single" else aggregate(z, method, stage="ppo")
        counts = {t: world.token_count(y, mask, t).float() for t in dict.fromkeys(tokens)}
        logged.setdefault("gold", []).append(float(world.gold_reward(x, y, mask).mean()))
        logged.setdefault("features", []).append(float(world.feature_count(y, mask).float().mean()))
        logged.setdefault("member_std", []).append(float(z.std(0).mean()))
        logged.setdefault("member0_z", []).append(float(z[0].mean()))
        logged.setdefault("quirk_single", []).append(float(counts[tokens[0]].mean()))
        logged.setdefault("quirk_members", []).append(float(sum(counts.values()).mean()))
        return r

    name = f"ppo_{method}"
    rows = [] if winrate is None else [record(name, seed, "winrate", winrate(trainer.policy), setting=setting, step=0)]
    for step in track(range(cfg.ppo_steps), f"PPO {setting} {method} β={beta} seed {seed}"):
        stats = trainer.step(world.sample_prompts(cfg.ppo_batch, gen), reward_fn, generator=gen)
        for k in ("score", "kl", "length"):
            logged.setdefault(k, []).append(stats[k])
        if (step + 1) % cfg.log_every == 0:
            mid = step + 1 - cfg.log_every // 2
            for metric, key in (
                ("proxy", "score"),
                ("gold", "gold"),
                ("kl", "kl"),
                ("length", "length"),
                ("features", "features"),
                ("member_std", "member_std"),
                ("member0_z", "member0_z"),
                ("quirk_single", "quirk_single"),
                ("quirk_members", "quirk_members"),
            ):
                value = float(np.mean(logged[key][-cfg.log_every :]))
                rows.append(record(name, seed, metric, value, setting=setting, beta=beta, step=mid))
            if winrate is not None:
                rows.append(record(name, seed, "winrate", winrate(trainer.policy), setting=setting, step=step + 1))
    _log(
        f"PPO {setting} {method} β={beta} seed {seed}: "
        + ", ".join(f"{r['metric']}={r['value']:.2f}" for r in rows[-9:])
    )
    return rows


def _bon_job(cfg: Config) -> list[dict]:
    """Worker: every best-of-n curve (world and members come from the cache; members train here without workers)."""
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world)
    members = {pc: world.train_proxy(pc) for pc in track(all_member_configs(cfg), "members")}
    rows = bon_rows(world, cfg, members)
    _log(f"best-of-n unit: {time.perf_counter() - t0:.0f} s wall ({len(members)} members scored)")
    return rows


def _unit_job(cfg: Config, key: tuple) -> list[dict]:
    """Worker: checkpoint unit `key`, ("bon",) or ("ppo", setting, method, β, seed)."""
    return _bon_job(cfg) if key == ("bon",) else _ppo_job(cfg, *key[1:])


def _ppo_job(cfg: Config, setting: str, method: str, beta: float, seed: int) -> list[dict]:
    """Worker: one PPO run (world and members come from the cache)."""
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world)
    pcs = [member_config(cfg, setting, cfg.ppo_size, cfg.ppo_label_noise, m) for m in window(cfg, seed)]
    rms = [world.train_proxy(pc) for pc in pcs]
    mu, sd = standardiser(world, rms, cfg)
    rows = ppo_rows(world, Ensemble(rms, mu, sd).eval(), cfg, method, beta, seed, setting)
    _log(f"PPO unit {setting} {method} β={beta} seed {seed}: {time.perf_counter() - t0:.0f} s wall")
    return rows


def _train_job(cfg: Config, pc: ProxyConfig) -> None:
    """Worker: train one proxy (or its pre-trained backbone) into the cache."""
    torch.set_num_threads(cfg.threads)
    build_world(cfg.world).train_proxy(pc)


def ppo_runs(cfg: Config) -> dict[tuple[str, float], list[str]]:
    """(setting, β) → the rewards PPO optimises there: every method at the small β, `ppo_large_kl_methods` at the
    larger one."""
    runs = {}
    for setting in cfg.ppo_settings:
        runs[(setting, cfg.ppo_kl_small)] = list(cfg.ppo_methods)
        if setting in cfg.ppo_large_kl_settings:
            runs[(setting, cfg.ppo_kl_large)] = list(cfg.ppo_large_kl_methods)
    return runs


def reuses_premise_single(cfg: Config, setting: str, method: str, beta: float) -> bool:
    """PPO against the single member in the control setting is the premise setting's run at the same β: the single
    member of seed s is member s·k, whose quirk is its own in both settings (the control shares the seed's first
    member's quirk), so the proxy, prompts and seeds are identical."""
    return setting != "premise" and method == "single" and "single" in ppo_runs(cfg).get(("premise", beta), [])


def ppo_jobs(cfg: Config) -> list[tuple[str, str, float, int]]:
    """(setting, method, β, seed) of every PPO run, without the runs `reuses_premise_single` copies."""
    return [
        (setting, m, b, s)
        for (setting, b), ms in ppo_runs(cfg).items()
        for m in ms
        for s in cfg.seed_list()
        if not reuses_premise_single(cfg, setting, m, b)
    ]


ENSEMBLE_DIAGNOSTICS = ("member_std", "quirk_members")
"""PPO records that depend on the other members of the ensemble, not on the optimised reward: not copied."""


def copied_single_rows(rows: list[dict], cfg: Config) -> list[dict]:
    """The premise setting's single-member PPO records, relabelled for each setting that reuses them, except the
    `ENSEMBLE_DIAGNOSTICS` (the control's other members differ; the v2 run logged them, every other record of the
    two runs was identical)."""
    return [
        dict(r, setting=setting)
        for (setting, b), ms in ppo_runs(cfg).items()
        if "single" in ms and reuses_premise_single(cfg, setting, "single", b)
        for r in rows
        if r["method"] == "ppo_single"
        and r.get("setting") == "premise"
        and r.get("beta") == b
        and r["metric"] not in ENSEMBLE_DIAGNOSTICS
    ]


def run(cfg: Config) -> list[dict]:
    """Members train in `workers` spawned processes (artefacts shared through the cache); then the best-of-n
    curves (the longest unit, first) and the PPO runs go to the same workers."""
    import concurrent.futures as cf
    import multiprocessing as mp

    clock = [time.perf_counter()]

    def stage(name: str) -> None:  # wall time per stage (README, deviation 6)
        clock.append(time.perf_counter())
        _log(f"stage {name}: {clock[-1] - clock[-2]:.0f} s wall")

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


# --- summaries ---


def mean_curve(rows: list[dict], method: str, metric: str, **match) -> tuple[np.ndarray, np.ndarray]:
    """(step, mean over seeds of `metric`) of a curve."""
    sel = [r for r in select(rows, method=method, metric=metric, **match) if "step" in r]
    xs = sorted({r["step"] for r in sel})
    return np.array(xs, float), np.array([np.mean([r["value"] for r in sel if r["step"] == x]) for x in xs])


def peak_final(x: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Start, peak (and where) and final of a gold curve."""
    i = int(np.argmax(gold))
    return {
        "gold_start": float(gold[0]),
        "gold_peak": float(gold[i]),
        "peak_at": float(x[i]),
        "gold_final": float(gold[-1]),
    }


def summary_rows(rows: list[dict], cfg: Config) -> list[dict]:
    """Per-seed scalars (rows without `step`, which summary.json aggregates with 95% CIs) at the points the claims
    read: peak and final gold of every 25%-noise best-of-n curve and every PPO curve, and gold at n = eisenstein_n
    of the Eisenstein contrast. Whole curves stay in records.jsonl, the figure and `table`."""
    out = []
    curves = {
        (r["method"], r["seed"], r.get("setting"), r.get("d"), r.get("noise"), r.get("beta"))
        for r in rows
        if "step" in r and r["metric"] == "gold" and r.get("noise", 0.25) == 0.25
    }
    for method, seed, setting, d, noise, beta in sorted(curves, key=str):
        match = {k: v for k, v in (("setting", setting), ("d", d), ("noise", noise), ("beta", beta)) if v is not None}
        x, gold = mean_curve([r for r in rows if r["seed"] == seed], method, "gold", **match)
        if method.startswith("eis_"):
            stats = {"gold_at_eis_n": gold[list(x).index(cfg.eisenstein_n)]}
        else:
            stats = {k: v for k, v in peak_final(x, gold).items() if k in ("gold_peak", "gold_final")}
        out += [record(method, seed, k, float(v), **match) for k, v in stats.items()]
    return out


# --- table, figure ---


def _fit(fit: dict[str, float]) -> str:
    return f"{fit['alpha']:.2f}, {fit['beta']:.2f} ({fit['r2']:.2f})"


def table(rows: list[dict], cfg: Config) -> str:
    """Compact tables of the seed-mean curves: one row per (setting, size, noise) or (setting, β) and quantity,
    one column per reward. Gao et al.'s forms are fitted to the seed-mean curves (gold centred at π_SFT)."""
    d0 = cfg.sizes[0]
    gold_sft = mean_curve(rows, "bon_single", "gold", setting=SETTINGS[0], d=d0, noise=0.25)[1][0]
    bon = ["single", *AGGREGATIONS]
    lines = [
        f"Means over seeds of the curves; gold of π_SFT (best-of-n, n = 1) = {gold_sft:.3f}. Best-of-n, n = 1 … "
        f"{cfg.bon_samples}: gold at n = N (peak @ n), feature-count rise n = 1 → N, Gao d(α − βd) fit α, β (R²).",
        "",
        "| setting | d | noise | quantity | " + " | ".join(bon) + " |",
        "|---|---|---|---|" + "---|" * len(bon),
    ]
    for setting in SETTINGS:
        for d, noise in grid(cfg):
            cells: dict[str, list[str]] = {"gold n=N (peak @ n)": [], "features +Δ": [], "Gao α, β (R²)": []}
            for a in bon:
                m = {"setting": setting, "d": d, "noise": noise}
                x, gold = mean_curve(rows, f"bon_{a}", "gold", **m)
                feats = mean_curve(rows, f"bon_{a}", "features", **m)[1]
                i = int(np.argmax(gold))
                cells["gold n=N (peak @ n)"].append(f"{gold[-1]:.2f} ({gold[i]:.2f} @ {x[i]:.0f})")
                cells["features +Δ"].append(f"{feats[-1] - feats[0]:+.2f}")
                cells["Gao α, β (R²)"].append(
                    _fit(fit_gao(np.array([kl_bon(int(n)) for n in x]), gold - gold[0], "bon"))
                )
            lines += [f"| {setting} | {d} | {noise} | {q} | " + " | ".join(c) + " |" for q, c in cells.items()]
    lines += [
        "",
        f"PPO, {cfg.ppo_steps} iterations, windows of {cfg.log_every}: gold at the last window (peak @ iteration), "
        "KL and feature-count rise (first → last window), Gao d(α − β log d) fit α, β (R²); — = not run.",
        "",
        "| setting | β | quantity | " + " | ".join(PPO_METHODS) + " |",
        "|---|---|---|" + "---|" * len(PPO_METHODS),
    ]
    for (setting, beta), methods in ppo_runs(cfg).items():
        cells = {"gold final (peak @ it.)": [], "KL final": [], "features +Δ": [], "Gao α, β (R²)": []}
        for a in PPO_METHODS:
            if a not in methods:
                for c in cells.values():
                    c.append("—")
                continue
            x, gold = mean_curve(rows, f"ppo_{a}", "gold", setting=setting, beta=beta)
            kl = mean_curve(rows, f"ppo_{a}", "kl", setting=setting, beta=beta)[1]
            feats = mean_curve(rows, f"ppo_{a}", "features", setting=setting, beta=beta)[1]
            i = int(np.argmax(gold))
            fit = fit_gao(np.concatenate([[0.0], kl]), np.concatenate([[0.0], gold - gold_sft]), "rl")
            cells["gold final (peak @ it.)"].append(f"{gold[-1]:.2f} ({gold[i]:.2f} @ {x[i]:.0f})")
            cells["KL final"].append(f"{kl[-1]:.1f}")
            cells["features +Δ"].append(f"{feats[-1] - feats[0]:+.2f}")
            cells["Gao α, β (R²)"].append(_fit(fit))
        lines += [f"| {setting} | {beta} | {q} | " + " | ".join(c) + " |" for q, c in cells.items()]
    if cfg.eisenstein:
        names = ("eis_pretrain_mean", "eis_finetune_mean", "eis_single")
        v = [np.mean([r["value"] for r in select(rows, method=m, metric="gold_at_eis_n")]) for m in names]
        lines += [
            "",
            f"Eisenstein contrast (control, d = {d0}, 25% noise, mean aggregation): gold at n = {cfg.eisenstein_n}.",
            "",
            "| pretrain-seed ensemble | finetune-seed ensemble | single RM |",
            "|---|---|---|",
            "| " + " | ".join(f"{x:.3f}" for x in v) + " |",
        ]
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(16, 8.5))
    noise = 0.25
    d = cfg.sizes[0]
    colors = {"single": "C3", "mean": "C0", "wco": "C2", "uwo": "C1", "median": "C4", "mean_minus_std": "C5"}
    for j, setting in enumerate(SETTINGS):
        a = ax[0, j]
        for name, c in colors.items():
            n, gold = mean_curve(rows, f"bon_{name}", "gold", setting=setting, d=d, noise=noise)
            if not len(n):
                continue
            kl = [kl_bon(int(v)) for v in n]
            a.plot(kl, gold, "o-", color=c, label=f"{name} gold", ms=3)
            a.plot(
                kl,
                mean_curve(rows, f"bon_{name}", "proxy", setting=setting, d=d, noise=noise)[1],
                "--",
                color=c,
                alpha=0.4,
            )
        a.set(
            xlabel="KL_BoN",
            ylabel="gold (solid) / proxy z (dashed)",
            title=f"best-of-n, {setting} (d={d}, {noise:.0%} noise)",
        )
    a = ax[0, 2]
    if cfg.eisenstein:
        names = ("eis_pretrain_mean", "eis_finetune_mean", "eis_single")
        vals = [[r["value"] for r in select(rows, method=m, metric="gold_at_eis_n")] for m in names]
        a.bar(
            ["pretrain-seed\nensemble", "finetune-seed\nensemble", "single RM"],
            [np.mean(v) for v in vals],
            color=["C0", "C9", "C3"],
        )
        for i, v in enumerate(vals):
            a.plot([i] * len(v), v, "k.", alpha=0.6)
        a.set(ylabel=f"gold at n = {cfg.eisenstein_n}", title="Eisenstein contrast (control, mean aggregation)")
    for j, ((setting, beta), methods) in enumerate(list(ppo_runs(cfg).items())[:3]):
        a = ax[1, j]
        for m in methods:
            _, gold = mean_curve(rows, f"ppo_{m}", "gold", setting=setting, beta=beta)
            _, kl = mean_curve(rows, f"ppo_{m}", "kl", setting=setting, beta=beta)
            _, proxy = mean_curve(rows, f"ppo_{m}", "proxy", setting=setting, beta=beta)
            a.plot(kl, gold, "o-", color=colors[m], label=f"{m} gold", ms=3)
            a.plot(kl, proxy, "--", color=colors[m], alpha=0.4)
        a.set(
            xlabel="KL(π ‖ π_SFT) (nats)",
            ylabel="gold (solid) / optimised reward z (dashed)",
            title=f"PPO, {setting}, β = {beta}",
        )
    for a in ax.flat:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
