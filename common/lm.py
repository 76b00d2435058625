"""Tiny causal language models built in code from `transformers` configs, SFT, and fast batched generation.

- `tiny_lm(vocab_size, ...)`: a Llama- or GPT-2-style model with a few layers and a small vocabulary,
  randomly initialised from a seed (no download). `pretrained(name)` (model and tokenizer through
  `from_pretrained`) is the path `full` presets use.
- `sft(model, tokens, loss_mask, ...)`: next-token cross-entropy on the masked positions.
- `generate(model, prompts, ...)`: batched sampling with a KV cache (temperature, top-p, EOS), returning
  the response tokens, their log-probs under the sampling distribution and the response mask; hidden
  states / attentions of the sampled tokens on request.
- `response_logprobs(model, prompts, responses)`: teacher-forced per-token log-probs (and last hidden
  states, for value heads) of responses given prompts — what PPO / DPO need.

Prompts are left-padded (`prompt_mask` 0 on the pads); positions are counted from the first real token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from reprozoo.common import hf
from reprozoo.common.policy import (
    logprobs_from_hidden,
    logprobs_from_logits,
    response_mask,
    sample_from_logits,
)
from reprozoo.common.progress import track

Arch = Literal["llama", "gpt2"]


def tiny_lm(
    vocab_size: int,
    *,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    max_len: int = 64,
    arch: Arch = "llama",
    seed: int = 0,
    attn_implementation: str = "sdpa",
    tie_embeddings: bool = False,
) -> nn.Module:
    """A randomly initialised causal LM (`transformers` model built from a config in code, seeded)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
    torch.manual_seed(seed)
    if arch == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=d_model,
            intermediate_size=4 * d_model,
            num_hidden_layers=n_layers,
            num_attention_heads=n_heads,
            num_key_value_heads=n_heads,
            max_position_embeddings=max_len,
            tie_word_embeddings=tie_embeddings,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
        )
        cfg._attn_implementation = attn_implementation
        return LlamaForCausalLM(cfg).eval()
    if arch == "gpt2":
        cfg = GPT2Config(
            vocab_size=vocab_size,
            n_embd=d_model,
            n_layer=n_layers,
            n_head=n_heads,
            n_positions=max_len,
            tie_word_embeddings=tie_embeddings,
            bos_token_id=None,
            eos_token_id=None,
        )
        cfg._attn_implementation = attn_implementation
        return GPT2LMHeadModel(cfg).eval()
    raise ValueError(f"unknown arch {arch!r}; choose llama or gpt2")


def from_pretrained(
    name: str, *, dtype: torch.dtype | None = None, device: str | torch.device | None = None, **kwargs
) -> nn.Module:
    """`AutoModelForCausalLM.from_pretrained(name)` (used by `full` presets; needs the weights locally or online)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **kwargs)
    return model.to(device) if device is not None else model


def pretrained(name: str, **kwargs) -> tuple[nn.Module, object]:
    """The model and its tokenizer from `from_pretrained(name)` (a hub name or a saved folder), for `full` presets:
    a frozen model (`hf.frozen_dtype()`: bf16 on GPUs that support it, float32 elsewhere) on this process's device."""
    from transformers import AutoTokenizer

    model = from_pretrained(name, dtype=hf.frozen_dtype(), device=hf.device(), **kwargs)
    return model.eval(), AutoTokenizer.from_pretrained(name)


def backbone(model: nn.Module) -> nn.Module:
    """The transformer body of a causal LM (no LM head): `.model` (Llama) or `.transformer` (GPT-2)."""
    return getattr(model, "base_model", model)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids counted from the first non-pad token: cumsum(mask) − 1, clamped at 0."""
    return (mask.long().cumsum(-1) - 1).clamp_min(0)


# --- SFT ---


def sft(
    model: nn.Module,
    tokens: torch.Tensor,
    loss_mask: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    attention_mask: torch.Tensor | None = None,
    seed: int = 0,
    weight_decay: float = 0.0,
    description: str = "SFT",
) -> list[float]:
    """Minimise L = −Σ_t m_t log π(x_t | x_<t) / Σ_t m_t over random minibatches; returns the loss per step.

    `loss_mask[:, t]` = 1 where token t is a target (e.g. the response part). Progress is shown as `description`.
    """
    n = tokens.shape[0]
    device = next(model.parameters()).device
    attention_mask = torch.ones_like(tokens) if attention_mask is None else attention_mask
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10)))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in track(range(steps), description):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        x, m, am = tokens[idx].to(device), loss_mask[idx].to(device), attention_mask[idx].to(device)
        logits = model(input_ids=x, attention_mask=am, position_ids=positions(am)).logits[:, :-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, x[:, 1:, None]).squeeze(-1)
        mm = m[:, 1:].float()
        loss = -(logp * mm).sum() / mm.sum().clamp_min(1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


# --- generation ---


@dataclass
class Generation:
    """Sampled responses: tokens (B, T), log-probs under the sampling distribution (B, T), mask (B, T)."""

    tokens: torch.Tensor
    logprobs: torch.Tensor
    mask: torch.Tensor
    hidden_states: torch.Tensor | None = None  # (B, T, d) last-layer states that produced each token
    attentions: list[torch.Tensor] | None = None  # per step: tuple over layers of (B, H, 1, S)

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(-1)


@torch.no_grad()
def generate(
    model: nn.Module,
    prompts: torch.Tensor,
    *,
    max_new_tokens: int,
    prompt_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_id: int | None = None,
    pad_id: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    output_hidden_states: bool = False,
    output_attentions: bool = False,
) -> Generation:
    """Sample y_t ∼ softmax(z_t/τ) (top-p nucleus) for t = 1..max_new_tokens with a KV cache, in batches.

    After a row emits `eos_id` it keeps emitting `pad_id` (default: eos_id), masked out of `mask`.
    """
    if batch_size is not None and batch_size < prompts.shape[0]:
        parts = [
            generate(
                model,
                prompts[i : i + batch_size],
                max_new_tokens=max_new_tokens,
                prompt_mask=None if prompt_mask is None else prompt_mask[i : i + batch_size],
                temperature=temperature,
                top_p=top_p,
                eos_id=eos_id,
                pad_id=pad_id,
                generator=generator,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
            )
            for i in range(0, prompts.shape[0], batch_size)
        ]
        return Generation(
            torch.cat([p.tokens for p in parts]),
            torch.cat([p.logprobs for p in parts]),
            torch.cat([p.mask for p in parts]),
            torch.cat([p.hidden_states for p in parts]) if output_hidden_states else None,
            sum((p.attentions for p in parts), []) if output_attentions else None,
        )
    device = next(model.parameters()).device
    am = torch.ones_like(prompts) if prompt_mask is None else prompt_mask
    prompts, am = prompts.to(device), am.to(device)
    pad_id = eos_id if pad_id is None else pad_id
    B = prompts.shape[0]
    done = torch.zeros(B, dtype=torch.bool, device=device)
    toks, logps, hids, atts = [], [], [], []
    out = model(
        input_ids=prompts,
        attention_mask=am,
        position_ids=positions(am),
        use_cache=True,
        output_hidden_states=output_hidden_states,
        output_attentions=output_attentions,
    )
    pos = positions(am)[:, -1:]
    for _ in range(max_new_tokens):
        logits = out.logits[:, -1].float()
        tok, lp = sample_from_logits(logits, temperature=temperature, top_p=top_p, generator=generator)
        if eos_id is not None:
            tok = torch.where(done, torch.full_like(tok, pad_id), tok)
            lp = torch.where(done, torch.zeros_like(lp), lp)
            done = done | (tok == eos_id)
        toks.append(tok)
        logps.append(lp)
        if output_hidden_states:
            hids.append(out.hidden_states[-1][:, -1])
        if output_attentions:
            atts.append(out.attentions)
        if len(toks) == max_new_tokens or (eos_id is not None and bool(done.all())):
            break
        am = torch.cat([am, torch.ones_like(tok[:, None])], dim=1)
        pos = pos + 1
        out = model(
            input_ids=tok[:, None],
            attention_mask=am,
            position_ids=pos,
            **_cache_kwarg(out),
            use_cache=True,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
    T = len(toks)
    tokens = torch.stack(toks, 1)
    if T < max_new_tokens:  # every row finished early: pad to a fixed width
        fill = torch.full((B, max_new_tokens - T), pad_id, dtype=tokens.dtype, device=device)
        tokens = torch.cat([tokens, fill], 1)
        logps.extend([torch.zeros(B, device=device)] * (max_new_tokens - T))
    logprobs = torch.stack(logps, 1)
    hidden = torch.stack(hids, 1) if output_hidden_states else None
    if hidden is not None and T < max_new_tokens:
        hidden = torch.cat([hidden, hidden.new_zeros(B, max_new_tokens - T, hidden.shape[-1])], 1)
    return Generation(tokens, logprobs, response_mask(tokens, eos_id), hidden, atts if output_attentions else None)


def _cache_kwarg(out) -> dict:
    """transformers ≥ 5.x calls the KV cache `cache`; older releases `past_key_values`."""
    if "cache" in out:
        return {"cache": out["cache"]}
    return {"past_key_values": out.past_key_values}


def response_logprobs(
    model: nn.Module,
    prompts: torch.Tensor,
    responses: torch.Tensor,
    *,
    prompt_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    return_hidden: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced log π(y_t | x, y_<t) for every response position (B, T); with `return_hidden` also the
    last-layer hidden states (B, T, d) that predict each y_t (the input of a value head)."""
    pm = torch.ones_like(prompts) if prompt_mask is None else prompt_mask
    ids = torch.cat([prompts, responses], 1)
    am = torch.cat([pm, torch.ones_like(responses)], 1)
    P = prompts.shape[1]
    # a model whose forward post-processes the logits runs through its own forward (Gemma2's
    # final_logit_softcapping: skipping it moves log-probs by nats)
    if getattr(getattr(model, "config", None), "final_logit_softcapping", None) is not None:
        out = model(input_ids=ids, attention_mask=am, position_ids=positions(am), output_hidden_states=True)
        logp = logprobs_from_logits(out.logits[:, P - 1 : -1].float(), responses, temperature)
        return (logp, out.hidden_states[-1][:, P - 1 : -1]) if return_hidden else logp
    head = model.get_output_embeddings()
    hidden = backbone(model)(input_ids=ids, attention_mask=am, position_ids=positions(am)).last_hidden_state
    hidden = hidden[:, P - 1 : -1]
    if getattr(head, "bias", None) is not None:
        raise ValueError("response_logprobs expects a bias-free LM head")
    logp = logprobs_from_hidden(hidden, head.weight, responses, temperature=temperature)
    return (logp, hidden) if return_hidden else logp


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
