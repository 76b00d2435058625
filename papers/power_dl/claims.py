"""Claims v3: the paper's headline claims, their premises and controls, as checks over the run records.

Pre-registered (claims v2, README "Pre-registration v2"; v3's changes — clean-label claim 3 on the small clean data
set, premise 3's control = the same pairs with clean labels — in "Pre-registration v3") before the run that decides
them (issue 31, preference world v2). Rules (DESIGN "Results and claims"):
- every statistic is computed per seed (a bandit seed's value is the mean over its dataset draws) and methods are
  compared as **paired differences over the same seeds** with a two-sided 95% Student-t CI
  (`common.stats.paired_diff`); a bound tested against the CI is a one-sided test at α = 0.025, and the minimum
  detectable effect (`*_mde`, power 0.8) reported beside each test uses that level;
- world curves: **peak** = maximum of the 3-evaluation moving average (`smoothed_peak`), **final** = mean of the last
  3 evaluations (`final_mean`: steps 300, 350, 400 in `quick`);
- kinds: `premise` (the data show Type I / Type II hacking; the world's flipped data hold Type I / Type II pairs; DPO
  over-optimises the world at that flip rate), `claim` (UNTESTED when a premise it requires FAILs), `control` (the
  same arm well covered; clean data without such pairs; DPO where the shared error costs no gold: PASS when it
  behaves as predicted);
- claims 2b repeat claim 2's premise, claim and control under full-batch gradient descent at the mechanism test's
  β/η (part bandit_sgd): a labelled variant, pre-registered with claim 2's thresholds.
- pre-registrations v4 / v5 (README) change no check here, only what the quick preset runs: the small data set on
  its own fresh seeds and the clean-label data sets on a finer evaluation grid (`experiment.Config`).
The paper's numbers (AlpacaEval / Arena-Hard points) are not in these units, so every threshold is the project's own,
with the reason beside it.
"""

from __future__ import annotations

import math

import numpy as np

from reprozoo.common.results import Claim, select
from reprozoo.common.stats import PairedDiff, final_mean, min_detectable_effect, paired_diff, smoothed_peak
from reprozoo.papers.power_dl.experiment import Config

WINDOW = 3  # smoothed peak: moving average of 3 evaluations
LAST = 3  # final: mean of the last 3 evaluations
ALPHA = 0.025  # one-sided level of "the 95% CI excludes the bound" (power and MDE are computed at it)

SUBSTANTIAL = 0.3  # premise 0 / claim 1: "substantial mass" on the lucky bad arm (uniform π_ref gives it 1/K = 0.2)
SMALL = 0.1  # claim 1: POWER's mass on it (upper 95% bound) stays ≤ 0.1, half the uniform start's
CONTROL = 0.05  # control 0: with the rare arm well covered, DPO's mass on the bad arm (upper 95% bound) ≤ 0.05
TYPE2_LOSS = 0.5  # premise 2: POWER keeps ≤ ½ of the good arm's covered mass when it is seen once and lost
RECOVER = 0.02  # claim 2: POWER-DL keeps ≥ 0.02 more mass on the unlucky good arm than POWER (v1 value)
NONINF = 0.05  # claim 2 / control 2: true reward not lower than POWER's by more than 0.05 (≈ 4% of π_0's 1.35)
FALL = 0.25  # premise 3: DPO's gold falls ≥ 25% of its gain from its smoothed peak (the world demo's value)
MARGIN = 0.05  # claim 3: "by a clear margin" in gold win-rate over SFT (v1 value)
TYPE_MIN = 0.02  # premise 3a: ≥ 2% of the pairs are Type I and ≥ 2% Type II (≈ 40 of 2048; project's own)
TYPE_OFF = 0.005  # control 3a: clean labels leave ≤ 0.5% of either (gold ties broken by a coin; project's own)


def mean(a: dict[int, float]) -> float:
    return float(np.mean(list(a.values())))


def mde(d: PairedDiff) -> float:
    """Minimum effect the paired test detects with power 0.8 at these seeds (one-sided α = 0.025)."""
    return min_detectable_effect(d.sd, d.n, alpha=ALPHA) if d.n > 1 else math.inf


def test_obs(d: PairedDiff, prefix: str) -> dict[str, float]:
    """The paired difference, its 95% CI, paired SD and minimum detectable effect, for `observed`."""
    return d.as_observed(prefix) | {f"{prefix}_sd": d.sd, f"{prefix}_mde": mde(d)}


def one_sample(a: dict[int, float]) -> PairedDiff:
    """Mean over seeds and its 95% CI (a paired difference against 0)."""
    return paired_diff(a, dict.fromkeys(a, 0.0))


def bandit(
    rows: list[dict], method: str, metric: str, kind: str, coverage: str = "rare", part: str = "bandit"
) -> dict[int, float]:
    """{seed: value} of one bandit cell (a seed's value is the mean over its dataset draws)."""
    sel = select(rows, part=part, method=method, metric=metric, kind=kind, coverage=coverage)
    return {r["seed"]: r["value"] for r in sel}


def world_curves(
    rows: list[dict], method: str, metric: str, noise: float, part: str = "world"
) -> dict[int, np.ndarray]:
    """{seed: the curve ordered by step} of a world run (part=world_control: the control world's)."""
    out: dict[int, list] = {}
    sel = select(rows, part=part, method=method, metric=metric, noise=noise)
    for r in sorted(sel, key=lambda r: (r["seed"], r["step"])):
        out.setdefault(r["seed"], []).append(r["value"])
    return {s: np.asarray(v, float) for s, v in out.items()}


def finals(c: dict[int, np.ndarray]) -> dict[int, float]:
    return {s: final_mean(v, LAST) for s, v in c.items()}


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    claims = []
    methods = set(cfg.methods)

    # 0. premise: Type I hacking — DPO puts substantial mass on a bad arm seen once that won; control: covered arm
    rare, covered = bandit(rows, "dpo", "rare_mass", "type1"), bandit(rows, "dpo", "rare_mass", "type1", "covered")
    claims.append(
        Claim(
            "0-premise-type1",
            f"bandit premise: DPO's mean mass on the lucky bad arm seen once (and won) is ≥ {SUBSTANTIAL}",
            {"dpo_mass_rare": mean(rare)},
            mean(rare) >= SUBSTANTIAL,
            kind="premise",
        )
    )
    cov = one_sample(covered)
    claims.append(
        Claim(
            "0-control-type1-covered",
            f"bandit control: with the same bad arm covered by {cfg.bandit_cover} honest comparisons, DPO's mass on "
            f"it stays ≤ {CONTROL} (upper 95% bound over seeds)",
            {"dpo_mass_covered": cov.mean, "dpo_mass_covered_high": cov.high},
            bool(cov.high <= CONTROL),
            kind="control",
        )
    )

    # 1. Type I: DPO / IPO / SimPO put substantial mass on the lucky bad arm; POWER does not and earns more
    others = ["dpo", "ipo", "simpo"]  # the bandit runs every method, whatever the world runs
    mass = {m: bandit(rows, m, "rare_mass", "type1") for m in (*others, "power")}
    reward = {m: bandit(rows, m, "true_reward", "type1") for m in (*others, "power")}
    power_mass = one_sample(mass["power"])
    obs = {f"{m}_mass": mean(mass[m]) for m in others} | {"power_mass_high": power_mass.high}
    ok = power_mass.high <= SMALL
    for m in others:
        diff = paired_diff(reward["power"], reward[m])
        obs |= test_obs(diff, f"power_minus_{m}_reward")
        ok = ok and mean(mass[m]) >= SUBSTANTIAL and diff.low > 0
    claims.append(
        Claim(
            "1-type1-power",
            f"Type I bandit: {', '.join(others)} each put ≥ {SUBSTANTIAL} mean mass on the lucky bad arm, POWER "
            f"≤ {SMALL} (upper 95% bound), and POWER's true expected reward exceeds each of theirs (paired 95% "
            "CI above 0)",
            obs,
            bool(ok),
            requires=("0-premise-type1",),
        )
    )

    # 2. Type II — premise: POWER loses the good arm when it is seen once and lost; claim: dynamic labels recover
    #    it; control: when the arm is covered, dynamic labels cost nothing. 2b: the same under gradient descent.
    init = "softmax(r*)" if cfg.aligned_init else "uniform"
    claims += type2_claims(rows, cfg, "bandit", "2", f"bandit premise (Adam; initial policy {init})")
    if cfg.sgd_variant:
        hp = cfg.sgd_hp
        variant = f"bandit variant (gradient descent, lr {cfg.sgd_lr:g}, β/η = {hp.power_beta / hp.power_eta:g})"
        claims += type2_claims(rows, cfg, "bandit_sgd", "2b", variant)

    # 3. preference world, per data set — premises: the flipped data hold Type I / Type II pairs (control: clean
    #    labels hold none), DPO over-optimises (controls: not on the same pairs with clean labels; not where the shared
    #    error costs no gold); claim: POWER-DL's final win-rate beats DPO's by a clear margin (gold final beside it,
    #    not decided). Claims v3: clean labels are decided on the small data set when there is one.
    if {"dpo", "power_dl"} <= methods:
        for noise in cfg.label_noises:
            requires = []
            if noise > 0:
                requires.append(f"3a-premise-type1-type2-pairs-noise{noise:g}")
                claims.append(type_pairs_claim(rows, cfg, requires[-1], noise, None))
            else:
                claims.append(type_pairs_claim(rows, cfg, "3a-control-clean-data-noise0", 0.0, None))
            ok, obs = dpo_overoptimises(world_curves(rows, "dpo", "gold", noise))
            requires.append(f"3-premise-dpo-overoptimises-noise{noise:g}")
            claims.append(
                Claim(
                    requires[-1],
                    f"world premise ({noise:.0%} flips): DPO's gold falls from its smoothed peak to its final mean by "
                    f"≥ {FALL:.0%} of its gain over the start (mean), 95% CI of the fall above 0",
                    obs,
                    ok,
                    kind="premise",
                )
            )
            if cfg.control_feature_penalty is not None:
                gold = world_curves(rows, "dpo", "gold", noise, part="world_control")
                ok, obs = dpo_overoptimises(gold)
                claims.append(
                    Claim(
                        f"3-control-dpo-no-feature-cost-noise{noise:g}",
                        f"world control ({noise:.0%} flips, feature penalty p = {cfg.control_feature_penalty:g}: the "
                        "shared error costs no gold): DPO's gold does NOT fall by the premise's criterion",
                        obs,
                        bool(gold) and not ok,  # a control without its runs does not PASS
                        kind="control",
                    )
                )
            claims.append(
                win_rate_claim(rows, f"3-world-win-rate-noise{noise:g}", f"{noise:.0%} flips", noise, requires)
            )
        if cfg.clean_control:
            if 0.0 not in cfg.label_noises:
                claims.append(type_pairs_claim(rows, cfg, "3a-control-clean-data-noise0", 0.0, cfg.world_pairs))
            gold = world_curves(rows, "dpo", "gold", 0.0, part="world_clean")
            ok, obs = dpo_overoptimises(gold)
            small = f", {cfg.world_pairs / cfg.small_pairs:g}× the small data set's pairs" if cfg.small_pairs else ""
            claims.append(
                Claim(
                    "3-control-dpo-clean-labels",
                    f"world control (the {cfg.world_pairs} pairs with clean labels: the flipped data sets' pairs "
                    f"without their Type I / II pairs{small}): DPO's gold does NOT fall by premise 3's criterion",
                    obs,
                    bool(gold) and not ok,  # a control without its runs does not PASS
                    kind="control",
                )
            )
        if cfg.small_pairs is not None:
            n = cfg.small_pairs
            ok, obs = dpo_overoptimises(world_curves(rows, "dpo", "gold", 0.0, part="world_small"))
            premise = f"3-premise-dpo-overoptimises-clean{n}"
            claims.append(
                Claim(
                    premise,
                    f"world premise (clean labels, {n} pairs): DPO's gold falls from its smoothed peak to its final "
                    f"mean by ≥ {FALL:.0%} of its gain over the start (mean), 95% CI of the fall above 0",
                    obs,
                    ok,
                    kind="premise",
                )
            )
            claims.append(
                win_rate_claim(
                    rows, f"3-world-win-rate-clean{n}", f"clean labels, {n} pairs", 0.0, [premise], "world_small"
                )
            )
    return claims


def type_pairs_claim(rows: list[dict], cfg: Config, cid: str, noise: float, pairs: int | None) -> Claim:
    """Premise 3a (flipped labels: ≥ TYPE_MIN of the pairs are Type I and ≥ TYPE_MIN Type II) or its control (clean
    labels: ≤ TYPE_OFF of either), from the part=world_data records of that flip rate (and `pairs`, for the
    clean-control data set)."""
    types = {k: _data(rows, k, noise, pairs) for k in ("type1", "type2", "mislabelled")}
    measured = all(types.values())
    obs = {f"{k}_frac": mean(v) for k, v in types.items()} if measured else {"types": "not measured"}
    if noise > 0:
        return Claim(
            cid,
            f"world premise ({noise:.0%} flips): ≥ {TYPE_MIN:.0%} of the pairs are Type I (chosen = the gold-worse "
            f"response, poorly covered: SFT log-prob below the {cfg.coverage_quantile:.0%} quantile) and "
            f"≥ {TYPE_MIN:.0%} Type II (rejected = the gold-better one, poorly covered); means over seeds",
            obs,
            measured and min(obs["type1_frac"], obs["type2_frac"]) >= TYPE_MIN,
            kind="premise",
        )
    return Claim(
        cid,
        f"world control (clean labels): ≤ {TYPE_OFF:.1%} of the pairs are Type I and ≤ {TYPE_OFF:.1%} Type II (the "
        "statistical fluctuation switched off); means over seeds",
        obs,
        measured and max(obs["type1_frac"], obs["type2_frac"]) <= TYPE_OFF,
        kind="control",
    )


def win_rate_claim(
    rows: list[dict], cid: str, data: str, noise: float, requires: list[str], part: str = "world"
) -> Claim:
    """Claim 3 on one data set: POWER-DL − DPO final win-rate ≥ MARGIN with a paired 95% CI above 0; the final
    gold difference is reported beside it (not decided). FAIL with "not measured" where the records lack the runs."""
    statement = (
        f"preference world ({data}): POWER-DL's final gold win-rate over SFT exceeds DPO's by ≥ {MARGIN} (mean paired "
        "difference) with a paired 95% CI above 0 (final gold reported beside it)"
    )
    curves = {(m, k): world_curves(rows, m, k, noise, part) for m in ("power_dl", "dpo") for k in ("win_rate", "gold")}
    if not all(curves.values()):
        return Claim(cid, statement, {"runs": "not measured"}, False, requires=tuple(requires))
    win = paired_diff(finals(curves["power_dl", "win_rate"]), finals(curves["dpo", "win_rate"]))
    gd = paired_diff(finals(curves["power_dl", "gold"]), finals(curves["dpo", "gold"]))
    return Claim(
        cid,
        statement,
        {**test_obs(win, "win_rate_diff"), **test_obs(gd, "gold_final_diff")},
        bool(win.mean >= MARGIN and win.low > 0),
        requires=tuple(requires),
    )


def _data(rows: list[dict], metric: str, noise: float, pairs: int | None = None) -> dict[int, float]:
    """{seed: value} of a world data-set measurement (Type I / II fractions); `pairs` names an extra data set
    (None: the part=world data set of that flip rate, whose records carry no size)."""
    sel = select(rows, part="world_data", metric=metric, noise=noise)
    return {r["seed"]: r["value"] for r in sel if r.get("pairs") == pairs}


def dpo_overoptimises(gold: dict[int, np.ndarray]) -> tuple[bool, dict[str, float]]:
    """Premise 3's test on DPO's gold curves: smoothed peak − final mean ≥ FALL × gain over the start (mean), paired
    95% CI of the fall above 0."""
    if not gold:
        return False, {"dpo_gold": "not measured"}
    pk = {s: smoothed_peak(v, WINDOW) for s, v in gold.items()}
    fin = finals(gold)
    gain = mean({s: pk[s] - gold[s][0] for s in gold})
    drop = paired_diff(pk, fin)
    obs = {
        "dpo_gold_start": mean({s: v[0] for s, v in gold.items()}),
        "dpo_gold_peak": mean(pk),
        "dpo_gold_final": mean(fin),
        "gain": gain,
        **test_obs(drop, "fall"),
    }
    return bool(drop.low > 0 and drop.mean >= FALL * max(gain, 0.0)), obs


def type2_claims(rows: list[dict], cfg: Config, part: str, prefix: str, label: str) -> list[Claim]:
    """Claim 2's premise (POWER loses the unlucky good arm), claim (dynamic labels recover it) and control (they
    cost nothing where the arm is covered), on the bandit records of `part`."""

    def cell(method: str, metric: str, coverage: str = "rare") -> dict[int, float]:
        return bandit(rows, method, metric, "type2", coverage, part=part)

    p_rare, p_cov = cell("power", "rare_mass"), cell("power", "rare_mass", "covered")
    loss = paired_diff(p_cov, p_rare)
    premise = f"{prefix}-premise-type2"
    dm = paired_diff(cell("power_dl", "rare_mass"), p_rare)
    dr = paired_diff(cell("power_dl", "true_reward"), cell("power", "true_reward"))
    dc = paired_diff(cell("power_dl", "true_reward", "covered"), cell("power", "true_reward", "covered"))
    return [
        Claim(
            premise,
            f"{label}: POWER's mean mass on the good arm seen once (and lost) is ≤ {TYPE2_LOSS} × its mass when the "
            "arm is covered, paired 95% CI of covered − rare above 0",
            {
                "power_mass_rare": mean(p_rare),
                "power_mass_covered": mean(p_cov),
                **test_obs(loss, "covered_minus_rare"),
            },
            bool(mean(p_rare) <= TYPE2_LOSS * mean(p_cov) and loss.low > 0),
            kind="premise",
        ),
        Claim(
            f"{prefix}-type2-dl",
            f"Type II {'bandit' if part == 'bandit' else 'bandit, gradient-descent variant'}: POWER-DL's mass on the "
            f"unlucky good arm exceeds POWER's by ≥ {RECOVER} (mean; paired 95% CI above 0), and its true expected "
            f"reward is not lower by more than {NONINF} (lower 95% bound)",
            {**test_obs(dm, "dl_minus_power_mass"), **test_obs(dr, "dl_minus_power_reward")},
            bool(dm.mean >= RECOVER and dm.low > 0 and dr.low >= -NONINF),
            requires=(premise,),
        ),
        Claim(
            f"{prefix}-control-type2-covered",
            f"{'bandit control' if part == 'bandit' else 'bandit control, gradient-descent variant'}: with the good "
            f"arm covered by {cfg.bandit_cover} honest comparisons, POWER-DL's true expected reward is within "
            f"{NONINF} of POWER's (95% CI of the paired difference inside ±{NONINF})",
            test_obs(dc, "dl_minus_power_reward_covered"),
            bool(-NONINF <= dc.low and dc.high <= NONINF),
            kind="control",
        ),
    ]
