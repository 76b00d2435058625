"""The paper's headline claims as checks over the records — claims v3 = pre-registration v2 (README "Pre-registration
v2") plus the build-acceptance premises 0h, 0i (README "Issue 32, round 2").

Kinds (DESIGN.md, "Results and claims"): a `premise` measures a condition of the world / model the paper relies on, a
`claim` `requires` premises and is UNTESTED when one of them FAILs, a `control` states the outcome expected where the
premise is switched off (the control world) and PASSes when it behaves so.

The paper's premises, as the 2026-12 audit (`shared/audits/2026-12/reasoning.md`) found them missing or present:
- 0a headroom: the base model over-thinks (redundant post-answer tokens) and under-thinks (premature answers on hard
  problems) — measured on `base`;
- 0b the steering direction prunes: steering against S (the static SEAL-like baseline, constant λ < 0) shortens the
  redundant loops — a property of the model and of S, measured with the baseline, not with ReBalance;
- 0c the trade-off that makes a *dynamic* λ necessary: the same −S raises premature answers on hard problems (so a
  constant λ cannot cure both failure modes). The audit found −S lowering both at either readout (static λ = −2 at
  the separator reaches accuracy 1.000): where 0c FAILs, "dynamic beats static" and "both branches matter" are
  UNTESTED, not FAIL;
- 0e, 0f the confidence signal ReBalance steers by (the world's properties 1–2, measured here on the base model's
  evaluation samples of every seed, `reasoning_demo.premise_aucs`): among redundant steps, the step's (c, v) predicts
  that the loop goes on (0e, needed by w_low); among mid-chain steps, it predicts a premature END (0f, needed by
  w_high) — cross-fitted AUC >= 0.7;
- 0g (for the control-world check): in the control world the same AUCs are chance (0.5 ± 0.1): the premise is
  switched off there, so a ReBalance advantage would not come from confidence;
- 0h, 0i (issue 32, world v3.1): each world's SFT'd model has learned the chain — teacher-forced chain-value argmax
  accuracy >= CHAIN_ACCURACY_MIN (0.95) in the main world (0h, for claims 1–3) and in the control world (0i, for
  control 4): the first v3-control model read each operand but not its sign (0.72), so its base accuracy was 0.30
  and its calibration had 6–16 negative steps;
- 0d (for the control-world check): the control world's calibration is usable — enough confident non-reflective
  steps to build μ_neg. The audit's R4: greedy calibration in the control world loops to the cap, n_neg is 15–25 and
  ‖S‖ = 26.6 > ‖h‖ = 16.3, so static steering collapses there for a reason unrelated to confidence.

Statistics: every comparison is a paired difference over seeds (same seed = same calibration, problems and sampling
stream) with a two-sided 95% Student-t CI; a direction ("lower", "shorter") is established when the CI excludes 0, a
non-inferiority ("no loss") when the CI's lower bound clears −margin. Each comparison reports `*_mde80`, the smallest
effect its seeds detect with 80% power (one-sided paired t at α = 0.025, the level of the CI bound).

Thresholds — all the project's own (the paper reports benchmark tables, not margins):
- REDUNDANT_CUT 0.30 (v1, pre-registered before the v1 run): 30% of the base model's redundant tokens, set from the
  world's measured headroom (the concise policy is ≤ 0.8 of the base length, nearly all post-answer loops);
- ACC_TOL 0.01 (v1): "no accuracy loss" tolerates 1 point;
- SIMILAR_LEN 1.10 (v1): "similar or shorter length" means ≤ 1.1× static's length;
- HEADROOM 0.10 (v2): each failure mode must affect ≥ 10% of the base model's thinking tokens / hard problems, so a
  30% cut or a drop is measurable with 800 problems per seed;
- N_NEG_MIN 50 (v2, audit R4): fewer than 50 negative steps make μ_neg a handful of steps (the official calibration
  takes 100 responses and yields hundreds);
- AUC_MIN 0.7 and CHANCE_BAND 0.1 (issue 32): the reasoning world's pre-registered properties 1–2 (premise world
  >= 0.7, control within 0.5 ± 0.1; `common/worlds/README_reasoning.md`), on the mean over seeds.
"""

from __future__ import annotations

import math

import numpy as np

from reprozoo.common.results import Claim, select
from reprozoo.common.stats import PairedDiff, min_detectable_effect, paired_diff
from reprozoo.common.worlds.reasoning import CHAIN_ACCURACY_MIN
from reprozoo.papers.rebalance.experiment import Config

REDUNDANT_CUT = 0.30  # claim 1: ReBalance removes >= 30% of the base model's redundant (post-answer) thinking tokens
ACC_TOL = 0.01  # claims 1, 2, 4: "no accuracy loss" / "no advantage" tolerates 1 point
SIMILAR_LEN = 1.10  # claim 2: "similar or shorter length": at most 10% longer than static steering
HEADROOM = 0.10  # premise 0a: each failure mode affects >= 10% of base thinking tokens / hard problems
N_NEG_MIN = 50  # premise 0d: negative calibration steps needed for a usable μ_neg (audit R4)
AUC_MIN = 0.7  # premises 0e, 0f: the confidence signal predicts the coming decision (world properties 1-2)
CHANCE_BAND = 0.1  # premise 0g: in the control world those AUCs lie within 0.5 ± 0.1

P_HEADROOM = "0a-premise-headroom"
P_CONTROL_CAL = "0d-premise-control-calibration"
P_LOOPS = "0e-premise-confidence-precedes-loops"
P_END = "0f-premise-confidence-precedes-premature-end"
P_CONTROL_OFF = "0g-premise-control-confidence-uninformative"
P_LEARNED = "0h-premise-world-learned"
P_CONTROL_LEARNED = "0i-premise-control-world-learned"
MAIN_WORLDS = ("v3.2", "v3.1", "v3", "premise")
CONTROL_WORLDS = ("v3.2-control", "v3.1-control", "v3-control", "control")
AUCS = {"auc_redundant": "the loop goes on (among redundant steps)", "auc_premature_end": "a premature END (mid-chain)"}


def per_seed(rows: list[dict], method: str, metric: str, world: str) -> dict[int, float]:
    """{seed: value} of an overall (all-k) metric of one method in one world."""
    return {
        r["seed"]: float(r["value"])
        for r in select(rows, method=method, metric=metric, world=world)
        if "k" not in r and "step" not in r and "lam" not in r
    }


def mean(rows: list[dict], method: str, metric: str, world: str) -> float:
    """Mean over seeds of an overall (all-k) metric in one world."""
    vals = list(per_seed(rows, method, metric, world).values())
    return float(np.mean(vals)) if vals else float("nan")


def paired(prefix: str, a: dict[int, float], b: dict[int, float]) -> tuple[PairedDiff, dict[str, float]]:
    """Paired difference a − b with its 95% CI, SD and the 80%-power minimum detectable effect of its seeds."""
    pd = paired_diff(a, b)
    obs = pd.as_observed(prefix)
    obs[f"{prefix}_sd"] = pd.sd
    obs[f"{prefix}_mde80"] = min_detectable_effect(pd.sd, pd.n, alpha=0.025)
    return pd, obs


def learned(rows: list[dict], world: str, pid: str) -> Claim:
    """0h / 0i: the world's build acceptance — its model predicts the chain's values teacher-forced (the world's
    `chain_accuracy`, recorded once per world) with argmax accuracy >= CHAIN_ACCURACY_MIN."""
    acc = per_seed(rows, "world", "tf_chain_accuracy", world).get(0, float("nan"))
    return Claim(
        pid,
        f"{world} world: the SFT'd model has learned the chain's arithmetic — teacher-forced chain-value argmax "
        f"accuracy >= {CHAIN_ACCURACY_MIN}",
        {"tf_chain_accuracy": acc},
        acc >= CHAIN_ACCURACY_MIN,
        kind="premise",
    )


def signal_premises(rows: list[dict], main: str, control: str | None) -> list[Claim]:
    """0e, 0f: the base model's (c, v) AUCs for the coming decision in the main world (mean over seeds >= AUC_MIN);
    0g: the same AUCs at chance in the control world (means within 0.5 ± CHANCE_BAND)."""

    def obs(world: str) -> dict[str, float]:
        out = {}
        for metric in AUCS:
            vals = per_seed(rows, "base", metric, world)
            ci = paired_diff(vals, dict.fromkeys(vals, 0.0))
            out |= {
                metric: ci.mean,
                f"{metric}_low": ci.low,
                f"{metric}_high": ci.high,
                f"{metric}_min": min(vals.values()),
            }
        return out

    o = obs(main)
    claims = [
        Claim(
            pid,
            f"{main} world: the base model's step confidence announces {AUCS[metric]} — cross-fitted AUC of (c, v), "
            f"mean over seeds >= {AUC_MIN}",
            {k: v for k, v in o.items() if k.startswith(metric)},
            o[metric] >= AUC_MIN,
            kind="premise",
        )
        for pid, metric in ((P_LOOPS, "auc_redundant"), (P_END, "auc_premature_end"))
    ]
    if control:
        oc = obs(control)
        claims.append(
            Claim(
                P_CONTROL_OFF,
                f"{control} world: the premise is switched off — both AUCs (the loop goes on; a premature END) are "
                f"chance, mean over seeds within 0.5 ± {CHANCE_BAND}",
                oc,
                all(abs(oc[m] - 0.5) <= CHANCE_BAND for m in AUCS),
                kind="premise",
            )
        )
    return claims


def premises(rows: list[dict], cfg: Config, world: str, suffix: str, tag: str) -> list[Claim]:
    """0b and 0c for one readout (`suffix` picks its static baseline)."""
    static = "static" + suffix
    g = lambda method, metric: per_seed(rows, method, metric, world)  # noqa: E731
    pd_b, obs_b = paired("loop_len_base_minus_static", g("base", "loop_len"), g(static, "loop_len"))
    pd_c, obs_c = paired(
        "underthink_hard_static_minus_base", g(static, "underthink_hard"), g("base", "underthink_hard")
    )
    return [
        Claim(
            "0b-premise-prune-direction" + suffix,
            f"{world} world{tag}: steering against S prunes loops — static steering (λ = {cfg.static_lambda}) "
            "shortens the redundant loops: the paired 95% CI of base − static loop length lies above 0",
            obs_b,
            pd_b.low > 0,
            kind="premise",
        ),
        Claim(
            "0c-premise-tradeoff" + suffix,
            f"{world} world{tag}: the same −S costs premature answers — static steering raises the hard-problem "
            "under-thinking rate: the paired 95% CI of static − base lies above 0 (a constant λ cannot cure both "
            "failure modes, which is why λ must be dynamic)",
            obs_c,
            pd_c.low > 0,
            kind="premise",
        ),
    ]


def paper_claims(rows: list[dict], cfg: Config, world: str, suffix: str, tag: str) -> list[Claim]:
    """Claims 1–3 in one world; `suffix` picks a readout variant's methods and premises."""
    g = lambda method, metric: per_seed(  # noqa: E731
        rows, method if method == "base" else method + suffix, metric, world
    )
    m = lambda method, metric: float(np.mean(list(g(method, metric).values())))  # noqa: E731
    pre_b, pre_c = "0b-premise-prune-direction" + suffix, "0c-premise-tradeoff" + suffix

    # 1. redundant tokens cut by >= 30% (mean of per-seed cuts) and the cut's CI above 0; accuracy non-inferior
    red_b, red_r = g("base", "redundant_tokens"), g("rebalance", "redundant_tokens")
    cuts = {s: 1 - red_r[s] / red_b[s] if red_b[s] > 0 else math.nan for s in red_b}
    pd_cut, obs_cut = paired("cut", cuts, dict.fromkeys(cuts, 0.0))
    pd_acc1, obs_acc1 = paired("acc_rebalance_minus_base", g("rebalance", "accuracy"), g("base", "accuracy"))
    c1 = Claim(
        "1-prunes-redundancy-no-loss" + suffix,
        f"{world} world{tag}: ReBalance removes >= {REDUNDANT_CUT:.0%} of the base model's redundant (post-answer) "
        f"thinking tokens (mean per-seed cut >= {REDUNDANT_CUT}, its 95% CI above 0) with no accuracy loss (paired "
        f"accuracy difference's 95% CI above −{ACC_TOL})",
        {**obs_cut, **obs_acc1, "len_base": m("base", "think_len"), "len_rebalance": m("rebalance", "think_len")},
        pd_cut.mean >= REDUNDANT_CUT and pd_cut.low > 0 and pd_acc1.low >= -ACC_TOL,
        requires=(P_LEARNED, P_HEADROOM, P_LOOPS, pre_b),
    )

    # 2. accuracy non-inferior to static (CI above −1 point, mean >= 0) at <= 1.1x its length (mean per-seed ratio)
    pd_acc2, obs_acc2 = paired("acc_rebalance_minus_static", g("rebalance", "accuracy"), g("static", "accuracy"))
    len_r, len_s = g("rebalance", "think_len"), g("static", "think_len")
    ratio = float(np.mean([len_r[s] / len_s[s] for s in len_r]))
    c2 = Claim(
        "2-dynamic-beats-static" + suffix,
        f"{world} world{tag}: ReBalance accuracy >= static steering's (λ = {cfg.static_lambda}): paired difference "
        f">= 0 with its 95% CI above −{ACC_TOL}, at <= {SIMILAR_LEN}× static's thinking length (mean per-seed ratio)",
        {**obs_acc2, "len_ratio_rebalance_over_static": ratio},
        pd_acc2.mean >= 0 and pd_acc2.low >= -ACC_TOL and ratio <= SIMILAR_LEN,
        requires=(P_LEARNED, P_HEADROOM, P_LOOPS, P_END, pre_b, pre_c),
    )

    # 3. each ablation loses its side: w_high lowers hard under-thinking, w_low shortens loops (paired CIs above 0),
    #    and ReBalance is not worse than base on either (paired means)
    pd_u, obs_u = paired("underthink_hard_no_w_high_minus_rebalance", g("no_w_high", "underthink_hard"),
                         g("rebalance", "underthink_hard"))  # fmt: skip
    pd_l, obs_l = paired("loop_len_no_w_low_minus_rebalance", g("no_w_low", "loop_len"), g("rebalance", "loop_len"))
    pd_ub, obs_ub = paired("underthink_hard_base_minus_rebalance", g("base", "underthink_hard"),
                           g("rebalance", "underthink_hard"))  # fmt: skip
    pd_lb, obs_lb = paired("loop_len_base_minus_rebalance", g("base", "loop_len"), g("rebalance", "loop_len"))
    c3 = Claim(
        "3-both-branches-matter" + suffix,
        f"{world} world{tag}: without w_high the hard-problem under-thinking rate is higher, without w_low the "
        "redundant loops are longer (paired 95% CIs above 0); ReBalance's under-thinking and loop length are <= "
        "base's (paired means >= 0)",
        {
            **obs_u,
            **obs_l,
            "underthink_hard_base_minus_rebalance": pd_ub.mean,
            "loop_len_base_minus_rebalance": pd_lb.mean,
        },  # fmt: skip
        pd_u.low > 0 and pd_l.low > 0 and pd_ub.mean >= 0 and pd_lb.mean >= 0,
        requires=(P_LEARNED, P_HEADROOM, P_LOOPS, P_END, pre_b, pre_c),
    )
    return [c1, c2, c3]


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    """Premises, claims 1–3 and the control-world check for the first readout (official: the token after the
    separator); the same for every other readout with ids suffixed `@<readout>` (the deviation variant)."""
    main = next((w for w in MAIN_WORLDS if w in cfg.worlds), cfg.worlds[0])
    control = next((w for w in CONTROL_WORLDS if w in cfg.worlds), None)
    g = lambda method, metric: per_seed(rows, method, metric, main)  # noqa: E731
    red, think, under = g("base", "redundant_tokens"), g("base", "think_len"), g("base", "underthink_hard")
    red_share = min(red[s] / think[s] for s in red)
    claims = [learned(rows, main, P_LEARNED)]
    claims += [learned(rows, control, P_CONTROL_LEARNED)] if control else []
    claims += [
        Claim(
            P_HEADROOM,
            f"{main} world: the base model over-thinks and under-thinks — on every seed, redundant post-answer tokens "
            f"are >= {HEADROOM:.0%} of its thinking tokens and >= {HEADROOM:.0%} of hard problems are answered "
            "prematurely",
            {
                "min_redundant_share": red_share,
                "min_underthink_hard": min(under.values()),
                "redundant_tokens_base": float(np.mean(list(red.values()))),
                "underthink_hard_base": float(np.mean(list(under.values()))),
            },  # fmt: skip
            red_share >= HEADROOM and min(under.values()) >= HEADROOM,
            kind="premise",
        )
    ]
    if control:
        n_neg = {r["seed"]: r["value"] for r in select(rows, method="calibration", metric="n_neg", world=control)}
        claims.append(
            Claim(
                P_CONTROL_CAL,
                f"control world: the calibration is usable — >= {N_NEG_MIN} confident non-reflective (negative) "
                "steps on every seed, so static steering along S is a fair baseline there",
                {"n_neg_min": min(n_neg.values()), "n_neg": n_neg},
                min(n_neg.values()) >= N_NEG_MIN,
                kind="premise",
            )
        )
    claims += signal_premises(rows, main, control)
    for i, readout in enumerate(cfg.readouts):
        suffix = "" if i == 0 else f"@{readout}"
        tag = f" [S read at the {readout.replace('_', ' ')}]" if i else ""
        claims += premises(rows, cfg, main, suffix, tag)
        claims += paper_claims(rows, cfg, main, suffix, tag)
        if control:
            c = lambda method, metric, sfx=suffix: per_seed(rows, method + sfx, metric, control)  # noqa: E731
            base4, dyn4, static4 = (
                per_seed(rows, "base", "accuracy", control),
                c("rebalance", "accuracy"),
                c("static", "accuracy"),
            )
            if set(dyn4) == set(base4) == set(static4):
                pd4, obs4 = paired("acc_rebalance_minus_static", dyn4, static4)
                obs4["acc_rebalance_minus_base"] = paired_diff(dyn4, base4).mean
                passed4 = pd4.high < ACC_TOL
            else:  # seeds whose calibration had no steering vector ran the base model only (premise 0d FAILs)
                obs4, passed4 = {"seeds_without_steering_vector": sorted(set(base4) - set(dyn4))}, False
            claims.append(
                Claim(
                    "4-control-no-dynamic-advantage" + suffix,
                    f"control world (confidence carries no information about the coming decision){tag}: ReBalance "
                    f"has no advantage over static steering — the paired accuracy difference's 95% CI lies below "
                    f"+{ACC_TOL}",
                    obs4,
                    passed4,
                    kind="control",
                    requires=(P_CONTROL_LEARNED, P_CONTROL_CAL, P_CONTROL_OFF),
                )
            )
    return claims
