"""PPO for language models (Ziegler et al. 2019; Ouyang et al. 2022; Stiennon et al. 2020).

One `PPOTrainer.step(prompts, reward_fn)`:
  1. sample responses y ∼ π_θ(·|x) (KV-cached batched generation);
  2. score s = reward_fn(x, y, mask); per-token rewards r_t = −β k(π_θ, π_ref)_t + 1[t = last] s;
  3. values V_t from a linear value head on the policy's last hidden states; GAE(γ, λ) advantages;
  4. `epochs` passes of shuffled minibatches on L = L^CLIP + c_V L^V − c_H H;
  5. β is fixed or adapted toward a target KL (Ziegler's controller).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from reprozoo.common.hf import refuse_bf16_training
from reprozoo.common.lm import generate, response_logprobs
from reprozoo.common.policy import masked_mean, masked_whiten
from reprozoo.common.rl import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    kl_penalised_rewards,
    ppo_policy_loss,
    ppo_value_loss,
)

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class PPOConfig:
    """Hyper-parameters of `PPOTrainer` (defaults: small-model values; Coste et al.'s official ones in brackets)."""

    lr: float = 1e-4
    """Adam learning rate [1e-6 cosine for 1.4B models]."""
    epochs: int = 2
    """Optimisation passes over each rollout batch [4]."""
    minibatch_size: int = 64
    """Minibatch size within an epoch."""
    clip: float = 0.2
    """Policy ratio clip ε [0.2]."""
    value_clip: float | None = 0.2
    """Value clip (None: unclipped value loss)."""
    vf_coef: float = 0.1
    """Value-loss weight c_V."""
    entropy_coef: float = 0.0
    """Entropy bonus weight c_H."""
    gamma: float = 1.0
    """Discount γ [1]."""
    lam: float = 0.95
    """GAE λ [0.95]."""
    kl_coef: float = 0.0
    """Initial (or fixed) KL coefficient β [0.01 in the KL study]."""
    kl_estimator: str = "k1"
    """Per-token KL estimator in the reward: k1, k2 or k3."""
    adaptive_kl: bool = False
    """Adapt β toward `target_kl` (Ziegler et al. 2019)."""
    target_kl: float = 6.0
    """Target sequence KL (nats) of the adaptive controller."""
    horizon: int = 10000
    """Horizon of the adaptive controller."""
    whiten_advantages: bool = True
    """Normalise advantages over the batch."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts."""
    max_new_tokens: int = 16
    """Response length limit."""


class PPOTrainer:
    """Policy (a causal LM from `common.lm`) + linear value head on its last hidden states; frozen reference.

    The reference is only ever run under `torch.no_grad` (in `rollout`) and is not in the optimiser, so its
    parameters' `requires_grad` flags are left as the caller set them: freezing them in place froze every later copy
    of the same module (a second PPO run on a `copy_policy` of that world then trained only its value head)."""

    def __init__(self, policy: nn.Module, ref: nn.Module, cfg: PPOConfig, *, eos_id: int | None = None):
        refuse_bf16_training(policy.parameters(), "PPOTrainer")  # plain Adam here: no fp32 master weights
        self.policy, self.ref, self.cfg, self.eos_id = policy, ref.eval(), cfg, eos_id
        d = policy.get_output_embeddings().weight.shape[1]
        device = next(policy.parameters()).device
        self.value_head = nn.Linear(d, 1).to(device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        params = list(policy.parameters()) + list(self.value_head.parameters())
        self.opt = torch.optim.Adam(params, lr=cfg.lr)
        self.kl_ctl = (
            AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.horizon)
            if cfg.adaptive_kl
            else FixedKLController(cfg.kl_coef)
        )

    def _forward(self, prompts, responses, prompt_mask):
        logp, hidden = response_logprobs(
            self.policy,
            prompts,
            responses,
            prompt_mask=prompt_mask,
            temperature=self.cfg.temperature,
            return_hidden=True,
        )
        return logp.float(), self.value_head(hidden).squeeze(-1).float()

    @torch.no_grad()
    def rollout(
        self,
        prompts: torch.Tensor,
        reward_fn: RewardFn,
        *,
        prompt_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Sample, score and compute advantages for one batch of prompts."""
        cfg = self.cfg
        self.policy.eval()
        gen = generate(
            self.policy,
            prompts,
            max_new_tokens=cfg.max_new_tokens,
            prompt_mask=prompt_mask,
            temperature=cfg.temperature,
            eos_id=self.eos_id,
            generator=generator,
        )
        y, mask = gen.tokens, gen.mask
        old_logp, old_values = self._forward(prompts, y, prompt_mask)
        ref_logp = response_logprobs(self.ref, prompts, y, prompt_mask=prompt_mask, temperature=cfg.temperature)
        score = reward_fn(prompts, y, mask).to(old_logp.device).float()
        rewards, kl = kl_penalised_rewards(
            score, old_logp, ref_logp, mask, beta=self.kl_ctl.beta, kind=cfg.kl_estimator
        )
        adv, returns = gae(rewards, old_values * mask, mask, gamma=cfg.gamma, lam=cfg.lam)
        if cfg.whiten_advantages:
            adv = masked_whiten(adv, mask) * mask
        seq_kl_k1 = ((old_logp - ref_logp) * mask).sum(-1)
        return {
            "prompts": prompts,
            "prompt_mask": prompt_mask,
            "responses": y,
            "mask": mask,
            "old_logp": old_logp,
            "old_values": old_values,
            "adv": adv,
            "returns": returns,
            "score": score,
            "kl": seq_kl_k1,
            "kl_penalty": kl.sum(-1),
        }

    def step(
        self,
        prompts: torch.Tensor,
        reward_fn: RewardFn,
        *,
        prompt_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, float]:
        """One PPO iteration (rollout + `epochs` × minibatch updates); returns scalar statistics."""
        cfg = self.cfg
        batch = self.rollout(prompts, reward_fn, prompt_mask=prompt_mask, generator=generator)
        B = prompts.shape[0]
        self.policy.train()
        pl, vl, cf = [], [], []
        for _ in range(cfg.epochs):
            perm = torch.randperm(B, generator=generator, device="cpu").to(prompts.device)
            for i in range(0, B, cfg.minibatch_size):
                idx = perm[i : i + cfg.minibatch_size]
                pm = None if prompt_mask is None else prompt_mask[idx]
                mask = batch["mask"][idx]
                logp, values = self._forward(prompts[idx], batch["responses"][idx], pm)
                p_loss, st = ppo_policy_loss(logp, batch["old_logp"][idx], batch["adv"][idx], mask, clip=cfg.clip)
                v_loss = ppo_value_loss(
                    values, batch["old_values"][idx], batch["returns"][idx], mask, clip=cfg.value_clip
                )
                loss = p_loss + cfg.vf_coef * v_loss
                if cfg.entropy_coef:
                    loss = loss + cfg.entropy_coef * masked_mean(logp, mask)  # −H estimated by E[log π]
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                params = list(self.policy.parameters()) + list(self.value_head.parameters())
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                self.opt.step()
                pl.append(p_loss.item())
                vl.append(v_loss.item())
                cf.append(float(st["clipfrac"]))
        self.policy.eval()
        kl = float(batch["kl"].mean())
        beta = self.kl_ctl.beta
        self.kl_ctl.update(kl, B)
        return {
            "score": float(batch["score"].mean()),
            "kl": kl,
            "beta": beta,
            "length": float(batch["mask"].sum(-1).mean()),
            "policy_loss": sum(pl) / len(pl),
            "value_loss": sum(vl) / len(vl),
            "clipfrac": sum(cf) / len(cf),
        }
