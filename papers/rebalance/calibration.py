"""Calibration of ReBalance on the base model's own decoding: the step confidences' quantiles and labels, the
steering layer by the ridge R² search (per seed, or once on the development seeds), the prototypes and the steering
vector S per readout. `cfg` is an `experiment.Config`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reprozoo.common.results import record
from reprozoo.common.worlds.reasoning import ReasoningWorld, rollout, step_table
from reprozoo.papers.rebalance.method import (
    Control,
    choose_layer,
    label_steps,
    offline_confidence,
    prototypes,
    steering_vector,
    variance_proxy,
)

DEV_SEED = 1000  # development seeds of the layer choice


@dataclass
class Calibration:
    layer: int
    r2: dict[int, float]
    vector: torch.Tensor | None  # None: no positive or no negative step in the first n_vector responses
    control: Control
    n_pos: int
    n_neg: int
    n_lexicon: int
    n_steps: int


def calibrate(world: ReasoningWorld, cfg, seed: int, layers: dict[str, int] | None = None):
    """Decoding of the calibration problems at `calib_temperature` (official `transformer_inference_dp.py`:
    do_sample=False, i.e. 0); offline step confidence c = exp(mean log π(y_t)) over the step's tokens except the
    separator; the vector of step j is the hidden state at its first token, i.e. the token after the previous
    separator, labelled by step j itself (official `expected_offset = 1`; step 0 has no vector), or at that separator
    (`readout="separator"`); layers 0..n (0 = embeddings, n = final post-norm), the layer `layers[readout]` if given,
    else the ridge search's; prototypes from the first `n_vector` responses. One `Calibration` per readout; its
    `vector` is None when those responses hold no positive or no negative step (S = μ_pos − μ_neg is undefined:
    a control world whose flat rates leave no confident plain step, premise 0d; `n_pos` / `n_neg` say which)."""
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
        head_labels = labels[head.numpy()]
        n_pos, n_neg = int((head_labels == 1).sum()), int((head_labels == -1).sum())
        vector = None
        if n_pos and n_neg:
            mu_pos, mu_neg = prototypes(torch.as_tensor(h_by_layer[layer])[head], head_labels)
            vector = steering_vector(mu_pos, mu_neg).float()
        out[readout] = Calibration(
            layer=layer,
            r2=r2,
            vector=vector,
            control=control,
            n_pos=n_pos,
            n_neg=n_neg,
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


def dev_layers(world: ReasoningWorld, name: str, cfg) -> tuple[dict[str, int] | None, list[dict]]:
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
