"""The figure and the table of a run: the WiSE-FT α sweeps of both worlds at p = p_wise, FalseFalseTrue along α and
the output-ensemble gain of (a) over p (the CLIP path's are `clip.figure` and `clip.table`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import select
from reprozoo.common.worlds.digits import N_PATCHES
from reprozoo.papers.bang import clip
from reprozoo.papers.bang.experiment import FINETUNES, WORLDS, Config


def curve(rows: list[dict], **match) -> tuple[list[float], np.ndarray]:
    """(α values, seed-mean values) of an α curve."""
    pts = select(rows, **match)
    alphas = sorted({r["alpha"] for r in pts})
    return alphas, np.array([np.mean([r["value"] for r in pts if r["alpha"] == a]) for a in alphas])


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """OOD accuracy vs α in the diverse and the control world; FalseFalseTrue vs α; (a) ensemble gain vs p.
    CLIP path: ID against OOD accuracy along the WiSE-FT path per variant."""
    if cfg.model:
        return clip.figure(rows, cfg.alphas, path)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(19, 4.5))
    for k, kind in enumerate(WORLDS):
        for variant, color in zip(FINETUNES, ("C0", "C2", "C4", "C3"), strict=True):
            for space, style in (("weight", "-o"), ("output", "--")):
                a, v = curve(rows, method=variant, metric="ood_acc", space=space, p=cfg.p_wise, world=kind)
                ax[k].plot(a, v, style, color=color, ms=3, label=f"{variant} ({space})")
        ax[k].set(
            title=f"{kind} world: OOD accuracy vs α (p = {cfg.p_wise})",
            xlabel="α (0 = pre-trained, 1 = fine-tuned)",
            ylabel="OOD accuracy",
        )
    for kind, style in zip(WORLDS, ("-o", "--s"), strict=True):
        for variant, color in (("wise_ft", "C0"), ("bang", "C3")):
            a, v = curve(rows, method=variant, metric="false_false_true", space="weight", p=cfg.p_wise, world=kind)
            ax[2].plot(a, v, style, color=color, ms=3, label=f"{variant}, {kind}")
    ax[2].set(title=f"FalseFalseTrue vs α (weight space, p = {cfg.p_wise})", xlabel="α", ylabel="fraction")
    for n_colors in (N_PATCHES, 1):
        g = [select(rows, metric="ensemble_gain", colors=n_colors, p=p) for p in cfg.ps]
        mean = [np.mean([r["value"] for r in gp]) for gp in g]
        sd = [np.std([r["value"] for r in gp]) for gp in g]
        ax[3].errorbar(cfg.ps, mean, yerr=sd, fmt="-o", capsize=3, label=f"{n_colors} colour feature(s)")
    ax[3].axhline(0, color="k", lw=0.5)
    ax[3].set(
        title="(a) output-ensemble gain over the better member (OOD)",
        xlabel="shift p (OOD sp = 1 − p)",
        ylabel="acc(ensemble) − max(acc(mlp_1), acc(mlp_2))",
    )
    for a in ax:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.suptitle(f"MultiColorDigits, mean over {cfg.seeds} seeds")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def table(rows: list[dict], cfg: Config) -> str:
    """The α sweeps (mean over seeds) at p = p_wise in both worlds: OOD accuracy, FalseFalseTrue, ID accuracy.
    CLIP path: accuracy per variant, α and dataset."""
    if cfg.model:
        return clip.table(rows, cfg.alphas)
    head = "| world | fine-tuning | quantity | " + " | ".join(f"α={a:g}" for a in cfg.alphas) + " |"
    lines = [
        f"WiSE-FT α sweeps, OOD at p = {cfg.p_wise} (α = 0: pre-trained, 1: fine-tuned), mean of {cfg.seeds} seeds:",
        "",
        head,
        "|---|---|---|" + "---|" * len(cfg.alphas),
    ]
    quantities = {
        "OOD acc, weight space": dict(metric="ood_acc", space="weight", p=cfg.p_wise),
        "OOD acc, output space": dict(metric="ood_acc", space="output", p=cfg.p_wise),
        "FalseFalseTrue, weight": dict(metric="false_false_true", space="weight", p=cfg.p_wise),
        "ID acc, weight space": dict(metric="id_acc", space="weight"),
    }
    for kind in WORLDS:
        for variant in FINETUNES:
            shown = (
                quantities
                if variant in ("wise_ft", "bang")
                else {"OOD acc, weight space": quantities["OOD acc, weight space"]}
            )
            for label, match in shown.items():
                _, v = curve(rows, method=variant, world=kind, **match)
                lines.append(f"| {kind} | {variant} | {label} | " + " | ".join(f"{x:.3f}" for x in v) + " |")
    return "\n".join(lines) + "\n"
