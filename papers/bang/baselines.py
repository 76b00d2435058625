"""What the paper compares against: the MultiColorMNIST MLP and its losses, plain fine-tuning, and the
output ensemble of two independently initialised models (the paper's Table 1 set-up)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mlp(d_in: int, hidden: int, n_classes: int) -> nn.Sequential:
    """The official MultiColorMNIST MLP: d_in → hidden → hidden → n_classes with ReLU (64 hidden units there)."""
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
    )


def mse_to_one_hot(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The official MultiColorMNIST loss: mean over batch and classes of (onehot(y) − f(x))², raw outputs."""
    return ((F.one_hot(y, out.shape[-1]).to(out.dtype) - out) ** 2).mean()


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Plain fine-tuning (and pre-training) loss: −(1/B) Σ_b log softmax(z_b)_{y_b}."""
    return F.cross_entropy(out, y)


def ensemble_accuracy(out_1: torch.Tensor, out_2: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of the output ensemble argmax_k (f_1(x) + f_2(x))_k / 2 of two models."""
    return float((((out_1 + out_2) / 2).argmax(-1) == y).float().mean())
