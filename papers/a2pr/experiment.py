"""Headline experiment: A2PR vs TD3+BC, IQL and BC on locally generated D4RL-style datasets.

For every environment, the five datasets of `data.py` (random, medium, medium-replay, expert, mixed) are
stacked and every method trains one agent per (dataset, seed) at once: the update is `jax.vmap`-ed over agents
and `jax.lax.scan`-ned over `eval_every` gradient steps, then all agents are evaluated together. Scores are
D4RL-normalised with the locally measured random / expert returns. For A2PR the VAE's reconstruction error
of dataset actions is measured separately for positive and non-positive advantage Q_1(s, a) − V(s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from common.cache import enable_jax_compilation_cache
from common.config import RunConfig, check_fraction, check_positive, ensure
from common.results import mean_ci95, record, select
from papers.a2pr import baselines, data, method
from papers.a2pr.nets import Actor

METHODS = ("A2PR", "TD3+BC", "IQL", "BC")


@dataclass
class Config(RunConfig):
    """A2PR (Liu et al. 2024) on locally generated D4RL-style offline datasets."""

    envs: tuple[str, ...] = ("pendulum", "invpendulum")
    """Environments (keys of data.ENVS): pendulum = phys2d/Pendulum-v0 (JAX), invpendulum = InvertedPendulum-v5."""
    online_steps: tuple[int, ...] = (8_000, 12_000)
    """Online TD3 environment steps used to build each env's datasets (one per env)."""
    datasets: tuple[str, ...] = data.DATASETS
    """Datasets per env: random, medium, medium-replay, expert, mixed."""
    methods: tuple[str, ...] = METHODS
    """Methods to train: A2PR, TD3+BC, IQL, BC."""
    transitions: int = 20_000
    """Transitions per dataset (D4RL: 1M)."""
    mixed_expert_fraction: float = 0.1
    """Share of expert transitions in the mixed (random + expert) dataset."""
    steps: int = 4_000
    """Offline gradient steps per agent (paper: 1M)."""
    eval_every: int = 1_000
    """Gradient steps between evaluations."""
    eval_episodes: int = 5
    """Evaluation episodes per agent and evaluation."""
    batch: int = 128
    """Minibatch size (paper: 256)."""
    hidden: int = 64
    """Hidden width of actor / critic / value nets (paper: 256)."""
    vae_hidden: int = 64
    """Hidden width of the VAE (paper: 750)."""
    lr: float = 3e-4
    """Adam learning rate of actor, critic, value (paper: 3e-4)."""
    vae_lr: float = 1e-3
    """Adam learning rate of the VAE (paper code: torch default 1e-3)."""
    gamma: float = 0.99
    """Discount (paper default 0.99)."""
    alpha: float = 2.5
    """α of A2PR and TD3+BC (paper default 2.5)."""
    mask: float = 0.5
    """A2PR BC weight per satisfied advantage indicator (paper default 0.5)."""
    vae_weight: float = 1.0
    """A2PR weight of the positive-advantage VAE reconstruction loss (paper default 1.0)."""
    iql_tau: float = 0.7
    """IQL expectile (CORL locomotion: 0.7)."""
    iql_beta: float = 3.0
    """IQL inverse temperature (CORL locomotion: 3.0)."""
    data_seed: int = 0
    """Seed of the dataset generation (datasets are cached per data config)."""
    vae_probe: int = 4_096
    """Dataset transitions used to measure the VAE error by advantage sign."""
    log: bool = field(default=True)
    """Print progress lines."""

    def validate(self) -> None:
        super().validate()
        check_positive(
            self,
            "transitions",
            "steps",
            "eval_every",
            "eval_episodes",
            "batch",
            "hidden",
            "vae_hidden",
            "lr",
            "vae_lr",
            "alpha",
            "iql_beta",
            "vae_probe",
            "online_steps",
        )
        check_fraction(self, "gamma", "iql_tau", "mixed_expert_fraction")
        check_fraction(self, "mask", upper_open=False)
        ensure(self.vae_weight > 0, "vae_weight", f"must be > 0, got {self.vae_weight}")
        for e in self.envs:
            ensure(e in data.ENVS, "envs", f"unknown env {e!r}; choose from {sorted(data.ENVS)}")
        ensure(len(self.online_steps) == len(self.envs), "online_steps", "needs one value per env")
        for d in self.datasets:
            ensure(d in data.DATASETS, "datasets", f"unknown dataset {d!r}; choose from {data.DATASETS}")
        for m in self.methods:
            ensure(m in METHODS, "methods", f"unknown method {m!r}; choose from {METHODS}")
        ensure(self.steps % self.eval_every == 0, "steps", "must be a multiple of --eval-every")

    def data_config(self, i: int) -> data.DataConfig:
        return data.DataConfig(
            env=self.envs[i],
            online_steps=self.online_steps[i],
            transitions=self.transitions,
            mixed_expert_fraction=self.mixed_expert_fraction,
            seed=self.data_seed,
            eval_every=max(self.online_steps[i] // 12, 200),
            batch=128,
        )


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=2,
        online_steps=(1_200, 1_200),
        transitions=1_000,
        steps=40,
        eval_every=20,
        eval_episodes=2,
        batch=32,
        hidden=16,
        vae_hidden=16,
        vae_probe=256,
        log=False,
    ),
    "quick": Config(preset="quick", seeds=3),
    # Paper scale (Liu et al. 2024, Sec. 5 / official code): 1M-transition datasets of the D4RL locomotion
    # tasks, "1e6" gradient steps ("--max_timesteps 1e6"), "batch_size 256", networks 256 wide and VAE "750",
    # evaluation every "5000" steps on "10" episodes, α "2.5", mask "0.5", vae_weight "1.0", γ "0.99".
    "full": Config(
        preset="full",
        seeds=5,
        envs=("halfcheetah", "hopper", "walker2d"),
        online_steps=(1_000_000, 1_000_000, 1_000_000),
        transitions=1_000_000,
        steps=1_000_000,
        eval_every=5_000,
        eval_episodes=10,
        batch=256,
        hidden=256,
        vae_hidden=750,
    ),
}


# ----------------------------------------------------------------------------- plumbing


def _hyper(cfg: Config):
    a2pr = method.A2PRConfig(
        hidden=cfg.hidden,
        vae_hidden=cfg.vae_hidden,
        lr=cfg.lr,
        vae_lr=cfg.vae_lr,
        gamma=cfg.gamma,
        alpha=cfg.alpha,
        mask=cfg.mask,
        vae_weight=cfg.vae_weight,
    )
    base = baselines.BaselineConfig(
        hidden=cfg.hidden, lr=cfg.lr, gamma=cfg.gamma, alpha=cfg.alpha, iql_tau=cfg.iql_tau, iql_beta=cfg.iql_beta
    )
    return a2pr, base


def _algorithm(name: str, cfg: Config, act_dim: int):
    """(nets, init(key, obs_dim) -> state, update(state, batch, key) -> (state, metrics))."""
    a2pr, base = _hyper(cfg)
    if name == "A2PR":
        nets = method.make_nets(a2pr, act_dim)
        return nets, partial(method.init, a2pr, nets), partial(method.update, a2pr, nets)
    nets = baselines.make_nets(base, act_dim)
    upd = {"TD3+BC": baselines.td3_bc_update, "IQL": baselines.iql_update, "BC": baselines.bc_update}[name]
    return nets, partial(baselines.init, base, nets), partial(upd, base, nets)


def _stack(world: dict, names: tuple[str, ...]) -> dict[str, jax.Array]:
    """Datasets padded to one length and stacked on a leading axis; states normalised per dataset
    (x − μ) / (σ + 1e-3) as in TD3+BC / A2PR."""
    sets = [world["datasets"][n] for n in names]
    n_max = max(len(d["rew"]) for d in sets)
    pad = lambda x: np.concatenate([x, np.zeros((n_max - len(x), *x.shape[1:]), x.dtype)])  # noqa: E731
    mu = np.stack([d["obs"].mean(0) for d in sets])
    sd = np.stack([d["obs"].std(0) + 1e-3 for d in sets])
    out = {k: np.stack([pad(d[k]) for d in sets]) for k in data.FIELDS}
    out["obs"] = (out["obs"] - mu[:, None]) / sd[:, None]
    out["next_obs"] = (out["next_obs"] - mu[:, None]) / sd[:, None]
    out |= {"size": np.array([len(d["rew"]) for d in sets]), "mu": mu, "sd": sd}
    return {k: jnp.asarray(v) for k, v in out.items()}


def _sample(stacked, d, key, batch: int, reward_scale: float):
    idx = jax.random.randint(key, (batch,), 0, stacked["size"][d])
    g = lambda k: stacked[k][d, idx]  # noqa: E731
    return g("obs"), g("act"), g("rew") * reward_scale, g("next_obs"), g("done")


@lru_cache
def _eval_policy(hidden: tuple[int, ...], act_dim: int, n_agents: int):
    """Policy over n_agents × episodes envs: agent i acts with its own actor and state normaliser."""
    actor = Actor(hidden, act_dim)

    def pol(p, obs, key):
        o = obs.reshape(n_agents, -1, obs.shape[-1])
        o = (o - p["mu"][:, None]) / p["sd"][:, None]
        return jax.vmap(actor.apply)(p["actor"], o).reshape(obs.shape[0], act_dim)

    return pol


def evaluate(spec, cfg: Config, params: dict, n_agents: int, key, seed: int) -> np.ndarray:
    """Mean unscaled return per agent over `eval_episodes` episodes (deterministic policies)."""
    pol = _eval_policy((cfg.hidden,) * 3, spec.act_dim, n_agents)
    ep = data.episodes(spec, pol, params, n_agents * cfg.eval_episodes, key, seed)
    ret = (ep["rew"] * ep["valid"]).sum(1)
    return ret.reshape(n_agents, cfg.eval_episodes).mean(1)


def train_method(name: str, cfg: Config, spec, world: dict, stacked: dict, names: tuple[str, ...]) -> list[dict]:
    """Train one agent per (dataset, seed) with a vmapped update; returns score curves and final rows."""
    n_d, seeds = len(names), cfg.seed_list()
    n_agents = n_d * len(seeds)
    d_idx = jnp.repeat(jnp.arange(n_d), len(seeds))
    nets, init, update = _algorithm(name, cfg, spec.act_dim)
    keys = jnp.stack(
        [jax.random.fold_in(jax.random.key(s), 7919 * d + METHODS.index(name)) for d in range(n_d) for s in seeds]
    )
    state = jax.vmap(lambda k: init(k, spec.obs_dim, spec.act_dim))(keys)

    def chunk(state, d, key):
        def step(state, k):
            kb, ku = jax.random.split(k)
            return update(state, _sample(stacked, d, kb, cfg.batch, spec.reward_scale), ku)

        state, metrics = jax.lax.scan(step, state, jax.random.split(key, cfg.eval_every))
        return state, jax.tree.map(jnp.mean, metrics)

    train = jax.jit(jax.vmap(chunk))
    ref = world["ref"]
    rows, scores = [], []
    for i in range(cfg.steps // cfg.eval_every):
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, i)
        state, metrics = train(state, d_idx, keys)
        params = {"actor": state["actor"], "mu": stacked["mu"][d_idx], "sd": stacked["sd"][d_idx]}
        ret = evaluate(spec, cfg, params, n_agents, jax.random.key(10_000 + i), seed=10_000 + 97 * i)
        score = data.normalized_score(ret, ref["random"], ref["expert"])
        scores.append(score)
        step = (i + 1) * cfg.eval_every
        for j in range(n_agents):
            setting = {"env": spec.name, "dataset": names[j // len(seeds)]}
            rows.append(record(name, seeds[j % len(seeds)], "score", score[j], step=step, **setting))
            if "lambda" in metrics:
                rows.append(record(name, seeds[j % len(seeds)], "lambda", metrics["lambda"][j], step=step, **setting))
    scores = np.stack(scores)  # [evals, agents]
    for j in range(n_agents):
        setting = {"env": spec.name, "dataset": names[j // len(seeds)]}
        rows.append(record(name, seeds[j % len(seeds)], "score_last", scores[-1, j], **setting))
        rows.append(record(name, seeds[j % len(seeds)], "score_best", scores[:, j].max(), **setting))
    if name == "A2PR":
        rows += _vae_probe(cfg, nets, state, stacked, names, seeds, spec)
    return rows


def _vae_probe(cfg, nets, state, stacked, names, seeds, spec) -> list[dict]:
    """Claim 3's measurement: VAE reconstruction error of dataset actions split by advantage sign."""
    n = cfg.vae_probe

    def probe(st, d, key):
        k1, k2 = jax.random.split(key)
        s, a, _, _, _ = _sample(stacked, d, k1, n, 1.0)
        return method.vae_error_by_advantage(nets, st, s, a, k2)

    n_agents = len(names) * len(seeds)
    out = jax.jit(jax.vmap(probe))(
        state, jnp.repeat(jnp.arange(len(names)), len(seeds)), jax.random.split(jax.random.key(123), n_agents)
    )
    rows = []
    for j in range(n_agents):
        for metric in ("vae_err_pos", "vae_err_neg", "pos_fraction"):
            rows.append(
                record(
                    "A2PR", seeds[j % len(seeds)], metric, out[metric][j], env=spec.name, dataset=names[j // len(seeds)]
                )
            )
    return rows


def run(cfg: Config) -> list[dict]:
    """Generate (or load) the datasets of every env, train every method, return the records."""
    log = (lambda msg: print(msg, flush=True)) if cfg.log else (lambda *_: None)
    enable_jax_compilation_cache()  # reruns skip XLA compiles
    rows: list[dict] = []
    for i, env in enumerate(cfg.envs):
        t0 = time.perf_counter()
        world = data.load(cfg.data_config(i), log=log)
        log(
            f"[a2pr] {env}: datasets ready in {time.perf_counter() - t0:.1f} s (ref {world['ref']['random']:.1f}"
            f" / {world['ref']['expert']:.1f})"
        )
        stacked = _stack(world, cfg.datasets)
        spec = data.ENVS[env]
        for name in cfg.methods:
            t0 = time.perf_counter()
            new = train_method(name, cfg, spec, world, stacked, cfg.datasets)
            rows += new
            last = [r["value"] for r in select(new, metric="score_last")]
            log(f"[a2pr] {env} {name}: mean last score {np.mean(last):.1f} ({time.perf_counter() - t0:.1f} s)")
        for key in ("random", "expert"):
            rows.append(record("reference", 0, f"return_{key}", world["ref"][key], env=env))
    return rows


# ----------------------------------------------------------------------------- figure


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Normalised score vs gradient steps per (env, dataset) and method; VAE error by advantage sign."""
    import matplotlib.pyplot as plt

    n_cols = len(cfg.datasets) + 1
    fig, axes = plt.subplots(len(cfg.envs), n_cols, figsize=(3.2 * n_cols, 2.6 * len(cfg.envs)), squeeze=False)
    colors = dict(zip(METHODS, ("C3", "C0", "C2", "C7"), strict=True))
    for r, env in enumerate(cfg.envs):
        for c, ds in enumerate(cfg.datasets):
            ax = axes[r, c]
            for m in cfg.methods:
                sel = select(rows, method=m, metric="score", env=env, dataset=ds)
                steps = sorted({x["step"] for x in sel})
                stats = [mean_ci95([x["value"] for x in sel if x["step"] == s]) for s in steps]
                mean = np.array([s[0] for s in stats])
                half = np.array([s[1] for s in stats])
                ax.plot(steps, mean, color=colors[m], label=m)
                ax.fill_between(steps, mean - half, mean + half, color=colors[m], alpha=0.15)
            ax.set_title(f"{env} {ds}", fontsize=9)
            ax.set_xlabel("gradient steps", fontsize=8)
            if c == 0:
                ax.set_ylabel("normalised score", fontsize=8)
        ax = axes[r, -1]
        x = np.arange(len(cfg.datasets))
        for off, metric, label in ((-0.2, "vae_err_pos", "A > 0"), (0.2, "vae_err_neg", "A ≤ 0")):
            vals = [
                mean_ci95([v["value"] for v in select(rows, metric=metric, env=env, dataset=ds)] or [np.nan])
                for ds in cfg.datasets
            ]
            ax.bar(x + off, [v[0] for v in vals], 0.4, yerr=[v[1] for v in vals], label=label)
        ax.set_xticks(x, cfg.datasets, rotation=30, fontsize=7)
        ax.set_title(f"{env}: A2PR VAE error ‖â−a‖²", fontsize=9)
        ax.legend(fontsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
