"""The paper's premise and headline claims as checks over the run records.

Every threshold, the low-noise steps, the matched-proxy rule and the "within noise" tolerance below were fixed
before the quick preset was run (README, "Claims"). Gold measures are read on the fixed-noise ODE evaluation set;
"final" is the last evaluation. "Better" for realism (5-NN distance) is lower, for diversity higher. Paired
differences are over seeds (same seed index = same rollout noise stream and evaluation noise); "CI excludes 0" is
the 95% Student-t interval of the mean paired difference. Claims 1-7 are decided on the main runs (clip range
`cfg.clip`); 2' and 4' repeat 2 and 4a at the other clip range; 8 and 8' are the two controls.
"""

from __future__ import annotations

import numpy as np
from reprozoo.common.results import Claim, mean_ci95, select
from reprozoo.papers.grpo_guard.experiment import Config, _curve

LOW_NOISE = 2  # the last LOW_NOISE trained denoising steps are "the low-noise steps" (7 and 8 of 0-8)
STD_SPREAD = 10.0  # claim 1: max/min of the per-step ratio std under Flow-GRPO exceeds 10
CENTRED = 0.002  # claim 1: |per-step ratio mean − 1| under RatioNorm
EQUAL_CLIP = 0.05  # claim 2: |clip frac A<0 − clip frac A>0| at the low-noise steps under Guard
DEGRADE = 0.05  # claim 3: final gold worse than its best by >= 5 % of the base value (realism and diversity)
PROXY_SHARE = 0.9  # claim 5: Guard's proxy gain >= 90 % of Flow-GRPO's
MATCH = 0.8  # claim 4b: matched proxy = base + 0.8 × the smaller of the two methods' seed-mean final gains
WITHIN = 0.05  # claim 8: controls end within 5 % of the base value of each gold measure


def per_seed(rows: list[dict], **match) -> dict[int, float]:
    return {r["seed"]: r["value"] for r in select(rows, **match)}


def step_stat(rows: list[dict], method: str, kind: str, metric: str, t: int) -> np.ndarray:
    """Seed-mean of a per-denoising-step statistic, steps 0 .. t-1."""
    return np.array(
        [
            np.nanmean(list(per_seed(rows, method=method, kind=kind, metric=metric, step=j).values()) or [np.nan])
            for j in range(t)
        ]
    )


def low_noise_asymmetry(rows: list[dict], method: str, kind: str, t: int) -> np.ndarray:
    """Per seed: mean over the low-noise steps of (clip frac A<0) − (clip frac A>0)."""
    out = []
    for s in sorted({r["seed"] for r in select(rows, method=method, kind=kind, metric="clip_frac_neg")}):
        d = [
            per_seed(rows, method=method, kind=kind, metric="clip_frac_neg", step=j)[s]
            - per_seed(rows, method=method, kind=kind, metric="clip_frac_pos", step=j)[s]
            for j in range(t - LOW_NOISE, t)
        ]
        out.append(np.nanmean(d))
    return np.array(out)


def finals(rows: list[dict], method: str, kind: str, metric: str) -> np.ndarray:
    """Per-seed final value of an evaluated metric (seed order)."""
    c = _curve(rows, method, kind, metric)
    return np.array([]) if c is None else c[:, -1]


def base(rows: list[dict], metric: str) -> float:
    return float(per_seed(rows, method="base", metric=f"base_{metric}")[0])


def at_proxy(rows: list[dict], method: str, kind: str, metric: str, level: float) -> np.ndarray:
    """Per seed: `metric` linearly interpolated where the proxy curve first reaches `level` (NaN if never)."""
    px, gm = _curve(rows, method, kind, "proxy"), _curve(rows, method, kind, metric)
    out = []
    for p, g in zip(px, gm, strict=True):
        above = np.nonzero(p >= level)[0]
        if len(above) == 0:
            out.append(np.nan)
        elif above[0] == 0:
            out.append(g[0])
        else:
            i = above[0]
            w = (level - p[i - 1]) / (p[i] - p[i - 1])
            out.append(g[i - 1] + w * (g[i] - g[i - 1]))
    return np.array(out)


def _better(guard: np.ndarray, other: np.ndarray, metric: str) -> tuple[float, float]:
    """Mean paired improvement of `guard` over `other` (positive = better) and its 95% CI half-width."""
    sign = -1.0 if metric == "realism" else 1.0
    d = sign * (guard - other)
    d = d[~np.isnan(d)]
    return mean_ci95(d) if len(d) else (float("nan"), float("nan"))


def _headline(rows: list[dict], kind: str) -> tuple[dict, bool]:
    """Claim 4a: final realism and diversity of Guard better than Flow-GRPO β = 0 (paired, CI excludes 0)."""
    obs, ok = {}, True
    for metric in ("realism", "diversity"):
        m, h = _better(finals(rows, "grpo_guard", kind, metric), finals(rows, "flow_grpo", kind, metric), metric)
        obs[f"{metric}_gain"], obs[f"{metric}_ci95"] = m, h
        obs[f"{metric}_guard"] = float(np.mean(finals(rows, "grpo_guard", kind, metric)))
        obs[f"{metric}_flow"] = float(np.mean(finals(rows, "flow_grpo", kind, metric)))
        ok = ok and bool(m - h > 0)
    return obs, ok


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    t = cfg.trained_steps()
    low = list(range(t - LOW_NOISE, t))
    claims = []
    have = {m for m in cfg.methods}

    # 1. ratio bias (premise)
    fm, fs = step_stat(rows, "flow_grpo", "main", "ratio_mean", t), step_stat(rows, "flow_grpo", "main", "ratio_std", t)
    gm, gs = (
        step_stat(rows, "grpo_guard", "main", "ratio_mean", t),
        step_stat(rows, "grpo_guard", "main", "ratio_std", t),
    )
    f_spread, g_spread = float(np.nanmax(fs) / np.nanmin(fs)), float(np.nanmax(gs) / np.nanmin(gs))
    ok1 = bool(
        all(fm[j] < 1 for j in low)
        and int(np.nanargmin(fm)) in low
        and f_spread > STD_SPREAD
        and np.nanmax(np.abs(gm - 1)) <= CENTRED
        and g_spread < f_spread
    )
    claims.append(
        Claim(
            "1-ratio-bias-premise",
            f"off-policy minibatches, main runs: Flow-GRPO's per-step ratio mean < 1 at the low-noise steps {low} and "
            f"lowest there, its per-step std spans > {STD_SPREAD:g}x; under Guard every per-step mean is within "
            f"1 ± {CENTRED} and the std spread is smaller",
            {
                "flow_mean_low": [float(fm[j]) for j in low],
                "flow_argmin": int(np.nanargmin(fm)),
                "flow_std_spread": f_spread,
                "guard_max_dev": float(np.nanmax(np.abs(gm - 1))),
                "guard_std_spread": g_spread,
            },
            ok1,
        )
    )

    # 2. clipping asymmetry (and 2' at the other clip range)
    def clip_claim(kind: str, cid: str) -> Claim:
        fa, ga = low_noise_asymmetry(rows, "flow_grpo", kind, t), low_noise_asymmetry(rows, "grpo_guard", kind, t)
        fmn, fh = mean_ci95(fa) if len(fa) else (np.nan, np.nan)
        gmn = float(np.mean(ga)) if len(ga) else np.nan
        return Claim(
            cid,
            f"[{kind}] at the low-noise steps Flow-GRPO clips fewer A>0 samples (ρ>1+ε) than A<0 ones (ρ<1−ε): "
            f"mean (neg − pos) > 0 with CI excluding 0; Guard's |neg − pos| <= {EQUAL_CLIP}",
            {"flow_neg_minus_pos": fmn, "flow_ci95": fh, "guard_neg_minus_pos": gmn},
            bool(fmn - fh > 0 and abs(gmn) <= EQUAL_CLIP),
        )

    claims.append(clip_claim("main", "2-clipping-asymmetry"))

    # 3. implicit over-optimisation under Flow-GRPO β = 0
    px = _curve(rows, "flow_grpo", "main", "proxy")
    gain_m, gain_h = mean_ci95(px[:, -1] - px[:, 0])
    rises = bool(np.all(px.mean(0)[-1] >= px.mean(0).max() - 0.05 * abs(px.mean(0).max())))
    real, div = _curve(rows, "flow_grpo", "main", "realism"), _curve(rows, "flow_grpo", "main", "diversity")
    real_worse = float(np.mean(real[:, -1] - real.min(1)))
    div_worse = float(np.mean(div.max(1) - div[:, -1]))
    ok3 = bool(
        gain_m - gain_h > 0
        and rises
        and real_worse >= DEGRADE * base(rows, "realism")
        and div_worse >= DEGRADE * base(rows, "diversity")
    )
    claims.append(
        Claim(
            "3-implicit-over-optimisation",
            f"Flow-GRPO β=0: proxy gain > 0 (CI excludes 0) and the final proxy is within 5 % of its peak; final "
            f"realism and diversity worse than their best by >= {DEGRADE:.0%} of the base value",
            {
                "proxy_gain": gain_m,
                "proxy_ci95": gain_h,
                "proxy_at_peak": rises,
                "realism_worse": real_worse,
                "diversity_worse": div_worse,
                "base_realism": base(rows, "realism"),
                "base_diversity": base(rows, "diversity"),
            },
            ok3,
        )
    )

    # 4a. headline at the end of training; 4b. at matched proxy
    obs, ok = _headline(rows, "main")
    claims.append(
        Claim(
            "4a-headline-final",
            "at the end of training GRPO-Guard has better realism AND diversity than Flow-GRPO β=0, no KL "
            "(paired over seeds, CI excludes 0)",
            obs,
            ok,
        )
    )
    p0 = base(rows, "proxy")
    gains = {m: float(np.mean(finals(rows, m, "main", "proxy"))) - p0 for m in ("flow_grpo", "grpo_guard")}
    level = p0 + MATCH * min(gains.values())
    obs_b, ok_b = {"matched_proxy": level}, True
    for metric in ("realism", "diversity"):
        g = at_proxy(rows, "grpo_guard", "main", metric, level)
        f = at_proxy(rows, "flow_grpo", "main", metric, level)
        m, h = _better(g, f, metric)
        obs_b[f"{metric}_gain"], obs_b[f"{metric}_ci95"] = m, h
        obs_b[f"{metric}_guard"], obs_b[f"{metric}_flow"] = float(np.nanmean(g)), float(np.nanmean(f))
        ok_b = ok_b and bool(m - h > 0)
    claims.append(
        Claim(
            "4b-headline-matched-proxy",
            f"at matched proxy (base + {MATCH} × the smaller final gain) GRPO-Guard has better realism AND diversity "
            "than Flow-GRPO β=0 (interpolated on each seed's evaluation curve; paired, CI excludes 0)",
            obs_b,
            ok_b,
        )
    )

    # 5. proxy growth
    claims.append(
        Claim(
            "5-proxy-growth",
            f"GRPO-Guard's final proxy gain >= {PROXY_SHARE:.0%} of Flow-GRPO β=0's (seed means)",
            {"guard_gain": gains["grpo_guard"], "flow_gain": gains["flow_grpo"]},
            bool(gains["grpo_guard"] >= PROXY_SHARE * gains["flow_grpo"]),
        )
    )

    # 6. KL comparison
    if "flow_grpo_kl" in have:
        kl_gain = float(np.mean(finals(rows, "flow_grpo_kl", "main", "proxy"))) - p0
        kl_level = p0 + kl_gain
        obs6, ok6 = {"kl_gain": kl_gain, "flow_gain": gains["flow_grpo"]}, kl_gain < gains["flow_grpo"]
        for metric in ("realism", "diversity"):
            g = float(np.nanmean(at_proxy(rows, "grpo_guard", "main", metric, kl_level)))
            k = float(np.mean(finals(rows, "flow_grpo_kl", "main", metric)))
            obs6[f"{metric}_guard_at_kl_proxy"], obs6[f"{metric}_kl"] = g, k
            ok6 = ok6 and bool((g < k) if metric == "realism" else (g > k))
        claims.append(
            Claim(
                "6-kl-comparison",
                "Flow-GRPO β=0.04 gains less proxy than β=0; at KL's final proxy, Guard's (interpolated) realism AND "
                "diversity are better than KL's final ones (seed means)",
                obs6,
                bool(ok6),
            )
        )

    # 7. ablation: RatioNorm alone recovers part of the realism gain, the reweighting the rest (at the ablation's
    # last epoch, read on the main runs' curves at the same epoch and seeds)
    rn = finals(rows, "ratio_norm", "ablation", "realism")
    if len(rn):
        n, epoch = len(rn), cfg.control_epochs
        flow = np.array(
            [per_seed(rows, method="flow_grpo", kind="main", metric="realism", step=epoch)[s] for s in range(n)]
        )
        guard = np.array(
            [per_seed(rows, method="grpo_guard", kind="main", metric="realism", step=epoch)[s] for s in range(n)]
        )
        g_rn, g_guard = float(np.mean(flow - rn)), float(np.mean(flow - guard))
        claims.append(
            Claim(
                "7-ablation",
                f"realism gain over Flow-GRPO β=0 at epoch {epoch} (same seeds): 0 < RatioNorm-only < RatioNorm + "
                "reweighting",
                {"gain_ratio_norm": g_rn, "gain_guard": g_guard, "seeds": n, "epoch": epoch},
                bool(0 < g_rn < g_guard),
            )
        )

    # 2', 4' at the other clip range
    if select(rows, kind="other_clip"):
        other = "official" if cfg.clip == "matched" else "matched"
        c2 = clip_claim("other_clip", f"2'-clipping-asymmetry-{other}-eps")
        claims.append(c2)
        obs, ok = _headline(rows, "other_clip")
        claims.append(Claim(f"4'-headline-final-{other}-eps", f"claim 4a at the {other} clip range", obs, ok))

    # 8, 8': controls — Guard and Flow-GRPO end within WITHIN of the base value on every gold measure
    for kind, cid, what in (
        ("gold_reward", "8-control-gold-reward", "with the gold RM as reward (no proxy–gold gap)"),
        ("on_policy", "8'-control-one-update", "with one update per rollout batch (ρ ≡ 1)"),
    ):
        if not select(rows, kind=kind):
            continue
        obs8, ok8 = {}, True
        for metric in ("realism", "diversity", "gold_rm"):
            d = float(
                np.mean(finals(rows, "grpo_guard", kind, metric)) - np.mean(finals(rows, "flow_grpo", kind, metric))
            )
            tol = WITHIN * abs(base(rows, metric))
            obs8[f"{metric}_guard_minus_flow"], obs8[f"{metric}_tol"] = d, tol
            ok8 = ok8 and abs(d) <= tol
        claims.append(
            Claim(
                cid,
                f"{what}: |Guard − Flow-GRPO| final gold <= {WITHIN:.0%} of the base value, every measure",
                obs8,
                bool(ok8),
            )
        )
    return claims
