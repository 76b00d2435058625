"""The paper's five headline claims as checks over the run records (metric: gold win-rate against the SFT
policy's responses on held-out prompts; "final" = mean of the last `final_evals` evaluations; per-seed values,
paired across runs by seed). Thresholds were fixed in this file and the README before the quick run.
"""

from __future__ import annotations

import numpy as np
from reprozoo.common.results import Claim, mean_ci95, select
from reprozoo.papers.par.experiment import METHODS, Config

HACK_FALL = 0.15  # claim 1: Vanilla's final win-rate at least this far below its peak (mean over seeds)
HOLD_FALL = 0.10  # claim 2: PAR's final win-rate at most this far below its peak (mean over seeds)
NOISE = 0.05  # claim 4: |mean paired difference| at most this (and its 95% CI contains 0)
BELOW_PAR = ("vanilla", "meanstd", "clip", "reg")  # claim 2: PAR ends above each of these


def per_seed(rows: list[dict], name: str, metric: str) -> np.ndarray:
    """Values of one run's metric, ordered by seed."""
    return np.array([r["value"] for r in sorted(select(rows, method=name, metric=metric), key=lambda r: r["seed"])])


def paired(rows: list[dict], a: str, b: str, metric: str = "winrate_final") -> tuple[float, float]:
    """Mean and 95% CI half-width over seeds of metric(a) − metric(b)."""
    return mean_ci95(per_seed(rows, a, metric) - per_seed(rows, b, metric))


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    runs = set(cfg.runs)
    claims = []

    def need(*names: str) -> bool:
        return set(names) <= runs

    # 0. premise control: the same PPO on the gold reward itself does not collapse
    if need("vanilla_gold"):
        peak, final = per_seed(rows, "vanilla_gold", "winrate_peak"), per_seed(rows, "vanilla_gold", "winrate_final")
        fall = float(np.mean(peak - final))
        claims.append(
            Claim(
                "0-control-no-proxy-error",
                f"premise control: Vanilla PPO on the gold reward itself ends within {HOLD_FALL} of its peak win-rate "
                "(the collapse needs a proxy error)",
                {"winrate_peak": float(peak.mean()), "winrate_final": float(final.mean()), "fall": fall},
                bool(fall <= HOLD_FALL),
            )
        )

    # 1. Vanilla reward-hacks
    if need("vanilla"):
        peak, final = per_seed(rows, "vanilla", "winrate_peak"), per_seed(rows, "vanilla", "winrate_final")
        p_peak, p_final = per_seed(rows, "vanilla", "proxy_at_winrate_peak"), per_seed(rows, "vanilla", "proxy_final")
        fall = float(np.mean(peak - final))
        claims.append(
            Claim(
                "1-vanilla-hacks",
                f"Vanilla PPO: the proxy reward rises past the win-rate peak (mean proxy final > mean proxy at the "
                f"peak) while the win-rate falls from its peak by >= {HACK_FALL} (mean over seeds)",
                {
                    "winrate_peak": float(peak.mean()),
                    "winrate_final": float(final.mean()),
                    "fall": fall,
                    "proxy_at_peak": float(p_peak.mean()),
                    "proxy_final": float(p_final.mean()),
                },
                bool(fall >= HACK_FALL and p_final.mean() > p_peak.mean()),
            )
        )

    # 2. PAR holds its win-rate and ends above Vanilla, Meanstd, Clip and Reg
    others = [m for m in BELOW_PAR if m in runs]
    if need("par"):
        peak, final = per_seed(rows, "par", "winrate_peak"), per_seed(rows, "par", "winrate_final")
        fall = float(np.mean(peak - final))
        diffs = {m: paired(rows, "par", m) for m in others}
        obs = {"winrate_peak": float(peak.mean()), "winrate_final": float(final.mean()), "fall": fall}
        obs.update({f"par_minus_{m}": d[0] for m, d in diffs.items()})
        claims.append(
            Claim(
                "2-par-holds",
                f"PAR's final win-rate is within {HOLD_FALL} of its peak (mean over seeds) and above each of "
                f"{', '.join(others)} (mean paired difference > 0)",
                obs,
                bool(fall <= HOLD_FALL and all(d[0] > 0 for d in diffs.values())),
            )
        )

    # 3. PAR is the best or within noise of the best shaping method
    rivals = [m for m in METHODS if m in runs and m != "par"]
    if need("par") and rivals:
        diffs = {m: paired(rows, m, "par") for m in rivals}
        better = [m for m, (d, h) in diffs.items() if d - h > 0]
        obs = {"par_final": float(per_seed(rows, "par", "winrate_final").mean())}
        obs.update({f"{m}_minus_par": d for m, (d, _) in diffs.items()})
        claims.append(
            Claim(
                "3-par-best",
                "no other method's final win-rate exceeds PAR's with a paired 95% CI above 0",
                {**obs, "significantly_better": ", ".join(better) or "none"},
                not better,
            )
        )

    # 4. one reference suffices
    if need("par", "par_m1"):
        d, h = paired(rows, "par_m1", "par")
        claims.append(
            Claim(
                "4-one-reference",
                f"PAR with M = 1 is within noise of M = {cfg.n_refs}: |mean paired difference of final win-rate| "
                f"<= {NOISE} and its 95% CI contains 0",
                {"m1_minus_m": d, "ci95": h},
                bool(abs(d) <= NOISE and abs(d) <= h),
            )
        )

    # 5. centred beats uncentred
    if need("par", "sigmoid"):
        d, h = paired(rows, "par", "sigmoid")
        claims.append(
            Claim(
                "5-centred-beats-uncentred",
                "PAR σ(r − r_ref) ends with a higher win-rate than the uncentred σ(r) (mean paired difference > 0)",
                {"par_minus_sigmoid": d, "ci95": h},
                bool(d > 0),
            )
        )
    return claims
