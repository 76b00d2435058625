"""The paper's headline claims as checks over the run records; every threshold is fixed here before the run.

Scores are a run's final score (`score_final`: mean over its last evaluations), paired by seed between methods.
1. avg-score: A2PR ≥ TD3+BC on the mean normalised score over every (env, dataset) cell: the mean paired
   difference is ≥ 0 (reported with its 95% CI and the rliable IQMs; a CI that spans 0 is a tie).
2. mixed-margin-<env>, one claim per env: on the mixed-suboptimal datasets A2PR beats TD3+BC by a clear margin.
   Premise first: a mixed set tests the claim only where behaviour cloning over-constrains, i.e. BC < IQL with the
   95% CI of the paired IQL − BC difference above 0. Over the mixed sets of the env where the premise holds, the
   per-seed mean of A2PR − TD3+BC must have mean ≥ MIXED_MARGIN and a 95% CI above 0. An env where no mixed set
   meets the premise cannot test the claim: the claim is FAIL with `testable` = 0.
3. vae-advantage: the VAE reconstructs positive-advantage dataset actions better than non-positive ones: the
   paired difference err(A ≤ 0) − err(A > 0) over (env, dataset, seed) has a 95% CI entirely above 0.
4. convergence-gate (a check of the set-up, not of the paper): λ = α / mean|Q_1(s, π(s))| changed by less than
   5% over the last 20% of training in ≥ CONVERGED_SHARE of the critic runs (A2PR, TD3+BC, IQL).
"""

from __future__ import annotations

import numpy as np
from reprozoo.common.results import Claim, mean_ci95, select

MIXED_MARGIN = 10.0  # normalised points; "a clear margin", fixed before the first run
CONVERGED_SHARE = 0.9  # share of critic runs that must pass the convergence gate
CRITIC_METHODS = ("A2PR", "TD3+BC", "IQL")


def paired(rows: list[dict], a: str, b: str, metric: str = "score_final", **match) -> list[float]:
    """Per-seed differences a − b of `metric` averaged over the (env, dataset) cells matching `match`."""
    per_seed = {}
    for m in (a, b):
        by_seed: dict[int, list[float]] = {}
        for r in select(rows, method=m, metric=metric, **match):
            by_seed.setdefault(r["seed"], []).append(r["value"])
        per_seed[m] = {s: float(np.mean(v)) for s, v in by_seed.items()}
    return [per_seed[a][s] - per_seed[b][s] for s in sorted(per_seed[a]) if s in per_seed[b]]


def _ci(x: list[float]) -> tuple[float, float]:
    return mean_ci95(x) if x else (float("nan"), float("nan"))


def _mean(rows: list[dict], method: str, **match) -> float:
    v = [r["value"] for r in select(rows, method=method, metric="score_final", **match)]
    return float(np.mean(v)) if v else float("nan")


def _iqm(rows: list[dict], method: str, group: str) -> dict[str, float]:
    out = {}
    for metric in ("iqm", "iqm_low", "iqm_high"):
        v = select(rows, method=method, metric=metric, group=group)
        out[metric] = v[0]["value"] if v else float("nan")
    return out


def mixed_margin(rows: list[dict], env: str) -> Claim:
    """Claim 2 on one env: premise per mixed set, then the paired margin over the sets where it holds."""
    mixed = sorted({r["dataset"] for r in select(rows, env=env) if r.get("dataset", "").startswith("mixed-")})
    observed: dict[str, float] = {}
    tested = []
    for d in mixed:
        m, h = _ci(paired(rows, "IQL", "BC", env=env, dataset=d))
        observed[f"iql_minus_bc_{d}"] = m
        observed[f"iql_minus_bc_ci95_{d}"] = h
        if m - h > 0:
            tested.append(d)
    per_seed: dict[int, list[float]] = {}
    for d in tested:
        a2pr = {r["seed"]: r["value"] for r in select(rows, method="A2PR", metric="score_final", env=env, dataset=d)}
        td3 = {r["seed"]: r["value"] for r in select(rows, method="TD3+BC", metric="score_final", env=env, dataset=d)}
        for s in a2pr:
            if s in td3:
                per_seed.setdefault(s, []).append(a2pr[s] - td3[s])
        observed[f"diff_{d}"], observed[f"diff_ci95_{d}"] = _ci([a2pr[s] - td3[s] for s in sorted(a2pr) if s in td3])
    m, h = _ci([float(np.mean(v)) for v in per_seed.values()])
    observed = {"testable": len(tested), "diff": m, "diff_ci95": h, "seeds": len(per_seed), **observed}
    return Claim(
        f"mixed-margin-{env}",
        f"{env} mixed sets with BC < IQL: A2PR − TD3+BC >= {MIXED_MARGIN:g} points, 95% CI above 0",
        observed,
        bool(tested) and m >= MIXED_MARGIN and m - h > 0,
    )


def check(rows: list[dict], cfg) -> list[Claim]:
    claims = []
    m, h = _ci(paired(rows, "A2PR", "TD3+BC"))
    iqm_a, iqm_t = _iqm(rows, "A2PR", "all"), _iqm(rows, "TD3+BC", "all")
    claims.append(
        Claim(
            "avg-score",
            "A2PR mean normalised score (all datasets) >= TD3+BC's (paired by seed)",
            {
                "a2pr": _mean(rows, "A2PR"),
                "td3bc": _mean(rows, "TD3+BC"),
                "diff": m,
                "diff_ci95": h,
                **{f"{k.replace('iqm', 'iqm_a2pr')}": v for k, v in iqm_a.items()},
                **{f"{k.replace('iqm', 'iqm_td3bc')}": v for k, v in iqm_t.items()},
            },
            m >= 0,
        )
    )
    envs = sorted({r["env"] for r in rows if "env" in r and r["method"] != "reference"})
    claims += [mixed_margin(rows, env) for env in envs]

    pos = {(r["env"], r["dataset"], r["seed"]): r["value"] for r in select(rows, method="A2PR", metric="vae_err_pos")}
    neg = {(r["env"], r["dataset"], r["seed"]): r["value"] for r in select(rows, method="A2PR", metric="vae_err_neg")}
    gaps = [neg[k] - pos[k] for k in pos if k in neg and np.isfinite(neg[k] - pos[k])]
    m_g, ci_g = _ci(gaps)
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

    share = {m: [r["value"] for r in select(rows, method=m, metric="converged")] for m in CRITIC_METHODS}
    runs = [v for m in CRITIC_METHODS for v in share[m]]
    total = float(np.mean(runs)) if runs else float("nan")
    claims.append(
        Claim(
            "convergence-gate",
            f"set-up: λ changes < 5% over the last 20% of training in >= {CONVERGED_SHARE:.0%} of critic runs",
            {"converged": total, **{m: float(np.mean(v)) if v else float("nan") for m, v in share.items()}},
            bool(runs) and total >= CONVERGED_SHARE,
        )
    )
    return claims
