"""The four families' records as leaderboard curves: one curve per (method, seed) of gold reward, KL(π ‖ π_SFT),
gold win-rate vs π_SFT, the single proxy's reward (z-scored under π_SFT), feature-token count and length, against
the paper's own x (best-of-n: n; PPO: iteration; offline: step); the best-of-n curves themselves (the ensembles'
pool and functions) and π_SFT's reference values.

`cfg` is the leaderboard's `experiment.Config`.
"""

from __future__ import annotations

import numpy as np
import torch

from reprozoo.common.progress import track
from reprozoo.common.results import record, select
from reprozoo.common.reward import best_of_n, kl_bon
from reprozoo.common.worlds.preference import PreferenceWorld
from reprozoo.papers.ensembles import best_of_n as ensembles_bon
from reprozoo.papers.ensembles import members as ensembles_members
from reprozoo.papers.ensembles.baselines import single_member
from reprozoo.papers.ensembles.method import aggregate
from reprozoo.papers.leaderboard.budget import ensembles_config, member_configs

CURVE_METRICS = ("gold", "kl", "winrate", "proxy_z", "features", "length")


# --- π_SFT reference ---


def sft_reference(pool: dict) -> dict[str, float]:
    """Gold, feature count and length of π_SFT (the best-of-n pool's mean): the origin of every drift."""
    return {
        "gold": float(pool["gold"].mean()),
        "features": float(pool["features"].mean()),
        "length": float(pool["mask"].float().sum(-1).mean()),
    }


def win_probability(gold: torch.Tensor) -> torch.Tensor:
    """w(x, y_i) = P(R*(y_i) > R*(y′)) + ½ P(R*(y_i) = R*(y′)), y′ ∼ π_SFT(·|x), estimated on the prompt's N samples
    (gold: (prompts, N)); best-of-n of w is then the unbiased win-rate of best-of-n against π_SFT."""
    g = gold.double()
    above = (g[:, :, None] > g[:, None, :]).double().mean(-1)
    tie = (g[:, :, None] == g[:, None, :]).double().mean(-1)
    return above + 0.5 * tie


# --- best-of-n, and each paper's records → curves ---


def bon_curves(world: PreferenceWorld, cfg) -> list[dict]:
    """Best-of-n curves of every ranker on the ensembles' shared pool, by the ensembles' own functions, plus the
    win-rate, length and single-proxy reward of the picks (unbiased estimator, `common.reward.best_of_n`)."""
    ecfg = ensembles_config(cfg)
    pool = ensembles_bon.bon_pool(world, ecfg)
    P, N = cfg.bon_prompts, cfg.bon_samples
    ns = [2**k for k in range(int(np.log2(N)) + 1)]
    win = win_probability(pool["gold"])
    length = pool["mask"].float().sum(-1).view(P, N)
    out = []
    for seed in track(cfg.seed_list(), "best-of-n seeds"):
        rms = [world.train_proxy(pc) for pc in member_configs(cfg, seed)]
        raw = torch.stack(
            [world.proxy_reward(rm, pool["prompts"], pool["tokens"], pool["mask"]).view(P, N) for rm in rms]
        )
        mu, sd = ensembles_members.standardiser(world, rms, ecfg)
        z = (raw - mu[:, None, None]) / sd[:, None, None]
        for name in cfg.bon:
            score = single_member(z, 0) if name == "single" else aggregate(z, name, stage="bon")
            rows = ensembles_bon.curve_rows(f"bon_{name}", seed, score, pool, ns)
            for n in ns:
                rows += [
                    record(f"bon_{name}", seed, "winrate", float(best_of_n(score, win, n).mean()), n=n, step=n),
                    record(f"bon_{name}", seed, "length", float(best_of_n(score, length, n).mean()), n=n, step=n),
                    record(f"bon_{name}", seed, "proxy_z", float(best_of_n(score, z[0], n).mean()), n=n, step=n),
                ]
            out += from_bon(rows, f"bon_{name}", seed)
    return out


def from_bon(rows: list[dict], method: str, seed: int) -> list[dict]:
    """The ensembles' best-of-n records (+ win-rate, length, proxy_z) → leaderboard curve rows, x = n."""
    out = []
    for r in rows:
        if r["metric"] in ("gold", "features", "winrate", "length", "proxy_z"):
            out.append(record(method, seed, r["metric"], r["value"], step=r["step"]))
            if r["metric"] == "gold":
                out.append(record(method, seed, "kl", kl_bon(int(r["step"])), step=r["step"]))
    return out


def from_par(rows: list[dict], run: str, seed: int, mu: float, sd: float) -> list[dict]:
    """papers.par records of one run → leaderboard curve rows, x = PPO iteration (the window's end). The vanilla
    proxy's raw reward becomes z = (r − μ)/σ; the win-rate at iteration 0 is kept (the SFT check)."""
    out = []
    for r in select(rows, method=run, seed=seed):
        if "step" not in r:
            continue
        m, v = r["metric"], r["value"]
        if m == "proxy":
            m, v = "proxy_z", (v - mu) / sd
        if m in CURVE_METRICS:
            out.append(record(f"ppo_{run}", seed, m, v, step=r["step"]))
    return out


def from_ensembles(rows: list[dict], method: str, seed: int) -> list[dict]:
    """papers.ensembles PPO records → leaderboard curve rows, x = PPO iteration (the window's middle). The single
    proxy's z (`proxy_z`) is the optimised reward when the run optimises the single member, else member 0's logged
    reward (`member0_z`: member 0 is the single proxy)."""
    name = "ppo_single_z" if method == "single" else f"ppo_ens_{method}"
    out = []
    for r in select(rows, method=f"ppo_{method}", seed=seed):
        proxy_metric = "proxy" if method == "single" else "member0_z"
        m = "proxy_z" if r["metric"] == proxy_metric else r["metric"]
        if r["metric"] == "proxy" and method != "single":
            continue
        if m in CURVE_METRICS:
            out.append(record(name, seed, m, r["value"], step=r["step"]))
    return out


def from_power_dl(rows: list[dict], method: str, seed: int) -> list[dict]:
    """papers.power_dl world records → leaderboard curve rows, x = optimisation step."""
    out = []
    for r in select(rows, part="world", method=method, seed=seed):
        m = "winrate" if r["metric"] == "win_rate" else r["metric"]
        if m in CURVE_METRICS:
            out.append(record(method, seed, m, r["value"], step=r["step"]))
    return out
