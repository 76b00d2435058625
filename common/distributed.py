"""Runs on many devices: data parallelism (and FSDP) under Hugging Face accelerate; JAX seeds sharded over devices.

Launch any torch LLM paper with accelerate's own launcher; the code reads what it set up (no launcher or process
group code here):

    accelerate launch --multi_gpu --num_processes 8 -m reprozoo.papers.par --preset full           # data parallel
    accelerate launch --use_fsdp --num_processes 8 --fsdp_sharding_strategy FULL_SHARD \\
        --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP -m reprozoo.papers.traac --preset full     # FSDP
    accelerate launch --multi_gpu --num_processes 2 -m reprozoo.papers.power_dl --preset smoke  # 2 CPU processes (gloo)

Data-parallel design (the same numbers as one process, up to the order of float reductions):
- every rank holds the whole data set and the same seeded generators, so every rank draws the same global
  minibatch indices and the same sampling noise; a rank computes only its contiguous block of rows (`bounds`);
- a loss that one process computes as Σ_i l_i / N over the global batch is computed by each rank as
  Σ_{i ∈ rank} l_i / N (`local_share` gives N_rank / N) and the gradients are summed over ranks (`sync_gradients`),
  so the summed gradient is the one-process gradient, and the replicated optimisers stay identical;
- sampled rows and per-row results are gathered back (`gather_rows`), so code after a rollout sees the full batch.
With one process (no launcher) every helper is the identity: one-process runs compute exactly what they did before.
Papers with a `--workers` pool must be launched with `--workers 1` (the CLI refuses more): a pool's processes compute
alone, so with more workers every rank would run every job.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable
from typing import Any


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


def fsdp() -> bool:
    """`accelerate launch --use_fsdp ...` (or an accelerate config with FSDP) asked for fully sharded models, and
    accelerate runs them (it does on GPUs; on CPU processes it falls back to plain data parallelism)."""
    if _spawned() or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() not in ("1", "true"):
        return False
    from accelerate.utils import DistributedType

    return accelerator().distributed_type == DistributedType.FSDP


def mixed_precision() -> str:
    """accelerate's `--mixed_precision` (no | fp16 | bf16); "no" without a launcher."""
    return "no" if _spawned() else os.environ.get("ACCELERATE_MIXED_PRECISION", "no")


def active() -> bool:
    """Whether an accelerate launch asked for anything: several processes, FSDP or mixed precision."""
    return world_size() > 1 or mixed_precision() != "no" or fsdp()


@functools.cache
def accelerator():
    """The process's `accelerate.Accelerator` (gloo on CPU-only machines, NCCL on GPUs), created on first use."""
    import torch
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def device():
    """The device this process computes on: accelerate's under a launch, else CUDA when present, else CPU."""
    from reprozoo.common.device import torch_device

    return accelerator().device if active() else torch_device("auto")


def pretrained_dtype():
    """bf16 on GPUs that support it (Ampere and newer), else None (the checkpoint's own dtype)."""
    import torch

    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None


# --- splitting rows over ranks ---


def _splits(n: int) -> bool:
    """Whether n rows give every rank a non-empty block (blocks of ⌈n / world⌉ rows)."""
    world = world_size()
    return world > 1 and (world - 1) * -(-n // world) < n


def bounds(n: int) -> tuple[int, int]:
    """[start, stop) of this rank's contiguous block of n rows (blocks of ⌈n / world⌉; the last one may be short).
    A batch too small to give every rank a row is not split: every rank takes all of it, and `local_share` then
    gives each rank 1/world of the loss, so the summed gradient is still the one-process gradient."""
    if not _splits(n):
        return 0, n
    per = -(-n // world_size())
    start = rank() * per
    return start, min(start + per, n)


def shard(x):
    """This rank's block of rows of a tensor (dim 0); the tensor itself with one process or too few rows."""
    start, stop = bounds(x.shape[0])
    return x if (start, stop) == (0, x.shape[0]) else x[start:stop]


def shard_slice(rows: slice) -> slice:
    """This rank's block of a contiguous slice of rows (the slice itself with one process)."""
    start, stop = bounds(rows.stop - rows.start)
    return slice(rows.start + start, rows.start + stop)


def local_share(local) -> float:
    """N_rank / N, with N = Σ_ranks N_rank: turns a rank's mean over its own rows (or tokens) into its share of the
    global mean. Exactly 1.0 with one process, so `loss * local_share(n)` leaves a one-process loss bit-identical."""
    if world_size() == 1:
        return 1.0
    import torch

    local = torch.as_tensor(local, dtype=torch.float64).reshape(1)
    return float(local.item() / max(all_sum(local).item(), 1.0))


def all_sum(x):
    """Σ over ranks of a tensor (the tensor itself with one process)."""
    if world_size() == 1:
        return x
    from accelerate.utils import reduce

    return reduce(x.to(accelerator().device), reduction="sum").to(x.device)


def all_true(flag) -> bool:
    """Whether a boolean tensor is all true on every rank (e.g. every row of every shard has finished)."""
    if world_size() == 1:
        return bool(flag.all())
    return all_sum((~flag).sum().float().reshape(1)).item() == 0


def gather_rows(x, n: int):
    """The full n rows of a tensor of which each rank holds its `bounds(n)` block (inverse of `shard`)."""
    if x is None or not _splits(n):
        return x
    import torch
    from accelerate.utils import gather

    per = -(-n // world_size())
    pad = x.new_zeros((per - x.shape[0], *x.shape[1:]))
    blocks = gather(torch.cat([x, pad]).to(accelerator().device)).to(x.device).split(per)
    return torch.cat([b[: min(per, n - r * per)] for r, b in enumerate(blocks)])


def sync_gradients(params: Iterable[Any]) -> None:
    """Sum every parameter's gradient over ranks (each rank back-propagated its share of the global loss).

    Under FSDP the wrapped model reduces its own gradients, so this does nothing there."""
    if world_size() == 1 or fsdp():
        return
    import torch

    params = [p for p in params if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = all_sum(torch.cat([g.reshape(-1) for g in grads]))
    for p, g in zip(params, flat.split([g.numel() for g in grads]), strict=True):
        p.grad = g.view_as(p).to(p.dtype)


def backward(loss) -> None:
    """`loss.backward()`; under FSDP through accelerate, scaled by the world size because FSDP averages gradients
    over ranks where the data-parallel path sums each rank's share."""
    if fsdp():
        accelerator().backward(loss * world_size())
    else:
        loss.backward()


def clip_grad_norm_(params, max_norm: float):
    """`torch.nn.utils.clip_grad_norm_`; under FSDP accelerate's, which takes the norm over the sharded gradients."""
    if fsdp():
        return accelerator().clip_grad_norm_(params, max_norm)
    import torch

    return torch.nn.utils.clip_grad_norm_(params, max_norm)


def prepare(model, optimizer=None):
    """Wrap a model (and its optimizer) for FSDP when accelerate was launched with it; otherwise return them as they
    are (data parallelism keeps plain replicas and sums gradients with `sync_gradients`)."""
    if not fsdp():
        return model if optimizer is None else (model, optimizer)
    if optimizer is None:
        return accelerator().prepare(model)
    return accelerator().prepare(model, optimizer)


def data_parallel_only(what: str) -> None:
    """Stop with a clear message when `what` (a loop that keeps plain replicas) is launched with FSDP."""
    if fsdp():
        raise SystemExit(f"{what} runs data-parallel only (its models fit one device): launch without --use_fsdp")


def autocast():
    """accelerate's autocast context under `--mixed_precision bf16|fp16`; a no-op otherwise."""
    return accelerator().autocast() if mixed_precision() != "no" else contextlib.nullcontext()


# --- JAX: seeds over devices ---


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
