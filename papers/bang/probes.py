"""What a model reads and what drives its OOD errors (README "Implementation details" 7-8): the feature probes of the
premise checks (digit alone, colours alone, one patch group alone) and the colour-driven-error diagnostics (a patch
group's colour vote, the share of wrong predictions that follow it, the colour-marginal prediction)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reprozoo.common.worlds.digits import (
    BLOCK,
    GROUPS,
    N_CLASSES,
    N_PATCHES,
    MultiColorDigits,
    Split,
    canvas,
    colour_indices,
    load_digits,
    paint,
)
from reprozoo.papers.bang.training import tensors


def feature_probes(world: MultiColorDigits, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """What a model reads: test digits with label-free colours (the digit alone carries the label), and the digit
    blanked with only patch group A (or B) in its label colours, the other group random (one group alone)."""
    blank = world.test(1.0)
    blank.x = blank.x.copy()
    blank.x[:, :, BLOCK : 2 * BLOCK, BLOCK : 2 * BLOCK] = 0.0
    return {
        "digit_only_acc": tensors(world.test(0.0), device),
        "colour_only_acc": tensors(blank, device),
        "colour_A_only_acc": tensors(world.colour_only("A"), device),
        "colour_B_only_acc": tensors(world.colour_only("B"), device),
    }


def recoloured_tests(world: MultiColorDigits, n_marginal: int, seed: int, device: torch.device) -> torch.Tensor:
    """(n_marginal, n_test, 1728): the test digits, each time with fresh label-free colours (sp = 0)."""
    images, labels = load_digits()
    ids = world.digit_ids("test")
    base, y = canvas(images[ids]), labels[ids]
    rng = np.random.default_rng([seed, 50_000])
    xs = [paint(base, colour_indices(y, 0.0, world.maps, N_PATCHES, rng)) for _ in range(n_marginal)]
    return torch.from_numpy(np.stack([x.reshape(len(x), -1) for x in xs])).to(device)


@torch.no_grad()
def colour_marginal_prediction(model: nn.Module, recoloured: torch.Tensor) -> torch.Tensor:
    """argmax_k (1/K) Σ_c softmax(f(x_digit, colours_c))_k over K random recolourings: the model's prediction with
    the colours marginalised out (what it reads from the digit)."""
    return torch.stack([torch.softmax(model(x), -1) for x in recoloured]).mean(0).argmax(-1)


def marginal_fix_share(out: torch.Tensor, marginal: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the wrong predictions (argmax out ≠ y) that the colour-marginal prediction gets right (NaN if there
    is none): errors that colours of any kind cause, label-mapped or mere noise (a diagnostic; the premise uses
    `vote_follow_share`)."""
    wrong = out.argmax(-1) != y
    return float((wrong & (marginal == y)).sum() / wrong.sum()) if bool(wrong.any()) else float("nan")


def group_vote(split: Split, maps: np.ndarray, group: str) -> np.ndarray:
    """(n,) colour vote of one patch group: patch j votes π_j⁻¹(colour); the most voted label (ties → lowest)."""
    patches = GROUPS[group]
    inverse = np.argsort(maps, axis=1)  # inverse[j, c] = the label whose colour on patch j is c
    votes = inverse[patches[None, :], split.colours[:, patches]]
    counts = np.stack([(votes == k).sum(1) for k in range(N_CLASSES)], axis=1)
    return counts.argmax(1)


def group_vote_accuracy(split: Split, maps: np.ndarray, group: str) -> float:
    """Accuracy of a group's colour vote. Below 0.5: the group's colours point to a wrong label on most images."""
    return float(np.mean(group_vote(split, maps, group) == split.y))


def vote_follow_share(out: torch.Tensor, vote: np.ndarray, y: torch.Tensor) -> float:
    """Share of the wrong predictions that equal the (wrong) colour vote of a patch group (NaN if none is wrong):
    errors where the model followed colours pointing to a wrong label. A model blind to the group follows it by
    chance only (≈ P(vote = one given wrong label) < 0.1)."""
    pred = out.argmax(-1).cpu().numpy()
    wrong = pred != y.cpu().numpy()
    return float(np.mean(pred[wrong] == vote[wrong])) if wrong.any() else float("nan")
