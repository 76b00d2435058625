"""Small flax networks shared by A2PR and the baselines (actions live in [-1, 1]).

Shapes follow the official A2PR code (`core/network/actor.py`, `core/network/critic.py`, `A2PR.py`):
actor 3 hidden ReLU layers + tanh, twin critic 4 hidden layers per head, value net 4 hidden layers, and
a BCQ-style VAE (2 hidden layers in encoder and decoder). Widths are config fields (256 / 750 in the paper).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
    """ReLU multilayer perceptron with a linear output layer of width `out`."""

    hidden: Sequence[int]
    out: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.out)(x)


class Actor(nn.Module):
    """Deterministic policy π(s) = tanh(MLP(s)) ∈ [-1, 1]^|A|."""

    hidden: Sequence[int]
    action_dim: int

    @nn.compact
    def __call__(self, s: jax.Array) -> jax.Array:
        return jnp.tanh(MLP(self.hidden, self.action_dim)(s))


class DoubleCritic(nn.Module):
    """Twin Q heads (Q1, Q2)(s, a), each an independent MLP; returns two arrays of shape [B]."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, s: jax.Array, a: jax.Array) -> tuple[jax.Array, jax.Array]:
        sa = jnp.concatenate([s, a], axis=-1)
        return MLP(self.hidden, 1, name="q1")(sa)[..., 0], MLP(self.hidden, 1, name="q2")(sa)[..., 0]


class Value(nn.Module):
    """State value V(s), shape [B]."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, s: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1)(s)[..., 0]


class VAE(nn.Module):
    """BCQ-style conditional VAE over actions (official `A2PR.py` `VAE`).

    Encoder q(z | s, a) = N(μ, σ²) with log σ clamped to [-4, 15]; decoder a = tanh(D(s, z)).
    `__call__` returns (reconstruction, μ, σ) using the reparameterised sample z = μ + σ ε.
    """

    hidden: Sequence[int]
    action_dim: int
    latent_dim: int

    def setup(self):
        self.encoder = MLP(self.hidden, 2 * self.latent_dim)
        self.decoder = MLP(self.hidden, self.action_dim)

    def __call__(self, s: jax.Array, a: jax.Array, key: jax.Array):
        h = self.encoder(jnp.concatenate([s, a], axis=-1))
        mean, log_std = h[..., : self.latent_dim], jnp.clip(h[..., self.latent_dim :], -4.0, 15.0)
        std = jnp.exp(log_std)
        z = mean + std * jax.random.normal(key, std.shape)
        return self.decode(s, z), mean, std

    def decode(self, s: jax.Array, z: jax.Array) -> jax.Array:
        return jnp.tanh(self.decoder(jnp.concatenate([s, z], axis=-1)))
