"""The training plumbing of the digits experiment: the MLP's mini-batch loop, WiSE-FT's fine-tuning schedule, the
fine-tuning loss of each variant (also the CLIP path's) and the temperature scaling of the pre-trained endpoint."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from reprozoo.common.worlds.digits import N_CLASSES, Split
from reprozoo.papers.bang.baselines import cross_entropy, mlp
from reprozoo.papers.bang.method import bang_loss

D_IN = 3 * 24 * 24


def tensors(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of a split: the flattened images and the labels, on `device`."""
    return torch.from_numpy(split.flat()).to(device), torch.from_numpy(split.y).to(device)


def init_mlp(hidden: int, init_seed: int, device: torch.device) -> nn.Module:
    """The MultiColorMNIST MLP (`baselines.mlp`) on the digits world's images, initialised from `init_seed`."""
    torch.manual_seed(init_seed)
    return mlp(D_IN, hidden, N_CLASSES).to(device)


def cosine_lr(base_lr: float, warmup: int, steps: int) -> Callable[[int], float]:
    """WiSE-FT's schedule (`src/models/utils.py: cosine_lr`): lr = base·(t + 1)/warmup for t < warmup, then
    lr = ½(1 + cos(π (t − warmup)/(steps − warmup)))·base."""

    def lr(t: int) -> float:
        if t < warmup:
            return base_lr * (t + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (t - warmup) / max(steps - warmup, 1))) * base_lr

    return lr


def train(
    models: list[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable,
    iters: int,
    *,
    batch_size: int,
    data_seed: int,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    schedule: Callable[[int], float] | None = None,
    clip: float | None = None,
) -> None:
    """Minimise `loss(model, xb, yb)`; every model sees the same mini-batches (epochs of a seeded permutation);
    `schedule(t)` sets the lr of step t, `clip` the max gradient norm."""
    opts = [optimizer(m) for m in models]
    gen = torch.Generator().manual_seed(data_seed)
    n, bs = len(x), min(batch_size, len(x))
    perm, k = torch.randperm(n, generator=gen), 0
    for t in range(iters):
        if k + bs > n:
            perm, k = torch.randperm(n, generator=gen), 0
        idx = perm[k : k + bs].to(x.device)
        k += bs
        for m, opt in zip(models, opts, strict=True):
            if schedule is not None:
                for group in opt.param_groups:
                    group["lr"] = schedule(t)
            opt.zero_grad()
            loss(m, x[idx], y[idx]).backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(m.parameters(), clip)
            opt.step()


def adam(lr: float) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """The optimiser of (a) and of pre-training: Adam at `lr`."""
    return lambda m: torch.optim.Adam(m.parameters(), lr=lr)


@torch.no_grad()
def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's raw outputs (logits), without gradients."""
    return model(x)


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the rows whose argmax output is the label."""
    return float((out.argmax(-1) == y).float().mean())


def finetune_loss(variant: str, n_classes: int, eps: float, mixup_alpha: float, gen: torch.Generator) -> Callable:
    """The fine-tuning loss of a variant: wise_ft = cross-entropy; +ls / +mixup / bang = `method.bang_loss` with
    label smoothing ε and/or Mixup Beta(a, a)."""
    e = eps if variant in ("wise_ft+ls", "bang") else 0.0
    a = mixup_alpha if variant in ("wise_ft+mixup", "bang") else 0.0
    if variant == "wise_ft":
        return lambda m, x, y: cross_entropy(m(x), y)
    return lambda m, x, y: bang_loss(m, x, y, n_classes=n_classes, eps=e, mixup_alpha=a, generator=gen)


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Temperature scaling (Guo et al. 2017): T = argmin_T −(1/n) Σ_i log softmax(z_i / T)_{y_i} on held-out data
    (a bounded 1-D search over log T ∈ [−4, 4])."""
    from scipy.optimize import minimize_scalar

    z, t = logits.detach().double().cpu(), y.cpu()

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), t))

    return float(math.exp(minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded").x))


def subset(split: Split, idx: np.ndarray) -> Split:
    """The rows `idx` of a split (the pre-training digits and their held-out calibration digits)."""
    return Split(split.x[idx], split.y[idx], split.colours[idx], split.sp)
