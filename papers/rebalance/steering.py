"""Steered generation: every method samples the same evaluation problems (same sampling stream) with its controller
adding λS at the calibrated layer; the controllers' (c, v, λ) at each step boundary, per boundary role, and the λ
traces of the figure. `cfg` is an `experiment.Config`.
"""

from __future__ import annotations

import numpy as np
import torch

from reprozoo.common.results import record
from reprozoo.common.worlds.reasoning import ReasoningWorld, rollout, step_table
from reprozoo.papers.rebalance.baselines import controller_for
from reprozoo.papers.rebalance.calibration import Calibration
from reprozoo.papers.rebalance.method import SteeringHook

ROLES = ("mid", "chain_end", "loop")


def steered_rollout(world: ReasoningWorld, problems, method: str, cal: Calibration, cfg, seed: int):
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


def boundary_stats(world: ReasoningWorld, problems, tokens, maxprob, ctrls, cal: Calibration, cfg):
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


def lambda_traces(ctrl, problems, cfg, w: dict) -> list[dict]:
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
