"""POWER-DL's figure and table (pure functions of the records): the bandit's true reward and rare-arm mass per method
and dataset type; gold win-rate over SFT against KL through training, and start / peak / final, per world data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import select, values
from reprozoo.papers.power_dl.baselines import METHODS
from reprozoo.papers.power_dl.experiment import DATASETS, Config

LABELS = {
    "dpo": "DPO",
    "ipo": "IPO",
    "simpo": "SimPO",
    "cdpo": "cDPO",
    "rdpo": "rDPO",
    "chipo": "χPO",
    "power": "POWER",
    "power_dl": "POWER-DL",
}


def _world_curve(rows: list[dict], method: str, metric: str, **setting) -> tuple[np.ndarray, np.ndarray]:
    pts = select(rows, method=method, metric=metric, **setting)
    steps = sorted({r["step"] for r in pts})
    return np.array(steps), np.array([np.mean([r["value"] for r in pts if r["step"] == s]) for s in steps])


def _panels(cfg: Config) -> list[tuple[str, dict, list[str]]]:
    """(title, record filter, methods) of every world data set the methods train on (not the DPO-only controls)."""
    out = [
        (f"{cfg.world_pairs} pairs, {noise:.0%} label flips", dict(part="world", noise=noise), cfg.methods)
        for noise in cfg.label_noises
    ]
    if cfg.small_pairs is not None:
        seeds = cfg.small_seed_list()
        own = f" (seeds {seeds[0]}–{seeds[-1]})" if seeds != cfg.seed_list() else ""  # pre-registration v4
        out.append((f"{cfg.small_pairs} pairs, clean labels{own}", dict(part="world_small", noise=0.0), cfg.methods))
    if cfg.clean_control:
        out.append((f"{cfg.world_pairs} pairs, clean labels", dict(part="world_clean", noise=0.0), ["dpo"]))
    return out


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Top: bandit true reward and rare-arm mass per method (Type I / II, rare vs covered); bottom: gold
    win-rate over SFT vs KL through training, per method, for each world data set."""
    import matplotlib.pyplot as plt

    panels = _panels(cfg)
    fig, ax = plt.subplots(2, max(2, len(panels)), figsize=(6.5 * max(2, len(panels)), 9))
    x = np.arange(len(METHODS))
    for j, (metric, title) in enumerate((("true_reward", "true expected reward"), ("rare_mass", "mass on rare arm"))):
        for k, (kind, coverage) in enumerate(DATASETS):
            v = [
                np.mean(values(rows, part="bandit", method=m, metric=metric, kind=kind, coverage=coverage))
                for m in METHODS
            ]
            ax[0, j].bar(x + 0.2 * (k - 1.5), v, 0.2, label=f"{kind} / {coverage}")
        ax[0, j].set_xticks(x, [LABELS[m] for m in METHODS], rotation=30)
        ax[0, j].set(title=f"bandit: {title} (mean over {cfg.seeds} × {cfg.bandit_draws} datasets)")
        ax[0, j].legend(fontsize=7)
        ax[0, j].grid(alpha=0.3, axis="y")
    for j in range(2, ax.shape[1]):
        ax[0, j].axis("off")
    for j, (title, setting, methods) in enumerate(panels):
        for m in methods:
            _, kl = _world_curve(rows, m, "kl", **setting)
            _, win = _world_curve(rows, m, "win_rate", **setting)
            style = "-o" if m.startswith("power") else "--."
            ax[1, j].plot(kl, win, style, color=f"C{cfg.methods.index(m)}", ms=4, label=LABELS[m])
        ax[1, j].axhline(0.5, color="k", lw=0.5)
        ax[1, j].set(
            title=f"preference world, {title}: gold win-rate vs SFT",
            xlabel="KL(π ‖ π_SFT) estimate (nats)",
            ylabel="gold win-rate over SFT",
        )
        ax[1, j].legend(fontsize=7)
        ax[1, j].grid(alpha=0.3)
    for j in range(len(panels), ax.shape[1]):
        ax[1, j].axis("off")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def table(rows: list[dict], cfg: Config) -> str:
    """Bandit: per method and dataset type; world: per method and flip rate, start / peak / final."""
    lines = [
        f"Bandit (mean over {cfg.seeds} seeds × {cfg.bandit_draws} datasets): true expected reward / mass on the "
        "rare arm (Type I: lucky bad arm; Type II: unlucky good arm).",
        "",
        "| method | " + " | ".join(f"{k} {c}" for k, c in DATASETS) + " |",
        "|---|" + "---|" * len(DATASETS),
    ]
    for m in ("initial", *METHODS):
        cells = []
        for kind, coverage in DATASETS:
            s = dict(part="bandit", method=m, kind=kind, coverage=coverage)
            r, p = np.mean(values(rows, metric="true_reward", **s)), np.mean(values(rows, metric="rare_mass", **s))
            cells.append(f"{r:.3f} / {p:.3f}")
        lines.append(f"| {LABELS.get(m, 'initial π_0')} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Preference world (mean over {cfg.seeds} seeds unless the data set names its own): gold win-rate over SFT "
        "at the start, at its peak (step) and at the end of training; gold reward peak → final; KL at the end.",
        "",
        "| data | method | win start | win peak (step) | win final | gold peak → final | KL final |",
        "|---|---|---|---|---|---|---|",
    ]
    for title, setting, methods in _panels(cfg):
        for m in methods:
            s = {**setting, "part": f"{setting['part']}_summary", "method": m}

            def v(metric: str, s=s) -> float:
                return float(np.mean(values(rows, metric=metric, **s)))

            lines.append(
                f"| {title} | {LABELS[m]} | {v('win_rate_start'):.3f} | {v('win_rate_peak'):.3f} "
                f"({v('win_rate_peak_step'):.0f}) | {v('win_rate_final'):.3f} | {v('gold_peak'):.3f} → "
                f"{v('gold_final'):.3f} | {v('kl_final'):.2f} |"
            )
    return "\n".join(lines)
