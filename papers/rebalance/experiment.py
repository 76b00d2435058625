"""The headline experiment on the reasoning world: base vs static steering vs ReBalance (and its two ablations).

Per seed: a calibration set (problems of every difficulty) is sampled from the base model; its steps give the
confidence quantiles, the labels, the layer (ridge R²), the prototypes and S. Then every method answers the same
evaluation problems (same sampling seed) and is scored by the world's exact verifier and trace analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.config import RunConfig, check_fraction, check_positive, ensure
from common.progress import track
from common.results import record, select
from common.worlds.reasoning import SMOKE_WORLD, ReasoningWorld, WorldConfig, build_world, rollout, summarise
from papers.rebalance.baselines import METHODS, controller_for
from papers.rebalance.method import (
    Control,
    SteeringHook,
    choose_layer,
    label_steps,
    prototypes,
    steering_vector,
    variance_proxy,
)


@dataclass
class Config(RunConfig):
    """ReBalance (Li et al. 2026) on the reasoning world: balanced thinking by confidence-steered hidden states."""

    world: str = "default"
    """Reasoning world: "default" (WorldConfig()) or "smoke" (a seconds-scale world)."""
    model: str = "world"
    """"world" (the reasoning world's SFT'd tiny LM) or a Hugging Face name loaded with from_pretrained (full)."""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """Methods compared (base, static, rebalance, no_w_low, no_w_high)."""
    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8])
    """Difficulties evaluated."""
    n_per_k: int = 100
    """Evaluation problems per difficulty and seed."""
    n_calib: int = 400
    """Calibration problems per seed (difficulties drawn uniformly from ks)."""
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
    lambda_sweep: list[float] = field(default_factory=lambda: [-3.0, 3.0])
    """Extra constant λ values run on seed 0 (diagnostic: which way S moves thinking length in this world)."""
    n_traces: int = 6
    """λ traces recorded (seed 0, ReBalance) for the figure."""
    batch_size: int = 400
    """Rollout batch size."""

    def validate(self) -> None:
        super().validate()
        ensure(self.world in ("default", "smoke"), "world", f"must be default or smoke, got {self.world!r}")
        bad = [m for m in self.methods if m not in METHODS]
        ensure(not bad, "methods", f"unknown {bad}; choose from {METHODS}")
        ensure("base" in self.methods, "methods", "must include base (the claims compare against it)")
        check_positive(self, "ks", "n_per_k", "n_calib", "temperature", "pca_components", "ridge_alpha", "batch_size")
        check_fraction(self, "top_p", upper_open=False)
        ensure(self.low_val_1 < 0 and self.low_val_2 < 0, "low_val_1", "low_val_1 and low_val_2 must be < 0")
        ensure(self.high_val_2 >= 0, "high_val_2", f"must be >= 0, got {self.high_val_2}")
        wc = self.world_config()
        ensure(max(self.ks) <= wc.k_max, "ks", f"must be <= the world's k_max={wc.k_max}")

    def world_config(self) -> WorldConfig:
        return SMOKE_WORLD if self.world == "smoke" else WorldConfig()


PRESETS = {
    "smoke": Config(
        preset="smoke", seeds=1, world="smoke", ks=[1, 4, 8], n_per_k=8, n_calib=32, n_traces=2, lambda_sweep=[]
    ),
    "quick": Config(preset="quick", seeds=3),
    # Paper scale: DeepSeek-R1-Distill-Qwen-{1.5B,7B}, Qwen3-14B, QwQ-32B on MATH-500 / AIME / GSM8K / ...;
    # T = 0.7, top-p 0.95 (paper); per-model λ values as in the official code (7B ones are the defaults above).
    "full": Config(preset="full", seeds=3, model="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", n_per_k=500, n_calib=500),
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
    q25_conf: float
    q75_conf: float


def decoder_layers(model) -> torch.nn.ModuleList:
    return model.model.layers


def step_table(world: ReasoningWorld, tokens: torch.Tensor, maxprob: torch.Tensor, logp: torch.Tensor):
    """Every thinking step of every response: (row, response index of its SEP, online c, offline c, reflective)."""
    v = world.v
    out = []
    for b in range(tokens.shape[0]):
        r = tokens[b].tolist()
        stop = r.index(v.end) if v.end in r else (r.index(v.eos) if v.eos in r else len(r))
        start = 0
        for t in range(stop):
            if r[t] == v.sep:
                span = slice(start, t + 1)
                refl = any(x in v.reflection for x in r[span])
                out.append((b, t, float(maxprob[b, span].mean()), float(logp[b, span].mean().exp()), refl))
                start = t + 1
    return out


@torch.no_grad()
def layer_outputs(world: ReasoningWorld, problems, tokens: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Teacher-forced outputs of every decoder layer ℓ = 1..n (what the steering hook modifies) and log π(y_t)."""
    outs: list[torch.Tensor] = []
    hooks = [
        layer.register_forward_hook(lambda m, i, o: outs.append(o[0] if isinstance(o, tuple) else o))
        for layer in decoder_layers(world.model)
    ]
    try:
        _, _, logits = world.states(problems, tokens)
    finally:
        for h in hooks:
            h.remove()
    P = world.cfg.max_prompt_len
    logp = torch.log_softmax(logits[:, P - 1 : -1].float(), -1).gather(-1, tokens[..., None]).squeeze(-1)
    return [o[:, P:] for o in outs], logp


def calibrate(world: ReasoningWorld, cfg: Config, seed: int) -> Calibration:
    problems = world.problems(cfg.n_calib, cfg.ks, seed=10_000 + seed)
    ids, mask = world.prompts(problems)
    gen, maxprob = rollout(
        world.model,
        ids,
        mask,
        max_new_tokens=world.cfg.max_new_tokens,
        eos_id=world.v.eos,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        generator=torch.Generator().manual_seed(seed),
    )
    layers, logp = layer_outputs(world, problems, gen.tokens)
    steps = step_table(world, gen.tokens, maxprob, logp)
    rows = np.array([s[0] for s in steps])
    pos = np.array([s[1] for s in steps])
    c_on = np.array([s[2] for s in steps])
    c_off = np.array([s[3] for s in steps])
    refl = np.array([s[4] for s in steps], dtype=bool)
    # variance proxy between consecutive steps of the same response (online confidence)
    same = rows[1:] == rows[:-1]
    v = variance_proxy(c_on[1:], c_on[:-1])[same]
    q25, q75 = np.quantile(c_off, [0.25, 0.75])
    labels = label_steps(c_off, refl, q25, q75)
    h_by_layer = {ell + 1: h[rows, pos].double().numpy() for ell, h in enumerate(layers)}
    layer, r2 = choose_layer(h_by_layer, c_off, n_components=cfg.pca_components, alpha=cfg.ridge_alpha, seed=seed)
    mu_pos, mu_neg = prototypes(torch.as_tensor(h_by_layer[layer]), labels)
    qc = np.quantile(c_on, [0.25, 0.75])
    qv = np.quantile(v, [0.25, 0.75]) if v.size else np.array([0.0, 1e-6])
    control = Control(
        q25c=float(qc[0]),
        q75c=float(max(qc[1], qc[0] + 1e-4)),
        q25v=float(qv[0]),
        q75v=float(max(qv[1], qv[0] + 1e-8)),
        low_val_1=cfg.low_val_1,
        low_val_2=cfg.low_val_2,
        high_val_2=cfg.high_val_2,
    )
    return Calibration(
        layer=layer,
        r2=r2,
        vector=steering_vector(mu_pos, mu_neg).float(),
        control=control,
        n_pos=int((labels == 1).sum()),
        n_neg=int((labels == -1).sum()),
        q25_conf=float(q25),
        q75_conf=float(q75),
    )


# --------------------------------------------------------------------------- steered generation


def steered_rollout(world: ReasoningWorld, problems, method: str, cal: Calibration, cfg: Config, seed: int):
    """Sample every problem under `method`; returns the tokens and the controllers (with their λ traces)."""
    ids, mask = world.prompts(problems)
    gen = torch.Generator().manual_seed(50_000 + seed)  # the same sampling stream for every method
    toks, ctrls = [], []
    for i in range(0, len(problems), cfg.batch_size):
        sl = slice(i, i + cfg.batch_size)
        hook = None if method == "base" else SteeringHook(decoder_layers(world.model)[cal.layer - 1], cal.vector)
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
            g, _ = rollout(
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
        ctrls.append(ctrl)
    return torch.cat(toks), ctrls


def lambda_traces(ctrl, rows: list[int]) -> dict[int, list[tuple[float, float, float]]]:
    """(c, v, λ) at each step boundary of the given rows."""
    out: dict[int, list[tuple[float, float, float]]] = {b: [] for b in rows}
    for _, boundary, c, v, lam in ctrl.trace:
        for b in rows:
            if bool(boundary[b]):
                out[b].append((float(c[b]), float(v[b]), float(lam[b])))
    return out


# --------------------------------------------------------------------------- the experiment


def load_world(cfg: Config) -> ReasoningWorld:
    if cfg.model != "world":
        from common.lm import from_pretrained

        from_pretrained(cfg.model)  # the full preset's model; its benchmarks and step splitting are not wired here
        raise NotImplementedError(
            f"--model {cfg.model}: the paper-scale run needs its math benchmarks and a tokenizer-level step splitter "
            "(blank lines), which are not available offline; use --model world"
        )
    torch.set_num_threads(1)  # tiny models: a second OpenMP thread only spins on a shared 2-core machine
    return build_world(cfg.world_config(), verbose=True)


def run(cfg: Config) -> list[dict]:
    world = load_world(cfg)
    wc = world.cfg
    rows: list[dict] = []
    for seed in track(cfg.seed_list(), description="ReBalance seeds"):
        cal = calibrate(world, cfg, seed)
        rows.append(record("calibration", seed, "layer", cal.layer))
        rows += [record("calibration", seed, "ridge_r2", r, layer=ell) for ell, r in cal.r2.items()]
        for name in ("q25c", "q75c", "q25v", "q75v"):
            rows.append(record("calibration", seed, name, getattr(cal.control, name)))
        rows.append(record("calibration", seed, "n_pos", cal.n_pos))
        rows.append(record("calibration", seed, "n_neg", cal.n_neg))
        rows.append(record("calibration", seed, "steer_norm", float(cal.vector.norm())))
        problems = [p for k in cfg.ks for p in world.problems(cfg.n_per_k, k, seed=20_000 + 97 * seed + k)]
        for method in cfg.methods:
            tokens, ctrls = steered_rollout(world, problems, method, cal, cfg, seed)
            rows += score(method, seed, problems, tokens, world, wc)
            lams = torch.cat([torch.stack([tr[4][tr[1]].mean() for tr in c.trace]) for c in ctrls if c.trace])
            rows.append(record(method, seed, "mean_lambda", float(lams.mean()) if lams.numel() else 0.0))
            if method == "rebalance" and seed == 0:
                picks = [i * cfg.n_per_k for i in range(len(cfg.ks))][: cfg.n_traces]
                traces = lambda_traces(ctrls[0], [b for b in picks if b < tokens.shape[0] and b < cfg.batch_size])
                for b, tr in traces.items():
                    for s, (c, _v, lam) in enumerate(tr):
                        rows.append(record(method, seed, "lambda", lam, step=s, traj=b, k=problems[b].k))
                        rows.append(record(method, seed, "confidence", c, step=s, traj=b, k=problems[b].k))
        for lam in cfg.lambda_sweep if seed == 0 else []:
            tokens, _ = steered_rollout(world, problems, "static", cal, _with(cfg, static_lambda=lam), seed)
            rows += [
                {**r, "lam": lam} for r in score("static_sweep", seed, problems, tokens, world, wc) if "k" not in r
            ]
    return rows


def _with(cfg: Config, **kw) -> Config:
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def score(method, seed, problems, tokens, world, wc: WorldConfig) -> list[dict]:
    """Per-k and overall metrics; easy (k ≤ easy_max) and hard (k ≥ hard_min) groups."""
    per_k = summarise(problems, tokens, world.v)
    out = []
    metrics = ("accuracy", "think_len", "n_steps", "redundant_steps", "overthink", "underthink", "unclosed")
    for k, st in per_k.items():
        out += [record(method, seed, m, st[m], k=k) for m in metrics]
    n = {k: st["n"] for k, st in per_k.items()}

    def avg(m, ks):
        ks = [k for k in ks if k in per_k]
        return float(np.average([per_k[k][m] for k in ks], weights=[n[k] for k in ks])) if ks else float("nan")

    easy = [k for k in per_k if k <= wc.easy_max]
    hard = [k for k in per_k if k >= wc.hard_min]
    for m in ("accuracy", "think_len", "overthink", "underthink", "redundant_steps"):
        out.append(record(method, seed, m, avg(m, per_k)))
        out.append(record(method, seed, f"{m}_easy", avg(m, easy)))
        out.append(record(method, seed, f"{m}_hard", avg(m, hard)))
    return out


# --------------------------------------------------------------------------- figure


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """(a) accuracy vs mean thinking length per method; (b) accuracy by k; (c) thinking length by k; (d) λ traces."""
    import matplotlib.pyplot as plt

    from common.results import mean_ci95, values

    methods = [m for m in cfg.methods if select(rows, method=m, metric="accuracy")]
    fig, ax = plt.subplots(1, 4, figsize=(18, 4))
    for m in methods:
        acc, acc_ci = mean_ci95(_overall(rows, m, "accuracy"))
        ln, ln_ci = mean_ci95(_overall(rows, m, "think_len"))
        ax[0].errorbar(ln, acc, xerr=ln_ci, yerr=acc_ci, fmt="o", capsize=3, label=m)
        for a, metric in ((ax[1], "accuracy"), (ax[2], "think_len")):
            a.plot(cfg.ks, [np.mean(values(rows, method=m, metric=metric, k=k)) for k in cfg.ks], "o-", label=m)
    for lam in cfg.lambda_sweep:
        acc = _overall(select(rows, lam=lam), "static_sweep", "accuracy")
        ln = _overall(select(rows, lam=lam), "static_sweep", "think_len")
        if acc.size:
            ax[0].plot(ln.mean(), acc.mean(), "x", color="grey")
            ax[0].annotate(f"static λ={lam:g}", (ln.mean(), acc.mean()), fontsize=7, color="grey")
    ax[0].set(xlabel="mean thinking tokens", ylabel="accuracy", title="accuracy vs thinking length")
    ax[1].set(xlabel="difficulty k", ylabel="accuracy", title="accuracy by difficulty")
    ax[2].set(xlabel="difficulty k", ylabel="thinking tokens", title="thinking length by difficulty")
    for tr in sorted({r["traj"] for r in select(rows, metric="lambda")}):
        pts = sorted(select(rows, metric="lambda", traj=tr), key=lambda r: r["step"])
        ax[3].plot([r["step"] for r in pts], [r["value"] for r in pts], "o-", ms=3, label=f"k={pts[0]['k']}")
    ax[3].axhline(0, color="grey", lw=0.8)
    ax[3].set(xlabel="step boundary", ylabel="λ", title="ReBalance λ = F(c, v) along trajectories (seed 0)")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _overall(rows, method, metric) -> np.ndarray:
    """Overall (all k) per-seed values: rows with no `k` key."""
    return np.array([r["value"] for r in select(rows, method=method, metric=metric) if "k" not in r])
