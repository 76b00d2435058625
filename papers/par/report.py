"""PAR's table and figure (pure functions of the records): per-run summaries with 95% CIs, and the win-rate, proxy
and gold curves with the final win-rates. Claim 4's own block of seeds (`m1_seeds`) has its own rows in the table
and is left out of every other row and of the figure.

`cfg` is the paper's `experiment.Config`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import mean_ci95, select
from reprozoo.papers.par.experiment import split_m1_block
from reprozoo.papers.par.variants import METHODS


def mean_curve(rows: list[dict], name: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean over seeds) of a curve."""
    sel = select(rows, method=name, metric=metric)
    steps = sorted({r["step"] for r in sel if "step" in r})
    return np.array(steps, float), np.array([np.mean([r["value"] for r in sel if r.get("step") == s]) for s in steps])


COLUMNS = [
    ("winrate_peak", "win-rate peak"),
    ("winrate_final", "win-rate final"),
    ("gold_peak", "gold peak"),
    ("gold_final", "gold final"),
    ("proxy_final", "proxy final"),
    ("kl_final", "KL final"),
    ("features_final", "feature tokens final"),
]


def _row(rows: list[dict], name: str, label: str) -> str:
    cells = [mean_ci95([r["value"] for r in select(rows, method=name, metric=m)]) for m, _ in COLUMNS]
    return f"| {label} | " + " | ".join(f"{m:.2f} ± {h:.2f}" for m, h in cells) + " |"


def table(rows: list[dict], cfg) -> str:
    rows, m1_rows = split_m1_block(rows, cfg)
    lines = ["| run | " + " | ".join(c[1] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [_row(rows, name, name) for name in cfg.runs]
    if block := cfg.m1_seed_list():
        lines += [_row(m1_rows, n, f"{n} (claim 4's seeds {block[0]}–{block[-1]})") for n in ("par", "par_m1")]
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], cfg, path: Path) -> None:
    import matplotlib.pyplot as plt

    rows, _ = split_m1_block(rows, cfg)

    fig, ax = plt.subplots(1, 4, figsize=(20, 4.4))
    methods = [r for r in cfg.runs if r in METHODS] or cfg.runs
    for i, name in enumerate(methods):
        style = {"color": f"C{i}", "lw": 2.5 if name == "par" else 1.2, "label": name}
        ax[0].plot(*mean_curve(rows, name, "winrate"), **style)
        ax[1].plot(*mean_curve(rows, name, "proxy"), **style)
        ax[2].plot(*mean_curve(rows, name, "gold"), **style)
    ax[0].axhline(0.5, color="k", lw=0.6, ls=":")
    ax[0].set(xlabel="PPO iteration", ylabel="gold win-rate vs SFT", title="win-rate (mean over seeds)")
    ax[1].set(xlabel="PPO iteration", ylabel="proxy reward", title="proxy reward (the vanilla proxy)")
    ax[2].set(xlabel="PPO iteration", ylabel="gold reward", title="gold reward")
    names = cfg.runs
    stats = [mean_ci95([r["value"] for r in select(rows, method=n, metric="winrate_final")]) for n in names]
    ax[3].bar(range(len(names)), [s[0] for s in stats], yerr=[s[1] for s in stats], capsize=3, color="C7")
    ax[3].axhline(0.5, color="k", lw=0.6, ls=":")
    ax[3].set_xticks(range(len(names)), names, rotation=60, fontsize=8)
    ax[3].set(ylabel="final win-rate vs SFT", title="final win-rate (mean ± 95% CI)")
    for a in ax[:3]:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
