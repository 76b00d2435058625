"""Evaluation of a policy on the training and on harder, unseen difficulties with the world's evaluation decoding
(T = 0.7, top-p 0.95), scored by the exact verifier and the world's trace analysis. `cfg` is an `experiment.Config`.
"""

from __future__ import annotations

import numpy as np
import torch

from reprozoo.common.results import record
from reprozoo.common.worlds.reasoning import Problem, ReasoningWorld, summarise

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


def evaluate(world: ReasoningWorld, policy, cfg, seed: int, method: str) -> list[dict]:
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
