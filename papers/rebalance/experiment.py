"""The headline experiment on the reasoning world: base vs static steering vs ReBalance (and its two ablations),
in the premise world and in its control (the premise switched off).

Per world: the steering layer is chosen once by the ridge R² search on the calibration sets of development seeds
(`layer_seeds`, seeds 1000..; `layer_seeds=0`: per seed, the official protocol of one run). Per world and seed: a
calibration set (problems of every difficulty) is decoded by the base model at `calib_temperature` (0: greedy, the
official protocol); its steps give the confidence quantiles and the labels, and the steps of its first `n_vector`
responses the prototypes and S (official `--max_files 100`). Then every method answers the same evaluation problems
(same sampling stream) and is scored by the world's exact verifier and trace analysis.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.progress import track
from reprozoo.common.results import record, select
from reprozoo.common.worlds.reasoning import ReasoningWorld, build_world, rollout, step_table, summarise, world_config
from reprozoo.common.worlds.reasoning_demo import premise_aucs
from reprozoo.papers.rebalance.baselines import METHODS, controller_for
from reprozoo.papers.rebalance.method import (
    Control,
    SteeringHook,
    choose_layer,
    label_steps,
    offline_confidence,
    prototypes,
    steering_vector,
    variance_proxy,
)

ROLES = ("mid", "chain_end", "loop")
WORLDS = ("v3.1", "v3.1-control", "v3.2", "v3.2-control", "v3", "v3-control", "premise", "control", "smoke", "v3-smoke")
DEV_SEED = 1000  # development seeds of the layer choice
READOUTS = ("next_token", "separator")  # the decision a step boundary opens (common.worlds.reasoning.Step.boundary)


@dataclass
class Config(RunConfig):
    """ReBalance (Li et al. 2026) on the reasoning world: balanced thinking by confidence-steered hidden states."""

    worlds: list[str] = field(default_factory=lambda: ["v3.1", "v3.1-control"])
    """Reasoning worlds: v3.1 and v3.1-control (world v3.1 with and without ReBalance's premises: v3 with v2's loop
    markers), v3.2 and v3.2-control (v3.1 in which a reflection restarts the streak at one plain step; their control
    has no negative calibration steps), v3 and v3-control (world v3), premise and control (world v2), smoke and
    v3-smoke (seconds-scale)."""
    model: str = "world"
    """"world" (the reasoning world's SFT'd tiny LM) or a Hugging Face name loaded with from_pretrained (full)."""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """Methods compared (base, static, rebalance, no_w_low, no_w_high)."""
    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8])
    """Difficulties evaluated."""
    n_per_k: int = 100
    """Evaluation problems per difficulty and seed."""
    n_calib: int = 400
    """Calibration problems per seed (difficulties drawn uniformly from ks): quantiles, labels, layer search."""
    n_vector: int = 100
    """Prototypes and S from the steps of the first this-many calibration responses (official `--max_files` 100)."""
    calib_temperature: float = 0.7
    """Calibration decoding temperature (top-p `top_p`); 0: greedy, the official protocol, which in a world whose
    loops go on with probability > 0.5 runs every loop to its cap (the control world's degenerate S of v2)."""
    layer_seeds: int = 3
    """The steering layer: argmax of the mean ridge R² over the calibration sets of this many development seeds
    (1000, 1001, …), one layer per world and readout for every evaluation seed; 0: chosen per seed (official)."""
    temperature: float = 0.7
    """Decoding temperature (paper: 0.7)."""
    top_p: float = 0.95
    """Nucleus mass (paper: 0.95)."""
    low_val_1: float = -1.19
    """F1(q25c) (paper, R1-Distill-Qwen-7B: −1.19)."""
    low_val_2: float = -2.34
    """λ under low, unstable confidence (paper, R1-Distill-Qwen-7B: −2.34)."""
    high_val_2: float = 0.1
    """λ under high, stable confidence (paper: 0.1)."""
    static_lambda: float = -1.0
    """Constant λ of the static (SEAL-like) baseline (SEAL's steering strength 1.0, sign for S = μ_pos − μ_neg)."""
    pca_components: int = 64
    """PCA dimensions before the ridge layer search (paper: 64)."""
    ridge_alpha: float = 1.0
    """Ridge penalty of the layer search (paper: 1)."""
    readouts: list[str] = field(default_factory=lambda: ["next_token", "separator"])
    """Where a step's vector is read, labelled by that step: "next_token" (official: the token after the previous
    separator, i.e. the step's first token) or "separator" (deviation: the previous separator itself, where the
    decision is made and λS is added). The first decides claims 1–4; the others run as `<method>@<readout>`."""
    lambda_sweep: list[float] = field(default_factory=lambda: [-0.5, -2.0])
    """Extra constant λ values run on seed 0 (diagnostic: how strong static steering should be; no claim uses it)."""
    n_traces: int = 6
    """λ traces recorded (seed 0, ReBalance) for the figure."""
    batch_size: int = 400
    """Rollout batch size."""
    dataset: str = "HuggingFaceH4/MATH-500"
    """full: evaluation benchmark, hub id[:config] or local save_to_disk folder / parquet / json file (paper: MATH-500,
    AIME 2024/2025, GSM8K, ...; official `--dataset Math_AIME2024`)."""
    calibration_dataset: str = "DigitalLearningGmbH/MATH-lighteval"
    """full: calibration problems, same forms (official: the MATH training set, `Math_Train`); n_calib are used."""
    max_samples: int | None = None
    """full: evaluate at most this many problems of the benchmark (default: all)."""
    max_new_tokens: int = 16000
    """full: generation budget per response (official `--max_generated_tokens 16000`)."""

    def validate(self) -> None:
        super().validate()
        bad = [w for w in self.worlds if w not in WORLDS]
        ensure(self.worlds and not bad, "worlds", f"unknown {bad}; choose from {WORLDS}")
        ensure(self.calib_temperature >= 0 and self.layer_seeds >= 0, "calib_temperature", "must be >= 0")
        check_positive(self, "n_vector")
        bad = [r for r in self.readouts if r not in READOUTS]
        ensure(self.readouts and not bad, "readouts", f"unknown {bad}; choose from {READOUTS}")
        bad = [m for m in self.methods if m not in METHODS]
        ensure(not bad, "methods", f"unknown {bad}; choose from {METHODS}")
        ensure("base" in self.methods, "methods", "must include base (the claims compare against it)")
        check_positive(self, "ks", "n_per_k", "n_calib", "temperature", "pca_components", "ridge_alpha", "batch_size")
        check_positive(self, "max_new_tokens")
        ensure(
            self.max_samples is None or self.max_samples >= 1, "max_samples", f"must be >= 1, got {self.max_samples}"
        )
        check_fraction(self, "top_p", upper_open=False)
        ensure(self.low_val_1 < 0 and self.low_val_2 < 0, "low_val_1", "low_val_1 and low_val_2 must be < 0")
        ensure(self.high_val_2 >= 0, "high_val_2", f"must be >= 0, got {self.high_val_2}")
        for w in self.worlds:
            k_max = world_config(w).k_max
            ensure(max(self.ks) <= k_max, "ks", f"must be <= the {w} world's k_max={k_max}")


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        worlds=["v3-smoke"],
        ks=[1, 4, 8],
        n_per_k=8,
        n_calib=32,
        n_vector=32,
        layer_seeds=1,
        n_traces=2,
        lambda_sweep=[],
    ),
    # seeds (issue 32): the power rule's 40-seed cap does not fit the 15-minute quick budget; 16 seeds at ≈ 47 s per
    # seed for both worlds (dev-seed pilot, README "Issue 32: the pilot and the deciding run")
    "quick": Config(preset="quick", seeds=16),
    # Paper scale: DeepSeek-R1-Distill-Qwen-{1.5B,7B}, Qwen3-14B, QwQ-32B on MATH-500 / AIME / GSM8K / ...;
    # T = 0.7, top-p 0.95 (paper); per-model λ values as in the official code (7B ones are the defaults above).
    # n_calib 500: official `--max_files 500` calibration responses; batch 8: 16k-token responses on one GPU.
    "full": Config(
        preset="full", seeds=3, model="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", n_per_k=500, n_calib=500, batch_size=8
    ),
}


# --------------------------------------------------------------------------- calibration


@dataclass
class Calibration:
    layer: int
    r2: dict[int, float]
    vector: torch.Tensor
    control: Control
    n_pos: int
    n_neg: int
    n_lexicon: int
    n_steps: int


def calibrate(world: ReasoningWorld, cfg: Config, seed: int, layers: dict[str, int] | None = None):
    """Decoding of the calibration problems at `calib_temperature` (official `transformer_inference_dp.py`:
    do_sample=False, i.e. 0); offline step confidence c = exp(mean log π(y_t)) over the step's tokens except the
    separator; the vector of step j is the hidden state at its first token, i.e. the token after the previous
    separator, labelled by step j itself (official `expected_offset = 1`; step 0 has no vector), or at that separator
    (`readout="separator"`); layers 0..n (0 = embeddings, n = final post-norm), the layer `layers[readout]` if given,
    else the ridge search's; prototypes from the first `n_vector` responses. One `Calibration` per readout."""
    v, P = world.v, world.cfg.max_prompt_len
    problems = world.problems(cfg.n_calib, cfg.ks, seed=10_000 + seed)
    ids, mask = world.prompts(problems)
    gen, maxprob = rollout(
        world.model,
        ids,
        mask,
        max_new_tokens=world.cfg.max_new_tokens,
        eos_id=v.eos,
        temperature=cfg.calib_temperature,
        top_p=cfg.top_p,
        generator=torch.Generator().manual_seed(11_000 + seed),
    )
    hs, _, logits = world.states(problems, gen.tokens)
    logp = torch.log_softmax(logits[:, P - 1 : -1].float(), -1).gather(-1, gen.tokens[..., None]).squeeze(-1)
    steps = step_table(problems, gen.tokens, maxprob, v)
    c_off = np.array([float(offline_confidence(logp[s.row, s.start : s.sep])) for s in steps])
    lexicon = np.array([any(int(t) in v.reflection for t in gen.tokens[s.row, s.start : s.sep]) for s in steps])
    first = np.array([s.index > 0 for s in steps])
    rows = np.array([s.row for s in steps])
    same = rows[1:] == rows[:-1]
    var = variance_proxy(c_off[1:], c_off[:-1])[same]
    q25, q75 = np.quantile(c_off, [0.25, 0.75])
    labels = label_steps(c_off[first], lexicon[first], q25, q75)
    qv = np.quantile(var, [0.25, 0.75]) if var.size else np.array([0.0, 1e-6])
    control = Control(
        q25c=float(q25),
        q75c=float(max(q75, q25 + 1e-4)),
        q25v=float(qv[0]),
        q75v=float(max(qv[1], qv[0] + 1e-8)),
        low_val_1=cfg.low_val_1,
        low_val_2=cfg.low_val_2,
        high_val_2=cfg.high_val_2,
    )
    out = {}
    for readout in cfg.readouts:
        rows_at, cols_at = vector_positions(steps, P, readout)
        h_by_layer = {ell: h[rows_at, cols_at].double().numpy() for ell, h in enumerate(hs)}
        layer, r2 = choose_layer(
            h_by_layer, c_off[first], n_components=cfg.pca_components, alpha=cfg.ridge_alpha, seed=seed
        )
        layer = layer if layers is None else layers[readout]
        head = torch.as_tensor(rows[first] < cfg.n_vector)  # steps of the first n_vector responses
        mu_pos, mu_neg = prototypes(torch.as_tensor(h_by_layer[layer])[head], labels[head.numpy()])
        out[readout] = Calibration(
            layer=layer,
            r2=r2,
            vector=steering_vector(mu_pos, mu_neg).float(),
            control=control,
            n_pos=int((labels[head.numpy()] == 1).sum()),
            n_neg=int((labels[head.numpy()] == -1).sum()),
            n_lexicon=int(lexicon.sum()),
            n_steps=len(steps),
        )
    return out


def vector_positions(steps, prompt_len: int, readout: str = "next_token") -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, sequence positions) of the steps' vectors. "next_token": the token right after the previous step's
    separator, i.e. the step's own first token (official `step_positions = i + 1`, `expected_offset = 1`);
    "separator": that separator. Step 0 has none."""
    shift = {"next_token": 0, "separator": -1}[readout]
    at = [(s.row, prompt_len + s.start + shift) for s in steps if s.index > 0]
    return torch.tensor([b for b, _ in at], dtype=torch.long), torch.tensor([t for _, t in at], dtype=torch.long)


# --------------------------------------------------------------------------- steered generation


def steered_rollout(world: ReasoningWorld, problems, method: str, cal: Calibration, cfg: Config, seed: int):
    """Sample every problem under `method`; returns the tokens, the max-probabilities and the controllers."""
    ids, mask = world.prompts(problems)
    gen = torch.Generator().manual_seed(50_000 + seed)  # the same sampling stream for every method
    toks, maxps, ctrls = [], [], []
    for i in range(0, len(problems), cfg.batch_size):
        sl = slice(i, i + cfg.batch_size)
        hook = None if method == "base" else SteeringHook(world.model, cal.layer, cal.vector)
        ctrl = controller_for(
            method,
            hook,
            ids[sl].shape[0],
            sep_id=world.v.sep,
            end_id=world.v.end,
            control=cal.control,
            static_lambda=cfg.static_lambda,
        )
        try:
            g, maxp = rollout(
                world.model,
                ids[sl],
                mask[sl],
                max_new_tokens=world.cfg.max_new_tokens,
                eos_id=world.v.eos,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                generator=gen,
                on_token=ctrl,
            )
        finally:
            if hook is not None:
                hook.remove()
        toks.append(g.tokens)
        maxps.append(maxp)
        ctrls.append(ctrl)
    return torch.cat(toks), torch.cat(maxps), ctrls


def boundary_table(ctrls, batch_size: int) -> dict[tuple[int, int], tuple[float, float, float]]:
    """(row, response index of the SEP) → (c, v, λ) at every step boundary the controllers saw."""
    out = {}
    for i, ctrl in enumerate(ctrls):
        for t, boundary, c, v, lam in ctrl.trace:
            for b in torch.nonzero(boundary).flatten().tolist():
                out[(i * batch_size + b, t)] = (float(c[b]), float(v[b]), float(lam[b]))
    return out


def boundary_stats(world: ReasoningWorld, problems, tokens, maxprob, ctrls, cal: Calibration, cfg: Config):
    """Mean λ per boundary (not per time step), and per boundary role the mean λ and how often w_low / w_high fire
    (gate > 0.5)."""
    table = boundary_table(ctrls, cfg.batch_size)
    by_role: dict[str, list[tuple[float, float, float]]] = {r: [] for r in ROLES}
    for s in step_table(problems, tokens, maxprob, world.v):
        if (s.row, s.sep) in table:
            by_role[s.boundary].append(table[(s.row, s.sep)])
    out = {"mean_lambda": float(np.mean([x[2] for x in table.values()])) if table else 0.0}
    for role, xs in by_role.items():
        if not xs:
            continue
        c, v, lam = (torch.tensor(col, dtype=torch.float64) for col in zip(*xs, strict=True))
        out[f"lambda_{role}"] = float(lam.mean())
        out[f"w_low_fires_{role}"] = float((cal.control.w_low(c, v) > 0.5).double().mean())
        out[f"w_high_fires_{role}"] = float((cal.control.w_high(c, v) > 0.5).double().mean())
    return out


# --------------------------------------------------------------------------- the experiment


def load_world(cfg: Config, name: str) -> ReasoningWorld:
    torch.set_num_threads(1)  # tiny models: a second OpenMP thread only spins on a shared 2-core machine
    return build_world(world_config(name), verbose=True)


def run(cfg: Config) -> list[dict]:
    if cfg.model != "world":  # a Hugging Face reasoning model on math benchmarks (papers/rebalance/full.py)
        from reprozoo.papers.rebalance import full

        return full.run(cfg)
    rows: list[dict] = []
    for name in cfg.worlds:
        world = load_world(cfg, name)
        # build acceptance (premises 0h, 0i): has the SFT'd model learned the chain's arithmetic?
        rows.append(record("world", 0, "tf_chain_accuracy", world.chain_accuracy(), world=name))
        rows += run_world(world, name, cfg)
    return rows


def dev_layers(world: ReasoningWorld, name: str, cfg: Config) -> tuple[dict[str, int] | None, list[dict]]:
    """Per readout, the layer of the largest ridge R² averaged over the development seeds' calibration sets (None
    when `layer_seeds` is 0), and its records (`method="layer_choice"`, seeds 1000..)."""
    if cfg.layer_seeds == 0:
        return None, []
    r2: dict[str, list[dict[int, float]]] = {r: [] for r in cfg.readouts}
    rows = []
    for dev in range(DEV_SEED, DEV_SEED + cfg.layer_seeds):
        for readout, cal in calibrate(world, cfg, dev).items():
            r2[readout].append(cal.r2)
            rows += [
                record("layer_choice", dev, "ridge_r2", x, layer=ell, readout=readout, world=name)
                for ell, x in cal.r2.items()
            ]
    layers = {}
    for readout, per_seed in r2.items():
        mean = {ell: float(np.mean([d[ell] for d in per_seed])) for ell in per_seed[0]}
        layers[readout] = max(mean, key=lambda ell: mean[ell] if np.isfinite(mean[ell]) else -np.inf)
        rows.append(record("layer_choice", DEV_SEED, "layer", layers[readout], readout=readout, world=name))
    return layers, rows


def run_world(world: ReasoningWorld, name: str, cfg: Config) -> list[dict]:
    """The development seeds' layer choice, then every seed of one world; each is a checkpointed unit (--resume)."""
    layers, rows = checkpoint.unit((name, "layer"), partial(dev_layers, world, name, cfg))
    for seed in track(cfg.seed_list(), description=f"ReBalance seeds ({name} world)"):
        rows += checkpoint.unit((name, seed), partial(seed_rows, world, name, cfg, seed, layers))
    return rows


def seed_rows(world: ReasoningWorld, name: str, cfg: Config, seed: int, layers: dict[str, int] | None = None):
    """Calibration, then every method (and the static λ sweep at seed 0) on one seed's evaluation problems."""
    rows: list[dict] = []
    w = {"world": name}
    cals = calibrate(world, cfg, seed, layers)
    for readout, cal in cals.items():
        r = {"readout": readout, **w}
        rows.append(record("calibration", seed, "layer", cal.layer, **r))
        rows += [record("calibration", seed, "ridge_r2", x, layer=ell, **r) for ell, x in cal.r2.items()]
        rows.append(record("calibration", seed, "steer_norm", float(cal.vector.norm()), **r))
    cal = cals[cfg.readouts[0]]
    for q in ("q25c", "q75c", "q25v", "q75v", "g_m"):
        rows.append(record("calibration", seed, q, getattr(cal.control, q), **w))
    for q in ("n_pos", "n_neg", "n_lexicon", "n_steps"):
        rows.append(record("calibration", seed, q, getattr(cal, q), **w))
    problems = [p for k in cfg.ks for p in world.problems(cfg.n_per_k, k, seed=20_000 + 97 * seed + k)]
    for i, (readout, cal) in enumerate(cals.items()):
        suffix = "" if i == 0 else f"@{readout}"
        for method in cfg.methods if i == 0 else [m for m in cfg.methods if m != "base"]:
            tokens, maxprob, ctrls = steered_rollout(world, problems, method, cal, cfg, seed)
            rows += score(method + suffix, seed, problems, tokens, world, w)
            if method == "base":  # ReBalance's premises: does the step confidence announce the coming decision?
                steps = step_table(problems, tokens, maxprob, world.v)
                rows += [record("base", seed, m, x, **w) for m, x in premise_aucs(steps).items()]
            if method != "base":
                stats = boundary_stats(world, problems, tokens, maxprob, ctrls, cal, cfg)
                rows += [record(method + suffix, seed, m, x, **w) for m, x in stats.items()]
            if method == "rebalance" and seed == 0:
                rows += lambda_traces(ctrls[0], problems, cfg, w | {"readout": readout})
        for lam in cfg.lambda_sweep if seed == 0 else []:
            sweep = dataclasses.replace(cfg, static_lambda=lam)
            tokens, _, _ = steered_rollout(world, problems, "static", cal, sweep, seed)
            scored = score("static_sweep" + suffix, seed, problems, tokens, world, w)
            rows += [r | {"lam": lam} for r in scored if "k" not in r]
    return rows


def lambda_traces(ctrl, problems, cfg: Config, w: dict) -> list[dict]:
    """(c, λ) at each step boundary of a few rows of the first batch (one per difficulty), for the figure."""
    picks = [i * cfg.n_per_k for i in range(len(cfg.ks))][: cfg.n_traces]
    picks = [b for b in picks if b < min(len(problems), cfg.batch_size)]
    rows, step = [], dict.fromkeys(picks, 0)
    for _, boundary, c, _v, lam in ctrl.trace:
        for b in picks:
            if bool(boundary[b]):
                kw = {"step": step[b], "traj": b, "k": problems[b].k, **w}
                rows += [record("rebalance", 0, "lambda", float(lam[b]), **kw)]
                rows += [record("rebalance", 0, "confidence", float(c[b]), **kw)]
                step[b] += 1
    return rows


def score(method, seed, problems, tokens, world: ReasoningWorld, w: dict) -> list[dict]:
    """Per-k and overall metrics; easy (k ≤ easy_max) and hard (k ≥ hard_min) groups; the mean redundant-loop length
    (redundant steps per response that has any)."""
    per_k = summarise(problems, tokens, world.v)
    out = []
    for k, st in per_k.items():
        out += [record(method, seed, m, x, k=k, **w) for m, x in st.items() if m != "n"]
    n = {k: st["n"] for k, st in per_k.items()}

    def avg(m, ks):
        ks = [k for k in ks if k in per_k]
        return float(np.average([per_k[k][m] for k in ks], weights=[n[k] for k in ks])) if ks else float("nan")

    wc = world.cfg
    easy = [k for k in per_k if k <= wc.easy_max]
    hard = [k for k in per_k if k >= wc.hard_min]
    for m in ("accuracy", "think_len", "overthink", "underthink", "redundant_steps", "redundant_tokens"):
        out.append(record(method, seed, m, avg(m, per_k), **w))
        out.append(record(method, seed, f"{m}_easy", avg(m, easy), **w))
        out.append(record(method, seed, f"{m}_hard", avg(m, hard), **w))
    loops = avg("overthink", per_k)
    out.append(record(method, seed, "loop_len", avg("redundant_steps", per_k) / loops if loops else 0.0, **w))
    return out


# --------------------------------------------------------------------------- figure


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Per world: (a) accuracy vs thinking length per method; (b) thinking length by k; (c) λ traces."""
    import matplotlib.pyplot as plt

    from reprozoo.common.results import mean_ci95, values

    methods = sorted({r["method"] for r in select(rows, metric="accuracy")} - {"static_sweep"})
    methods = [m for m in methods if not m.startswith("static_sweep")]
    fig, ax = plt.subplots(len(cfg.worlds), 3, figsize=(15, 4 * len(cfg.worlds)), squeeze=False)
    for row, name in zip(ax, cfg.worlds, strict=True):
        for m in methods:
            acc, acc_ci = mean_ci95(overall(rows, m, "accuracy", name))
            ln, ln_ci = mean_ci95(overall(rows, m, "think_len", name))
            row[0].errorbar(ln, acc, xerr=ln_ci, yerr=acc_ci, fmt="o", capsize=3, label=m)
            lens = [np.mean(values(rows, method=m, metric="think_len", k=k, world=name)) for k in cfg.ks]
            row[1].plot(cfg.ks, lens, "o-", ms=3, label=m)
        for lam in cfg.lambda_sweep:
            acc = overall(select(rows, lam=lam), "static_sweep", "accuracy", name)
            ln = overall(select(rows, lam=lam), "static_sweep", "think_len", name)
            if acc.size:
                row[0].plot(ln.mean(), acc.mean(), "x", color="grey")
                row[0].annotate(f"static λ={lam:g}", (ln.mean(), acc.mean()), fontsize=7, color="grey")
        row[1].plot(cfg.ks, [3 * (k + 1) for k in cfg.ks], "k:", label="oracle (concise)")
        first = cfg.readouts[0]
        for tr in sorted({r["traj"] for r in select(rows, metric="lambda", world=name, readout=first)}):
            pts = sorted(select(rows, metric="lambda", traj=tr, world=name, readout=first), key=lambda r: r["step"])
            row[2].plot([r["step"] for r in pts], [r["value"] for r in pts], "o-", ms=3, label=f"k={pts[0]['k']}")
        row[2].axhline(0, color="grey", lw=0.8)
        row[0].set(xlabel="mean thinking tokens", ylabel="accuracy", title=f"{name} world: accuracy vs length")
        row[1].set(xlabel="difficulty k", ylabel="thinking tokens", title="thinking length by difficulty")
        row[2].set(xlabel="step boundary", ylabel="λ", title="ReBalance λ = F(c, v) along trajectories (seed 0)")
        for a in row:
            a.grid(alpha=0.3)
            a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def overall(rows, method, metric, world) -> np.ndarray:
    """Overall (all k) per-seed values of one world: rows with no `k` key."""
    return np.array([r["value"] for r in select(rows, method=method, metric=metric, world=world) if "k" not in r])
