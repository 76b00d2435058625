"""The reward-hacking experiment of Fu et al. 2025 on the preference world (`common/worlds/preference.py`).

Per seed: one clean proxy RM (the world's default proxy for that seed); the RM baselines' reward models (WARM's
weight average of K RMs fine-tuned from the proxy's initialisation, Reg, ODIN) trained on the same pairs; a fixed
set of training prompts whose M SFT reference responses are sampled and scored by the proxy once, offline; a
held-out evaluation set of prompts with one SFT response each. Then PPO from π_SFT for `prompt_epochs` passes over
the training prompts against each method's RL reward (per-token KL penalty −β (log π − log π_SFT), shaped reward on
the last token). Every `eval_every` iterations: gold win-rate of the policy against the SFT responses on the
evaluation prompts (the paper's metric; ties count ½); on each iteration's rollouts: proxy reward (the vanilla
proxy, for every method), RL reward, gold reward, KL, length and feature-token count.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.cache import cache_root, config_hash, save_atomic
from reprozoo.common.config import check_positive, ensure
from reprozoo.common.hf import HubConfig
from reprozoo.common.ppo import PPOConfig, PPOTrainer
from reprozoo.common.progress import track
from reprozoo.common.results import record, select
from reprozoo.common.reward import RewardModel, bradley_terry_loss
from reprozoo.common.worlds.preference import (
    SMOKE_WORLD_V2,
    WORLD_V2,
    PreferenceWorld,
    ProxyConfig,
    WorldConfig,
    build_world,
    copy_policy,
)
from reprozoo.papers.par.baselines import (
    OdinRewardModel,
    RewardShaper,
    odin_loss,
    reg_loss,
    train_pairwise,
    warm_average,
)

PAPER = "par"


@dataclass(frozen=True)
class Variant:
    """One PPO run type: which reward model it optimises, how the reward is shaped, M and k."""

    rm: str  # proxy | warm | reg | odin | gold (the premise's control: no proxy error)
    shaping: str  # see baselines.SHAPINGS
    n_refs: int | None = None  # M (None: the config's n_refs)
    k: float = 1.0
    world: str = "main"  # main | control (Config.control_world: PAR's regime switched off)


VARIANTS: dict[str, Variant] = {
    "vanilla": Variant("proxy", "vanilla"),
    "warm": Variant("warm", "vanilla"),
    "odin": Variant("odin", "vanilla"),
    "reg": Variant("reg", "vanilla"),
    "meanstd": Variant("proxy", "meanstd"),
    "clip": Variant("proxy", "clip"),
    "minmax": Variant("proxy", "minmax"),
    "lsc": Variant("proxy", "lsc"),
    "par": Variant("proxy", "par"),
    # ablations
    "par_m1": Variant("proxy", "par", n_refs=1),
    "par_m3": Variant("proxy", "par", n_refs=3),
    "par_k2": Variant("proxy", "par", k=2.0),
    "par_k3": Variant("proxy", "par", k=3.0),
    "sigmoid": Variant("proxy", "sigmoid"),
    # control: Vanilla PPO on the gold reward itself (the premise, a proxy error, switched off)
    "vanilla_gold": Variant("gold", "vanilla"),
    # controls of premises 1b / 1c: Vanilla (which also records 1c's measurement there) and PAR on the control world
    # (PAR's regime switched off)
    "vanilla_ctrl": Variant("proxy", "vanilla", world="control"),
    "par_ctrl": Variant("proxy", "par", world="control"),
}
METHODS = ("vanilla", "warm", "odin", "reg", "meanstd", "clip", "minmax", "lsc", "par")
ABLATIONS = ("par_m1", "par_m3", "par_k2", "par_k3", "sigmoid")
CONTROLS = ("vanilla_gold",)
REGIME_CONTROLS = ("vanilla_ctrl", "par_ctrl")


@dataclass
class Config(HubConfig):
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
    train_prompts: int = 3200
    """Training prompts per epoch (each with its M references, scored once, offline)."""
    prompt_epochs: int = 2
    """Passes over the training prompts (the paper: two epochs)."""
    ppo_batch: int = 64
    """Prompts (= rollouts) per PPO iteration."""
    ppo_lr: float = 2e-4
    """PPO learning rate (the world demo's value)."""
    kl_coef: float = 0.005
    """β of the per-token KL penalty (official `KL_coef` = 0.005)."""
    ppo_epochs: int = 2
    """PPO optimisation passes over each rollout batch."""
    ppo_minibatch: int = 32
    """PPO minibatch size."""
    whiten_advantages: bool = True
    """Normalise advantages over the batch (official `compute_advantages` does)."""
    valid_len: int = 10
    """Length beyond which every method but ODIN pays `len_penalty` per token (official 300 of 512 tokens)."""
    len_penalty: float = 0.01
    """Per-token length penalty (official 0.01)."""
    warm_k: int = 5
    """WARM: reward models averaged (official 5)."""
    reg_coef: float = 0.005
    """Reg: coefficient of r⁺² + r⁻² (official `reward_reg_val` = 0.005)."""
    eval_prompts: int = 256
    """Held-out prompts of the win-rate evaluation (one SFT response each)."""
    beat_prompts: int = 256
    """Premise 1c: training prompts on which the gold-best of `beat_n` SFT samples is scored against the prompt's
    M references (once per seed, on the `par` run)."""
    beat_n: int = 32
    """Premise 1c: SFT samples per prompt of the gold-aligned best-of-n."""
    proxy_offset: float = 0.0
    """A constant c added to every reward model's score (r + c; the references' too): Bradley–Terry training cannot
    see it, and of the shapings only the uncentred σ(r) does (claim 5). The paper's proxy sits at 3.5 under π_SFT."""
    eval_every: int = 5
    """Iterations between win-rate evaluations (rollout statistics are averaged over the same windows)."""
    premise_seeds: int = 0
    """Extra evaluation seeds, after the `seeds` every run has, on which only `vanilla` runs: premise 1 (Vanilla's
    fall) is a property of Vanilla alone and its seed-to-seed spread needs more seeds than the paired claims
    (power pilot, README); the paired comparisons use the seeds every run has."""
    final_evals: int = 2
    """'Final' values average the last this-many evaluation windows."""
    threads: int = 1
    """torch CPU threads per process (<= 2 on the 2-core CI machine)."""
    workers: int = 2
    """Processes for reward models and PPO runs (1 = all in this process)."""

    def premise_seed_list(self) -> list[int]:
        """The seeds on which only `vanilla` runs (premise 1), after `seed_list()`."""
        start = self.first_seed + self.seeds
        return list(range(start, start + self.premise_seeds)) if "vanilla" in self.runs else []

    @property
    def iterations(self) -> int:
        return self.prompt_epochs * self.train_prompts // self.ppo_batch

    def validate(self) -> None:
        super().validate()
        check_positive(
            self,
            "n_refs",
            "train_prompts",
            "prompt_epochs",
            "ppo_batch",
            "ppo_lr",
            "ppo_epochs",
            "ppo_minibatch",
            "valid_len",
            "warm_k",
            "eval_prompts",
            "beat_prompts",
            "beat_n",
            "eval_every",
            "final_evals",
            "threads",
            "workers",
        )
        unknown = [r for r in self.runs if r not in VARIANTS]
        ensure(not unknown, "runs", f"unknown runs {unknown}; choose from {sorted(VARIANTS)}")
        ctrl = [r for r in self.runs if VARIANTS[r].world == "control"]
        ensure(not ctrl or self.control_world is not None, "runs", f"{ctrl} need a control_world")
        ensure(len(self.runs) > 0, "runs", "must not be empty")
        ensure(self.premise_seeds >= 0, "premise_seeds", f"must be >= 0, got {self.premise_seeds}")
        ensure(self.kl_coef >= 0, "kl_coef", f"must be >= 0, got {self.kl_coef}")
        ensure(self.len_penalty >= 0, "len_penalty", f"must be >= 0, got {self.len_penalty}")
        ensure(self.reg_coef >= 0, "reg_coef", f"must be >= 0, got {self.reg_coef}")
        ensure(self.train_prompts % self.ppo_batch == 0, "train_prompts", "must be a multiple of ppo_batch")
        ensure(self.beat_prompts <= self.train_prompts, "beat_prompts", "must be <= train_prompts")
        ensure(self.iterations % self.eval_every == 0, "eval_every", "must divide the number of PPO iterations")
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
    # Pre-registration v3 (README): fresh evaluation seeds 3-5 for every run (seeds 0-2 decided the first v2 run),
    # Vanilla also on seeds 6-12 (premise 1: 10 seeds, the power rule on the dev-seed pilot).
    "quick": Config(
        preset="quick",
        seeds=3,
        first_seed=3,
        premise_seeds=7,
        world=WORLD_V2,
        control_world=dataclasses.replace(WORLD_V2, proxy_bias_gain=0.0),
        runs=[*METHODS, "par_m1", "sigmoid", *CONTROLS, "vanilla_ctrl"],
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


# --- reward models (cached) ---


def _cache_dir(world: PreferenceWorld) -> Path:
    return cache_root() / "par" / config_hash(world.cfg)


def _chosen_rejected(world: PreferenceWorld, pc: ProxyConfig):
    """The proxy's training pairs, reordered into (chosen, rejected) by their labels."""
    d = world.comparisons(pc.n_pairs, label_noise=pc.label_noise, seed=pc.data_seed)
    a_wins = (d.labels > 0.5)[:, None]
    chosen = (torch.where(a_wins, d.ids_a, d.ids_b), torch.where(a_wins, d.mask_a, d.mask_b))
    rejected = (torch.where(a_wins, d.ids_b, d.ids_a), torch.where(a_wins, d.mask_b, d.mask_a))
    return chosen, rejected


def reward_model(world: PreferenceWorld, cfg: Config, kind: str, seed: int) -> torch.nn.Module:
    """The RM a run of `kind` optimises: the world's clean proxy, WARM, Reg or ODIN (trained once, cached)."""
    pc = dataclasses.replace(cfg.proxy, seed=seed, data_seed=seed, label_noise=0.0)
    if kind == "proxy":
        return world.train_proxy(pc)
    if kind == "gold":
        return world.gold
    if kind == "warm":  # member 0 is the proxy itself; the others differ only in minibatch order
        return warm_average([world.train_proxy(pc)] + [_rm(world, cfg, pc, "bt", j) for j in range(1, cfg.warm_k)])
    return _rm(world, cfg, pc, kind, 0)


def _rm(world: PreferenceWorld, cfg: Config, pc: ProxyConfig, kind: str, member: int) -> torch.nn.Module:
    """An RM from the proxy's initialisation (RewardModel.tiny(seed)) on the proxy's pairs, with loss `kind`
    (bt: Bradley–Terry; reg; odin) and minibatch-order seed seed + 1000·member."""
    base = RewardModel.tiny(
        world.vocab_size, d_model=pc.d_model, n_layers=pc.n_layers, max_len=world.max_len, seed=pc.seed
    )
    rm = OdinRewardModel(base) if kind == "odin" else base
    coef = cfg.reg_coef if kind == "reg" else 0.0
    path = _cache_dir(world) / f"{kind}-{config_hash(pc)}-m{member}-c{coef}.pt"
    if path.exists():
        rm.load_state_dict(torch.load(path, weights_only=True))
        return rm.eval()
    width = world.prompt_width

    def loss_fn(model, ids, am, half):
        if kind == "odin":
            q, ell = model.both(ids, am)
            return odin_loss(q, ell, am.sum(-1) - width, model.head.weight, model.length_head.weight, half)["total"]
        r = model(ids, am)
        return reg_loss(r[:half], r[half:], coef) if kind == "reg" else bradley_terry_loss(r[:half], r[half:])

    chosen, rejected = _chosen_rejected(world, pc)
    train_pairwise(
        rm, chosen, rejected, loss_fn, steps=pc.steps, batch_size=pc.batch_size, lr=pc.lr, seed=pc.seed + 1000 * member
    )
    save_atomic(rm.state_dict(), path)
    return rm.eval()


# --- prompts, references, evaluation set ---


@dataclass
class Prompts:
    """Training prompts with the proxy rewards of their M SFT references; evaluation prompts with SFT gold."""

    train: torch.Tensor  # (N, P + 1)
    ref_rewards: torch.Tensor  # (N, M)
    eval: torch.Tensor  # (E, P + 1)
    eval_sft_gold: torch.Tensor  # (E,)


def prompts(world: PreferenceWorld, cfg: Config, seed: int, proxy: torch.nn.Module) -> Prompts:
    """Sample the seed's prompts and SFT references and score the references with the proxy, once (cached)."""
    key = config_hash(dataclasses.replace(cfg.proxy, seed=seed, data_seed=seed))
    path = _cache_dir(world) / f"prompts-{key}-n{cfg.train_prompts}-m{cfg.n_refs}-e{cfg.eval_prompts}-s{seed}.pt"
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


# --- one PPO run ---


def ppo_run(world: PreferenceWorld, cfg: Config, name: str, seed: int) -> list[dict]:
    """PPO from π_SFT for `prompt_epochs` passes over the training prompts against run `name`'s RL reward."""
    v = VARIANTS[name]
    torch.manual_seed(seed)
    proxy = reward_model(world, cfg, "proxy", seed)
    rm = proxy if v.rm == "proxy" else reward_model(world, cfg, v.rm, seed)
    p = prompts(world, cfg, seed, proxy)
    p = dataclasses.replace(p, ref_rewards=p.ref_rewards + cfg.proxy_offset)  # r + c, as every score below
    m = v.n_refs or cfg.n_refs
    shaper = RewardShaper(v.shaping, k=v.k, valid_len=cfg.valid_len, len_penalty=cfg.len_penalty)
    pcfg = PPOConfig(
        lr=cfg.ppo_lr,
        epochs=cfg.ppo_epochs,
        minibatch_size=cfg.ppo_minibatch,
        kl_coef=cfg.kl_coef,
        whiten_advantages=cfg.whiten_advantages,
        max_new_tokens=world.cfg.max_response_len,
    )
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
def gold_bon_vs_refs(
    world: PreferenceWorld, cfg: Config, seed: int, proxy: torch.nn.Module, p: Prompts
) -> dict[str, float]:
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


def final_rows(rows: list[dict], cfg: Config, name: str, seed: int) -> list[dict]:
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


# --- the whole experiment ---


def world_of(cfg: Config, name: str) -> WorldConfig:
    """The world run `name` trains in (the control world for the regime controls)."""
    return cfg.control_world if VARIANTS[name].world == "control" else cfg.world


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


def run(cfg: Config) -> list[dict]:
    """Reward models and references per seed, then every (run, seed) PPO job, in `workers` spawned processes
    (`vanilla` also on the premise seeds)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    torch.set_num_threads(cfg.threads)
    seeds, extra = cfg.seed_list(), cfg.premise_seed_list()
    for wc in dict.fromkeys(world_of(cfg, r) for r in cfg.runs):
        build_world(wc, verbose=True)  # once, here; the seeds' proxies and RMs are trained by the workers
    jobs = [(name, seed) for name in cfg.runs for seed in seeds] + [("vanilla", seed) for seed in extra]
    keys = [("ppo", name, seed) for name, seed in jobs]  # checkpointed units (--resume)
    rows: list[dict] = []
    # workers = 1 runs the same jobs here, one by one (a fresh world per PPO run either way: records do not depend
    # on --workers)
    pool = cf.ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) if cfg.workers > 1 else None
    with pool or contextlib.nullcontext():
        prep = [(seed, list(cfg.runs)) for seed in seeds] + [(seed, ["vanilla"]) for seed in extra]
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


# --- table and figure ---


def mean_curve(rows: list[dict], name: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean over seeds) of a curve."""
    sel = select(rows, method=name, metric=metric)
    steps = sorted({r["step"] for r in sel if "step" in r})
    return np.array(steps, float), np.array([np.mean([r["value"] for r in sel if r.get("step") == s]) for s in steps])


def table(rows: list[dict], cfg: Config) -> str:
    from reprozoo.common.results import mean_ci95

    cols = [
        ("winrate_peak", "win-rate peak"),
        ("winrate_final", "win-rate final"),
        ("gold_peak", "gold peak"),
        ("gold_final", "gold final"),
        ("proxy_final", "proxy final"),
        ("kl_final", "KL final"),
        ("features_final", "feature tokens final"),
    ]
    lines = ["| run | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name in cfg.runs:
        cells = []
        for metric, _ in cols:
            v = [r["value"] for r in select(rows, method=name, metric=metric)]
            m, h = mean_ci95(v)
            cells.append(f"{m:.2f} ± {h:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    import matplotlib.pyplot as plt

    from reprozoo.common.results import mean_ci95

    fig, ax = plt.subplots(1, 4, figsize=(20, 4.4))
    methods = [r for r in cfg.runs if r in METHODS] or cfg.runs
    for i, name in enumerate(methods):
        style = {"color": f"C{i}", "lw": 2.5 if name == "par" else 1.2, "label": name}
        ax[0].plot(*mean_curve(rows, name, "winrate"), **style)
        ax[1].plot(*mean_curve(rows, name, "proxy"), **style)
        ax[2].plot(*mean_curve(rows, name, "gold"), **style)
    ax[0].axhline(0.5, color="k", lw=0.6, ls=":")
    ax[0].set(xlabel="PPO iteration", ylabel="gold win-rate vs SFT", title="win-rate (mean over seeds)")
    ax[1].set(xlabel="PPO iteration", ylabel="proxy reward", title="proxy reward (the vanilla proxy)")
    ax[2].set(xlabel="PPO iteration", ylabel="gold reward", title="gold reward")
    names = cfg.runs
    stats = [mean_ci95([r["value"] for r in select(rows, method=n, metric="winrate_final")]) for n in names]
    ax[3].bar(range(len(names)), [s[0] for s in stats], yerr=[s[1] for s in stats], capsize=3, color="C7")
    ax[3].axhline(0.5, color="k", lw=0.6, ls=":")
    ax[3].set_xticks(range(len(names)), names, rotation=60, fontsize=8)
    ax[3].set(ylabel="final win-rate vs SFT", title="final win-rate (mean ± 95% CI)")
    for a in ax[:3]:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
