"""The ensembles' summaries, table and figure (pure functions of the records): per-seed scalars at the points the
claims read, compact tables of the seed-mean curves with Gao et al.'s fits, and the figure.

`cfg` is the paper's `experiment.Config`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import record, select
from reprozoo.common.reward import kl_bon
from reprozoo.common.worlds.gao import fit_gao
from reprozoo.papers.ensembles.members import SETTINGS, grid
from reprozoo.papers.ensembles.method import AGGREGATIONS
from reprozoo.papers.ensembles.ppo import PPO_METHODS, ppo_runs


def mean_curve(rows: list[dict], method: str, metric: str, **match) -> tuple[np.ndarray, np.ndarray]:
    """(step, mean over seeds of `metric`) of a curve."""
    sel = [r for r in select(rows, method=method, metric=metric, **match) if "step" in r]
    xs = sorted({r["step"] for r in sel})
    return np.array(xs, float), np.array([np.mean([r["value"] for r in sel if r["step"] == x]) for x in xs])


def peak_final(x: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Start, peak (and where) and final of a gold curve."""
    i = int(np.argmax(gold))
    return {
        "gold_start": float(gold[0]),
        "gold_peak": float(gold[i]),
        "peak_at": float(x[i]),
        "gold_final": float(gold[-1]),
    }


def summary_rows(rows: list[dict], cfg) -> list[dict]:
    """Per-seed scalars (rows without `step`, which summary.json aggregates with 95% CIs) at the points the claims
    read: peak and final gold of every 25%-noise best-of-n curve and every PPO curve, and gold at n = eisenstein_n
    of the Eisenstein contrast. Whole curves stay in records.jsonl, the figure and `table`."""
    out = []
    curves = {
        (r["method"], r["seed"], r.get("setting"), r.get("d"), r.get("noise"), r.get("beta"))
        for r in rows
        if "step" in r and r["metric"] == "gold" and r.get("noise", 0.25) == 0.25
    }
    for method, seed, setting, d, noise, beta in sorted(curves, key=str):
        match = {k: v for k, v in (("setting", setting), ("d", d), ("noise", noise), ("beta", beta)) if v is not None}
        x, gold = mean_curve([r for r in rows if r["seed"] == seed], method, "gold", **match)
        if method.startswith("eis_"):
            stats = {"gold_at_eis_n": gold[list(x).index(cfg.eisenstein_n)]}
        else:
            stats = {k: v for k, v in peak_final(x, gold).items() if k in ("gold_peak", "gold_final")}
        out += [record(method, seed, k, float(v), **match) for k, v in stats.items()]
    return out


# --- table, figure ---


def _fit(fit: dict[str, float]) -> str:
    return f"{fit['alpha']:.2f}, {fit['beta']:.2f} ({fit['r2']:.2f})"


def table(rows: list[dict], cfg) -> str:
    """Compact tables of the seed-mean curves: one row per (setting, size, noise) or (setting, β) and quantity,
    one column per reward. Gao et al.'s forms are fitted to the seed-mean curves (gold centred at π_SFT)."""
    d0 = cfg.sizes[0]
    gold_sft = mean_curve(rows, "bon_single", "gold", setting=SETTINGS[0], d=d0, noise=0.25)[1][0]
    bon = ["single", *AGGREGATIONS]
    lines = [
        f"Means over seeds of the curves; gold of π_SFT (best-of-n, n = 1) = {gold_sft:.3f}. Best-of-n, n = 1 … "
        f"{cfg.bon_samples}: gold at n = N (peak @ n), feature-count rise n = 1 → N, Gao d(α − βd) fit α, β (R²).",
        "",
        "| setting | d | noise | quantity | " + " | ".join(bon) + " |",
        "|---|---|---|---|" + "---|" * len(bon),
    ]
    for setting in SETTINGS:
        for d, noise in grid(cfg):
            cells: dict[str, list[str]] = {"gold n=N (peak @ n)": [], "features +Δ": [], "Gao α, β (R²)": []}
            for a in bon:
                m = {"setting": setting, "d": d, "noise": noise}
                x, gold = mean_curve(rows, f"bon_{a}", "gold", **m)
                feats = mean_curve(rows, f"bon_{a}", "features", **m)[1]
                i = int(np.argmax(gold))
                cells["gold n=N (peak @ n)"].append(f"{gold[-1]:.2f} ({gold[i]:.2f} @ {x[i]:.0f})")
                cells["features +Δ"].append(f"{feats[-1] - feats[0]:+.2f}")
                cells["Gao α, β (R²)"].append(
                    _fit(fit_gao(np.array([kl_bon(int(n)) for n in x]), gold - gold[0], "bon"))
                )
            lines += [f"| {setting} | {d} | {noise} | {q} | " + " | ".join(c) + " |" for q, c in cells.items()]
    lines += [
        "",
        f"PPO, {cfg.ppo_steps} iterations, windows of {cfg.log_every}: gold at the last window (peak @ iteration), "
        "KL and feature-count rise (first → last window), Gao d(α − β log d) fit α, β (R²); — = not run.",
        "",
        "| setting | β | quantity | " + " | ".join(PPO_METHODS) + " |",
        "|---|---|---|" + "---|" * len(PPO_METHODS),
    ]
    for (setting, beta), methods in ppo_runs(cfg).items():
        cells = {"gold final (peak @ it.)": [], "KL final": [], "features +Δ": [], "Gao α, β (R²)": []}
        for a in PPO_METHODS:
            if a not in methods:
                for c in cells.values():
                    c.append("—")
                continue
            x, gold = mean_curve(rows, f"ppo_{a}", "gold", setting=setting, beta=beta)
            kl = mean_curve(rows, f"ppo_{a}", "kl", setting=setting, beta=beta)[1]
            feats = mean_curve(rows, f"ppo_{a}", "features", setting=setting, beta=beta)[1]
            i = int(np.argmax(gold))
            fit = fit_gao(np.concatenate([[0.0], kl]), np.concatenate([[0.0], gold - gold_sft]), "rl")
            cells["gold final (peak @ it.)"].append(f"{gold[-1]:.2f} ({gold[i]:.2f} @ {x[i]:.0f})")
            cells["KL final"].append(f"{kl[-1]:.1f}")
            cells["features +Δ"].append(f"{feats[-1] - feats[0]:+.2f}")
            cells["Gao α, β (R²)"].append(_fit(fit))
        lines += [f"| {setting} | {beta} | {q} | " + " | ".join(c) + " |" for q, c in cells.items()]
    if cfg.eisenstein:
        names = ("eis_pretrain_mean", "eis_finetune_mean", "eis_single")
        v = [np.mean([r["value"] for r in select(rows, method=m, metric="gold_at_eis_n")]) for m in names]
        lines += [
            "",
            f"Eisenstein contrast (control, d = {d0}, 25% noise, mean aggregation): gold at n = {cfg.eisenstein_n}.",
            "",
            "| pretrain-seed ensemble | finetune-seed ensemble | single RM |",
            "|---|---|---|",
            "| " + " | ".join(f"{x:.3f}" for x in v) + " |",
        ]
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], cfg, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(16, 8.5))
    noise = 0.25
    d = cfg.sizes[0]
    colors = {"single": "C3", "mean": "C0", "wco": "C2", "uwo": "C1", "median": "C4", "mean_minus_std": "C5"}
    for j, setting in enumerate(SETTINGS):
        a = ax[0, j]
        for name, c in colors.items():
            n, gold = mean_curve(rows, f"bon_{name}", "gold", setting=setting, d=d, noise=noise)
            if not len(n):
                continue
            kl = [kl_bon(int(v)) for v in n]
            a.plot(kl, gold, "o-", color=c, label=f"{name} gold", ms=3)
            a.plot(
                kl,
                mean_curve(rows, f"bon_{name}", "proxy", setting=setting, d=d, noise=noise)[1],
                "--",
                color=c,
                alpha=0.4,
            )
        a.set(
            xlabel="KL_BoN",
            ylabel="gold (solid) / proxy z (dashed)",
            title=f"best-of-n, {setting} (d={d}, {noise:.0%} noise)",
        )
    a = ax[0, 2]
    if cfg.eisenstein:
        names = ("eis_pretrain_mean", "eis_finetune_mean", "eis_single")
        vals = [[r["value"] for r in select(rows, method=m, metric="gold_at_eis_n")] for m in names]
        a.bar(
            ["pretrain-seed\nensemble", "finetune-seed\nensemble", "single RM"],
            [np.mean(v) for v in vals],
            color=["C0", "C9", "C3"],
        )
        for i, v in enumerate(vals):
            a.plot([i] * len(v), v, "k.", alpha=0.6)
        a.set(ylabel=f"gold at n = {cfg.eisenstein_n}", title="Eisenstein contrast (control, mean aggregation)")
    for j, ((setting, beta), methods) in enumerate(list(ppo_runs(cfg).items())[:3]):
        a = ax[1, j]
        for m in methods:
            _, gold = mean_curve(rows, f"ppo_{m}", "gold", setting=setting, beta=beta)
            _, kl = mean_curve(rows, f"ppo_{m}", "kl", setting=setting, beta=beta)
            _, proxy = mean_curve(rows, f"ppo_{m}", "proxy", setting=setting, beta=beta)
            a.plot(kl, gold, "o-", color=colors[m], label=f"{m} gold", ms=3)
            a.plot(kl, proxy, "--", color=colors[m], alpha=0.4)
        a.set(
            xlabel="KL(π ‖ π_SFT) (nats)",
            ylabel="gold (solid) / optimised reward z (dashed)",
            title=f"PPO, {setting}, β = {beta}",
        )
    for a in ax.flat:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
