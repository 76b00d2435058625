"""The figure of a rebalance run on the reasoning world (`figure.png`): per world, accuracy vs thinking length per
method, thinking length by difficulty, and ReBalance's λ along a few trajectories."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import select
from reprozoo.papers.rebalance.experiment import Config


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Per world: (a) accuracy vs thinking length per method; (b) thinking length by k; (c) λ traces."""
    import matplotlib.pyplot as plt

    from reprozoo.common.results import mean_ci95, values

    methods = sorted({r["method"] for r in select(rows, metric="accuracy")} - {"static_sweep"})
    methods = [m for m in methods if not m.startswith("static_sweep")]
    fig, ax = plt.subplots(len(cfg.worlds), 3, figsize=(15, 4 * len(cfg.worlds)), squeeze=False)
    for row, name in zip(ax, cfg.worlds, strict=True):
        for m in methods:
            if not overall(rows, m, "accuracy", name).size:  # not run here: a calibration without steering vector
                continue
            acc, acc_ci = mean_ci95(overall(rows, m, "accuracy", name))
            ln, ln_ci = mean_ci95(overall(rows, m, "think_len", name))
            row[0].errorbar(ln, acc, xerr=ln_ci, yerr=acc_ci, fmt="o", capsize=3, label=m)
            lens = [np.mean(values(rows, method=m, metric="think_len", k=k, world=name)) for k in cfg.ks]
            row[1].plot(cfg.ks, lens, "o-", ms=3, label=m)
        for lam in cfg.lambda_sweep:
            acc = overall(select(rows, lam=lam), "static_sweep", "accuracy", name)
            ln = overall(select(rows, lam=lam), "static_sweep", "think_len", name)
            if acc.size:
                row[0].plot(ln.mean(), acc.mean(), "x", color="grey")
                row[0].annotate(f"static λ={lam:g}", (ln.mean(), acc.mean()), fontsize=7, color="grey")
        row[1].plot(cfg.ks, [3 * (k + 1) for k in cfg.ks], "k:", label="oracle (concise)")
        first = cfg.readouts[0]
        for tr in sorted({r["traj"] for r in select(rows, metric="lambda", world=name, readout=first)}):
            pts = sorted(select(rows, metric="lambda", traj=tr, world=name, readout=first), key=lambda r: r["step"])
            row[2].plot([r["step"] for r in pts], [r["value"] for r in pts], "o-", ms=3, label=f"k={pts[0]['k']}")
        row[2].axhline(0, color="grey", lw=0.8)
        row[0].set(xlabel="mean thinking tokens", ylabel="accuracy", title=f"{name} world: accuracy vs length")
        row[1].set(xlabel="difficulty k", ylabel="thinking tokens", title="thinking length by difficulty")
        row[2].set(xlabel="step boundary", ylabel="λ", title="ReBalance λ = F(c, v) along trajectories (seed 0)")
        for a in row:
            a.grid(alpha=0.3)
            a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def overall(rows, method, metric, world) -> np.ndarray:
    """Overall (all k) per-seed values of one world: rows with no `k` key."""
    return np.array([r["value"] for r in select(rows, method=method, metric=metric, world=world) if "k" not in r])
