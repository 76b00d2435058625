"""What the leaderboard checks — claims v2 (README "Pre-registration v2"; decided on preference world v2.1, re-run
unchanged on v2.2). A leaderboard makes no claim of its own about which
method wins (its ranking is a table, stated with paired CIs); it checks that its premise holds on this budget, that
the premise's control behaves as predicted, and that its evaluators agree on the origin:

0. premise: vanilla PPO over-optimises here — per seed (main and premise-only seeds), gold falls from its smoothed
   peak (maximum of the 3-point moving average) to its final mean (mean of the last 3 points) by ≥ `FALL` of the
   peak's gain over π_SFT (mean over seeds) with a 95% CI of the fall above 0, while the single proxy's reward ends
   (final mean) above its value over the peak's window (mean over seeds);
   control: PPO on the gold reward itself (no proxy error) does not — the upper 95% bound of its fall is below
   `FALL` of its gain (PASS when it behaves as predicted);
1. premise (evaluators): at zero optimisation (best-of-n n = 1, PPO iteration 0, offline step 0) every evaluator puts
   π_SFT at gold win-rate ½ (within `WIN_TOL`) and, where it measures gold there, at π_SFT's gold (within `GOLD_TOL`).
Thresholds are the project's own: `FALL` is the world demo's, the tolerances the v1 values (fixed before the v1 run).
"""

from __future__ import annotations

import math

import numpy as np

from reprozoo.common.results import Claim, select
from reprozoo.common.stats import final_mean, min_detectable_effect, paired_diff
from reprozoo.papers.leaderboard.experiment import LAST, Config, smoothed_peak_at

FALL = 0.25  # premise: fall from the peak, as a fraction of the peak's gain over π_SFT (the world demo's threshold)
WIN_TOL = 0.05  # sanity: |win-rate at zero optimisation − ½| at most this (mean over seeds)
GOLD_TOL = 0.15  # sanity: |gold at zero optimisation − π_SFT's gold| at most this (mean over seeds)


def per_seed_curves(rows: list[dict], method: str, metric: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{seed: (x, values)} of a method's curve."""
    out: dict[int, list] = {}
    for r in select(rows, method=method, metric=metric):
        if "step" in r:
            out.setdefault(r["seed"], []).append((r["step"], r["value"]))
    return {
        s: (np.array([p[0] for p in sorted(v)], float), np.array([p[1] for p in sorted(v)])) for s, v in out.items()
    }


def fall_and_rise(rows: list[dict], method: str, sft_gold: float) -> tuple[dict[str, float], float, float]:
    """Per seed smoothed peak and final mean of gold, the paired fall (peak − final) and its 95% CI, the gain over
    π_SFT; the single proxy's z over the peak's window and at the end (means over seeds). Returns (observed, fall's
    lower 95% bound, fall's upper 95% bound)."""
    gold, proxy = per_seed_curves(rows, method, "gold"), per_seed_curves(rows, method, "proxy_z")
    pk, fin, at, p_at, p_fin = {}, {}, {}, {}, {}
    for s, (x, g) in gold.items():
        pk[s], centre = smoothed_peak_at(g)
        fin[s], at[s] = final_mean(g, LAST), float(x[centre])
        if s in proxy:
            px, pz = proxy[s]
            p_at[s] = float(pz[int(np.argmin(np.abs(px - at[s])))])
            p_fin[s] = final_mean(pz, LAST)
    d = paired_diff(pk, fin)
    gain = float(np.mean([pk[s] - sft_gold for s in pk]))
    out = {
        "gold_sft": sft_gold,
        "gold_peak": float(np.mean(list(pk.values()))),
        "peak_at": float(np.mean(list(at.values()))),
        "gold_final": float(np.mean(list(fin.values()))),
        "gain": gain,
        **d.as_observed("fall"),
        "fall_sd": d.sd,
        "fall_mde": min_detectable_effect(d.sd, d.n, alpha=0.025) if d.n > 1 else math.inf,
        "fall_fraction": d.mean / max(gain, 1e-9),
    }
    if p_at:
        out["proxy_at_peak"] = float(np.mean(list(p_at.values())))
        out["proxy_final"] = float(np.mean(list(p_fin.values())))
    return out, d.low, d.high


def origin(rows: list[dict], sft_gold: float) -> dict[str, float]:
    """Mean over seeds of the win-rate (and gold) at the first point of every curve that starts at zero
    optimisation (x = 0, or n = 1 for best-of-n)."""
    out = {}
    methods = sorted({r["method"] for r in rows if "step" in r})
    for m in methods:
        start = 1 if m.startswith("bon_") else 0
        for metric in ("winrate", "gold"):
            v = [r["value"] for r in select(rows, method=m, metric=metric, step=start)]
            if v:
                out[f"{m}:{metric}"] = float(np.mean(v)) - (0.5 if metric == "winrate" else sft_gold)
    return out


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    sft_gold = select(rows, method="sft", metric="gold")[0]["value"]
    claims = []
    vanilla = [{**r, "method": "ppo_vanilla"} if r["method"] == "ppo_vanilla_extra" else r for r in rows]
    v, low, _ = fall_and_rise(vanilla, "ppo_vanilla", sft_gold)  # main and premise-only seeds
    claims.append(
        Claim(
            "0-premise-vanilla-overoptimises",
            f"premise: vanilla PPO's gold falls from its smoothed peak to its final mean by >= {FALL} of the peak's "
            "gain over π_SFT (mean over seeds; 95% CI of the fall above 0) while the single proxy's reward ends above "
            "its value at the gold peak",
            v,
            bool(low > 0 and v["fall"] >= FALL * max(v["gain"], 0.0) and v["proxy_final"] > v["proxy_at_peak"]),
            kind="premise",
        )
    )
    if "vanilla_gold" in cfg.ppo_runs:
        v, _, high = fall_and_rise(rows, "ppo_vanilla_gold", sft_gold)
        claims.append(
            Claim(
                "0-control-gold-reward-holds",
                f"control: PPO on the gold reward itself (no proxy error) does not over-optimise: upper 95% bound of "
                f"its fall (smoothed peak − final mean) < {FALL} of its gain over π_SFT",
                v,
                bool(high < FALL * max(v["gain"], 0.0)),
                kind="control",
            )
        )
    dev = origin(rows, sft_gold)
    win = {k: d for k, d in dev.items() if k.endswith(":winrate")}
    gold = {k: d for k, d in dev.items() if k.endswith(":gold")}
    worst_win = max(win, key=lambda k: abs(win[k]))
    worst_gold = max(gold, key=lambda k: abs(gold[k]))
    claims.append(
        Claim(
            "1-sft-origin",
            f"premise (evaluators): at zero optimisation every evaluator gives π_SFT win-rate ½ ± {WIN_TOL} and gold "
            f"within {GOLD_TOL} of π_SFT's (mean over seeds; worst deviation shown)",
            {
                "evaluators": len(win),
                "worst_winrate": worst_win,
                "winrate_dev": win[worst_win],
                "worst_gold": worst_gold,
                "gold_dev": gold[worst_gold],
            },
            bool(abs(win[worst_win]) <= WIN_TOL and abs(gold[worst_gold]) <= GOLD_TOL),
            kind="premise",
        )
    )
    return claims
