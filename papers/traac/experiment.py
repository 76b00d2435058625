"""The headline experiment on the reasoning world (v3 as the premise world, v2 as TRAAC's control): GRPO from the
SFT'd base model with each method's reward and compression, evaluated on the training difficulties and on harder,
unseen ones.

Per seed and trained method: `iterations` GRPO steps of `prompts_per_step` prompts × `group_size` rollouts sampled
by the current policy at temperature 1, top-p 1; TRAAC compresses the correct, well-formatted rollouts (frozen base
model as the attention scorer, as the official code), regenerates their answers, pools original and compressed
rollouts per prompt and keeps `group_size`; the policy takes `minibatches` clip-higher GRPO steps with a k3 KL loss
to the base model. Then every method answers the same evaluation problems with the world's evaluation decoding
(T = 0.7, top-p 0.95), scored by the exact verifier and the world's trace analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from reprozoo.common import checkpoint
from reprozoo.common.config import RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.worlds.reasoning import ReasoningWorld, build_world, world_config
from reprozoo.papers.traac.baselines import METHODS, VARIANTS
from reprozoo.papers.traac.compression import SCORER_INPUTS
from reprozoo.papers.traac.evaluation import evaluate
from reprozoo.papers.traac.premise import premise
from reprozoo.papers.traac.training import train

WORLDS = ("v3", "v3.1", "v3.3", "v3.4", "premise", "control", "v3-control", "v3.1-control", "v3.3-v2", "v3.4-v2")
WORLDS += ("smoke", "v3-smoke", "sink-smoke")


@dataclass
class Config(RunConfig):
    """TRAAC (Singh et al. 2025) on the reasoning world: adaptive, attentive compression RL vs length-penalty RL."""

    world: str = "v3"
    """Reasoning world: v3 (TRAAC's premise world), premise (v2: TRAAC's control, END needs only the last step and
    the loops restate it), control (v2 without ReBalance's premises), v3-control, v3.1 / v3.1-control (ReBalance's
    worlds: hesitant loops say WAIT; TRAAC's premise measured there, README "Findings: world v3.1"), v3.3 / v3.4 and
    their v2 controls v3.3-v2 / v3.4-v2 (v3 with a BOS first token and the SFT options under which sinks form,
    world README "World v3.3"), smoke, v3-smoke or sink-smoke (seconds)."""
    model: str = "world"
    """"world" (the reasoning world's SFT'd tiny LM) or a Hugging Face name loaded with from_pretrained (full)."""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """Methods compared: base, grpo, length_penalty, traac, no_difficulty, no_compression, confidence."""
    train_ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8])
    """Difficulties of the RL prompts (the world's training difficulties)."""
    unseen_ks: list[int] = field(default_factory=lambda: [9, 10, 11, 12])
    """Harder difficulties evaluated only (never trained on)."""
    iterations: int = 30
    """GRPO steps per run (official: 2 epochs of its prompt set)."""
    prompts_per_step: int = 16
    """Prompts per GRPO step (official: 8)."""
    group_size: int = 8
    """Rollouts per prompt, n (official: 8)."""
    minibatches: int = 2
    """Optimiser steps per GRPO step (official: mini-batch 4 of 8 prompts → 2)."""
    lr: float = 1e-4
    """Adam learning rate (official: 1e-6 for Qwen3-4B; a tiny model needs a larger step)."""
    beta: float = 0.001
    """k3 KL-loss coefficient to the base model (official: 0.001, low_var_kl)."""
    clip_low: float = 0.2
    """PPO clip ε_low (official: 0.2)."""
    clip_high: float = 0.28
    """PPO clip ε_high, clip-higher (official: 0.28)."""
    grad_clip: float = 1.0
    """Gradient-norm clip (verl's default: 1.0)."""
    rollout_temperature: float = 1.0
    """Training rollouts' temperature (exploration; official: 1.0)."""
    rollout_top_p: float = 1.0
    """Training rollouts' nucleus mass (official: 1.0)."""
    history_batches: int = 10
    """L_norm uses the correct lengths of the last this-many batches per bucket (official: 10)."""
    scorer: str = "base"
    """Attention scorer: base (the frozen initial model, as the official code) or policy (the current policy)."""
    control_world: str | None = "premise"
    """TRAAC's control world (v2: END needs only the last step and the loops restate it), where the premise is
    measured on its base model beside the main world's (records `method="control-premise"`); None: not measured."""
    scorer_input: str = "official"
    """What the scorer reads: official (THINK + thinking + END, no question, as the official host) or project
    (prompt + thinking + END, the v2 reproduction's input)."""
    n_per_k: int = 100
    """Evaluation problems per difficulty and seed."""
    eval_temperature: float = 0.7
    """Evaluation decoding temperature (the world's evaluation decoding)."""
    eval_top_p: float = 0.95
    """Evaluation nucleus mass."""

    def validate(self) -> None:
        super().validate()
        ensure(self.world in WORLDS, "world", f"choose one of {WORLDS}")
        ensure(self.control_world in (*WORLDS, None), "control_world", f"choose one of {WORLDS} or None")
        bad = [m for m in self.methods if m not in METHODS]
        ensure(not bad, "methods", f"unknown {bad}; choose from {METHODS}")
        ensure("base" in self.methods, "methods", "must include base (alone: the premise presets)")
        ensure(self.scorer_input in SCORER_INPUTS, "scorer_input", f"choose one of {SCORER_INPUTS}")
        check_positive(self, "train_ks", "iterations", "prompts_per_step", "group_size", "minibatches", "lr")
        check_positive(self, "history_batches", "n_per_k", "eval_temperature", "rollout_temperature", "grad_clip")
        check_fraction(self, "rollout_top_p", "eval_top_p", upper_open=False)
        ensure(self.group_size >= 2, "group_size", f"GRPO needs >= 2 rollouts per prompt, got {self.group_size}")
        ensure(self.prompts_per_step % self.minibatches == 0, "minibatches", "must divide prompts_per_step")
        ensure(self.beta >= 0 and 0 < self.clip_low < 1 and self.clip_high > 0, "beta", "beta >= 0, clips in (0, 1)")
        ensure(self.scorer in ("base", "policy"), "scorer", f"choose base or policy, got {self.scorer!r}")
        k_max = world_config(self.world).k_max
        ensure(max(self.train_ks + self.unseen_ks) <= k_max, "unseen_ks", f"difficulties must be <= k_max={k_max}")


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        world="v3-smoke",
        control_world="smoke",
        methods=["base", "grpo", "traac"],
        train_ks=[1, 3],
        unseen_ks=[5],
        iterations=2,
        prompts_per_step=4,
        group_size=4,
        n_per_k=6,
    ),
    "quick": Config(preset="quick", seeds=3),
    # Paper scale (official scripts/train/run_qwen3-4b-with-summary-linear-reward-attention.sh): Qwen/Qwen3-4B,
    # 8 prompts × 8 rollouts, mini-batch 4, lr 1e-6, clip 0.2 / 0.28, KL loss 0.001 (low_var_kl), 2 epochs of
    # DAPO-Math, max response 10,000 tokens; evaluation on AIME / AMC / GPQA-D / BBEH.
    "full": Config(
        preset="full", seeds=3, model="Qwen/Qwen3-4B", prompts_per_step=8, group_size=8, lr=1e-6, iterations=2000
    ),
}


# --------------------------------------------------------------------------- the run


def run(cfg: Config) -> list[dict]:
    if cfg.model != "world":
        from reprozoo.common.lm import pretrained

        pretrained(cfg.model)  # the full preset's model and tokenizer; its math data and step splitter are not here
        raise SystemExit(
            f"--model {cfg.model}: the paper-scale run needs DAPO-Math prompts, a math verifier and the official "
            "discourse-marker step splitter, which this repository does not ship; use the reasoning world"
        )
    world = build_world(world_config(cfg.world), verbose=True)
    control = build_world(world_config(cfg.control_world), verbose=True) if cfg.control_world else None
    rows: list[dict] = []
    for seed in cfg.seed_list():  # checkpointed units (--resume): the base model per seed, each method × seed
        rows += checkpoint.unit(("base", seed), partial(base_rows, world, cfg, seed))
        if control is not None:
            rows += checkpoint.unit(("control", seed), partial(premise, control, cfg, seed, "control-premise"))
        for method in cfg.methods:
            if VARIANTS[method] is not None:
                rows += checkpoint.unit((method, seed), partial(method_rows, world, cfg, seed, method))
    return rows


def base_rows(world: ReasoningWorld, cfg: Config, seed: int) -> list[dict]:
    """The premise and the base model's evaluation for one seed."""
    return premise(world, cfg, seed) + evaluate(world, world.model, cfg, seed, "base")


def method_rows(world: ReasoningWorld, cfg: Config, seed: int, method: str) -> list[dict]:
    """One method × seed: GRPO training curves and the trained policy's evaluation."""
    policy, curves = train(world, VARIANTS[method], cfg, seed, method)
    return curves + evaluate(world, policy, cfg, seed, method)
