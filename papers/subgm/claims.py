"""The paper's headline claims as checks over the run records (thresholds fixed before running; see README)."""

from __future__ import annotations

import numpy as np
from reprozoo.common.results import Claim, values
from reprozoo.papers.subgm.experiment import Config

RECOVERED = 1e-3  # claim 1: "reaches relative error <= 1e-3"
RECOVERED_OUTLIERS = 1e-2  # claim 3: "still recovers X*" under p = 0.3
L2_FAILS = 1e-1  # claim 3: ℓ2 GD "does not recover": final error >= 0.1


def _gmean(x: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(np.maximum(x, 1e-300)))))


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    small, large, d = min(cfg.alphas), max(cfg.alphas), cfg.d
    claims = []

    # 1. small α: error <= 1e-3 for every r', with hitting times that barely depend on r'
    finals = {k: values(rows, metric="final_error", sweep="init", rank=k, alpha=small) for k in cfg.ranks}
    hits = {
        k: float(np.mean(values(rows, metric="iters_to_1e-2", sweep="init", rank=k, alpha=small))) for k in cfg.ranks
    }
    worst = max(float(np.max(v)) for v in finals.values())
    spread = max(hits.values()) / max(min(hits.values()), 1.0)
    claims.append(
        Claim(
            "1-small-init-agnostic",
            f"α={small:g}: every trial reaches error <= {RECOVERED:g} for every r' in {cfg.ranks}, and the mean "
            "iterations to reach 1e-2 vary by <= 2x across r'",
            {"worst_final_error": worst, "iters_to_1e-2_by_rank": hits, "max/min_iters": spread},
            worst <= RECOVERED and spread <= 2.0,
        )
    )

    # 2. large α with r' = d: markedly slower / stalled — final error >= 10x the small-α one
    e_large = _gmean(values(rows, metric="final_error", sweep="init", rank=d, alpha=large))
    e_small = _gmean(finals[d])
    claims.append(
        Claim(
            "2-large-init-penalty",
            f"r'=d={d}: SubGM from α={large:g} ends >= 10x worse than from α={small:g} (geometric mean over trials)",
            {"final_error_large_alpha": e_large, "final_error_small_alpha": e_small, "ratio": e_large / e_small},
            e_large >= 10 * e_small,
        )
    )

    # 3. outliers p = 0.3: SubGM recovers, ℓ2 GD does not
    p = 0.3
    e_sub = values(rows, method="subgm", metric="final_error", sweep="outliers", outlier_p=p)
    e_l2 = values(rows, method="l2", metric="final_error", sweep="outliers", outlier_p=p)
    claims.append(
        Claim(
            "3-outlier-robust",
            f"p={p}, r'=d: every SubGM trial ends <= {RECOVERED_OUTLIERS:g}; every ℓ2-GD trial ends >= {L2_FAILS:g}",
            {"subgm_max_final_error": float(np.max(e_sub)), "l2_min_final_error": float(np.min(e_l2))},
            bool(np.max(e_sub) <= RECOVERED_OUTLIERS and np.min(e_l2) >= L2_FAILS),
        )
    )

    # 4. Gaussian noise: error grows with ν (log-log slope in [0.5, 1.5]); outliers on top barely matter
    nus = sorted(cfg.noise_levels)
    errs = [_gmean(values(rows, metric="final_error", sweep="gaussian", nu=nu)) for nu in nus]
    slope = float(np.polyfit(np.log(nus), np.log(errs), 1)[0])
    nu_mid = nus[len(nus) // 2]
    e_mixed = _gmean(values(rows, metric="final_error", sweep="gaussian+outliers"))
    e_mid = errs[len(nus) // 2]
    claims.append(
        Claim(
            "4-noise-floor",
            "dense Gaussian noise: final error rises with ν with log-log slope in [0.5, 1.5]; adding "
            f"p={cfg.mixed_outlier_fraction} large outliers at ν={nu_mid:g} keeps the error within 3x of noise-only",
            {
                "final_error_by_nu": dict(zip(nus, errs, strict=True)),
                "slope": slope,
                "with_outliers": e_mixed,
                "without": e_mid,
            },
            0.5 <= slope <= 1.5 and all(a < b for a, b in zip(errs, errs[1:], strict=False)) and e_mixed <= 3 * e_mid,
        )
    )
    return claims
