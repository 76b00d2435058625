"""WiSE-FT, output-space ensembles, BANG and the paper's diagnostics (Lin et al., ICLR 2024), in torch.

- WiSE-FT (Wortsman et al. 2022) interpolates every parameter of a pre-trained and a fine-tuned model;
  the output-space ensemble mixes their outputs with the same weight α.
- BANG (BAlaNced averaGing) fine-tunes with Mixup and label smoothing, so that the fine-tuned model is less
  over-confident out of distribution, then applies WiSE-FT.
- FalseFalseTrue: the share of OOD samples that both endpoints get wrong and the ensemble gets right.
- Over-confidence: the mean max-probability of a model on its wrong OOD predictions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# --- method ---


def wise_ft(
    theta_pre: dict[str, torch.Tensor], theta_ft: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """Weight-space ensemble θ(α) = (1 − α) θ_pre + α θ_ft, parameter by parameter (α = 0: pre-trained)."""
    # BEGIN SOLUTION
    if theta_pre.keys() != theta_ft.keys():
        raise ValueError("the two state dicts must hold the same parameters")
    return {k: (1 - alpha) * theta_pre[k] + alpha * theta_ft[k] for k in theta_pre}
    # END SOLUTION


def output_ensemble(out_pre: torch.Tensor, out_ft: torch.Tensor, alpha: float) -> torch.Tensor:
    """Output-space ensemble f(x; α) = (1 − α) f_pre(x) + α f_ft(x) (on logits, or on raw MSE outputs)."""
    # BEGIN SOLUTION
    return (1 - alpha) * out_pre + alpha * out_ft
    # END SOLUTION


def smooth_labels(y: torch.Tensor, n_classes: int, eps: float) -> torch.Tensor:
    """Label smoothing: t = (1 − ε) onehot(y) + ε / K."""
    # BEGIN SOLUTION
    return (1 - eps) * F.one_hot(y, n_classes).to(torch.get_default_dtype()) + eps / n_classes
    # END SOLUTION


def mixup(x: torch.Tensor, t: torch.Tensor, lam: float, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup: x̃ = λ x + (1 − λ) x[π], t̃ = λ t + (1 − λ) t[π] for a permutation π of the batch."""
    # BEGIN SOLUTION
    return lam * x + (1 - lam) * x[perm], lam * t + (1 - lam) * t[perm]
    # END SOLUTION


def soft_cross_entropy(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """L = −(1/B) Σ_b Σ_k t_bk log softmax(z_b)_k."""
    # BEGIN SOLUTION
    return -(t * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    # END SOLUTION


def bang_loss(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    n_classes: int,
    eps: float,
    mixup_alpha: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """BANG's fine-tuning loss: soft cross-entropy on Mixup-ed inputs with label-smoothed targets.

    λ ~ Beta(a, a) (one draw per batch), π a uniform permutation; a = 0 turns Mixup off (λ = 1).
    """
    # BEGIN SOLUTION
    t = smooth_labels(y, n_classes, eps)
    if mixup_alpha > 0:
        lam = beta_draw(float(torch.rand(1, generator=generator, dtype=torch.float64)), mixup_alpha)
        perm = torch.randperm(len(x), generator=generator)
        x, t = mixup(x, t, lam, perm.to(x.device))
    return soft_cross_entropy(model(x), t)
    # END SOLUTION


def false_false_true(pred_pre: torch.Tensor, pred_ft: torch.Tensor, pred_mix: torch.Tensor, y: torch.Tensor) -> float:
    """FalseFalseTrue: fraction of samples with pre-trained wrong, fine-tuned wrong and ensemble right."""
    # BEGIN SOLUTION
    return float(((pred_pre != y) & (pred_ft != y) & (pred_mix == y)).float().mean())
    # END SOLUTION


def overconfidence(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Mean max-probability max_k softmax(z)_k over the wrongly predicted samples (NaN if none is wrong)."""
    # BEGIN SOLUTION
    p = F.softmax(logits, dim=-1)
    conf, pred = p.max(-1)
    wrong = pred != y
    return float(conf[wrong].mean()) if bool(wrong.any()) else float("nan")
    # END SOLUTION


def beta_draw(u: float, a: float) -> float:
    """λ ~ Beta(a, a) by the inverse CDF of a uniform u (seeded through the caller's torch.Generator)."""
    # BEGIN SOLUTION
    from scipy.stats import beta

    return float(beta.ppf(u, a, a))
    # END SOLUTION
