"""The paper's three headline claims as checks over the run records (thresholds fixed from the notes).

1. A2PR ≥ TD3+BC on the average normalised score over all generated datasets (final evaluation).
2. On the mixed-suboptimal datasets A2PR beats TD3+BC by a clear margin: ≥ MIXED_MARGIN normalised points.
3. The VAE reconstructs positive-advantage dataset actions better than non-positive ones: the paired
   difference err(A ≤ 0) − err(A > 0) over (env, dataset, seed) has a 95% CI entirely above 0.
"""

from __future__ import annotations

import numpy as np

from common.results import Claim, mean_ci95, select

MIXED_MARGIN = 10.0  # normalised points; "a clear margin", fixed before running


def per_seed_average(rows: list[dict], method: str, metric: str = "score_last", **match) -> dict[int, float]:
    """{seed: mean of `metric` over the (env, dataset) cells matching `match`}."""
    by_seed: dict[int, list[float]] = {}
    for r in select(rows, method=method, metric=metric, **match):
        by_seed.setdefault(r["seed"], []).append(r["value"])
    return {s: float(np.mean(v)) for s, v in sorted(by_seed.items())}


def check(rows: list[dict], cfg) -> list[Claim]:
    claims = []
    a2pr, td3bc = per_seed_average(rows, "A2PR"), per_seed_average(rows, "TD3+BC")
    (m_a, ci_a), (m_t, ci_t) = mean_ci95(list(a2pr.values())), mean_ci95(list(td3bc.values()))
    best_a = np.mean(list(per_seed_average(rows, "A2PR", "score_best").values()))
    best_t = np.mean(list(per_seed_average(rows, "TD3+BC", "score_best").values()))
    claims.append(
        Claim(
            "avg-score",
            "A2PR mean normalised score (last eval, all datasets) >= TD3+BC's",
            {
                "a2pr": m_a,
                "a2pr_ci95": ci_a,
                "td3bc": m_t,
                "td3bc_ci95": ci_t,
                "a2pr_best": best_a,
                "td3bc_best": best_t,
            },
            m_a >= m_t,
        )
    )

    mixed_a, mixed_t = (
        per_seed_average(rows, "A2PR", dataset="mixed"),
        per_seed_average(rows, "TD3+BC", dataset="mixed"),
    )
    diff = [mixed_a[s] - mixed_t[s] for s in mixed_a if s in mixed_t]
    m_d, ci_d = mean_ci95(diff) if diff else (float("nan"), float("nan"))
    claims.append(
        Claim(
            "mixed-margin",
            f"A2PR − TD3+BC on mixed-suboptimal datasets >= {MIXED_MARGIN:g} points",
            {
                "a2pr": float(np.mean(list(mixed_a.values()))) if mixed_a else float("nan"),
                "td3bc": float(np.mean(list(mixed_t.values()))) if mixed_t else float("nan"),
                "diff": m_d,
                "diff_ci95": ci_d,
            },
            bool(diff) and m_d >= MIXED_MARGIN,
        )
    )

    pos = {(r["env"], r["dataset"], r["seed"]): r["value"] for r in select(rows, method="A2PR", metric="vae_err_pos")}
    neg = {(r["env"], r["dataset"], r["seed"]): r["value"] for r in select(rows, method="A2PR", metric="vae_err_neg")}
    gaps = [neg[k] - pos[k] for k in pos if k in neg and np.isfinite(neg[k] - pos[k])]
    m_g, ci_g = mean_ci95(gaps) if gaps else (float("nan"), float("nan"))
    claims.append(
        Claim(
            "vae-advantage",
            "VAE error on A<=0 actions − error on A>0 actions: 95% CI above 0",
            {
                "err_pos": float(np.mean(list(pos.values()))) if pos else float("nan"),
                "err_neg": float(np.mean(list(neg.values()))) if neg else float("nan"),
                "gap": m_g,
                "gap_ci95": ci_g,
                "cells": len(gaps),
            },
            bool(gaps) and m_g - ci_g > 0,
        )
    )
    return claims
