"""The reasoning world: chains of k modular operations solved by a tiny LM that over- and under-thinks.

Problem (difficulty knob k = number of operations): a_0 op_1 a_1 … op_k a_k with a_i ∈ {0..M−1} and
op_i ∈ {+, −}; the answer is the left-to-right fold p_k, p_0 = a_0, p_i = (p_{i−1} op_i a_i) mod M.

Tokens (`Vocab`): values 0..M−1, "[" (first slot), "+", "−", "," (slot separator), "_" (empty slot), THINK,
">" (plain-step marker), SEP ";" (step separator), WAIT and CHECK (reflection words), END (end of thinking), EOS, PAD.
- prompt   "[ a_0 ," then "op_i a_i ," for i = 1..k and "_ _ ," up to k_max, then THINK: every prompt has the same
           length, so step i of the thinking sits at a fixed distance from slot i (a tiny model learns the lookup
           with one positional attention head)
- thinking one step per segment: "> p_i ;" for i = 0..k, closed by END
- answer   one value token, then EOS.
The exact verifier (`verify`) accepts a response iff, after END, it is exactly "p_k EOS".

SFT corpus (`trace`): a mixture of
- concise traces (the steps above);
- over-checked traces (k ≤ `easy_max`): after step k, 1–3 redundant re-verification segments
  "wait|check p_k ;" (the answer is already known) — over-thinking;
- truncated traces (k ≥ `hard_min`): stop after step j = `cut_step` ≤ k − 2 and answer the current partial p_j or
  a random value — under-thinking (a jump to a guessed answer);
- recovered traces (k ≥ `hard_min`): at the same point emit "wait p_{j+1} ;" and finish the chain — the
  reflection that counters under-thinking.
The SFT'd base model therefore over-thinks on easy problems and under-thinks on hard ones (`analyse` measures both:
over-thinking = at least one step after step k; under-thinking = END before step k).

Generation: `ReasoningWorld.sample` (common.lm.generate: KV cache, last hidden states / attentions on request),
`rollout` (the same with a per-token callback, for step-level controllers such as steering hooks) and
`ReasoningWorld.states` (teacher-forced hidden states of every layer and attentions of sampled sequences).
The SFT'd model is cached under `.cache/reasoning_world/<config hash>/`.

Demo: `python -m common.worlds.reasoning --preset smoke|quick` writes `results/reasoning_world/<preset>/`.

Measured with the default config (2-layer d = 32 Llama with two width-16 heads, 1600 SFT steps, ~200 s of CPU;
results/reasoning_world/quick/, T = 0.7, top-p 0.95): accuracy ≈ 1.0 on k ≤ 3 falling to ≈ 0.69 at k = 8;
over-thinking (redundant steps) ≈ 0.25 on k ≤ 3 and ≈ 0 on k ≥ 4; under-thinking ≈ 0.25 on k ≥ 4 and ≈ 0 on k ≤ 3.
Truncation is concentrated on one boundary (`cut_step`): spread over every step, a premature END (< 5% per step)
fell outside the top-p nucleus and the sampled model never under-thought.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.cache import cache_root, config_hash
from common.config import RunConfig, check_fraction, check_positive, ensure
from common.lm import Generation, generate, positions, sft, tiny_lm
from common.policy import response_mask, sample_from_logits
from common.results import Claim, record

# --------------------------------------------------------------------------- world definition


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a reasoning world (its hash keys the cache)."""

    modulus: int = 10
    """M: values and partial results live in {0..M−1}."""
    ops: tuple[str, ...] = ("+", "-")
    """Operations drawn for op_i."""
    k_train: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    """Difficulties (numbers of operations) in the SFT corpus."""
    k_max: int = 8
    """Largest difficulty the vocabulary and prompts support (k > max(k_train) are unseen)."""
    easy_max: int = 3
    """Over-checked traces are made for k ≤ easy_max."""
    hard_min: int = 4
    """Truncated and recovered traces are made for k ≥ hard_min."""
    p_overcheck: float = 0.4
    """Fraction of easy problems whose trace is over-checked."""
    p_truncate: float = 0.3
    """Fraction of hard problems whose trace is truncated (jump to a guessed answer)."""
    p_recover: float = 0.1
    """Fraction of hard problems whose trace reflects ("WAIT") where a truncated one would stop, then finishes."""
    p_guess_partial: float = 0.5
    """A truncated trace answers the current partial result with this probability, else a random value."""
    cut_step: int = 2
    """Truncated / recovered traces cut after this step (one boundary, so that a premature END is likely enough to
    survive top-p decoding); −1 spreads the cut uniformly over steps 0..k−2."""
    corpus_size: int = 40_000
    """Number of SFT sequences."""
    d_model: int = 32
    """Width of the tiny Llama."""
    n_layers: int = 2
    """Layers of the tiny Llama."""
    n_heads: int = 2
    """Attention heads (head width 16: with width-8 heads the fixed-offset lookup was not learned in 800 steps)."""
    sft_steps: int = 1600
    """SFT optimiser steps."""
    sft_batch: int = 64
    """SFT batch size."""
    sft_lr: float = 3e-3
    """SFT learning rate (AdamW, linear warm-up over the first 10%)."""
    seed: int = 0
    """World seed (corpus and initialisation)."""

    def __post_init__(self):
        if not self.ops or set(self.ops) - {"+", "-"}:
            raise ValueError(f"ops must be a non-empty subset of ('+', '-'), got {self.ops}")
        if not 2 <= self.modulus <= 10:
            raise ValueError(f"modulus must lie in [2, 10], got {self.modulus}")
        if not self.k_train or min(self.k_train) < 1 or max(self.k_train) > self.k_max:
            raise ValueError(f"k_train must be non-empty within [1, k_max={self.k_max}], got {self.k_train}")
        for name in ("p_overcheck", "p_truncate", "p_recover", "p_guess_partial"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.p_truncate + self.p_recover > 1:
            raise ValueError("p_truncate + p_recover must be <= 1")

    @property
    def vocab(self) -> Vocab:
        return Vocab(self.modulus)

    @property
    def op_signs(self) -> tuple[int, ...]:
        return tuple(1 if o == "+" else -1 for o in self.ops)

    @property
    def max_prompt_len(self) -> int:
        return 3 * self.k_max + 4

    @property
    def max_new_tokens(self) -> int:
        """Room for a full chain at k_max plus four extra steps, END, the answer and EOS."""
        return 3 * (self.k_max + 1) + 12 + 3


@dataclass(frozen=True)
class Vocab:
    """Token ids: values 0..M−1, then the structural and special tokens."""

    modulus: int

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
    size = property(lambda self: self._id(13))

    @property
    def reflection(self) -> tuple[int, ...]:
        """Reflection words."""
        return (self.wait, self.check)

    def is_value(self, t: int) -> bool:
        return 0 <= t < self.modulus

    def decode(self, tokens) -> str:
        """Human-readable text of a token sequence (PAD dropped)."""
        names = ["[", "+", "-", ",", "_", "<think>", ">", ";", "wait", "check", "</think>", "<eos>"]
        return " ".join(
            str(t) if self.is_value(t) else names[t - self.modulus] for t in (int(x) for x in tokens) if t != self.pad
        )


@dataclass(frozen=True)
class Problem:
    """a_0 op_1 a_1 … op_k a_k (ops: +1 for "+", −1 for "−") modulo M."""

    operands: tuple[int, ...]
    ops: tuple[int, ...]
    modulus: int

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
        return self.partials()[-1]


def sample_problems(
    n: int, ks, modulus: int, rng: np.random.Generator, ops: tuple[int, ...] = (1, -1)
) -> list[Problem]:
    """n problems, difficulty k drawn uniformly from `ks` (an int or a sequence), ops drawn from `ops`."""
    ks = [ks] if isinstance(ks, int) else list(ks)
    out = []
    for k in rng.choice(ks, size=n):
        a = rng.integers(0, modulus, k + 1)
        o = rng.choice(list(ops), size=k)
        out.append(Problem(tuple(int(x) for x in a), tuple(int(x) for x in o), modulus))
    return out


def prompt_tokens(p: Problem, v: Vocab, k_max: int) -> list[int]:
    """Slots of three tokens, "[ a_0 ," then "op_i a_i ," for i ≤ k and "_ _ ," up to k_max, then THINK.

    Every prompt has the same length, so step i of the thinking sits at a fixed distance from slot i.
    """
    if p.k > k_max:
        raise ValueError(f"problem has k={p.k} > k_max={k_max}")
    toks = [v.start, p.operands[0], v.comma]
    for op, a in zip(p.ops, p.operands[1:], strict=True):
        toks += [v.plus if op > 0 else v.minus, a, v.comma]
    toks += [v.nop, v.nop, v.comma] * (k_max - p.k)
    return toks + [v.think]


def encode_prompts(problems: list[Problem], v: Vocab, k_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts (B, 3 k_max + 4) and their mask (all ones: prompts share one length)."""
    ids = torch.tensor([prompt_tokens(p, v, k_max) for p in problems], dtype=torch.long)
    return ids, torch.ones_like(ids)


TRACE_KINDS = ("concise", "overcheck", "truncate", "recover")


def trace(
    p: Problem, v: Vocab, kind: str, rng: np.random.Generator, p_guess_partial: float = 0.5, cut_step: int = -1
) -> list[int]:
    """Response tokens (thinking, END, answer, EOS) of one trace kind (see the module docstring)."""
    if kind not in TRACE_KINDS:
        raise ValueError(f"unknown trace kind {kind!r}; choose one of {TRACE_KINDS}")
    ps = p.partials()
    k, answer = p.k, p.answer
    markers = [v.step] * (k + 1)
    if kind in ("truncate", "recover") and k < 2:
        kind = "concise"
    j = k  # last step before the cut
    if kind in ("truncate", "recover"):
        j = cut_step if 0 <= cut_step <= k - 2 else int(rng.integers(0, k - 1))
    if kind == "truncate":
        guess = ps[j] if rng.random() < p_guess_partial else int(rng.integers(0, v.modulus))
        return sum(([markers[i], ps[i], v.sep] for i in range(j + 1)), []) + [v.end, guess, v.eos]
    if kind == "recover":
        markers[j + 1] = v.wait
    toks = sum(([markers[i], ps[i], v.sep] for i in range(k + 1)), [])
    if kind == "overcheck":
        for _ in range(int(rng.integers(1, 4))):
            toks += [v.wait if rng.random() < 0.5 else v.check, answer, v.sep]
    return toks + [v.end, answer, v.eos]


def trace_kind(cfg: WorldConfig, k: int, rng: np.random.Generator) -> str:
    """The SFT mixture: over-checked on easy problems, truncated / recovered on hard ones, concise otherwise."""
    u = rng.random()
    if k <= cfg.easy_max and u < cfg.p_overcheck:
        return "overcheck"
    if k >= cfg.hard_min and u < cfg.p_truncate:
        return "truncate"
    if k >= cfg.hard_min and u < cfg.p_truncate + cfg.p_recover:
        return "recover"
    return "concise"


def build_corpus(cfg: WorldConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SFT corpus: ids (N, P + R), attention mask, loss mask on the response (through EOS)."""
    v, rng = cfg.vocab, np.random.default_rng(cfg.seed)
    R = cfg.max_new_tokens
    problems = sample_problems(cfg.corpus_size, cfg.k_train, cfg.modulus, rng, cfg.op_signs)
    prompts, pmask = encode_prompts(problems, v, cfg.k_max)
    resp = torch.full((len(problems), R), v.pad, dtype=torch.long)
    rmask = torch.zeros_like(resp)
    for b, p in enumerate(problems):
        t = trace(p, v, trace_kind(cfg, p.k, rng), rng, cfg.p_guess_partial, cfg.cut_step)[:R]
        resp[b, : len(t)] = torch.tensor(t)
        rmask[b, : len(t)] = 1
    ids = torch.cat([prompts, resp], 1)
    return ids, torch.cat([pmask, rmask], 1), torch.cat([torch.zeros_like(pmask), rmask], 1)


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


@dataclass
class TraceStats:
    """One response: correctness, thinking tokens and steps, redundant steps after the chain, flags."""

    correct: bool
    think_len: int
    n_steps: int
    redundant_steps: int
    overthink: bool
    underthink: bool
    closed: bool
    reflections: int


def analyse(p: Problem, response, v: Vocab) -> TraceStats:
    """Step i of the thinking computes p_i, so the chain is complete after k + 1 steps. Over-thinking: at least one
    step after that (the answer was already reached). Under-thinking: END before step k (a premature answer)."""
    segs, closed = segments(response, v)
    r = [int(t) for t in response]
    think_len = r.index(v.end) if closed else sum(len(s) for s in segs)
    redundant = max(0, len(segs) - (p.k + 1))
    return TraceStats(
        correct=verify(p, r, v),
        think_len=think_len,
        n_steps=len(segs),
        redundant_steps=redundant,
        overthink=redundant > 0,
        underthink=closed and len(segs) < p.k + 1,
        closed=closed,
        reflections=sum(t in v.reflection for t in r[:think_len]),
    )


def summarise(problems: list[Problem], responses: torch.Tensor, v: Vocab) -> dict[int, dict[str, float]]:
    """Per difficulty k: accuracy, mean thinking tokens / steps, over- and under-thinking rates."""
    by_k: dict[int, list[TraceStats]] = {}
    for p, r in zip(problems, responses, strict=True):
        by_k.setdefault(p.k, []).append(analyse(p, r.tolist(), v))
    out = {}
    for k, st in sorted(by_k.items()):
        out[k] = {
            "accuracy": float(np.mean([s.correct for s in st])),
            "think_len": float(np.mean([s.think_len for s in st])),
            "n_steps": float(np.mean([s.n_steps for s in st])),
            "redundant_steps": float(np.mean([s.redundant_steps for s in st])),
            "overthink": float(np.mean([s.overthink for s in st])),
            "underthink": float(np.mean([s.underthink for s in st])),
            "unclosed": float(np.mean([not s.closed for s in st])),
            "n": len(st),
        }
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
        return sample_problems(n, ks, self.cfg.modulus, np.random.default_rng(seed), self.cfg.op_signs)

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


def new_model(cfg: WorldConfig) -> nn.Module:
    return tiny_lm(
        cfg.vocab.size,
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        max_len=cfg.max_prompt_len + cfg.max_new_tokens,
        seed=cfg.seed,
    )


def build_world(cfg: WorldConfig = WorldConfig(), *, cache: bool = True, verbose: bool = False) -> ReasoningWorld:
    """SFT the base model on the trace mixture, or load it from `.cache/reasoning_world/<config hash>/`."""
    torch.set_num_threads(1)  # tiny models: a second OpenMP thread only spins on a shared 2-core machine
    cache_dir = cache_root() / "reasoning_world" / config_hash(cfg)
    path = cache_dir / "model.pt"
    model = new_model(cfg)
    if cache and path.exists():
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        return ReasoningWorld(cfg, model, cache_dir, state["losses"])
    start = time.perf_counter()
    ids, am, lm = build_corpus(cfg)
    losses = sft(
        model, ids, lm, steps=cfg.sft_steps, batch_size=cfg.sft_batch, lr=cfg.sft_lr, attention_mask=am, seed=cfg.seed
    )
    if verbose:
        tail = float(np.mean(losses[-20:]))
        print(f"[reasoning world] SFT loss {losses[0]:.3f} -> {tail:.3f} in {time.perf_counter() - start:.0f} s")
    if cache:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"model": model.state_dict(), "losses": losses}, tmp)
        os.replace(tmp, path)
        (cache_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    return ReasoningWorld(cfg, model, cache_dir, losses)


SMOKE_WORLD = WorldConfig(corpus_size=2000, d_model=32, n_layers=2, n_heads=2, sft_steps=40, sft_batch=32, k_max=8)
"""A seconds-scale world for the smoke tier (it learns little; it proves the pipeline runs)."""


# --------------------------------------------------------------------------- demo: the world's properties


@dataclass
class DemoConfig(RunConfig):
    """Reasoning world demo: accuracy, thinking length and over-/under-thinking rates of the SFT'd base model."""

    world: str = "default"
    """Which world: "default" (WorldConfig()) or "smoke" (SMOKE_WORLD)."""
    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8])
    """Difficulties evaluated (k > max(k_train) would be unseen in SFT)."""
    n_per_k: int = 200
    """Problems per difficulty and seed."""
    temperature: float = 0.7
    """Sampling temperature (the ReBalance paper decodes at 0.7)."""
    top_p: float = 0.95
    """Nucleus mass."""

    def validate(self) -> None:
        super().validate()
        ensure(self.world in ("default", "smoke"), "world", f"must be default or smoke, got {self.world!r}")
        check_positive(self, "ks", "n_per_k", "temperature")
        check_fraction(self, "top_p", upper_open=False)

    def world_config(self) -> WorldConfig:
        return SMOKE_WORLD if self.world == "smoke" else WorldConfig()


DEMO_PRESETS = {
    "smoke": DemoConfig(preset="smoke", seeds=1, world="smoke", ks=[1, 4, 8], n_per_k=16),
    "quick": DemoConfig(preset="quick", seeds=3),
    "full": DemoConfig(preset="full", seeds=5, n_per_k=1000),
}

METRICS = ("accuracy", "think_len", "n_steps", "overthink", "underthink", "unclosed")


def demo_run(cfg: DemoConfig) -> list[dict]:
    wc = cfg.world_config()
    world = build_world(wc, verbose=True)
    rows = [record("sft", 0, "loss", x, step=i) for i, x in enumerate(world.sft_losses) if i % 10 == 0]
    if world.sft_losses:
        rows.append(record("sft", 0, "final_loss", float(np.mean(world.sft_losses[-20:]))))
    for seed in cfg.seed_list():
        problems = [p for k in cfg.ks for p in world.problems(cfg.n_per_k, k, seed=1000 + 31 * seed + k)]
        g = world.sample(problems, temperature=cfg.temperature, top_p=cfg.top_p, seed=seed)
        for k, stats in world.evaluate(problems, g.tokens).items():
            for m in METRICS:
                rows.append(record("base", seed, m, stats[m], k=k))
        if seed == 0:
            for p, r in list(zip(problems, g.tokens, strict=True))[:: cfg.n_per_k][:6]:
                print(f"  k={p.k}: {world.v.decode(prompt_tokens(p, world.v, wc.k_max))} → {world.v.decode(r)}")
    return rows


def _rate(rows, metric, ks) -> float:
    from common.results import select

    return float(np.mean([r["value"] for r in select(rows, method="base", metric=metric) if r["k"] in ks]))


def demo_claims(rows: list[dict], cfg: DemoConfig) -> list[Claim]:
    wc = cfg.world_config()
    seen = [k for k in cfg.ks if k <= max(wc.k_train)]
    easy = [k for k in seen if k <= wc.easy_max]
    hard = [k for k in seen if k >= wc.hard_min]
    table = {k: {m: _rate(rows, m, [k]) for m in ("accuracy", "think_len", "overthink", "underthink")} for k in cfg.ks}
    print("  k | accuracy | thinking tokens | over-thinking | under-thinking")
    for k, s in table.items():
        print(f"  {k:2d} | {s['accuracy']:.3f} | {s['think_len']:.1f} | {s['overthink']:.3f} | {s['underthink']:.3f}")
    o_e, o_h = _rate(rows, "overthink", easy), _rate(rows, "overthink", hard)
    u_e, u_h = _rate(rows, "underthink", easy), _rate(rows, "underthink", hard)
    a1, ak = _rate(rows, "accuracy", [min(seen)]), _rate(rows, "accuracy", [max(seen)])
    lens = [table[k]["think_len"] for k in seen]
    return [
        Claim(
            "1-overthinks-easy",
            f"over-thinking rate (redundant steps after the answer) on easy k ≤ {wc.easy_max} is ≥ 0.2 and ≥ 2× "
            f"that on hard k ≥ {wc.hard_min}",
            {"easy": o_e, "hard": o_h},
            o_e >= 0.2 and o_e >= 2 * o_h,
        ),
        Claim(
            "2-underthinks-hard",
            f"under-thinking rate (answer before step k) on hard k ≥ {wc.hard_min} is ≥ 0.15 and ≥ 2× that on easy",
            {"hard": u_h, "easy": u_e},
            u_h >= 0.15 and u_h >= 2 * u_e,
        ),
        Claim(
            "3-difficulty-knob",
            f"accuracy falls with difficulty: acc(k={min(seen)}) − acc(k={max(seen)}) ≥ 0.2; thinking length grows "
            "with k (Spearman ρ ≥ 0.8 over seen k)",
            {"acc_easiest": a1, "acc_hardest": ak, "spearman": _spearman(seen, lens)},
            a1 - ak >= 0.2 and _spearman(seen, lens) >= 0.8,
        ),
        Claim(
            "4-thinking-pays",
            "the model solves problems when it completes the chain: accuracy on easy k ≤ 3 ≥ 0.7",
            {"acc_easy": _rate(rows, "accuracy", easy)},
            _rate(rows, "accuracy", easy) >= 0.7,
        ),
    ]


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic) if len(x) > 1 else float("nan")


def demo_figure(rows: list[dict], cfg: DemoConfig, path) -> None:
    """Accuracy, thinking length and over-/under-thinking rates by difficulty k; SFT loss."""
    import matplotlib.pyplot as plt

    from common.results import select

    fig, ax = plt.subplots(1, 4, figsize=(15, 3.6))
    for a, metrics in zip(ax[:3], (("accuracy",), ("think_len",), ("overthink", "underthink")), strict=True):
        for m in metrics:
            a.plot(cfg.ks, [_rate(rows, m, [k]) for k in cfg.ks], "o-", label=m)
        a.set(xlabel="difficulty k (operations)", title=" / ".join(metrics))
        a.axvline(max(cfg.world_config().k_train) + 0.5, color="grey", ls=":", lw=1)
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    loss = select(rows, method="sft", metric="loss")
    ax[3].plot([r["step"] for r in loss], [r["value"] for r in loss])
    ax[3].set(xlabel="SFT step", title="SFT loss")
    ax[3].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    from common.cli import main

    sys.exit(
        main(
            paper="reasoning_world",
            config_cls=DemoConfig,
            presets=DEMO_PRESETS,
            run=demo_run,
            claims=demo_claims,
            figure=demo_figure,
        )
    )
