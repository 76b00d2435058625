"""Control-world environments in pure JAX (jit / vmap friendly), with the auxiliary heuristics of BARFI.

Every environment is a set of pure functions over a small state pytree:
  reset(key) -> state;  step(state, action, u, heuristic) -> (state', r_p, r_aux, done) with u ~ U(0, 1)²;
  features(state) -> x  (the policy's and the reward's input features).
`heuristic` is a traced integer: 0 = none, 1 = good, 2 = bad, so one compiled program serves all three.

- `GridWorld`: a discrete N×N version of BARFI's gridworld (barfi-gw/src/environments/Maze_*.py): start at the
  bottom-left cell, +100 and termination at the top-right cell, −0.1 per step, 10% random action, horizon 50.
  Auxiliary rewards: good = +1 / −1 per move towards / away from the goal (`GridWorld.good`); bad = +50 for every
  step spent in the central 2×2 region (a reward that can be farmed forever, so r_p + r_aux changes the optimal
  behaviour).
- `CartPole`: gymnasium's CartPole-v1 dynamics (Euler, same constants; parity-tested against gymnasium).
  Auxiliary reward: the variants behind the paper's CartPole figures (barfi-cp/experiments/PaperPlots/{best2,bad}):
  good = `CartPoleBestAux2` (+5 when the action equals the one a PD controller on the pole angle would take, −1
  otherwise), bad = `CartPoleBadAuxDebug` (−5 when it matches, +1 otherwise); 0 on the terminating step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

HEURISTICS: tuple[str, ...] = ("none", "good", "bad")

# ----------------------------------------------------------------------------- gridworld


@dataclass(frozen=True)
class GridWorld:
    """N×N grid; actions up / right / down / left; slip probability `slip` (the action is replaced at random)."""

    size: int = 6
    horizon: int = 50
    slip: float = 0.1
    goal_reward: float = 100.0
    step_reward: float = -0.1
    aux_bad: float = 50.0
    good: str = "progress"
    """The good heuristic: "progress" (+1 per move one cell closer to the goal in Manhattan distance, −1 per move
    away, 0 against a wall: v2), "sqdist" (−Σ((pos − goal)/(N − 1))² per step: v1, which slowed the naive learner)
    or "official" (the official per-step −dist with its x-only slip, rescaled to the grid)."""
    n_actions: int = 4

    @property
    def n_features(self) -> int:
        return self.size * self.size

    def reset(self, key: jax.Array) -> dict[str, Any]:
        del key
        return {"pos": jnp.zeros(2, jnp.int32), "done": jnp.array(False)}

    def constant_weights(self) -> jax.Array:
        """w with x(s)ᵀ w = 1 for every s."""
        return jnp.ones(self.n_features)

    def features(self, state: dict[str, Any]) -> jax.Array:
        """One-hot encoding of the cell (tabular features)."""
        idx = state["pos"][0] * self.size + state["pos"][1]
        return jax.nn.one_hot(idx, self.n_features)

    def reward_basis(self, kind: str) -> jax.Array:
        """P (cells × k) for a learned reward r_ν(s) = x(s)ᵀ P ν: "tabular" = I (realisable), "coarse" = per cell
        [x/(N−1), y/(N−1), 1, 1(central 2×2 region)] (misspecified: cannot represent the goal's +100 exactly)."""
        if kind == "tabular":
            return jnp.eye(self.n_features)
        ij = jnp.stack(jnp.meshgrid(jnp.arange(self.size), jnp.arange(self.size), indexing="ij"), -1).reshape(-1, 2)
        lo, hi = self.size // 2 - 1, self.size // 2
        centre = jnp.all((ij >= lo) & (ij <= hi), axis=-1)
        return jnp.column_stack([ij / (self.size - 1), jnp.ones(len(ij)), centre]).astype(jnp.float32)

    def aux(self, pos: jax.Array, heuristic: jax.Array, prev: jax.Array | None = None) -> jax.Array:
        """r_aux on the move prev → pos: [none, good, bad][heuristic]; the good one is chosen by `self.good`."""
        goal = self.size - 1
        if self.good == "sqdist":
            good = -jnp.sum(((pos - goal) / goal) ** 2)
        elif self.good == "official":
            # Maze_goodreward.get_aux_rewards: −dist(pos, G1) at each of the 4 sub-steps of a move, with the official
            # code's slip: its y term uses the goal box's own y (pos2[1]), so only x matters; coordinates in [0, 1]
            x = (pos[0] + 0.5) / self.size
            good = -4.0 * ((x - 0.87) ** 2 + (0.75 - 0.87) ** 2)
        else:  # "progress": +1 for a move that brings the agent one cell closer to the goal, −1 farther
            prev = pos if prev is None else prev
            good = jnp.sum(jnp.abs(prev - goal) - jnp.abs(pos - goal)).astype(jnp.float32)
        lo, hi = self.size // 2 - 1, self.size // 2
        inside = jnp.all((pos >= lo) & (pos <= hi))
        bad = jnp.where(inside, self.aux_bad, 0.0)
        return jnp.stack([0.0, good, bad])[heuristic]

    def step(self, state, action, u, heuristic):
        """`u`: two uniform(0, 1) numbers, for the slip and the random action."""
        action = jnp.where(u[0] < self.slip, jnp.minimum((u[1] * 4).astype(jnp.int32), 3), action)
        moves = jnp.array([[0, 1], [1, 0], [0, -1], [-1, 0]], jnp.int32)  # (x, y): up, right, down, left
        pos = jnp.clip(state["pos"] + moves[action], 0, self.size - 1)
        at_goal = jnp.all(pos == self.size - 1)
        r_p = self.step_reward + jnp.where(at_goal, self.goal_reward, 0.0)
        r_aux = jnp.where(at_goal, 0.0, self.aux(pos, heuristic, state["pos"]))
        return {"pos": pos, "done": at_goal}, r_p, r_aux, at_goal


# ----------------------------------------------------------------------------- cartpole


@dataclass(frozen=True)
class CartPole:
    """gymnasium CartPole-v1 physics (Euler integrator); reward +1 per step, the terminating step included."""

    horizon: int = 500
    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5  # half the pole's length
    force_mag: float = 10.0
    tau: float = 0.02
    theta_threshold: float = 12 * 2 * 3.141592653589793 / 360
    x_threshold: float = 2.4
    pd_p: float = 0.1
    """PD controller gains of the auxiliary heuristic (barfi-cp: P, D = 0.1, 0.5, 'performance around 500')."""
    pd_d: float = 0.5
    aux_good: tuple[float, float] = (5.0, -1.0)
    """Good heuristic (CartPoleBestAux2.get_aux_reward): r_aux when the action matches the PD controller, else."""
    aux_bad: tuple[float, float] = (-5.0, 1.0)
    """Bad heuristic (CartPoleBadAuxDebug.get_aux_reward): −5 when matching, +1 otherwise."""
    n_actions: int = 2
    n_features: int = 5

    def reset(self, key: jax.Array) -> dict[str, Any]:
        s = jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05)
        return {"s": s, "prev_theta": jnp.array(0.0), "done": jnp.array(False)}

    def constant_weights(self) -> jax.Array:
        """w with x(s)ᵀ w = 1 for every s (the bias feature)."""
        return jnp.zeros(self.n_features).at[-1].set(1.0)

    def features(self, state: dict[str, Any]) -> jax.Array:
        """[x/2.4, ẋ/3, θ/0.21, θ̇/3, 1]: the state scaled to about [−1, 1], plus a bias."""
        scale = jnp.array([2.4, 3.0, 0.2095, 3.0])
        return jnp.concatenate([state["s"] / scale, jnp.ones(1)])

    def dynamics(self, s: jax.Array, action: jax.Array) -> jax.Array:
        """One Euler step of gymnasium's CartPoleEnv.step."""
        x, x_dot, theta, theta_dot = s[0], s[1], s[2], s[3]
        force = jnp.where(action == 1, self.force_mag, -self.force_mag)
        total_mass = self.masspole + self.masscart
        polemass_length = self.masspole * self.length
        costheta, sintheta = jnp.cos(theta), jnp.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        return jnp.stack([x, x_dot, theta, theta_dot])

    def pd_action(self, theta: jax.Array, prev_theta: jax.Array) -> jax.Array:
        """a_PD = 1 iff P·θ + D·(θ − θ_prev) > 0 (round(sigmoid(·)) in the official code; θ_prev = 0 at reset)."""
        return (self.pd_p * theta + self.pd_d * (theta - prev_theta) > 0).astype(jnp.int32)

    def step(self, state, action, u, heuristic):
        del u  # deterministic dynamics
        s = state["s"]
        match = action == self.pd_action(s[2], state["prev_theta"])
        s2 = self.dynamics(s, action)
        done = (jnp.abs(s2[0]) > self.x_threshold) | (jnp.abs(s2[2]) > self.theta_threshold)
        table = jnp.array([[0.0, 0.0], [*self.aux_good], [*self.aux_bad]])  # [heuristic, (match, mismatch)]
        aux = jnp.where(match, table[heuristic, 0], table[heuristic, 1])
        r_aux = jnp.where(done, 0.0, aux)  # the official envs give no auxiliary reward on the terminating step
        return {"s": s2, "prev_theta": s[2], "done": done}, jnp.array(1.0), r_aux, done


# ----------------------------------------------------------------------------- continuous maze


@dataclass(frozen=True)
class ContinuousMaze:
    """BARFI's continuous gridworld (barfi-gw/src/environments/Maze_badreward.py, Maze_goodreward.py, the envs of
    its experiments/PaperPlots): position in [0, 1]², start (0.125, 0.125), actions up / right / down / left; a
    move is `substeps` = int(0.2 / 0.045) = 4 sub-steps of 0.045 ("max_step_length" 0.2, "step_unit" = wall width
    0.05 − 0.005), stopped by the border or on entering the goal box G1 = [0.75, 0.99]²; 10% random action;
    r_p = −0.1 per move + 100 on entering G1 (terminal); horizon int(10 / 0.2) = 50 moves.

    Heuristics, summed over the sub-steps, 0 on the terminating move (official): bad = +50 for every sub-step
    ending in the region [0.4, 0.6]² (`get_aux_rewards`, aux1_reward = 50); good = the official −dist(pos, G1),
    whose y term reads the box's own y (`(pos2[1] − mid_y2)²`, the official code's slip), i.e.
    −((x − 0.87)² + (0.75 − 0.87)²). Features: the official coupled Fourier basis of order 3 on the position,
    cos(π cᵀs) for c ∈ {0, …, 3}² (barfi-gw/src/utils/Basis.py `Fourier_Basis`), 16 features, c = 0 constant."""

    horizon: int = 50
    step_unit: float = 0.045
    substeps: int = 4
    slip: float = 0.1
    goal: tuple[float, float] = (0.75, 0.99)
    region: tuple[float, float] = (0.4, 0.6)
    goal_reward: float = 100.0
    step_reward: float = -0.1
    aux_bad: float = 50.0
    order: int = 3
    n_actions: int = 4

    @property
    def n_features(self) -> int:
        return (self.order + 1) ** 2

    def reset(self, key: jax.Array) -> dict[str, Any]:
        del key
        return {"pos": jnp.array([0.125, 0.125]), "done": jnp.array(False)}

    def constant_weights(self) -> jax.Array:
        """w with x(s)ᵀ w = 1 for every s (the c = (0, 0) cosine)."""
        return jnp.zeros(self.n_features).at[0].set(1.0)

    def features(self, state: dict[str, Any]) -> jax.Array:
        """cos(π cᵀ s) for every c ∈ {0, …, order}² (c = (c_x, c_y), c_y fastest, as itertools.product)."""
        c = jnp.stack(jnp.meshgrid(jnp.arange(self.order + 1), jnp.arange(self.order + 1), indexing="ij"), -1)
        return jnp.cos(jnp.pi * c.reshape(-1, 2) @ state["pos"])

    def _in(self, pos, box) -> jax.Array:
        return jnp.all((pos >= box[0]) & (pos <= box[1]))

    def step(self, state, action, u, heuristic):
        """`u`: two uniform(0, 1) numbers, for the slip and the random action."""
        action = jnp.where(u[0] < self.slip, jnp.minimum((u[1] * 4).astype(jnp.int32), 3), action)
        motion = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])[action] * self.step_unit
        pos, moving, reached, bad, good = state["pos"], jnp.array(True), jnp.array(False), 0.0, 0.0
        for _ in range(self.substeps):
            new = pos + motion
            ok = moving & jnp.all((new >= 0.0) & (new <= 1.0))
            pos = jnp.where(ok, new, pos)
            bad = bad + jnp.where(ok & self._in(pos, self.region), self.aux_bad, 0.0)
            good = good + jnp.where(ok, -((pos[0] - 0.87) ** 2 + (self.goal[0] - 0.87) ** 2), 0.0)
            hit = ok & self._in(pos, self.goal)
            reached = reached | hit
            moving = ok & ~hit
        r_p = self.step_reward + jnp.where(reached, self.goal_reward, 0.0)
        aux = jnp.stack([0.0, good, bad])[heuristic]
        return {"pos": pos, "done": reached}, r_p, jnp.where(reached, 0.0, aux), reached


# ----------------------------------------------------------------------------- mountain car


@dataclass(frozen=True)
class MountainCar:
    """gymnasium MountainCar-v0 physics with BARFI's sparse task and heuristics (barfi-mc, the env of its
    experiments/PaperPlots, `MCSenseSparseBangAux`): start x ~ U(−0.6, −0.4), v = 0; actions push left / none /
    right; r_p = 1 on reaching x ≥ 0.5 (terminal), 0 otherwise; horizon 2000 (official `max_horizon`).

    Heuristics (0 on the terminating step, as in the official env): good = the official "bang" heuristic,
    +scale when the push follows the velocity (v < 0 and left, or v > 0 and right), −scale otherwise
    (`MCSenseSparseBangAux.get_aux_reward`, PaperPlots `env_param` = 1); bad = the official one-sided variant
    `MCSenseSparseBangAuxLeft` (+scale for left while v < 0, 0 whenever v > 0, −scale otherwise): it never rewards
    the push to the right that reaches the goal.
    Features: tile coding of (x, v), `tilings` offset grids of (tiles + 1)² tiles (official basis "tilecoding",
    "tiles": 4, "tilings": 5), one active tile per tiling.
    """

    horizon: int = 2000
    force: float = 0.001
    gravity: float = 0.0025
    max_speed: float = 0.07
    min_position: float = -1.2
    max_position: float = 0.6
    goal_position: float = 0.5
    aux_scale: float = 1.0
    tiles: int = 4
    tilings: int = 5
    n_actions: int = 3

    @property
    def n_features(self) -> int:
        return self.tilings * (self.tiles + 1) ** 2

    def reset(self, key: jax.Array) -> dict[str, Any]:
        x = jax.random.uniform(key, (), minval=-0.6, maxval=-0.4)
        return {"s": jnp.stack([x, jnp.array(0.0)]), "done": jnp.array(False)}

    def constant_weights(self) -> jax.Array:
        """w with x(s)ᵀ w = 1 for every s (exactly `tilings` tiles are active)."""
        return jnp.full(self.n_features, 1.0 / self.tilings)

    def features(self, state: dict[str, Any]) -> jax.Array:
        """Tile coding: tiling j shifts the grid by j / tilings of a tile in both dimensions."""
        lo = jnp.array([self.min_position, -self.max_speed])
        width = (jnp.array([self.max_position, self.max_speed]) - lo) / self.tiles
        z = (state["s"] - lo) / width  # in [0, tiles]
        offsets = jnp.arange(self.tilings)[:, None] / self.tilings
        cells = jnp.clip(jnp.floor(z[None] + offsets).astype(jnp.int32), 0, self.tiles)
        idx = jnp.arange(self.tilings) * (self.tiles + 1) ** 2 + cells[:, 0] * (self.tiles + 1) + cells[:, 1]
        return jnp.zeros(self.n_features).at[idx].set(1.0)

    def dynamics(self, s: jax.Array, action: jax.Array) -> jax.Array:
        """gymnasium MountainCarEnv.step: v += (a − 1) force − cos(3x) gravity, |v| ≤ 0.07; x += v, clipped to
        [−1.2, 0.6]; v = 0 against the left wall."""
        x, v = s[0], s[1]
        v = jnp.clip(v + (action - 1) * self.force + jnp.cos(3 * x) * (-self.gravity), -self.max_speed, self.max_speed)
        x = jnp.clip(x + v, self.min_position, self.max_position)
        v = jnp.where((x == self.min_position) & (v < 0), 0.0, v)
        return jnp.stack([x, v])

    def step(self, state, action, u, heuristic):
        del u  # deterministic dynamics
        s2 = self.dynamics(state["s"], action)
        done = s2[0] >= self.goal_position
        v = s2[1]
        bang = jnp.where(((v < 0) & (action == 0)) | ((v > 0) & (action == 2)), 1.0, -1.0)
        left = jnp.where((v < 0) & (action == 0), 1.0, jnp.where(v > 0, 0.0, -1.0))
        aux = self.aux_scale * jnp.stack([0.0, bang, left])[heuristic]
        return {"s": s2, "done": done}, done.astype(jnp.float32), jnp.where(done, 0.0, aux), done


# ----------------------------------------------------------------------------- rollouts


def rollout(env, logits_fn, theta, key: jax.Array, heuristic: jax.Array, batch: int) -> dict[str, jax.Array]:
    """`batch` episodes of at most `env.horizon` steps with π_θ(a|s) = softmax(logits_fn(θ, x(s))).

    Returns arrays of shape (batch, horizon[, ...]): x (features of s_t), a, r_p, r_aux, mask (1 while the
    episode is running at t, i.e. a_t was taken in a live state).
    """

    def one_episode(k):
        k_reset, k_run = jax.random.split(k)
        # all the randomness of the episode is drawn up front: PRNG calls inside the scan make XLA compile slowly
        uniforms = jax.random.uniform(k_run, (env.horizon, 3))

        def body(state, u):
            x = env.features(state)
            probs = jax.nn.softmax(logits_fn(theta, x))
            a = jnp.minimum(jnp.sum(jnp.cumsum(probs) < u[0]), env.n_actions - 1)  # inverse-CDF sampling
            nxt, r_p, r_aux, done = env.step(state, a, u[1:], heuristic)
            alive = ~state["done"]
            nxt = jax.tree.map(lambda new, old: jnp.where(alive, new, old), nxt, state)
            nxt["done"] = state["done"] | done
            m = alive.astype(jnp.float32)
            return nxt, {"x": x, "a": a, "r_p": r_p * m, "r_aux": r_aux * m, "mask": m}

        _, traj = jax.lax.scan(body, env.reset(k_reset), uniforms)
        return traj

    return jax.vmap(one_episode)(jax.random.split(key, batch))


def linear_logits(theta: jax.Array, x: jax.Array) -> jax.Array:
    """Linear-softmax policy: logits = xᵀ θ, θ of shape (n_features, n_actions) (tabular for one-hot x)."""
    return x @ theta


ENVS = {"gridworld": GridWorld, "cartpole": CartPole, "mountaincar": MountainCar, "maze": ContinuousMaze}
