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

import copy
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.lm import response_logprobs
from reprozoo.common.policy import response_mask
from reprozoo.common.progress import track
from reprozoo.common.results import record, select
from reprozoo.common.rl import grpo_advantages, grpo_loss
from reprozoo.common.worlds.reasoning import (
    Problem,
    ReasoningWorld,
    build_world,
    summarise,
    verify,
    world_config,
)
from reprozoo.papers.traac import method as M
from reprozoo.papers.traac.baselines import METHODS, VARIANTS, Variant, correctness_reward, length_penalty_reward
from reprozoo.papers.traac.compression import SCORER_INPUTS, compress_rollouts, format_flags, regenerate_answers
from reprozoo.papers.traac.premise import premise

WORLDS = ("v3", "premise", "control", "v3-control", "smoke", "v3-smoke")


@dataclass
class Config(RunConfig):
    """TRAAC (Singh et al. 2025) on the reasoning world: adaptive, attentive compression RL vs length-penalty RL."""

    world: str = "v3"
    """Reasoning world: v3 (TRAAC's premise world), premise (v2: TRAAC's control, END needs only the last step and
    the loops restate it), control (v2 without ReBalance's premises), v3-control, smoke or v3-smoke (seconds)."""
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


# --------------------------------------------------------------------------- rollouts and rewards


@dataclass
class Batch:
    problems: list[Problem]  # one per response, grouped by prompt (group_size consecutive rows)
    responses: torch.Tensor  # (B·n, T)
    buckets: list[str]  # per response: its prompt's difficulty bucket
    n_compressed: int
    n_eligible: int
    compressed: list[bool]  # per response: a compressed rollout (pooled in)


def collect(world: ReasoningWorld, policy, scorer, variant: Variant, cfg: Config, seed: int, it: int) -> Batch:
    """Rollouts of one GRPO step, compressed and pooled per prompt when the variant compresses."""
    n = cfg.group_size
    prompts = world.problems(cfg.prompts_per_step, cfg.train_ks, seed=1_000_003 * seed + it)
    rep = [p for p in prompts for _ in range(n)]
    gen = world.sample(
        rep, temperature=cfg.rollout_temperature, top_p=cfg.rollout_top_p, seed=7919 * seed + it, model=policy
    )
    tokens = gen.tokens
    rows = tokens.tolist()
    correct = [verify(p, r, world.v) for p, r in zip(rep, rows, strict=True)]
    pass_rates = [float(np.mean(correct[g * n : (g + 1) * n])) for g in range(len(prompts))]
    buckets = [M.difficulty_bucket(r) for r in pass_rates]
    if variant.compression is None:
        return Batch(rep, tokens, [b for b in buckets for _ in range(n)], 0, 0, [False] * len(rep))
    eligible = [i for i, r in enumerate(rows) if correct[i] and all(format_flags(r, world))]
    targets = [M.TARGET_REDUCTION[buckets[i // n]] if variant.difficulty else M.NO_DIFFICULTY_TARGET for i in eligible]
    compressed = compress_rollouts(
        world,
        [rep[i] for i in eligible],
        tokens[eligible],
        targets,
        scorer=scorer,
        kind=variant.compression,
        scorer_input=cfg.scorer_input,
    )
    by_group: dict[int, list[torch.Tensor]] = {}
    if compressed:
        origin = [eligible[c.row] for c in compressed]
        new = regenerate_answers(
            world,
            [rep[i] for i in origin],
            [c.thinking for c in compressed],
            policy,
            temperature=cfg.rollout_temperature,
            top_p=cfg.rollout_top_p,
            generator=torch.Generator().manual_seed(31 * seed + it),
        )
        for i, resp in zip(origin, new, strict=True):
            by_group.setdefault(i // n, []).append((resp, True))
    rng = np.random.default_rng([seed, it])
    pooled = []
    for g in range(len(prompts)):
        originals = [(tokens[g * n + j], False) for j in range(n)]
        pooled += M.pool(originals, by_group.get(g, []), n, rng)
    responses, flags = torch.stack([r for r, _ in pooled]), [c for _, c in pooled]
    return Batch(rep, responses, [b for b in buckets for _ in range(n)], len(compressed), len(eligible), flags)


def rewards(batch: Batch, variant: Variant, history: M.LengthHistory, world: ReasoningWorld) -> torch.Tensor:
    """Each response's reward; for TRAAC this batch's correct lengths join the bucket history first (official
    `sumLinear`); without difficulty the normaliser is the lengths of every response of this batch, correct or not,
    with no history (official `sumLinearNoDifficulty.py:242`)."""
    rows = batch.responses.tolist()
    lengths = response_mask(batch.responses, world.v.eos).sum(-1).tolist()
    correct = [verify(p, r, world.v) for p, r in zip(batch.problems, rows, strict=True)]
    flags = [format_flags(r, world, c) for r, c in zip(rows, batch.compressed, strict=True)]
    keys = batch.buckets
    if variant.reward == "traac" and not variant.difficulty:
        history = M.LengthHistory(1)
        history.add_batch({"all": [float(x) for x in lengths]})
        keys = ["all"] * len(rows)
    elif variant.reward == "traac":
        this_batch: dict[str, list[float]] = {k: [] for k in keys}
        for key, ok, length in zip(keys, correct, lengths, strict=True):
            if ok:
                this_batch[key].append(length)
        history.add_batch(this_batch)
    out = []
    for i in range(len(rows)):
        if variant.reward == "correct":
            out.append(correctness_reward(correct[i]))
        elif variant.reward == "length_penalty":
            out.append(length_penalty_reward(correct[i], *flags[i], lengths[i], world.cfg.max_new_tokens))
        else:
            l_norm = M.length_norm(lengths[i], history.lengths(keys[i]))
            out.append(M.traac_reward(correct[i], *flags[i], l_norm, batch.buckets[i] if variant.difficulty else None))
    return torch.tensor(out, dtype=torch.float32)


# --------------------------------------------------------------------------- training


def train(world: ReasoningWorld, variant: Variant, cfg: Config, seed: int, method: str) -> tuple[torch.nn.Module, list]:
    """GRPO from the base model; returns the trained policy and its training curves. With `--checkpoint-every N`
    the loop's state (policy, optimiser, length history, curves, RNG) is saved every N steps for `--resume`."""
    torch.manual_seed(seed)
    base = world.model
    policy = copy.deepcopy(base).train()
    scorer = base if cfg.scorer == "base" else policy
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    history = M.LengthHistory(cfg.history_batches)
    n, rows, start = cfg.group_size, [], 0
    state = checkpoint.steps(("train", method, seed))
    if (saved := state.load()) is not None:
        policy.load_state_dict(saved["policy"])
        opt.load_state_dict(saved["optim"])
        history, rows, start = saved["history"], saved["rows"], saved["step"]
    for it in track(range(start, cfg.iterations), f"{method} seed {seed}"):
        policy.eval()
        batch = collect(world, policy, scorer, variant, cfg, seed, it)
        r = rewards(batch, variant, history, world)
        adv = grpo_advantages(r.view(-1, n), eps=1e-6).flatten()
        prompts, _ = world.prompts(batch.problems)
        mask = response_mask(batch.responses, world.v.eos)
        with torch.no_grad():
            old = response_logprobs(policy, prompts, batch.responses)
            ref = response_logprobs(base, prompts, batch.responses) if cfg.beta else None
        policy.train()
        chunk = len(batch.problems) // cfg.minibatches
        for mb in range(cfg.minibatches):
            sl = slice(mb * chunk, (mb + 1) * chunk)
            logp = response_logprobs(policy, prompts[sl], batch.responses[sl])
            loss = grpo_loss(
                logp,
                old[sl],
                None if ref is None else ref[sl],
                adv[sl],
                mask[sl],
                clip=cfg.clip_low,
                clip_high=cfg.clip_high,
                beta=cfg.beta,
                aggregation="token",
            )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
            opt.step()
        rows += [
            record(method, seed, "train_reward", float(r.mean()), step=it),
            record(method, seed, "train_length", float(mask.sum(-1).mean()), step=it),
            record(method, seed, "compressed", batch.n_compressed, step=it),
            record(method, seed, "hard_bucket_share", float(np.mean([b == "hard" for b in batch.buckets])), step=it),
        ]
        state.save(it + 1, {"policy": policy.state_dict(), "optim": opt.state_dict(), "history": history, "rows": rows})
    return policy.eval(), rows


# --------------------------------------------------------------------------- premise


# --------------------------------------------------------------------------- evaluation


EVAL_METRICS = ("accuracy", "think_len", "underthink", "overthink", "redundant_tokens", "runaway", "think_len_finite")


def runaway_stats(problems: list[Problem], tokens: torch.Tensor, world: ReasoningWorld) -> dict[int, dict[str, float]]:
    """Per k: `runaway` = share of responses that hit the token budget (no EOS: the thinking or the answer was cut
    off), and `think_len_finite` = mean thinking tokens of the others (NaN if none), so that runaway loops are
    reported as such and not as length."""
    by_k: dict[int, list[tuple[bool, int]]] = {}
    for p, r in zip(problems, tokens.tolist(), strict=True):
        run = world.v.eos not in r
        think = r.index(world.v.end) if world.v.end in r else len(r)
        by_k.setdefault(p.k, []).append((run, think))
    out = {}
    for k, xs in by_k.items():
        finite = [t for run, t in xs if not run]
        out[k] = {
            "runaway": float(np.mean([run for run, _ in xs])),
            "think_len_finite": float(np.mean(finite)) if finite else float("nan"),
        }
    return out


def evaluate(world: ReasoningWorld, policy, cfg: Config, seed: int, method: str) -> list[dict]:
    """Per difficulty and per split (train / unseen difficulties): accuracy, thinking length, under- and
    over-thinking rates, redundant tokens (over-thinking's length), runaway responses (hit the budget) and the
    length of the others, on the same problems and sampling stream for every method."""
    out = []
    for split, ks in (("train", cfg.train_ks), ("unseen", cfg.unseen_ks)):
        if not ks:
            continue
        problems = [p for k in ks for p in world.problems(cfg.n_per_k, k, seed=50_000 + 100 * seed + k)]
        gen = world.sample(
            problems, temperature=cfg.eval_temperature, top_p=cfg.eval_top_p, seed=60_000 + seed, model=policy
        )
        per_k = summarise(problems, gen.tokens, world.v)
        for k, row in runaway_stats(problems, gen.tokens, world).items():
            per_k[k] |= row
        for k, row in per_k.items():
            out += [record(method, seed, m, row[m], split=split, k=k) for m in EVAL_METRICS]
        out += [
            record(method, seed, m, float(np.nanmean([per_k[k][m] for k in per_k])), split=split) for m in EVAL_METRICS
        ]
    return out


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


# --------------------------------------------------------------------------- figure and table


def mean_over_seeds(rows: list[dict], method: str, metric: str, **setting) -> float:
    vals = [r["value"] for r in select(rows, method=method, metric=metric, **setting) if "step" not in r]
    return float(np.mean(vals)) if vals else float("nan")


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Left: accuracy vs mean thinking length per method (training difficulties). Right: length vs difficulty."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in cfg.methods:
        x = mean_over_seeds(rows, method, "think_len", split="train")
        y = mean_over_seeds(rows, method, "accuracy", split="train")
        a.scatter(x, y, s=50)
        a.annotate(method, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ks = cfg.train_ks + cfg.unseen_ks
        lens = [mean_over_seeds(rows, method, "think_len", k=k) for k in ks]
        b.plot(ks, lens, marker="o", label=method, lw=2.2 if method == "traac" else 1.2)
    a.set(xlabel="mean thinking tokens (training k)", ylabel="accuracy (training k)", title="accuracy vs length")
    if cfg.unseen_ks:
        b.axvspan(min(cfg.unseen_ks) - 0.5, max(cfg.unseen_ks) + 0.5, color="0.92", label="unseen k")
    b.set(xlabel="difficulty k", ylabel="mean thinking tokens", title="length vs difficulty (adaptivity)")
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def table(rows: list[dict], cfg: Config) -> str:
    """Per method: accuracy, thinking length and under-thinking on the training and on the unseen difficulties."""
    cols = ["acc (train k)", "think len (train k)", "under-think (train k)", "acc (unseen k)", "think len (unseen k)"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in cfg.methods:
        v = [
            mean_over_seeds(rows, m, metric, split=split)
            for metric, split in (
                ("accuracy", "train"),
                ("think_len", "train"),
                ("underthink", "train"),
                ("accuracy", "unseen"),
                ("think_len", "unseen"),
            )
        ]
        lines.append(f"| {m} | {v[0]:.3f} | {v[1]:.1f} | {v[2]:.3f} | {v[3]:.3f} | {v[4]:.1f} |")
    return "\n".join(lines) + "\n"
