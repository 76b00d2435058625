"""The headline experiment: Flow-GRPO against GRPO-Guard on the generative digits world (SD3 runs: `full.py`).

Per run (method, reward, clip range, updates per batch, seed): start from the cached base DiT; each epoch samples
`prompts_per_epoch` classes × `group` images with the Flow-GRPO SDE (η = 0.7, `steps` SD3 sigmas with shift 3),
scores the final images with the reward (the proxy margin, or the gold RM in the control), computes per-prompt
advantages, shuffles the rollouts into `minibatches` and takes one AdamW step per minibatch over the trained denoising
steps (0 .. ⌊steps·timestep_fraction⌋ − 1). Minibatches after the first are off-policy; on them, per denoising step,
the ratio used by the loss (ρ, or ρ̃ under RatioNorm) is logged: mean, std, quantiles, and the clip fractions split by
the sign of A (rows with `step` = the denoising step). Every `eval_every` epochs a fixed set of
`eval_per_class` × 10 fixed-noise ODE samples is scored with the proxy and the gold measures (realism, diversity,
gold RM); those rows have `step` = the epoch.

Runs (`kind`, `plan`): `main` (every method in `methods`, all seeds, clip `clip`, `minibatches` = the official 2),
the variants `lever8` (8 optimiser steps per rollout batch, v1's main setting) and `other_clip` (Flow-GRPO β = 0 and
GRPO-Guard at the other pre-registered clip range), `ablation` (RatioNorm without reweighting), the isolation arms
`iso_eps` (Guard whose per-step ε on ρ̃ equals Flow-GRPO's band on log ρ) and `iso_kl` (Flow-GRPO with β × kl_scale),
and the controls `gold_reward` (reward = gold RM) and `on_policy` (one update per rollout batch, ρ ≡ 1).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.device import torch_device
from reprozoo.common.progress import track
from reprozoo.common.results import record
from reprozoo.common.seeding import seed_everything
from reprozoo.papers.grpo_guard.baselines import group_advantages
from reprozoo.papers.grpo_guard.method import GUARDED, RatioLog, sde_std, step_loss
from reprozoo.papers.grpo_guard.sampling import evaluate, rollout, sigmas, transition_logprobs
from reprozoo.papers.grpo_guard.world import N_CLASSES, World, WorldConfig, build_world, diversity, realism_loo

METHODS = ("flow_grpo", "flow_grpo_kl", "grpo_guard", "ratio_norm")
D_PAPER = 16 * 64 * 64  # SD3.5-M latent dimensions at 512 px (16 channels × 64 × 64)
EPS_OFFICIAL = {"flow": 1e-4, "guard": 2e-6}  # config/grpo.py general_ocr_sd3, config/grpo_guard.py (OCR)
KINDS = ("main", "lever8", "other_clip", "ablation", "iso_eps", "iso_kl", "gold_reward", "on_policy")
REWARD_SCALE = {"pickscore": 26.0, "clipscore": 100.0}  # SD3 rewards: CLIP logit / scale (flow_grpo rewards.py)
REWARDS = tuple(REWARD_SCALE)


@dataclass
class Config(RunConfig):
    """GRPO-Guard (Wang et al. 2025) vs Flow-GRPO on a generative digits world (class-conditional DiT, diffusers)."""

    model: str = "world"
    """"world" (the world's rectified-flow DiT) or an SD3 pipeline (hub id or save_pretrained folder) trained with
    LoRA on text prompts by `full.py` (the full preset: stabilityai/stable-diffusion-3.5-medium)."""
    image_size: int = 8
    """Image side: 8 (64 latent dims) or 16 (256 dims, the "more dimensions" lever; 3.5× slower)."""
    base_steps: int = 600
    """AdamW steps of the world's base-model pre-training (cached)."""
    methods: list[str] = field(default_factory=lambda: ["flow_grpo", "flow_grpo_kl", "grpo_guard"])
    """Main-run methods: flow_grpo (β = 0), flow_grpo_kl (β = kl_beta), grpo_guard, ratio_norm (ablation)."""
    clip: str = "matched"
    """Clip range of the main runs: official (ε = 1e-4 Flow-GRPO, 2e-6 Guard) or matched (× √(D_paper / D))."""
    other_clip_seeds: int = 3
    """Seeds of Flow-GRPO β = 0 and GRPO-Guard at the other clip range (0: skip)."""
    ablation_seeds: int = 3
    """Seeds of the RatioNorm-only ablation (0: skip)."""
    control_seeds: int = 2
    """Seeds of each control (gold-RM reward; one update per batch), Flow-GRPO β = 0 and Guard (0: skip)."""
    epochs: int = 20
    """Rollout/update epochs per main run."""
    control_epochs: int = 12
    """Epochs per run of the other clip range, the ablation and the controls (the one-update control runs
    `minibatches` times as many epochs of prompts/minibatches prompts each: the same updates and samples)."""
    prompts_per_epoch: int = 8
    """Classes (world) or text prompts (SD3) per epoch, drawn without replacement (official: 48 per epoch)."""
    group: int = 16
    """Images per prompt (official: 24)."""
    minibatches: int = 8
    """Optimiser steps per rollout batch; all after the first are off-policy (official: 2)."""
    steps: int = 10
    """Denoising steps of training rollouts and evaluation (official: 10 for training, 40 for evaluation)."""
    timestep_fraction: float = 0.99
    """Trained steps = ⌊steps·fraction⌋ (official 0.99: steps 0-8 of 10, the last step is not trained)."""
    eta: float = 0.7
    """SDE noise level η (official: 0.7)."""
    shift: float = 3.0
    """Scheduler sigma shift (SD3: 3)."""
    lr: float = 3e-4
    """AdamW learning rate, full fine-tuning (official: 1e-4 with LoRA r 32 for Guard, 3e-4 for Flow-GRPO OCR)."""
    weight_decay: float = 1e-4
    """AdamW weight decay (official: 1e-4)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip (official: 1.0)."""
    adv_clip: float = 5.0
    """Advantage clip (official: 5)."""
    kl_beta: float = 0.04
    """β of flow_grpo_kl (official OCR: 0.04)."""
    eval_every: int = 3
    """Epochs between fixed-noise ODE evaluations (epoch 0 and the last are always evaluated)."""
    eval_per_class: int = 16
    """Evaluation samples per class (fixed noise, identical for every run)."""
    ratio_norm_bias: str = "sample"
    """RatioNorm's bias b: sample (one b per sample, the paper) or batch (one scalar per minibatch: the official
    code's `mean(dim=())` reduction)."""
    kl_scale: float = 32.0
    """β multiplier of the `iso_kl` arm: √(D_paper / D) = 32 at 8×8 (the dimension matching the ε uses)."""
    lever_seeds: int = 2
    """Seeds of the 8-updates-per-rollout-batch lever (v1's main setting), Flow-GRPO β = 0 and Guard (0: skip)."""
    isolation_seeds: int = 5
    """Seeds of the isolation arms: Guard with Flow-GRPO's clip band (ε_j = ε_flow·s̄_j) and KL with β × kl_scale."""
    # --- SD3 (`full.py`): used when model is not "world"
    prompts: str = ""
    """SD3 training prompts: a .txt file (one prompt a line, as flow_grpo's dataset/*/train.txt), or a dataset
    (hub id[:config], save_to_disk folder, .jsonl/.json/.csv/.parquet) with a `prompt_column` column."""
    prompt_column: str = "prompt"
    """Column of the prompt text when --prompts is a dataset."""
    max_samples: int = 0
    """Use only the first N prompts of --prompts (0: all)."""
    max_steps: int = 0
    """Stop each SD3 run after this many optimiser steps (0: epochs × minibatches)."""
    reward: str = "pickscore"
    """SD3 reward: pickscore (logit_scale·cos(text, image)/26, flow_grpo's scale) or clipscore (the same CLIP-type
    model's logit/100); the model comes from --reward-model."""
    reward_model: str = "yuvalkirstain/PickScore_v1"
    """CLIP-type reward model (hub id or save_pretrained folder): PickScore_v1, or openai/clip-vit-large-patch14 for
    clipscore."""
    reward_tokenizer: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    """Tokenizer of the reward model (PickScore uses CLIP-ViT-H's); empty: the --reward-model folder's own."""
    resolution: int = 512
    """SD3 image side in pixels (official 512)."""
    guidance_scale: float = 4.5
    """Classifier-free guidance of SD3 rollouts, training forwards and evaluation (official 4.5; 1: off)."""
    eval_steps: int = 40
    """ODE steps of the SD3 evaluation (official 40)."""
    eval_prompts: int = 16
    """SD3 evaluation: the first N prompts of --prompts, one fixed-noise image each, scored by the reward."""
    lora_rank: int = 32
    """LoRA rank on the SD3 attention projections (official 32)."""
    lora_alpha: int = 64
    """LoRA α (official 64)."""
    sample_batch: int = 8
    """SD3 images per rollout forward (memory; official 9 per GPU)."""
    train_batch: int = 4
    """SD3 samples per training forward; a minibatch accumulates its micro-batches (memory)."""
    mixed_precision: str = "bf16"
    """accelerate mixed precision of SD3 runs: bf16 (frozen weights in bf16, LoRA weights fp32), fp16 or no."""
    threads: int = 1
    """torch CPU threads (1: the DiT's matrices are small; a second thread only thrashes on a shared 2-core CPU)."""
    device: str = "cpu"
    """Torch device: cpu, cuda or auto."""

    def validate(self) -> None:
        super().validate()
        check_positive(self, "base_steps", "epochs", "control_epochs", "prompts_per_epoch", "group", "minibatches")
        check_positive(self, "steps", "kl_scale", "resolution", "eval_steps", "eval_prompts", "lora_rank")
        check_positive(self, "lora_alpha", "sample_batch", "train_batch", "guidance_scale")
        check_positive(self, "eta", "shift", "lr", "max_grad_norm", "adv_clip", "eval_every", "eval_per_class")
        check_positive(self, "threads")
        ensure(self.image_size in (8, 16), "image_size", f"must be 8 or 16, got {self.image_size}")
        bad = [m for m in self.methods if m not in METHODS]
        ensure(not bad and self.methods, "methods", f"must be a non-empty subset of {METHODS}, got {self.methods}")
        ensure(self.clip in ("official", "matched"), "clip", f"must be official or matched, got {self.clip!r}")
        names = ("other_clip_seeds", "ablation_seeds", "control_seeds", "lever_seeds", "isolation_seeds")
        for name in (*names, "weight_decay", "kl_beta", "max_samples", "max_steps"):
            ensure(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        bias = self.ratio_norm_bias
        ensure(bias in ("sample", "batch"), "ratio_norm_bias", f"must be sample or batch, got {bias!r}")
        if self.model == "world":
            n = self.prompts_per_epoch
            ensure(n <= N_CLASSES, "prompts_per_epoch", f"must be <= {N_CLASSES} classes, got {n}")
        else:
            ensure(bool(self.prompts), "prompts", "an SD3 run needs text prompts: a .txt file or a dataset")
            ensure(self.reward in REWARDS, "reward", f"must be one of {sorted(REWARDS)}, got {self.reward!r}")
            mp = self.mixed_precision
            ensure(mp in ("bf16", "fp16", "no"), "mixed_precision", f"must be bf16, fp16 or no, got {mp!r}")
            ensure(self.resolution % 16 == 0, "resolution", f"must be a multiple of 16, got {self.resolution}")
        ensure(self.group >= 2, "group", f"must be >= 2 (advantages need a group), got {self.group}")
        ensure(
            self.minibatches <= self.prompts_per_epoch * self.group,
            "minibatches",
            f"must be <= prompts_per_epoch × group = {self.prompts_per_epoch * self.group}, got {self.minibatches}",
        )
        ensure(
            self.control_epochs <= self.epochs and self.control_epochs % self.eval_every == 0,
            "control_epochs",
            f"must be <= epochs and a multiple of eval_every (claim 7 reads them): {self.control_epochs}",
        )
        check_fraction(self, "timestep_fraction", upper_open=False)
        ensure(self.trained_steps() >= 1, "timestep_fraction", "trains no denoising step")
        ensure(self.steps >= 2, "steps", f"must be >= 2, got {self.steps}")
        ensure(self.device in ("cpu", "cuda", "auto"), "device", f"must be cpu, cuda or auto, got {self.device!r}")

    def trained_steps(self) -> int:
        return int(self.steps * self.timestep_fraction)

    def dims(self) -> int:
        """Latent dimensions: image_size² (world) or SD3's 16 channels × (resolution / 8)²."""
        return self.image_size**2 if self.model == "world" else 16 * (self.resolution // 8) ** 2

    def eps(self, method: str, clip: str) -> float:
        """ε of `method` at clip range `clip`; matched = official × √(D_paper / D) (the ratio's spread ∝ 1/√D)."""
        eps = EPS_OFFICIAL["guard" if method in GUARDED else "flow"]
        return eps if clip == "official" else eps * math.sqrt(D_PAPER / self.dims())

    def world(self) -> WorldConfig:
        return WorldConfig(image_size=self.image_size, train_steps=self.base_steps)


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        base_steps=20,
        methods=["flow_grpo", "grpo_guard"],
        other_clip_seeds=1,
        ablation_seeds=1,
        control_seeds=1,
        lever_seeds=1,
        isolation_seeds=1,
        epochs=2,
        control_epochs=1,
        prompts_per_epoch=2,
        group=4,
        minibatches=2,
        steps=4,
        eval_every=1,
        eval_per_class=2,
        threads=1,
    ),
    # issue 35: the official 2 optimiser steps per rollout batch; 10 main seeds (the diversity effect's power),
    # Flow-GRPO's KL only as the β-scaled isolation arm (v1: β = 0.04 is inert at D = 64); the other arms trimmed to
    # fit 15 minutes on 2 cores (about 750 epochs of about 1 s)
    "quick": Config(
        preset="quick",
        seeds=10,
        methods=["flow_grpo", "grpo_guard"],
        minibatches=2,
        other_clip_seeds=2,
        ablation_seeds=4,
        lever_seeds=2,
        isolation_seeds=4,
        control_seeds=2,
    ),
    # The official GRPO-Guard run (config/grpo_guard.py over config/base.py; full.py): SD3.5-M with LoRA r = 32,
    # α = 64 on the attention projections, 512 px, 10 training / 40 evaluation steps, CFG 4.5, η = 0.7, 24 images per
    # prompt, 48 prompts per epoch, 2 optimiser steps per epoch, timestep_fraction 0.99, ε = 2e-6 (Flow-GRPO: 1e-4,
    # β = 0.04), AdamW lr 1e-4, wd 1e-4, grad clip 1.0, adv clip 5. Not reproduced: EMA 0.9 every 8 steps, fp16
    # (bf16 here), OCR / GenEval rewards (PickScore here). Needs --prompts.
    "full": Config(
        preset="full",
        seeds=1,
        model="stabilityai/stable-diffusion-3.5-medium",
        methods=["flow_grpo", "grpo_guard"],
        clip="official",
        other_clip_seeds=0,
        ablation_seeds=0,
        control_seeds=0,
        lever_seeds=0,
        isolation_seeds=0,
        epochs=1000,
        control_epochs=1000,
        prompts_per_epoch=48,
        group=24,
        minibatches=2,
        steps=10,
        lr=1e-4,
        eval_every=50,
        device="auto",
    ),
}


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Run:
    kind: str
    method: str
    clip: str  # official | matched | flow_band (Guard: ε_j = Flow-GRPO's matched ε × s̄_j)
    reward: str  # proxy | gold
    minibatches: int
    epochs: int
    seed: int
    prompts: int  # classes per epoch
    group: int  # images per class
    eval_every: int  # epochs between evaluations
    beta: float = 0.0  # KL weight (flow_grpo_kl only)


def plan(cfg: Config) -> list[Run]:
    """Every run of the preset, in order: main (cfg.minibatches optimiser steps per rollout batch: the official 2),
    the variants (8 steps per batch: v1's lever; the other clip range), the ablation, the isolation arms (Guard with
    Flow-GRPO's clip band; KL with β × kl_scale), the controls (gold RM as reward; one update per rollout batch on
    the whole batch, so ρ ≡ 1 and only the per-step weighting differs)."""
    other = "official" if cfg.clip == "matched" else "matched"
    mb, ce, p, g, ev = cfg.minibatches, cfg.control_epochs, cfg.prompts_per_epoch, cfg.group, cfg.eval_every
    beta = {"flow_grpo_kl": cfg.kl_beta}

    def seeds(n: int) -> range:  # every arm's seeds start at first_seed: its runs pair with the main runs by seed
        return range(cfg.first_seed, cfg.first_seed + n)

    runs = [
        Run("main", m, cfg.clip, "proxy", mb, cfg.epochs, s, p, g, ev, beta.get(m, 0.0))
        for s in cfg.seed_list()
        for m in cfg.methods
    ]
    for s in seeds(cfg.lever_seeds):
        runs += [Run("lever8", m, cfg.clip, "proxy", 8, ce, s, p, g, ev) for m in ("flow_grpo", "grpo_guard")]
    for s in seeds(cfg.other_clip_seeds):
        runs += [Run("other_clip", m, other, "proxy", mb, ce, s, p, g, ev) for m in ("flow_grpo", "grpo_guard")]
    runs += [Run("ablation", "ratio_norm", cfg.clip, "proxy", mb, ce, s, p, g, ev) for s in seeds(cfg.ablation_seeds)]
    for s in seeds(cfg.isolation_seeds):
        runs.append(Run("iso_eps", "grpo_guard", "flow_band", "proxy", mb, ce, s, p, g, ev))
        kl = cfg.kl_beta * cfg.kl_scale
        runs.append(Run("iso_kl", "flow_grpo_kl", cfg.clip, "proxy", mb, ce, s, p, g, ev, kl))
    for s in seeds(cfg.control_seeds):
        runs += [Run("gold_reward", m, cfg.clip, "gold", mb, ce, s, p, g, ev) for m in ("flow_grpo", "grpo_guard")]
        runs += [Run("on_policy", m, cfg.clip, "proxy", 1, ce, s, p, g, ev) for m in ("flow_grpo", "grpo_guard")]
    return runs


def step_eps(cfg: Config, method: str, clip: str, sig: torch.Tensor) -> list[float]:
    """ε of each trained denoising step. `flow_band` (Guard only): ε_j = ε_flow·s̄_j with s̄_j = √−dt_j·σ_t,j, the
    band on ρ̃ = exp(s̄(log ρ + b)) that equals Flow-GRPO's band ±ε_flow on log ρ (up to the centring b)."""
    t = cfg.trained_steps()
    if clip != "flow_band":
        return [cfg.eps(method, clip)] * t
    std = sde_std(sig[:t], float(sig[1]), cfg.eta)
    s_bar = std * torch.sqrt(sig[:t] - sig[1 : t + 1])
    return [cfg.eps("flow_grpo", cfg.clip) * float(v) for v in s_bar]


def train_run(world: World, run: Run, cfg: Config, eval_set, sig, device) -> list[dict]:
    """One GRPO run; returns its records (curves with `step` = epoch, final values, per-step ratio statistics)."""
    seed_everything(run.seed)
    gen = torch.Generator().manual_seed(10_000 + run.seed)
    policy = copy.deepcopy(world.model).to(device).eval()  # eval: no label dropout, so on-policy ρ = 1
    policy.requires_grad_(True)
    ref = world.model
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    reward_fn = world.proxy if run.reward == "proxy" else world.gold_rm
    eps = step_eps(cfg, run.method, run.clip, sig)
    t = cfg.trained_steps()
    tag = {"kind": run.kind, "clip": run.clip}
    rows: list[dict] = []
    ratios = RatioLog(t)

    def log_eval(epoch: int) -> None:
        for metric, value in evaluate(world, policy, eval_set, sig).items():
            rows.append(record(run.method, run.seed, metric, value, step=epoch, **tag))

    log_eval(0)
    for epoch in range(1, run.epochs + 1):
        classes = torch.randperm(N_CLASSES, generator=gen)[: run.prompts]
        labels = classes.repeat_interleave(run.group)
        lat, logp_old, mean_old = rollout(policy, labels, sig, cfg.image_size, cfg.eta, gen)
        rewards = reward_fn(lat[:, -1].clamp(-1, 1), labels)
        rows.append(record(run.method, run.seed, "train_reward", float(rewards.mean()), step=epoch, **tag))
        adv = group_advantages(rewards, labels, cfg.adv_clip)
        perm = torch.randperm(len(labels), generator=gen)
        for i, idx in enumerate(perm.chunk(run.minibatches)):
            old = {"logp": logp_old[idx], "mean": mean_old[idx]}
            new = transition_logprobs(policy, lat[idx], labels[idx], sig, cfg.eta, t)
            if run.method == "flow_grpo_kl":
                with torch.no_grad():
                    new["mean_ref"] = transition_logprobs(ref, lat[idx], labels[idx], sig, cfg.eta, t)["mean"]
            losses = []
            for j in range(t):
                at_j = {k: v[:, j] for k, v in new.items()}
                old_j = {k: v[:, j] for k, v in old.items()}
                loss, ratio = step_loss(run.method, at_j, old_j, adv[idx], eps[j], run.beta, cfg.ratio_norm_bias)
                losses.append(loss)
                if i > 0:  # off-policy minibatch: the ratio's per-step distribution and clipping by sign of A
                    ratios.add(j, ratio.detach(), adv[idx], eps[j])
            opt.zero_grad()
            torch.stack(losses).mean().backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            opt.step()
        if epoch % run.eval_every == 0 or epoch == run.epochs:
            log_eval(epoch)
    for j, stats in ratios.stats():  # a curve over the denoising step (drawn in the figure, not aggregated)
        rows += [record(run.method, run.seed, metric, value, step=j, **tag) for metric, value in stats.items()]
    last = {r["metric"]: r["value"] for r in rows if r.get("step") == run.epochs and r["metric"] != "train_reward"}
    rows += [record(run.method, run.seed, f"final_{m}", v, **tag) for m, v in last.items()]
    return rows


def eval_set(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed evaluation labels and noise (the same for every run: paired comparisons)."""
    gen = torch.Generator().manual_seed(12345)
    labels = torch.arange(N_CLASSES).repeat_interleave(cfg.eval_per_class)
    return labels, torch.randn(len(labels), 1, cfg.image_size, cfg.image_size, generator=gen)


def run(cfg: Config) -> list[dict]:
    torch.set_num_threads(cfg.threads)
    device = torch_device(cfg.device)  # type: ignore[arg-type]
    world = build_world(cfg.world(), verbose=True)
    sig = sigmas(cfg.steps, cfg.shift)
    ev = eval_set(cfg)
    rows = [record("base", 0, "flow_loss_end", float(np.mean(world.losses[-20:])))]
    rows += [record("base", 0, f"base_{m}", v) for m, v in evaluate(world, world.model, ev, sig).items()]
    real = world.gold_x[: len(ev[0])]
    rows.append(record("real", 0, "real_realism_loo", realism_loo(world.gold_x)))
    rows.append(record("real", 0, "real_diversity", diversity(real, world.gold_y[: len(ev[0])])))
    for r in track(plan(cfg), description="grpo_guard runs"):  # checkpointed units (--resume)
        rows += checkpoint.unit((r.kind, r.method, r.clip, r.seed), partial(train_run, world, r, cfg, ev, sig, device))
    return rows
