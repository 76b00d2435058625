"""D4RL-style offline datasets made locally: an online TD3 agent (JAX) collects them on gymnasium envs.

For each environment this module
1. measures the random reference return R_random (uniform actions);
2. trains TD3 online (Fujimoto et al. 2018), keeping a snapshot of the actor at every evaluation;
3. picks the *expert* (best snapshot) and the *medium* policy (the snapshot whose return is closest to
   `medium_target` of the way from R_random to R_expert; D4RL's medium is a partly trained SAC), and
   measures R_expert as the expert's deterministic return (the D4RL normalisation reference);
4. writes five datasets of transitions (s, a, r, s', done):
   random (uniform actions), medium / expert (the policy plus N(0, `data_noise`²) action noise),
   medium-replay (the online replay buffer until the medium snapshot) and the "suboptimal mixed" datasets
   mixed-<p>: whole random episodes with a share p% of whole expert *episodes* (trajectory level), one per
   fraction in `mixed_expert_fractions`.
Datasets are stored in the Minari format (`minari.create_dataset_from_buffers`, HDF5) under
`<cache>/a2pr/minari/a2pr/<env>-<hash>/<dataset>-v0`, keyed by a hash of the `DataConfig`, and read back with
`from_minari`, which takes any `minari.MinariDataset` (a real D4RL/Minari dataset on a machine that has one).

Environments (`ENVS`): `pendulum` = gymnasium's JAX-functional Pendulum (`phys2d/Pendulum-v0`, the same
dynamics and reward as Pendulum-v1, 200 steps) whose rollouts are jitted whole; `invpendulum` = MuJoCo
`InvertedPendulum-v5` with a 200-step time limit (stepped in Python; episodes end early when the pole falls,
`done` = 1 there; time-outs are not terminals); `reacher`, `halfcheetah`, `hopper`, `walker2d` (MuJoCo v5) for
larger runs. Policies act in [-1, 1]; actions are rescaled by `max_action` for the env.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reprozoo.common.cache import cache_root
from reprozoo.papers.a2pr.nets import Actor, DoubleCritic

STANDARD = ("random", "medium", "medium-replay", "expert")


def mixed_name(fraction: float) -> str:
    """Name of the mixed dataset with `fraction` expert episodes: 0.05 -> "mixed-5"."""
    return f"mixed-{100 * fraction:g}"


def is_mixed(name: str) -> bool:
    return name.startswith("mixed-")


Policy = Callable[..., jax.Array]  # (params, obs [N, d], key) -> action [N, |A|] in [-1, 1]


# ----------------------------------------------------------------------------- environments


@dataclass(frozen=True)
class EnvSpec:
    name: str
    gym_id: str
    obs_dim: int
    act_dim: int
    horizon: int
    max_action: float
    reward_scale: float
    """Training rewards are r * reward_scale (same for every method); returns are reported unscaled."""


ENVS = {
    "pendulum": EnvSpec("pendulum", "phys2d/Pendulum-v0", 3, 1, 200, 2.0, 0.1),
    "invpendulum": EnvSpec("invpendulum", "InvertedPendulum-v5", 4, 1, 200, 3.0, 0.1),
    "reacher": EnvSpec("reacher", "Reacher-v5", 10, 2, 50, 1.0, 1.0),
    # the D4RL locomotion tasks of the paper (gymnasium v5 versions; for the `full` preset)
    "halfcheetah": EnvSpec("halfcheetah", "HalfCheetah-v5", 17, 6, 1000, 1.0, 1.0),
    "hopper": EnvSpec("hopper", "Hopper-v5", 11, 3, 1000, 1.0, 1.0),
    "walker2d": EnvSpec("walker2d", "Walker2d-v5", 17, 6, 1000, 1.0, 1.0),
}


@partial(jax.jit, static_argnames=("policy", "n", "horizon"))
def _pendulum_episodes(policy: Policy, params, n: int, key: jax.Array, horizon: int) -> dict[str, jax.Array]:
    """n Pendulum episodes under `policy`, vmapped over episodes and scanned over time (all jitted)."""
    from gymnasium.envs.phys2d.pendulum import PendulumFunctional

    env = PendulumFunctional()
    k0, kpol = jax.random.split(key)
    state = jax.vmap(env.initial)(jax.random.split(k0, n))

    def step(state, k):
        obs = jax.vmap(lambda x: env.observation(x, None))(state)
        act = policy(params, obs, k)
        nxt = jax.vmap(lambda s, a: env.transition(s, a))(state, act * env.max_torque)
        rew = jax.vmap(lambda s, a, s2: env.reward(s, a, s2, None))(state, act * env.max_torque, nxt)
        return nxt, (obs, act, rew, jax.vmap(lambda x: env.observation(x, None))(nxt))

    _, (obs, act, rew, nobs) = jax.lax.scan(step, state, jax.random.split(kpol, horizon))
    swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  [T, n, ...] -> [n, T, ...]
    return {"obs": swap(obs), "act": swap(act), "rew": swap(rew), "next_obs": swap(nobs)}


def _import_gym():
    """gymnasium, imported lazily (the JAX-only envs do not need it)."""
    import gymnasium as gym

    return gym


_GYM_ENVS: dict[tuple[str, int], list] = {}


def _gym_episodes(spec: EnvSpec, policy: Policy, params, n: int, key: jax.Array, seed: int) -> dict[str, np.ndarray]:
    """n episodes of a Python gymnasium env stepped in lock-step, the policy called once per step on all.

    An episode that terminates stops there: its later steps get `valid` = 0. The unwrapped env is stepped
    (the time limit is `spec.horizon`, applied here) to skip the wrappers' per-step overhead."""
    gym = _import_gym()
    envs = _GYM_ENVS.setdefault((spec.gym_id, n), [gym.make(spec.gym_id).unwrapped for _ in range(n)])
    obs = np.stack([e.reset(seed=seed * 100_003 + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    out = {
        k: np.zeros((n, spec.horizon, d), np.float32)
        for k, d in [("obs", spec.obs_dim), ("act", spec.act_dim), ("next_obs", spec.obs_dim)]
    }
    for k in ("rew", "done", "valid"):
        out[k] = np.zeros((n, spec.horizon), np.float32)
    alive = np.ones(n, bool)
    pol = _jitted(policy)
    for t, k in enumerate(jax.random.split(key, spec.horizon)):
        act = np.asarray(pol(params, jnp.asarray(obs), k))
        out["obs"][:, t], out["act"][:, t], out["valid"][:, t] = obs, act, alive
        for i in np.flatnonzero(alive):
            nobs, r, term, _, _ = envs[i].step(act[i] * spec.max_action)
            out["next_obs"][i, t], out["rew"][i, t], out["done"][i, t] = nobs, r, term
            alive[i] = not term
        if not alive.any():
            break
        obs = out["next_obs"][:, t]
    return out


_JIT: dict = {}


def _jitted(policy: Policy):
    return _JIT.setdefault(policy, jax.jit(policy))


def episodes(spec: EnvSpec, policy: Policy, params, n: int, key: jax.Array, seed: int = 0) -> dict[str, np.ndarray]:
    """Roll out `n` episodes of `policy(params, obs, key)`: obs/act/next_obs [n, T, d]; rew, done (terminal),
    valid (step taken) [n, T]; rewards unscaled."""
    if spec.name == "pendulum":
        out = {k: np.asarray(v) for k, v in _pendulum_episodes(policy, params, n, key, spec.horizon).items()}
        return {**out, "done": np.zeros_like(out["rew"]), "valid": np.ones_like(out["rew"])}
    return _gym_episodes(spec, policy, params, n, key, seed)


def uniform_policy(params, obs, k):
    """Uniform random actions; `params` is any array whose last axis has length |A|."""
    return jax.random.uniform(k, (obs.shape[0], params.shape[-1]), minval=-1.0, maxval=1.0)


@lru_cache
def actor_policy(hidden: tuple[int, ...], act_dim: int, noise: float = 0.0) -> Policy:
    """(params, s, key) ↦ clip(π(s) + N(0, noise²), -1, 1) for an `Actor(hidden, act_dim)` (cached: stable jit)."""
    actor = Actor(hidden, act_dim)

    def pol(params, obs, k):
        a = actor.apply(params, obs)
        return jnp.clip(a + noise * jax.random.normal(k, a.shape), -1.0, 1.0)

    return pol


# ----------------------------------------------------------------------------- online TD3 (data collector)


@dataclass(frozen=True)
class DataConfig:
    """How the offline datasets of one environment are generated (hashed into the cache key)."""

    env: str = "pendulum"
    online_steps: int = 12_000
    """Environment steps of online TD3."""
    start_steps: int = 1_000
    """Initial uniform-random steps before TD3 acts."""
    n_envs: int = 4
    """Episodes collected in parallel per online chunk (then as many TD3 updates as transitions)."""
    eval_every: int = 2_000
    """Online steps between evaluations / actor snapshots."""
    eval_episodes: int = 10
    ref_episodes: int = 50
    """Episodes used to measure the random and expert reference returns."""
    transitions: int = 20_000
    """Transitions per dataset (medium-replay: the online buffer, capped at this size)."""
    medium_target: float = 0.5
    """The medium policy's normalised return target (fraction of the random→expert gap)."""
    data_noise: float = 0.1
    """Std of the Gaussian action noise of the medium / expert data-collection policies."""
    mixed_expert_fractions: tuple[float, ...] = (0.01, 0.05, 0.1)
    """Shares of expert *episodes* in the mixed (random + expert episodes) datasets, one dataset each."""
    hidden: int = 64
    lr: float = 1e-3
    batch: int = 256
    gamma: float = 0.99
    seed: int = 0

    def key(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return f"{self.env}-{hashlib.sha1(blob).hexdigest()[:10]}"


def _td3_init(spec: EnvSpec, cfg: DataConfig, key):
    actor, critic = Actor((cfg.hidden,) * 2, spec.act_dim), DoubleCritic((cfg.hidden,) * 2)
    ka, kc = jax.random.split(key)
    s, a = jnp.zeros((1, spec.obs_dim)), jnp.zeros((1, spec.act_dim))
    pa, pc = actor.init(ka, s), critic.init(kc, s, a)
    opt = optax.adam(cfg.lr)
    state = {
        "actor": pa,
        "critic": pc,
        "actor_t": pa,
        "critic_t": pc,
        "opt_a": opt.init(pa),
        "opt_c": opt.init(pc),
        "step": jnp.zeros((), jnp.int32),
    }
    return actor, critic, opt, state


def _td3_updates(actor, critic, opt, cfg: DataConfig, state, batches, key):
    """TD3 updates over stacked batches [K, B, ...] with `lax.scan` (critic every step, actor every 2nd)."""

    def update(state, inp):
        (s, a, r, s2, d), k = inp
        noise = jnp.clip(0.2 * jax.random.normal(k, a.shape), -0.5, 0.5)
        a2 = jnp.clip(actor.apply(state["actor_t"], s2) + noise, -1.0, 1.0)
        y = r + cfg.gamma * (1.0 - d) * jnp.minimum(*critic.apply(state["critic_t"], s2, a2))

        def critic_loss(pc):
            q1, q2 = critic.apply(pc, s, a)
            return ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()

        g = jax.grad(critic_loss)(state["critic"])
        upd, opt_c = opt.update(g, state["opt_c"])
        pc = optax.apply_updates(state["critic"], upd)
        g = jax.grad(lambda pa: -critic.apply(pc, s, actor.apply(pa, s))[0].mean())(state["actor"])
        upd, opt_a = opt.update(g, state["opt_a"])
        do = (state["step"] % 2) == 1
        pick = lambda new, old: jax.tree.map(lambda x, y: jnp.where(do, x, y), new, old)  # noqa: E731
        pa = pick(optax.apply_updates(state["actor"], upd), state["actor"])
        opt_a = pick(opt_a, state["opt_a"])
        soft = lambda t, p: jax.tree.map(lambda x, y: 0.995 * x + 0.005 * y, t, p)  # noqa: E731
        new = {
            "actor": pa,
            "critic": pc,
            "opt_a": opt_a,
            "opt_c": opt_c,
            "step": state["step"] + 1,
            "actor_t": pick(soft(state["actor_t"], pa), state["actor_t"]),
            "critic_t": pick(soft(state["critic_t"], pc), state["critic_t"]),
        }
        return new, None

    keys = jax.random.split(key, batches[0].shape[0])
    return jax.lax.scan(update, state, (batches, keys))[0]


FIELDS = ("obs", "act", "rew", "next_obs", "done", "end")
"""Flat transitions; `done` = terminal (used in TD targets), `end` = last transition of its episode
(terminal, time limit or cut), which delimits the episodes."""


def _flat(ep: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Valid steps of [n, T, ...] episodes as flat transitions (episode by episode)."""
    valid = ep["valid"] > 0
    ep = {**ep, "end": (valid & ~np.concatenate([valid[:, 1:], np.zeros_like(valid[:, :1])], 1)).astype(np.float32)}
    keep = valid.reshape(-1)
    return {k: ep[k].reshape(-1, *ep[k].shape[2:])[keep] for k in FIELDS}


def _cut(d: dict[str, np.ndarray], start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
    """Transitions [start, stop); the last kept transition ends its (possibly truncated) episode."""
    out = {k: v[start:stop].copy() for k, v in d.items()}
    if len(out["end"]):
        out["end"][-1] = 1.0
    return out


def episode_bounds(d: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    """[(start, stop)] of the episodes of flat transitions, from the `end` flags."""
    stops = np.flatnonzero(d["end"] > 0) + 1
    return list(zip(np.r_[0, stops[:-1]].tolist(), stops.tolist(), strict=True))


def mix_episodes(random: dict, expert: dict, fraction: float, transitions: int) -> dict[str, np.ndarray]:
    """The suboptimal mixed dataset at trajectory level: n_e = max(1, round(fraction · N)) whole expert episodes
    followed by whole random episodes, N chosen so that the total is `transitions` (the last random episode is cut).

    N = transitions / (fraction · L_expert + (1 − fraction) · L_random) with the mean episode lengths L."""
    exp_eps, rnd_eps = episode_bounds(expert), episode_bounds(random)
    length = lambda eps: np.mean([b - a for a, b in eps])  # noqa: E731
    n_total = transitions / (fraction * length(exp_eps) + (1 - fraction) * length(rnd_eps))
    n_exp = min(max(1, round(fraction * n_total)), len(exp_eps))
    exp_part = _cut(expert, 0, exp_eps[n_exp - 1][1])
    rnd_part = _cut(random, 0, max(transitions - len(exp_part["rew"]), 0))
    return {k: np.concatenate([exp_part[k], rnd_part[k]]) for k in FIELDS}


def _mean_return(ep) -> float:
    return float((ep["rew"] * ep["valid"]).sum(1).mean())


def _collect(spec, policy, params, transitions, key, seed, n: int = 16) -> dict[str, np.ndarray]:
    """At least `transitions` transitions from whole episodes (batches of n), cut to exactly that many."""
    parts, total = [], 0
    while total < transitions:
        key, k = jax.random.split(key)
        parts.append(_flat(episodes(spec, policy, params, n, k, seed + len(parts))))
        total += len(parts[-1]["rew"])
    return _cut({k: np.concatenate([p[k] for p in parts]) for k in FIELDS}, 0, transitions)


def generate(cfg: DataConfig, log: Callable[[str], None] = print) -> dict:
    """Run the whole pipeline for one environment; returns {"ref": {...}, "datasets": {name: arrays}}."""
    spec = ENVS[cfg.env]
    zeros, hid = jnp.zeros(spec.act_dim), (cfg.hidden,) * 2
    rng = np.random.default_rng(cfg.seed)
    key = jax.random.key(cfg.seed)
    key, k = jax.random.split(key)
    r_random = _mean_return(episodes(spec, uniform_policy, zeros, cfg.ref_episodes, k, seed=10_000))
    actor, critic, opt, state = _td3_init(spec, cfg, key)
    updates = jax.jit(partial(_td3_updates, actor, critic, opt, cfg))
    buf: list[dict[str, np.ndarray]] = []
    snapshots: list[tuple[int, float, object]] = []
    chunk = cfg.n_envs * spec.horizon  # TD3 updates per chunk (>= as many new transitions are collected first)
    steps, chunk_id, next_eval = 0, 0, cfg.eval_every
    while steps < cfg.online_steps:
        key, ku, ke = jax.random.split(key, 3)
        new = 0
        while new < chunk:
            key, kr = jax.random.split(key)
            if steps < cfg.start_steps:
                pol, par = uniform_policy, zeros
            else:
                pol, par = actor_policy(hid, spec.act_dim, 0.1), state["actor"]
            buf.append(_flat(episodes(spec, pol, par, cfg.n_envs, kr, seed=chunk_id)))
            chunk_id, new, steps = chunk_id + 1, new + len(buf[-1]["rew"]), steps + len(buf[-1]["rew"])
        data = {k: np.concatenate([b[k] for b in buf]) for k in FIELDS}
        idx = rng.integers(0, len(data["rew"]), size=(chunk, cfg.batch))
        batches = (
            data["obs"][idx],
            data["act"][idx],
            data["rew"][idx] * spec.reward_scale,
            data["next_obs"][idx],
            data["done"][idx],
        )
        state = updates(state, tuple(jnp.asarray(b) for b in batches), ku)
        if steps >= next_eval or steps >= cfg.online_steps:
            next_eval += cfg.eval_every
            ret = _mean_return(
                episodes(spec, actor_policy(hid, spec.act_dim), state["actor"], cfg.eval_episodes, ke, 20_000 + steps)
            )
            snapshots.append((steps, ret, state["actor"]))
            log(f"[a2pr data] {cfg.env}: online TD3 step {steps}: return {ret:.1f} (random {r_random:.1f})")
    # expert = best snapshot, re-measured on ref_episodes; medium = closest to the target normalised return
    _, _, expert_params = max(snapshots, key=lambda x: x[1])
    key, k = jax.random.split(key)
    r_expert = _mean_return(episodes(spec, actor_policy(hid, spec.act_dim), expert_params, cfg.ref_episodes, k, 30_000))
    target = r_random + cfg.medium_target * (r_expert - r_random)
    medium_step, medium_ret, medium_params = min(snapshots, key=lambda x: abs(x[1] - target))
    replay = {k: np.concatenate([b[k] for b in buf]) for k in FIELDS}
    replay = _cut(replay, max(medium_step - cfg.transitions, 0), medium_step)
    keys = jax.random.split(key, 4)
    noisy = actor_policy(hid, spec.act_dim, cfg.data_noise)
    sets = {
        "random": _collect(spec, uniform_policy, zeros, cfg.transitions, keys[0], 40_000),
        "medium": _collect(spec, noisy, medium_params, cfg.transitions, keys[1], 50_000),
        "medium-replay": replay,
        "expert": _collect(spec, noisy, expert_params, cfg.transitions, keys[2], 60_000),
    }
    for f in cfg.mixed_expert_fractions:
        sets[mixed_name(f)] = mix_episodes(sets["random"], sets["expert"], f, cfg.transitions)
    ref = {
        "random": r_random,
        "expert": r_expert,
        "medium_policy_return": medium_ret,
        "medium_step": medium_step,
        "dataset_reward_per_step": {n: float(d["rew"].mean()) for n, d in sets.items()},
        "dataset_episodes": {n: len(episode_bounds(d)) for n, d in sets.items()},
    }
    log(
        f"[a2pr data] {cfg.env}: R_random {r_random:.1f}, R_expert {r_expert:.1f}, medium {medium_ret:.1f} "
        f"(step {medium_step})"
    )
    return {"ref": ref, "datasets": sets}


def minari_root() -> Path:
    """Where the generated datasets live in the Minari format (`MINARI_DATASETS_PATH` while they are used)."""
    return cache_root() / "a2pr" / "minari"


def minari_id(cfg: DataConfig, name: str) -> str:
    """Minari dataset id `namespace/env_name/dataset-v0` of one generated dataset."""
    return f"a2pr/{cfg.key()}/{name}-v0"


def _with_minari_root(fn):
    """Run `fn()` with `MINARI_DATASETS_PATH` pointing at `minari_root()` (restored afterwards)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(minari_root())
    try:
        return fn()
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def to_minari(d: dict[str, np.ndarray], dataset_id: str, spec: EnvSpec, description: str):
    """Write flat transitions as a Minari dataset: one `EpisodeBuffer` per episode (observations T + 1 long,
    terminations = `done`, truncations = episode ends that are not terminals)."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = []
    for i, (a, b) in enumerate(episode_bounds(d)):
        term = d["done"][a:b] > 0
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=np.concatenate([d["obs"][a:b], d["next_obs"][b - 1 : b]]),
                actions=d["act"][a:b],
                rewards=d["rew"][a:b],
                terminations=term,
                truncations=~term & (np.arange(b - a) == b - a - 1),
                infos={},
            )
        )
    with warnings.catch_warnings():  # Minari asks for author / e-mail / permalink / env spec: none apply here
        warnings.simplefilter("ignore", UserWarning)
        return minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=gym.spaces.Box(-np.inf, np.inf, (spec.obs_dim,), np.float32),
            action_space=gym.spaces.Box(-1.0, 1.0, (spec.act_dim,), np.float32),
            algorithm_name="reprozoo papers.a2pr.data (online TD3 snapshots)",
            description=description,
        )


def from_minari(dataset) -> dict[str, np.ndarray]:
    """Flat transitions (s, a, r, s′, done, end) of a `minari.MinariDataset`, episode by episode."""
    parts = []
    for ep in dataset.iterate_episodes():
        obs, n = np.asarray(ep.observations, np.float32), len(ep.rewards)
        end = np.zeros(n, np.float32)
        end[-1] = 1.0
        parts.append(
            {
                "obs": obs[:-1],
                "act": np.asarray(ep.actions, np.float32).reshape(n, -1),
                "rew": np.asarray(ep.rewards, np.float32),
                "next_obs": obs[1:],
                "done": np.asarray(ep.terminations, np.float32),
                "end": end,
            }
        )
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}


def load(cfg: DataConfig, log: Callable[[str], None] = print) -> dict:
    """The datasets of `cfg`: generated once, stored as Minari datasets (plus a JSON of reference returns) and
    read back through Minari on every later call."""
    import minari

    names = (*STANDARD, *map(mixed_name, cfg.mixed_expert_fractions))
    meta = minari_root() / "a2pr" / cfg.key() / "reference.json"
    if not meta.exists():
        shutil.rmtree(meta.parent, ignore_errors=True)  # a generation that stopped half-way
        world = generate(cfg, log)
        spec = ENVS[cfg.env]
        for n in names:
            _with_minari_root(lambda n=n: to_minari(world["datasets"][n], minari_id(cfg, n), spec, f"{cfg.env} {n}"))
        meta.write_text(json.dumps(world["ref"], indent=1))
    sets = {n: _with_minari_root(lambda n=n: from_minari(minari.load_dataset(minari_id(cfg, n)))) for n in names}
    return {"ref": json.loads(meta.read_text()), "datasets": sets}


def normalized_score(ret, r_random: float, r_expert: float):
    """D4RL normalisation: 100 · (R − R_random) / (R_expert − R_random)."""
    return 100.0 * (ret - r_random) / (r_expert - r_random)
