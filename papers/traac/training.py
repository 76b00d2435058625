"""GRPO with TRAAC's adaptive, attentive compression (and the baselines' rewards): per step, rollouts sampled by the
current policy, the correct well-formatted ones compressed and pooled per prompt, each response rewarded, and
`minibatches` clip-higher GRPO steps with a k3 KL loss to the base model. `cfg` is an `experiment.Config`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.lm import response_logprobs
from reprozoo.common.policy import response_mask
from reprozoo.common.progress import track
from reprozoo.common.results import record
from reprozoo.common.rl import grpo_advantages, grpo_loss
from reprozoo.common.worlds.reasoning import Problem, ReasoningWorld, verify
from reprozoo.papers.traac import method as M
from reprozoo.papers.traac.baselines import Variant, correctness_reward, length_penalty_reward
from reprozoo.papers.traac.compression import compress_rollouts, format_flags, regenerate_answers

# --------------------------------------------------------------------------- rollouts and rewards


@dataclass
class Batch:
    problems: list[Problem]  # one per response, grouped by prompt (group_size consecutive rows)
    responses: torch.Tensor  # (B·n, T)
    buckets: list[str]  # per response: its prompt's difficulty bucket
    n_compressed: int
    n_eligible: int
    compressed: list[bool]  # per response: a compressed rollout (pooled in)


def collect(world: ReasoningWorld, policy, scorer, variant: Variant, cfg, seed: int, it: int) -> Batch:
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


def train(world: ReasoningWorld, variant: Variant, cfg, seed: int, method: str) -> tuple[torch.nn.Module, list]:
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
