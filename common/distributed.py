"""Runs on many devices, at the run level only: which process of an `accelerate launch` this is, and JAX seeds
sharded over devices.

The `full` presets scale through their framework (TRL, diffusers + peft: `common/hf_stages.py`, papers/*/full.py),
launched with accelerate's own launcher; the CLI (common/cli.py) asks this module whether it is the process that
writes the run's files. The project's own loops (the synthetic worlds' SFT, reward models, PPO, GRPO, DPO family,
generation) are single-process algorithms: a synthetic preset runs in one process.

    accelerate launch --config_file <trl>/accelerate_configs/zero3.yaml --num_processes 8 \\
        -m reprozoo.papers.par --preset full --workers 1 --seeds 1 --out runs/par/full

The JAX papers (bar_parl, a2pr, subgm) vmap their seeds; `shard_seeds` places that axis across the local devices.
"""

from __future__ import annotations

import os


def _spawned() -> bool:
    """A process that a rank started itself (a worker pool): it computes alone, outside the launch."""
    import multiprocessing

    return multiprocessing.parent_process() is not None


def world_size() -> int:
    """Number of processes accelerate (torchrun) launched; 1 without a launcher (and in a rank's worker pool)."""
    return 1 if _spawned() else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's index among `world_size()` (0 without a launcher)."""
    return 0 if _spawned() else int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True on the process that writes outputs and prints tables (rank 0)."""
    return rank() == 0


def shard_seeds(tree):
    """Place the leading (seed) axis of every array in `tree` across the local JAX devices with `jax.sharding`
    (a vmapped computation then runs its seeds in parallel); unchanged with one device, or when the number of seeds
    is not a multiple of the number of devices."""
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    leaves = jax.tree_util.tree_leaves(tree)
    if len(devices) == 1 or not leaves or any(np.ndim(x) == 0 or np.shape(x)[0] % len(devices) for x in leaves):
        return tree
    mesh = Mesh(np.array(devices), ("seeds",))
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("seeds")))
