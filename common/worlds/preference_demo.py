"""Demo of the preference world: `python -m reprozoo.common.worlds.preference_demo --preset smoke|quick`.

Measures the properties the papers rely on and writes runs/preference_world/<preset>/ (`--publish`: the committed
results/preference_world/<preset>/):
  1. proxy RM held-out accuracy against gold labels (clean and with label flips);
  2. best-of-n (unbiased estimator, n up to N) of gold and proxy reward against KL_BoN for single proxies;
  3. PPO against a single proxy (clean by default) with a tiny KL penalty: proxy, gold, KL, length, feature count;
and, in a world v2 (`quick`; V1_ARGS gives the v1 world of the earlier results), each error channel's premise
property with its control (see README_preference.md, "API for papers"):
  4. Gao et al.'s functional forms fitted to the mean best-of-n and PPO curves (R², peak, decline, no collapse);
  5. channel (ii): member error independence at the top picks (self − others) of k members with their own quirks,
     against k members that share one quirk (matched accuracy), and the gold cost of exploiting a member's quirk;
  6. channel (iii), PAR's regime: Vanilla PPO's final proxy beats the per-prompt max of the references, the
     references are beatable by gold-aligned responses; control: the same PPO with the proxy bias off.
The claims are the world's properties, with kinds (premise / control) as in the root README.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import check_fraction, check_positive, ensure
from reprozoo.common.ppo import PPOTrainer
from reprozoo.common.progress import track
from reprozoo.common.results import Claim, record, select
from reprozoo.common.reward import kl_bon
from reprozoo.common.stats import final_mean, smoothed_peak
from reprozoo.common.worlds.gao import fit_gao
from reprozoo.common.worlds.preference import (
    SMOKE_WORLD_V2,
    WORLD_V2,
    PreferenceWorld,
    ProxyConfig,
    WorldConfig,
    bon_curve,
    build_world,
    copy_policy,
    member_quirks,
    self_minus_others,
    standardise,
)
from reprozoo.common.worlds.preference_ppo import FreshPromptsPPO

PAPER = "preference_world"
SETTINGS = ("premise", "control")


@dataclass
class Config(FreshPromptsPPO):
    """Preference-world demo: proxy accuracy, best-of-n and PPO over-optimisation against a single proxy; in a world
    v2 also each error channel's premise property and its control."""

    world: WorldConfig = field(default_factory=WorldConfig)
    """The world (cached under .cache/preference_world/ by its key; `quick` uses WORLD_V2 (v2.2); V1_ARGS: v1,
    V2_1_ARGS: v2.1)."""
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
    ppo_kl: float = 0.01
    """Fixed KL coefficient β of the PPO run (tiny: the run is meant to over-optimise)."""
    members: int = 0
    """v2, channel (ii): ensemble size k of the member-quirk premise and its shared-quirk control (0: not measured;
    needs a world with quirk_cost > 0 and members + seeds − 1 quirk tokens besides the proxy-bias token)."""
    member_quirk_gain: float = 1.5
    """γ of the members' labeller quirks u = R* + γ · n_t(y) (Coste premise: each member its own t)."""
    member_noise: float = 0.0
    """Label-flip rate of the members' training data."""
    probe_samples: int = 1024
    """Base-policy responses of the insertion probe (what exploiting one token does to each reward)."""
    probe_tokens: int = 4
    """Copies of the token the insertion probe puts in front of each response."""
    par_refs: int = 10
    """v2, channel (iii): SFT references per prompt (PAR: 10)."""
    par_prompts: int = 256
    """Prompts on which the PAR-regime measures are read (final PPO policy vs references; gold-aligned vs refs)."""
    gold_aligned_n: int = 64
    """A gold-aligned response = the gold-best of this many base-policy samples (no exploit: SFT support only)."""
    bias_control: bool = False
    """v2, channel (iii) control: also run PPO against the same proxy with the world's proxy bias off (λ = 0)."""
    workers: int = 3
    """Processes for proxy training and PPO seeds (1 = all in this process)."""

    def validate(self) -> None:
        super().validate()
        check_positive(
            self,
            "test_pairs",
            "bon_prompts",
            "bon_samples",
            "probe_samples",
            "probe_tokens",
            "par_refs",
            "par_prompts",
            "gold_aligned_n",
            "member_quirk_gain",
        )
        check_fraction(self, "label_noise", "member_noise")
        ensure(self.ppo_kl >= 0, "ppo_kl", f"must be >= 0, got {self.ppo_kl}")
        ensure(self.bon_samples >= 2, "bon_samples", f"must be >= 2, got {self.bon_samples}")
        ensure(self.members == 0 or self.members >= 2, "members", f"must be 0 or >= 2, got {self.members}")
        if self.members:
            ensure(self.world.quirk_cost > 0, "members", "the member-quirk premise needs world.quirk_cost > 0")
            need = self.members + self.seeds - 1
            have = len(member_quirks(self.world))
            ensure(have >= need, "members", f"needs members + seeds − 1 = {need} quirk tokens, the world has {have}")
        ensure(
            not self.bias_control or self.world.proxy_bias_token is not None,
            "bias_control",
            "needs a world with a proxy bias (world.proxy_bias_token)",
        )


# `--preset quick` + these options = the v1 quick run (results commit 82cd46c): world v1, no v2 measurements
V1_ARGS = (
    "--world.feature-penalty 1.0 --world.quirk-cost 0 --world.quirk-cost-power 1 --world.quirk-tokens "
    "--world.proxy-bias-token None --world.proxy-bias-gain 0 --members 0 --no-bias-control --workers 3 --ppo-steps 100"
)
# `--preset quick` + these options = the world v2.1 quick run (results commit 0646e02): linear quirk cost, λ = 1
V2_1_ARGS = "--world.quirk-cost 0.2 --world.quirk-cost-power 1 --world.proxy-bias-gain 1.0 --ppo-steps 100"

PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        workers=1,
        world=SMOKE_WORLD_V2,
        proxy=ProxyConfig(n_pairs=128, steps=10),
        test_pairs=64,
        bon_prompts=4,
        bon_samples=16,
        ppo_steps=4,
        ppo_batch=16,
        ppo_minibatch=8,
        log_every=2,
        members=3,
        probe_samples=32,
        par_prompts=8,
        gold_aligned_n=8,
        bias_control=True,
    ),
    # 75 PPO iterations: the horizon calibration round 6 chose with the world (README "World v2: calibration")
    "quick": Config(preset="quick", seeds=3, world=WORLD_V2, members=5, bias_control=True, workers=2, ppo_steps=75),
    "full": Config(
        preset="full",
        seeds=5,
        world=WORLD_V2,
        members=5,
        bias_control=True,
        bon_prompts=256,
        bon_samples=1024,
        ppo_steps=300,
        ppo_batch=256,
    ),
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
        for seed, rm in zip(cfg.seed_list(), rms, strict=True):
            proxy = world.proxy_reward(rm, prompts, g.tokens, g.mask).view(P, N)
            for c, f in zip(bon_curve(proxy, gold, ns), bon_curve(proxy, feats, ns), strict=True):
                kw = {"n": c["n"], "kl": c["kl_bon"], "step": c["n"]}
                rows += [
                    record(f"bon_{name}", seed, "gold", c["gold"], **kw),
                    record(f"bon_{name}", seed, "proxy", c["proxy"], **kw),
                    record(f"bon_{name}", seed, "features", f["gold"], **kw),
                ]
    return rows


@torch.no_grad()
def par_regime(world: PreferenceWorld, rm, policy, cfg: Config, seed: int) -> dict[str, float]:
    """PAR's regime after PPO: on `par_prompts` fresh prompts, the final policy's proxy excess over the maximum of
    `par_refs` π_SFT references (per prompt) in units of the references' SD, excess = (r − max_m r_ref,m) / σ_ref
    (mean over prompts; the fraction with excess > 0 beside it), and how many references a gold-aligned response
    beats (the gold-best of `gold_aligned_n` π_SFT samples, scored by the same proxy)."""
    gen = torch.Generator().manual_seed(40_000 + seed)
    P, M, K = cfg.par_prompts, cfg.par_refs, cfg.gold_aligned_n
    prompts = world.sample_prompts(P, gen)
    final = world.sample(prompts, gen, policy=policy)
    r_final = world.proxy_reward(rm, prompts, final.tokens, final.mask)
    rep = prompts.repeat_interleave(M + K, 0)
    g = world.sample(rep, gen)
    r = world.proxy_reward(rm, rep, g.tokens, g.mask).view(P, M + K)
    refs, cand = r[:, :M], r[:, M:]
    gold = world.gold_reward(rep, g.tokens, g.mask).view(P, M + K)[:, M:]
    aligned = cand.gather(1, gold.argmax(1, keepdim=True))  # proxy reward of the gold-best candidate
    ref_max = refs.max(1).values
    excess = (r_final - ref_max) / refs.std()  # σ_ref: SD of every reference's proxy reward
    return {
        "final_excess_sd": float(excess.mean()),
        "final_beats_max_ref": float((r_final > ref_max).float().mean()),
        "aligned_beats_refs": float((aligned > refs).float().mean()),
        "aligned_beats_max_ref": float((aligned[:, 0] > ref_max).float().mean()),
        "ref_max_mean": float(ref_max.mean()),
        "final_proxy_mean": float(r_final.mean()),
    }


def ppo_rows(world: PreferenceWorld, rm, cfg: Config, seed: int, method: str = "ppo_single") -> list[dict]:
    """PPO from π_SFT against one proxy; per-window means of proxy, gold, KL, length, feature count (and, with a
    proxy bias, its token count); in a world v2 the PAR-regime measures of the final policy."""
    torch.manual_seed(seed)
    pcfg = cfg.ppo_config(cfg.ppo_kl, world.cfg.max_response_len)
    trainer = PPOTrainer(copy_policy(world), world.policy, pcfg, eos_id=world.eos_id)
    gen = torch.Generator().manual_seed(30_000 + seed)
    logged: dict[str, list[float]] = {}
    bias = world.cfg.proxy_bias_token

    def reward_fn(x, y, mask):
        r = world.proxy_reward(rm, x, y, mask)
        logged.setdefault("gold", []).append(float(world.gold_reward(x, y, mask).mean()))
        logged.setdefault("features", []).append(float(world.feature_count(y, mask).float().mean()))
        if bias is not None:
            logged.setdefault("bias_count", []).append(float(world.token_count(y, mask, bias).float().mean()))
        return r

    metrics = [("proxy", "score"), ("gold", "gold"), ("kl", "kl"), ("length", "length"), ("features", "features")]
    metrics += [("bias_count", "bias_count")] if bias is not None else []
    rows = []
    for step in track(range(cfg.ppo_steps), f"PPO {method} seed {seed}"):
        stats = trainer.step(world.sample_prompts(cfg.ppo_batch, gen), reward_fn, generator=gen)
        for k in ("score", "kl", "length"):
            logged.setdefault(k, []).append(stats[k])
        if (step + 1) % cfg.log_every == 0:
            mid = step + 1 - cfg.log_every // 2
            for metric, key in metrics:
                rows.append(record(method, seed, metric, float(np.mean(logged[key][-cfg.log_every :])), step=mid))
            _log(
                f"PPO {method} seed {seed} step {step + 1}: "
                + ", ".join(f"{r['metric']}={r['value']:.3f}" for r in rows[-len(metrics) :])
            )
    if is_v2(cfg):
        res = par_regime(world, rm, trainer.policy.eval(), cfg, seed)
        rows += [record(method, seed, k, v) for k, v in res.items()]
    return rows


def is_v2(cfg: Config) -> bool:
    """Whether the v2 measurements run (a world with the proxy-bias channel)."""
    return cfg.world.proxy_bias_token is not None


def member_config(cfg: Config, setting: str, seed: int, m: int) -> ProxyConfig:
    """Member m of seed `seed`'s ensemble (m in seed .. seed + k − 1): its own fine-tune seed, the shared pairs
    (data_seed 0), and the labeller quirk u = R* + γ · n_t: its own t (premise) or seed's t for every member
    (control: one shared quirk, matched accuracy)."""
    quirks = member_quirks(cfg.world)
    token = quirks[m] if setting == "premise" else quirks[seed]
    return dataclasses.replace(
        cfg.proxy,
        label_noise=cfg.member_noise,
        data_seed=0,
        seed=m,
        quirk_token=token,
        quirk_gain=cfg.member_quirk_gain,
    )


def member_configs(cfg: Config) -> list[ProxyConfig]:
    """Every member proxy of the channel (ii) measurements (deduplicated: control member `seed` = premise member)."""
    out = [
        member_config(cfg, setting, seed, m)
        for seed in cfg.seed_list()
        for setting in SETTINGS
        for m in range(seed, seed + cfg.members)
    ]
    return list(dict.fromkeys(out))


@torch.no_grad()
def member_rows(world: PreferenceWorld, members: dict, cfg: Config) -> list[dict]:
    """Channel (ii), per seed and setting: members' mean accuracy, self − others at the best-of-N picks (members
    z-scored over the pool), and the insertion probe — k copies of member i's quirk token in front of π_SFT
    responses: Δz of member i (own), mean Δz of the others, Δgold minus Δgold of the same insertion of a token
    outside Q (the quirk's own gold cost, net of what the teacher does to any insertion)."""
    P, N = cfg.bon_prompts, cfg.bon_samples
    prompts, g = world.bon_samples(P, N, seed=0)
    pprompts, pg = world.bon_samples(cfg.probe_samples, 1, seed=2)
    test = world.comparisons(cfg.test_pairs, seed=10**6)
    neutral = next(t for t in range(world.cfg.n_features, world.cfg.vocab) if t not in world.cfg.quirk_tokens)
    gold0 = world.gold_reward(pprompts, pg.tokens, pg.mask)
    ins = partial(world.insert_tokens, pg.tokens, pg.mask, k=cfg.probe_tokens)
    gold_neutral = float((world.gold_reward(pprompts, *ins(token=neutral)) - gold0).mean())
    rows = []
    for seed in cfg.seed_list():
        for setting in SETTINGS:
            pcs = [member_config(cfg, setting, seed, m) for m in range(seed, seed + cfg.members)]
            rms = [members[pc] for pc in pcs]
            raw = torch.stack([world.proxy_reward(rm, prompts, g.tokens, g.mask).view(P, N) for rm in rms]).double()
            mu, sd = raw.flatten(1).mean(1), raw.flatten(1).std(1)
            z = standardise(raw)
            base = torch.stack(
                [(world.proxy_reward(rm, pprompts, pg.tokens, pg.mask) - mu[i]) / sd[i] for i, rm in enumerate(rms)]
            )
            own, others, cost = [], [], []
            for i, pc in enumerate(pcs):
                t, m = ins(token=pc.quirk_token)
                dz = (
                    torch.stack([(world.proxy_reward(rm, pprompts, t, m) - mu[j]) / sd[j] for j, rm in enumerate(rms)])
                    - base
                )
                own.append(float(dz[i].mean()))
                others.append(float(torch.cat([dz[:i], dz[i + 1 :]]).mean()))
                cost.append(float((world.gold_reward(pprompts, t, m) - gold0).mean()) - gold_neutral)
            tag = {"setting": setting}
            rows += [
                record("members", seed, "accuracy", float(np.mean([world.accuracy(rm, test) for rm in rms])), **tag),
                record("members", seed, "self_minus_others", self_minus_others(z), **tag),
                record("members", seed, "quirk_own_gain", float(np.mean(own)), **tag),
                record("members", seed, "quirk_other_gain", float(np.mean(others)), **tag),
                record("members", seed, "quirk_gold_cost", float(np.mean(cost)), **tag),
            ]
            _log(f"members {setting} seed {seed}: " + ", ".join(f"{r['metric']}={r['value']:.3f}" for r in rows[-5:]))
    return rows


def _log(msg: str) -> None:
    print(f"[preference world] {msg}", flush=True)


def _proxy_config(cfg: Config, name: str, seed: int) -> ProxyConfig:
    noise = 0.0 if name == "clean" else cfg.label_noise
    return dataclasses.replace(cfg.proxy, label_noise=noise, seed=seed, data_seed=seed)


def _train_proxy_job(cfg: Config, pc: ProxyConfig) -> None:
    """Worker: train one proxy into the cache."""
    torch.set_num_threads(cfg.threads)
    build_world(cfg.world).train_proxy(pc)


def _ppo_job(cfg: Config, seed: int, method: str = "ppo_single") -> list[dict]:
    """Worker: one PPO run (world and proxy come from the cache); `ppo_nobias`: the world's proxy bias off."""
    torch.set_num_threads(cfg.threads)
    wc = dataclasses.replace(cfg.world, proxy_bias_gain=0.0) if method == "ppo_nobias" else cfg.world
    world = build_world(wc)
    return ppo_rows(world, world.train_proxy(_proxy_config(cfg, cfg.ppo_proxy, seed)), cfg, seed, method)


def ppo_methods(cfg: Config) -> list[str]:
    """The PPO runs of each seed: against the proxy (`ppo_single`), and with the proxy bias off (`ppo_nobias`)."""
    return ["ppo_single"] + (["ppo_nobias"] if cfg.bias_control else [])


def run(cfg: Config) -> list[dict]:
    """Proxies and PPO seeds run in `workers` processes (spawned; artefacts shared through the cache)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    torch.set_num_threads(cfg.threads)
    world = build_world(cfg.world, verbose=True)
    pool = cf.ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) if cfg.workers > 1 else None
    jobs = [(name, seed) for seed in cfg.seed_list() for name in ("clean", "noisy")]
    pcs = [_proxy_config(cfg, name, seed) for name, seed in jobs] + (member_configs(cfg) if cfg.members else [])
    if pool is not None:
        list(pool.map(_train_proxy_job, [cfg] * len(pcs), pcs))
    test = world.comparisons(cfg.test_pairs, seed=10**6)
    rows: list[dict] = []
    proxies: dict[str, list] = {"clean": [], "noisy": []}
    for name, seed in jobs:
        rm = world.train_proxy(_proxy_config(cfg, name, seed))
        proxies[name].append(rm)
        rows.append(record(f"proxy_{name}", seed, "accuracy", world.accuracy(rm, test)))
        _log(f"proxy {name} seed {seed}: accuracy {rows[-1]['value']:.3f}")
    # checkpointed units (--resume): best-of-n, the members, each PPO run (a fresh world per PPO run, in the workers
    # or here, so that the records do not depend on --workers)
    units = [(s, m) for m in ppo_methods(cfg) for s in cfg.seed_list()]
    ppo = checkpoint.map_units(_ppo_job, [(cfg, *u) for u in units], [("ppo", *u) for u in units], pool)
    rows += checkpoint.unit(("bon",), partial(bon_rows, world, proxies, cfg))
    _log("best-of-n: " + str(overoptimisation(rows, "bon_noisy")))
    if cfg.members:
        members = {pc: world.train_proxy(pc) for pc in member_configs(cfg)}
        rows += checkpoint.unit(("members",), partial(member_rows, world, members, cfg))
    for res in ppo:
        rows += res
    if pool is not None:
        pool.shutdown()
    rows += summary_rows(rows, cfg)
    return rows


# --- over-optimisation summaries ---


def mean_curve(rows: list[dict], method: str, metric: str, key: str = "step") -> tuple[np.ndarray, np.ndarray]:
    """(x, mean over seeds of the metric) for a curve."""
    sel = [r for r in select(rows, method=method, metric=metric) if key in r]
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


def gao_shape(rows: list[dict], method: str, kind: Literal["bon", "rl"]) -> dict[str, float]:
    """Gao et al.'s form fitted to the mean-over-seeds gold curve against d = √KL, gold centred at the curve's start
    (best-of-n: n = 1, i.e. π_SFT; PPO: the first window, KL ≈ 0), with the robust peak and final of README rule 4:
    smoothed peak (moving average of 3 evaluations) and final mean (last 3 evaluations); `gold_sft` = π_SFT's gold
    (best-of-n pool, n = 1), the floor of "no collapse"."""
    gold_sft = float(mean_curve(rows, "bon_clean", "gold")[1][0])
    if kind == "bon":
        n, gold = mean_curve(rows, method, "gold")
        kl = np.array([kl_bon(int(v)) for v in n])
    else:
        _, gold = mean_curve(rows, method, "gold")
        kl = mean_curve(rows, method, "kl")[1]
    fit = fit_gao(kl, gold - gold[0], kind)
    peak, final = smoothed_peak(gold), final_mean(gold)
    return {
        "r2": fit["r2"],
        "alpha": fit["alpha"],
        "beta": fit["beta"],
        "gold_sft": gold_sft,
        "gold_start": float(gold[0]),
        "gold_peak_smoothed": peak,
        "gold_final_mean": final,
        "fall_fraction": (peak - final) / max(peak - float(gold[0]), 1e-9),
        "kl_final": float(kl[-1]),
    }


def summary_rows(rows: list[dict], cfg: Config) -> list[dict]:
    """Per-seed final values (rows without `step`) so that summary.json aggregates them."""
    out = []
    for seed in sorted({r["seed"] for r in select(rows, method="ppo_single")}):
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
# v2 (pre-registered before the deciding quick run; the project's own thresholds, set from the dev-seed pilot)
GAO_R2 = 0.9  # issue 31's calibration target: Gao's form explains ≥ 90% of the mean curve's variance
GAO_PEAK_GAIN = 0.3  # "a clear peak": smoothed peak ≥ the curve's start + 0.3 (gold in units of the teacher's std)
GAO_FLOOR = 1.0  # "no collapse": the final mean stays above π_SFT gold − 1.0 (v1 PPO: −3.2, ensembles: −12…−21)
SMO_PREMISE = 0.75  # self − others at the picks (z units): prototype 1.33–1.63 with own quirks, 0.07–0.09 shared
SMO_CONTROL = 0.25
OWN_GAIN = 1.0  # inserting member i's quirk raises z_i by ≥ 1 more than it raises the other members
QUIRK_COST = -0.5  # … and costs ≥ 0.5 gold more than inserting a token outside Q
ACC_MATCH = 0.03  # shared-quirk control members: accuracy within 0.03 of the premise members
PAR_EXCESS = 1.0  # PAR regime: Vanilla's final proxy exceeds the per-prompt max of the refs by ≥ 1 reference SD
# (mean over prompts; papers/par's premise 1b statistic and threshold, issue 31; it replaced v2's sign statistic
# "final proxy > max of the refs on ≥ 80% of prompts", which the v2 run showed cannot separate the regimes)
PAR_ALIGNED = 0.8  # a gold-aligned response beats ≥ 80% of the references (mean over prompts)


def _mean(rows: list[dict], method: str, metric: str, **match) -> float:
    return float(np.mean([r["value"] for r in select(rows, method=method, metric=metric, **match) if "step" not in r]))


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
            kind="premise",
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
                kind="premise",
            )
        )
    if is_v2(cfg):
        out += v2_claims(rows, cfg)
    return out


def v2_claims(rows: list[dict], cfg: Config) -> list[Claim]:
    """The error channels' premise properties and their controls (world v2)."""
    out = []
    for cid, method, kind, fall, label in (
        ("gao_bon", "bon_noisy", "bon", BON_MIN_FALL, "best-of-n (noisy proxy)"),
        ("gao_ppo", "ppo_single", "rl", PPO_MIN_FALL, "Vanilla PPO (clean proxy, tiny KL)"),
    ):
        s = gao_shape(rows, method, kind)
        form = "d(α − βd)" if kind == "bon" else "d(α − β log d)"
        out.append(
            Claim(
                cid,
                f"{label} follows Gao et al.: {form} fits the mean gold-vs-√KL curve (gold − its start) with R² ≥ "
                f"{GAO_R2}, a clear peak (smoothed peak ≥ start + {GAO_PEAK_GAIN}), a decline by ≥ {fall:.0%} of the "
                f"gain, and no collapse (final mean ≥ π_SFT gold − {GAO_FLOOR})",
                s,
                s["r2"] >= GAO_R2
                and s["gold_peak_smoothed"] >= s["gold_start"] + GAO_PEAK_GAIN
                and s["fall_fraction"] >= fall
                and s["gold_final_mean"] >= s["gold_sft"] - GAO_FLOOR,
                kind="premise",
            )
        )
    if cfg.members:
        m = {setting: {k: _mean(rows, "members", k, setting=setting) for k in MEMBER_METRICS} for setting in SETTINGS}
        p, c = m["premise"], m["control"]
        out += [
            Claim(
                "member_independence",
                f"channel (ii): {cfg.members} members, each with its own labeller quirk, over-rate their own "
                f"best-of-{cfg.bon_samples} picks more than the others do: self − others ≥ {SMO_PREMISE} (z, mean "
                "over seeds)",
                p,
                p["self_minus_others"] >= SMO_PREMISE,
                kind="premise",
            ),
            Claim(
                "quirk_costs_gold",
                f"channel (ii): exploiting a member's quirk ({cfg.probe_tokens} copies of its token) raises that "
                f"member's z by ≥ {OWN_GAIN} more than the other members' and costs ≤ {QUIRK_COST} gold net of the "
                "same insertion of a token outside Q (mean over members and seeds)",
                p,
                p["quirk_own_gain"] - p["quirk_other_gain"] >= OWN_GAIN and p["quirk_gold_cost"] <= QUIRK_COST,
                kind="premise",
            ),
            Claim(
                "shared_quirk_control",
                f"control of channel (ii): members sharing one quirk at matched accuracy (±{ACC_MATCH}) agree at "
                f"their picks (self − others ≤ {SMO_CONTROL}) and on the quirk (own − others gain < {OWN_GAIN})",
                c | {"premise_accuracy": p["accuracy"]},
                c["self_minus_others"] <= SMO_CONTROL
                and c["quirk_own_gain"] - c["quirk_other_gain"] < OWN_GAIN
                and abs(c["accuracy"] - p["accuracy"]) <= ACC_MATCH,
                kind="control",
            ),
        ]
    par = {k: _mean(rows, "ppo_single", k) for k in PAR_METRICS}
    out += [
        Claim(
            "par_regime",
            f"channel (iii): Vanilla PPO's final proxy exceeds the per-prompt max of {cfg.par_refs} π_SFT references "
            f"by ≥ {PAR_EXCESS:g} reference SD (mean of (r − max r_ref) / σ_ref), and a gold-aligned response "
            f"(gold-best of {cfg.gold_aligned_n} π_SFT samples) beats ≥ {PAR_ALIGNED:.0%} of the references "
            "(means over seeds)",
            par,
            par["final_excess_sd"] >= PAR_EXCESS and par["aligned_beats_refs"] >= PAR_ALIGNED,
            kind="premise",
        )
    ]
    if cfg.bias_control:
        ctl = {k: _mean(rows, "ppo_nobias", k) for k in PAR_METRICS}
        out.append(
            Claim(
                "par_regime_control",
                f"control of channel (iii): with the proxy bias off (λ = 0) Vanilla's final proxy exceeds the max of "
                f"the references by < {PAR_EXCESS:g} reference SD",
                ctl,
                ctl["final_excess_sd"] < PAR_EXCESS,
                kind="control",
            )
        )
    return out


MEMBER_METRICS = ("accuracy", "self_minus_others", "quirk_own_gain", "quirk_other_gain", "quirk_gold_cost")
PAR_METRICS = (
    "final_excess_sd",
    "final_beats_max_ref",
    "aligned_beats_refs",
    "aligned_beats_max_ref",
    "ref_max_mean",
    "final_proxy_mean",
)


def table(rows: list[dict], cfg: Config) -> str:
    lines = [
        "| curve | gold start | gold peak | gold final | peak at | KL at peak | KL final | proxy gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    curves = [
        ("best-of-n, noisy proxy (x = n)", "bon_noisy", None),
        ("best-of-n, clean proxy (x = n)", "bon_clean", None),
        (f"PPO, {cfg.ppo_proxy} proxy (x = step)", "ppo_single", "kl"),
    ]
    if cfg.bias_control:
        curves.append((f"PPO, {cfg.ppo_proxy} proxy, proxy bias off (x = step)", "ppo_nobias", "kl"))
    for name, method, xm in curves:
        o = overoptimisation(rows, method, xm)
        lines.append(
            f"| {name} | {o['gold_start']:.3f} | {o['gold_peak']:.3f} | {o['gold_final']:.3f} | "
            f"{o['peak_at']:.0f} | {o['kl_at_peak']:.2f} | {o['kl_final']:.2f} | {o['proxy_gain']:.3f} |"
        )
    if is_v2(cfg):
        lines += [
            "",
            "| Gao fit (mean curve) | α | β | R² | π_SFT gold | smoothed peak | final mean |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, method, kind in (("best-of-n, noisy", "bon_noisy", "bon"), ("Vanilla PPO", "ppo_single", "rl")):
            s = gao_shape(rows, method, kind)
            lines.append(
                f"| {name} | {s['alpha']:.3f} | {s['beta']:.3f} | {s['r2']:.3f} | {s['gold_sft']:.3f} | "
                f"{s['gold_peak_smoothed']:.3f} | {s['gold_final_mean']:.3f} |"
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
    ax[1].plot(x, gold, color="C2", lw=2, label="gold")
    ax[1].plot(x, proxy, color="C1", lw=2, label="proxy")
    ax[1].set(xlabel="PPO iteration", ylabel="reward", title=f"PPO vs one {cfg.ppo_proxy} proxy (β tiny)")
    for method, style in (("ppo_single", "o-"), ("ppo_nobias", "s--")):
        if not select(rows, method=method):
            continue
        _, g = mean_curve(rows, method, "gold")
        _, p = mean_curve(rows, method, "proxy")
        _, kl = mean_curve(rows, method, "kl")
        ax[2].plot(np.sqrt(kl), g, style, color="C2", label=f"{method} gold")
        ax[2].plot(np.sqrt(kl), p, style, color="C1", alpha=0.6, label=f"{method} proxy")
    ax[2].set(xlabel="√KL(π ‖ π_SFT)", ylabel="reward", title="PPO: reward vs √KL (mean over seeds)")
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


if __name__ == "__main__":
    sys.exit(main())
