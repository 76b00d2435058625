"""Demo of the preference world: `python -m reprozoo.common.worlds.preference --preset smoke|quick`.

Measures the properties the papers rely on and writes runs/preference_world/<preset>/ (`--publish`: the committed
results/preference_world/<preset>/):
  1. proxy RM held-out accuracy against gold labels (clean and with label flips);
  2. best-of-n (unbiased estimator, n up to N) of gold and proxy reward against KL_BoN for single proxies;
  3. PPO against a single proxy (clean by default) with a tiny KL penalty: proxy, gold, KL, length, feature count.
The claims are the world's properties: proxies are realistic (accuracy 65–80%), and optimising one proxy
over-optimises (proxy keeps rising while gold peaks and falls) under both best-of-n and PPO.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.ppo import PPOConfig, PPOTrainer
from reprozoo.common.progress import track
from reprozoo.common.results import Claim, record, select
from reprozoo.common.worlds.preference import (
    SMOKE_WORLD,
    PreferenceWorld,
    ProxyConfig,
    WorldConfig,
    bon_curve,
    build_world,
    copy_policy,
)

PAPER = "preference_world"


@dataclass
class Config(RunConfig):
    """Preference-world demo: proxy accuracy, best-of-n and PPO over-optimisation against a single proxy."""

    world: WorldConfig = field(default_factory=WorldConfig)
    """The world (cached under .cache/preference_world/ by its hash)."""
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    """Proxy RM template (seed, data seed and label noise are set per run)."""
    label_noise: float = 0.25
    """Label-flip rate of the noisy proxies (Coste et al.: 25%)."""
    test_pairs: int = 1000
    """Held-out gold-labelled pairs for proxy accuracy."""
    bon_prompts: int = 64
    """Prompts of the best-of-n evaluation."""
    bon_samples: int = 512
    """Base-policy samples per prompt (N); n runs over powers of two up to N."""
    ppo_proxy: Literal["clean", "noisy"] = "clean"
    """Which proxy of each seed PPO optimises (clean: trained without label flips, as in Gao et al. / PAR)."""
    ppo_steps: int = 100
    """PPO iterations."""
    ppo_batch: int = 128
    """Prompts (= rollouts) per PPO iteration."""
    ppo_lr: float = 2e-4
    """PPO learning rate."""
    ppo_kl: float = 0.01
    """Fixed KL coefficient β of the PPO run (tiny: the run is meant to over-optimise)."""
    ppo_epochs: int = 2
    """PPO epochs per batch."""
    ppo_minibatch: int = 64
    """PPO minibatch size."""
    log_every: int = 5
    """PPO curve resolution: statistics are averaged over windows of this many iterations."""
    threads: int = 1
    """torch CPU threads per process (≤ 2 on the 2-core CI machine)."""
    workers: int = 3
    """Processes for proxy training and PPO seeds (1 = all in this process)."""

    def validate(self) -> None:
        super().validate()
        check_positive(
            self,
            "test_pairs",
            "bon_prompts",
            "bon_samples",
            "ppo_steps",
            "ppo_batch",
            "ppo_lr",
            "ppo_epochs",
            "ppo_minibatch",
            "log_every",
            "threads",
            "workers",
        )
        check_fraction(self, "label_noise")
        ensure(self.ppo_kl >= 0, "ppo_kl", f"must be >= 0, got {self.ppo_kl}")
        ensure(self.bon_samples >= 2, "bon_samples", f"must be >= 2, got {self.bon_samples}")
        ensure(self.ppo_steps % self.log_every == 0, "log_every", "must divide ppo_steps")


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        workers=1,
        world=SMOKE_WORLD,
        proxy=ProxyConfig(n_pairs=128, steps=10),
        test_pairs=64,
        bon_prompts=4,
        bon_samples=16,
        ppo_steps=4,
        ppo_batch=16,
        ppo_minibatch=8,
        log_every=2,
    ),
    "quick": Config(preset="quick", seeds=3),
    "full": Config(preset="full", seeds=5, bon_prompts=256, bon_samples=1024, ppo_steps=300, ppo_batch=256),
}


# --- measurements ---


def bon_rows(world: PreferenceWorld, proxies: dict[str, list], cfg: Config) -> list[dict]:
    """Best-of-n curves of every proxy (shared base-policy samples), plus the gold-optimal curve."""
    P, N = cfg.bon_prompts, cfg.bon_samples
    prompts, g = world.bon_samples(P, N, seed=0)
    gold = world.gold_reward(prompts, g.tokens, g.mask).view(P, N)
    feats = world.feature_count(g.tokens, g.mask).float().view(P, N)
    ns = [2**k for k in range(int(np.log2(N)) + 1)]
    rows = []
    for c in bon_curve(gold, gold, ns):
        rows.append(record("bon_gold_optimal", 0, "gold", c["gold"], n=c["n"], kl=c["kl_bon"], step=c["n"]))
    for name, rms in proxies.items():
        for seed, rm in enumerate(rms):
            proxy = world.proxy_reward(rm, prompts, g.tokens, g.mask).view(P, N)
            for c, f in zip(bon_curve(proxy, gold, ns), bon_curve(proxy, feats, ns), strict=True):
                kw = {"n": c["n"], "kl": c["kl_bon"], "step": c["n"]}
                rows += [
                    record(f"bon_{name}", seed, "gold", c["gold"], **kw),
                    record(f"bon_{name}", seed, "proxy", c["proxy"], **kw),
                    record(f"bon_{name}", seed, "features", f["gold"], **kw),
                ]
    return rows


def ppo_rows(world: PreferenceWorld, rm, cfg: Config, seed: int) -> list[dict]:
    """PPO from π_SFT against one proxy; per-window means of proxy, gold, KL, length and feature count."""
    torch.manual_seed(seed)
    pcfg = PPOConfig(
        lr=cfg.ppo_lr,
        epochs=cfg.ppo_epochs,
        minibatch_size=cfg.ppo_minibatch,
        kl_coef=cfg.ppo_kl,
        max_new_tokens=world.cfg.max_response_len,
    )
    trainer = PPOTrainer(copy_policy(world), world.policy, pcfg, eos_id=world.eos_id)
    gen = torch.Generator().manual_seed(30_000 + seed)
    logged: dict[str, list[float]] = {}

    def reward_fn(x, y, mask):
        r = world.proxy_reward(rm, x, y, mask)
        logged.setdefault("gold", []).append(float(world.gold_reward(x, y, mask).mean()))
        logged.setdefault("features", []).append(float(world.feature_count(y, mask).float().mean()))
        return r

    rows = []
    for step in track(range(cfg.ppo_steps), f"PPO seed {seed}"):
        stats = trainer.step(world.sample_prompts(cfg.ppo_batch, gen), reward_fn, generator=gen)
        for k in ("score", "kl", "length"):
            logged.setdefault(k, []).append(stats[k])
        if (step + 1) % cfg.log_every == 0:
            for metric, key in (
                ("proxy", "score"),
                ("gold", "gold"),
                ("kl", "kl"),
                ("length", "length"),
                ("features", "features"),
            ):
                rows.append(
                    record(
                        "ppo_single",
                        seed,
                        metric,
                        float(np.mean(logged[key][-cfg.log_every :])),
                        step=step + 1 - cfg.log_every // 2,
                    )
                )
            _log(f"PPO seed {seed} step {step + 1}: " + ", ".join(f"{r['metric']}={r['value']:.3f}" for r in rows[-5:]))
    return rows


def _log(msg: str) -> None:
    print(f"[preference world] {msg}", flush=True)


def _proxy_config(cfg: Config, name: str, seed: int) -> ProxyConfig:
    noise = 0.0 if name == "clean" else cfg.label_noise
    return dataclasses.replace(cfg.proxy, label_noise=noise, seed=seed, data_seed=seed)


def _train_proxy_job(cfg: Config, name: str, seed: int) -> None:
    """Worker: train one proxy into the cache."""
    torch.set_num_threads(cfg.threads)
    build_world(cfg.world).train_proxy(_proxy_config(cfg, name, seed))


def _ppo_job(cfg: Config, seed: int) -> list[dict]:
    """Worker: one PPO run (world and proxy come from the cache)."""
    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world)
    return ppo_rows(world, world.train_proxy(_proxy_config(cfg, cfg.ppo_proxy, seed)), cfg, seed)


def run(cfg: Config) -> list[dict]:
    """Proxies and PPO seeds run in `workers` processes (spawned; artefacts shared through the cache)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world, verbose=True)
    pool = cf.ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) if cfg.workers > 1 else None
    jobs = [(name, seed) for seed in cfg.seed_list() for name in ("clean", "noisy")]
    if pool is not None:
        list(pool.map(_train_proxy_job, [cfg] * len(jobs), *zip(*jobs, strict=True)))
    test = world.comparisons(cfg.test_pairs, seed=10**6)
    rows: list[dict] = []
    proxies: dict[str, list] = {"clean": [], "noisy": []}
    for name, seed in jobs:
        rm = world.train_proxy(_proxy_config(cfg, name, seed))
        proxies[name].append(rm)
        rows.append(record(f"proxy_{name}", seed, "accuracy", world.accuracy(rm, test)))
        _log(f"proxy {name} seed {seed}: accuracy {rows[-1]['value']:.3f}")
    # checkpointed units (--resume): best-of-n, each PPO seed (a fresh world per PPO run, in the workers or here, so
    # that the records do not depend on --workers)
    seeds = cfg.seed_list()
    ppo = checkpoint.map_units(_ppo_job, [(cfg, s) for s in seeds], [("ppo", s) for s in seeds], pool)
    rows += checkpoint.unit(("bon",), partial(bon_rows, world, proxies, cfg))
    _log("best-of-n: " + str(overoptimisation(rows, "bon_noisy")))
    for res in ppo:
        rows += res
    if pool is not None:
        pool.shutdown()
    rows += summary_rows(rows)
    return rows


# --- over-optimisation summaries ---


def mean_curve(rows: list[dict], method: str, metric: str, key: str = "step") -> tuple[np.ndarray, np.ndarray]:
    """(x, mean over seeds of the metric) for a curve."""
    sel = select(rows, method=method, metric=metric)
    xs = sorted({r[key] for r in sel})
    return np.array(xs, float), np.array([np.mean([r["value"] for r in sel if r[key] == x]) for x in xs])


def overoptimisation(rows: list[dict], method: str, x_metric: str | None = None) -> dict[str, float]:
    """Peak and final gold, proxy gain, and the KL at the gold peak of a mean-over-seeds curve."""
    x, gold = mean_curve(rows, method, "gold")
    _, proxy = mean_curve(rows, method, "proxy")
    kl = (
        mean_curve(rows, method, x_metric)[1]
        if x_metric
        else np.array([select(rows, method=method, metric="gold", step=int(s))[0]["kl"] for s in x])
    )
    i = int(np.argmax(gold))
    return {
        "gold_start": float(gold[0]),
        "gold_peak": float(gold[i]),
        "gold_final": float(gold[-1]),
        "peak_at": float(x[i]),
        "kl_at_peak": float(kl[i]),
        "kl_final": float(kl[-1]),
        "proxy_start": float(proxy[0]),
        "proxy_at_peak": float(proxy[i]),
        "proxy_final": float(proxy[-1]),
        "proxy_gain": float(proxy[-1] - proxy[0]),
    }


def summary_rows(rows: list[dict]) -> list[dict]:
    """Per-seed final values (rows without `step`) so that summary.json aggregates them."""
    out = []
    seeds = sorted({r["seed"] for r in select(rows, method="ppo_single")})
    for seed in seeds:
        one = [r for r in rows if r["seed"] == seed]
        ppo = overoptimisation(one, "ppo_single", "kl")
        bon = overoptimisation(one, "bon_noisy")
        out += [record("ppo_single", seed, k, v) for k, v in ppo.items()]
        out += [record("bon_noisy", seed, k, v) for k, v in bon.items()]
    return out


# --- claims, table, figure ---

ACC_RANGE = (0.65, 0.80)
BON_MIN_FALL = 0.10  # gold(n_max) must lie ≥ 10% of the peak gain below the peak
PPO_MIN_FALL = 0.25  # final gold must lie ≥ 25% of the peak gain below the peak


def claims(rows: list[dict], cfg: Config) -> list[Claim]:
    acc = [r["value"] for r in select(rows, method="proxy_clean", metric="accuracy")]
    acc_noisy = [r["value"] for r in select(rows, method="proxy_noisy", metric="accuracy")]
    bon, ppo = overoptimisation(rows, "bon_noisy"), overoptimisation(rows, "ppo_single", "kl")
    out = [
        Claim(
            "rm_accuracy",
            f"clean proxy held-out accuracy vs gold lies in {list(ACC_RANGE)} (mean over seeds)",
            {"accuracy_clean": float(np.mean(acc)), "accuracy_noisy": float(np.mean(acc_noisy))},
            ACC_RANGE[0] <= float(np.mean(acc)) <= ACC_RANGE[1],
        )
    ]
    for cid, name, res, fall in (
        ("bon_overoptimisation", f"best-of-n (n ≤ {cfg.bon_samples}, noisy proxy)", bon, BON_MIN_FALL),
        ("ppo_overoptimisation", f"PPO vs a single {cfg.ppo_proxy} proxy (tiny KL)", ppo, PPO_MIN_FALL),
    ):
        gain = res["gold_peak"] - res["gold_start"]
        passed = (
            res["gold_final"] <= res["gold_peak"] - fall * max(gain, 1e-9)
            and gain > 0
            and res["proxy_final"] > res["proxy_at_peak"]
        )
        out.append(
            Claim(
                cid,
                f"{name}: mean gold peaks then falls by ≥ {fall:.0%} of its gain while proxy keeps "
                "rising (mean over seeds)",
                res,
                passed,
            )
        )
    return out


def table(rows: list[dict], cfg: Config) -> str:
    lines = [
        "| curve | gold start | gold peak | gold final | peak at | KL at peak | KL final | proxy gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, method, xm in (
        ("best-of-n, noisy proxy (x = n)", "bon_noisy", None),
        ("best-of-n, clean proxy (x = n)", "bon_clean", None),
        (f"PPO, {cfg.ppo_proxy} proxy (x = step)", "ppo_single", "kl"),
    ):
        o = overoptimisation(rows, method, xm)
        lines.append(
            f"| {name} | {o['gold_start']:.3f} | {o['gold_peak']:.3f} | {o['gold_final']:.3f} | "
            f"{o['peak_at']:.0f} | {o['kl_at_peak']:.2f} | {o['kl_final']:.2f} | {o['proxy_gain']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for method, color in (("bon_noisy", "C3"), ("bon_clean", "C0"), ("bon_gold_optimal", "k")):
        n, gold = mean_curve(rows, method, "gold")
        kl = [float(np.log(v) - (v - 1) / v) for v in n]
        ax[0].plot(kl, gold, "o-", color=color, label=f"{method} gold")
        if method != "bon_gold_optimal":
            ax[0].plot(kl, mean_curve(rows, method, "proxy")[1], "x--", color=color, alpha=0.6, label=f"{method} proxy")
    ax[0].set(xlabel="KL_BoN = log n − (n−1)/n", ylabel="reward", title="best-of-n (mean over proxy seeds)")
    for seed in sorted({r["seed"] for r in select(rows, method="ppo_single")}):
        one = [r for r in rows if r["seed"] == seed]
        x, gold = mean_curve(one, "ppo_single", "gold")
        ax[1].plot(x, gold, color="C2", alpha=0.35)
        ax[1].plot(x, mean_curve(one, "ppo_single", "proxy")[1], color="C1", alpha=0.35)
    x, gold = mean_curve(rows, "ppo_single", "gold")
    _, proxy = mean_curve(rows, "ppo_single", "proxy")
    _, kl = mean_curve(rows, "ppo_single", "kl")
    ax[1].plot(x, gold, color="C2", lw=2, label="gold")
    ax[1].plot(x, proxy, color="C1", lw=2, label="proxy")
    ax[1].set(xlabel="PPO iteration", ylabel="reward", title=f"PPO vs one {cfg.ppo_proxy} proxy (β tiny)")
    ax[2].plot(kl, gold, "o-", color="C2", label="gold")
    ax[2].plot(kl, proxy, "o-", color="C1", label="proxy")
    ax[2].set(xlabel="KL(π ‖ π_SFT) (nats)", ylabel="reward", title="PPO: reward vs KL (mean over seeds)")
    for a in ax:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    from reprozoo.common.cli import main as cli_main

    return cli_main(
        paper=PAPER, config_cls=Config, presets=PRESETS, run=run, claims=claims, figure=figure, table=table, argv=argv
    )
