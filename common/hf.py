"""Hugging Face models for the `full` presets: policies, reward models and gold models by hub id or local folder.

Precision. A model that is *trained* is loaded in float32 whatever its checkpoint's dtype (hub checkpoints are often
bf16): those are the master weights, and the framework's mixed precision (`accelerate` / TRL `bf16=True`, see
`mixed_precision()`) runs the forward and backward in bf16 on GPUs that support it. Plain Adam on bf16 weights makes
no update at small learning rates (bf16 has 8 mantissa bits: w + 1e-6·w rounds back to w), which is why the
project's own loops refuse it (`refuse_bf16_training`). A *frozen* model (reward, gold, reference) is loaded in bf16
on such GPUs and in float32 elsewhere.

Reward models are `AutoModelForSequenceClassification` checkpoints with one label. Loading one whose score head is
not in the checkpoint (a base LM, or a multi-label classifier) is refused unless `new_head=True` (a reward model to
be trained): a randomly initialised head would silently score at random.

Options: LoRA adapters through `peft` (`lora_config`), gradient checkpointing (`gradient_checkpointing=True`).
`transformers`, `peft` and `accelerate` are imported inside the functions (papers without the lm extra still import).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from reprozoo.common.config import ConfigError, RunConfig, ensure

OA_PROMPT = "<|prompter|>{prompt}<|endoftext|><|assistant|>{answer}<|endoftext|>"
"""Coste et al.'s Open-Assistant text format (official `rm_dataset_formatter.py`), used for tokenizers that have
no chat template (their Pythia reward models)."""


@dataclass
class HubConfig(RunConfig):
    """Options of the `full` presets that run a paper on real models and datasets (the same for every RLHF paper).
    With `model` empty a paper runs its synthetic world; the `full` preset names the paper's own models and data."""

    model: str = ""
    """Policy / SFT start: hub id or save_pretrained folder ('' runs the synthetic world; the full preset names the
    paper's model)."""
    dataset: str = ""
    """Dataset: hub id[:config], DatasetDict.save_to_disk folder, or a parquet/json/jsonl/csv file (full preset: the
    paper's)."""
    dataset_format: str = ""
    """Schema of --dataset: ultrafeedback, hh_rlhf, alpacafarm, coste_pref, coste_gold ('' = detect from the
    columns; common/data/preference.py)."""
    reward_model: str = ""
    """Trained sequence-classification reward model (head included), hub id or folder ('' = train it here with
    TRL's reward trainer, as the paper did)."""
    reward_dataset: str = ""
    """Preference pairs of the reward-model stage when they differ from --dataset ('' = --dataset)."""
    gold_reward_model: str = ""
    """Gold / judge reward model used only for evaluation, hub id or folder (full preset: the paper's)."""
    max_steps: int = 0
    """Cap on the optimiser steps of every training stage (0 = the paper's schedule); claims are UNTESTED when set."""
    max_samples: int = 0
    """Cap on the prompts of every generation / evaluation stage and on the training rows read (0 = all); claims are
    UNTESTED when set."""
    lora: int = 0
    """LoRA rank of the trained policy / reward models through peft (0 = full fine-tuning, as the papers)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass of trained models (less memory, ~30% more time)."""
    fused_logprob: bool = False
    """Compute the trainers' per-token log-probs with reprozoo.kernels' fused_logprob instead of TRL's chunked LM
    head (refused for models that post-process their logits, e.g. Gemma2's soft-capping)."""

    def validate(self) -> None:
        super().validate()
        for name in ("max_steps", "max_samples", "lora"):
            ensure(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        if self.model:
            ensure(bool(self.dataset), "dataset", "is required with --model")

    @property
    def capped(self) -> bool:
        """Whether a stage was cut short (then the run decides no claim)."""
        return bool(self.max_steps or self.max_samples)

    def out_dir(self, paper: str) -> Path:
        """The run's folder (the CLI's rule): --out, else runs/<paper>/<preset>/ (results/ with --publish)."""
        if self.out is not None:
            return Path(self.out)
        if self.publish:
            return Path(__file__).resolve().parent.parent / "results" / paper / self.preset
        return Path("runs") / paper / self.preset


def bf16_supported() -> bool:
    """Whether this machine trains in bf16 mixed precision (a CUDA GPU with bf16)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def mixed_precision() -> str:
    """accelerate's `mixed_precision` for training here: "bf16" on a bf16 GPU (fp32 master weights), else "no"."""
    return "bf16" if bf16_supported() else "no"


def frozen_dtype() -> torch.dtype:
    """dtype of models that are only evaluated: bf16 on a bf16 GPU, float32 elsewhere."""
    return torch.bfloat16 if bf16_supported() else torch.float32


def device() -> torch.device:
    """This process's device: its GPU under `accelerate launch` (LOCAL_RANK), the CPU without one."""
    return (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if torch.cuda.is_available()
        else torch.device("cpu")
    )


def refuse_bf16_training(params, what: str) -> None:
    """Raise when a trainable parameter is bf16/fp16: an optimiser stepping low-precision weights directly has no fp32
    master copy, and at small learning rates (≤ 1e-6 against weights of order 1e-2) the update rounds to zero."""
    low = {p.dtype for p in params if p.requires_grad and p.dtype in (torch.bfloat16, torch.float16)}
    if low:
        raise ValueError(
            f"{what}: trainable parameters are {sorted(map(str, low))}; this loop keeps no fp32 master weights, so "
            "small updates round to zero. Load the model in float32 and use mixed precision (accelerate "
            "--mixed_precision bf16) instead"
        )


def tokenizer(source: str, *, padding_side: str = "left"):
    """The tokenizer of `source`, with a pad token (EOS when it has none) and the given padding side."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ConfigError("model", f"{source}: the tokenizer has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def lora_config(r: int, task_type: str, alpha: int | None = None, dropout: float = 0.05):
    """A `peft.LoraConfig` of rank r on every linear layer (alpha defaults to 2r); task_type CAUSAL_LM or SEQ_CLS."""
    from peft import LoraConfig

    return LoraConfig(
        r=r, lora_alpha=alpha or 2 * r, lora_dropout=dropout, target_modules="all-linear", task_type=task_type
    )


def _finish(model: nn.Module, *, train: bool, lora: int, gradient_checkpointing: bool, task_type: str) -> nn.Module:
    if not train:
        return model.to(device()).eval().requires_grad_(False)
    if gradient_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
        model.config.use_cache = False
    if lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(lora, task_type))
    return model


def load_policy(
    source: str, *, train: bool = True, lora: int = 0, gradient_checkpointing: bool = False
) -> tuple[nn.Module, object]:
    """A causal LM and its (left-padding) tokenizer from a hub id or a `save_pretrained` folder.

    train=True: float32 master weights (whatever the checkpoint's dtype), optional LoRA of rank `lora` and gradient
    checkpointing; train=False: frozen, `frozen_dtype()`, on `device()`."""
    from transformers import AutoModelForCausalLM

    try:
        tok = tokenizer(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32 if train else frozen_dtype())
    except OSError as err:  # not a folder nor a reachable hub id
        raise ConfigError("model", str(err).splitlines()[0]) from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    model = _finish(model, train=train, lora=lora, gradient_checkpointing=gradient_checkpointing, task_type="CAUSAL_LM")
    return model, tok


def load_reward_model(
    source: str, *, train: bool = False, new_head: bool = False, lora: int = 0, gradient_checkpointing: bool = False
) -> tuple[nn.Module, object]:
    """A one-label sequence-classification reward model and its (right-padding) tokenizer.

    new_head=False refuses a checkpoint whose score head is missing (it would be random); new_head=True starts a
    reward model to be trained from a base LM (the head is then new by design)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        tok = tokenizer(source, padding_side="right")
        config = AutoConfig.from_pretrained(source)
    except OSError as err:  # not a folder nor a reachable hub id
        raise ConfigError("reward_model", str(err).splitlines()[0]) from None
    if not new_head and getattr(config, "num_labels", 1) != 1:
        raise ConfigError("reward_model", f"{source}: a reward model has one label, this one has {config.num_labels}")
    model, info = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=1, dtype=torch.float32 if train else frozen_dtype(), output_loading_info=True
    )
    missing = [k for k in info["missing_keys"] if "score" in k or "classifier" in k or "head" in k]
    if missing and not new_head:
        raise ConfigError(
            "reward_model",
            f"{source} has no trained reward head ({missing} are not in the checkpoint): give a trained "
            "sequence-classification reward model, or train one (the paper's reward-model stage)",
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    model = _finish(model, train=train, lora=lora, gradient_checkpointing=gradient_checkpointing, task_type="SEQ_CLS")
    return model, tok


def render(tok, prompt: list[dict], answer: str) -> str:
    """The text a reward model scores for (prompt messages, answer): the tokenizer's chat template, or Coste et al.'s
    Open-Assistant format `OA_PROMPT` for tokenizers without one (prompt turns joined by blank lines)."""
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(prompt + [{"role": "assistant", "content": answer}], tokenize=False)
    return OA_PROMPT.format(prompt="\n\n".join(m["content"] for m in prompt), answer=answer)


@torch.no_grad()
def score(
    rm: nn.Module, tok, prompts: Sequence[list[dict]], answers: Sequence[str], *, batch_size: int = 16, max_length=None
) -> torch.Tensor:
    """Reward r(x, y) of each (prompt, answer) (float32 on the CPU): the one logit of the reward model at the last
    real token of the rendered text (transformers' sequence-classification convention)."""
    texts = [render(tok, p, a) for p, a in zip(prompts, answers, strict=True)]
    out = []
    dev = next(rm.parameters()).device
    for i in range(0, len(texts), batch_size):
        enc = tok(
            texts[i : i + batch_size],
            return_tensors="pt",
            padding=True,
            truncation=max_length is not None,
            max_length=max_length,
            add_special_tokens=False,
        )
        out.append(rm(**enc.to(dev)).logits[:, 0].float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def _plain_name(name: str) -> str:
    """A parameter's name in the plain model (PEFT's wrapper prefixes and LoRA's base_layer removed)."""
    return name.removeprefix("base_model.model.").replace(".base_layer", "")


def snapshot(model: nn.Module, n: int = 4096) -> dict[str, torch.Tensor]:
    """The first n elements of every floating tensor (LoRA adapters excluded) under the plain model's names, copied
    to the CPU: enough to tell later whether training moved the weights, at any model size."""
    return {
        _plain_name(k): v.detach().flatten()[:n].float().cpu().clone()
        for k, v in model.state_dict().items()
        if v.is_floating_point() and "lora_" not in k
    }


def changed_fraction(before: dict[str, torch.Tensor], model: nn.Module) -> float:
    """Fraction of the elements in `before` (a `snapshot` or a state dict) that differ in `model` now."""
    total = changed = 0
    for name, p in model.state_dict().items():
        ref = before.get(_plain_name(name))
        if ref is None or "lora_" in name or not p.is_floating_point():
            continue
        now = p.detach().flatten()[: ref.numel()].float().cpu()
        if now.numel() == ref.numel():
            total += now.numel()
            changed += int((now != ref.flatten().float()).sum())
    return changed / max(total, 1)


def use_fused_logprob(model: nn.Module, *, temperature: float = 1.0, backend: str = "auto") -> None:
    """Route TRL's `model(..., labels=labels, fused_lm_head=True)` (its extension point for per-token log-probs,
    installed by `trl.trainer.utils.add_fused_lm_head` in every trainer's __init__: call this after it) through
    `reprozoo.kernels.api.fused_logprob`: backbone hidden states h, LM head W, log π(y_t) = (h Wᵀ/τ)_{y_t} −
    logsumexp(h Wᵀ/τ) and the entropy, over the labelled positions only, without the N × V logits. Calls without
    `fused_lm_head=True` (generation) keep the model's own forward."""
    from trl.trainer.utils import FusedCausalLMOutput

    from reprozoo.kernels.api import fused_logprob

    text = model.config.get_text_config()
    for attr in ("final_logit_softcapping", "logit_scale", "output_multiplier", "logits_scaling"):
        if getattr(text, attr, None) not in (None, 1.0):
            raise ConfigError(
                "fused_logprob", f"the model post-processes its logits ({attr}); the fused kernel does not"
            )
    framework_forward = model.forward

    def forward(*args, fused_lm_head: bool = False, labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head:
            return framework_forward(*args, labels=labels, num_items_in_batch=num_items_in_batch, **kwargs)
        kwargs["use_cache"] = False
        hidden = model.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        labels = labels[:, 1:]
        mask = labels != -100
        head = model.get_output_embeddings()
        out = fused_logprob(hidden[mask], head.weight, labels[mask], temperature=temperature, backend=backend)
        logp = hidden.new_zeros(mask.shape, dtype=out.logprobs.dtype).masked_scatter(mask, out.logprobs)
        ent = hidden.new_zeros(mask.shape, dtype=out.entropy.dtype).masked_scatter(mask, out.entropy)
        n = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(loss=-logp.sum() / n, log_probs=logp, entropy=ent, label_mask=mask)

    model.forward = forward
