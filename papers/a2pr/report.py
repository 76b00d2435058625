"""The figure of an a2pr run (`figure.png`): per env, score curves per dataset and method, the convergence of λ,
the paired differences of the premise on the mixed datasets, and A2PR's VAE error by advantage sign."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import mean_ci95, select
from reprozoo.papers.a2pr import data, tasks
from reprozoo.papers.a2pr.claims import paired
from reprozoo.papers.a2pr.experiment import Config
from reprozoo.papers.a2pr.training import METHODS


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Per env: normalised score vs gradient steps per dataset and method; λ(t) / λ(end) (convergence);
    paired differences A2PR − TD3+BC and IQL − BC (the premise) on the mixed datasets; VAE error by advantage."""
    import matplotlib.pyplot as plt

    cfg = cfg.effective()
    cells, envs = cfg.cells(), cfg.envs
    if cfg.dataset:  # real datasets: the (env, type) pairs of --dataset
        named = [tasks.split_task(tasks.parse_entry(e)[0]) for e in cfg.dataset]
        envs = tuple(dict.fromkeys(e for e, _ in named))
        cells = tuple(dict.fromkeys(d for _, d in named))
    n_cols = len(cells) + 3
    fig, axes = plt.subplots(len(envs), n_cols, figsize=(3.0 * n_cols, 2.6 * len(envs)), squeeze=False)
    colors = dict(zip(METHODS, ("C3", "C0", "C2", "C7"), strict=True))

    def band(ax, x, samples, color, label):
        stats = [mean_ci95(v) for v in samples]
        mean, half = np.array([m for m, _ in stats]), np.array([h for _, h in stats])
        ax.plot(x, mean, color=color, label=label)
        ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.15)

    for r, env in enumerate(envs):
        for c, ds in enumerate(cells):
            ax = axes[r, c]
            for m in cfg.methods:
                sel = select(rows, method=m, metric="score", env=env, dataset=ds)
                steps = sorted({x["step"] for x in sel})
                band(ax, steps, [[x["value"] for x in sel if x["step"] == s] for s in steps], colors[m], m)
            ax.set_title(f"{env} {ds}", fontsize=9)
            ax.set_xlabel("gradient steps", fontsize=8)
            if c == 0:
                ax.set_ylabel("normalised score", fontsize=8)
        ax = axes[r, len(cells)]
        for m in cfg.methods:
            sel = select(rows, method=m, metric="lambda", env=env)
            if not sel:
                continue
            end = {(x["dataset"], x["seed"]): x["value"] for x in sel if x["step"] == cfg.steps}
            steps = sorted({x["step"] for x in sel})
            rel = [[x["value"] / end[(x["dataset"], x["seed"])] for x in sel if x["step"] == s] for s in steps]
            band(ax, steps, rel, colors[m], m)
        ax.axvspan(0.8 * cfg.steps, cfg.steps, color="0.9")
        ax.set_ylim(0.5, 2.0)
        ax.set_title(f"{env}: λ(t) / λ(end)", fontsize=9)
        ax = axes[r, len(cells) + 1]
        mixed = [d for d in cells if data.is_mixed(d)]
        x = np.arange(len(mixed))
        for off, (a, b), color in ((-0.15, ("A2PR", "TD3+BC"), "C3"), (0.15, ("IQL", "BC"), "C2")):
            diffs = [paired(rows, a, b, env=env, dataset=d) for d in mixed]
            stats = [mean_ci95(v) if v else (np.nan, 0.0) for v in diffs]
            ax.errorbar(
                x + off, [m for m, _ in stats], yerr=[h for _, h in stats], fmt="o", color=color, label=f"{a} − {b}"
            )
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(x, mixed, fontsize=7)
        ax.set_title(f"{env}: paired differences (95% CI)", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[r, -1]
        x = np.arange(len(cells))
        for off, metric, label in ((-0.2, "vae_err_pos", "A > 0"), (0.2, "vae_err_neg", "A ≤ 0")):
            vals = [
                mean_ci95([v["value"] for v in select(rows, metric=metric, env=env, dataset=ds)] or [np.nan])
                for ds in cells
            ]
            ax.bar(x + off, [v[0] for v in vals], 0.4, yerr=[v[1] for v in vals], label=label)
        ax.set_xticks(x, cells, rotation=30, fontsize=7)
        ax.set_title(f"{env}: A2PR VAE error ‖â−a‖²", fontsize=9)
        ax.legend(fontsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
