"""TRAAC's headline claims as checks over the records (thresholds fixed before the quick run; see README).

All compare means over seeds on the training difficulties (the world's k = 1..8) unless stated.
"""

from __future__ import annotations

import numpy as np
from reprozoo.common.results import Claim
from reprozoo.papers.traac.experiment import Config, mean_over_seeds

MIN_ACC_GAIN = 0.01  # claims 1, 2: "raises accuracy" — at least one point (paper: +8.4 / +7.9 points)
MIN_LENGTH_CUT = 0.15  # claim 1: thinking at least 15% shorter than the base model's (paper: −36.8%)
EQUAL_LENGTH = 1.05  # claim 2: "equal or shorter length" — within 5% of the length-penalty baseline
ABLATION_ACC_LOSS = 0.01  # claim 4: an ablation loses ≥ 1 point of accuracy …
ABLATION_LENGTH_GAIN = 1.05  # … or thinks ≥ 5% longer than TRAAC
PREMISE_AUC = 0.7  # claim 0: END's attention ranks redundant steps below chain steps with AUC ≥ 0.7 …
PREMISE_GATE = 0.2  # … and the uniformity gate opens (U ≤ 0.8) on ≥ 20% of the base model's correct rollouts


def length_slope(rows: list[dict], method: str, ks: list[int]) -> float:
    """Least-squares slope of mean thinking tokens against k over `ks` (seeds averaged first)."""
    lens = [mean_over_seeds(rows, method, "think_len", split="train", k=k) for k in ks]
    return float(np.polyfit(ks, lens, 1)[0])


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    def acc(m):
        return mean_over_seeds(rows, m, "accuracy", split="train")

    def length(m):
        return mean_over_seeds(rows, m, "think_len", split="train")

    official = [r for r in rows if r["method"] == "premise" and "layer" not in r]
    auc = float(np.nanmean([r["value"] for r in official if r["metric"] == "redundant_auc"]))
    gate = float(np.nanmean([r["value"] for r in official if r["metric"] == "gate_open_rate"]))
    claims = [
        Claim(
            "0-premise-attention",
            f"premise (base model): END's attention ranks redundant steps below chain steps (AUC ≥ {PREMISE_AUC}) "
            f"and the uniformity gate opens on ≥ {PREMISE_GATE:.0%} of correct rollouts",
            {"redundant_auc": auc, "gate_open_rate": gate},
            auc >= PREMISE_AUC and gate >= PREMISE_GATE,
        )
    ]
    gain, cut = acc("traac") - acc("base"), 1 - length("traac") / length("base")
    claims.append(
        Claim(
            "1-more-accurate-and-shorter",
            f"TRAAC vs base: accuracy +{MIN_ACC_GAIN} or more and thinking ≥ {MIN_LENGTH_CUT:.0%} shorter",
            {"acc_traac": acc("traac"), "acc_base": acc("base"), "length_cut": cut},
            gain >= MIN_ACC_GAIN and cut >= MIN_LENGTH_CUT,
        )
    )
    if "length_penalty" in cfg.methods:
        ratio = length("traac") / length("length_penalty")
        claims.append(
            Claim(
                "2-beats-length-penalty",
                f"TRAAC vs length-penalty GRPO: accuracy +{MIN_ACC_GAIN} or more at ≤ {EQUAL_LENGTH}× its length",
                {"acc_traac": acc("traac"), "acc_length_penalty": acc("length_penalty"), "length_ratio": ratio},
                acc("traac") - acc("length_penalty") >= MIN_ACC_GAIN and ratio <= EQUAL_LENGTH,
            )
        )
    baselines = [m for m in ("base", "grpo", "length_penalty") if m in cfg.methods]
    slopes = {m: length_slope(rows, m, cfg.train_ks) for m in baselines + ["traac"]}
    claims.append(
        Claim(
            "3-adaptive-length",
            "TRAAC's thinking length grows with difficulty k more steeply (OLS slope over the training k) than "
            f"every baseline's ({', '.join(baselines)})",
            {"slope": slopes},
            len(cfg.train_ks) > 1 and all(slopes["traac"] > slopes[m] for m in baselines),
        )
    )
    ablations = [m for m in ("no_difficulty", "no_compression") if m in cfg.methods]
    if ablations:
        lost = {
            m: acc(m) <= acc("traac") - ABLATION_ACC_LOSS or length(m) >= ABLATION_LENGTH_GAIN * length("traac")
            for m in ablations
        }
        claims.append(
            Claim(
                "4-ablations-lose-gain",
                f"each ablation ({', '.join(ablations)}) loses part of the gain: accuracy ≥ {ABLATION_ACC_LOSS} "
                f"lower or thinking ≥ {ABLATION_LENGTH_GAIN}× longer than TRAAC",
                {
                    "acc": {m: acc(m) for m in ["traac", *ablations]},
                    "length": {m: length(m) for m in ["traac", *ablations]},
                },
                all(lost.values()),
            )
        )
    return claims
