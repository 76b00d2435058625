"""Reward-model primitives: a scalar-head RM over a transformer backbone, Bradley–Terry training, ensemble
aggregation, and the best-of-n evaluator (unbiased estimator and KL_BoN)."""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
from torch import nn

from reprozoo.common.lm import backbone, positions, tiny_lm

Aggregation = Literal["mean", "median", "min", "wco", "uwo", "mean_minus_std"]
AGGREGATIONS: tuple[str, ...] = ("mean", "median", "min", "wco", "uwo", "mean_minus_std")


class RewardModel(nn.Module):
    """r_φ(x, y) = w · h_L(x ⊕ y)[last real token] + b: a linear head on the backbone's final hidden state."""

    def __init__(self, body: nn.Module, hidden_size: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.head.weight, std=1.0 / math.sqrt(hidden_size))
        nn.init.zeros_(self.head.bias)

    @classmethod
    def tiny(
        cls,
        vocab_size: int,
        *,
        d_model: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
        max_len: int = 64,
        arch: str = "llama",
        seed: int = 0,
    ) -> RewardModel:
        """A randomly initialised RM (the backbone of `common.lm.tiny_lm`)."""
        lm = tiny_lm(
            vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_len=max_len, arch=arch, seed=seed
        )
        torch.manual_seed(seed + 1)
        return cls(backbone(lm), d_model)

    @classmethod
    def from_lm(cls, lm: nn.Module, *, seed: int = 0) -> RewardModel:
        """An RM whose backbone is a copy of a (pre-trained / SFT) causal LM's body, with a fresh head."""
        torch.manual_seed(seed)
        return cls(
            copy.deepcopy(backbone(lm)),
            lm.config.hidden_size if hasattr(lm.config, "hidden_size") else lm.config.n_embd,
        )

    @classmethod
    def from_pretrained(cls, name: str, **kwargs) -> RewardModel:
        """A scalar-head RM on `AutoModel.from_pretrained(name)` (for `full` presets)."""
        from transformers import AutoModel

        body = AutoModel.from_pretrained(name, **kwargs)
        return cls(body, body.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Rewards (B,) read at the last position whose attention mask is 1."""
        am = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        h = self.body(input_ids=input_ids, attention_mask=am, position_ids=positions(am)).last_hidden_state
        T = am.shape[1]
        last = T - 1 - am.flip(-1).long().argmax(-1)  # index of the last 1 in each row
        return self.head(h[torch.arange(h.shape[0], device=h.device), last]).squeeze(-1)


# --- method ---


def bradley_terry_loss(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    eta: float = 0.0,
    l2: float = 0.0,
) -> torch.Tensor:
    """Mean Bradley–Terry loss over pairs.

    L = −[p log σ(r⁺ − r⁻) + (1 − p) log σ(r⁻ − r⁺)] + η (r⁺ + r⁻)² + l2 (r⁺² + r⁻²)

    p = (1 − ε) ℓ + ε (1 − ℓ): ℓ the (soft) probability that `chosen` is preferred (1 by default), ε the label
    smoothing. η pins the per-prompt offset (Eisenstein et al. 2023); `l2` is PAR's "Reg" baseline.
    """
    if not 0 <= label_smoothing <= 0.5:
        raise ValueError(f"label_smoothing must lie in [0, 0.5], got {label_smoothing}")
    delta = r_chosen - r_rejected
    ell = torch.ones_like(delta) if labels is None else labels.to(delta.dtype)
    p = (1 - label_smoothing) * ell + label_smoothing * (1 - ell)
    nll = -(p * nn.functional.logsigmoid(delta) + (1 - p) * nn.functional.logsigmoid(-delta))
    centring = eta * (r_chosen + r_rejected) ** 2
    reg = l2 * (r_chosen**2 + r_rejected**2)
    return (nll + centring + reg).mean()


def aggregate(
    rewards: torch.Tensor, method: Aggregation = "mean", *, lam: float = 0.5, dim: int = 0, unbiased: bool = False
) -> torch.Tensor:
    """Combine k member rewards R_1..R_k (stacked along `dim`):

    mean: (1/k) Σ R_i;  median;  min = WCO: min_i R_i;  UWO: mean − λ Var_i(R_i);  mean_minus_std: mean − λ Std_i.
    `unbiased` picks the (k − 1) variance (Coste's PPO code) instead of the population one (their best-of-n code).
    """
    if method == "mean":
        return rewards.mean(dim)
    if method == "median":
        return rewards.median(dim).values if rewards.shape[dim] % 2 else rewards.quantile(0.5, dim=dim)
    if method in ("min", "wco"):
        return rewards.min(dim).values
    if method == "uwo":
        return rewards.mean(dim) - lam * rewards.var(dim, correction=int(unbiased))
    if method == "mean_minus_std":
        return rewards.mean(dim) - lam * rewards.std(dim, correction=int(unbiased))
    raise ValueError(f"unknown aggregation {method!r}; choose one of {AGGREGATIONS}")


def kl_bon(n: int | torch.Tensor) -> float | torch.Tensor:
    """KL_BoN = log n − (n − 1)/n, an upper bound on KL(best-of-n ‖ base) (Gao et al. 2022)."""
    if isinstance(n, torch.Tensor):
        return torch.log(n) - (n - 1) / n
    return math.log(n) - (n - 1) / n


def bon_weights(N: int, n: int) -> torch.Tensor:
    """w_i = C(i − 1, n − 1)/C(N, n) for the i-th smallest of N scores (i = 1..N): P(it is the max of a random
    n-subset). Exact integer binomials, divided once into float64 (correctly rounded), so the weights sum to 1
    to float64 precision at any N."""
    if not 1 <= n <= N:
        raise ValueError(f"need 1 <= n <= N, got n={n}, N={N}")
    total = math.comb(N, n)
    return torch.tensor([math.comb(i - 1, n - 1) / total for i in range(1, N + 1)], dtype=torch.float64)


def best_of_n(proxy: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
    """Unbiased estimate of E[target(argmax_proxy of n samples)] from N ≥ n samples per row (last dim):

    E[R(n)] = Σ_{i=n..N} C(i − 1, n − 1)/C(N, n) · R(y_(i)),  y_(i) sorted by increasing proxy score.
    """
    order = proxy.argsort(-1)
    sorted_target = target.gather(-1, order).to(torch.float64)
    return (sorted_target * bon_weights(proxy.shape[-1], n).to(sorted_target.device)).sum(-1)


# --- training ---


def train_bradley_terry(
    rm: nn.Module,
    seq_a: torch.Tensor,
    mask_a: torch.Tensor,
    seq_b: torch.Tensor,
    mask_b: torch.Tensor,
    prefs: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    eta: float = 0.0,
    label_smoothing: float = 0.0,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> list[float]:
    """Fit `rm` on pairs (a, b) with `prefs` = P(a ≻ b) ∈ [0, 1] (hard labels 0/1 or soft) by Adam on
    `bradley_terry_loss`; minibatches drawn with a seeded generator. Returns the loss per step."""
    device = next(rm.parameters()).device
    opt = torch.optim.AdamW(rm.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    gen = torch.Generator().manual_seed(seed)
    n = seq_a.shape[0]
    rm.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        ids = torch.cat([seq_a[idx], seq_b[idx]]).to(device)
        am = torch.cat([mask_a[idx], mask_b[idx]]).to(device)
        r = rm(ids, am)
        half = idx.shape[0]
        loss = bradley_terry_loss(
            r[:half], r[half:], labels=prefs[idx].to(device), label_smoothing=label_smoothing, eta=eta
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    rm.eval()
    return losses


@torch.no_grad()
def score(rm: nn.Module, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Rewards of many sequences, in batches, without gradients (on the RM's device, returned on CPU)."""
    device = next(rm.parameters()).device
    return torch.cat(
        [
            rm(ids[i : i + batch_size].to(device), mask[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, ids.shape[0], batch_size)
        ]
    )
