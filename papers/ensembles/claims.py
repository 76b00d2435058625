"""Claims v2: the premises, the five headline claims and their controls as checks over the run records.

Pre-registered (claims v2, README "Pre-registration v2") before the run that decides them (issue 31, preference
world v2). Rules (DESIGN "Results and claims"):
- every statistic is computed per seed and compared across methods as a **paired difference over the same seeds**
  with a two-sided 95% Student-t CI (`common.stats.paired_diff`); "CI > 0" is a one-sided test at α = 0.025, and
  the minimum detectable effect (`*_mde`, power 0.8) reported beside each test uses that level;
- a **peak** is the maximum of a 3-point moving average of the curve (`smoothed_peak`), a **final** value the mean of
  its last 3 points (`final_mean`): PPO, the last 15 of 50 iterations (3 windows of 5); best-of-n, n = N/4, N/2, N;
- "gain" is gold above the curve's first point (best-of-n: n = 1; PPO: the first logged window);
- kinds: a `premise` measures what the papers rely on in this set-up (members disagree where one of them is wrong;
  a single proxy over-optimises); a `claim` lists the premises it requires and is UNTESTED when one of them FAILs
  (`common.results.resolve_verdicts`); a `control` PASSes when it behaves as predicted with the premise switched
  off (the `control` setting: every member's labeller has the same quirk, so members share their errors at matched
  accuracy — Eisenstein et al.'s herding case; world v2).
Best-of-n claims read the d = sizes, 25%-noise proxies (Coste et al.'s setting); PPO claims the β = ppo_kl_small runs.
Every threshold below is the project's own (the papers give none in these units) unless marked as the paper's.
"""

from __future__ import annotations

import math

import numpy as np

from reprozoo.common.results import Claim, select
from reprozoo.common.stats import (
    PairedDiff,
    final_mean,
    min_detectable_effect,
    moving_average,
    paired_diff,
    smoothed_peak,
)
from reprozoo.papers.ensembles.experiment import SETTINGS, Config
from reprozoo.papers.ensembles.method import AGGREGATIONS

WINDOW = 3  # smoothed peak: moving average of 3 points
LAST = 3  # final value: mean of the last 3 points
ALPHA = 0.025  # one-sided level of "the 95% CI excludes the bound" (power and MDE are computed at it)
CONSERVATIVE = ("wco", "uwo")  # Coste et al.'s conservative aggregations

# project's own thresholds, with the reason
SELF_OTHERS = 0.5  # premise: lower 95% bound of self − others at the best-of-N picks (z units) ≥ 0.5; between the
#   world-v2 prototype's shared-quirk control (0.07–0.09) and its member-quirk setting (1.33–1.63),
#   audits/2026-12/preference_world_v2_prototype.md. Control (claims v2.1): premise − control, paired over seeds,
#   lower 95% bound ≥ the same 0.5 (v2's absolute bound 0.25 came from noise-free members; see README Deviations 8)
BON_FALL = 0.10  # premise 1: best-of-n gold falls ≥ 10% of its gain from its smoothed peak (the world demo's value)
PPO_FALL = 0.25  # premise 1: PPO gold falls ≥ 25% of its gain from its smoothed peak (the world demo's value)
BON_MARGIN = 0.20  # claim 2: aggregation − single at the end ≥ 0.2 × the single member's gain (paper: "up to +70%")
PAPER_BON_GAIN = 0.70  # the paper's best-of-n effect ("up to 70%"): the effect the seed rule powers claim 2 for
PPO_MARGIN = 0.25  # claim 3: aggregation − single final gold ≥ 25% of the single member's peak gain
NO_COST = 0.90  # claim 3b: final gain at the larger β ≥ 90% of the same aggregation's peak gain at the small β
KL_FALL = 0.10  # claim 3b: and it falls ≤ 10% of its gain from its smoothed peak
EXPLOIT = 0.5  # claim 5: the feature-token count rises by ≥ 0.5 tokens under every aggregation
NOISE = 0.25


def curves(rows: list[dict], method: str, metric: str, **match) -> dict[int, np.ndarray]:
    """{seed: the curve's values ordered by step} of one method's metric."""
    sel = [r for r in select(rows, method=method, metric=metric, **match) if "step" in r]
    out: dict[int, list] = {}
    for r in sorted(sel, key=lambda r: (r["seed"], r["step"])):
        out.setdefault(r["seed"], []).append(r["value"])
    return {s: np.asarray(v, float) for s, v in out.items()}


def per_seed(c: dict[int, np.ndarray], f) -> dict[int, float]:
    return {s: float(f(v)) for s, v in c.items()}


def peak(c: dict[int, np.ndarray]) -> dict[int, float]:
    return per_seed(c, lambda v: smoothed_peak(v, WINDOW))


def final(c: dict[int, np.ndarray]) -> dict[int, float]:
    return per_seed(c, lambda v: final_mean(v, LAST))


def start(c: dict[int, np.ndarray]) -> dict[int, float]:
    return per_seed(c, lambda v: v[0])


def sub(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    return {s: a[s] - b[s] for s in a}


def mean(a: dict[int, float]) -> float:
    return float(np.mean(list(a.values())))


def mde(d: PairedDiff) -> float:
    """Minimum effect the paired test detects with power 0.8 at these seeds (one-sided α = 0.025)."""
    return min_detectable_effect(d.sd, d.n, alpha=ALPHA) if d.n > 1 else math.inf


def test_obs(d: PairedDiff, prefix: str) -> dict[str, float]:
    """The paired difference, its 95% CI, paired SD and minimum detectable effect, for `observed`."""
    return d.as_observed(prefix) | {f"{prefix}_sd": d.sd, f"{prefix}_mde": mde(d)}


def overoptimises(gold: dict, proxy: dict, fall: float) -> tuple[dict, bool]:
    """Gold falls from its smoothed peak to its final mean (paired over seeds, 95% CI above 0) by ≥ `fall` of its
    gain, while the proxy's final mean ends above its value over the peak's window (mean over seeds)."""
    pk, fin, st = peak(gold), final(gold), start(gold)
    at = {s: int(np.argmax(moving_average(gold[s], WINDOW))) for s in gold}
    p_at = {s: float(moving_average(proxy[s], WINDOW)[at[s]]) for s in proxy}
    drop = paired_diff(pk, fin)
    gain = mean(sub(pk, st))
    proxy_rise = mean(sub(final(proxy), p_at))
    obs = {
        "gold_start": mean(st),
        "gold_peak": mean(pk),
        "gold_final": mean(fin),
        "gain": gain,
        **test_obs(drop, "fall"),
        "proxy_at_peak": mean(p_at),
        "proxy_final": mean(final(proxy)),
    }
    return obs, bool(drop.low > 0 and drop.mean >= fall * max(gain, 0.0) and proxy_rise > 0)


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    claims = []
    d0, N = cfg.sizes[0], cfg.bon_samples
    small = cfg.ppo_kl_small

    # 0. the premise: members over-rate their own best-of-N picks more than the other members do (member-specific
    #    errors); its control: members sharing one quirk lose that excess (paired over seeds, same noise)
    smo = {}
    for setting in SETTINGS:
        tag = {"setting": setting, "d": d0, "noise": NOISE}
        sel = select(rows, method="premise", metric="self_minus_others", **tag)
        smo[setting] = {r["seed"]: r["value"] for r in sel}
        legacy = {
            k: float(np.mean([r["value"] for r in select(rows, method="premise", metric=k, **tag)] or [np.nan]))
            for k in ("var_ratio", "gap_corr")
        }
        if not smo[setting]:
            obs = {"self_minus_others": "not measured (records written before claims v2)", **legacy}
            ok = False
        elif setting == "premise":
            d = paired_diff(smo[setting], dict.fromkeys(smo[setting], 0.0))  # the mean over seeds and its 95% CI
            obs = {**test_obs(d, "self_minus_others"), **legacy}
            ok = d.low >= SELF_OTHERS
        else:
            own = paired_diff(smo[setting], dict.fromkeys(smo[setting], 0.0))
            obs = {**test_obs(own, "self_minus_others"), **legacy}
            ok = bool(smo["premise"])
            if ok:
                d = paired_diff(smo["premise"], smo[setting])
                obs |= test_obs(d, "premise_minus_control")
                ok = d.low >= SELF_OTHERS
        if setting == "premise":
            statement = (
                f"premise (d={d0}, 25% noise): at each member's best-of-{N} pick, its z-score exceeds the other "
                f"members' mean z-score there by ≥ {SELF_OTHERS} (lower 95% bound over seeds): member-specific errors"
            )
            claims.append(Claim("0-premise", statement, obs, ok, kind="premise"))
        else:
            statement = (
                f"control (d={d0}, 25% noise, members sharing one quirk): self − others at the best-of-{N} picks "
                f"is below the premise setting's by ≥ {SELF_OTHERS} (lower 95% bound of premise − control, paired "
                "over seeds): sharing the quirk removes the member-specific excess; the rest is the label-noise floor"
            )
            claims.append(Claim("0-control", statement, obs, ok, kind="control"))

    prem_gain: dict[str, dict[int, float]] = {}  # claim 3: premise-setting (aggregation − single) per seed
    for setting in SETTINGS:
        is_premise = setting == "premise"
        # 1. premises: a single proxy over-optimises (best-of-n with label noise; PPO with the small β)
        m = {"setting": setting, "d": d0, "noise": NOISE}
        obs, ok = overoptimises(
            curves(rows, "bon_single", "gold", **m), curves(rows, "bon_single", "proxy", **m), BON_FALL
        )
        bon_premise = f"1-single-overoptimises-bon-{setting}"
        claims.append(
            Claim(
                bon_premise,
                f"{setting}: single-member best-of-n gold (d={d0}, 25% noise) falls from its smoothed peak to its "
                f"final mean (n = {N // 4}…{N}) by ≥ {BON_FALL:.0%} of its gain, 95% CI of the fall above 0, while "
                "the proxy rises",
                obs,
                ok,
                kind="premise",
            )
        )
        ppo_premise = None
        if setting in cfg.ppo_settings and "single" in cfg.ppo_methods:
            p = {"setting": setting, "beta": small}
            obs, ok = overoptimises(
                curves(rows, "ppo_single", "gold", **p), curves(rows, "ppo_single", "proxy", **p), PPO_FALL
            )
            ppo_premise = f"1-single-overoptimises-ppo-{setting}"
            claims.append(
                Claim(
                    ppo_premise,
                    f"{setting}: PPO (β={small}) against one member: gold falls from its smoothed peak to its final "
                    f"mean by ≥ {PPO_FALL:.0%} of its gain (≥ 0), 95% CI of the fall above 0, while the proxy rises",
                    obs,
                    ok,
                    kind="premise",
                )
            )

        # 2. best-of-n: WCO and UWO each beat the single member at the end, at every proxy size (premise setting);
        #    control: no Coste-sized gain when the members herd
        obs, ok = {}, True
        for d in cfg.sizes:
            m = {"setting": setting, "d": d, "noise": NOISE}
            single = curves(rows, "bon_single", "gold", **m)
            gain = mean(sub(final(single), start(single)))
            bound = BON_MARGIN * abs(gain)
            obs[f"d{d}_single_final"] = mean(final(single))
            obs[f"d{d}_single_gain"] = gain
            obs[f"d{d}_margin"] = bound
            for a in CONSERVATIVE:
                diff = paired_diff(final(curves(rows, f"bon_{a}", "gold", **m)), final(single))
                obs |= test_obs(diff, f"d{d}_{a}_minus_single")
                ok = ok and (diff.low > 0 and diff.mean >= bound if is_premise else diff.high < bound)
        if is_premise:
            statement = (
                f"premise setting, best-of-n (25% noise): final gold (mean over n = {N // 4}…{N}) of WCO and of UWO "
                f"each exceeds the single member's, paired 95% CI above 0 and mean ≥ {BON_MARGIN} × the single "
                f"member's gain, at every size {cfg.sizes} (paper: up to +{PAPER_BON_GAIN:.0%})"
            )
            claims.append(
                Claim(f"2-bon-conservative-{setting}", statement, obs, ok, requires=("0-premise", bon_premise))
            )
        else:
            statement = (
                f"control setting, best-of-n (25% noise): WCO and UWO do not beat the single member by the "
                f"claim-2 margin ({BON_MARGIN} × its gain): upper 95% bound of each paired difference below it, at "
                f"every size {cfg.sizes} (Eisenstein et al.: members that herd)"
            )
            claims.append(
                Claim(f"2-bon-conservative-{setting}", statement, obs, ok, kind="control", requires=(bon_premise,))
            )

        # 3. PPO: WCO and UWO each end above the single member, and fall less; control: no such gain
        if ppo_premise and {"single", *CONSERVATIVE} <= set(cfg.ppo_methods):
            p = {"setting": setting, "beta": small}
            g = {a: curves(rows, f"ppo_{a}", "gold", **p) for a in ("single", *CONSERVATIVE)}
            single_gain = max(mean(sub(peak(g["single"]), start(g["single"]))), 0.0)
            bound = PPO_MARGIN * single_gain
            fall = {a: mean(sub(peak(g[a]), final(g[a]))) for a in g}
            obs = {"single_final": mean(final(g["single"])), "single_peak_gain": single_gain, "margin": bound}
            obs |= {f"{a}_fall": fall[a] for a in g}
            ok = True
            for a in CONSERVATIVE:
                diff = paired_diff(final(g[a]), final(g["single"]))
                obs |= test_obs(diff, f"{a}_minus_single")
                if is_premise:
                    ok = ok and diff.low > 0 and diff.mean >= bound and fall[a] < fall["single"]
                    prem_gain[a] = sub(final(g[a]), final(g["single"]))
                elif a in prem_gain:
                    # the benefit over the single member is smaller when the members herd (difference in
                    # differences, paired over seeds; claims v2.1, README Deviations 8)
                    did = paired_diff(prem_gain[a], sub(final(g[a]), final(g["single"])))
                    obs |= test_obs(did, f"{a}_premise_minus_control")
                    ok = ok and did.low > 0
                else:
                    ok = False
            if is_premise:
                statement = (
                    f"premise setting, PPO β={small}: the final gold of WCO and of UWO each exceeds the single "
                    f"member's, paired 95% CI above 0 and mean ≥ {PPO_MARGIN:.0%} of the single member's peak gain, "
                    "and each falls less from its smoothed peak than the single member (mean over seeds)"
                )
                claims.append(
                    Claim(f"3-ppo-conservative-{setting}", statement, obs, ok, requires=("0-premise", ppo_premise))
                )
            else:
                statement = (
                    f"control setting, PPO β={small}: WCO's and UWO's final-gold advantage over the single member is "
                    "smaller than in the premise setting: (premise − control) of (aggregation − single), paired over "
                    "seeds, lower 95% bound above 0 (members that herd lose the benefit)"
                )
                claims.append(
                    Claim(f"3-ppo-conservative-{setting}", statement, obs, ok, kind="control", requires=(ppo_premise,))
                )

        # 3b. PPO with the larger β: no over-optimisation at no cost (premise setting)
        runs_large = [a for a in CONSERVATIVE if a in cfg.ppo_large_kl_methods]
        if is_premise and ppo_premise and setting in cfg.ppo_large_kl_settings and runs_large:
            large = cfg.ppo_kl_large
            obs, ok = {}, False
            for a in runs_large:
                gs = curves(rows, f"ppo_{a}", "gold", setting=setting, beta=small)
                gl = curves(rows, f"ppo_{a}", "gold", setting=setting, beta=large)
                peak_gain_small = sub(peak(gs), start(gs))
                final_gain_large = sub(final(gl), start(gl))
                gain_large = mean(sub(peak(gl), start(gl)))
                fall_large = mean(sub(peak(gl), final(gl)))
                cost = paired_diff(final_gain_large, peak_gain_small)
                bound = -(1 - NO_COST) * max(mean(peak_gain_small), 0.0)
                no_fall = fall_large <= KL_FALL * max(gain_large, 0.0)
                obs |= {f"{a}_fall_large": fall_large, f"{a}_gain_large": gain_large, f"{a}_no_cost_bound": bound}
                obs |= test_obs(cost, f"{a}_final_gain_large_minus_peak_gain_small")
                ok = ok or bool(no_fall and cost.low >= bound)
            claims.append(
                Claim(
                    f"3b-ppo-small-penalty-{setting}",
                    f"premise setting, PPO β={large}: WCO or UWO falls ≤ {KL_FALL:.0%} of its gain from its smoothed "
                    f"peak (mean over seeds), and its final gain is not below {NO_COST:.0%} of the same "
                    f"aggregation's smoothed-peak gain at β={small}: lower 95% bound of the paired difference ≥ "
                    f"−{1 - NO_COST:.0%} of that gain (no over-optimisation, no cost)",
                    obs,
                    ok,
                    requires=("0-premise", ppo_premise),
                )
            )

        # 5. a shared exploit survives every aggregation (the feature-token count rises), best-of-n and PPO
        m = {"setting": setting, "d": d0, "noise": NOISE}
        obs, ok = {}, True
        series = [(f"bon_{a}", curves(rows, f"bon_{a}", "features", **m)) for a in AGGREGATIONS]
        if setting in cfg.ppo_settings:
            series += [
                (f"ppo_{a}", curves(rows, f"ppo_{a}", "features", setting=setting, beta=small))
                for a in cfg.ppo_methods
                if a != "single"
            ]
        for name, c in series:
            rise = paired_diff(final(c), start(c))
            obs |= {name: rise.mean, f"{name}_low": rise.low}
            ok = ok and rise.low > 0 and rise.mean >= EXPLOIT
        claims.append(
            Claim(
                f"5-shared-exploit-{setting}",
                f"{setting}: the feature-token count (the members' shared error) rises by ≥ {EXPLOIT} (mean; 95% CI "
                f"above 0) from n=1 to the final mean (n = {N // 4}…{N}) under every aggregation, and from the first "
                f"PPO window to the final mean (β={small}) under every ensemble reward",
                obs,
                ok,
            )
        )

    # 4. Eisenstein: pretrain-seed ensemble > finetune-seed ensemble > single RM at n = eisenstein_n
    if cfg.eisenstein:
        v = {
            k: {r["seed"]: r["value"] for r in select(rows, method=f"eis_{k}", metric="gold_at_eis_n")}
            for k in ("pretrain_mean", "finetune_mean", "single")
        }
        pf = paired_diff(v["pretrain_mean"], v["finetune_mean"])
        fs = paired_diff(v["finetune_mean"], v["single"])
        claims.append(
            Claim(
                "4-pretrain-finetune-single",
                f"control (d={d0}, 25% noise), best-of-{cfg.eisenstein_n} gold (mean aggregation): pretrain-seed "
                "ensemble > finetune-seed ensemble > single RM, each paired 95% CI above 0",
                {
                    **{k: mean(x) for k, x in v.items()},
                    **test_obs(pf, "pretrain_minus_finetune"),
                    **test_obs(fs, "finetune_minus_single"),
                },
                bool(pf.low > 0 and fs.low > 0),
            )
        )
    return claims
