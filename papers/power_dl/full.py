"""POWER / POWER-DL and the DPO-family baselines on real models through TRL (`--preset full`, or --model).

The paper trains Llama-3-8B and Mistral-7B SFT models on UltraFeedback and reports AlpacaEval 2 / Arena-Hard (GPT-4
judged; not runnable offline). Here, per method and seed: TRL's `DPOTrainer` with its loss replaced by
`PairLossTrainer.compute_loss`, which computes the sequence log-probs and lengths through the model's own forward
(TRL's fused LM head, Gemma2-style soft-capping included) and calls `baselines.pair_loss` — hence
`method.power_loss` and, for POWER-DL, the dynamic labels of `method.update_labels`, kept in a per-pair store
indexed by the dataset row (TRL's DPO cannot express a label that changes during training). Reference log-probs are
TRL's, precomputed once from the SFT model. Evaluation: one response of the trained and one of the SFT policy per
held-out prompt, scored by a gold reward model (the stand-in for the paper's GPT-4 judges); win-rate with ties ½.

Hyper-parameters: the paper's could not be read here (README "What to verify"); the values below follow the SimPO
training recipe (Meng et al. 2024: lr 5e-7 for DPO on Llama-3-Base, batch 128, one epoch, cosine, 10% warm-up,
max length 2048) that the paper's AlpacaEval 2 / Arena-Hard comparisons are set against — assumed, not quoted.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reprozoo.common import checkpoint, hf
from reprozoo.common import hf_stages as st
from reprozoo.common.config import ConfigError
from reprozoo.common.data import preference
from reprozoo.common.results import Claim, record, select
from reprozoo.papers.power_dl.baselines import Hyper, pair_loss
from reprozoo.papers.power_dl.method import power_margin, update_labels

PAPER = "power_dl"
TRAIN = {"lr": 5e-7, "global_batch": 128, "epochs": 1, "max_grad_norm": 1.0, "max_length": 2048}
"""SimPO recipe (assumed, see the module docstring): lr 5e-7, batch 128, 1 epoch, max length 2048."""
HYPER = Hyper()
"""β, η, γ and the baselines' constants: the tiny-LM defaults of `baselines.Hyper` (DPO β = 0.1 as Rafailov et al.,
SimPO β = 2.0 as Meng et al.); the paper's LLM values could not be read here."""
SAMPLING = {"temperature": 0.7, "top_p": 0.9, "top_k": 50, "max_new_tokens": 512}
"""Evaluation sampling (AlpacaEval-style decoding; assumed)."""


def _trainer_class():
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    @dataclass
    class IndexedCollator(DataCollatorForPreference):
        """TRL's preference collator that also passes each pair's dataset row (`pair_index`)."""

        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            out = super().torch_call(examples)
            out["pair_index"] = torch.tensor([e["pair_index"] for e in examples])
            return out

    class PairLossTrainer(DPOTrainer):
        """DPOTrainer whose loss is `baselines.pair_loss(method, ...)` on the pairs' summed log-probs and lengths."""

        def __init__(self, *args, method: str, hp: Hyper, n_pairs: int, **kwargs):
            self.method, self.hp = method, hp
            self.labels = torch.ones(n_pairs) if method == "power_dl" else None  # l_0 = 1   (P6)
            super().__init__(*args, **kwargs)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "pair_index" not in self._signature_columns:
                self._signature_columns.append("pair_index")

        def sequence_logps(self, model, inputs):
            """(log π(y|x) summed over completion tokens, |y|) for the [chosen; rejected] batch."""
            mask = inputs["completion_mask"]
            labels = inputs["input_ids"].masked_fill(mask == 0, -100)
            kwargs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "use_cache": False}
            out = model(**kwargs, labels=labels, fused_lm_head=True)
            shift = mask[:, 1:]
            return out.log_probs[:, -shift.shape[1] :].sum(1), shift.sum(1).float()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            idx = inputs["pair_index"]
            logps, lengths = self.sequence_logps(model, inputs)
            pol_w, pol_l = logps.float().chunk(2)
            len_w, len_l = lengths.chunk(2)
            ref_w, ref_l = inputs["ref_chosen_logps"].float(), inputs["ref_rejected_logps"].float()
            lab = None if self.labels is None else self.labels[idx.cpu()].to(pol_w.device)
            loss = pair_loss(self.method, pol_w, pol_l, ref_w, ref_l, len_w, len_l, self.hp, lab).mean()
            if self.labels is not None and model.training:  # (P6) on the pairs just visited, every rank's
                delta = power_margin(pol_w.detach(), pol_l.detach(), len_w, len_l, beta=self.hp.power_beta)
                idx_all, delta_all = self.accelerator.gather(idx), self.accelerator.gather(delta)
                self.labels[idx_all.cpu()] = update_labels(
                    self.labels[idx_all.cpu()], delta_all.cpu(), self.hp.dl_gamma
                )
            return loss

    return PairLossTrainer, IndexedCollator


def dpo_config(cfg, out: Path, seed: int, n_pairs: int, **overrides):
    """TRL DPOConfig of one run: reference log-probs precomputed once, the training recipe of `TRAIN`."""
    from trl import DPOConfig

    args = st.common_args(
        out,
        lr=TRAIN["lr"],
        epochs=TRAIN["epochs"],
        max_grad_norm=TRAIN["max_grad_norm"],
        max_steps=cfg.max_steps,
        seed=seed,
        cfg=cfg,
    )
    args |= {
        "per_device_train_batch_size": min(st.per_device(TRAIN["global_batch"], "DPO"), n_pairs),
        "max_length": TRAIN["max_length"],
        "precompute_ref_log_probs": True,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.1,  # a fraction of the steps (transformers 5)
        "remove_unused_columns": False,
    }
    return DPOConfig(**(args | overrides))


def train_run(cfg, method: str, seed: int, pairs, eval_prompts, sft_gold, models: Path) -> list[dict]:
    """One (method, seed): TRL with the method's pair loss, then the gold win-rate against the SFT responses."""
    from transformers import set_seed

    trainer_cls, collator_cls = _trainer_class()
    set_seed(seed)  # LoRA initialisation
    policy, tok = hf.load_policy(cfg.model, lora=cfg.lora, gradient_checkpointing=cfg.gradient_checkpointing)
    before = hf.snapshot(policy)
    folder = models / f"{method}-s{seed}"
    trainer = trainer_cls(
        model=policy,
        args=dpo_config(cfg, folder, seed, len(pairs)),
        train_dataset=pairs,
        processing_class=tok,
        data_collator=collator_cls(pad_token_id=tok.pad_token_id, max_length=TRAIN["max_length"]),
        method=method,
        hp=HYPER,
        n_pairs=len(pairs),
    )
    if cfg.fused_logprob:  # after TRL installed its own fused LM head (the extension point it replaces)
        hf.use_fused_logprob(trainer.model)
    trainer.train()
    labels = trainer.labels
    st.save(trainer, tok, folder)
    del trainer, policy
    policy, tok = hf.load_policy(str(folder), train=False)
    answers = st.generate(policy, tok, eval_prompts, seed=60_000 + seed, **SAMPLING)
    grm, gtok = hf.load_reward_model(cfg.gold_reward_model)
    gold = st.score(grm, gtok, eval_prompts, answers)
    lengths = [float(len(tok(a, add_special_tokens=False)["input_ids"])) for a in answers]
    rows = [
        record(method, seed, "winrate_final", st.win_rate(gold, torch.tensor(sft_gold))),
        record(method, seed, "gold_final", float(gold.mean())),
        record(method, seed, "length_final", sum(lengths) / len(lengths)),
        record(method, seed, "weights_changed", hf.changed_fraction(before, policy)),
    ]
    if labels is not None:
        rows.append(record(method, seed, "label_mean", float(labels.mean())))
    return rows


def _sft_eval(cfg, eval_prompts, seed: int) -> list[float]:
    policy, tok = hf.load_policy(cfg.model, train=False)
    grm, gtok = hf.load_reward_model(cfg.gold_reward_model)
    answers = st.generate(policy, tok, eval_prompts, seed=50_000 + seed, **SAMPLING)
    return st.score(grm, gtok, eval_prompts, answers).tolist()


def run(cfg) -> list[dict]:
    """Every (method, seed) run and its evaluation, each a checkpoint unit (models under `<out>/models/`)."""
    if not cfg.gold_reward_model:
        raise ConfigError("gold_reward_model", "the win-rate evaluation needs a gold reward model")
    fmt = cfg.dataset_format or None
    n = cfg.max_samples or None
    with st.clear_errors():
        train_split, eval_split = preference.train_eval_splits(cfg.dataset)
        pairs = preference.pairs(cfg.dataset, train_split, fmt, n)
        pairs = pairs.add_column("pair_index", list(range(len(pairs))))
        eval_prompts = preference.prompts(cfg.dataset, eval_split, fmt, n)["prompt"]
    models = cfg.out_dir(PAPER) / "models"
    rows: list[dict] = []
    for seed in cfg.seed_list():
        sft_gold = checkpoint.unit(("sft_eval", seed), functools.partial(_sft_eval, cfg, eval_prompts, seed))
        for method in cfg.methods:
            job = functools.partial(train_run, cfg, method, seed, pairs, eval_prompts, sft_gold, models)
            res = checkpoint.unit(("train", method, seed), job)
            rows += res
            fin = {r["metric"]: r["value"] for r in res}
            print(f"[power_dl] {method} seed {seed}: win-rate vs SFT {fin['winrate_final']:.3f}", flush=True)
    return rows


# --- claims, table, figure of the full path ---


def claims(rows: list[dict], cfg) -> list[Claim]:
    """The headline on real models: POWER-DL's gold win-rate against SFT exceeds DPO's (paired over seeds, 95% CI
    above 0). UNTESTED when a stage was capped (--max-steps / --max-samples)."""
    from reprozoo.common.stats import paired_diff

    def by_seed(method):
        return {r["seed"]: r["value"] for r in select(rows, method=method, metric="winrate_final")}

    a, b = by_seed("power_dl"), by_seed("dpo")
    if not (a and b):
        return []
    d = paired_diff(a, b)
    verdict = "UNTESTED" if cfg.capped else None
    statement = "POWER-DL's gold win-rate vs SFT exceeds DPO's (real models; CI above 0)"
    return [Claim("full-1", statement, d.as_observed(), d.low > 0, verdict=verdict)]


def table(rows: list[dict], cfg) -> str:
    cols = ("winrate_final", "gold_final", "length_final", "weights_changed", "label_mean")
    return st.methods_table(rows, cfg.methods, cols, label="method")


def figure(rows: list[dict], cfg, path: Path) -> None:
    st.winrate_figure(rows, cfg.methods, f"POWER-DL full ({cfg.model})", path)
