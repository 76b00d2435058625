"""Headline experiments: BARFI vs fixed-reward baselines under good / bad / no heuristics (gridworld, CartPole),
and A-PARL vs a PEBBLE-style alternating learner on preference-based alignment (gridworld, scripted oracle).

Seeds and heuristics are vmapped; each method is one jitted program per environment (the learners: `train.py`);
the records of the logs are `metrics.py`'s, the figure `report.py`'s.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from reprozoo.common import checkpoint
from reprozoo.common import distributed as dist
from reprozoo.common.cache import enable_jax_compilation_cache
from reprozoo.common.config import RunConfig, check_positive, ensure
from reprozoo.common.progress import track
from reprozoo.common.results import record
from reprozoo.papers.bar_parl import train
from reprozoo.papers.bar_parl.envs import HEURISTICS, CartPole, ContinuousMaze, GridWorld, MountainCar
from reprozoo.papers.bar_parl.metrics import barfi_rows, curve_rows, final_return, parl_target_rows

ENV_NAMES: tuple[str, ...] = ("gridworld", "cartpole")
ALL_ENVS: tuple[str, ...] = (*ENV_NAMES, "mountaincar", "maze")
"""Every BARFI environment; mountaincar (barfi-mc) and maze (the official continuous gridworld, barfi-gw) run in the
full preset."""
ENV_KEY = {"gridworld": "gw", "cartpole": "cp", "mountaincar": "mc", "maze": "mz"}
"""The prefix of each environment's Config fields (<key>_iterations, <key>_actor_lr, <key>_phi_lr)."""
BARFI_VARIANT_NAMES: tuple[str, ...] = (  # train.VARIANTS
    "barfi",
    "barfi_fo",
    "shrink",
    "barfi_rand",
    "shrink_rand",
    "barfi_lr_x",
)
BARFI_METHODS: tuple[str, ...] = (*BARFI_VARIANT_NAMES, "rp", "naive", "potential")
PARL_METHODS: tuple[str, ...] = ("pebble", "aparl")  # train_preference modes 0, 1


@dataclass
class Config(RunConfig):
    """BARFI + PARL in the control world (JAX gridworld and CartPole)."""

    envs: tuple[str, ...] = ENV_NAMES
    """Environments for the BARFI experiment (gridworld, cartpole)."""
    gw_iterations: int = 150
    """Gridworld: outer iterations of the BARFI learner (each collects one fresh batch of `batch` episodes)."""
    cp_iterations: int = 64
    """CartPole: outer iterations (64 × 16 = 1024 episodes; the paper's CartPole runs: 1000)."""
    cp_horizon: int = 200
    """CartPole: episode cap (gymnasium CartPole-v1 uses 500, CartPole-v0 200)."""
    batch: int = 16
    """Episodes per batch (fresh episodes per BARFI iteration; episodes per replayed policy step)."""
    replay_steps: int = 15
    """BARFI learner: policy steps per iteration, each on `batch` episodes replayed from the buffer (official
    delta × inner_mul = 3 × 5)."""
    replay_buffer: int = 1000
    """BARFI learner: FIFO replay buffer, in episodes (official buffer_size: gridworld 1000, CartPole 10000)."""
    hess_mul: int = 15
    """BARFI: the curvature terms use hess_mul × batch older replayed episodes (official hess_mul = 15)."""
    inner_steps: int = 5
    """PARL: on-policy policy-gradient steps (one fresh batch each) per outer iteration."""
    gamma: float = 0.99
    """True discount γ of J_p (official: 0.99)."""
    gw_actor_lr: float = 0.05
    """Gridworld: RMSprop learning rate of the tabular softmax policy."""
    cp_actor_lr: float = 0.02
    """CartPole: RMSprop learning rate of the linear softmax policy."""
    entropy: float = 0.25
    """Entropy bonus λ_H of the inner objective (official actor_reg = 0.25 in every PaperPlots config)."""
    gw_phi_lr: float = 0.005
    """Gridworld: RMSprop learning rate of φ_1, φ_2, ψ (official barfi-gw PaperPlots reward_lr = gamma_lr = 0.005)."""
    cp_phi_lr: float = 0.004
    """CartPole: RMSprop learning rate of φ (official barfi-cp PaperPlots reward_lr = gamma_lr ∈ {0.001, 0.004})."""
    phi_lr_sensitivity: float = 10.0
    """The sensitivity row `barfi_lr_x`: BARFI (Neumann) with the φ learning rate × this (10×: the v1 main setting)."""
    phi_shrink: float = 0.025
    """Decoupled shrinkage of φ_1, φ_2 towards 0 per outer iteration, φ_i ← (1 − phi_shrink) φ_i (r_φ → r_p, the
    official reward_L2's target); the same for BARFI, its control and the sensitivity row (v1: 0.05 × 0.5)."""
    gw_good: str = "progress"
    """Gridworld good heuristic (envs.GridWorld.good): progress (v2), sqdist (v1), official."""
    early_fraction: float = 0.2
    """Claim 2's learning speed: the mean return over the first `early_fraction` of the iterations (`early_return`)."""
    neumann_alpha: float = 5e-4
    """Neumann-series step α (official Neumann_alpha ∈ {1e-3, 5e-4, 1e-4})."""
    neumann_loops: int = 5
    """Neumann-series terms K (official Neumann_loops = 5)."""
    parl_iterations: int = 60
    """PARL: outer iterations (one batch of preference queries each)."""
    queries: int = 8
    """PARL: preference queries (trajectory pairs) per outer iteration; needs 2 × queries <= batch."""
    buffer: int = 400
    """PARL: preference buffer size (pairs)."""
    reward_steps: int = 20
    """PARL: Adam steps on the reward model per outer iteration."""
    reward_lr: float = 0.05
    """PARL: Adam learning rate of the reward model ν."""
    reward_l2: float = 1e-3
    """PARL: L2 penalty on ν in the preference likelihood."""
    parl_reward_models: tuple[str, ...] = ("tabular", "coarse")
    """PARL: learned reward models (GridWorld.reward_basis): "tabular" (realisable) and "coarse" (x, y, 1, centre:
    misspecified, so which trajectories the policy shows the teacher changes the fit — where the term can matter)."""
    parl_damping: float = 1.0
    """PARL: μ in A-PARL's (∇²_θ V − μI)⁻¹ (the lower level made μ-strongly concave; the surrogate's largest
    Hessian eigenvalue was measured at +0.19, so μ = 1 keeps the solve well conditioned)."""
    curve_points: int = 30
    """Points kept per learning curve in records.jsonl."""
    mc_iterations: int = 166
    """MountainCar: outer iterations (official barfi-mc PaperPlots "max_episodes": 500 at 3 episodes each)."""
    mc_horizon: int = 2000
    """MountainCar: episode cap (official `max_horizon` = 2000)."""
    mc_replay_buffer: int = 50
    """MountainCar: FIFO replay buffer in episodes (official PaperPlots "buffer_size": [5, 10, 50]; 50 holds the
    hess_mul × batch older episodes of the curvature terms)."""
    mc_actor_lr: float = 0.0625
    """MountainCar: RMSprop learning rate of the linear softmax policy (official PaperPlots "actor_lr": 0.0625)."""
    mc_phi_lr: float = 0.015625
    """MountainCar: RMSprop learning rate of φ (official PaperPlots "reward_lr": [0.015625, 0.0625], the smaller)."""
    mz_iterations: int = 150
    """Continuous maze: outer iterations (official barfi-gw PaperPlots "max_episodes": 2000 at 3 episodes each in
    the full preset)."""
    mz_actor_lr: float = 0.005
    """Continuous maze: RMSprop learning rate of the Fourier-linear softmax policy (official "actor_lr": [0.005,
    0.001])."""
    mz_phi_lr: float = 0.005
    """Continuous maze: RMSprop learning rate of φ (official "reward_lr": [0.005])."""
    max_steps: int = 0
    """Cap on the outer iterations of every training (BARFI, baselines, PARL). 0: no cap. A capped run's claims
    are UNTESTED."""

    def validate(self) -> None:
        super().validate()
        for name in self.envs:
            ensure(name in ALL_ENVS, "envs", f"unknown environment {name!r}; choose from {ALL_ENVS}")
        ensure(self.max_steps >= 0, "max_steps", f"must be >= 0, got {self.max_steps}")
        check_positive(
            self,
            "gw_iterations",
            "cp_iterations",
            "cp_horizon",
            "inner_steps",
            "batch",
            "replay_steps",
            "replay_buffer",
            "hess_mul",
            "gw_actor_lr",
            "cp_actor_lr",
            "gw_phi_lr",
            "cp_phi_lr",
            "phi_lr_sensitivity",
            "neumann_alpha",
            "neumann_loops",
            "parl_iterations",
            "queries",
            "buffer",
            "reward_steps",
            "reward_lr",
            "parl_damping",
            "curve_points",
            "mc_iterations",
            "mc_horizon",
            "mc_actor_lr",
            "mc_phi_lr",
            "mc_replay_buffer",
            "mz_iterations",
            "mz_actor_lr",
            "mz_phi_lr",
        )
        ensure(0 < self.gamma <= 1, "gamma", f"must lie in (0, 1], got {self.gamma}")
        ensure(self.entropy >= 0, "entropy", f"must be >= 0, got {self.entropy}")
        ensure(0 <= self.phi_shrink < 1, "phi_shrink", f"must lie in [0, 1), got {self.phi_shrink}")
        ensure(0 < self.early_fraction <= 1, "early_fraction", f"must lie in (0, 1], got {self.early_fraction}")
        ensure(self.gw_good in ("progress", "sqdist", "official"), "gw_good", f"unknown {self.gw_good!r}")
        ensure(self.reward_l2 >= 0, "reward_l2", f"must be >= 0, got {self.reward_l2}")
        ensure(2 * self.queries <= self.batch, "queries", f"2 × queries must be <= batch={self.batch}")
        ensure(
            self.replay_buffer >= 2 * self.batch,
            "replay_buffer",
            f"must hold at least two batches (2 × {self.batch}), got {self.replay_buffer}",
        )
        ensure("gridworld" in self.envs, "envs", "must include gridworld (PARL's target return is defined from it)")

    def capped(self) -> bool:
        """True when --max-steps cuts a training short of its preset."""
        its = [getattr(self, f"{ENV_KEY[e]}_iterations") for e in self.envs] + [self.parl_iterations]
        return any(0 < self.max_steps < n for n in its)
        for name in self.parl_reward_models:
            ensure(name in ("tabular", "coarse"), "parl_reward_models", f"unknown {name!r}; choose tabular, coarse")


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=2,
        envs=("gridworld",),
        gw_iterations=4,
        cp_iterations=3,
        cp_horizon=30,
        inner_steps=2,
        batch=4,
        replay_steps=2,
        replay_buffer=16,
        hess_mul=2,
        parl_iterations=3,
        queries=2,
        buffer=16,
        reward_steps=2,
        curve_points=4,
    ),
    # 16 evaluation seeds: the pre-registered power rule on the 6-seed pilot (README "Pre-registration v2")
    "quick": Config(preset="quick", seeds=16),
    # Paper scale (barfi-gw/experiments/PaperPlots/*/barfineumann.json, barfi-cp): 40 seeds ("seed": [1..40]),
    # "max_episodes": 2000, "batch_size": 1, "delta": 3 episodes between updates, "actor_lr": 0.005,
    # "reward_lr": 0.005, "actor_reg": 0.25, "Neumann_alpha": 0.0005, "Neumann_loops": 5; CartPole-v1 cap 500.
    # Continuous maze (barfi-gw/experiments/PaperPlots/{bad,good}/barfineumann.json): "env_name": "Maze_badreward",
    # "max_episodes": 2000, "actor_lr": [0.005, 0.001], "reward_lr": [0.005], "buffer_size": [1000]; Fourier order 3.
    # MountainCar (barfi-mc/experiments/PaperPlots/barfineumann.json): "env_name": "MCSenseSparseBangAux",
    # "env_param": [1], "max_episodes": [500], "actor_lr": [0.0625], "reward_lr": [0.015625, 0.0625], "tiles": 4,
    # "tilings": 5; the mc_* defaults of Config hold these values.
    "full": Config(
        preset="full",
        envs=(*ENV_NAMES, "mountaincar", "maze"),
        mz_iterations=2000 // 3,
        seeds=40,
        gw_iterations=2000 // 3,
        cp_iterations=2000 // 3,
        cp_horizon=500,
        inner_steps=3,
        batch=1 * 3,
        replay_buffer=1000,
        gw_actor_lr=0.005,
        cp_actor_lr=0.005,
        entropy=0.25,
        gw_phi_lr=0.005,
        cp_phi_lr=0.004,
        phi_shrink=0.025 * 150 / (2000 // 3),  # the quick preset's total shrinkage over the longer run
        neumann_alpha=5e-4,
        neumann_loops=5,
        parl_iterations=300,
        queries=1,
        buffer=2000,
    ),
}


# ----------------------------------------------------------------------------- running


def make_env(name: str, cfg: Config):
    if name == "mountaincar":
        return MountainCar(horizon=cfg.mc_horizon)
    if name == "maze":
        return ContinuousMaze()
    return GridWorld(good=cfg.gw_good) if name == "gridworld" else CartPole(horizon=cfg.cp_horizon)


def hyper(cfg: Config, env_name: str, iterations: int | None = None) -> train.Hyper:
    """The learner's settings on an env; `--max-steps` caps the iterations."""
    key = ENV_KEY[env_name]
    lr, phi_lr = getattr(cfg, f"{key}_actor_lr"), getattr(cfg, f"{key}_phi_lr")
    it = iterations if iterations is not None else getattr(cfg, f"{key}_iterations")
    if cfg.max_steps:
        it = min(it, cfg.max_steps)
    return train.Hyper(
        iterations=it,
        inner_steps=cfg.inner_steps,
        batch=cfg.batch,
        replay_steps=cfg.replay_steps,
        replay_buffer=cfg.mc_replay_buffer if env_name == "mountaincar" else cfg.replay_buffer,
        hess_mul=cfg.hess_mul,
        gamma=cfg.gamma,
        actor_lr=lr,
        entropy=cfg.entropy,
        phi_lr=phi_lr,
        phi_lr_sensitivity=cfg.phi_lr_sensitivity,
        neumann_alpha=cfg.neumann_alpha,
        neumann_loops=cfg.neumann_loops,
        phi_shrink=cfg.phi_shrink,
        queries=cfg.queries,
        buffer=cfg.buffer,
        reward_steps=cfg.reward_steps,
        reward_lr=cfg.reward_lr,
        reward_l2=0.0,
    )


def _seed_keys(cfg: Config, offset: int) -> jax.Array:
    return jnp.stack([jax.random.fold_in(jax.random.key(s), offset) for s in cfg.seed_list()])


def _barfi_logs(env_name: str, job: str, cfg: Config) -> dict[str, dict[str, np.ndarray]]:
    """{method: logs of shape (seeds, heuristics, iterations)} on one environment.

    job "barfi": BARFI with the Neumann and the first-order IHVP and the shrinkage control (a traced index: one
    program);
    job "baselines": r_p / naive / potential (a traced mode: one program).
    """
    env, hp = make_env(env_name, cfg), hyper(cfg, env_name)
    keys, heur = _seed_keys(cfg, ALL_ENVS.index(env_name)), jnp.arange(len(HEURISTICS))
    if job == "barfi":
        names, flags = BARFI_VARIANT_NAMES, jnp.arange(len(train.VARIANTS))
        one = lambda k, h, f: train.train_barfi(env, hp, k, h, f)  # noqa: E731
    else:
        names, flags = train.baselines.BASELINES, jnp.arange(len(train.baselines.BASELINES))
        one = lambda k, h, m: train.train_fixed(env, hp, k, h, m)  # noqa: E731
    fn = jax.vmap(jax.vmap(jax.vmap(one, (None, 0, None)), (0, None, None)), (None, None, 0))
    logs = jax.jit(fn)(dist.shard_seeds(keys), heur, flags)  # seeds spread over the JAX devices when there are several
    return {name: {k: np.asarray(v[i]) for k, v in logs.items()} for i, name in enumerate(names)}


def _parl_logs(cfg: Config, reward_model: str) -> dict[str, dict[str, np.ndarray]]:
    """{method: {"return": (seeds, batches), "indirect_ratio": (seeds, iterations)}} for PARL_METHODS: one program,
    the mode traced. Returns are per batch of `batch` episodes (the query batch, then the inner batches)."""
    env = GridWorld()
    hp = dataclasses.replace(
        hyper(cfg, "gridworld", cfg.parl_iterations),
        reward_l2=cfg.reward_l2,
        damping=cfg.parl_damping,
        reward_basis=reward_model,
    )
    fn = jax.vmap(jax.vmap(lambda k, m: train.train_preference(env, hp, k, m), (0, None)), (None, 0))
    logs = jax.jit(fn)(_seed_keys(cfg, 100), jnp.arange(len(PARL_METHODS)))
    ret = np.asarray(logs["return"])
    ret = ret.reshape(*ret.shape[:2], -1)
    ratio = np.asarray(logs["indirect_ratio"])
    return {name: {"return": ret[i], "indirect_ratio": ratio[i]} for i, name in enumerate(PARL_METHODS)}


def _setup_jax(cfg: Config) -> None:
    """Persistent compilation cache (`common.cache`); for `smoke`, XLA's cheapest optimisation level (the run is
    dominated by compile time). Both only take effect if no JAX computation has run in this process yet."""
    if cfg.preset == "smoke" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
    enable_jax_compilation_cache()


def run(cfg: Config) -> list[dict]:
    _setup_jax(cfg)
    rows: list[dict] = []
    jobs = [(e, m) for e in cfg.envs for m in ("barfi", "baselines")] + [("parl", m) for m in cfg.parl_reward_models]
    for env_name, job in track(jobs, "bar_parl runs"):  # each (env, job) is a checkpointed unit (--resume)
        rows += checkpoint.unit((env_name, job), partial(job_rows, env_name, job, cfg, list(rows)))
    return rows


def job_rows(env_name: str, job: str, cfg: Config, earlier: list[dict]) -> list[dict]:
    """The rows of one job: BARFI or the baselines on an env (all seeds, vmapped), or PARL with one reward model
    (its target reads the gridworld `rp` baseline from the `earlier` rows)."""
    rows: list[dict] = []
    seeds = cfg.seed_list()
    if env_name != "parl":
        for method, logs in _barfi_logs(env_name, job, cfg).items():
            rows += barfi_rows(method, logs, env_name, seeds, cfg.batch, cfg.curve_points, cfg.early_fraction)
        return rows
    logs, where = _parl_logs(cfg, job), {"env": "parl", "reward_model": job}
    curves = {method: log["return"] for method, log in logs.items()}
    for method, ret in curves.items():
        rows += curve_rows(method, seeds, ret, cfg.batch, cfg.curve_points, **where)
        for i, s in enumerate(seeds):
            rows.append(record(method, s, "final_return", final_return(ret[i]), **where))
            rows.append(record(method, s, "initial_return", ret[i, 0], **where))
            ratio = logs[method]["indirect_ratio"][i]
            rows.append(record(method, s, "indirect_ratio", float(np.median(ratio)), **where))
    return rows + parl_target_rows(curves, earlier + rows, where, seeds, cfg.batch)
