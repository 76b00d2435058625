"""The paper's headline claims, and the premise they rest on, as checks over the run records.

Thresholds, the shift p, the α grid and the "best α" rule were fixed before the quick preset was run (see
README, "Claims"). "Exceeds" means a positive mean paired difference over seeds whose 95% CI excludes 0 where
stated. Claims 2-4 are decided in the `diverse` world (the paper's premise holds); the `control` world's values
are reported beside them, and claim 2b contrasts the two.
"""

from __future__ import annotations

import numpy as np
from reprozoo.common.results import Claim, mean_ci95, select
from reprozoo.common.worlds.digits import N_PATCHES
from reprozoo.papers.bang.experiment import Config

SHRINK = 0.5  # claim 1: one-colour gain <= half the 32-colour gain ("vanishes or shrinks markedly")
FFT_SHARE = 0.5  # claim 2: FalseFalseTrue fraction >= half the gain over the better endpoint ("sizeable share")
FFT_CONTRAST = 5.0  # claim 2b: FalseFalseTrue (α = 0.5) in the diverse world >= 5 x the control's
READS, BLIND, OWN_MORE = 0.5, 0.2, 0.2  # premise: colour-only accuracy of a group read / not read; own − other
BALANCE = 0.05  # premise: |OOD acc pre-trained − fine-tuned| at p_wise
OVERCONFIDENT = 0.05  # premise: fine-tuned − pre-trained max-probability on wrong OOD predictions
SENSIBLE = 0.5  # premise: the pre-trained endpoint reads the digit (digit-only accuracy)


def per_seed(rows: list[dict], **match) -> dict[int, float]:
    """{seed: value} of the rows matching `match` (one row per seed expected)."""
    return {r["seed"]: r["value"] for r in select(rows, **match)}


def mean_of(rows: list[dict], **match) -> float:
    """Seed mean of the matching rows (NaN-tolerant)."""
    return float(np.nanmean(list(per_seed(rows, **match).values())))


def alpha_table(
    rows: list[dict], method: str, p: float, world: str, metric: str = "ood_acc", space: str = "weight"
) -> tuple[list[float], np.ndarray]:
    """(α values, seeds × α matrix) of `metric` along the WiSE-FT path."""
    pts = select(rows, method=method, metric=metric, space=space, p=p, world=world)
    alphas = sorted({r["alpha"] for r in pts})
    seeds = sorted({r["seed"] for r in pts})
    value = {(r["seed"], r["alpha"]): r["value"] for r in pts}
    return alphas, np.array([[value[(s, a)] for a in alphas] for s in seeds])


def best_alpha(alphas: list[float], acc: np.ndarray, interior: bool) -> int:
    """Pre-registered "best α": the α (one for all seeds) with the highest seed-mean OOD accuracy; interior: α in
    (0, 1) only."""
    candidates = [i for i, a in enumerate(alphas) if 0 < a < 1 or not interior]
    mean = acc.mean(0)
    return max(candidates, key=lambda i: mean[i])


def wise_ft_gain(rows: list[dict], cfg: Config, world: str) -> dict:
    """Claim 2's quantities in one world: best interior α, its paired gain over the better endpoint, FFT there."""
    alphas, acc = alpha_table(rows, "wise_ft", cfg.p_wise, world)
    _, fft = alpha_table(rows, "wise_ft", cfg.p_wise, world, metric="false_false_true")
    best = best_alpha(alphas, acc, interior=True)
    gm, gh = mean_ci95(acc[:, best] - np.maximum(acc[:, 0], acc[:, -1]))
    half = alphas.index(0.5)
    fh_m, fh_h = mean_ci95(fft[:, half])
    return {
        "best_alpha": alphas[best],
        "acc_pre": float(acc[:, 0].mean()),
        "acc_ft": float(acc[:, -1].mean()),
        "acc_best": float(acc[:, best].mean()),
        "gain": gm,
        "ci95": gh,
        "fft_best": float(fft[:, best].mean()),
        "fft_half": fh_m,
        "fft_half_ci95": fh_h,
    }


def bang_vs_wise_ft(rows: list[dict], cfg: Config, world: str) -> tuple[float, float, float, float]:
    """(BANG best, WiSE-FT best, mean paired difference, its CI) at each method's pre-registered best α."""
    alphas, acc_w = alpha_table(rows, "wise_ft", cfg.p_wise, world)
    _, acc_b = alpha_table(rows, "bang", cfg.p_wise, world)
    bw, bb = best_alpha(alphas, acc_w, interior=False), best_alpha(alphas, acc_b, interior=False)
    dm, dh = mean_ci95(acc_b[:, bb] - acc_w[:, bw])
    return float(acc_b[:, bb].mean()), float(acc_w[:, bw].mean()), dm, dh


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    claims = []
    p = cfg.p_wise

    # 0. the premise, measured on the endpoints: different spurious features, balanced, fine-tuned over-confident
    probe = {
        (w, m, g): mean_of(rows, method=m, metric=f"colour_{g}_only_acc", world=w)
        for w in ("diverse", "control")
        for m in ("pre-trained", "wise_ft")
        for g in ("A", "B")
    }
    pre_a, pre_b = probe[("diverse", "pre-trained", "A")], probe[("diverse", "pre-trained", "B")]
    ft_a, ft_b = probe[("diverse", "wise_ft", "A")], probe[("diverse", "wise_ft", "B")]
    ctl_a, ctl_b = probe[("control", "pre-trained", "A")], probe[("control", "pre-trained", "B")]
    claims.append(
        Claim(
            "0a-premise-different-spurious-features",
            f"colour-only probes (digit blanked, one patch group in its label colours): diverse pre-trained reads A "
            f"(>= {READS}) not B (<= {BLIND}); diverse fine-tuned reads B at least {OWN_MORE} more than A; control "
            f"pre-trained reads neither (<= {BLIND})",
            {
                "pre_A": pre_a,
                "pre_B": pre_b,
                "ft_A": ft_a,
                "ft_B": ft_b,
                "control_pre_A": ctl_a,
                "control_pre_B": ctl_b,
            },
            bool(pre_a >= READS and pre_b <= BLIND and ft_b - ft_a >= OWN_MORE and max(ctl_a, ctl_b) <= BLIND),
        )
    )
    acc = {w: wise_ft_gain(rows, cfg, w) for w in ("diverse", "control")}
    digit = mean_of(rows, method="pre-trained", metric="digit_only_acc", world="diverse")
    gap = abs(acc["diverse"]["acc_pre"] - acc["diverse"]["acc_ft"])
    claims.append(
        Claim(
            "0b-premise-balanced-endpoints",
            f"diverse world, p={p}: |OOD acc pre-trained − fine-tuned| <= {BALANCE}, and the pre-trained endpoint "
            f"reads the digit (digit-only accuracy >= {SENSIBLE})",
            {"pre": acc["diverse"]["acc_pre"], "ft": acc["diverse"]["acc_ft"], "gap": gap, "pre_digit_only": digit},
            bool(gap <= BALANCE and digit >= SENSIBLE),
        )
    )
    oc = {
        (w, m): mean_of(rows, method=m, metric="overconfidence", p=p, world=w)
        for w in ("diverse", "control")
        for m in ("pre-trained", "wise_ft", "bang")
    }
    claims.append(
        Claim(
            "0c-premise-fine-tuned-over-confident",
            f"diverse world, p={p}: the fine-tuned model's mean max-probability on wrong OOD predictions exceeds the "
            f"pre-trained one's by >= {OVERCONFIDENT}",
            {"pre": oc[("diverse", "pre-trained")], "ft": oc[("diverse", "wise_ft")]},
            bool(oc[("diverse", "wise_ft")] - oc[("diverse", "pre-trained")] >= OVERCONFIDENT),
        )
    )

    # 1. many spurious features → ensemble beats both members; one spurious feature → gain vanishes / shrinks
    g32 = np.array(list(per_seed(rows, metric="ensemble_gain", colors=N_PATCHES, p=cfg.p_headline).values()))
    g1 = np.array(list(per_seed(rows, metric="ensemble_gain", colors=1, p=cfg.p_headline).values()))
    m32, h32 = mean_ci95(g32)
    m1, _ = mean_ci95(g1)
    claims.append(
        Claim(
            "1-diversity-ensemble-gain",
            f"(a) p={cfg.p_headline}: with 32 colour features the output ensemble's OOD accuracy exceeds both "
            "members' (mean gain over the better member > 0, 95% CI excludes 0); with one colour the gain is "
            f"<= {SHRINK} x that",
            {"gain_32": m32, "ci95_32": h32, "gain_1": m1},
            bool(m32 - h32 > 0 and m1 <= SHRINK * m32),
        )
    )

    # 2. WiSE-FT: an interior α beats both endpoints, with a sizeable FalseFalseTrue share (diverse world)
    d, c = acc["diverse"], acc["control"]
    claims.append(
        Claim(
            "2-wise-ft-false-false-true",
            f"(b) diverse world, p={p}, weight space: the best interior α beats both endpoints (mean paired gain > 0, "
            f"CI excludes 0) and the FalseFalseTrue fraction there is >= {FFT_SHARE} x that gain (control: reported)",
            {
                **{k: d[k] for k in ("best_alpha", "acc_pre", "acc_ft", "acc_best", "gain", "ci95", "fft_best")},
                **{f"control_{k}": c[k] for k in ("best_alpha", "gain", "ci95", "fft_best")},
            },
            bool(d["gain"] - d["ci95"] > 0 and d["fft_best"] >= FFT_SHARE * d["gain"]),
        )
    )
    claims.append(
        Claim(
            "2b-false-false-true-needs-diversity",
            f"(b) p={p}, weight space, α = 0.5: the FalseFalseTrue fraction in the diverse world is > 0 (CI excludes "
            f"0) and >= {FFT_CONTRAST} x the control's (colour-blind pre-trained endpoint)",
            {
                "diverse": d["fft_half"],
                "diverse_ci95": d["fft_half_ci95"],
                "control": c["fft_half"],
                "control_ci95": c["fft_half_ci95"],
            },
            bool(d["fft_half"] - d["fft_half_ci95"] > 0 and d["fft_half"] >= FFT_CONTRAST * c["fft_half"]),
        )
    )

    # 3. BANG's best-α OOD accuracy beats plain WiSE-FT's
    bd, wd, dm, dh = bang_vs_wise_ft(rows, cfg, "diverse")
    bc, wc, cm, ch = bang_vs_wise_ft(rows, cfg, "control")
    claims.append(
        Claim(
            "3-bang-beats-wise-ft",
            f"(c) diverse world, p={p}, weight space: BANG's best-α OOD accuracy > WiSE-FT's (mean paired difference "
            "over seeds > 0; best α: highest seed-mean, one per method) (control: reported)",
            {
                "bang_best": bd,
                "wise_ft_best": wd,
                "diff": dm,
                "ci95": dh,
                "control_bang_best": bc,
                "control_wise_ft_best": wc,
                "control_diff": cm,
                "control_ci95": ch,
            },
            bool(dm > 0),
        )
    )

    # 4. over-confidence: fine-tuned > pre-trained on wrong OOD predictions, and BANG lowers it
    claims.append(
        Claim(
            "4-overconfidence",
            f"(c) diverse world, p={p}: mean max-probability on wrong OOD predictions is higher for the fine-tuned "
            "model than for the pre-trained one, and lower for BANG's fine-tuned model than for the plain one "
            "(control: reported)",
            {f"{w}_{m}": v for (w, m), v in oc.items()},
            bool(
                oc[("diverse", "wise_ft")] > oc[("diverse", "pre-trained")]
                and oc[("diverse", "bang")] < oc[("diverse", "wise_ft")]
            ),
        )
    )
    return claims
