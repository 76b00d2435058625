"""Coste et al.'s best-of-n headline on their released data and real reward models (`--preset full`, or --model).

No RL: the headline is best-of-n over released generations. Stages (each a checkpoint unit):
1. Members: k proxy reward models from --model (official `configs/config_rm.yaml`: `tlc4418/pythia_70m_sft`, a 44M
   reward model after conversion), one per member seed, trained with TRL's RewardTrainer on the preference pairs of
   --reward-dataset (the paper's `tlc4418/1.4b-policy_preference_data_gold_labelled`: SFT-policy answers labelled by
   AlpacaFarm's 7B human-preference RM), clean and with each label-noise rate of `label_noises` (25% in the paper).
   Or, with --reward-model, already trained members: a template with a `{seed}` placeholder, as the official
   `run_bon_pipeline.py` takes it, filled with the member seeds 1..k.
2. Best-of-n on --dataset, the released gold-labelled generations (`tlc4418/gold_labelled_gens`, split
   validation: N answers per AlpacaFarm prompt with their gold scores): every member scores every answer once;
   `method.aggregate` (mean, WCO, UWO with the best-of-n λ = 0.5 and population variance, median, mean − std) gives
   the ensemble's score; the unbiased estimator `common.reward.best_of_n` gives the gold reward of the proxy's pick
   at each n, and KL_BoN = log n − (n − 1)/n.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from reprozoo.common import checkpoint, hf
from reprozoo.common import hf_stages as st
from reprozoo.common.data import preference
from reprozoo.common.results import Claim, record, select
from reprozoo.common.reward import best_of_n, kl_bon
from reprozoo.papers.ensembles.method import AGGREGATIONS, aggregate

PAPER = "ensembles"
RM = {"lr": 1e-5, "global_batch": 32, "epochs": 5, "max_grad_norm": 2.0}
"""Official config_rm.yaml (rm-pythia-44m over the OA defaults): learning_rate 1e-5, per_device_train_batch_size 8 ×
gradient_accumulation_steps 4, num_train_epochs 5, max_grad_norm 2.0."""
RM_EXTRA = {"adam_beta2": 0.95, "adam_epsilon": 1e-12, "warmup_steps": 50, "max_length": 520}
"""Official: adam_beta2 0.95, adam_epsilon 1e-12, warmup_steps 50, max_length 520."""
CENTER = 0.001
"""Official OA RMLoss score_l2_reg 0.001 (an L2 penalty on the scores), as TRL's center_rewards_coefficient."""
MEMBER_SEEDS = (1, 2, 3, 4, 5)
"""Official run_bon_pipeline.py --seeds default "1,2,3,4,5"."""
NS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 6144, 8192, 12500)
"""Official --sample-ns default (n values, capped at the answers per prompt)."""
CURVES = ("single",) + AGGREGATIONS
"""`single`: the mean over members of each member's own best-of-n curve (Coste et al. plot each seed)."""


def _flip(pairs, rate: float, seed: int):
    """Swap chosen and rejected of a random `rate` share of the pairs (Coste et al.'s label noise)."""
    g = torch.Generator().manual_seed(seed)
    flip = set(torch.randperm(len(pairs), generator=g)[: round(rate * len(pairs))].tolist())

    def row(r, i):
        return {"chosen": r["rejected"], "rejected": r["chosen"]} if i in flip else {}

    return pairs.map(row, with_indices=True)


def member(cfg, noise: float, seed: int, pairs, models: Path) -> str:
    """The folder of one trained member (label noise `noise`, member seed `seed`)."""
    if cfg.reward_model:
        path = cfg.reward_model.format(seed=seed)
        hf.load_reward_model(path)  # refuses a missing head
        return path
    data = _flip(pairs, noise, 90_000 + seed) if noise else pairs
    out = models / f"rm-noise{noise:g}-seed{seed}"
    return st.train_reward_model(
        cfg, cfg.model, data, out, seed=seed, center_rewards_coefficient=CENTER, **RM, **RM_EXTRA
    )


def member_scores(path: str, gens) -> list[list[float]]:
    """One member's score of every answer of every prompt (the official `score_answers`)."""
    rm, tok = hf.load_reward_model(path)
    out = []
    for prompt, answers in zip(gens["prompt"], gens["answers"], strict=True):
        out.append(st.score(rm, tok, [prompt] * len(answers), answers).tolist())
    return out


def bon_rows(scores: torch.Tensor, gold: torch.Tensor, noise: float, seed: int) -> list[dict]:
    """Best-of-n curves of every aggregation: scores (k, prompts, N), gold (prompts, N)."""
    N = gold.shape[-1]
    ns = [n for n in NS if n <= N] + ([N] if N not in NS else [])
    rows = []
    for name in CURVES:
        for n in ns:
            if name == "single":
                g = torch.stack([best_of_n(s, gold, n).mean() for s in scores]).mean()
                p = torch.stack([best_of_n(s, s, n).mean() for s in scores]).mean()
            else:
                agg = aggregate(scores, name, stage="bon")
                g, p = best_of_n(agg, gold, n).mean(), best_of_n(agg, agg, n).mean()
            kw = {"step": n, "noise": noise}
            rows += [record(name, seed, "gold", float(g), **kw), record(name, seed, "proxy", float(p), **kw)]
            rows.append(record(name, seed, "kl_bon", float(kl_bon(n)), **kw))
        at_max = [r["value"] for r in rows if r["method"] == name and r["metric"] == "gold" and r["noise"] == noise]
        rows.append(record(name, seed, "gold_max_n", at_max[-1], noise=noise))
        rows.append(record(name, seed, "gold_peak", max(at_max), noise=noise))
    return rows


def run(cfg) -> list[dict]:
    """Members (each a checkpoint unit), their scores of the released generations, the best-of-n curves."""
    n = cfg.max_samples or None
    with st.clear_errors():
        gens = preference.generations(cfg.dataset, "validation", None, n)
        gold = torch.tensor(gens["gold_scores"], dtype=torch.float64)
        pairs = None
        if not cfg.reward_model:
            fmt = cfg.dataset_format or None
            source = cfg.reward_dataset or cfg.dataset
            pairs = preference.pairs(source, preference.train_eval_splits(source)[0], fmt, n)
    models = cfg.out_dir(PAPER) / "models"
    seed = cfg.first_seed
    noises = [0.0] if cfg.reward_model else cfg.label_noises
    k = min(cfg.members, len(MEMBER_SEEDS))
    rows: list[dict] = []
    for noise in noises:
        scores = []
        for ms in MEMBER_SEEDS[:k]:
            path = checkpoint.unit(("member", noise, ms), functools.partial(member, cfg, noise, ms, pairs, models))
            scores.append(checkpoint.unit(("scores", noise, ms), functools.partial(member_scores, path, gens)))
        res = bon_rows(torch.tensor(scores, dtype=torch.float64), gold, noise, seed)
        rows += res
        fin = {r["method"]: r["value"] for r in res if r["metric"] == "gold_max_n"}
        print(
            f"[ensembles] noise {noise:g}: gold at the largest n " + ", ".join(f"{a} {v:.3f}" for a, v in fin.items())
        )
    return rows


# --- claims, table, figure of the full path ---


def claims(rows: list[dict], cfg) -> list[Claim]:
    """Coste et al.'s best-of-n headline on their data: with the highest label noise, WCO or UWO ends with more gold
    reward at the largest n than a single member; and the single member over-optimises (gold peaks before the
    largest n). One ensemble (no seeds to pair): UNTESTED when a stage was capped."""
    noise = max(r["noise"] for r in rows if "noise" in r)
    at = {r["method"]: r["value"] for r in select(rows, metric="gold_max_n") if r["noise"] == noise}
    peak = {r["method"]: r["value"] for r in select(rows, metric="gold_peak") if r["noise"] == noise}
    verdict = "UNTESTED" if cfg.capped else None
    best = max(at.get("wco", -math.inf), at.get("uwo", -math.inf))
    return [
        Claim(
            "full-1",
            f"WCO or UWO beats the single RM's gold reward at the largest n (label noise {noise:g})",
            {"single": at["single"], "wco": at.get("wco"), "uwo": at.get("uwo")},
            best > at["single"],
            verdict=verdict,
        ),
        Claim(
            "full-2",
            f"a single RM over-optimises: its gold reward peaks before the largest n (label noise {noise:g})",
            {"peak": peak["single"], "at_max_n": at["single"]},
            peak["single"] > at["single"],
            verdict=verdict,
        ),
    ]


def table(rows: list[dict], cfg) -> str:
    noises = sorted({r["noise"] for r in rows if "noise" in r})
    lines = ["| aggregation | " + " | ".join(f"gold at max n (noise {z:g})" for z in noises) + " |"]
    lines.append("|---" * (len(noises) + 1) + "|")
    for name in CURVES:
        vals = {r["noise"]: r["value"] for r in select(rows, method=name, metric="gold_max_n")}
        lines.append(f"| {name} | " + " | ".join(f"{vals[z]:.3f}" for z in noises) + " |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], cfg, path: Path) -> None:
    import matplotlib.pyplot as plt

    noises = sorted({r["noise"] for r in rows if "noise" in r})
    fig, axes = plt.subplots(1, len(noises), figsize=(5 * len(noises), 3.8), squeeze=False)
    for ax, z in zip(axes[0], noises, strict=True):
        for i, name in enumerate(CURVES):
            sel = [r for r in select(rows, method=name, metric="gold") if r["noise"] == z]
            kl = [kl_bon(r["step"]) for r in sel]
            ax.plot([math.sqrt(x) for x in kl], [r["value"] for r in sel], marker=".", color=f"C{i}", label=name)
        ax.set(xlabel="sqrt(KL_BoN)", ylabel="gold reward", title=f"best-of-n, label noise {z:g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
