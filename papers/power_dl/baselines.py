"""Baselines the paper compares against. DPO, IPO, SimPO, cDPO and rDPO live in `common/preference_losses.py`;
χPO (not there) is here. `pair_loss` calls any of them, and POWER / POWER-DL, by name."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.functional import logsigmoid

from reprozoo.common.preference_losses import cdpo_loss, dpo_loss, ipo_loss, rdpo_loss, simpo_loss
from reprozoo.papers.power_dl.method import power_loss

METHODS = ("dpo", "ipo", "simpo", "cdpo", "rdpo", "chipo", "power", "power_dl")


@dataclass(frozen=True)
class Hyper:
    """Hyper-parameters of every method (one set for the bandit, one for the tiny LM)."""

    dpo_beta: float = 0.1
    """β of DPO, cDPO and rDPO (Rafailov et al.: 0.1)."""
    eps: float = 0.1
    """Label-smoothing ε of cDPO and assumed flip rate ε of rDPO."""
    ipo_tau: float = 0.1
    """τ of IPO (target margin 1/(2τ))."""
    chipo_beta: float = 0.1
    """β of χPO."""
    simpo_beta: float = 2.0
    """β of SimPO (Meng et al.: 2.0)."""
    simpo_gamma: float = 0.5
    """Target margin γ of SimPO."""
    power_beta: float = 2.0
    """β of POWER / POWER-DL (weighted-entropy coefficient)."""
    power_eta: float = 2.0
    """η of POWER / POWER-DL (weight of the Bradley–Terry fit; the chosen-likelihood term has weight β/η)."""
    dl_gamma: float = 0.1
    """Dynamic-label rate γ of POWER-DL (per visit of a pair)."""


def chipo_loss(
    pol_w: torch.Tensor,
    pol_l: torch.Tensor,
    ref_w: torch.Tensor,
    ref_l: torch.Tensor,
    *,
    beta: float = 0.1,
    clip: float | None = None,
) -> torch.Tensor:
    """χPO (Huang et al. 2024, "Correcting the mythos of KL-regularization"): DPO with the link
    φ(z) = z + log z of the density ratio z = π/π_ref (χ² + KL regularisation):

    L = −log σ(clip_{2R}[β φ(z_w) − β φ(z_l)]),  clip = 2R (None: no clipping).
    The ratio is computed as exp(min(log z, 20)) so that long sequences cannot overflow.
    """

    def phi(pol: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        log_z = pol - ref
        return torch.exp(log_z.clamp_max(20.0)) + log_z

    h = beta * (phi(pol_w, ref_w) - phi(pol_l, ref_l))
    if clip is not None:
        h = h.clamp(-clip, clip)
    return -logsigmoid(h)


def pair_loss(
    method: str,
    pol_w: torch.Tensor,
    pol_l: torch.Tensor,
    ref_w: torch.Tensor,
    ref_l: torch.Tensor,
    len_w: torch.Tensor,
    len_l: torch.Tensor,
    hp: Hyper,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pair loss of `method` with hyper-parameters `hp` ."""
    if method == "dpo":
        return dpo_loss(pol_w, pol_l, ref_w, ref_l, beta=hp.dpo_beta)
    if method == "ipo":
        return ipo_loss(pol_w, pol_l, ref_w, ref_l, tau=hp.ipo_tau)
    if method == "cdpo":
        return cdpo_loss(pol_w, pol_l, ref_w, ref_l, beta=hp.dpo_beta, label_smoothing=hp.eps)
    if method == "rdpo":
        return rdpo_loss(pol_w, pol_l, ref_w, ref_l, beta=hp.dpo_beta, flip_rate=hp.eps)
    if method == "chipo":
        return chipo_loss(pol_w, pol_l, ref_w, ref_l, beta=hp.chipo_beta)
    if method == "simpo":
        return simpo_loss(pol_w, pol_l, len_w, len_l, beta=hp.simpo_beta, gamma=hp.simpo_gamma)
    if method in ("power", "power_dl"):
        return power_loss(pol_w, pol_l, len_w, len_l, beta=hp.power_beta, eta=hp.power_eta, labels=labels)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
