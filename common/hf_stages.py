"""The stages every RLHF `full` preset shares, on TRL (SFT, reward model) and transformers (sampling, scoring).

Each stage saves what it trains with `save_pretrained` under the run's `models/` folder and returns the folder, so
that a paper marks it as a checkpoint unit (`--resume` reuses the folder). Batch sizes are the paper's *global*
batch: the per-device batch is the global batch over the number of processes (`accelerate launch`), and a global
batch that does not divide is refused. `max_steps` > 0 caps the optimiser steps (smoke runs and budgets).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from reprozoo.common import hf
from reprozoo.common.config import ConfigError


@contextlib.contextmanager
def clear_errors(field: str = "dataset"):
    """Report a dataset or model that cannot be opened as a ConfigError of `field` (the CLI: `error: --field: …`,
    exit 2) instead of a traceback."""
    from reprozoo.common.data.core import DatasetError

    try:
        yield
    except (DatasetError, FileNotFoundError, ConnectionError) as err:
        raise ConfigError(field, str(err)) from None


def n_processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_device(global_batch: int, what: str) -> int:
    """The per-device batch of a global batch under the current number of processes."""
    n = n_processes()
    if global_batch % n:
        raise ConfigError("max_steps", f"{what}: the global batch {global_batch} does not divide over {n} processes")
    return global_batch // n


def common_args(out: Path, *, lr: float, epochs: float, max_grad_norm: float, max_steps: int, seed: int, cfg) -> dict:
    """TrainingArguments shared by the stages: bf16 mixed precision with fp32 master weights where supported,
    no intermediate checkpoints (the paper's unit is the stage), logs every step, nothing reported online."""
    return {
        "output_dir": str(out),
        "learning_rate": lr,
        "num_train_epochs": epochs,
        "max_steps": max_steps or -1,
        "max_grad_norm": max_grad_norm,
        "seed": seed,
        "bf16": hf.bf16_supported(),
        "save_strategy": "no",
        "logging_steps": 1,
        "report_to": "none",
        "disable_tqdm": True,
    } | ({"gradient_checkpointing": True} if cfg.gradient_checkpointing else {})


def save(trainer, tok, out: Path) -> str:
    """Save the trained model and its tokenizer; return the folder. Full fine-tuning goes through the trainer's
    `save_model` (it gathers ZeRO-3 / FSDP shards); a LoRA adapter is merged into the weights first."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        if trainer.accelerator.is_main_process:
            model.merge_and_unload().save_pretrained(out)
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        tok.save_pretrained(out)
    trainer.accelerator.wait_for_everyone()
    return str(out)


def train_sft(cfg, pairs, out: Path, *, lr: float, global_batch: int, epochs: float, max_grad_norm: float, seed: int):
    """Supervised fine-tuning of --model on the chosen responses (TRL SFTTrainer, loss on the completion only)."""
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(seed)  # LoRA initialisation (the trainer seeds again for its own draws)
    model, tok = hf.load_policy(cfg.model, lora=cfg.lora, gradient_checkpointing=cfg.gradient_checkpointing)
    data = pairs.map(lambda r: {"prompt": r["prompt"], "completion": r["chosen"]}, remove_columns=pairs.column_names)
    args = SFTConfig(
        per_device_train_batch_size=per_device(global_batch, "SFT"),
        max_length=1024,
        **common_args(
            out, lr=lr, epochs=epochs, max_grad_norm=max_grad_norm, max_steps=cfg.max_steps, seed=seed, cfg=cfg
        ),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    trainer.train()
    return save(trainer, tok, out)


def train_reward_model(
    cfg,
    start: str,
    pairs,
    out: Path,
    *,
    lr: float,
    global_batch: int,
    epochs: float,
    max_grad_norm: float,
    seed: int,
    center_rewards_coefficient: float | None = None,
    **extra,
):
    """A Bradley–Terry reward model from `start` (a new one-label head) on the pairs (TRL RewardTrainer):
    loss −log σ(r(x, y⁺) − r(x, y⁻)) [+ η (r⁺ + r⁻)² with center_rewards_coefficient η, Eisenstein et al.];
    `extra` overrides any RewardConfig argument (e.g. the optimiser's betas)."""
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    set_seed(seed)  # the new head's initialisation (the trainer seeds again for its own draws)
    model, tok = hf.load_reward_model(
        start, train=True, new_head=True, lora=cfg.lora, gradient_checkpointing=cfg.gradient_checkpointing
    )
    args = RewardConfig(
        per_device_train_batch_size=per_device(global_batch, "reward model"),
        max_length=1024,
        center_rewards_coefficient=center_rewards_coefficient,
        **common_args(
            out, lr=lr, epochs=epochs, max_grad_norm=max_grad_norm, max_steps=cfg.max_steps, seed=seed, cfg=cfg
        ),
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=pairs, processing_class=tok)
    trainer.train()
    return save(trainer, tok, out)


def sharded(fn, items: list) -> list:
    """fn(items) computed in shares over the processes of an `accelerate launch` (rank r takes items r, r + n, …)
    and gathered back in order on every rank, so evaluation stages are not repeated on every GPU; one process runs
    fn(items) itself."""
    n = n_processes()
    if n == 1:
        return list(fn(items))
    import torch.distributed as tdist
    from accelerate import PartialState

    PartialState()  # initialises the process group from the launcher's environment
    rank = tdist.get_rank()
    parts: list = [None] * n
    tdist.all_gather_object(parts, list(fn(items[rank::n])))
    out: list = [None] * len(items)
    for k in range(n):
        out[k::n] = parts[k]
    return out


def score(rm, tok, prompts: list[list[dict]], answers: list[str]) -> torch.Tensor:
    """`common.hf.score` of every (prompt, answer), sharded over the processes."""
    pairs = list(zip(prompts, answers, strict=True))
    return torch.tensor(sharded(lambda ps: hf.score(rm, tok, [p for p, _ in ps], [a for _, a in ps]).tolist(), pairs))


@torch.no_grad()
def generate(
    model,
    tok,
    prompts: list[list[dict]],
    *,
    n: int = 1,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int,
    batch_size: int = 16,
) -> list[str]:
    """n sampled responses per prompt (prompt-major order: the n responses of prompt 0 first), decoded without
    special tokens, through the model's own `generate` (so any final-logit processing such as Gemma2's
    soft-capping is applied); sharded over the processes (rank r samples with seed + 1000 r)."""
    texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    texts = [t for t in texts for _ in range(n)]
    dev = next(model.parameters()).device

    def run(share: list[str]) -> list[str]:
        torch.manual_seed(seed + 1000 * int(os.environ.get("RANK", "0")))  # rank r's share
        out = []
        for i in range(0, len(share), batch_size):
            enc = tok(share[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
            ids = model.generate(
                **enc,
                do_sample=True,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                pad_token_id=tok.pad_token_id,
            )
            out += tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return out

    return sharded(run, texts)


def win_rate(policy_gold: torch.Tensor, sft_gold: torch.Tensor) -> float:
    """Fraction of prompts whose policy response the gold model scores above the SFT response (ties count ½)."""
    return float(((policy_gold > sft_gold).float() + 0.5 * (policy_gold == sft_gold).float()).mean())


def log_value(trainer, key: str) -> float | None:
    """The last logged value of `key` in a trainer's log history (None if never logged)."""
    vals = [h[key] for h in trainer.state.log_history if key in h]
    return float(vals[-1]) if vals else None


def methods_table(rows: list[dict], methods: list[str], cols: tuple[str, ...], label: str = "method") -> str:
    """Markdown table: one row per method, each column a metric's mean ± 95% CI half-width over seeds ("—" if none)."""
    from reprozoo.common.results import mean_ci95, select

    lines = [f"| {label} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name in methods:
        cells = []
        for metric in cols:
            v = [r["value"] for r in select(rows, method=name, metric=metric)]
            cells.append("—" if not v else "{:.3f} ± {:.3f}".format(*mean_ci95(v)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def winrate_figure(rows: list[dict], methods: list[str], title: str, path: Path) -> None:
    """Bar chart of each method's final gold win-rate against the SFT policy (mean ± 95% CI over seeds)."""
    import matplotlib.pyplot as plt

    from reprozoo.common.results import mean_ci95, select

    stats = [mean_ci95([r["value"] for r in select(rows, method=n, metric="winrate_final")]) for n in methods]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(methods)), [s[0] for s in stats], yerr=[s[1] for s in stats], capsize=3, color="C0")
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xticks(range(len(methods)), methods, rotation=30)
    ax.set(ylabel="gold win-rate vs SFT", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
