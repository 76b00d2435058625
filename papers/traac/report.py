"""The figure and the table of a traac run on the reasoning world (`figure.png`, `table.md`): accuracy vs thinking
length per method, and thinking length vs difficulty (adaptivity) on the training and the unseen difficulties."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import select
from reprozoo.papers.traac.experiment import Config


def mean_over_seeds(rows: list[dict], method: str, metric: str, **setting) -> float:
    vals = [r["value"] for r in select(rows, method=method, metric=metric, **setting) if "step" not in r]
    return float(np.mean(vals)) if vals else float("nan")


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Left: accuracy vs mean thinking length per method (training difficulties). Right: length vs difficulty."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in cfg.methods:
        x = mean_over_seeds(rows, method, "think_len", split="train")
        y = mean_over_seeds(rows, method, "accuracy", split="train")
        a.scatter(x, y, s=50)
        a.annotate(method, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ks = cfg.train_ks + cfg.unseen_ks
        lens = [mean_over_seeds(rows, method, "think_len", k=k) for k in ks]
        b.plot(ks, lens, marker="o", label=method, lw=2.2 if method == "traac" else 1.2)
    a.set(xlabel="mean thinking tokens (training k)", ylabel="accuracy (training k)", title="accuracy vs length")
    if cfg.unseen_ks:
        b.axvspan(min(cfg.unseen_ks) - 0.5, max(cfg.unseen_ks) + 0.5, color="0.92", label="unseen k")
    b.set(xlabel="difficulty k", ylabel="mean thinking tokens", title="length vs difficulty (adaptivity)")
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def table(rows: list[dict], cfg: Config) -> str:
    """Per method: accuracy, thinking length and under-thinking on the training and on the unseen difficulties."""
    cols = ["acc (train k)", "think len (train k)", "under-think (train k)", "acc (unseen k)", "think len (unseen k)"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in cfg.methods:
        v = [
            mean_over_seeds(rows, m, metric, split=split)
            for metric, split in (
                ("accuracy", "train"),
                ("think_len", "train"),
                ("underthink", "train"),
                ("accuracy", "unseen"),
                ("think_len", "unseen"),
            )
        ]
        lines.append(f"| {m} | {v[0]:.3f} | {v[1]:.1f} | {v[2]:.3f} | {v[3]:.3f} | {v[4]:.1f} |")
    return "\n".join(lines) + "\n"
