"""The figure of a run: return against environment episodes per method and heuristic, BARFI's learned φ_2 and γ_φ,
and the PARL learners' curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprozoo.common.results import select
from reprozoo.papers.bar_parl.envs import HEURISTICS
from reprozoo.papers.bar_parl.experiment import BARFI_METHODS, PARL_METHODS, Config

LABELS = {
    "barfi": "BARFI (Neumann)",
    "barfi_fo": "BARFI (first-order)",
    "shrink": "shrink φ, no hypergradient",
    "barfi_rand": "BARFI (Neumann), random φ start",
    "shrink_rand": "shrink φ, random φ start",
    "barfi_lr_x": "BARFI (Neumann), 10× φ lr",
    "rp": "r_p only",
    "naive": "r_p + r_aux",
    "potential": "potential shaping",
    "aparl": "A-PARL",
    "pebble": "PEBBLE-style",
}


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Return vs environment episodes per method and heuristic; learned φ_2 and γ_φ; PARL curves."""
    import matplotlib.pyplot as plt

    envs = list(cfg.envs)
    fig, axes = plt.subplots(len(envs) + 1, 3, figsize=(15, 3.6 * (len(envs) + 1)), squeeze=False)
    for r_i, env_name in enumerate(envs):
        for c_i, heuristic in enumerate(HEURISTICS):
            ax = axes[r_i, c_i]
            for method in BARFI_METHODS:
                _plot_curve(
                    ax, select(rows, method=method, env=env_name, heuristic=heuristic, metric="return"), LABELS[method]
                )
            ax.set_title(f"{env_name}, {heuristic} heuristic")
            ax.set_xlabel("environment episodes")
            ax.set_ylabel("return (r_p)")
    axes[0, 0].legend(fontsize=7)
    ax = axes[-1, 0]
    for reward_model in cfg.parl_reward_models:
        for method in PARL_METHODS:
            sel = select(rows, method=method, env="parl", reward_model=reward_model, metric="return")
            _plot_curve(ax, sel, f"{LABELS[method]} ({reward_model} reward model)")
    ax.set_title("PARL: preference-based alignment (gridworld)")
    ax.set_xlabel("environment episodes")
    ax.legend(fontsize=7)
    for c_i, metric in enumerate(("phi2", "gamma_phi"), start=1):
        ax = axes[-1, c_i]
        for env_name in envs:
            for heuristic in HEURISTICS:
                sel = select(rows, method="barfi", env=env_name, heuristic=heuristic, metric=metric)
                _plot_curve(ax, sel, f"{env_name}/{heuristic}", x="step")
        ax.set_title(f"BARFI learned {'φ_2 (visit-weighted)' if metric == 'phi2' else 'γ_φ'}")
        ax.set_xlabel("outer iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def _plot_curve(ax, rows: list[dict], label: str, x: str = "episodes") -> None:
    if not rows:
        return
    xs = sorted({r[x] for r in rows})
    mean = [np.mean([r["value"] for r in rows if r[x] == v]) for v in xs]
    ax.plot(xs, mean, label=label)
