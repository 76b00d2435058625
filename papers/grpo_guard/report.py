"""The figure and the extra table of a grpo_guard run (`figure.png`, `table.md`): per-step off-policy ratio
distributions, the proxy–gold frontier and the evaluation curves of the main runs; SD3 runs: reward curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import select
from reprozoo.papers.grpo_guard.experiment import METHODS, Config


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    import matplotlib.pyplot as plt

    if cfg.model != "world":  # SD3: reward curves
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in cfg.methods:
            for metric, style in (("train_reward", "-"), ("eval_reward", "o--")):
                pts = sorted((r["step"], r["value"]) for r in select(rows, method=method, metric=metric))
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, label=f"{method} {metric}")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return

    colours = {"flow_grpo": "C3", "flow_grpo_kl": "C1", "grpo_guard": "C0", "ratio_norm": "C2"}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    t = cfg.trained_steps()
    # (0, 0-1): per-step ratio distributions (main runs, seeds pooled by averaging quantiles)
    for ax, method in zip(axes[0, :2], ("flow_grpo", "grpo_guard"), strict=True):
        stats = []
        for j in range(t):
            q = {
                qq: np.mean(
                    [r["value"] for r in select(rows, method=method, kind="main", step=j, metric=f"ratio_q{qq:02d}")]
                    or [np.nan]
                )
                for qq in (5, 25, 50, 75, 95)
            }
            stats.append({"med": q[50], "q1": q[25], "q3": q[75], "whislo": q[5], "whishi": q[95], "label": str(j)})
        ax.bxp(stats, showfliers=False)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_title(f"{method}: off-policy ratio per step (5-95 %)")
        ax.set_xlabel("denoising step (0 = pure noise)")
    # (0, 2): proxy–gold frontier
    ax = axes[0, 2]
    for method in METHODS:
        px, gy = _curve(rows, method, "main", "proxy"), _curve(rows, method, "main", "realism")
        if px is not None:
            ax.plot(px.mean(0), gy.mean(0), "o-", color=colours[method], label=method, ms=3)
    ax.set_xlabel("proxy (margin)")
    ax.set_ylabel("realism: 5-NN distance (lower = better)")
    ax.set_title("proxy–gold frontier (main runs, seed mean)")
    ax.legend(fontsize=8)
    # (1, *): proxy, realism, diversity vs epoch
    for ax, metric in zip(axes[1], ("proxy", "realism", "diversity"), strict=True):
        for method in METHODS:
            c = _curve(rows, method, "main", metric)
            if c is None:
                continue
            epochs = _epochs(rows, method, "main", metric)
            ax.plot(epochs, c.mean(0), color=colours[method], label=method)
            ax.fill_between(epochs, c.min(0), c.max(0), color=colours[method], alpha=0.15)
        ax.set_xlabel("epoch")
        ax.set_title(f"{metric} (eval set; band = seed range)")
    axes[1, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _epochs(rows, method, kind, metric) -> list[int]:
    return sorted({r["step"] for r in select(rows, method=method, kind=kind, metric=metric)})


def _curve(rows, method, kind, metric) -> np.ndarray | None:
    """seeds × evaluations matrix of an evaluated metric (None when the run is absent)."""
    pts = [r for r in select(rows, method=method, kind=kind, metric=metric) if "step" in r]
    if not pts:
        return None
    seeds, epochs = sorted({r["seed"] for r in pts}), sorted({r["step"] for r in pts})
    value = {(r["seed"], r["step"]): r["value"] for r in pts}
    return np.array([[value[(s, e)] for e in epochs] for s in seeds])


def table(rows: list[dict], cfg: Config) -> str:
    """Per-step off-policy ratio statistics of the main runs (seed means)."""
    if cfg.model != "world":
        return ""
    t = cfg.trained_steps()
    lines = [
        "| method | step | ratio mean | ratio std | clip frac A>0 (ρ>1+ε) | clip frac A<0 (ρ<1−ε) |",
        "|---|---|---|---|---|---|",
    ]
    for method in cfg.methods:
        for j in range(t):
            v = {
                m: np.nanmean(
                    [r["value"] for r in select(rows, method=method, kind="main", step=j, metric=m)] or [np.nan]
                )
                for m in ("ratio_mean", "ratio_std", "clip_frac_pos", "clip_frac_neg")
            }
            cells = (
                f"{v['ratio_mean']:.5f} | {v['ratio_std']:.2g} | {v['clip_frac_pos']:.3f} | {v['clip_frac_neg']:.3f}"
            )
            lines.append(f"| {method} | {j} | {cells} |")
    return "\n".join(lines) + "\n"
