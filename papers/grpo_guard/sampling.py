"""Sampling the world's DiT as Flow-GRPO does: SD3's sigma schedule, SDE rollouts with their log-probs, the log-probs
of stored transitions under another policy, and the deterministic ODE sampler of the evaluation (SD3: `full.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from reprozoo.papers.grpo_guard.method import sde_step
from reprozoo.papers.grpo_guard.world import World, diversity, realism, velocity

if TYPE_CHECKING:  # diffusers takes seconds to import: loaded when a run starts, not for --help
    from diffusers import DiTTransformer2DModel


def sigmas(steps: int, shift: float) -> torch.Tensor:
    """SD3's schedule: `FlowMatchEulerDiscreteScheduler(shift)` with sigmas linspace(1, 1/N, N), 0 appended."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(sigmas=np.linspace(1.0, 1.0 / steps, steps))
    return sched.sigmas.float()


@torch.no_grad()
def rollout(
    model: DiTTransformer2DModel, labels: torch.Tensor, sig: torch.Tensor, image_size: int, eta: float, gen
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SDE trajectories over the N = len(sig) − 1 steps: latents (B, N+1, ...), log π_old (B, N), μ_old (B, N, ...)."""
    x = torch.randn(len(labels), 1, image_size, image_size, generator=gen)
    lat, logps, means = [x], [], []
    for j in range(len(sig) - 1):
        b = torch.full((len(x),), float(sig[j]))
        v = velocity(model, x, b, labels)
        noise = torch.randn(x.shape, generator=gen)
        x, logp, mean, _, _ = sde_step(x, v, b, torch.full_like(b, float(sig[j + 1])), float(sig[1]), eta, noise=noise)
        lat.append(x)
        logps.append(logp)
        means.append(mean)
    return torch.stack(lat, 1), torch.stack(logps, 1), torch.stack(means, 1)


def transition_logprobs(model, lat: torch.Tensor, labels: torch.Tensor, sig: torch.Tensor, eta: float, t: int) -> dict:
    """Log-probs of the stored transitions x_j → x_{j+1}, j < t, under `model`: one batched forward; returns the
    per-step logp (B, t), mean μ (B, t, ...), std and √−dt (B, t) that `method.step_loss` reads."""
    b = len(lat)
    shape = lat.shape[2:]
    xs = lat[:, :t].reshape(b * t, *shape)
    nxt = lat[:, 1 : t + 1].reshape(b * t, *shape)
    s_now, s_next = sig[:t].repeat(b), sig[1 : t + 1].repeat(b)
    v = velocity(model, xs, s_now, labels.repeat_interleave(t))
    _, logp, mean, std, sq = sde_step(xs, v, s_now, s_next, float(sig[1]), eta, prev=nxt)
    return {
        "logp": logp.view(b, t),
        "mean": mean.view(b, t, *shape),
        "std": std.view(b, t),
        "sqrt_dt": sq.view(b, t),
    }


@torch.no_grad()
def ode_sample(model: DiTTransformer2DModel, labels: torch.Tensor, noise: torch.Tensor, sig: torch.Tensor):
    """Deterministic Euler ODE (SD3's sampler): x ← x + v·(σ_next − σ)."""
    x = noise
    for j in range(len(sig) - 1):
        x = x + velocity(model, x, sig[j].expand(len(x)), labels) * (sig[j + 1] - sig[j])
    return x


def evaluate(world: World, model, eval_set, sig) -> dict[str, float]:
    """The proxy and the gold measures (gold RM, realism, diversity) of fixed-noise ODE samples of `eval_set`."""
    labels, noise = eval_set
    x = ode_sample(model, labels, noise, sig).clamp(-1, 1)
    return {
        "proxy": float(world.proxy(x, labels).mean()),
        "gold_rm": float(world.gold_rm(x, labels).mean()),
        "realism": realism(x, world.gold_x),
        "diversity": diversity(x, labels),
    }
