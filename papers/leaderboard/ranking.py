"""Ranking, the gold-vs-KL Pareto front, the ranked table and the figure (pure functions of the records)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import aggregate, select
from reprozoo.common.stats import paired_diff

REFERENCES = ("sft", "ppo_vanilla_gold")
"""Rows shown for reference, never ranked: π_SFT itself and PPO on the gold reward (no proxy error)."""
PREMISE_ONLY = ("ppo_vanilla_extra",)
"""Vanilla PPO on the premise-only seeds: read by the premise check, neither ranked nor tabled."""
FAMILIES = (
    ("bon_", "best-of-n", "ensembles"),
    ("ppo_ens_", "PPO, ensemble RM", "ensembles"),
    ("ppo_single_z", "PPO, single RM (z)", "ensembles"),
    ("ppo_", "PPO", "par"),
)
COLUMNS = (
    ("gold_final", "gold final"),
    ("gold_peak", "gold peak"),
    ("winrate_final", "win-rate vs SFT"),
    ("kl_final", "KL final"),
    ("gap_final", "proxy − gold gap"),
    ("features_drift", "Δ features"),
    ("length_drift", "Δ length"),
)


def family(method: str) -> tuple[str, str]:
    """(family, paper slug) of a leaderboard method name."""
    if method == "sft":
        return "π_SFT", "—"
    for prefix, fam, paper in FAMILIES:
        if method.startswith(prefix):
            return fam, paper
    return "offline", "power_dl"


def rank(methods: dict[str, dict[str, dict[str, float]]], metric: str = "gold_final") -> list[tuple[str, float, float]]:
    """[(method, mean, 95% CI half-width)] by decreasing mean of `metric` over seeds (references left out; ties keep
    the methods' name order)."""
    rows = [(m, agg[metric]["mean"], agg[metric]["ci95"]) for m, agg in methods.items() if metric in agg]
    rows = [r for r in rows if r[0] not in REFERENCES and np.isfinite(r[1])]
    return sorted(sorted(rows), key=lambda r: -r[1])


def per_seed(rows: list[dict], metric: str = "gold_final") -> dict[str, dict[int, float]]:
    """{method: {seed: value}} of a per-run metric (the rows without `step`)."""
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["metric"] == metric and "step" not in r:
            out.setdefault(r["method"], {})[r["seed"]] = r["value"]
    return out


def tied_with_best(ranked: list[tuple[str, float, float]], seeds: dict[str, dict[int, float]]) -> set[str]:
    """The leader and every method whose paired difference leader − method (same seeds, Student-t 95% CI,
    `common.stats.paired_diff`) has a lower bound ≤ 0: the seeds cannot separate it from the leader."""
    if not ranked:
        return set()
    best = ranked[0][0]
    return {best} | {m for m, _, _ in ranked[1:] if paired_diff(seeds[best], seeds[m]).low <= 0}


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Methods whose (KL, gold) no other method dominates (KL ≤ and gold ≥, one of them strictly), by KL."""
    front = []
    for m, (kl, gold) in points.items():
        dominated = any(
            k2 <= kl and g2 >= gold and (k2 < kl or g2 > gold) for m2, (k2, g2) in points.items() if m2 != m
        )
        if not dominated:
            front.append(m)
    return sorted(front, key=lambda m: points[m][0])


def final_points(methods: dict[str, dict[str, dict[str, float]]]) -> dict[str, tuple[float, float]]:
    """(mean KL final, mean gold final) of every ranked method."""
    return {
        m: (agg["kl_final"]["mean"], agg["gold_final"]["mean"])
        for m, agg in methods.items()
        if m not in REFERENCES and "kl_final" in agg and "gold_final" in agg
    }


def _cell(agg: dict[str, dict[str, float]], metric: str) -> str:
    if metric not in agg:
        return "—"
    return f"{agg[metric]['mean']:.2f} ± {agg[metric]['ci95']:.2f}"


def ranked_table(rows: list[dict]) -> str:
    """The leaderboard: methods ranked by final gold reward (mean ± 95% CI over seeds), with the other metrics, the
    methods not separable from the leader (paired 95% CI of leader − method contains 0) and those on the gold-vs-KL
    Pareto front; references below."""
    rows = [r for r in rows if r["method"] not in PREMISE_ONLY]
    methods = aggregate(rows)
    ranked = rank(methods)
    tied = tied_with_best(ranked, per_seed(rows))
    front = set(pareto_front(final_points(methods)))
    head = "| rank | method | family | paper | " + " | ".join(c[1] for c in COLUMNS) + " | front |"
    lines = [
        "Ranked by final gold reward (mean of the last 3 points; mean ± 95% CI over seeds). **bold**: the paired 95% "
        "CI of leader − method (same seeds) contains 0; front: on the gold-vs-KL Pareto front of the final points; "
        "— : not measured by that paper's entry point.",
        "",
        head,
        "|---" * (len(COLUMNS) + 5) + "|",
    ]
    for i, (m, _, _) in enumerate(ranked, 1):
        fam, paper = family(m)
        name = f"**{m}**" if m in tied else m
        cells = " | ".join(_cell(methods[m], c) for c, _ in COLUMNS)
        lines.append(f"| {i} | {name} | {fam} | {paper} | {cells} | {'✓' if m in front else ''} |")
    for m in REFERENCES:
        if m in methods:
            fam, paper = family(m)
            agg = methods[m]
            if m == "sft":  # π_SFT: gold, features and length are the origin; KL 0, win-rate ½ by definition
                zero = {"mean": 0.0, "ci95": 0.0}
                agg = {
                    "gold_final": agg["gold"],
                    "gold_peak": agg["gold"],
                    "kl_final": zero,
                    "winrate_final": {"mean": 0.5, "ci95": 0.0},
                    "features_drift": zero,
                    "length_drift": zero,
                }
            cells = " | ".join(_cell(agg, c) for c, _ in COLUMNS)
            lines.append(f"| ref | {m} | {fam} | {paper} | {cells} | |")
    return "\n".join(lines) + "\n"


def mean_curve(rows: list[dict], method: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, mean over seeds) of a method's curve, at the x every seed has."""
    pts = [r for r in select(rows, method=method, metric=metric) if "step" in r]
    seeds = {r["seed"] for r in pts}
    xs = sorted(x for x in {r["step"] for r in pts} if sum(r["step"] == x for r in pts) == len(seeds))
    return np.array(xs, float), np.array([np.mean([r["value"] for r in pts if r["step"] == x]) for x in xs])


def figure(rows: list[dict], cfg, path: Path) -> None:
    """Gold reward vs KL through optimisation (mean over seeds), one panel per family; the ranking (final gold,
    mean ± 95% CI); the final points (mean KL, mean gold ± 95% CI) and their Pareto front. π_SFT: a star at KL 0."""
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["method"] not in PREMISE_ONLY]
    methods = aggregate(rows)
    names = [m for m in methods if m != "sft" and "gold_final" in methods[m]]
    fams = list(dict.fromkeys(family(m)[0] for m in names))
    g0 = methods["sft"]["gold"]["mean"] if "sft" in methods else None
    fig, axes = plt.subplots(2, 3, figsize=(18, 10))
    axes = axes.flat
    for a, fam in zip(axes, fams, strict=False):
        for i, m in enumerate(m for m in names if family(m)[0] == fam):
            _, gold = mean_curve(rows, m, "gold")
            _, kl = mean_curve(rows, m, "kl")
            k = min(len(gold), len(kl))
            a.plot(
                kl[:k], gold[:k], marker="o", ms=3, lw=1.2, color=f"C{i}", ls=":" if m in REFERENCES else "-", label=m
            )
        a.set(xlabel="KL(π ‖ π_SFT) (nats)", ylabel="gold reward", title=f"{fam}: gold vs KL (mean over seeds)")
        a.set_ylim(bottom=max(a.get_ylim()[0], -8))
    ranked = rank(methods)
    a = axes[4]
    a.barh(
        range(len(ranked)),
        [r[1] for r in ranked],
        xerr=[r[2] for r in ranked],
        color=[f"C{fams.index(family(r[0])[0])}" for r in ranked],
        capsize=2,
    )
    a.set_yticks(range(len(ranked)), [r[0] for r in ranked], fontsize=7)
    a.invert_yaxis()
    a.set_xlim(left=max(a.get_xlim()[0], -15))
    a.set(xlabel="gold reward at the end (mean ± 95% CI)", title="ranked by final gold reward")
    a = axes[5]
    points = final_points(methods)
    for m in names:
        agg = methods[m]
        x, y = agg["kl_final"]["mean"], agg["gold_final"]["mean"]
        colour = f"C{fams.index(family(m)[0])}"
        a.errorbar(x, y, yerr=agg["gold_final"]["ci95"], fmt="o", color=colour, capsize=2, ms=4, alpha=0.8)
        a.annotate(m, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = pareto_front(points)
    a.plot([points[m][0] for m in front], [points[m][1] for m in front], "k--", lw=1, label="Pareto front")
    for j, fam in enumerate(fams):
        a.plot([], [], "o", color=f"C{j}", label=fam)
    a.set_ylim(bottom=max(a.get_ylim()[0], -8))
    a.set(
        xlabel="KL at the end (nats, mean over seeds)",
        ylabel="gold reward at the end",
        title="final points (gold: mean ± 95% CI over seeds), Pareto front",
    )
    for a in list(axes[: len(fams)]) + [axes[5]]:
        if g0 is not None:
            a.axhline(g0, color="k", lw=0.6, ls=":")
            a.plot([0], [g0], "k*", ms=10, label="π_SFT")
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    for a in axes[len(fams) : 4]:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)
