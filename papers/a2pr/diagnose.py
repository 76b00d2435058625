"""Post-hoc diagnosis of A2PR's pendulum-medium collapse (not pre-registered, no verdict; development seeds).

A2PR's BC term is mean(w · ‖π(s) − a*‖²) with w = mask · 1[A_π ≥ 0 ∨ A_a > 0] and a* = ã or a by the advantage
rule (`method.advantage_guided_target`). TD3+BC's is mean(‖π(s) − a‖²): w = 1 everywhere, a* = a. The variants below
switch those pieces one at a time inside A2PR's own update (same critic, value net, VAE, λ and seeds), on one dataset
of one env of the quick preset:

    official mask m          w = m · gate,  a* = rule      (m = 0.5: v1; m = 1.0: the official medium setting)
    no gate, mask 1          w = 1,         a* = rule
    a* = a, mask 1           w = gate,      a* = a
    TD3+BC inside A2PR       w = 1,         a* = a
and TD3+BC itself. Usage: python -m reprozoo.papers.a2pr.diagnose [--env pendulum] [--dataset medium]
[--seeds 5] [--first-seed 2000]; prints the final score per seed and the paired difference to the official
mask-1.0 run.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import jax.numpy as jnp

from reprozoo.common.results import select
from reprozoo.common.stats import paired_diff
from reprozoo.papers.a2pr import data, experiment, method, training

_official = method.advantage_guided_target


def _no_gate(recon_pi, a, q_recon_pi, q_data, v, mask):
    target, w = _official(recon_pi, a, q_recon_pi, q_data, v, mask)
    return target, jnp.full_like(w, mask)


def _data_target(recon_pi, a, q_recon_pi, q_data, v, mask):
    return a, _official(recon_pi, a, q_recon_pi, q_data, v, mask)[1]


def _td3bc_inside(recon_pi, a, q_recon_pi, q_data, v, mask):
    return a, jnp.full(a.shape[:1], mask, a.dtype)


VARIANTS = (  # (label, method, mask, BC-target function)
    ("official mask 0.5 (v1)", "A2PR", 0.5, _official),
    ("official mask 1.0 (v2)", "A2PR", 1.0, _official),
    ("no gate, mask 1.0", "A2PR", 1.0, _no_gate),
    ("a* = a, mask 1.0", "A2PR", 1.0, _data_target),
    ("TD3+BC inside A2PR", "A2PR", 1.0, _td3bc_inside),
    ("TD3+BC", "TD3+BC", None, None),
)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="pendulum")
    ap.add_argument("--dataset", default="medium")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=2000)
    args = ap.parse_args(argv)
    base = experiment.PRESETS["quick"]
    cfg = replace(base, seeds=args.seeds, first_seed=args.first_seed, log=False)
    i = cfg.envs.index(args.env)
    world = data.load(cfg.data_config(i))
    spec, names = data.ENVS[args.env], (args.dataset,)
    stacked = training.stack_datasets(world, names)
    finals = {}
    for label, name, mask, bc_target in VARIANTS:
        t0 = time.perf_counter()
        if bc_target is not None:
            method.advantage_guided_target = bc_target
        try:
            rows = training.train_method(name, cfg, spec, world, stacked, names, mask, label)
        finally:
            method.advantage_guided_target = _official
        finals[label] = {r["seed"]: r["value"] for r in select(rows, metric="score_final")}
        scores = ", ".join(f"{v:.1f}" for v in finals[label].values())
        print(f"{label:24s} {scores}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    ref = finals["official mask 1.0 (v2)"]
    for label, f in finals.items():
        d = paired_diff(f, ref)
        print(f"{label:24s} mean {sum(f.values()) / len(f):6.1f}   − official mask 1.0: {d.mean:+6.1f} ± {d.ci95:.1f}")


if __name__ == "__main__":
    main()
