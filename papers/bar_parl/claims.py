"""Claims v2 (README "Pre-registration v2"; ../shared/papers/bar_parl.md), as checks over the records.

Kinds: a `premise` measures, in this set-up, the condition the paper's statement relies on; a `claim` is the paper's
statement and `requires` its premises (the CLI makes it UNTESTED when one of them FAILs); a `control` states the
outcome expected when the premise's cause is switched off and PASSes when that outcome is seen.

Every comparison is a paired difference over the same seeds, d_s = a_s − b_s, with a two-sided 95% Student-t CI
(`common.stats.paired_diff`); a one-sided test at α = 0.025 is the same decision as "the CI's bound is past the
threshold", so the power and minimum detectable effect (MDE, 80% power) reported beside each claim use α = 0.025.

Scores are normalised per environment, s(R) = (R − R_0) / (R_ref − R_0), with R_0 the mean first-iteration return
of all runs of that environment (the uniform policy) and R_ref the mean final return of the r_p-only learner
(v1 took the max with BARFI's good-heuristic run; v2 keeps the method under test out of the scale). Final =
mean over the last 10% of the iterations; early = mean over the first `early_fraction` (20%) of the iterations.

No threshold below is a number from the BARFI or PARL papers (their result tables could not be read here; the
abstracts say only that naive addition can "lead to unintended outcomes" and that BARFI "consistently" recovers
high-performing solutions; PARL: "up to 63%" fewer samples). Each is the project's own, with its reason.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from reprozoo.common.results import Claim, select
from reprozoo.common.stats import PairedDiff, min_detectable_effect, paired_diff, power

ALPHA = 0.025  # one-sided level equivalent to the two-sided 95% CI decision
TRAP_GAP = 0.25
"""Project's: "clearly worse" = the naive learner's final score lies more than 0.25 (a quarter of the r_p-only
learner's gain over the uniform policy) below r_p alone's, at the CI's upper end (v1: naive ≤ 0.75 on the mean)."""
RECOVERY_MARGIN = 0.5
"""Project's reading of "recovers most of the return reached with r_p alone": BARFI's final score is above
r_p alone's − 0.5 (more than half of the gain) at the CI's lower end. Replaces v1's 0.90, which was a guess in the
project notes, not the paper's number, and behaved like a "≥ 9 of 10 seeds escape" threshold (audit rl_v2 §1.3)."""
HYPERGRADIENT_EFFECT = 0.5
"""Design effect (for power only, not a threshold) of BARFI over the shrink-only control: half of the r_p-only gain
(project's; the paper has no shrink control). The claim itself passes when the CI's lower end is above 0."""
NONINFERIORITY_MARGIN = 0.05
"""Project's "at least as fast": BARFI's early score is above naive's − 0.05 at the CI's lower end (v1 used the same
0.05 on the means, on the whole-run AUC)."""
PAPER_SAMPLE_SAVING = 0.63
"""PARL abstract: "up to 63%" fewer samples than the baselines; used as the design effect for claim 3's power."""


def per_seed(rows, **match) -> dict[int, float]:
    """{seed: value} of the records matching `match` (one record per seed expected)."""
    out: dict[int, float] = {}
    for r in select(rows, **match):
        if r["seed"] in out:
            raise ValueError(f"two records for seed {r['seed']} and {match}")
        out[r["seed"]] = float(r["value"])
    if not out:
        raise ValueError(f"no records for {match}")
    return out


def _scale(rows, env: str) -> tuple[float, float]:
    r0 = float(np.mean([r["value"] for r in select(rows, env=env, metric="initial_return")]))
    ref = float(np.mean(list(per_seed(rows, method="rp", env=env, heuristic="none", metric="final_return").values())))
    return r0, ref


def _evidence(d: PairedDiff, prefix: str, effect: float | None = None) -> dict[str, float]:
    """The paired difference, its CI, SD, the MDE at 80% power and, given a design effect, the power to detect it."""
    out = {
        **d.as_observed(prefix),
        f"{prefix}_sd": d.sd,
        f"{prefix}_mde80": min_detectable_effect(d.sd, d.n, 0.8, ALPHA),
    }
    if effect is not None:
        out[f"{prefix}_design_effect"] = effect
        out[f"{prefix}_power"] = power(effect, d.sd, d.n, ALPHA)
    return out


def check(rows: list[dict], cfg) -> list[Claim]:
    claims: list[Claim] = []
    for env in cfg.envs:
        r0, ref = _scale(rows, env)

        def s(method, heuristic, metric="final_return", env=env, r0=r0, ref=ref) -> dict[int, float]:
            """Normalised per-seed score (NaN when r_p alone never beat the uniform policy: no scale)."""
            raw = per_seed(rows, method=method, env=env, heuristic=heuristic, metric=metric)
            return {k: (v - r0) / (ref - r0) if ref != r0 else float("nan") for k, v in raw.items()}

        def mean(x: dict[int, float]) -> float:
            return float(np.mean(list(x.values())))

        rp, naive_bad, barfi_bad, shrink_bad = s("rp", "none"), s("naive", "bad"), s("barfi", "bad"), s("shrink", "bad")
        scale = {"R_0": r0, "R_ref": ref}

        # claim 1: the bad heuristic
        trap = paired_diff(naive_bad, rp)
        premise1 = f"1-{env}-premise"
        claims.append(
            Claim(
                id=premise1,
                kind="premise",
                statement=(
                    f"{env}, bad heuristic: naive r_p + r_aux ends clearly worse than r_p alone (final score, paired "
                    f"naive − r_p: the 95% CI's upper end < −{TRAP_GAP}; project's threshold)"
                ),
                observed={**_evidence(trap, "naive_minus_rp"), "naive_bad": mean(naive_bad), "rp": mean(rp), **scale},
                passed=trap.high < -TRAP_GAP,
            )
        )
        potential = paired_diff(s("potential", "bad"), naive_bad)
        claims.append(
            Claim(
                id=f"1-{env}-control",
                kind="control",
                requires=(premise1,),
                statement=(
                    f"{env}, bad heuristic used as a potential (Ng et al.: the optimal policy is preserved) instead of "
                    f"added: the trap disappears (paired potential − naive final score: CI's lower end > {TRAP_GAP})"
                ),
                observed={
                    **_evidence(potential, "potential_minus_naive"),
                    "potential_bad": mean(s("potential", "bad")),
                },
                passed=potential.low > TRAP_GAP,
            )
        )
        recovery = paired_diff(barfi_bad, rp)
        escaped = {m: float(np.mean(np.array(list(s(m, "bad").values())) >= 0.5)) for m in ("barfi", "shrink")}
        claims.append(
            Claim(
                id=f"1-{env}",
                requires=(premise1,),
                statement=(
                    f"{env}, bad heuristic: BARFI (Neumann, official φ lr) recovers most of the return of r_p alone "
                    f"(paired BARFI − r_p final score: CI's lower end > −{RECOVERY_MARGIN}; project's 'most')"
                ),
                observed={
                    **_evidence(recovery, "barfi_minus_rp", RECOVERY_MARGIN),
                    "barfi_bad": mean(barfi_bad),
                    "barfi_fo_bad": mean(s("barfi_fo", "bad")),
                    "barfi_lr_x_bad": mean(s("barfi_lr_x", "bad")),
                    "barfi_rand_bad": mean(s("barfi_rand", "bad")),
                    "shrink_rand_bad": mean(s("shrink_rand", "bad")),
                    "barfi_half_escaped": escaped["barfi"],
                },
                passed=recovery.low > -RECOVERY_MARGIN,
            )
        )
        margin = paired_diff(barfi_bad, shrink_bad)
        sensitivity = paired_diff(s("barfi_lr_x", "bad"), shrink_bad)
        claims.append(
            Claim(
                id=f"1-{env}-hypergradient",
                requires=(premise1,),
                statement=(
                    f"{env}, bad heuristic: BARFI's recovery is the hypergradient's, not the fading of the heuristic "
                    "(paired BARFI − shrink-φ-without-hypergradient control, final score: CI's lower end > 0)"
                ),
                observed={
                    **_evidence(margin, "barfi_minus_shrink", HYPERGRADIENT_EFFECT),
                    "shrink_bad": mean(shrink_bad),
                    "shrink_half_escaped": escaped["shrink"],
                    **{f"lr_x_{k}": v for k, v in sensitivity.as_observed("minus_shrink").items() if k != "n_seeds"},
                },
                passed=margin.low > 0,
            )
        )

        # claim 2: the good heuristic, learning speed = the early score
        naive_good, barfi_good = s("naive", "good", "early_return"), s("barfi", "good", "early_return")
        rp_early = s("rp", "none", "early_return")
        helps = paired_diff(naive_good, rp_early)
        premise2 = f"2-{env}-premise"
        claims.append(
            Claim(
                id=premise2,
                kind="premise",
                statement=(
                    f"{env}, good heuristic: it speeds up the naive learner (paired naive − r_p early score, first "
                    f"{cfg.early_fraction:.0%} of the iterations: CI's lower end > 0)"
                ),
                observed={
                    **_evidence(helps, "naive_minus_rp"),
                    "naive_early": mean(naive_good),
                    "rp_early": mean(rp_early),
                },
                passed=helps.low > 0,
            )
        )
        fast = paired_diff(barfi_good, naive_good)
        claims.append(
            Claim(
                id=f"2-{env}",
                requires=(premise2,),
                statement=(
                    f"{env}, good heuristic: BARFI learns at least as fast as naive r_p + r_aux (paired BARFI − naive "
                    f"early score: CI's lower end > −{NONINFERIORITY_MARGIN}; project's margin)"
                ),
                observed={
                    **_evidence(fast, "barfi_minus_naive", NONINFERIORITY_MARGIN),
                    "barfi_early": mean(barfi_good),
                    "shrink_early": mean(s("shrink", "good", "early_return")),
                    "barfi_fo_early": mean(s("barfi_fo", "good", "early_return")),
                    "barfi_lr_x_early": mean(s("barfi_lr_x", "good", "early_return")),
                    "barfi_final": mean(s("barfi", "good")),
                    "naive_final": mean(s("naive", "good")),
                },
                passed=fast.low > -NONINFERIORITY_MARGIN,
            )
        )

    for reward_model in cfg.parl_reward_models:
        where = {"env": "parl", "reward_model": reward_model}
        aparl = per_seed(rows, method="aparl", metric="episodes_to_target", **where)
        pebble = per_seed(rows, method="pebble", metric="episodes_to_target", **where)
        d = paired_diff(aparl, pebble)
        pebble_mean = float(np.mean(list(pebble.values())))
        target = select(rows, method="aparl", metric="episodes_to_target", **where)[0]["target"]
        claims.append(
            Claim(
                id="3" if reward_model == "tabular" else f"3-{reward_model}",
                statement=(
                    f"{reward_model} reward model: A-PARL (indirect term through the exact damped implicit gradient) "
                    "reaches the target return (80% of the way from the initial to the true-reward learner's final "
                    "return) with fewer environment episodes than the PEBBLE-style alternating learner (paired "
                    "A-PARL − PEBBLE episodes: CI's upper end < 0)"
                ),
                observed={
                    **_evidence(d, "aparl_minus_pebble", PAPER_SAMPLE_SAVING * pebble_mean),
                    "aparl_episodes": float(np.mean(list(aparl.values()))),
                    "pebble_episodes": pebble_mean,
                    "aparl_faster_seeds": int(sum(aparl[k] < pebble[k] for k in aparl)),
                    "aparl_slower_seeds": int(sum(aparl[k] > pebble[k] for k in aparl)),
                    "target": target,
                    "aparl_final": float(
                        np.mean(list(per_seed(rows, method="aparl", metric="final_return", **where).values()))
                    ),
                    "pebble_final": float(
                        np.mean(list(per_seed(rows, method="pebble", metric="final_return", **where).values()))
                    ),
                    "indirect_over_direct": float(
                        np.mean(list(per_seed(rows, method="aparl", metric="indirect_ratio", **where).values()))
                    ),
                },
                passed=d.high < 0,
            )
        )
    if getattr(cfg, "capped", lambda: False)():  # --max-steps: numbers shown, no verdict
        claims = [dataclasses.replace(c, verdict="UNTESTED") for c in claims]
    return claims
