"""What the leaderboard checks (fixed in this file and the README before the quick run). A leaderboard makes no
claim of its own about which method wins; it checks that its premise holds on this budget and that its evaluators
agree on the origin:

0. premise: vanilla PPO over-optimises here (mean curve over seeds: gold falls from its peak by at least
   `FALL` of its gain over π_SFT while the single proxy's reward keeps rising), and its control: PPO on the gold
   reward itself (no proxy error) does not (falls by less than `FALL` of its gain);
1. sanity: at zero optimisation (best-of-n n = 1, PPO iteration 0, offline step 0) every evaluator puts π_SFT at
   gold win-rate ½ (within `WIN_TOL`) and, where it measures gold there, at π_SFT's gold (within `GOLD_TOL`).
"""

from __future__ import annotations

import numpy as np
from reprozoo.common.results import Claim, select
from reprozoo.papers.leaderboard.experiment import Config
from reprozoo.papers.leaderboard.ranking import mean_curve

FALL = 0.25  # premise: fall from the peak, as a fraction of the peak's gain over π_SFT (the world demo's threshold)
WIN_TOL = 0.05  # sanity: |win-rate at zero optimisation − ½| at most this (mean over seeds)
GOLD_TOL = 0.15  # sanity: |gold at zero optimisation − π_SFT's gold| at most this (mean over seeds)


def fall_and_rise(rows: list[dict], method: str, sft_gold: float) -> dict[str, float]:
    """Peak, final and relative fall of the mean gold curve; the single proxy's z at the gold peak and at the end."""
    x, gold = mean_curve(rows, method, "gold")
    px, proxy = mean_curve(rows, method, "proxy_z")
    i = int(np.argmax(gold))
    out = {"gold_sft": sft_gold, "gold_peak": float(gold[i]), "peak_at": float(x[i]), "gold_final": float(gold[-1])}
    out["fall_fraction"] = (out["gold_peak"] - out["gold_final"]) / max(out["gold_peak"] - sft_gold, 1e-9)
    if len(proxy):
        out["proxy_at_peak"] = float(proxy[int(np.argmin(np.abs(px - x[i])))])
        out["proxy_final"] = float(proxy[-1])
    return out


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
    v = fall_and_rise(rows, "ppo_vanilla", sft_gold)
    claims.append(
        Claim(
            "0-premise-vanilla-overoptimises",
            f"premise: vanilla PPO's mean gold falls from its peak by >= {FALL} of its gain over π_SFT while the "
            "single proxy's reward ends above its value at the gold peak",
            v,
            bool(v["fall_fraction"] >= FALL and v["proxy_final"] > v["proxy_at_peak"]),
        )
    )
    if "vanilla_gold" in cfg.ppo_runs:
        v = fall_and_rise(rows, "ppo_vanilla_gold", sft_gold)
        claims.append(
            Claim(
                "0-control-gold-reward-holds",
                f"control: PPO on the gold reward itself (no proxy error) falls from its peak by < {FALL} of its gain",
                v,
                bool(v["fall_fraction"] < FALL),
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
            f"sanity: at zero optimisation every evaluator gives π_SFT win-rate ½ ± {WIN_TOL} and gold within "
            f"{GOLD_TOL} of π_SFT's (mean over seeds; worst deviation shown)",
            {
                "evaluators": len(win),
                "worst_winrate": worst_win,
                "winrate_dev": win[worst_win],
                "worst_gold": worst_gold,
                "gold_dev": gold[worst_gold],
            },
            bool(abs(win[worst_win]) <= WIN_TOL and abs(gold[worst_gold]) <= GOLD_TOL),
        )
    )
    return claims
