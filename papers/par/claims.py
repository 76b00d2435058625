"""Claims v2: the paper's five headline claims, their premises and the control, as checks over the run records.

Pre-registered (claims v2, README "Pre-registration v2"; seeds and settings revised by v3–v5, README Deviations
13–15) before the runs that decided them (issue 31, preference world v2.2). Metric: gold win-rate against the SFT
policy's responses on held-out prompts. Rules (DESIGN "Results and claims"):
- every statistic is computed per seed and methods are compared as **paired differences over the same seeds** with a
  two-sided 95% Student-t CI (`common.stats.paired_diff`); a bound tested against the CI is a one-sided test at
  α = 0.025, and the minimum detectable effect (`*_mde`, power 0.8) reported beside each test uses that level;
- **peak** = maximum of the 3-evaluation moving average of the win-rate curve (`smoothed_peak`; the v1 "max of 21
  noisy evaluations" added ≈ 0.045 to a flat curve's fall), **final** = mean of the last 3 evaluations
  (`final_mean`: iterations 90, 95, 100 in `quick`); fall = peak − final, per seed;
- kinds: `premise` (Vanilla hacks; the world is in PAR's regime: 1b the hacked proxy lies above the references,
  1c gold-aligned responses can beat the references; the proxy is off-centre for claim 5), `claim` (UNTESTED when a
  premise it requires FAILs), `control` (PPO on the gold reward: PASS when it does not collapse; with a control
  world, premises 1b / 1c measured where PAR's regime is switched off: PASS when they fail there).
Thresholds: the paper's where it gives one (PAR's fall 0.72 → 0.67 = 0.05), otherwise the project's own, with the
reason beside each.
"""

from __future__ import annotations

import math

import numpy as np

from reprozoo.common.results import Claim, select
from reprozoo.common.stats import PairedDiff, final_mean, min_detectable_effect, moving_average, paired_diff
from reprozoo.papers.par.experiment import METHODS, Config, split_m1_block

WINDOW = 3  # smoothed peak: moving average of 3 evaluations
LAST = 3  # final: mean of the last 3 evaluations
ALPHA = 0.025  # one-sided level of "the 95% CI excludes the bound" (power and MDE are computed at it)

HACK_FALL = 0.15  # premise 1 / control 0: a collapse is a fall of ≥ 0.15 win-rate from the peak (project's own, v1)
EXCESS = 1.0  # premise 1b (issue 31, replaces v2's sign statistic "beats all M references on ≥ 80% of prompts",
#   which the v2 run showed cannot separate the regimes: 86.9% with the proxy bias, 86.8% without): Vanilla's final
#   rollouts exceed the max of their prompt's M references by ≥ 1 reference SD σ_ref (mean of (r − max_m r_ref,m) /
#   σ_ref). Why 1: with k = 1 and σ_ref ≈ 3 proxy units (v2: 3.1), an excess of σ_ref puts every σ(r − r_ref,m) at
#   ≥ σ(3) = 0.95, where its slope is ≤ 0.045 < ⅕ of σ′(0): the flat part of PAR's reward the paper's hacked
#   responses sit on (paper: 11.7 vs 3.5 under π_SFT). Project's own, fixed before the pilot (README).
BEATABLE = 0.75  # premise 1c: the gold-best of n SFT samples beats ≥ 75% of its prompt's references on the proxy:
#   midway between a proxy blind to gold (0.5) and one that ranks as gold does (n/(n+1) = 0.97 at n = 32)
RANDOM_PICK = 0.60  # control 1c: a random SFT sample beats ≤ 60% of the references (≈ 0.5; project's own)
PAPER_FALL = 0.05  # the paper: PAR 0.72 → 0.67 over two epochs (the effect claim 2's seed rule is powered for)
HOLD_FALL = 0.10  # claim 2: PAR's fall ≤ 0.10 (upper 95% bound) = twice the paper's 0.05 (project's own, v1)
BEST_MARGIN = 0.10  # claim 3: no rival beats PAR by more than 0.10 (lower bound of PAR − rival > −0.10); the paper's
#   PAR − next best (Minmax) is 0.02, far below what any affordable seed count resolves; 0.10 = claim 2's tolerance
EQUIV = 0.10  # claim 4: M = 1 − M = 10 inside ±0.10 (95% CI); v1's ±0.05 needs ≈ 60 seeds at the pilot's SD
PAPER_CENTRED = 0.05  # claim 5: the paper's centred − uncentred gap (.62–.65 vs .57–.59): the seed rule's effect
OFFSET = 2.0  # premise 5: |mean proxy reward of the references| ≥ 2 (σ′(2) = 0.105 < ½ σ′(0): centring then changes
#   the shaped reward's slope at π_SFT by more than 2×; project's own)
BELOW_PAR = ("vanilla", "meanstd", "clip", "reg")  # claim 2: PAR ends above each of these


def curve(rows: list[dict], name: str, metric: str) -> dict[int, dict[int, float]]:
    """{seed: {step: value}} of one run's curve."""
    out: dict[int, dict[int, float]] = {}
    for r in select(rows, method=name, metric=metric):
        if "step" in r:
            out.setdefault(r["seed"], {})[r["step"]] = r["value"]
    return out


def _values(c: dict[int, float]) -> np.ndarray:
    return np.array([c[k] for k in sorted(c)], float)


def peak_final(rows: list[dict], name: str) -> tuple[dict[int, float], dict[int, float], dict[int, int]]:
    """Per seed: the smoothed win-rate peak, the final mean, and the step at the centre of the peak's window."""
    pk, fin, at = {}, {}, {}
    for s, c in curve(rows, name, "winrate").items():
        steps, v = sorted(c), _values(c)
        ma = moving_average(v, WINDOW)
        i = int(np.argmax(ma))
        pk[s], fin[s] = float(ma[i]), final_mean(v, LAST)
        at[s] = steps[min(i + WINDOW // 2, len(steps) - 1)]
    return pk, fin, at


def final(rows: list[dict], name: str, metric: str = "winrate") -> dict[int, float]:
    return {s: final_mean(_values(c), LAST) for s, c in curve(rows, name, metric).items()}


def common(a: dict[int, float], b: dict[int, float]) -> PairedDiff:
    """paired_diff(a, b) over the seeds both runs have (a few-seed run pairs with the first seeds of the others)."""
    both = a.keys() & b.keys()
    return paired_diff({s: a[s] for s in both}, {s: b[s] for s in both})


def m1_minus_m(rows: list[dict], m1_rows: list[dict], cfg: Config) -> PairedDiff:
    """Claim 4's paired difference of final win-rates, M = 1 − M = 10: over claim 4's own block of fresh seeds
    (`m1_rows`) when the config has one (`m1_seeds`, pre-registration v5), else over the paired seeds both runs have
    in `rows`."""
    if cfg.m1_seed_list():
        return common(final(m1_rows, "par_m1"), final(m1_rows, "par"))
    paired = set(cfg.seed_list())
    return common(*({s: v for s, v in final(rows, n).items() if s in paired} for n in ("par_m1", "par")))


def mean(a: dict[int, float]) -> float:
    return float(np.mean(list(a.values())))


def mde(d: PairedDiff) -> float:
    """Minimum effect the paired test detects with power 0.8 at these seeds (one-sided α = 0.025)."""
    return min_detectable_effect(d.sd, d.n, alpha=ALPHA) if d.n > 1 else math.inf


def test_obs(d: PairedDiff, prefix: str) -> dict[str, float]:
    """The paired difference, its 95% CI, paired SD and minimum detectable effect, for `observed`."""
    return d.as_observed(prefix) | {f"{prefix}_sd": d.sd, f"{prefix}_mde": mde(d)}


def fall(rows: list[dict], name: str) -> tuple[PairedDiff, dict[str, float]]:
    pk, fin, _ = peak_final(rows, name)
    d = paired_diff(pk, fin)
    return d, {"winrate_peak": mean(pk), "winrate_final": mean(fin), **test_obs(d, "fall")}


def regime_1b(rows: list[dict], name: str) -> tuple[bool | None, dict]:
    """Premise 1b's test on run `name`: final mean of `excess_sd` = (r − max_m r_ref,m) / σ_ref over the rollouts,
    mean over seeds ≥ EXCESS (None: not measured). Beside it, not decided: the share of rollouts with an excess
    ≥ σ_ref and v2's sign statistic (the share above every reference)."""
    excess = final(rows, name, "excess_sd")
    if not excess:
        return None, {"excess_sd_final": "not measured (records written before issue 31's second run)"}
    obs = {"excess_sd_final": mean(excess), "per_seed": [excess[s] for s in sorted(excess)]}
    for m in ("excess_1sd", "beats_all_refs"):
        if v := final(rows, name, m):
            obs[f"{m}_final"] = mean(v)
    return bool(mean(excess) >= EXCESS), obs


def beatable_1c(rows: list[dict], name: str) -> tuple[bool | None, dict]:
    """Premise 1c's test on run `name`'s per-seed records: mean of `gold_bon_beats_frac` ≥ BEATABLE (None: not
    measured)."""
    vals = {
        m: {r["seed"]: r["value"] for r in select(rows, method=name, metric=m) if "step" not in r}
        for m in ("gold_bon_beats_frac", "gold_bon_beats_all", "proxy_bon_beats_frac", "gold_bon_gold_gain")
    }
    if not vals["gold_bon_beats_frac"]:
        return None, {"gold_bon_beats_frac": "not measured (records written before issue 31)"}
    obs = {m: mean(v) for m, v in vals.items() if v} | {
        "per_seed": [vals["gold_bon_beats_frac"][s] for s in sorted(vals["gold_bon_beats_frac"])]
    }
    return bool(obs["gold_bon_beats_frac"] >= BEATABLE), obs


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    runs = set(cfg.runs)
    rows, m1_rows = split_m1_block(rows, cfg)  # claim 4's own seeds (if any) are read by claim 4 alone
    claims = []
    paired = set(cfg.seed_list())  # the seeds every run has (`vanilla` also runs on cfg.premise_seed_list())

    def need(*names: str) -> bool:
        return set(names) <= runs

    def fin(name: str) -> dict[int, float]:
        """Final win-rate per seed, on the seeds every run has (the paired comparisons)."""
        return {s: v for s, v in final(rows, name).items() if s in paired}

    # 0. control: the same PPO on the gold reward itself (no proxy error) does not collapse
    if need("vanilla_gold"):
        d, obs = fall(rows, "vanilla_gold")
        claims.append(
            Claim(
                "0-control-no-proxy-error",
                "control: Vanilla PPO on the gold reward itself does not collapse: upper 95% bound of its win-rate "
                f"fall (smoothed peak − final mean) < {HACK_FALL}",
                obs,
                bool(d.high < HACK_FALL),
                kind="control",
            )
        )

    premises = []
    # 1. premise: Vanilla reward-hacks (the paper's claim 1, the condition every other claim relies on)
    if need("vanilla"):
        d, obs = fall(rows, "vanilla")
        _, _, at = peak_final(rows, "vanilla")
        proxy = curve(rows, "vanilla", "proxy")
        p_at = {s: proxy[s].get(at[s], proxy[s][min(proxy[s])]) for s in proxy}
        p_fin = final(rows, "vanilla", "proxy")
        obs |= {"proxy_at_peak": mean(p_at), "proxy_final": mean(p_fin)}
        claims.append(
            Claim(
                "1-vanilla-hacks",
                f"premise: Vanilla PPO's win-rate falls from its smoothed peak by ≥ {HACK_FALL} (mean; 95% CI "
                "above 0) while its proxy reward ends above its value at the peak (mean over seeds)",
                obs,
                bool(d.mean >= HACK_FALL and d.low > 0 and mean(p_fin) > mean(p_at)),
                kind="premise",
            )
        )
        premises.append("1-vanilla-hacks")

        # 1b. premise: PAR's regime — the hacked proxy lies above the references, where σ(r − r_ref) is flat
        ok, obs = regime_1b(rows, "vanilla")
        claims.append(
            Claim(
                "1b-premise-par-regime",
                f"premise: at the end of training Vanilla's rollouts exceed the max of their prompt's {cfg.n_refs} "
                f"SFT references' proxy rewards by ≥ {EXCESS:g} reference SD (mean of (r − max_m r_ref,m) / σ_ref; "
                "final mean, mean over seeds)",
                obs,
                bool(ok),
                kind="premise",
            )
        )
        premises.append("1b-premise-par-regime")

    # 1c. premise: PAR's regime — gold-aligned responses can beat the references (PAR can saturate without the exploit)
    if need("par"):
        ok, obs = beatable_1c(rows, "par")
        if gold_beats := final(rows, "vanilla_gold", "beats_refs_frac"):  # not decided: the gold-optimised policy's
            obs["vanilla_gold_beats_refs_frac_final"] = mean(gold_beats)  # share of references beaten, at the end
        claims.append(
            Claim(
                "1c-premise-refs-beatable",
                f"premise: the gold-best of {cfg.beat_n} SFT samples beats ≥ {BEATABLE:.0%} of its prompt's "
                f"{cfg.n_refs} references on the proxy (mean over {cfg.beat_prompts} training prompts and seeds; "
                "the proxy-best of the same samples reported beside it)",
                obs,
                bool(ok),
                kind="premise",
            )
        )
        premises.append("1c-premise-refs-beatable")
        rand = {r["seed"]: r["value"] for r in select(rows, method="par", metric="random_beats_frac")}
        claims.append(
            Claim(
                "1c-control-random-pick",
                f"control: a random one of the same {cfg.beat_n} SFT samples (gold alignment switched off) beats "
                f"≤ {RANDOM_PICK:.0%} of the references (mean; ≈ ½ by exchangeability)",
                {"random_beats_frac": mean(rand)} if rand else {"random_beats_frac": "not measured"},
                bool(rand) and mean(rand) <= RANDOM_PICK,
                kind="control",
            )
        )

    # controls of 1b / 1c: the same measurements on the control world, where PAR's regime is switched off
    if need("vanilla_ctrl"):
        ok, obs = regime_1b(rows, "vanilla_ctrl")
        claims.append(
            Claim(
                "1b-control-regime-off",
                "control: on the control world (PAR's regime switched off) Vanilla's final rollouts do NOT exceed "
                f"the max of the references by ≥ {EXCESS:g} reference SD (the statistic of 1b)",
                obs,
                ok is False,
                kind="control",
            )
        )
    requires = tuple(premises)

    # 2. PAR holds its win-rate (non-inferiority of its fall to the margin) and ends above Vanilla, Meanstd, Clip, Reg
    others = [m for m in BELOW_PAR if m in runs]
    if need("par"):
        d, obs = fall(rows, "par")
        ok = d.high <= HOLD_FALL
        par_final = fin("par")
        for m in others:
            diff = common(par_final, fin(m))
            obs |= test_obs(diff, f"par_minus_{m}")
            ok = ok and diff.low > 0
        if need("vanilla"):  # the audit's regime diagnostic (not decided): PAR's proxy gain / Vanilla's
            gain = {}
            for m in ("par", "vanilla"):
                c = curve(rows, m, "proxy")
                gain[m] = mean({s: final_mean(_values(v), LAST) - _values(v)[0] for s, v in c.items() if s in paired})
            obs["proxy_gain_ratio_par_to_vanilla"] = gain["par"] / gain["vanilla"] if gain["vanilla"] else math.nan
        claims.append(
            Claim(
                "2-par-holds",
                f"PAR keeps its win-rate: upper 95% bound of its fall (smoothed peak − final mean) ≤ {HOLD_FALL} "
                f"(paper: {PAPER_FALL}), and its final win-rate exceeds each of {', '.join(others)}'s (paired 95% CI "
                "above 0)",
                obs,
                bool(ok),
                requires=requires,
            )
        )

    # 3. PAR is the best or within BEST_MARGIN of the best shaping method (non-inferiority to every rival)
    rivals = [m for m in METHODS if m in runs and m != "par"]
    if need("par") and rivals:
        par_final = fin("par")
        obs, ok = {"par_final": mean(par_final)}, True
        for m in rivals:
            diff = common(par_final, fin(m))
            obs |= test_obs(diff, f"par_minus_{m}")
            ok = ok and diff.low > -BEST_MARGIN
        claims.append(
            Claim(
                "3-par-best",
                f"PAR's final win-rate is the best or within {BEST_MARGIN} of the best: for every other method run "
                f"({', '.join(rivals)}) the lower 95% bound of PAR − method > −{BEST_MARGIN}",
                obs,
                bool(ok),
                requires=requires,
            )
        )

    # 4. one reference suffices (equivalence within ±EQUIV), on its own block of fresh seeds when there is one
    if need("par", "par_m1"):
        diff = m1_minus_m(rows, m1_rows, cfg)
        obs = test_obs(diff, "m1_minus_m")
        if block := cfg.m1_seed_list():
            seeds = f" over claim 4's own fresh seeds {block[0]}–{block[-1]}"
            if fin("par_m1"):  # not decided: the estimate on the paired seeds M = 1 also runs on (v4's, the pilot)
                pilot = common(fin("par_m1"), fin("par"))
                obs |= {"pilot_m1_minus_m": pilot.mean, "pilot_n_seeds": pilot.n}
        else:
            seeds = ""
        claims.append(
            Claim(
                "4-one-reference",
                f"PAR with M = 1 is equivalent to M = {cfg.n_refs}: the 95% CI of the paired difference of final "
                f"win-rates{seeds} lies inside ±{EQUIV}",
                obs,
                bool(-EQUIV < diff.low and diff.high < EQUIV),
                requires=requires,
            )
        )

    # 5. centred beats uncentred; premise: the proxy is off-centre under π_SFT (else σ(r) ≈ PAR with r_ref = 0)
    if need("par", "sigmoid"):
        ref = {r["seed"]: r["value"] for r in select(rows, method="par", metric="ref_proxy_mean")}
        if ref:
            obs = {"ref_proxy_mean": mean(ref), "per_seed": [ref[s] for s in sorted(ref)]}
            ok = abs(mean(ref)) >= OFFSET
        else:
            obs, ok = {"ref_proxy_mean": "not measured (records written before claims v2)"}, False
        claims.append(
            Claim(
                "5-premise-proxy-offset",
                f"premise: the proxy is off-centre under π_SFT: |mean proxy reward of the SFT references| ≥ {OFFSET} "
                "(mean over seeds)",
                obs,
                bool(ok),
                kind="premise",
            )
        )
        diff = common(fin("par"), fin("sigmoid"))
        claims.append(
            Claim(
                "5-centred-beats-uncentred",
                "PAR σ(r − r_ref) ends with a higher win-rate than the uncentred σ(r): paired 95% CI above 0 "
                f"(paper: ≈ +{PAPER_CENTRED})",
                test_obs(diff, "par_minus_sigmoid"),
                bool(diff.low > 0),
                requires=tuple(p for p in premises if p == "1-vanilla-hacks") + ("5-premise-proxy-offset",),
            )
        )
    return claims


# --- the power pilot (development seeds, README "Pre-registration v3") ---

PAPER_WINRATE = {  # the paper's average win-rates (Gemma2-2B / UltraFeedback): the effects the seed rule assumes
    "vanilla": 0.29,
    "warm": 0.58,
    "odin": 0.35,
    "reg": 0.32,
    "meanstd": 0.33,
    "clip": 0.32,
    "minmax": 0.61,
    "lsc": 0.58,
    "par": 0.63,
}


def power_tests(rows: list[dict], cfg: Config) -> dict[str, tuple[PairedDiff, float, float]]:
    """Every paired test the claims decide that `rows` hold: {test: (pilot paired difference, effect the seed rule
    assumes, target power)}. Effects: premise 1 the collapse size HACK_FALL; claim 2's fall the margin minus the
    paper's fall; PAR − rival the paper's gap (claim 2) or the gap + BEST_MARGIN (claim 3); claim 4 the margin at a
    true difference of 0 (power 0.9 per one-sided test ≈ 0.8 for both); claim 5 the paper's gap."""
    runs, out = set(cfg.runs) & {r["method"] for r in rows}, {}
    rows, m1_rows = split_m1_block(rows, cfg)
    paired = set(cfg.seed_list())

    def fin(name: str) -> dict[int, float]:
        return {s: v for s, v in final(rows, name).items() if s in paired}

    if "vanilla" in runs:
        pk, f, _ = peak_final(rows, "vanilla")
        out["1 Vanilla's fall"] = (paired_diff(pk, f), HACK_FALL, 0.8)
    if "par" in runs:
        pk, f, _ = peak_final(rows, "par")
        out["2 PAR's fall ≤ margin"] = (paired_diff(pk, f), HOLD_FALL - PAPER_FALL, 0.8)
        gap = {m: PAPER_WINRATE["par"] - w for m, w in PAPER_WINRATE.items() if m != "par"}
        for m in [m for m in METHODS if m in runs and m != "par"]:
            d = common(fin("par"), fin(m))
            if m in BELOW_PAR:
                out[f"2 PAR − {m}"] = (d, gap[m], 0.8)
            out[f"3 PAR − {m} > −margin"] = (d, gap[m] + BEST_MARGIN, 0.8)
    if {"par", "par_m1"} <= runs:
        out["4 M=1 − M=10 within ±margin"] = (m1_minus_m(rows, m1_rows, cfg), EQUIV, 0.9)
    if {"par", "sigmoid"} <= runs:
        out["5 PAR − σ(r)"] = (common(fin("par"), fin("sigmoid")), PAPER_CENTRED, 0.8)
    return out


def pilot_table(rows: list[dict], cfg: Config) -> str:
    """Markdown: per test the pilot's mean and paired SD, the effect, the seeds for the target power
    (`seeds_for_power` at one-sided α = 0.025) and the MDE at the pilot's seed count; with the regime statistic."""
    from reprozoo.common.stats import seeds_for_power

    lines = ["| test | pilot mean | paired SD | effect | power | seeds |", "|---|---|---|---|---|---|"]
    for name, (d, effect, target) in power_tests(rows, cfg).items():
        try:
            n = str(seeds_for_power(effect, d.sd, target, alpha=ALPHA))
        except ValueError:
            n = "> 200"
        lines.append(f"| {name} | {d.mean:.3f} | {d.sd:.3f} | {effect:.3f} | {target} | {n} |")
    for name in ("vanilla", "vanilla_ctrl"):
        if excess := final(rows, name, "excess_sd"):
            lines.append(
                f"| 1b excess of {name} (reference SDs) | {mean(excess):.3f} | "
                f"{np.std(list(excess.values()), ddof=1):.3f} (between seeds) | — | — | — |"
            )
    return "\n".join(lines) + "\n"
