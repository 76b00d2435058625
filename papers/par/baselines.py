"""The reward-shaping baselines of Fu et al. 2025, each beside its formula as the official code implements it
(github.com/PorUna-byte/PAR: `trainers/reward_shaper.py`, `trainers/paired_trainer.py`, `utils/model_merge.py`).

Shaping of the proxy reward r before PPO (`RewardShaper.__call__`, official `shaped_reward`, same order):
  length penalty  r ← r − c · (|y| − L_valid)₊ (every method but ODIN);
  Meanstd         (r − μ)/σ              running statistics over all rewards seen so far (this batch included);
  Clip            clip(r, μ − σ, μ + σ)  running statistics;
  Minmax          (r − r_min)/(r_max − r_min), running min / max;
  PAR             (1/M) Σ_m σ(k (r − r_ref,m))   (`papers.par.method.par_reward`);
  sigmoid         σ(k r), uncentred (ablation);
  LSC             log σ(r − r_ref85), r_ref85 = Φ⁻¹(0.85; μ_ref, σ_ref) = μ_ref + 1.036 σ_ref.
Reward-model baselines (a different RM, then Vanilla shaping):
  WARM  θ = (1/K) Σ_j θ_j, K RMs fine-tuned from one initialisation;
  Reg   L = −log σ(r⁺ − r⁻) + 0.005 (r⁺² + r⁻²);
  ODIN  two heads r_Q, r_L; L = −log σ((r_Q⁺ + r_L⁺) − (r_Q⁻ + r_L⁻)) + |ρ(r_Q, len)| − ρ(r_L, len)
        + |w_Q·w_L|/(‖w_Q‖‖w_L‖); PPO uses r_Q only.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from reprozoo.common.reward import RewardModel, bradley_terry_loss
from reprozoo.papers.par.method import par_reward, sigmoid_reward

NORMAL_Q85 = 1.0364333894937898  # Φ⁻¹(0.85)
SHAPINGS = ("vanilla", "meanstd", "clip", "minmax", "par", "sigmoid", "lsc")


# --- shaping the proxy reward ---


class RunningStats:
    """Running count, mean, M2 (Chan et al.'s parallel update), max and min of every reward seen (official
    `RunningStats`): for a batch of size b with mean m_b and population variance v_b,

        δ = m_b − μ,  μ ← μ + δ b/(n + b),  M2 ← M2 + v_b b + δ² n b/(n + b),  n ← n + b,  σ² = M2/n.
    """

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.max, self.min = -math.inf, math.inf

    def update(self, rewards: torch.Tensor) -> None:
        b = rewards.shape[0]
        batch_mean, batch_var = float(rewards.mean()), float(rewards.var(correction=0))
        self.max, self.min = max(self.max, float(rewards.max())), min(self.min, float(rewards.min()))
        new_n = self.n + b
        delta = batch_mean - self.mean
        self.mean += delta * b / new_n
        self.m2 += batch_var * b + delta**2 * self.n * b / new_n
        self.n = new_n

    @property
    def std(self) -> float:
        """σ = sqrt(M2/n) (0 until two rewards are seen, as the official `get_variance`)."""
        return math.sqrt(self.m2 / self.n) if self.n > 1 else 0.0

    def normalize(self, r: torch.Tensor) -> torch.Tensor:
        """Meanstd: (r − μ)/σ (σ = 0 → 1)."""
        return (r - self.mean) / (self.std if self.std > 0 else 1.0)

    def clip(self, r: torch.Tensor) -> torch.Tensor:
        """Clip: clip(r, μ − σ, μ + σ)."""
        return r.clamp(self.mean - self.std, self.mean + self.std)

    def minmax(self, r: torch.Tensor) -> torch.Tensor:
        """Minmax: (r − r_min)/(r_max − r_min)."""
        return (r - self.min) / (self.max - self.min)


def length_penalty(r: torch.Tensor, length: torch.Tensor, valid_len: int, penalty: float) -> torch.Tensor:
    """r − c · (|y| − L_valid)₊ (official: −0.01 per token beyond `gen_valid_len`)."""
    # BEGIN SOLUTION
    return r - penalty * (length.to(r.dtype) - valid_len).clamp_min(0)
    # END SOLUTION


def lsc_reward(r: torch.Tensor, ref_rewards: torch.Tensor) -> torch.Tensor:
    """Log-sigmoid-centred (Wang et al. 2024): log σ(r − r_ref85), r_ref85 = μ_ref + Φ⁻¹(0.85) (σ_ref + 1e-5),
    μ_ref, σ_ref the mean and sample (Bessel) standard deviation of each prompt's reference rewards (B, M)."""
    # BEGIN SOLUTION
    ref85 = ref_rewards.mean(-1) + NORMAL_Q85 * (ref_rewards.std(-1, correction=1) + 1e-5)
    return nn.functional.logsigmoid(r - ref85)
    # END SOLUTION


class RewardShaper:
    """Maps proxy rewards to RL rewards for one `method` in SHAPINGS (keeps its running statistics)."""

    def __init__(self, method: str, *, k: float = 1.0, valid_len: int = 10, len_penalty: float = 0.01):
        if method not in SHAPINGS:
            raise ValueError(f"unknown shaping {method!r}; choose one of {SHAPINGS}")
        self.method, self.k, self.valid_len, self.len_penalty = method, k, valid_len, len_penalty
        self.stats = RunningStats()

    def __call__(self, r: torch.Tensor, length: torch.Tensor | None, ref_rewards: torch.Tensor | None) -> torch.Tensor:
        """r (B,) raw proxy rewards, length (B,) response lengths (None: no length penalty, as for ODIN),
        ref_rewards (B, M) proxy rewards of SFT references (PAR, LSC)."""
        r = r.clone()
        if length is not None:
            r = length_penalty(r, length, self.valid_len, self.len_penalty)
        m = self.method
        if m in ("meanstd", "clip", "minmax"):
            self.stats.update(r)
            return {"meanstd": self.stats.normalize, "clip": self.stats.clip, "minmax": self.stats.minmax}[m](r)
        if m == "par":
            return par_reward(r, ref_rewards, self.k)
        if m == "sigmoid":
            return sigmoid_reward(r, self.k)
        if m == "lsc":
            return lsc_reward(r, ref_rewards)
        return r


# --- reward-model baselines ---


def reg_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, coef: float = 0.005) -> torch.Tensor:
    """Reg: −log σ(r⁺ − r⁻) + coef (r⁺² + r⁻²), mean over pairs (official `reward_reg_val` = 0.005)."""
    return bradley_terry_loss(r_chosen, r_rejected, l2=coef)


class OdinRewardModel(nn.Module):
    """ODIN (Chen et al. 2024): one backbone, a quality head w_Q and a length head w_L, both read at the last real
    token. `forward` returns r_Q (what PPO optimises); `both` returns (r_Q, r_L)."""

    def __init__(self, base: RewardModel):
        super().__init__()
        self.body, self.head = base.body, base.head  # `head` is the quality head
        d = base.head.in_features
        self.length_head = nn.Linear(d, 1)
        nn.init.normal_(self.length_head.weight, std=1.0 / math.sqrt(d))
        nn.init.zeros_(self.length_head.bias)

    def both(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from reprozoo.common.lm import positions

        h = self.body(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).last_hidden_state
        last = mask.shape[1] - 1 - mask.flip(-1).long().argmax(-1)
        h = h[torch.arange(h.shape[0]), last]
        return self.head(h).squeeze(-1), self.length_head(h).squeeze(-1)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.both(ids, torch.ones_like(ids) if mask is None else mask)[0]


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ρ(x, y) = cov(x, y)/(std x · std y) (unbiased covariance and standard deviations, as the official code)."""
    return torch.cov(torch.stack([x, y]))[0, 1] / (x.std() * y.std())


def odin_loss(
    q: torch.Tensor, ell: torch.Tensor, length: torch.Tensor, w_q: torch.Tensor, w_l: torch.Tensor, half: int
) -> dict[str, torch.Tensor]:
    """ODIN's three terms over a batch whose first `half` rows are chosen and the rest rejected:

    vanilla = mean −log σ((r_Q⁺ + r_L⁺) − (r_Q⁻ + r_L⁻)),  length = |ρ(r_Q, len)| − ρ(r_L, len),
    orthogonal = ‖W_Q W_Lᵀ‖_F / (‖W_Q‖_F ‖W_L‖_F + 1e-6); total = vanilla + length + orthogonal (weights 1, 1).
    """
    length = length.to(q.dtype)
    r = q + ell
    vanilla = -nn.functional.logsigmoid(r[:half] - r[half:]).mean()
    length_term = pearson(q, length).abs() - pearson(ell, length)
    orthogonal = torch.linalg.norm(w_q @ w_l.T) / (torch.linalg.norm(w_q) * torch.linalg.norm(w_l) + 1e-6)
    return {
        "vanilla": vanilla,
        "length": length_term,
        "orthogonal": orthogonal,
        "total": vanilla + length_term + orthogonal,
    }


def warm_average(models: list[nn.Module]) -> nn.Module:
    """WARM (Ramé et al. 2024; official `ModelMerger`): a model whose every parameter is the mean of the K
    models' parameters, θ = (1/K) Σ_j θ_j."""
    merged = copy.deepcopy(models[0])
    with torch.no_grad():
        for name, p in merged.named_parameters():
            p.copy_(torch.stack([dict(m.named_parameters())[name] for m in models]).mean(0))
    return merged


PairLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]


def train_pairwise(
    rm: nn.Module,
    chosen: tuple[torch.Tensor, torch.Tensor],
    rejected: tuple[torch.Tensor, torch.Tensor],
    loss_fn: PairLoss,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> list[float]:
    """Fit `rm` on (chosen, rejected) pairs of (ids, mask) with `loss_fn(rm, ids, mask, half)`, where the first
    `half` rows of ids are chosen and the rest rejected; AdamW + cosine + grad-norm clip 1 and seeded minibatches,
    as `common.reward.train_bradley_terry` (so that a plain BT loss reproduces the world's proxies)."""
    opt = torch.optim.AdamW(rm.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    gen = torch.Generator().manual_seed(seed)
    n = chosen[0].shape[0]
    rm.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        ids = torch.cat([chosen[0][idx], rejected[0][idx]])
        am = torch.cat([chosen[1][idx], rejected[1][idx]])
        loss = loss_fn(rm, ids, am, idx.shape[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    rm.eval()
    return losses
