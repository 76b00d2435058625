"""Demo of the reasoning world: `python -m reprozoo.common.worlds.reasoning_demo --preset smoke|quick`.

Builds the premise world and its control (`WorldConfig(premise=False)`), samples the SFT'd base model on every
difficulty (T = 0.7, top-p 0.95, as the papers decode) and measures the properties ReBalance and TRAAC rely on,
with thresholds fixed before the worlds were built (claims below):
- premise: step j's confidence (c, v) predicts what follows it: "step j + 1 is redundant too" among post-answer
  loop steps, and "the thinking ends right after step j" among mid-chain steps (cross-fitted logistic regression on
  (c, v), AUC); in the control both are at chance;
- headroom: the concise (oracle) thinking length is ≤ 0.8 of the base model's;
- steering direction (restated by issue 32): the reflection direction S (mean hidden state of reflective minus plain
  steps) read and added at decision separators raises P(reflect) mid-chain and lowers it after the answer with −S;
  its effect on P(END) is recorded, not claimed (the 2026-12 audit: +S raises P(END) too, at either readout);
- the old properties: over-thinking on easy problems, under-thinking on hard ones, a difficulty knob, thinking
  pays, and (for TRAAC) problems the model mostly fails (k > 8 is unseen in SFT).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.config import RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.results import Claim, record, select
from reprozoo.common.worlds.reasoning import (
    ReasoningWorld,
    Step,
    analyse,
    build_world,
    oracle_length,
    prompt_tokens,
    rollout,
    step_table,
    world_config,
)

PAPER = "reasoning_world"
AUC_MIN = 0.7  # premise world: (c, v) predicts the next decision
CHANCE = (0.4, 0.6)  # control world: within 0.5 ± 0.1
HEADROOM = 0.8  # oracle / base thinking length
WORLDS = ("premise", "control", "v3", "v3-control", "v3.1", "v3.1-control", "v3.2", "v3.2-control", "smoke", "v3-smoke")
MAIN_WORLDS = ("v3.2", "v3.1", "v3", "premise")
CONTROL_WORLDS = ("v3.2-control", "v3.1-control", "v3-control", "control")


@dataclass
class DemoConfig(RunConfig):
    """Reasoning world demo: the base model's behaviour and the premises' properties, premise vs control world."""

    worlds: list[str] = field(default_factory=lambda: ["premise", "control"])
    """Worlds measured: premise (v2, WorldConfig()), control (v2, premise=False), v3 and v3-control (world v3),
    v3.1 and v3.1-control (world v3.1, ReBalance's), smoke and v3-smoke (seconds-scale worlds)."""
    ks: list[int] = field(default_factory=lambda: list(range(1, 13)))
    """Difficulties evaluated (k > max(k_train) = 8 are unseen in SFT)."""
    n_per_k: int = 200
    """Problems per difficulty and seed."""
    temperature: float = 0.7
    """Sampling temperature (the ReBalance paper decodes at 0.7)."""
    top_p: float = 0.95
    """Nucleus mass."""
    steer_layer: int = -1
    """Hidden-state index ℓ (0 = embeddings, n = final, post-norm) of the steering-direction probe; −1: n − 1."""
    steer_lambda: float = 1.0
    """|λ| of the steering-direction probe (h ← h ± λ S at decision separators)."""

    def validate(self) -> None:
        super().validate()
        bad = [w for w in self.worlds if w not in WORLDS]
        ensure(self.worlds and not bad, "worlds", f"unknown {bad}; choose from {WORLDS}")
        check_positive(self, "ks", "n_per_k", "temperature", "steer_lambda")
        check_fraction(self, "top_p", upper_open=False)
        for w in self.worlds:
            wc = world_config(w)
            ensure(max(self.ks) <= wc.k_max, "ks", f"must be <= the {w} world's k_max={wc.k_max}")
            ensure(-1 <= self.steer_layer <= wc.n_layers, "steer_layer", f"must lie in [-1, {wc.n_layers}]")


PRESETS = {
    "smoke": DemoConfig(preset="smoke", seeds=1, worlds=["smoke"], ks=[1, 4, 8], n_per_k=16),
    # issue 32: world v3 and its control (`--worlds premise control`: world v2, the earlier quick results)
    "quick": DemoConfig(preset="quick", seeds=3, worlds=["v3", "v3-control"]),
    "full": DemoConfig(preset="full", seeds=5, n_per_k=1000),
}


# --------------------------------------------------------------------------- measurements


def cross_fit_auc(x: np.ndarray, y: np.ndarray, rows: np.ndarray, seed: int = 0) -> float:
    """AUC of a logistic regression on standardised features x, cross-fitted over two halves of the responses
    (`rows`: the response each example comes from); NaN if a half lacks one of the classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    if len(y) < 4:
        return float("nan")
    half = np.random.default_rng(seed).random(rows.max() + 1) < 0.5
    fold = half[rows]
    z = (x - x.mean(0)) / (x.std(0) + 1e-12)
    score = np.zeros(len(y))
    for f in (True, False):
        train, test = fold != f, fold == f
        if len(set(y[train])) < 2 or not test.any():
            return float("nan")
        score[test] = LogisticRegression().fit(z[train], y[train]).decision_function(z[test])
    return float(roc_auc_score(y, score)) if len(set(y)) == 2 else float("nan")


def premise_aucs(steps: list[Step]) -> dict[str, float]:
    """AUC of (c_j, v_j) for "step j + 1 is redundant" among redundant steps j (is the loop going on?) and for
    "the thinking ends right after step j" among mid-chain steps (is the answer premature?)."""
    out = {}
    red = [s for s in steps if s.role == "redundant" and s.next != "none"]
    mid = [s for s in steps if not s.complete and s.next != "none"]
    for name, group, label in (("auc_redundant", red, "redundant"), ("auc_premature_end", mid, "end")):
        x = np.array([[s.c, s.v] for s in group]).reshape(-1, 2)
        y = np.array([s.next == label for s in group], dtype=int)
        out[name] = cross_fit_auc(x, y, np.array([s.row for s in group], dtype=int))
        out[f"{name}_n"] = float(len(group))
    return out


@contextmanager
def steered(model, layer: int, vector: torch.Tensor, lam: torch.Tensor):
    """h_ℓ ← h_ℓ + λ_{b,t} S for one forward pass over full sequences (ℓ = hidden-state index: 0..n−1 = the input
    of decoder layer ℓ, n = the final post-norm state)."""
    layers, body = model.model.layers, model.model

    def add(h):
        return h + lam[..., None].to(h.dtype) * vector.to(h.dtype)

    if layer < len(layers):

        def pre(module, args, kwargs):
            if args:
                return (add(args[0]), *args[1:]), kwargs
            return args, kwargs | {"hidden_states": add(kwargs["hidden_states"])}

        handle = layers[layer].register_forward_pre_hook(pre, with_kwargs=True)
    else:
        handle = body.norm.register_forward_hook(lambda m, i, o: add(o))
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def steering_effect(world, problems, tokens, steps: list[Step], layer: int, lam: float, readout: str = "next_token"):
    """The reflection direction S at hidden-state index `layer` (official alignment, "next_token": the state at the
    first token of a step; "separator": at the separator before it; reflective = the step starts with a reflection
    word, vs plain steps), and the next-token P(reflect) and P(END) at decision separators (mid-chain; after the
    answer) with h ← h + λ S there, for λ ∈ {−lam, 0, +lam}."""
    v, P = world.v, world.cfg.max_prompt_len
    hs, _, _ = world.states(problems, tokens)
    h = hs[layer][:, P:]
    shift = {"next_token": 0, "separator": -1}[readout]
    starts = [(s.row, s.start) for s in steps if s.index > 0]
    refl = torch.tensor([int(tokens[b, t]) in v.reflection for b, t in starts])
    hb = torch.stack([h[b, t + shift] for b, t in starts])
    S = hb[refl].mean(0) - hb[~refl].mean(0)
    where = {
        "mid": [s for s in steps if not s.complete and s.next != "none"],
        "post": [s for s in steps if s.complete and s.next != "none"],
    }
    out = {"norm_S": float(S.norm()), "norm_h": float(hb.norm(dim=-1).mean())}
    for sign in (-1.0, 0.0, 1.0):
        grid = torch.zeros(tokens.shape[0], P + tokens.shape[1])
        for group in where.values():
            for s in group:
                grid[s.row, P + s.sep] = sign * lam
        with steered(world.model, layer, S, grid):
            _, _, logits = world.states(problems, tokens)
        probs = torch.softmax(logits[:, P:].float(), -1)
        for name, group in where.items():
            if group:
                pr = torch.stack([probs[s.row, s.sep] for s in group])
                out[f"p_reflect_{name}[{sign:+g}]"] = float(pr[:, list(v.reflection)].sum(-1).mean())
                out[f"p_end_{name}[{sign:+g}]"] = float(pr[:, v.end].mean())
    return out


def demo_run(cfg: DemoConfig) -> list[dict]:
    rows: list[dict] = []
    for name in cfg.worlds:
        world = build_world(world_config(name), verbose=True)
        wc = world.cfg
        rows += [record(name, 0, "sft_loss", x, step=i) for i, x in enumerate(world.sft_losses) if i % 20 == 0]
        rows.append(record(name, 0, "tf_chain_accuracy", world.chain_accuracy()))  # build acceptance
        layer = wc.n_layers - 1 if cfg.steer_layer < 0 else cfg.steer_layer
        for seed in cfg.seed_list():  # each world × seed is a checkpointed unit (--resume)
            rows += checkpoint.unit((name, seed), partial(seed_rows, world, name, cfg, seed, layer))
    return rows


def seed_rows(world: ReasoningWorld, name: str, cfg: DemoConfig, seed: int, layer: int) -> list[dict]:
    """One world × seed: difficulty statistics, the premise AUCs and the steering effect."""
    wc = world.cfg
    rows: list[dict] = []
    problems = [p for k in cfg.ks for p in world.problems(cfg.n_per_k, k, seed=1000 + 31 * seed + k)]
    ids, mask = world.prompts(problems)
    g, maxprob = rollout(
        world.model,
        ids,
        mask,
        max_new_tokens=wc.max_new_tokens,
        eos_id=world.v.eos,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        generator=torch.Generator().manual_seed(seed),
    )
    for k, stats in world.evaluate(problems, g.tokens).items():
        rows += [record(name, seed, m, x, k=k) for m, x in stats.items() if m != "n"]
    seen = [i for i, p in enumerate(problems) if p.k in wc.k_train]
    seen_p = [problems[i] for i in seen]
    base = float(np.mean([analyse(problems[i], g.tokens[i].tolist(), world.v).think_len for i in seen]))
    rows.append(record(name, seed, "oracle_over_base", oracle_length(seen_p) / base))
    steps = step_table(seen_p, g.tokens[seen], maxprob[seen], world.v)
    rows += [record(name, seed, m, x) for m, x in premise_aucs(steps).items()]
    for readout in ("next_token", "separator"):
        effect = steering_effect(world, seen_p, g.tokens[seen], steps, layer, cfg.steer_lambda, readout)
        rows += [record(name, seed, m, x, layer=layer, readout=readout) for m, x in effect.items()]
    if seed == 0:
        for p, r in list(zip(problems, g.tokens, strict=True))[:: cfg.n_per_k][:6]:
            prompt = world.v.decode(prompt_tokens(p, world.v, wc.k_max))
            print(f"  [{name}] k={p.k}: {prompt} → {world.v.decode(r)}")
    return rows


# --------------------------------------------------------------------------- claims


def _mean(rows, world, metric, ks=None) -> float:
    vals = [r["value"] for r in select(rows, method=world, metric=metric) if ks is None or r.get("k") in ks]
    return float(np.mean(vals)) if vals else float("nan")


def _steer(rows, world, kind, where, sign) -> float:
    """The separator readout's probe (where ReBalance adds λS; the official next-token readout is recorded beside
    it, no claim: it reverses the direction, audit 2026-12)."""
    vals = [r["value"] for r in select(rows, method=world, metric=f"p_{kind}_{where}[{sign:+g}]", readout="separator")]
    return float(np.mean(vals)) if vals else float("nan")


def demo_claims(rows: list[dict], cfg: DemoConfig) -> list[Claim]:
    worlds = list(cfg.worlds)
    main = next((w for w in MAIN_WORLDS if w in worlds), worlds[0])
    ctrl = next((w for w in CONTROL_WORLDS if w in worlds), None)
    claims = []
    for metric, cid, what in (
        ("auc_redundant", "1-loops-follow-low-confidence", "step j + 1 is redundant, among redundant steps j"),
        ("auc_premature_end", "2-premature-end-follows-streak", "the thinking ends after step j, mid-chain"),
    ):
        a = _mean(rows, main, metric)
        obs = {main: a}
        ok = a >= AUC_MIN
        if ctrl:
            obs[ctrl] = _mean(rows, ctrl, metric)
            ok = ok and CHANCE[0] <= obs[ctrl] <= CHANCE[1]
        claims.append(
            Claim(
                cid,
                f"AUC of step j's (c, v) for '{what}' is >= {AUC_MIN} in the premise world"
                + (f" and within {CHANCE} in the control world" if ctrl else ""),
                obs,
                ok,
            )
        )
    head = {w: _mean(rows, w, "oracle_over_base") for w in worlds}
    claims.append(
        Claim(
            "3-overthinking-is-costly",
            f"concise (oracle) thinking length / base thinking length (seen k) <= {HEADROOM} in the premise world",
            head,
            head[main] <= HEADROOM,
        )
    )
    eff = {
        w: {
            "p_reflect[-S,0,+S]": [_steer(rows, w, "reflect", "mid", s) for s in (-1, 0, 1)],
            "p_end_mid[0,+S]": [_steer(rows, w, "end", "mid", s) for s in (0, 1)],
            "p_reflect_post[-S,0]": [_steer(rows, w, "reflect", "post", s) for s in (-1, 0)],
        }
        for w in worlds
    }
    e = eff[main]
    claims.append(
        Claim(
            "4-S-is-a-reflection-direction",
            "premise world, decision separators, S read and added at the separator (restated, issue 32): +S raises "
            "P(reflect) mid-chain and −S lowers it mid-chain and after the answer (P(END) recorded, not claimed)",
            eff,
            e["p_reflect[-S,0,+S]"][2] > e["p_reflect[-S,0,+S]"][1] > e["p_reflect[-S,0,+S]"][0]
            and e["p_reflect_post[-S,0]"][0] < e["p_reflect_post[-S,0]"][1],
        )
    )
    for w in worlds:
        wc = world_config(w)
        seen = [k for k in cfg.ks if k in wc.k_train]
        easy = [k for k in seen if k <= wc.easy_max]
        hard = [k for k in seen if k >= wc.hard_min]
        hardest = seen[-2:]
        o_e, o_h = _mean(rows, w, "overthink", easy), _mean(rows, w, "overthink", hardest)
        u_e, u_h = _mean(rows, w, "underthink", easy), _mean(rows, w, "underthink", hard)
        a1, ak = _mean(rows, w, "accuracy", [min(seen)]), _mean(rows, w, "accuracy", [max(seen)])
        rho = _spearman(seen, [_mean(rows, w, "think_len", [k]) for k in seen])
        acc_all = {k: _mean(rows, w, "accuracy", [k]) for k in cfg.ks}
        acc_easy = _mean(rows, w, "accuracy", easy)
        claims += [
            Claim(
                f"5-{w}-overthinks-easy",
                f"{w}: over-thinking rate (redundant steps after the answer) on easy k ≤ {wc.easy_max} is ≥ 0.2 "
                f"and ≥ 2× that on the hardest seen k ∈ {hardest} (loops also come on medium k, falling with k)",
                {"easy": o_e, "hardest": o_h},
                o_e >= 0.2 and o_e >= 2 * o_h,
            ),
            Claim(
                f"6-{w}-underthinks-hard",
                f"{w}: under-thinking rate (END before the chain is complete) on hard k ≥ {wc.hard_min} is ≥ 0.15 "
                "and ≥ 2× that on easy",
                {"hard": u_h, "easy": u_e},
                u_h >= 0.15 and u_h >= 2 * u_e,
            ),
            Claim(
                f"7-{w}-difficulty-knob",
                f"{w}: acc(k={min(seen)}) − acc(k={max(seen)}) ≥ 0.2; thinking length grows with k (Spearman ρ ≥ 0.8 "
                "over seen k); accuracy on easy ≥ 0.7 (thinking pays)",
                {
                    "acc_easiest": a1,
                    "acc_hardest_seen": ak,
                    "spearman": rho,
                    "acc_easy": acc_easy,
                },
                a1 - ak >= 0.2 and rho >= 0.8 and acc_easy >= 0.7,
            ),
            Claim(
                f"8-{w}-difficulty-buckets",
                f"{w}: TRAAC's three buckets exist: acc(k={min(cfg.ks)}) ≥ 0.8 and some evaluated k has accuracy < 0.3",
                {"acc_by_k": acc_all},
                acc_all[min(cfg.ks)] >= 0.8 and min(acc_all.values()) < 0.3,
            ),
        ]
    return claims


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic) if len(x) > 1 else float("nan")


# --------------------------------------------------------------------------- figure


def demo_figure(rows: list[dict], cfg: DemoConfig, path) -> None:
    """By difficulty k, per world: accuracy, thinking length (with the oracle), over- and under-thinking; SFT loss."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(16, 3.6))
    for w in cfg.worlds:
        for a, metrics in zip(ax[:3], (("accuracy",), ("think_len",), ("overthink", "underthink")), strict=True):
            for m in metrics:
                a.plot(cfg.ks, [_mean(rows, w, m, [k]) for k in cfg.ks], "o-", ms=3, label=f"{w} {m}")
        loss = select(rows, method=w, metric="sft_loss")
        ax[3].plot([r["step"] for r in loss], [r["value"] for r in loss], label=w)
    ax[1].plot(cfg.ks, [3 * (k + 1) for k in cfg.ks], "k:", label="oracle (concise)")
    for a, title in zip(ax, ("accuracy", "thinking tokens", "over- / under-thinking", "SFT loss"), strict=True):
        a.set(xlabel="SFT step" if title == "SFT loss" else "difficulty k", title=title)
        if title != "SFT loss":
            a.axvline(8.5, color="grey", ls=":", lw=1)
        a.legend(fontsize=6)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    from reprozoo.common.cli import main as cli_main

    return cli_main(
        paper=PAPER,
        config_cls=DemoConfig,
        presets=PRESETS,
        run=demo_run,
        claims=demo_claims,
        figure=demo_figure,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
