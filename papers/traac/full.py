"""TRAAC at paper scale on TRL's GRPO trainer: a Hugging Face reasoning model, DAPO-Math-17k, math benchmarks.

The official code runs on verl (vLLM rollouts, FSDP); here TRL 1.16's `GRPOTrainer` carries the RL, and the paper's
parts are plugged into its extension points, calling papers/traac/method.py (one definition of the method):
- `Rollouts` (TRL `rollout_func`): samples the group's responses with the policy, labels each prompt's difficulty
  from the group pass rate (`method.difficulty_bucket`), compresses the correct, well-formatted ones with the frozen
  initial model as attention scorer (official `model_host_qwen.py` input "<think>" + thinking + "Time is up. …" +
  "</think>"; `method.trigger_attention` over the first half of the layers, TRAAC's official marker segmentation
  `common.verify.traac_steps`, `method.step_importance`, `method.compress`), regenerates the answer after the
  compressed thinking with the policy, and pools original and compressed responses per prompt (`method.pool`);
- `TraacReward` (a stateful TRL reward function): R = 4·correct + 0.25·soft + 0.25·hard + 1[correct]·s_d·L_norm with
  the per-bucket history of correct lengths of the last 10 batches (`method.LengthHistory`, `method.length_norm`,
  `method.traac_reward`); correctness by `common.verify.is_correct` (math-verify, as the official
  `math_verify_sum.py`);
- GRPO settings of the official script (`run_qwen3-4b-with-summary-linear-reward-attention.sh`): clip ε = 0.2 /
  ε_high = 0.28, token-mean loss (TRL `loss_type="dapo"`), k3 KL to the initial model with β = 0.001, lr 1e-6 with 10
  warm-up steps, weight decay 0.1, 8 prompts × 8 rollouts, max response 10,000 tokens, 2 epochs.
Evaluation: the trained policy (and the base model) answer the evaluation set, scored by `is_correct`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import ensure
from reprozoo.common.data.math import MathProblem, load_math
from reprozoo.common.hf import bf16_supported, changed_fraction, frozen_dtype, load_policy
from reprozoo.common.results import record
from reprozoo.common.verify import THINK_TAGS, family_of, is_correct, thinking_prompt, traac_steps
from reprozoo.papers.traac import experiment
from reprozoo.papers.traac import method as M
from reprozoo.papers.traac.baselines import VARIANTS, Variant, correctness_reward, length_penalty_reward


@dataclass
class Config(experiment.Config):
    """TRAAC: the reasoning-world options plus those of the paper-scale run (`--preset full`, a Hugging Face model)."""

    dataset: str = "BytedTsinghua-SIA/DAPO-Math-17k"
    """full: RL prompts, hub id[:config] or local save_to_disk folder / parquet / json file in verl's DAPO layout or a
    MATH / GSM8K / AIME layout (official: DAPO-Math-17k, `data.train_files`)."""
    eval_dataset: str = "HuggingFaceH4/aime_2024"
    """full: evaluation set, same forms (paper: AIME, AMC, GPQA-D, BBEH)."""
    max_steps: int = 0
    """full: stop after this many optimiser steps (0: the official 2 epochs over the prompts)."""
    max_samples: int | None = None
    """full: use at most this many training prompts and evaluation problems (default: all)."""
    max_new_tokens: int = 10000
    """full: max response tokens of rollouts and evaluation (official `data.max_response_length=10000`)."""

    def validate(self) -> None:
        super().validate()
        ensure(self.max_steps >= 0, "max_steps", f"must be >= 0, got {self.max_steps}")
        ensure(self.max_new_tokens > 0, "max_new_tokens", f"must be > 0, got {self.max_new_tokens}")
        ensure(
            self.max_samples is None or self.max_samples >= 1, "max_samples", f"must be >= 1, got {self.max_samples}"
        )


PRESETS = {name: Config(**vars(preset)) for name, preset in experiment.PRESETS.items()}
"""The reasoning-world presets unchanged; `full` runs papers/traac/full.py on its Hugging Face model."""

CUE = (
    "Time is up. I should stop thinking and now write a summary containing all key steps required to solve the problem."
)
"""The official stop-and-summarise cue between the thinking and `</think>` in the scorer's input
(`vllm_rollout_spmd.summarize_attention_weights`)."""


@dataclass
class Tags:
    """Token ids of a model family's thinking tags, its EOS, and the scorer's cue."""

    open_ids: list[int]
    close_id: int
    eos_id: int
    cue_ids: list[int]
    close: str

    @classmethod
    def of(cls, tok, family: str) -> Tags:
        open_tag, close_tag = THINK_TAGS[family]
        close_id = tok.convert_tokens_to_ids(close_tag)
        if close_id is None or close_id == tok.unk_token_id:
            raise ValueError(f"the tokenizer has no {close_tag} token")
        enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        return cls(enc(open_tag), close_id, tok.eos_token_id, enc(CUE), close_tag)


def response_ids(ids: list[int], eos: int, pad: int | None) -> list[int]:
    """Generated ids up to and including EOS, padding dropped."""
    out = []
    for t in ids:
        if t == pad and t != eos:
            break
        out.append(t)
        if t == eos:
            break
    return out


def format_flags(ids: list[int], tags: Tags) -> tuple[bool, bool]:
    """(soft, hard) format of a response that starts inside the thinking span opened by the prompt: exactly one
    `</think>` (official soft: one `<think>` and one `</think>`); a `</think>` closing it (official hard)."""
    n = ids.count(tags.close_id)
    return n == 1, n >= 1


@torch.no_grad()
def sample(model, tok, prompt_ids: list[list[int]], *, max_new_tokens: int, temperature: float, top_p: float):
    """One sampled continuation per prompt (left-padded batch through `generate`; bf16 autocast on a bf16 GPU, the
    weights being fp32 master weights), EOS-terminated id lists."""
    width = max(len(p) for p in prompt_ids)
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
    dev = next(model.parameters()).device
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda" and bf16_supported()):
        out = model.generate(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            top_k=0,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            eos_token_id=tok.eos_token_id,
        )
    return [response_ids(row[width:].tolist(), tok.eos_token_id, pad) for row in out.cpu()]


@torch.no_grad()
def step_importance(scorer, tags: Tags, tok, thinking: list[int], kind: str) -> tuple[torch.Tensor, list[list[int]]]:
    """Importance of each step of the scorer input "<think>" + thinking + cue + "</think>" (official host), and the
    steps' token positions in that input. "attention": the `</think>` row of the attention, heads and the first half
    of the layers averaged (`method.trigger_attention`); "confidence": mean token confidence (top-20)."""
    ids = tags.open_ids + thinking + tags.cue_ids + [tags.close_id]
    x = torch.tensor([ids], device=next(scorer.parameters()).device)
    rows: list[torch.Tensor] = []
    hooks = []
    if kind == "attention":
        for layer in scorer.model.layers:  # keep only the last query row of each layer's attention weights
            hooks.append(layer.self_attn.register_forward_hook(lambda m, a, out: rows.append(out[1][0, :, -1:, :])))
    try:
        logits = scorer(input_ids=x, output_attentions=(kind == "attention")).logits[0]
    finally:
        for h in hooks:
            h.remove()
    if kind == "attention":
        scores = M.trigger_attention([r.float().cpu() for r in rows], query=0)
    else:
        top = torch.log_softmax(logits.float(), -1).topk(min(20, logits.shape[-1]), -1).values
        scores = torch.cat([torch.zeros(1), M.token_confidence(top[:-1].cpu())])  # position t scored by t−1's law
    steps = traac_steps(tok.convert_ids_to_tokens(ids))
    return M.step_importance(scores, steps), steps


@dataclass
class Rollouts:
    """TRL `rollout_func`: sampling, difficulty, attentive compression, regeneration and pooling (module docstring).

    Per process its slice of the generation batch arrives as `num_generations` consecutive copies of each prompt
    (TRL's RepeatSampler); the slice must hold whole groups (checked)."""

    answers: dict[str, tuple[str, str]]  # question text → (gold answer, convention)
    variant: Variant
    scorer: torch.nn.Module | None
    tok: object
    family: str
    group: int
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    force_gate_open: bool = False  # tests: U := 0 so every eligible response loses steps (the gate cannot block)
    calls: int = 0
    stats: list[dict] = field(default_factory=list)

    def __call__(self, prompts: list, trainer) -> dict:
        tok, G = self.tok, self.group
        tags = Tags.of(tok, self.family)
        if len(prompts) % G or any(prompts[i] != prompts[i - i % G] for i in range(len(prompts))):
            raise ValueError(f"each process must receive whole groups of {G} identical prompts (TRL RepeatSampler)")
        texts = [thinking_prompt(tok, list(p), self.family) for p in prompts]
        prompt_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        policy = trainer.accelerator.unwrap_model(trainer.model)
        was_training = policy.training
        policy.eval()
        try:
            out = sample(policy, tok, prompt_ids, **self._sampling(self.max_new_tokens))
            answers = [self.answers[_question(p)] for p in prompts]
            decoded = [tok.decode(o, skip_special_tokens=False) for o in out]
            correct = [is_correct(d, a, c, close=tags.close) for d, (a, c) in zip(decoded, answers, strict=True)]
            rates = [float(np.mean(correct[g : g + G])) for g in range(0, len(out), G)]
            buckets = [M.difficulty_bucket(r) for r in rates for _ in range(G)]
            compressed = self._compress(policy, tags, prompt_ids, out, correct, buckets)
        finally:
            policy.train(was_training)
        rng = np.random.default_rng([self.seed, self.calls])
        pooled, is_comp = [], []
        for g in range(0, len(out), G):
            originals = [(o, False) for o in out[g : g + G]]
            extra = [(c, True) for i, c in compressed.items() if g <= i < g + G]
            for ids, flag in M.pool(originals, extra, G, rng):
                pooled.append(ids)
                is_comp.append(flag)
        self.stats.append({"compressed": len(compressed), "pooled_compressed": sum(is_comp), "rows": len(out)})
        self.calls += 1
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": pooled,
            "logprobs": [[0.0] * len(c) for c in pooled],  # only read by vLLM importance sampling (off here)
            "bucket": buckets,
            "compressed": is_comp,
        }

    def _sampling(self, max_new_tokens: int) -> dict:
        return {"max_new_tokens": max_new_tokens, "temperature": self.temperature, "top_p": self.top_p}

    def _compress(self, policy, tags, prompt_ids, out, correct, buckets) -> dict[int, list[int]]:
        """{row: compressed response} for the correct, well-formatted rows that lost at least one step."""
        if self.variant.compression is None:
            return {}
        kept_rows, heads = {}, []
        for i, ids in enumerate(out):
            if not (correct[i] and all(format_flags(ids, tags))):
                continue
            thinking = ids[: ids.index(tags.close_id)]
            imp, steps = step_importance(self.scorer, tags, self.tok, thinking, self.variant.compression)
            target = M.TARGET_REDUCTION[buckets[i]] if self.variant.difficulty else M.NO_DIFFICULTY_TARGET
            if self.force_gate_open:
                evicted = M.steps_to_evict(imp, M.eviction_fraction(0.0, target))
            else:
                evicted, _, _ = M.compress(imp, target, gate=(self.variant.compression == "attention"))
            if not evicted:
                continue
            lo = len(tags.open_ids)  # positions of the thinking inside the scorer input
            keep = [p - lo for j, s in enumerate(steps) if j not in evicted for p in s if lo <= p < lo + len(thinking)]
            kept_rows[i] = [thinking[p] for p in keep]
            heads.append(i)
        if not heads:
            return {}
        regen_prompts = [prompt_ids[i] + kept_rows[i] + [tags.close_id] for i in heads]
        budget = max(1, self.max_new_tokens - max(len(kept_rows[i]) for i in heads) - 1)
        answers = sample(policy, self.tok, regen_prompts, **self._sampling(budget))
        return {i: kept_rows[i] + [tags.close_id] + a for i, a in zip(heads, answers, strict=True)}


def _question(messages) -> str:
    """The last user turn of a chat prompt (the key of the answer table)."""
    return next(m["content"] for m in reversed(list(messages)) if m["role"] == "user")


@dataclass
class TraacReward:
    """Stateful TRL reward function: each method's reward, with TRAAC's per-bucket length history."""

    variant: Variant
    tok: object
    family: str
    group: int
    max_len: int
    history: M.LengthHistory
    log: list[dict] = field(default_factory=list)

    def __call__(self, prompts, completions, completion_ids, answer, convention, bucket=None, **kw) -> list[float]:
        tags = Tags.of(self.tok, self.family)
        texts = [self.tok.decode(ids, skip_special_tokens=False) for ids in completion_ids]
        correct = [is_correct(t, a, c, close=tags.close) for t, a, c in zip(texts, answer, convention, strict=True)]
        flags = [format_flags(list(ids), tags) for ids in completion_ids]
        lengths = [len(ids) for ids in completion_ids]
        if bucket is None:  # no rollout hook: the bucket from this group's pass rate
            G = self.group
            bucket = [
                M.difficulty_bucket(float(np.mean(correct[i - i % G : i - i % G + G]))) for i in range(len(texts))
            ]
        keys = list(bucket) if self.variant.difficulty else ["all"] * len(texts)
        if self.variant.reward == "traac":
            this_batch: dict[str, list[float]] = {k: [] for k in keys}
            for k, ok, n in zip(keys, correct, lengths, strict=True):
                if ok:
                    this_batch[k].append(n)
            self.history.add_batch(this_batch)
        out = []
        for i in range(len(texts)):
            if self.variant.reward == "correct":
                out.append(correctness_reward(correct[i]))
            elif self.variant.reward == "length_penalty":
                out.append(length_penalty_reward(correct[i], *flags[i], lengths[i], self.max_len))
            else:
                l_norm = M.length_norm(lengths[i], self.history.lengths(keys[i]))
                out.append(
                    M.traac_reward(correct[i], *flags[i], l_norm, bucket[i] if self.variant.difficulty else None)
                )
        step = int(getattr(kw.get("trainer_state"), "global_step", 0))
        self.log.append({"step": step, "reward": float(np.mean(out)), "length": float(np.mean(lengths))})
        self.log[-1]["accuracy"] = float(np.mean(correct))
        return out


EPOCHS = 2
"""Official `trainer.total_epochs=2` over the DAPO-Math prompts."""
WARMUP_STEPS = 10
"""Official `actor.optim.lr_warmup_steps=10` (constant learning rate afterwards)."""
MICRO_BATCH = 2
"""Responses per forward / backward pass: a 10k-token response's logits alone are 10k × 152k × 2 B ≈ 3 GB in bf16."""
WEIGHT_DECAY = 0.1
"""Official `actor.optim.weight_decay=0.1` (AdamW)."""


def grpo_config(cfg, out_dir: str, n_processes: int):
    """TRL `GRPOConfig` with the official GRPO settings (module docstring). One generation batch = prompts_per_step
    × group_size responses over all processes (each process gets whole groups); each optimiser step takes
    1/minibatches of it (official mini-batch), in micro-batches of `MICRO_BATCH` responses (gradient accumulation)."""
    from trl import GRPOConfig

    rows = cfg.prompts_per_step * cfg.group_size
    if rows % (n_processes * cfg.group_size):
        raise ValueError(f"prompts_per_step={cfg.prompts_per_step} must be a multiple of the {n_processes} processes")
    per_process = rows // n_processes
    micro = min(MICRO_BATCH, per_process)
    if per_process % (micro * cfg.minibatches):
        raise ValueError(f"minibatches={cfg.minibatches} must divide the {per_process // micro} micro-batches")
    steps_per_generation = per_process // micro
    return GRPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=steps_per_generation // cfg.minibatches,
        steps_per_generation=steps_per_generation,
        num_generations=cfg.group_size,
        num_iterations=1,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.rollout_temperature,
        top_p=cfg.rollout_top_p,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=WARMUP_STEPS,
        weight_decay=WEIGHT_DECAY,
        max_grad_norm=cfg.grad_clip,
        beta=cfg.beta,
        epsilon=cfg.clip_low,
        epsilon_high=cfg.clip_high,
        loss_type="dapo",
        scale_rewards="group",
        num_train_epochs=EPOCHS,
        max_steps=cfg.max_steps or -1,
        gradient_checkpointing=torch.cuda.is_available(),
        bf16=bf16_supported(),
        logging_steps=1,
        save_steps=cfg.checkpoint_every or 50,
        report_to="none",
        seed=0,
        use_vllm=False,
    )


def train_dataset(problems: list[MathProblem]):
    """TRL's conversational prompt column plus the gold answer and its convention (passed to the reward)."""
    import datasets

    return datasets.Dataset.from_list(
        [{"prompt": p.chat(), "answer": p.answer, "convention": p.convention} for p in problems]
    )


def train(cfg, method: str, seed: int, problems: list[MathProblem], out_dir: str, *, force_gate_open: bool = False):
    """GRPO training of one method through TRL; returns the trained policy, the tokenizer and the curve rows."""
    import os

    from transformers import AutoModelForCausalLM
    from trl import GRPOTrainer

    variant = VARIANTS[method]
    torch.manual_seed(seed)
    policy, tok = load_policy(cfg.model)
    before = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    family = family_of(cfg.model)
    scorer = None
    if variant.compression is not None:  # the frozen initial model (official scorer), eager attention for weights
        scorer = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=frozen_dtype(), attn_implementation="eager")
        scorer = scorer.to(next(policy.parameters()).device).eval().requires_grad_(False)
    n_processes = int(os.environ.get("WORLD_SIZE", "1"))
    args = grpo_config(cfg, out_dir, n_processes)
    rollouts = Rollouts(
        answers={p.question: (p.answer, p.convention) for p in problems},
        variant=variant,
        scorer=scorer,
        tok=tok,
        family=family,
        group=cfg.group_size,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.rollout_temperature,
        top_p=cfg.rollout_top_p,
        seed=seed,
        force_gate_open=force_gate_open,
    )
    reward = TraacReward(variant, tok, family, cfg.group_size, cfg.max_new_tokens, M.LengthHistory(cfg.history_batches))
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[reward],
        args=args,
        train_dataset=train_dataset(problems),
        processing_class=tok,
        rollout_func=rollouts,
    )
    resume = cfg.resume and any(p.name.startswith("checkpoint-") for p in Path(out_dir).glob("*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    policy = trainer.accelerator.unwrap_model(trainer.model)
    rows = [record(method, seed, "weights_changed", changed_fraction(before, policy))]
    for i, (r, s) in enumerate(zip(reward.log, rollouts.stats, strict=False)):
        rows += [record(method, seed, m, r[m], step=i) for m in ("reward", "length", "accuracy")]
        rows += [record(method, seed, m, s[m], step=i) for m in ("compressed", "pooled_compressed")]
    return policy, tok, rows


@torch.no_grad()
def evaluate(cfg, policy, tok, problems: list[MathProblem], method: str, seed: int, name: str) -> list[dict]:
    """Accuracy (math-verify after </think>), response and thinking length on the evaluation set."""
    family = family_of(cfg.model)
    tags = Tags.of(tok, family)
    policy.eval()
    torch.manual_seed(60_000 + seed)  # the same sampling stream for every method
    correct, lengths, thinks = [], [], []
    for i in range(0, len(problems), cfg.group_size):
        batch = problems[i : i + cfg.group_size]
        prompt_ids = [tok(thinking_prompt(tok, p.chat(), family), add_special_tokens=False)["input_ids"] for p in batch]
        outs = sample(
            policy,
            tok,
            prompt_ids,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.eval_temperature,
            top_p=cfg.eval_top_p,
        )
        for p, o in zip(batch, outs, strict=True):
            correct.append(
                is_correct(tok.decode(o, skip_special_tokens=False), p.answer, p.convention, close=tags.close)
            )
            lengths.append(len(o))
            thinks.append(o.index(tags.close_id) if tags.close_id in o else len(o))
    tag = {"dataset": name}
    return [
        record(method, seed, "accuracy", float(np.mean(correct)), **tag),
        record(method, seed, "response_len", float(np.mean(lengths)), **tag),
        record(method, seed, "think_len", float(np.mean(thinks)), **tag),
    ]


def method_rows(cfg, method: str, seed: int, train_set, eval_set, out) -> list[dict]:
    """One method × seed: training (none for base) and evaluation."""
    if VARIANTS[method] is None:
        policy, tok = load_policy(cfg.model, train=False)
        rows = []
    else:
        policy, tok, rows = train(cfg, method, seed, train_set, str(out / f"trainer_{method}_{seed}"))
    return rows + evaluate(cfg, policy, tok, eval_set, method, seed, cfg.eval_dataset)


def run(cfg) -> list[dict]:
    """The full preset: every method × seed as a checkpointed unit (--resume); TRL saves its own training
    checkpoints every `--checkpoint-every` steps (default 50) under the run folder and resumes from them."""
    out = Path(cfg.out) if cfg.out is not None else Path("runs") / "traac" / cfg.preset
    train_set = load_math(cfg.dataset, max_rows=cfg.max_samples, prefer="train")
    eval_set = load_math(cfg.eval_dataset, max_rows=cfg.max_samples, prefer="test")
    rows: list[dict] = []
    for seed in cfg.seed_list():
        for method in cfg.methods:
            rows += checkpoint.unit(
                ("full", method, seed), lambda m=method, s=seed: method_rows(cfg, m, s, train_set, eval_set, out)
            )
    return rows


def for_preset(world_fn, full_fn):
    """`world_fn` for the reasoning world, `full_fn` for a Hugging Face model (`--model`), same arguments."""
    return lambda rows, cfg, *rest: (world_fn if cfg.model == "world" else full_fn)(rows, cfg, *rest)


def claims(rows: list[dict], cfg) -> list:
    """No claim is pre-registered for the paper-scale run (it has not been run here): its records are reported."""
    return []


def table(rows: list[dict], cfg) -> str:
    """Per method: evaluation accuracy, response and thinking length (mean over seeds)."""
    from reprozoo.common.results import select

    lines = ["| method | accuracy | response len | think len |", "|---|---|---|---|"]
    for m in cfg.methods:
        v = [
            np.mean([r["value"] for r in select(rows, method=m, metric=k) if "step" not in r] or [np.nan])
            for k in ("accuracy", "response_len", "think_len")
        ]
        lines.append(f"| {m} | {v[0]:.3f} | {v[1]:.1f} | {v[2]:.1f} |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], cfg, path) -> None:
    """Training reward and response length per step, per method."""
    import matplotlib.pyplot as plt

    from reprozoo.common.results import select

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for a, metric in zip(ax, ("reward", "length"), strict=True):
        for m in cfg.methods:
            pts = sorted((r["step"], r["value"]) for r in select(rows, method=m, metric=metric) if "step" in r)
            if pts:
                a.plot(*zip(*pts, strict=True), label=m)
        a.set(xlabel="reward call (generation batch)", ylabel=metric)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
