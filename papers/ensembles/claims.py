"""The premise and the five headline claims as checks over the run records.

Pre-registered (thresholds fixed before the quick preset was run; README "Claims"). Every check reads curves
averaged over seeds; "gain" is gold above its start (best-of-n: n = 1; PPO: the first logged window).
Best-of-n claims read the d = sizes, 25%-noise proxies (Coste et al.'s setting).
"""

from __future__ import annotations

import numpy as np
from reprozoo.common.results import Claim, select
from reprozoo.papers.ensembles.experiment import SETTINGS, Config, mean_curve
from reprozoo.papers.ensembles.method import AGGREGATIONS

VAR_RATIO = 2.0  # premise: disagreement on best-of-N picks ≥ 2× its mean over the pool
GAP_CORR = 0.2  # premise: Spearman(ensemble variance, member over-estimate) ≥ 0.2
BON_FALL = 0.10  # claim 1: gold at n = N lies ≥ 10% of the gain below the peak (as the world demo)
PPO_FALL = 0.25  # claim 1: PPO final gold lies ≥ 25% of the gain below the peak (as the world demo)
BON_MARGIN = 0.20  # claim 2: conservative gain at n = N ≥ single's × 1.2 (paper: up to +70%)
PPO_MARGIN = 0.25  # claim 3: conservative final gold ≥ single final + 25% of single's peak gain
NO_COST = 0.90  # claim 3b: final gain with the larger β ≥ 90% of the same aggregation's peak gain at small β
KL_FALL = 0.10  # claim 3b: and it falls ≤ 10% of its gain from its own peak
EXPLOIT = 0.5  # claim 5: feature count rises by ≥ 0.5 tokens under every aggregation
NOISE = 0.25


def _overopt(x: np.ndarray, gold: np.ndarray, proxy: np.ndarray, fall: float) -> tuple[dict, bool]:
    i = int(np.argmax(gold))
    gain = gold[i] - gold[0]
    obs = {
        "gold_start": gold[0],
        "gold_peak": gold[i],
        "peak_at": x[i],
        "gold_final": gold[-1],
        "proxy_at_peak": proxy[i],
        "proxy_final": proxy[-1],
    }
    return obs, bool(gain > 0 and gold[-1] <= gold[i] - fall * gain and proxy[-1] > proxy[i])


def _premise(rows, setting, d):
    r = {
        k: float(
            np.mean([x["value"] for x in select(rows, method="premise", metric=k, setting=setting, d=d, noise=NOISE)])
        )
        for k in ("var_ratio", "gap_corr")
    }
    return r, r["var_ratio"] >= VAR_RATIO and r["gap_corr"] >= GAP_CORR


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    claims = []
    d0, N = cfg.sizes[0], cfg.bon_samples
    small = cfg.ppo_kl_small

    # 0. the premise: members disagree where a member is wrong (premise setting), not in the control
    obs, ok = _premise(rows, "premise", d0)
    claims.append(
        Claim(
            "0-premise",
            f"premise setting (d={d0}, 25% noise): ensemble variance on best-of-{N} picks ≥ {VAR_RATIO}× its pool mean "
            f"and Spearman(variance, member over-estimate) ≥ {GAP_CORR}",
            obs,
            ok,
        )
    )
    obs, ok = _premise(rows, "control", d0)
    claims.append(
        Claim(
            "0-control",
            f"control setting (d={d0}, 25% noise): the same premise is absent (either test fails)",
            obs,
            not ok,
        )
    )

    for setting in SETTINGS:
        # 1. a single proxy over-optimises (best-of-n with label noise; PPO with a small β)
        m = {"setting": setting, "d": d0, "noise": NOISE}
        x, gold = mean_curve(rows, "bon_single", "gold", **m)
        bon_obs, bon_ok = _overopt(x, gold, mean_curve(rows, "bon_single", "proxy", **m)[1], BON_FALL)
        obs, ok = {f"bon_{k}": v for k, v in bon_obs.items()}, bon_ok
        if setting in cfg.ppo_settings and "single" in cfg.ppo_methods:
            p = {"setting": setting, "beta": small}
            x, gold = mean_curve(rows, "ppo_single", "gold", **p)
            ppo_obs, ppo_ok = _overopt(x, gold, mean_curve(rows, "ppo_single", "proxy", **p)[1], PPO_FALL)
            obs |= {f"ppo_{k}": v for k, v in ppo_obs.items()}
            ok = ok and ppo_ok
        claims.append(
            Claim(
                f"1-single-overoptimises-{setting}",
                f"{setting}: single-member best-of-n gold (d={d0}, 25% noise) peaks and falls ≥ {BON_FALL:.0%} of "
                f"its gain by n={N} while proxy rises; PPO (β={small}) gold falls ≥ {PPO_FALL:.0%} of its gain "
                "while proxy rises",
                obs,
                ok,
            )
        )

        # 2. best-of-n: WCO or UWO beats the single member at the largest n, at every proxy size
        obs, ok = {}, True
        for d in cfg.sizes:
            m = {"setting": setting, "d": d, "noise": NOISE}
            g = {a: mean_curve(rows, f"bon_{a}", "gold", **m)[1] for a in ("single", "wco", "uwo")}
            single_gain = g["single"][-1] - g["single"][0]
            best = max(("wco", "uwo"), key=lambda a: g[a][-1])
            rel = (g[best][-1] - g["single"][-1]) / max(abs(single_gain), 1e-9)
            obs |= {
                f"d{d}_single_nN": g["single"][-1],
                f"d{d}_wco_nN": g["wco"][-1],
                f"d{d}_uwo_nN": g["uwo"][-1],
                f"d{d}_rel_gain": rel,
            }
            ok = ok and rel >= BON_MARGIN
        claims.append(
            Claim(
                f"2-bon-conservative-{setting}",
                f"{setting}: at n={N} (25% noise) the better of WCO/UWO has gold gain over n=1 ≥ {1 + BON_MARGIN:.1f}× "
                f"the single member's, at every size {cfg.sizes}",
                obs,
                ok,
            )
        )

        # 3. PPO: WCO/UWO end higher than the single member, with less over-optimisation; 3b: larger β, no cost
        if setting in cfg.ppo_settings and {"single", "wco", "uwo"} <= set(cfg.ppo_methods):
            p = {"setting": setting, "beta": small}
            g = {a: mean_curve(rows, f"ppo_{a}", "gold", **p)[1] for a in ("single", "wco", "uwo")}
            best = max(("wco", "uwo"), key=lambda a: g[a][-1])
            single_gain = g["single"].max() - g["single"][0]
            drop = {a: g[a].max() - g[a][-1] for a in g}
            ok = g[best][-1] >= g["single"][-1] + PPO_MARGIN * max(single_gain, 0) and drop[best] < drop["single"]
            obs = {f"{a}_{k}": v for a in g for k, v in (("final", g[a][-1]), ("peak", g[a].max()), ("drop", drop[a]))}
            claims.append(
                Claim(
                    f"3-ppo-conservative-{setting}",
                    f"{setting}, PPO β={small}: the better of WCO/UWO ends ≥ {PPO_MARGIN:.0%} of the single member's "
                    "peak gain above its final gold, and falls less from its peak",
                    obs,
                    bool(ok),
                )
            )
        if setting in cfg.ppo_large_kl_settings and {"wco", "uwo"} <= set(cfg.ppo_large_kl_methods):
            large = cfg.ppo_kl_large
            obs, ok = {}, False
            for a in ("wco", "uwo"):
                gs = mean_curve(rows, f"ppo_{a}", "gold", setting=setting, beta=small)[1]
                gl = mean_curve(rows, f"ppo_{a}", "gold", setting=setting, beta=large)[1]
                peak_gain_small = gs.max() - gs[0]
                final_gain_large = gl[-1] - gl[0]
                no_fall = gl[-1] >= gl.max() - KL_FALL * max(gl.max() - gl[0], 0)
                obs |= {
                    f"{a}_final_gain_large": final_gain_large,
                    f"{a}_peak_gain_small": peak_gain_small,
                    f"{a}_no_fall": no_fall,
                }
                ok = ok or bool(no_fall and final_gain_large >= NO_COST * peak_gain_small)
            claims.append(
                Claim(
                    f"3b-ppo-small-penalty-{setting}",
                    f"{setting}, PPO β={large}: WCO or UWO falls ≤ {KL_FALL:.0%} of its gain from its peak and its "
                    f"final gain is ≥ {NO_COST:.0%} of the same aggregation's peak gain at β={small} "
                    "(no over-optimisation, no cost)",
                    obs,
                    ok,
                )
            )

        # 5. a shared exploit survives every aggregation (feature-token count grows)
        m = {"setting": setting, "d": d0, "noise": NOISE}
        obs, ok = {}, True
        for a in ("single", *AGGREGATIONS):
            f = mean_curve(rows, f"bon_{a}", "features", **m)[1]
            obs[f"bon_{a}"] = f[-1] - f[0]
            ok = ok and f[-1] - f[0] >= EXPLOIT
        if setting in cfg.ppo_settings:
            for a in cfg.ppo_methods:
                f = mean_curve(rows, f"ppo_{a}", "features", setting=setting, beta=small)[1]
                obs[f"ppo_{a}"] = f[-1] - f[0]
                ok = ok and f[-1] - f[0] >= EXPLOIT
        claims.append(
            Claim(
                f"5-shared-exploit-{setting}",
                f"{setting}: the feature-token count (the members' shared error) rises by ≥ {EXPLOIT} from n=1 to "
                f"n={N} under every aggregation, and from the first to the last PPO window (β={small}) under every "
                "reward",
                obs,
                ok,
            )
        )

    # 4. Eisenstein: pretrain-seed ensemble ≥ finetune-seed ensemble ≥ single RM at n = eisenstein_n
    if cfg.eisenstein:
        v = {
            k: float(np.mean([r["value"] for r in select(rows, method=f"eis_{k}", metric="gold_at_eis_n")]))
            for k in ("pretrain_mean", "finetune_mean", "single")
        }
        claims.append(
            Claim(
                "4-pretrain-finetune-single",
                f"control (d={d0}, 25% noise), best-of-{cfg.eisenstein_n} gold: pretrain-seed ensemble ≥ finetune-seed "
                "ensemble ≥ single RM (mean aggregation, mean over seeds)",
                v,
                v["pretrain_mean"] >= v["finetune_mean"] >= v["single"],
            )
        )
    return claims
