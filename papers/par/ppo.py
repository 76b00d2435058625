"""One PPO run of Fu et al.'s protocol: the seed's training prompts with their M SFT references (scored by the proxy
once, offline) and its held-out evaluation prompts; PPO from π_SFT for `prompt_epochs` passes over the training
prompts against the run's shaped RL reward, gold win-rate against SFT every `eval_every` iterations; the run's
summaries and (on the `par` run) premise 1c's measurement.

`cfg` is the paper's `experiment.Config`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from reprozoo.common.cache import config_hash, save_atomic
from reprozoo.common.ppo import PPOTrainer
from reprozoo.common.progress import track
from reprozoo.common.results import record, select
from reprozoo.common.worlds.preference import PreferenceWorld, copy_policy
from reprozoo.papers.par.baselines import RewardShaper
from reprozoo.papers.par.reward_models import cache_dir, reward_model
from reprozoo.papers.par.variants import VARIANTS


@dataclass
class Prompts:
    """Training prompts with the proxy rewards of their M SFT references; evaluation prompts with SFT gold."""

    train: torch.Tensor  # (N, P + 1)
    ref_rewards: torch.Tensor  # (N, M)
    eval: torch.Tensor  # (E, P + 1)
    eval_sft_gold: torch.Tensor  # (E,)


def prompts(world: PreferenceWorld, cfg, seed: int, proxy: torch.nn.Module) -> Prompts:
    """Sample the seed's prompts and SFT references and score the references with the proxy, once (cached)."""
    key = config_hash(dataclasses.replace(cfg.proxy, seed=seed, data_seed=seed))
    path = cache_dir(world) / f"prompts-{key}-n{cfg.train_prompts}-m{cfg.n_refs}-e{cfg.eval_prompts}-s{seed}.pt"
    if path.exists():
        return Prompts(**torch.load(path, weights_only=True))
    gen = torch.Generator().manual_seed(40_000 + seed)
    train = world.sample_prompts(cfg.train_prompts, gen)
    rep = train.repeat_interleave(cfg.n_refs, 0)
    g = world.sample(rep, gen)
    ref = world.proxy_reward(proxy, rep, g.tokens, g.mask).view(cfg.train_prompts, cfg.n_refs)
    ev = world.sample_prompts(cfg.eval_prompts, gen)
    ge = world.sample(ev, gen)
    out = Prompts(train, ref, ev, world.gold_reward(ev, ge.tokens, ge.mask))
    save_atomic(dataclasses.asdict(out), path)
    return out


@torch.no_grad()
def eval_generator(seed: int) -> torch.Generator:
    """The sampling stream of seed `seed`'s win-rate evaluations (on `prompts(...).eval`)."""
    return torch.Generator().manual_seed(50_000 + seed)


def win_rate(world: PreferenceWorld, policy: torch.nn.Module, p: Prompts, gen: torch.Generator) -> float:
    """Gold win-rate against SFT: mean over evaluation prompts of 1[R*(y) > R*(y_SFT)] + ½ 1[R*(y) = R*(y_SFT)]."""
    g = world.sample(p.eval, gen, policy=policy)
    gold = world.gold_reward(p.eval, g.tokens, g.mask)
    return float(((gold > p.eval_sft_gold).float() + 0.5 * (gold == p.eval_sft_gold).float()).mean())


def ppo_run(world: PreferenceWorld, cfg, name: str, seed: int) -> list[dict]:
    """PPO from π_SFT for `prompt_epochs` passes over the training prompts against run `name`'s RL reward."""
    v = VARIANTS[name]
    torch.manual_seed(seed)
    proxy = reward_model(world, cfg, "proxy", seed)
    rm = proxy if v.rm == "proxy" else reward_model(world, cfg, v.rm, seed)
    p = prompts(world, cfg, seed, proxy)
    p = dataclasses.replace(p, ref_rewards=p.ref_rewards + cfg.proxy_offset)  # r + c, as every score below
    m = v.n_refs or cfg.n_refs
    shaper = RewardShaper(v.shaping, k=v.k, valid_len=cfg.valid_len, len_penalty=cfg.len_penalty)
    pcfg = cfg.ppo_config(cfg.kl_coef, world.cfg.max_response_len, whiten_advantages=cfg.whiten_advantages)
    trainer = PPOTrainer(copy_policy(world), world.policy, pcfg, eos_id=world.eos_id)
    gen = torch.Generator().manual_seed(30_000 + seed)
    eval_gen = eval_generator(seed)
    order = torch.cat([torch.randperm(cfg.train_prompts, generator=gen) for _ in range(cfg.prompt_epochs)])
    logged: dict[str, list[float]] = {}
    idx = order[:0]
    ref_sd = float(p.ref_rewards.std())  # σ_ref: SD of all the seed's reference rewards (premise 1b's unit)

    def reward_fn(x, y, mask):
        length = mask.sum(-1)
        if v.rm == "gold":
            r = world.gold_reward(x, y, mask)
        else:
            r = world.proxy_reward(rm, x, y, mask) + cfg.proxy_offset
        r_proxy = r if rm is proxy else world.proxy_reward(proxy, x, y, mask) + cfg.proxy_offset
        refs = p.ref_rewards[idx]
        shaped = shaper(r, None if v.rm == "odin" else length, refs[:, :m] if v.shaping == "par" else refs)
        for key, val in (
            ("proxy", r_proxy),
            ("rl_reward", shaped),
            ("gold", world.gold_reward(x, y, mask)),
            ("features", world.feature_count(y, mask).float()),
            # PAR's regime (claims v2 premise): the rollout's proxy reward beats all M of the prompt's references
            ("beats_all_refs", (r_proxy > refs.max(-1).values).float()),
            ("beats_refs_frac", (r_proxy[:, None] > refs).float().mean(-1)),
            # premise 1b (the size of the excess, not its sign): (r − max_m r_ref,m) / σ_ref, and the share of
            # rollouts with r − max_m r_ref,m ≥ σ_ref (every σ(r − r_ref,m) then on its flat part)
            ("excess_sd", (r_proxy - refs.max(-1).values) / ref_sd),
            ("excess_1sd", (r_proxy - refs.max(-1).values >= ref_sd).float()),
        ):
            logged.setdefault(key, []).append(float(val.mean()))
        return shaped

    rows = [record(name, seed, "winrate", win_rate(world, trainer.policy, p, eval_gen), step=0)]
    for it in track(range(cfg.iterations), f"PPO {name} seed {seed}"):
        idx = order[it * cfg.ppo_batch : (it + 1) * cfg.ppo_batch]
        stats = trainer.step(p.train[idx], reward_fn, generator=gen)
        for k in ("kl", "length"):
            logged.setdefault(k, []).append(stats[k])
        if (it + 1) % cfg.eval_every == 0:
            step = it + 1
            rows.append(record(name, seed, "winrate", win_rate(world, trainer.policy, p, eval_gen), step=step))
            for key, vals in logged.items():
                rows.append(record(name, seed, key, float(np.mean(vals[-cfg.eval_every :])), step=step))
    rows += final_rows(rows, cfg, name, seed)
    if name == "par":  # claim 5's premise: the references' offset from 0, where σ(r) is centred; premise 1c
        rows += [
            record(name, seed, "ref_proxy_mean", float(p.ref_rewards.mean())),
            record(name, seed, "ref_proxy_std", float(p.ref_rewards.std())),
        ]
        rows += [record(name, seed, k, v) for k, v in gold_bon_vs_refs(world, cfg, seed, proxy, p).items()]
    return rows


@torch.no_grad()
def gold_bon_vs_refs(world: PreferenceWorld, cfg, seed: int, proxy: torch.nn.Module, p: Prompts) -> dict[str, float]:
    """Premise 1c (the references can be beaten by gold-aligned responses): on the first `beat_prompts` training
    prompts, the gold-best of `beat_n` fresh SFT samples y_g = argmax_y R*(x, y), scored by the proxy against the
    prompt's M references:

    beats_frac = mean_x (1/M) Σ_m 1[r(x, y_g) > r(x, y_ref,m)]  (PAR's reward as k → ∞),
    beats_all  = mean_x 1[r(x, y_g) > max_m r(x, y_ref,m)],

    the same two for the proxy-best of the same samples (what the exploit-free proxy could reach) and for a random
    one of them (the first: gold alignment switched off, premise 1c's control; ≈ ½ by exchangeability with the
    references), and the gold gain of y_g over the average sample."""
    n, k = cfg.beat_prompts, cfg.beat_n
    gen = torch.Generator().manual_seed(60_000 + seed)
    x = p.train[:n].repeat_interleave(k, 0)
    g = world.sample(x, gen)
    gold = world.gold_reward(x, g.tokens, g.mask).view(n, k)
    r = world.proxy_reward(proxy, x, g.tokens, g.mask).view(n, k) + cfg.proxy_offset
    refs = p.ref_rewards[:n]
    first = torch.zeros(n, dtype=torch.long)
    out = {}
    for pick, idx in (("gold_bon", gold.argmax(-1)), ("proxy_bon", r.argmax(-1)), ("random", first)):
        r_pick = r.gather(1, idx[:, None])
        out[f"{pick}_beats_frac"] = float((r_pick > refs).float().mean())
        out[f"{pick}_beats_all"] = float((r_pick[:, 0] > refs.max(-1).values).float().mean())
    out["gold_bon_gold_gain"] = float((gold.max(-1).values - gold.mean(-1)).mean())
    return out


def final_rows(rows: list[dict], cfg, name: str, seed: int) -> list[dict]:
    """Per-run summaries (no `step`, so summary.json aggregates them): peak and final of win-rate and gold, the
    proxy and KL at the end, and the proxy's gain."""
    out = []
    for metric in ("winrate", "gold", "proxy", "kl", "length", "features"):
        curve = sorted((r["step"], r["value"]) for r in select(rows, method=name, seed=seed, metric=metric))
        steps, vals = np.array([c[0] for c in curve if c[0] > 0]), np.array([c[1] for c in curve if c[0] > 0])
        out.append(record(name, seed, f"{metric}_final", float(vals[-cfg.final_evals :].mean())))
        if metric in ("winrate", "gold"):
            out.append(record(name, seed, f"{metric}_peak", float(vals.max())))
            out.append(record(name, seed, f"{metric}_peak_step", float(steps[int(vals.argmax())])))
    peak = next(r["value"] for r in out if r["metric"] == "winrate_peak_step")
    at_peak = select(rows, method=name, seed=seed, metric="proxy", step=peak)[0]["value"]
    return out + [record(name, seed, "proxy_at_winrate_peak", at_peak)]
