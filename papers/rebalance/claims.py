"""The paper's three headline claims as checks over the records (thresholds fixed before the quick run; README)."""

from __future__ import annotations

import numpy as np

from common.results import Claim, select
from papers.rebalance.experiment import Config

LENGTH_CUT = 0.10  # claim 1: "substantially shorter": at least 10% fewer thinking tokens than the base model
ACC_TOL = 0.01  # claims 1-2: "no accuracy loss" allows 1 point of sampling noise (~2400 problems per method)
SIMILAR_LEN = 1.10  # claim 2: "similar or shorter length": at most 10% longer than static steering


def mean(rows: list[dict], method: str, metric: str) -> float:
    """Mean over seeds of an overall (all-k) metric."""
    vals = [r["value"] for r in select(rows, method=method, metric=metric) if "k" not in r and "step" not in r]
    return float(np.mean(vals)) if vals else float("nan")


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    m = lambda method, metric: mean(rows, method, metric)  # noqa: E731
    acc_b, len_b = m("base", "accuracy"), m("base", "think_len")
    acc_r, len_r = m("rebalance", "accuracy"), m("rebalance", "think_len")
    acc_s, len_s = m("static", "accuracy"), m("static", "think_len")
    claims = [
        Claim(
            "1-shorter-no-loss",
            f"ReBalance cuts mean thinking length by >= {LENGTH_CUT:.0%} vs the base model with accuracy >= base − "
            f"{ACC_TOL}",
            {"len_base": len_b, "len_rebalance": len_r, "cut": 1 - len_r / len_b}
            | {"acc_base": acc_b, "acc_rebalance": acc_r},
            len_r <= (1 - LENGTH_CUT) * len_b and acc_r >= acc_b - ACC_TOL,
        ),
        Claim(
            "2-dynamic-beats-static",
            f"ReBalance accuracy >= static steering's (λ = {cfg.static_lambda}) at <= {SIMILAR_LEN}× its length",
            {"acc_rebalance": acc_r, "acc_static": acc_s, "len_rebalance": len_r, "len_static": len_s},
            acc_r >= acc_s and len_r <= SIMILAR_LEN * len_s,
        ),
    ]
    u_r, u_b, u_nh = m("rebalance", "underthink_hard"), m("base", "underthink_hard"), m("no_w_high", "underthink_hard")
    o_r, o_b, o_nl = m("rebalance", "overthink_easy"), m("base", "overthink_easy"), m("no_w_low", "overthink_easy")
    claims.append(
        Claim(
            "3-both-branches-matter",
            "hard problems: ReBalance under-thinking rate <= base and < without w_high; easy problems: ReBalance "
            "over-thinking (redundant-step) rate < base and < without w_low",
            {
                "underthink_hard": {"rebalance": u_r, "base": u_b, "no_w_high": u_nh},
                "overthink_easy": {"rebalance": o_r, "base": o_b, "no_w_low": o_nl},
            },
            u_r <= u_b and u_r < u_nh and o_r < o_b and o_r < o_nl,
        )
    )
    return claims
