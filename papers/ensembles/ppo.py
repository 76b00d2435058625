"""PPO against a single member and against the ensembles (Coste et al.): which runs the experiment makes,
which it copies instead, and one run's curves.

`cfg` is the paper's `experiment.Config`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from reprozoo.common.ppo import PPOTrainer
from reprozoo.common.progress import track
from reprozoo.common.results import record
from reprozoo.common.worlds.preference import PreferenceWorld, copy_policy
from reprozoo.papers.ensembles.baselines import single_member
from reprozoo.papers.ensembles.members import log, member_config, window
from reprozoo.papers.ensembles.method import Ensemble, aggregate

PPO_METHODS = ("single", "mean", "wco", "uwo")


def ppo_runs(cfg) -> dict[tuple[str, float], list[str]]:
    """(setting, β) → the rewards PPO optimises there: every method at the small β, `ppo_large_kl_methods` at the
    larger one."""
    runs = {}
    for setting in cfg.ppo_settings:
        runs[(setting, cfg.ppo_kl_small)] = list(cfg.ppo_methods)
        if setting in cfg.ppo_large_kl_settings:
            runs[(setting, cfg.ppo_kl_large)] = list(cfg.ppo_large_kl_methods)
    return runs


def reuses_premise_single(cfg, setting: str, method: str, beta: float) -> bool:
    """PPO against the single member in the control setting is the premise setting's run at the same β: the single
    member of seed s is member s·k, whose quirk is its own in both settings (the control shares the seed's first
    member's quirk), so the proxy, prompts and seeds are identical."""
    return setting != "premise" and method == "single" and "single" in ppo_runs(cfg).get(("premise", beta), [])


def ppo_jobs(cfg) -> list[tuple[str, str, float, int]]:
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


def copied_single_rows(rows: list[dict], cfg) -> list[dict]:
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


def ppo_rows(
    world: PreferenceWorld,
    ens: Ensemble,
    cfg,
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
    trainer = PPOTrainer(
        copy_policy(world), world.policy, cfg.ppo_config(beta, world.cfg.max_response_len), eos_id=world.eos_id
    )
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
    log(
        f"PPO {setting} {method} β={beta} seed {seed}: "
        + ", ".join(f"{r['metric']}={r['value']:.2f}" for r in rows[-9:])
    )
    return rows
