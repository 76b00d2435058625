"""The single list of papers.

It drives the nox sessions (`nox -s paper-<slug>`), the README's paper table and the
CLI smoke runs in the tests. A paper counts as implemented once its package exists
(`papers/<slug>/__main__.py`); its claims come from `results/<slug>/quick/summary.json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paper:
    slug: str
    title: str
    extra: str  # the pyproject extra its nox session installs
    framework: str

    @property
    def session(self) -> str:
        return "paper-" + self.slug.replace("_", "-")

    @property
    def implemented(self) -> bool:
        return (ROOT / "papers" / self.slug / "__main__.py").exists()

    @property
    def results_dir(self) -> Path:
        return ROOT / "results" / self.slug / "quick"


PAPERS: tuple[Paper, ...] = (
    Paper("ensembles", "Coste et al. 2023 (WCO/UWO) + Eisenstein et al. 2023 (Helping or Herding)", "lm", "torch"),
    Paper("par", "Fu et al. 2025, Reward Shaping to Mitigate Reward Hacking (PAR)", "lm", "torch"),
    Paper("power_dl", "Rashidinejad & Tian 2024, POWER with dynamic labels", "lm", "torch"),
    Paper("bar_parl", "Gupta et al. 2023 (BARFI) + Chakraborty et al. 2023 (PARL)", "rl", "JAX + optax"),
    Paper("a2pr", "Liu et al. 2024, A2PR offline RL", "rl", "JAX + flax + optax"),
    Paper("bang", "Lin et al. 2023, spurious feature diversification, WiSE-FT / BANG", "vision", "torch"),
    Paper("subgm", "Ma & Fattahi 2022, sub-gradient method for robust matrix recovery", "jax", "JAX (numpy reference)"),
    Paper("rebalance", "ReBalance 2026, confidence-steered balanced thinking", "lm", "torch + transformers"),
    Paper("traac", "TRAAC 2025, adaptive attentive compression RL", "lm", "torch + transformers"),
    Paper(
        "grpo_guard",
        "GRPO-Guard 2025, regulated clipping for flow-matching GRPO",
        "diffusion",
        "torch + diffusers",
    ),
)

BY_SLUG = {p.slug: p for p in PAPERS}


def implemented() -> list[Paper]:
    return [p for p in PAPERS if p.implemented]
