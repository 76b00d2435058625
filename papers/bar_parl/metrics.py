"""The paper's measures from a job's learning curves, as records: return curves at `curve_points` iterations, the
final / mean / early / initial return per seed (BARFI), and the episodes each PARL learner needs to reach the target
return fixed before any data was seen."""

from __future__ import annotations

import numpy as np

from reprozoo.common.results import record, values
from reprozoo.papers.bar_parl.envs import HEURISTICS


def curve_rows(method, seeds, values, episodes_per_iter, points, **setting) -> list[dict]:
    """The (seeds, iterations) return curves at `points` evenly spaced iterations, with the episodes used so far."""
    n = values.shape[-1]
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))
    return [
        record(
            method, s, "return", float(values[i, t]), step=int(t), episodes=int((t + 1) * episodes_per_iter), **setting
        )
        for i, s in enumerate(seeds)
        for t in idx
    ]


def final_return(values: np.ndarray) -> np.ndarray:
    """Mean return over the last 10% of iterations (per seed)."""
    k = max(1, values.shape[-1] // 10)
    return values[..., -k:].mean(-1)


def episodes_to_target(curve: np.ndarray, target: float, episodes_per_iter: int) -> float:
    """Environment episodes until the return first reaches `target` (the whole budget + 1 iteration if never)."""
    hit = np.nonzero(curve >= target)[0]
    t = hit[0] if hit.size else curve.shape[-1]
    return float((t + 1) * episodes_per_iter)


def barfi_rows(
    method: str,
    logs: dict[str, np.ndarray],
    env_name: str,
    seeds: list[int],
    per_iter: int,
    curve_points: int,
    early_fraction: float,
) -> list[dict]:
    """The records of one BARFI or baseline method on an env, per heuristic: the return curve, the learned φ_1,
    φ_2, γ_φ and the hypergradient norm where logged, and per seed the final, mean, early and initial return."""
    rows = []
    for h, heuristic in enumerate(HEURISTICS):
        ret = logs["return"][:, h]
        rows += curve_rows(method, seeds, ret, per_iter, curve_points, env=env_name, heuristic=heuristic)
        for name in ("phi1", "phi2", "gamma_phi", "hyper_norm"):
            if name in logs:
                vals = logs[name][:, h]
                idx = np.unique(
                    np.linspace(0, vals.shape[-1] - 1, min(curve_points, vals.shape[-1])).round().astype(int)
                )
                rows += [
                    record(method, s, name, float(vals[i, t]), step=int(t), env=env_name, heuristic=heuristic)
                    for i, s in enumerate(seeds)
                    for t in idx
                ]
        for i, s in enumerate(seeds):
            rows.append(record(method, s, "final_return", final_return(ret[i]), env=env_name, heuristic=heuristic))
            rows.append(record(method, s, "mean_return", ret[i].mean(), env=env_name, heuristic=heuristic))
            early = max(1, round(ret.shape[-1] * early_fraction))
            rows.append(record(method, s, "early_return", ret[i, :early].mean(), env=env_name, heuristic=heuristic))
            rows.append(record(method, s, "initial_return", ret[i, 0], env=env_name, heuristic=heuristic))
    return rows


def parl_target_rows(
    curves: dict[str, np.ndarray], rows: list[dict], where: dict, seeds: list[int], per_iter: int
) -> list[dict]:
    """episodes_to_target per seed. Fixed before any data was seen: target = R_0 + 0.8 (R_oracle − R_0) with R_0
    the PARL runs' mean initial return and R_oracle the final return of the gridworld `rp` baseline (no heuristic,
    the BARFI learner on the true reward r_p). Measured per batch of `per_iter` episodes."""
    r0 = float(np.mean([c[:, 0].mean() for c in curves.values()]))
    r_oracle = float(np.mean(values(rows, method="rp", env="gridworld", heuristic="none", metric="final_return")))
    target = r0 + 0.8 * (r_oracle - r0)
    return [
        record(
            method,
            s,
            "episodes_to_target",
            episodes_to_target(curves[method][i], target, per_iter),
            **where,
            target=round(target, 3),
            r_oracle=round(r_oracle, 3),
        )
        for method in curves
        for i, s in enumerate(seeds)
    ]
