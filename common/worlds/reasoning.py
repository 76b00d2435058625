"""The reasoning world (v2 and v3): chains of k modular operations solved by a tiny LM that over- and under-thinks.

Problem (difficulty knob k = number of operations): a_0 op_1 a_1 … op_k a_k with a_i ∈ {0..M−1} and
op_i ∈ {+, −}; the partials are the left-to-right fold p_0 = a_0, p_i = (p_{i−1} op_i a_i) mod M. The answer is
p_k in v2 (`answer="last"`) and the floored mean ⌊(p_0 + … + p_k)/(k + 1)⌋ in v3 (`answer="mean"`, `V3`: every
chain step is needed, loops say CHECK, 4 layers; README_reasoning "World v3").

Tokens (`Vocab`): values 0..M−1, "[" (first slot), "+", "−", "," (slot separator), "_" (empty slot), THINK,
">" (plain-step marker), SEP ";" (step separator), WAIT and CHECK (reflection words), END (end of thinking), EOS, PAD.
- prompt   "[ a_0 ," then "op_i a_i ," for i = 1..k and "_ _ ," up to k_max, then THINK: every prompt has the same
           length, so step i of the thinking sits at a fixed distance from slot i
- thinking one segment per step, closed by END: chain steps "> p_i ;" or reflective steps "wait p_i ;" (i = 0..k,
           the same computation under a reflection word), then post-answer re-verification loops "check v ;" or
           "wait v ;"
- answer   one value token, then EOS.
The exact verifier (`verify`) accepts a response iff, after END, it is exactly "answer EOS".

The SFT corpus (`sample_trace`) is a stochastic process whose every choice depends only on what the prefix shows,
so the SFT'd model learns these conditional probabilities and its step confidence carries exactly the information
the process puts there. The papers' premises (ReBalance, TRAAC) are built into it, each with a switch-off
(`premise=False`, the **control world**):
1. Persistent, costly over-thinking. After step k a loop of re-verification segments starts with probability
   o(k) = p_loop · max(0, 1 − (k − 1)/loop_k_span) (easy and medium k, falling with k), capped at loop_cap segments.
2. Genuine hesitation inside loops (premise). A loop is hesitant with probability p_hesitant: "wait v ;" segments
   whose value is a near-miss p_k ± 1 with probability q_hesitant (corrected by a later segment), going on with
   probability r_hesitant; otherwise brisk: "check p_k ;" going on with r_brisk. So low confidence (spread values)
   marks the loops that go on. Control: "check p_k ;" segments going on with a flat r_flat.
3. Reflection decoupled from completion. Mid-chain reflective steps "wait p_i ;" compute the next partial under a
   reflection word and the chain goes on; reflection and premature END compete at the same boundaries, and neither
   happens right after a reflection.
4. Under-thinking tied to an over-confident streak (premise). After s plain steps in a row the next boundary
   reflects with ρ(s) = reflect_first · reflect_decay^(s−1) and ends the thinking prematurely with
   h(s) = min(hazard_max, hazard_slope · (s − 1)): the longer the confident streak, the less the model reflects and
   the more it jumps to an answer (the current partial, or a random guess). Control: flat ρ = reflect_flat and
   h = hazard_flat at every boundary.
The SFT'd base model therefore over-thinks (loops after the answer) on easy and medium problems and under-thinks on
long chains. `analyse` measures both: redundant steps = segments after the k + 1 chain steps, under-thinking = END
before step k. Reflective steps keep every chain step at a fixed distance from its prompt slot, so a tiny model learns
the arithmetic by a positional lookup (inserting extra re-check segments mid-chain broke that: accuracy 0.78 at k = 3).
Difficulties k_train = 1..8 are trained; prompts hold up to k_max = 12 (k > 8 unseen).

Generation: `ReasoningWorld.sample` (common.lm.generate: KV cache, last hidden states / attentions on request),
`rollout` (the same with a per-token callback and the max-probabilities, for step-level controllers such as
steering hooks) and `ReasoningWorld.states` (teacher-forced hidden states of every layer and attentions).
`step_table` lists every thinking step of sampled responses with its role, confidence and what follows it.
The SFT'd model is cached under `.cache/reasoning_world/<config hash>/`.

Demo (the world's properties, premise and control; it imports this module, never the reverse):
`python -m reprozoo.common.worlds.reasoning_demo --preset smoke|quick` writes `runs/reasoning_world/<preset>/`,
`--publish` the committed `results/reasoning_world/<preset>/` (see `common/worlds/reasoning_demo.py`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reprozoo.common.cache import OMIT_AT_DEFAULT, cache_root, config_hash, save_atomic
from reprozoo.common.lm import Generation, generate, positions, sft, tiny_lm
from reprozoo.common.policy import response_mask, sample_from_logits

# --------------------------------------------------------------------------- world definition


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a reasoning world (its hash keys the cache)."""

    premise: bool = True
    """True: the papers' premises are in the data (hesitation in loops, streak-driven truncation); False: the
    control world (no near-misses, flat loop continuation, flat reflection and truncation rates)."""
    modulus: int = 10
    """M: values and partial results live in {0..M−1}."""
    ops: tuple[str, ...] = ("+", "-")
    """Operations drawn for op_i."""
    k_train: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    """Difficulties (numbers of operations) in the SFT corpus."""
    k_max: int = 12
    """Largest difficulty the prompts support (k > max(k_train) are unseen)."""
    easy_max: int = 3
    """Reports call k ≤ easy_max easy."""
    hard_min: int = 4
    """Reports call k ≥ hard_min hard."""
    p_loop: float = 1.0
    """Loop onset probability after the chain at k = 1."""
    loop_k_span: float = 14.0
    """o(k) = p_loop · max(0, 1 − (k − 1)/loop_k_span): onset falls linearly with k."""
    loop_cap: int = 10
    """At most this many re-verification segments per loop."""
    p_hesitant: float = 0.4
    """Premise: share of loops that hesitate ("wait" segments with near-miss values that go on and on)."""
    q_hesitant: float = 0.6
    """Premise: near-miss probability of each segment of a hesitant loop."""
    r_hesitant: float = 0.92
    """Premise: continuation probability of a hesitant loop."""
    r_brisk: float = 0.1
    """Premise: continuation probability of a brisk loop ("check" segments restating the answer)."""
    r_flat: float = 0.66
    """Control: continuation probability of every loop (matches the premise world's mean loop length)."""
    reflect_first: float = 0.4
    """Premise: ρ(1), mid-chain reflection probability after one plain step."""
    reflect_decay: float = 0.5
    """Premise: ρ(s) = reflect_first · reflect_decay^(s−1)."""
    hazard_slope: float = 0.08
    """Premise: premature-END hazard h(s) = min(hazard_max, hazard_slope · (s − 1)) after s plain steps in a row."""
    hazard_max: float = 0.3
    """Premise: cap of h(s)."""
    reflect_flat: float = 0.2
    """Control: mid-chain reflection probability at every boundary after a plain step (`CONTROL` sets 0.25)."""
    hazard_flat: float = 0.1
    """Control: premature-END probability at every boundary after a plain step (`CONTROL` sets 0.15: at 0.1 the
    END token fell outside the top-p nucleus at T = 0.7 and the control model never under-thought)."""
    p_guess_partial: float = 0.5
    """A premature answer is the answer of the partials so far with this probability, else a random value."""
    answer: str = field(default="last", metadata=OMIT_AT_DEFAULT)
    """What the answer after END is: "last" = p_k, the left fold (v2); "mean" = ⌊(p_0 + … + p_k)/(k + 1)⌋, the
    floored mean of every partial (v3: every chain step is needed, and a loop read as a step would shift it)."""
    loop_word: str = field(default="by_kind", metadata=OMIT_AT_DEFAULT)
    """Reflection word of the loops: "by_kind" (v2: hesitant loops say WAIT, brisk ones CHECK) or "check" (v3:
    every loop segment says CHECK, so loops are marked apart from the chain's WAIT steps)."""
    answer_weight: float = field(default=1.0, metadata=OMIT_AT_DEFAULT)
    """SFT loss weight of the answer token (the other response tokens weigh 1)."""
    reflect_after_reflect: bool = field(default=False, metadata=OMIT_AT_DEFAULT)
    """False (v2, v3, v3.1): the boundary right after a reflective step always continues with a plain step (a certain,
    maximally confident step); True (v3.2): it has the rates of a boundary after one plain step (reflection ρ(1) is
    possible, END h(1) = 0 is not), so the confident plain steps are those of streaks, where END comes next."""
    bos: bool = field(default=False, metadata=OMIT_AT_DEFAULT)
    """True: every sequence starts with a BOS token (prompts, hence every SFT sequence, and the official TRAAC scorer
    input, as DeepSeek-R1-Distill-Qwen's tokenizer prepends `<｜begin▁of▁sentence｜>`): a fixed first token where an
    attention sink can form (v3.3; False: the first token is the prompt's "[", the scorer's THINK)."""
    corpus_size: int = 40_000
    """Number of SFT sequences."""
    d_model: int = 48
    """Width of the tiny Llama."""
    n_layers: int = 3
    """Layers of the tiny Llama (3: a steering layer can be interior)."""
    n_heads: int = 3
    """Attention heads (width 16: with width-8 heads the fixed-offset lookup was not learned)."""
    sft_steps: int = 2000
    """SFT optimiser steps."""
    sft_batch: int = 64
    """SFT batch size."""
    sft_lr: float = 3e-3
    """SFT learning rate (AdamW, linear warm-up over the first 10%)."""
    sft_weight_decay: float = field(default=0.0, metadata=OMIT_AT_DEFAULT)
    """AdamW weight decay of the SFT (0 up to v3.2; weight decay favours attention sinks, Gu et al. 2025)."""
    seed: int = 0
    """World seed (corpus and initialisation)."""

    def __post_init__(self):
        if not self.ops or set(self.ops) - {"+", "-"}:
            raise ValueError(f"ops must be a non-empty subset of ('+', '-'), got {self.ops}")
        if not 2 <= self.modulus <= 10:
            raise ValueError(f"modulus must lie in [2, 10], got {self.modulus}")
        if not self.k_train or min(self.k_train) < 1 or max(self.k_train) > self.k_max:
            raise ValueError(f"k_train must be non-empty within [1, k_max={self.k_max}], got {self.k_train}")
        probs = ("p_loop", "p_hesitant", "q_hesitant", "r_hesitant", "r_brisk", "r_flat", "reflect_first")
        probs += ("reflect_decay", "hazard_max", "reflect_flat", "hazard_flat", "p_guess_partial")
        for name in probs:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.reflect_first + self.hazard_max > 1 or self.reflect_flat + self.hazard_flat > 1:
            raise ValueError("reflection + premature-END probabilities must be <= 1")
        if self.loop_cap < 1 or self.loop_k_span <= 0 or self.hazard_slope < 0:
            raise ValueError("loop_cap must be >= 1, loop_k_span > 0 and hazard_slope >= 0")
        if self.answer not in AGGREGATES:
            raise ValueError(f"answer must be one of {AGGREGATES}, got {self.answer!r}")
        if self.loop_word not in ("by_kind", "check"):
            raise ValueError(f"loop_word must be 'by_kind' or 'check', got {self.loop_word!r}")
        if self.sft_weight_decay < 0:
            raise ValueError(f"sft_weight_decay must be >= 0, got {self.sft_weight_decay}")
        if self.answer_weight <= 0:
            raise ValueError(f"answer_weight must be > 0, got {self.answer_weight}")

    @property
    def vocab(self) -> Vocab:
        return Vocab(self.modulus, self.bos)

    @property
    def op_signs(self) -> tuple[int, ...]:
        return tuple(1 if o == "+" else -1 for o in self.ops)

    @property
    def max_prompt_len(self) -> int:
        return 3 * self.k_max + 4 + self.bos

    @property
    def max_new_tokens(self) -> int:
        """Room for a chain at k_max and a full loop, END, answer and EOS."""
        return 3 * (self.k_max + 1) + 3 * self.loop_cap + 3

    def onset(self, k: int) -> float:
        """o(k): probability that a re-verification loop follows the completed chain."""
        return self.p_loop * max(0.0, 1 - (k - 1) / self.loop_k_span)

    def reflect(self, s: int) -> float:
        """ρ(s): mid-chain reflection probability after s ≥ 1 plain steps in a row (0 right after a reflection)."""
        if s < 1:
            return 0.0
        return self.reflect_first * self.reflect_decay ** (s - 1) if self.premise else self.reflect_flat

    def hazard(self, s: int) -> float:
        """h(s): premature-END probability after s ≥ 1 plain steps in a row (0 right after a reflection)."""
        if s < 1:
            return 0.0
        return min(self.hazard_max, self.hazard_slope * (s - 1)) if self.premise else self.hazard_flat


CONTROL = dict(premise=False, reflect_flat=0.25, hazard_flat=0.15)
"""`dataclasses.replace(cfg, **CONTROL)`: the control world of a config (flat rates that survive top-p at T = 0.7;
the defaults of the flat rates are kept so that the premise world's cache key does not change)."""


@dataclass(frozen=True)
class Vocab:
    """Token ids: values 0..M−1, then the structural and special tokens."""

    modulus: int
    has_bos: bool = False
    """A BOS token exists (the last id; worlds without it keep their vocabulary, hence their models, unchanged)."""

    def _id(self, i: int) -> int:
        return self.modulus + i

    start = property(lambda self: self._id(0), doc="first prompt slot marker")
    plus = property(lambda self: self._id(1))
    minus = property(lambda self: self._id(2))
    comma = property(lambda self: self._id(3), doc="prompt slot separator")
    nop = property(lambda self: self._id(4), doc="empty prompt slot (k < k_max)")
    think = property(lambda self: self._id(5), doc="opens the thinking region")
    step = property(lambda self: self._id(6), doc="marker of a plain step")
    sep = property(lambda self: self._id(7), doc="step separator")
    wait = property(lambda self: self._id(8), doc="reflection word")
    check = property(lambda self: self._id(9), doc="reflection word")
    end = property(lambda self: self._id(10), doc="end of thinking")
    eos = property(lambda self: self._id(11))
    pad = property(lambda self: self._id(12))
    size = property(lambda self: self._id(13) + self.has_bos)

    @property
    def bos(self) -> int:
        """Beginning of sequence (only in a world with `bos`)."""
        if not self.has_bos:
            raise ValueError("this world has no BOS token (WorldConfig.bos=False)")
        return self._id(13)

    @property
    def reflection(self) -> tuple[int, ...]:
        """Reflection words."""
        return (self.wait, self.check)

    def is_value(self, t: int) -> bool:
        return 0 <= t < self.modulus

    def decode(self, tokens) -> str:
        """Human-readable text of a token sequence (PAD dropped)."""
        names = ["[", "+", "-", ",", "_", "<think>", ">", ";", "wait", "check", "</think>", "<eos>", "<pad>", "<bos>"]
        return " ".join(
            str(t) if self.is_value(t) else names[t - self.modulus] for t in (int(x) for x in tokens) if t != self.pad
        )


AGGREGATES = ("last", "mean")


def aggregate(partials, how: str) -> int:
    """The answer from the partials p_0..p_i: "last" = p_i; "mean" = ⌊(Σ_j p_j) / (i + 1)⌋."""
    if how == "last":
        return int(partials[-1])
    if how == "mean":
        return int(sum(partials)) // len(partials)
    raise ValueError(f"unknown aggregate {how!r}; choose one of {AGGREGATES}")


@dataclass(frozen=True)
class Problem:
    """a_0 op_1 a_1 … op_k a_k (ops: +1 for "+", −1 for "−") modulo M; the answer aggregates the partials
    (`aggregate`: "last" = the fold's result p_k, "mean" = the floored mean of p_0..p_k)."""

    operands: tuple[int, ...]
    ops: tuple[int, ...]
    modulus: int
    aggregate: str = "last"

    @property
    def k(self) -> int:
        return len(self.ops)

    def partials(self) -> list[int]:
        """p_0 = a_0, p_i = (p_{i−1} + op_i · a_i) mod M."""
        p = [self.operands[0] % self.modulus]
        for op, a in zip(self.ops, self.operands[1:], strict=True):
            p.append((p[-1] + op * a) % self.modulus)
        return p

    @property
    def answer(self) -> int:
        return aggregate(self.partials(), self.aggregate)


def sample_problems(
    n: int, ks, modulus: int, rng: np.random.Generator, ops: tuple[int, ...] = (1, -1), answer: str = "last"
) -> list[Problem]:
    """n problems, difficulty k drawn uniformly from `ks` (an int or a sequence), ops drawn from `ops`, the answer
    aggregated as `answer`."""
    ks = [ks] if isinstance(ks, int) else list(ks)
    out = []
    for k in rng.choice(ks, size=n):
        a = rng.integers(0, modulus, k + 1)
        o = rng.choice(list(ops), size=k)
        out.append(Problem(tuple(int(x) for x in a), tuple(int(x) for x in o), modulus, answer))
    return out


def prompt_tokens(p: Problem, v: Vocab, k_max: int) -> list[int]:
    """Slots of three tokens, "[ a_0 ," then "op_i a_i ," for i ≤ k and "_ _ ," up to k_max, then THINK (after a BOS
    in a world with `bos`).

    Every prompt has the same length, so step i of the thinking sits at a fixed distance from slot i.
    """
    if p.k > k_max:
        raise ValueError(f"problem has k={p.k} > k_max={k_max}")
    toks = ([v.bos] if v.has_bos else []) + [v.start, p.operands[0], v.comma]
    for op, a in zip(p.ops, p.operands[1:], strict=True):
        toks += [v.plus if op > 0 else v.minus, a, v.comma]
    toks += [v.nop, v.nop, v.comma] * (k_max - p.k)
    return toks + [v.think]


def encode_prompts(problems: list[Problem], v: Vocab, k_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts (B, 3 k_max + 4, + 1 with a BOS) and their mask (all ones: prompts share one length)."""
    ids = torch.tensor([prompt_tokens(p, v, k_max) for p in problems], dtype=torch.long)
    return ids, torch.ones_like(ids)


# --------------------------------------------------------------------------- the trace process (SFT corpus)


@dataclass
class Trace:
    """One sampled response: tokens (thinking, END, answer, EOS) and the role of each thinking segment
    ("chain", "reflect" = mid-chain reflection, "loop" = post-answer re-verification)."""

    tokens: list[int]
    roles: list[str]
    truncated: bool = False


def sample_trace(p: Problem, cfg: WorldConfig, rng: np.random.Generator) -> Trace:
    """Sample a response from the world's process (module docstring, items 1–4)."""
    v, ps, k = cfg.vocab, p.partials(), p.k
    toks, roles = [v.step, ps[0], v.sep], ["chain"]
    s = 1  # plain steps since the last reflection
    for i in range(1, k + 1):  # boundary after step i − 1: premature END, a reflective step or a plain step
        u = rng.random()
        s = max(s, 1) if cfg.reflect_after_reflect else s
        if u < cfg.hazard(s):
            so_far = aggregate(ps[:i], cfg.answer)
            guess = so_far if rng.random() < cfg.p_guess_partial else int(rng.integers(0, v.modulus))
            return Trace(toks + [v.end, guess, v.eos], roles, truncated=True)
        reflect = u < cfg.hazard(s) + cfg.reflect(s)
        toks += [v.wait if reflect else v.step, ps[i], v.sep]
        roles.append("reflect" if reflect else "chain")
        s = 0 if reflect else s + 1
    if rng.random() < cfg.onset(k):
        toks += _loop(ps[-1], cfg, rng, roles)
    return Trace(toks + [v.end, p.answer, v.eos], roles)


def _loop(last: int, cfg: WorldConfig, rng: np.random.Generator, roles: list[str]) -> list[int]:
    """Re-verification segments of the last step's result p_k after the chain. Premise: a hesitant loop ("wait",
    near-miss values, long) or a brisk one ("check" restating p_k, short); control: "check" segments with a flat
    continuation. With `loop_word="check"` every loop segment says CHECK."""
    v, toks, answer = cfg.vocab, [], last
    hesitant = cfg.premise and rng.random() < cfg.p_hesitant
    marker, q = (v.wait, cfg.q_hesitant) if hesitant else (v.check, 0.0)
    marker = v.check if cfg.loop_word == "check" else marker
    r = cfg.r_hesitant if hesitant else (cfg.r_brisk if cfg.premise else cfg.r_flat)
    for n in range(1, cfg.loop_cap + 1):
        near = rng.random() < q
        toks += [marker, (answer + (1 if rng.random() < 0.5 else -1)) % v.modulus if near else answer, v.sep]
        roles.append("loop")
        if n == cfg.loop_cap or rng.random() >= r:
            break
    return toks


def build_corpus(cfg: WorldConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SFT corpus: ids (N, P + R), attention mask, loss weights on the response (through EOS; the answer token
    weighs `answer_weight`)."""
    v, rng = cfg.vocab, np.random.default_rng(cfg.seed)
    R = cfg.max_new_tokens
    problems = sample_problems(cfg.corpus_size, cfg.k_train, cfg.modulus, rng, cfg.op_signs, cfg.answer)
    prompts, pmask = encode_prompts(problems, v, cfg.k_max)
    resp = torch.full((len(problems), R), v.pad, dtype=torch.long)
    rmask = torch.zeros_like(resp)
    for b, p in enumerate(problems):
        t = sample_trace(p, cfg, rng).tokens
        resp[b, : len(t)] = torch.tensor(t)
        rmask[b, : len(t)] = 1
    ids = torch.cat([prompts, resp], 1)
    loss = torch.cat([torch.zeros_like(pmask), rmask], 1).float()
    if cfg.answer_weight != 1.0:  # the answer token follows END
        answer_pos = (ids == v.end).int().argmax(1) + 1
        loss[torch.arange(len(ids)), answer_pos] *= cfg.answer_weight
    return ids, torch.cat([pmask, rmask], 1), loss


# --------------------------------------------------------------------------- verifier and trace analysis


def verify(p: Problem, response, v: Vocab) -> bool:
    """Exact verifier: the response holds END, and right after it exactly "answer EOS"."""
    r = [int(t) for t in response]
    if v.end not in r:
        return False
    i = r.index(v.end)
    return r[i + 1 : i + 3] == [p.answer, v.eos]


def segments(response, v: Vocab) -> tuple[list[list[int]], bool]:
    """Thinking split into steps at SEP (a trailing unfinished step is kept), and whether END was emitted."""
    r = [int(t) for t in response]
    closed = v.end in r
    think = r[: r.index(v.end)] if closed else [t for t in r if t not in (v.eos, v.pad)]
    segs, cur = [], []
    for t in think:
        cur.append(t)
        if t == v.sep:
            segs.append(cur)
            cur = []
    if cur:
        segs.append(cur)
    return segs, closed


def roles(segs: list[list[int]], k: int, v: Vocab) -> list[str]:
    """Role of each segment of a response, read off the tokens: the first k + 1 segments compute p_0..p_k, "chain"
    (plain marker) or "reflect" (a reflection word: a reflective step); anything after them is "redundant" (the
    answer was already reached)."""
    return ["redundant" if j > k else ("chain" if s and s[0] == v.step else "reflect") for j, s in enumerate(segs)]


@dataclass
class TraceStats:
    """One response: correctness, thinking tokens and steps, redundant (post-answer) steps and tokens, flags."""

    correct: bool
    think_len: int
    n_steps: int
    redundant_steps: int
    redundant_tokens: int
    reflections: int
    overthink: bool
    underthink: bool
    closed: bool


def analyse(p: Problem, response, v: Vocab) -> TraceStats:
    """Step i of the chain computes p_i, so the chain is complete after k + 1 plain steps. Over-thinking: at least
    one step after that (the answer was already reached). Under-thinking: END before the chain is complete."""
    segs, closed = segments(response, v)
    r = [int(t) for t in response]
    think_len = r.index(v.end) if closed else sum(len(s) for s in segs)
    rl = roles(segs, p.k, v)
    redundant = rl.count("redundant")
    return TraceStats(
        correct=verify(p, r, v),
        think_len=think_len,
        n_steps=len(segs),
        redundant_steps=redundant,
        redundant_tokens=sum(len(s) for s, x in zip(segs, rl, strict=True) if x == "redundant"),
        reflections=rl.count("reflect"),
        overthink=redundant > 0,
        underthink=closed and len(segs) < p.k + 1,
        closed=closed,
    )


SUMMARY_METRICS = (
    "accuracy",
    "think_len",
    "n_steps",
    "redundant_steps",
    "redundant_tokens",
    "reflections",
    "overthink",
    "underthink",
    "unclosed",
)


def summarise(problems: list[Problem], responses: torch.Tensor, v: Vocab) -> dict[int, dict[str, float]]:
    """Per difficulty k: accuracy, mean thinking tokens / steps, redundant steps / tokens, mid-chain reflections,
    over- and under-thinking rates, and the share of responses that never closed the thinking."""
    by_k: dict[int, list[TraceStats]] = {}
    for p, r in zip(problems, responses, strict=True):
        by_k.setdefault(p.k, []).append(analyse(p, r.tolist(), v))
    out = {}
    for k, st in sorted(by_k.items()):
        row = {m: float(np.mean([getattr(s, m) for s in st])) for m in SUMMARY_METRICS if hasattr(st[0], m)}
        row["accuracy"] = float(np.mean([s.correct for s in st]))
        row["unclosed"] = float(np.mean([not s.closed for s in st]))
        out[k] = row | {"n": len(st)}
    return out


def oracle_length(problems: list[Problem]) -> float:
    """Mean thinking tokens of the concise traces (k + 1 plain steps of 3 tokens): the balanced policy's length."""
    return float(np.mean([3 * (p.k + 1) for p in problems]))


@dataclass
class Step:
    """One thinking step of a sampled response, as a step-level controller sees it.

    `start` / `sep`: response indices of its first token and of its SEP; `c`: mean max-probability over its tokens
    except the SEP (the official online confidence); `v` = (c − c_prev)² / 4 (0 at the first step); `role`: from
    `roles`; `complete`: the chain is complete after it; `next`: what follows its SEP ("step", "reflect",
    "redundant" or "end"; "none" if the response is unclosed)."""

    row: int
    index: int
    start: int
    sep: int
    c: float
    v: float
    role: str
    complete: bool
    next: str

    @property
    def boundary(self) -> str:
        """The decision its SEP opens: "mid" (chain incomplete), "chain_end" (the answer was just reached) or
        "loop" (inside a post-answer loop)."""
        return "loop" if self.role == "redundant" else ("chain_end" if self.complete else "mid")


def step_table(problems: list[Problem], tokens: torch.Tensor, maxprob: torch.Tensor, v: Vocab) -> list[Step]:
    """Every SEP-closed thinking step of every response (tokens, maxprob: (B, T) from `rollout`)."""
    out = []
    for b, p in enumerate(problems):
        r = tokens[b].tolist()
        segs, closed = segments(r, v)
        segs = [s for s in segs if s[-1] == v.sep]
        rl = roles(segs, p.k, v)
        start, c_prev = 0, None
        for j, s in enumerate(segs):
            sep = start + len(s) - 1
            c = float(maxprob[b, start:sep].mean()) if sep > start else float(maxprob[b, sep])
            nxt = rl[j + 1] if j + 1 < len(segs) else ("end" if closed and sep + 1 == r.index(v.end) else "none")
            nxt = {"chain": "step"}.get(nxt, nxt)
            v_j = 0.0 if c_prev is None else (c - c_prev) ** 2 / 4
            out.append(Step(b, j, start, sep, c, v_j, rl[j], j >= p.k, nxt))
            start, c_prev = sep + 1, c
    return out


# --------------------------------------------------------------------------- generation


@torch.no_grad()
def rollout(
    model: nn.Module,
    prompts: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    on_token: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> tuple[Generation, torch.Tensor]:
    """Batched sampling with a KV cache and a per-token callback; returns the generation and max_v π(v | ·) (B, T).

    `on_token(t, tokens, probs)` is called after token t is sampled (probs = softmax of the untempered logits that
    produced it) and before it is fed back: a controller can set state that forward hooks read on the next pass.
    """
    device = next(model.parameters()).device
    ids, am = prompts.to(device), prompt_mask.to(device)
    B = ids.shape[0]
    done = torch.zeros(B, dtype=torch.bool, device=device)
    toks, logps, maxp = [], [], []
    out = model(input_ids=ids, attention_mask=am, position_ids=positions(am), use_cache=True)
    pos = positions(am)[:, -1:]
    for t in range(max_new_tokens):
        logits = out.logits[:, -1].float()
        tok, lp = sample_from_logits(logits, temperature=temperature, top_p=top_p, generator=generator)
        tok = torch.where(done, torch.full_like(tok, eos_id), tok)
        lp = torch.where(done, torch.zeros_like(lp), lp)
        probs = torch.softmax(logits, -1)
        done = done | (tok == eos_id)
        toks.append(tok)
        logps.append(lp)
        maxp.append(probs.max(-1).values)
        if on_token is not None:
            on_token(t, tok, probs)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        am = torch.cat([am, torch.ones_like(tok[:, None])], 1)
        pos = pos + 1
        cache = {"cache": out["cache"]} if "cache" in out else {"past_key_values": out.past_key_values}
        out = model(input_ids=tok[:, None], attention_mask=am, position_ids=pos, use_cache=True, **cache)
    pad = max_new_tokens - len(toks)
    tokens = torch.nn.functional.pad(torch.stack(toks, 1), (0, pad), value=eos_id)
    logprobs = torch.nn.functional.pad(torch.stack(logps, 1), (0, pad))
    maxprob = torch.nn.functional.pad(torch.stack(maxp, 1), (0, pad))
    return Generation(tokens, logprobs, response_mask(tokens, eos_id)), maxprob


class ReasoningWorld:
    """A built world: config, vocabulary, the SFT'd base model and its cache folder."""

    def __init__(self, cfg: WorldConfig, model: nn.Module, cache_dir: Path, sft_losses: list[float] | None = None):
        self.cfg, self.v, self.model, self.cache_dir = cfg, cfg.vocab, model.eval(), cache_dir
        self.sft_losses = sft_losses or []

    def problems(self, n: int, ks, seed: int) -> list[Problem]:
        rng = np.random.default_rng(seed)
        return sample_problems(n, ks, self.cfg.modulus, rng, self.cfg.op_signs, self.cfg.answer)

    def prompts(self, problems: list[Problem]) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_prompts(problems, self.v, self.cfg.k_max)

    def sample(
        self,
        problems: list[Problem],
        *,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int = 0,
        batch_size: int = 512,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        model: nn.Module | None = None,
    ) -> Generation:
        """Sample responses with common.lm.generate (KV cache; last-layer hidden states / attentions on request)."""
        ids, mask = self.prompts(problems)
        return generate(
            model or self.model,
            ids,
            prompt_mask=mask,
            max_new_tokens=self.cfg.max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            eos_id=self.v.eos,
            generator=torch.Generator().manual_seed(seed),
            batch_size=batch_size,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )

    @torch.no_grad()
    def states(
        self,
        problems: list[Problem],
        responses: torch.Tensor,
        *,
        attentions: bool = False,
        model: nn.Module | None = None,
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...] | None, torch.Tensor]:
        """Teacher-forced pass over prompt + response: hidden states of every layer (each (B, P + T, d); index 0 =
        embeddings), attentions of every layer ((B, H, S, S), eager attention) if asked, and the logits (B, P + T, V).
        Response tokens after EOS are masked out of the attention."""
        model = model or self.model
        ids, pm = self.prompts(problems)
        rm = response_mask(responses, self.v.eos).long()
        full, am = torch.cat([ids, responses], 1), torch.cat([pm, rm], 1)
        impl = model.config._attn_implementation
        if attentions:
            model.set_attn_implementation("eager")
        try:
            out = model(
                input_ids=full,
                attention_mask=am,
                position_ids=positions(am),
                output_hidden_states=True,
                output_attentions=attentions,
            )
        finally:
            if attentions:
                model.set_attn_implementation(impl)
        return out.hidden_states, (out.attentions if attentions else None), out.logits

    def evaluate(self, problems: list[Problem], responses: torch.Tensor) -> dict[int, dict[str, float]]:
        return summarise(problems, responses, self.v)

    def chain_accuracy(self, n: int = 1000, seed: int = 123) -> float:
        """Build acceptance: teacher-forced argmax accuracy of the chain's values (`chain_accuracy`), cached in the
        world's folder (`acceptance.json`) for the default n and seed."""
        path = self.cache_dir / "acceptance.json"
        default = (n, seed) == (1000, 123)
        if default and path.exists():
            return float(json.loads(path.read_text())["tf_chain_accuracy"])
        acc = chain_accuracy(self, n, seed)
        if default and self.cache_dir.exists():
            path.write_text(json.dumps({"tf_chain_accuracy": acc, "n": n, "seed": seed, "min": CHAIN_ACCURACY_MIN}))
        return acc


CHAIN_ACCURACY_MIN = 0.95
"""A built world is usable when its model has learned the chain: teacher-forced chain-value accuracy >= 0.95 (issue
32: the first v3-control build stayed at 0.72, reading each operand but not its sign, so its base accuracy was 0.30
and ReBalance's control calibration degenerated; v3: 1.000)."""


@torch.no_grad()
def chain_accuracy(world: ReasoningWorld, n: int = 1000, seed: int = 123) -> float:
    """Teacher-forced argmax accuracy of the chain's value tokens: n traces of the world's own process (k drawn from
    k_train, `sample_trace`) are fed to the model, and at each chain step i (plain or reflective, before any loop,
    up to a premature END) the model's most likely next token after the step's marker must be the partial p_i.
    Every chain value is a deterministic function of the prompt, so a model that has learned the arithmetic scores
    1; one that ignores the operations' signs scores about 0.6."""
    cfg, v = world.cfg, world.v
    rng = np.random.default_rng(seed)
    problems = sample_problems(n, cfg.k_train, cfg.modulus, rng, cfg.op_signs, cfg.answer)
    traces = [sample_trace(p, cfg, rng) for p in problems]
    resp = torch.full((n, max(len(t.tokens) for t in traces)), v.eos, dtype=torch.long)
    for b, t in enumerate(traces):
        resp[b, : len(t.tokens)] = torch.tensor(t.tokens)
    _, _, logits = world.states(problems, resp)
    pred = logits[:, cfg.max_prompt_len - 1 : -1].argmax(-1)  # pred[:, t] predicts response token t
    hits = [
        int(pred[b, 3 * j + 1]) == t.tokens[3 * j + 1]  # segment j is "marker p_j ;"
        for b, t in enumerate(traces)
        for j, role in enumerate(t.roles)
        if role != "loop"
    ]
    return float(np.mean(hits))


def new_model(cfg: WorldConfig) -> nn.Module:
    return tiny_lm(
        cfg.vocab.size,
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        max_len=cfg.max_prompt_len + cfg.max_new_tokens,
        seed=cfg.seed,
    )


def world_key(cfg: WorldConfig) -> str:
    """Cache key: `config_hash` of the fields; the fields added since v2 (v3's answer, loop word, answer weight and
    reflection rule; v3.3's BOS and weight decay) are left out at their defaults, so earlier worlds keep their keys."""
    return config_hash(cfg)


def build_world(cfg: WorldConfig = WorldConfig(), *, cache: bool = True, verbose: bool = False) -> ReasoningWorld:
    """SFT the base model on the trace process, or load it from `.cache/reasoning_world/<config hash>/`."""
    torch.set_num_threads(1)  # tiny models: a second OpenMP thread only spins on a shared 2-core machine
    cache_dir = cache_root() / "reasoning_world" / world_key(cfg)
    path = cache_dir / "model.pt"
    model = new_model(cfg)
    if cache and path.exists():
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        return ReasoningWorld(cfg, model, cache_dir, state["losses"])
    start = time.perf_counter()
    ids, am, lm = build_corpus(cfg)
    losses = sft(
        model,
        ids,
        lm,
        steps=cfg.sft_steps,
        batch_size=cfg.sft_batch,
        lr=cfg.sft_lr,
        weight_decay=cfg.sft_weight_decay,
        attention_mask=am,
        seed=cfg.seed,
    )
    if verbose:
        tail = float(np.mean(losses[-20:]))
        print(f"[reasoning world] SFT loss {losses[0]:.3f} -> {tail:.3f} in {time.perf_counter() - start:.0f} s")
    if cache:
        save_atomic({"model": model.state_dict(), "losses": losses}, path)
        (cache_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    return ReasoningWorld(cfg, model, cache_dir, losses)


SMOKE_WORLD = WorldConfig(corpus_size=2000, d_model=32, n_layers=2, n_heads=2, sft_steps=40, sft_batch=32)
"""A seconds-scale world for the smoke tier (it learns little; it proves the pipeline runs)."""


V3 = dict(answer="mean", loop_word="check", answer_weight=4.0, n_layers=4)
"""World v3 (`WorldConfig(**V3)`): the answer is the floored mean of every partial, loops say CHECK, the answer
token weighs 4 in SFT, and 4 layers, so that TRAAC's scorer (the first ⌊L/2⌋ layers) includes a layer after
the one that can tag each step as chain or loop."""


V3_1 = V3 | dict(loop_word="by_kind", sft_steps=4000)
"""World v3.1 (`WorldConfig(**V3_1)`, issue 32 for ReBalance): v3 with v2's loop markers back (hesitant loops say
WAIT, brisk ones CHECK, so a loop's marker token carries its fate into the step confidence) and 4000 SFT steps
(at 2000 the v3-control model stayed on a sign-blind plateau: teacher-forced chain accuracy 0.72, README_reasoning
"World v3.1")."""


V3_2 = V3_1 | dict(reflect_after_reflect=True)
"""World v3.2 (`WorldConfig(**V3_2)`, issue 32 for ReBalance's premises 0b/0c): v3.1 in which a reflection does not
buy a certain plain step (`reflect_after_reflect`). In v3/v3.1 the calibration's negative (confident plain) steps
are the steps right after a reflection, where END cannot come, so S points towards END and −S suppresses it
everywhere (README_reasoning "World v3.2")."""


SINK = dict(bos=True, sft_weight_decay=0.1, sft_steps=4000)
"""The sink options of v3.3 / v3.4 (issue 32, TRAAC's uniformity gate): a BOS token first in every sequence, AdamW
weight decay 0.1 and 4000 SFT steps — the conditions under which language models form an attention sink on the first
token, which is what opens TRAAC's gate in an LLM (README_reasoning "World v3.3")."""

V3_3 = V3 | SINK
"""World v3.3 (`WorldConfig(**V3_3)`): v3 (floored-mean answer, CHECK-only loops, 4 layers) with the sink options."""

V3_4 = V3_3 | dict(n_layers=6)
"""World v3.4: v3.3 with 6 layers (TRAAC's scorer reads the first 3)."""

V2_SINK = dict(n_layers=4) | SINK
"""TRAAC's control for v3.3 (`"v3.3-v2"`): world v2 (the answer is p_k, the loops restate it) at v3.3's depth with
its sink options; `"v3.4-v2"` at v3.4's depth."""


def world_config(name: str) -> WorldConfig:
    """Named worlds: "premise" (v2, WorldConfig()), "control" (v2, the premise switched off), "v3" and
    "v3-control" (world v3, premise and control), "v3.1" / "v3.1-control" and "v3.2" / "v3.2-control" (worlds v3.1
    and v3.2), "v3.3" / "v3.3-v2" and "v3.4" / "v3.4-v2" (the sink worlds and TRAAC's v2 controls at their depth and
    options), "smoke", "v3-smoke" and "sink-smoke" (seconds)."""
    worlds = {
        "premise": WorldConfig(),
        "control": WorldConfig(**CONTROL),
        "v3": WorldConfig(**V3),
        "v3-control": WorldConfig(**V3, **CONTROL),
        "v3.1": WorldConfig(**V3_1),
        "v3.1-control": WorldConfig(**V3_1, **CONTROL),
        "v3.2": WorldConfig(**V3_2),
        "v3.2-control": WorldConfig(**V3_2, **CONTROL),
        "v3.3": WorldConfig(**V3_3),
        "v3.3-v2": WorldConfig(**V2_SINK),
        "v3.4": WorldConfig(**V3_4),
        "v3.4-v2": WorldConfig(**V2_SINK | dict(n_layers=6)),
        "smoke": SMOKE_WORLD,
        "v3-smoke": dataclasses.replace(SMOKE_WORLD, **V3),
        "sink-smoke": dataclasses.replace(SMOKE_WORLD, **V3 | SINK | dict(sft_steps=SMOKE_WORLD.sft_steps)),
    }
    if name not in worlds:
        raise ValueError(f"unknown world {name!r}; choose one of {sorted(worlds)}")
    return worlds[name]


if __name__ == "__main__":  # the world is a library; its demo imports it, never the reverse
    raise SystemExit("error: the reasoning world demo runs as `python -m reprozoo.common.worlds.reasoning_demo`")
