"""DPO-family losses against hand-computed values on tiny inputs, with gradient checks."""

from __future__ import annotations

import math

import pytest
import torch

from reprozoo.common import preference_losses as L


def _inputs():
    f = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return f(-3.0, -5.0), f(-4.0, -4.5), f(-3.5, -5.0), f(-3.5, -4.0)  # π_w, π_l, ref_w, ref_l


def _ls(z):
    return math.log(1 / (1 + math.exp(-z)))


def test_dpo_cdpo_rdpo_ipo_hand_computed():
    pw, pl, rw, rl_ = _inputs()
    h = [(-3.0 + 3.5) - (-4.0 + 3.5), (-5.0 + 5.0) - (-4.5 + 4.0)]  # [1.0, 0.5]
    beta = 0.5
    dpo = [-_ls(beta * x) for x in h]
    assert L.dpo_loss(pw, pl, rw, rl_, beta=beta).tolist() == pytest.approx(dpo)
    eps = 0.2
    cdpo = [-(1 - eps) * _ls(beta * x) - eps * _ls(-beta * x) for x in h]
    assert L.cdpo_loss(pw, pl, rw, rl_, beta=beta, label_smoothing=eps).tolist() == pytest.approx(cdpo)
    rdpo = [((1 - eps) * -_ls(beta * x) - eps * -_ls(-beta * x)) / (1 - 2 * eps) for x in h]
    assert L.rdpo_loss(pw, pl, rw, rl_, beta=beta, flip_rate=eps).tolist() == pytest.approx(rdpo)
    assert L.ipo_loss(pw, pl, rw, rl_, tau=0.25).tolist() == pytest.approx([(x - 2.0) ** 2 for x in h])
    # ε = 0 reduces cDPO and rDPO to DPO
    assert torch.allclose(
        L.cdpo_loss(pw, pl, rw, rl_, beta=beta, label_smoothing=0.0), L.dpo_loss(pw, pl, rw, rl_, beta=beta)
    )
    assert torch.allclose(
        L.rdpo_loss(pw, pl, rw, rl_, beta=beta, flip_rate=0.0), L.dpo_loss(pw, pl, rw, rl_, beta=beta)
    )
    with pytest.raises(ValueError):
        L.rdpo_loss(pw, pl, rw, rl_, flip_rate=0.5)


def test_rdpo_is_unbiased_under_flips():
    """E over a flip of rate ε of the rDPO loss equals the clean DPO loss (Chowdhury et al. 2024, Lemma)."""
    pw, pl, rw, rl_ = _inputs()
    eps, beta = 0.3, 0.7
    clean = L.dpo_loss(pw, pl, rw, rl_, beta=beta)
    expect = (1 - eps) * L.rdpo_loss(pw, pl, rw, rl_, beta=beta, flip_rate=eps) + eps * L.rdpo_loss(
        pl, pw, rl_, rw, beta=beta, flip_rate=eps
    )
    assert torch.allclose(expect, clean)


def test_simpo_hand_computed():
    pw, pl = torch.tensor([-6.0], dtype=torch.float64), torch.tensor([-6.0], dtype=torch.float64)
    lw, ll = torch.tensor([3.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64)
    # β/|y_w| log π_w − β/|y_l| log π_l − γ = 2·(−2) − 2·(−3) − 0.5 = 1.5
    assert L.simpo_loss(pw, pl, lw, ll, beta=2.0, gamma=0.5).item() == pytest.approx(-_ls(1.5))


@pytest.mark.parametrize("name", ["dpo", "cdpo", "rdpo", "ipo", "simpo"])
def test_gradients_match_finite_differences(name):
    g = torch.Generator().manual_seed(0)
    x = [(-3 + torch.randn(3, generator=g, dtype=torch.float64)).requires_grad_() for _ in range(4)]
    fn = {
        "dpo": lambda a, b, c, d: L.dpo_loss(a, b, c, d, beta=0.3),
        "cdpo": lambda a, b, c, d: L.cdpo_loss(a, b, c, d, beta=0.3, label_smoothing=0.1),
        "rdpo": lambda a, b, c, d: L.rdpo_loss(a, b, c, d, beta=0.3, flip_rate=0.2),
        "ipo": lambda a, b, c, d: L.ipo_loss(a, b, c, d, tau=0.5),
        "simpo": lambda a, b, c, d: L.simpo_loss(a, b, 1 + c.abs(), 1 + d.abs(), beta=2.0),
    }[name]
    assert torch.autograd.gradcheck(lambda *a: fn(*a).sum(), tuple(x))


def test_dpo_gradient_direction():
    """DPO raises the chosen log-prob and lowers the rejected one."""
    pw = torch.tensor([-3.0], requires_grad=True)
    pl = torch.tensor([-3.0], requires_grad=True)
    L.dpo_loss(pw, pl, torch.tensor([-3.0]), torch.tensor([-3.0])).sum().backward()
    assert pw.grad.item() < 0 < pl.grad.item()
