"""TRAAC's headline claims as checks over the records — pre-registration v2 (README "Pre-registration v2").

Kinds (DESIGN.md, "Results and claims"): a `premise` measures a condition of the world the paper relies on, a `claim`
`requires` premises and is UNTESTED when one FAILs (numbers still shown), a `control` states the outcome expected
where the paper's lever is absent and PASSes when it behaves so.

TRAAC's claims are about its mechanism — attentive compression of correct rollouts, calibrated by difficulty. Its
premises, measured in the world (the 2026-12 audit, `shared/audits/2026-12/reasoning.md`, found the first three
absent in world v2):
- 0 attention: END's attention (first-half layers, the official readout) ranks the redundant steps below the
  necessary chain steps (AUC ≥ 0.7) and the uniformity gate opens (U ≤ 0.8) on ≥ 20% of the base model's correct
  rollouts (v1 thresholds, pre-registered before the v1 run);
- 0b compression fires: TRAAC's training compresses rollouts — on every seed at least one rollout per group on average
  (≥ 1/group_size of rollouts), so that GRPO's group advantage can compare compressed with uncompressed answers.
  In v1 no rollout was ever compressed and `traac` was bit-identical to `no_compression`;
- 0c the difficulty buckets are populated: ≥ 10% of TRAAC's training prompts fall in the hard bucket (the audit's
  acceptance threshold; v1: 1%), or difficulty calibration has nothing to calibrate;
- 0d headroom: the base model over-thinks (redundant post-answer tokens ≥ 10% of its thinking) and under-thinks
  (≥ 10% premature answers) on every seed;
- 0e accuracy headroom above the RL baseline: "+1 point over the length penalty" is decidable only if the length
  penalty leaves ≥ 2 points of accuracy on the training difficulties (v1: every RL variant reaches 1.000, so v1 claim
  2 was impossible). It is measured on the comparator itself: it is the world's difficulty for a trained policy.
Issue 32 (world v3, pre-registered in `common/worlds/README_reasoning.md` before v3 was built; `premise.py`):
- 0g the task is learned: teacher-forced answer accuracy at END ≥ 0.8 (A0), read before any attention number
  (every claim that requires 0 or 0f requires 0g);
- 0 is tightened: the gate must open **and** evict ≥ 1 step (A2, target 0.6), under the official scorer input
  (THINK + thinking + END without the question; the project input is recorded as `input="project"`);
- 0f compression evicts what is redundant: ≥ 70% of evicted steps are post-answer loops (A3) and the base model's
  answer regenerated after the compressed thinking is as accurate as after the full one (A4, Δ ≥ −0.05);
- 0h the base model puts ≥ 10% of training prompts in the hard bucket (A5; 0c measures it during TRAAC's training);
- in the control world (v2, `control_world="premise"`, records `method="control-premise"`) the control
  `0-control-v2-attention` expects END to read the loops that restate its answer: AUC ≤ 0.55.

Statistics: per-seed values, paired over seeds (same seed = same world sample, initial policy and evaluation
problems), with two-sided 95% Student-t CIs; a direction is established when the CI excludes 0, a non-inferiority
when the CI's lower bound clears −margin. Each comparison reports `*_mde80`, the smallest effect its seeds detect with
80% power (one-sided paired t at α = 0.025, the CI bound's level). Evaluation metrics are the end-of-training
evaluation (one per seed, 800 problems), so no peak or final smoothing applies.

Thresholds (the paper reports benchmark tables, not margins; all are the project's own unless marked):
- MIN_ACC_GAIN 0.01 (v1): "raises accuracy" means ≥ 1 point (paper: +8.4 vs base, +7.9 vs the length penalty);
- MIN_LENGTH_CUT 0.15 (v1): ≥ 15% less (paper: −36.8% length vs base, −29.4% vs the length penalty: about half);
- EQUAL_LENGTH 1.05 (v1), ABLATION_ACC_LOSS 0.01 and ABLATION_LENGTH_GAIN 1.05 (v1);
- PREMISE_AUC 0.7, PREMISE_GATE 0.2 (v1), HARD_SHARE 0.10 (audit), HEADROOM 0.10 (v2, as ReBalance's).
"""

from __future__ import annotations

import numpy as np

from reprozoo.common.results import Claim, select
from reprozoo.common.stats import PairedDiff, min_detectable_effect, paired_diff
from reprozoo.papers.traac.experiment import Config
from reprozoo.papers.traac.premise import PREMISE_TARGET

MIN_ACC_GAIN = 0.01  # claims 1, 2: "raises accuracy" — at least one point (paper: +8.4 / +7.9 points)
MIN_LENGTH_CUT = 0.15  # claims 1, 2b: at least 15% less than the comparator (paper: −36.8% / −29.4% length)
EQUAL_LENGTH = 1.05  # claim 2: "equal or shorter length" — within 5% of the length-penalty baseline
ABLATION_ACC_LOSS = 0.01  # claim 4: an ablation loses ≥ 1 point of accuracy …
ABLATION_LENGTH_GAIN = 1.05  # … or thinks ≥ 5% longer than TRAAC
PREMISE_AUC = 0.7  # premise 0: END's attention ranks redundant steps below chain steps with AUC ≥ 0.7 …
PREMISE_GATE = 0.2  # … and the uniformity gate opens and evicts on ≥ 20% of the base model's correct rollouts
CONTROL_AUC = 0.55  # control world v2: END reads the loops (AUC ≤ 0.55)
TF_ACCURACY = 0.8  # premise 0g: the answer is learned (teacher-forced accuracy at END)
LOOP_SHARE = 0.7  # premise 0f: ≥ 70% of evicted steps are loops …
COMPRESSION_ACC_LOSS = 0.05  # … and compression costs ≤ 5 points of regenerated-answer accuracy
HARD_SHARE = 0.10  # premise 0c: ≥ 10% of TRAAC's training prompts in the hard bucket
HEADROOM = 0.10  # premise 0d: ≥ 10% redundant thinking tokens and ≥ 10% under-thinking for the base model

P_ATT, P_FIRES, P_BUCKETS, P_HEAD, P_ACC, P_EVICT, P_TASK, P_HARD = (
    "0-premise-attention",
    "0b-premise-compression-fires",
    "0c-premise-hard-bucket",
    "0d-premise-headroom",
    "0e-premise-accuracy-headroom",
    "0f-premise-evicts-loops",
    "0g-premise-task-learned",
    "0h-premise-hard-prompts",
)


DIAGNOSTIC_KEYS = ("layer", "sink", "leak")
"""Settings of `premise.gate_diagnosis`'s records (per layer, a counterfactual sink, an ideal END's leak): diagnoses,
never a claim's input — the counterfactual `gate_evict_rate` rows share the premise's metric name."""


def per_seed(rows: list[dict], method: str, metric: str, **setting) -> dict[int, float]:
    """{seed: value} of an evaluation metric (rows without a training step; `k` absent unless given; no diagnostic
    setting). Two rows for one seed are an error: a claim must never read whichever came last."""
    out = {}
    for r in select(rows, method=method, metric=metric, **setting):
        if "step" not in r and ("k" in setting or "k" not in r) and not any(k in r for k in DIAGNOSTIC_KEYS):
            if r["seed"] in out:
                raise ValueError(f"two {method} {metric} rows {setting} for seed {r['seed']}")
            out[r["seed"]] = float("nan") if r["value"] is None else float(r["value"])  # NaN is null in records.jsonl
    return out


def training_mean(rows: list[dict], method: str, metric: str) -> dict[int, float]:
    """{seed: mean over training steps} of a per-step training statistic."""
    by: dict[int, list[float]] = {}
    for r in select(rows, method=method, metric=metric):
        if "step" in r:
            by.setdefault(r["seed"], []).append(float(r["value"]))
    return {s: float(np.mean(v)) for s, v in by.items()}


def paired(prefix: str, a: dict[int, float], b: dict[int, float]) -> tuple[PairedDiff, dict[str, float]]:
    """Paired difference a − b with its 95% CI, SD and the 80%-power minimum detectable effect of its seeds."""
    pd = paired_diff(a, b)
    obs = pd.as_observed(prefix)
    obs[f"{prefix}_sd"] = pd.sd
    obs[f"{prefix}_mde80"] = min_detectable_effect(pd.sd, pd.n, alpha=0.025)
    return pd, obs


def slopes(rows: list[dict], method: str, ks: list[int]) -> dict[int, float]:
    """{seed: least-squares slope of thinking tokens against k over `ks`} (training split)."""
    by_k = {k: per_seed(rows, method, "think_len", split="train", k=k) for k in ks}
    return {s: float(np.polyfit(ks, [by_k[k][s] for k in ks], 1)[0]) for s in by_k[ks[0]]}


def cut(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    """{seed: 1 − a/b}: the relative cut of a against b."""
    return {s: 1 - a[s] / b[s] if b[s] > 0 else float("nan") for s in a}


WORLD_METRICS = ("tf_answer_accuracy", "hard_share")  # premise records without a scorer input


def headroom(rows: list[dict]) -> list[Claim]:
    """Premise 0d: the base model over-thinks and under-thinks on every seed."""
    red_b = per_seed(rows, "base", "redundant_tokens", split="train")
    len_b = per_seed(rows, "base", "think_len", split="train")
    under_b = per_seed(rows, "base", "underthink", split="train")
    share = min(red_b[s] / len_b[s] for s in red_b)
    return [
        Claim(
            P_HEAD,
            f"premise (base model): it over-thinks and under-thinks — on every seed redundant post-answer tokens are "
            f"≥ {HEADROOM:.0%} of its thinking and ≥ {HEADROOM:.0%} of its answers are premature",
            {"min_redundant_share": share, "min_underthink": min(under_b.values())},
            share >= HEADROOM and min(under_b.values()) >= HEADROOM,
            kind="premise",
        )
    ]


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    acc = lambda m: per_seed(rows, m, "accuracy", split="train")  # noqa: E731
    length = lambda m: per_seed(rows, m, "think_len", split="train")  # noqa: E731
    redundant = lambda m: per_seed(rows, m, "redundant_tokens", split="train")  # noqa: E731
    zero = lambda d: dict.fromkeys(d, 0.0)  # noqa: E731

    # ---- premises (official scorer input, first-half readout)
    def premise_mean(metric: str) -> tuple[float, dict[int, float]]:
        by_seed = per_seed(rows, "premise", metric, **({} if metric in WORLD_METRICS else {"input": "official"}))
        vals = [v for v in by_seed.values() if not np.isnan(v)]
        return (float(np.mean(vals)) if vals else float("nan")), by_seed

    tf, tf_s = premise_mean("tf_answer_accuracy")
    auc_m, auc = premise_mean("redundant_auc")
    gate_m, gate = premise_mean("gate_evict_rate")
    loops_m, loops = premise_mean("evicted_loop_share")
    dacc_m, dacc = premise_mean("compression_acc_delta")
    hard_m, hard_s = premise_mean("hard_share")
    claims = [
        Claim(
            P_TASK,
            f"premise (base model): teacher-forced answer accuracy at END ≥ {TF_ACCURACY} on complete process traces "
            "(mean over seeds), read before any attention number",
            {"tf_answer_accuracy": tf, "by_seed": tf_s},
            tf >= TF_ACCURACY,
            kind="premise",
        ),
        Claim(
            P_ATT,
            f"premise (base model, official scorer input): END's attention ranks redundant steps below necessary "
            f"steps (AUC ≥ {PREMISE_AUC}) and the uniformity gate opens and evicts ≥ 1 step (target "
            f"{PREMISE_TARGET}) on ≥ {PREMISE_GATE:.0%} of correct rollouts (means over seeds)",
            {"redundant_auc": auc_m, "gate_evict_rate": gate_m, "redundant_auc_by_seed": auc},
            auc_m >= PREMISE_AUC and gate_m >= PREMISE_GATE,
            kind="premise",
        ),
        Claim(
            P_EVICT,
            f"premise (base model, official scorer input): ≥ {LOOP_SHARE:.0%} of evicted steps are post-answer loops "
            f"and the regenerated answer's accuracy after compression is ≥ that after the full thinking − "
            f"{COMPRESSION_ACC_LOSS} (means over seeds)",
            {"evicted_loop_share": loops_m, "compression_acc_delta": dacc_m, "by_seed": loops, "delta_by_seed": dacc},
            loops_m >= LOOP_SHARE and dacc_m >= -COMPRESSION_ACC_LOSS,
            kind="premise",
        ),
        Claim(
            P_HARD,
            f"premise (base model, 8 rollouts at T = 1): ≥ {HARD_SHARE:.0%} of training prompts in the hard bucket "
            "(mean over seeds)",
            {"hard_share": hard_m, "by_seed": hard_s},
            hard_m >= HARD_SHARE,
            kind="premise",
        ),
    ]
    if cfg.control_world:
        c_auc = per_seed(rows, "control-premise", "redundant_auc", input="official")
        c_gate = per_seed(rows, "control-premise", "gate_evict_rate", input="official")
        c_tf = per_seed(rows, "control-premise", "tf_answer_accuracy")
        c_auc_m = float(np.nanmean(list(c_auc.values()))) if c_auc else float("nan")
        claims.append(
            Claim(
                "0-control-v2-attention",
                f"control ({cfg.control_world} world, v2: END needs only the last step and the loops restate it): "
                f"END's attention does not rank the loops below the chain — AUC ≤ {CONTROL_AUC} (mean over seeds, "
                "official scorer input)",
                {
                    "redundant_auc": c_auc_m,
                    "redundant_auc_by_seed": c_auc,
                    "gate_evict_rate": float(np.nanmean(list(c_gate.values()))) if c_gate else float("nan"),
                    "tf_answer_accuracy": float(np.nanmean(list(c_tf.values()))) if c_tf else float("nan"),
                },
                c_auc_m <= CONTROL_AUC,
                kind="control",
            )
        )
    if "traac" not in cfg.methods:  # the premise presets: the base model only
        return claims + headroom(rows)
    rollouts = cfg.prompts_per_step * cfg.group_size
    fired = {s: v / rollouts for s, v in training_mean(rows, "traac", "compressed").items()}
    claims.append(
        Claim(
            P_FIRES,
            f"premise (TRAAC's training rollouts): on every seed ≥ 1/{cfg.group_size} of the rollouts are compressed "
            "(one per group on average)",
            {"compressed_share_by_seed": fired, "compressed_share_min": min(fired.values(), default=float("nan"))},
            bool(fired) and min(fired.values()) >= 1 / cfg.group_size,
            kind="premise",
        )
    )
    hard = training_mean(rows, "traac", "hard_bucket_share")
    claims.append(
        Claim(
            P_BUCKETS,
            f"premise (TRAAC's training prompts): ≥ {HARD_SHARE:.0%} fall in the hard bucket (pass rate < 0.3) on "
            "every seed, so difficulty calibration has something to calibrate",
            {"hard_bucket_share_by_seed": hard, "hard_bucket_share_min": min(hard.values(), default=float("nan"))},
            bool(hard) and min(hard.values()) >= HARD_SHARE,
            kind="premise",
        )
    )
    red_b, len_b = redundant("base"), length("base")
    claims += headroom(rows)
    if "length_penalty" in cfg.methods:
        lp_acc = acc("length_penalty")
        claims.append(
            Claim(
                P_ACC,
                f"premise (decidability of claim 2): the training difficulties leave ≥ {2 * MIN_ACC_GAIN} accuracy "
                "above the length-penalty baseline on every seed (its accuracy ≤ "
                f"{1 - 2 * MIN_ACC_GAIN}), so a +{MIN_ACC_GAIN} gain is possible",
                {"acc_length_penalty_max": max(lp_acc.values())},
                max(lp_acc.values()) <= 1 - 2 * MIN_ACC_GAIN,
                kind="premise",
            )
        )

    # 1. TRAAC vs base: accuracy +0.01 (CI above 0) and ≥ 15% fewer redundant tokens (mean per-seed cut, CI above 0)
    pd_a, obs_a = paired("acc_traac_minus_base", acc("traac"), acc("base"))
    cut_r = cut(redundant("traac"), red_b)
    pd_c, obs_c = paired("redundant_cut", cut_r, zero(cut_r))
    claims.append(
        Claim(
            "1-more-accurate-less-redundant",
            f"TRAAC vs base: accuracy +{MIN_ACC_GAIN} or more (paired, 95% CI above 0) and ≥ {MIN_LENGTH_CUT:.0%} "
            "fewer redundant (post-answer) thinking tokens (mean per-seed cut, its 95% CI above 0)",
            {**obs_a, **obs_c, "length_cut": float(np.mean(list(cut(length("traac"), len_b).values())))},
            pd_a.mean >= MIN_ACC_GAIN and pd_a.low > 0 and pd_c.mean >= MIN_LENGTH_CUT and pd_c.low > 0,
            requires=(P_TASK, P_ATT, P_EVICT, P_FIRES, P_HEAD),
        )
    )
    # control: correctness-only GRPO (no length reward, no compression) does not cut the redundant tokens
    if "grpo" in cfg.methods:
        cut_g = cut(redundant("grpo"), red_b)
        pd_g, obs_g = paired("redundant_cut", cut_g, zero(cut_g))
        claims.append(
            Claim(
                "1c-control-correctness-only",
                "control: GRPO with the correctness reward only (no length reward, no compression) does not cut "
                f"redundant tokens by {MIN_LENGTH_CUT:.0%} — the 95% CI of its per-seed cut vs base lies below "
                f"{MIN_LENGTH_CUT}",
                obs_g,
                pd_g.high < MIN_LENGTH_CUT,
                kind="control",
                requires=(P_HEAD,),
            )
        )

    if "length_penalty" in cfg.methods:
        # 2. TRAAC vs length penalty: accuracy +0.01 (CI above 0) at ≤ 1.05x its length (mean per-seed ratio)
        pd2, obs2 = paired("acc_traac_minus_length_penalty", acc("traac"), acc("length_penalty"))
        ratio = float(np.mean([length("traac")[s] / length("length_penalty")[s] for s in length("traac")]))
        claims.append(
            Claim(
                "2-beats-length-penalty",
                f"TRAAC vs length-penalty GRPO: accuracy +{MIN_ACC_GAIN} or more (paired, 95% CI above 0) at ≤ "
                f"{EQUAL_LENGTH}× its thinking length (mean per-seed ratio)",
                {**obs2, "length_ratio": ratio},
                pd2.mean >= MIN_ACC_GAIN and pd2.low > 0 and ratio <= EQUAL_LENGTH,
                requires=(P_TASK, P_ATT, P_EVICT, P_FIRES, P_ACC),
            )
        )
        # 2b. the decidable half at a ceiling: no accuracy loss and ≥ 15% shorter than the length penalty
        cut_lp = cut(length("traac"), length("length_penalty"))
        pd2b, obs2b = paired("length_cut", cut_lp, zero(cut_lp))
        claims.append(
            Claim(
                "2b-shorter-than-length-penalty",
                f"TRAAC vs length-penalty GRPO: no accuracy loss (paired difference's 95% CI above −{MIN_ACC_GAIN}) "
                f"and ≥ {MIN_LENGTH_CUT:.0%} shorter thinking (mean per-seed cut, its 95% CI above 0)",
                {**obs2b, "acc_traac_minus_length_penalty": pd2.mean, "acc_low": pd2.low},
                pd2.low >= -MIN_ACC_GAIN and pd2b.mean >= MIN_LENGTH_CUT and pd2b.low > 0,
                requires=(P_TASK, P_ATT, P_EVICT, P_FIRES),
            )
        )

    # 3. adaptivity: TRAAC's per-seed length-vs-k slope exceeds each baseline's (paired CIs above 0)
    baselines = [m for m in ("base", "grpo", "length_penalty") if m in cfg.methods]
    if len(cfg.train_ks) > 1:
        s_t = slopes(rows, "traac", cfg.train_ks)
        obs3: dict[str, float] = {"slope_traac": float(np.mean(list(s_t.values())))}
        ok3 = True
        for m in baselines:
            pd3, o = paired(f"slope_traac_minus_{m}", s_t, slopes(rows, m, cfg.train_ks))
            obs3 |= o
            ok3 = ok3 and pd3.low > 0
        claims.append(
            Claim(
                "3-adaptive-length",
                "TRAAC's thinking length grows with difficulty k more steeply (per-seed OLS slope over the training k) "
                f"than every baseline's ({', '.join(baselines)}): each paired slope difference's 95% CI above 0",
                obs3,
                ok3,
                requires=(P_TASK, P_ATT, P_EVICT, P_FIRES, P_BUCKETS),
            )
        )

    # 4. each ablation loses part of the gain: ≥ 1 point less accurate or ≥ 5% longer, with the paired CI above 0
    for m, cid, req in (
        ("no_compression", "4a-no-compression-loses-gain", (P_TASK, P_ATT, P_EVICT, P_FIRES)),
        ("no_difficulty", "4b-no-difficulty-loses-gain", (P_TASK, P_ATT, P_EVICT, P_FIRES, P_BUCKETS)),
    ):
        if m not in cfg.methods:
            continue
        pd_acc, o_acc = paired(f"acc_traac_minus_{m}", acc("traac"), acc(m))
        longer = {s: length(m)[s] / length("traac")[s] - 1 for s in length("traac")}
        pd_len, o_len = paired(f"length_{m}_over_traac_minus_1", longer, zero(longer))
        claims.append(
            Claim(
                cid,
                f"ablation {m} loses part of TRAAC's gain: accuracy ≥ {ABLATION_ACC_LOSS} lower (paired mean, 95% CI "
                f"above 0) or thinking ≥ {ABLATION_LENGTH_GAIN}× longer (mean per-seed ratio, its CI above 1)",
                {**o_acc, **o_len},
                (pd_acc.mean >= ABLATION_ACC_LOSS and pd_acc.low > 0)
                or (pd_len.mean >= ABLATION_LENGTH_GAIN - 1 and pd_len.low > 0),
                requires=req,
            )
        )
    return claims
