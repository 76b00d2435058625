"""One training loop for every method (A2PR, TD3+BC, IQL, BC): one agent per (dataset, seed), the update
`jax.vmap`-ed over the agents and `jax.lax.scan`-ned over `eval_every` gradient steps, every agent evaluated at once;
the probes of the convergence gate (λ) and of A2PR's advantage filter and VAE. `cfg` is an `experiment.Config`.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from reprozoo.common import distributed as dist
from reprozoo.common.results import record
from reprozoo.papers.a2pr import baselines, data, method
from reprozoo.papers.a2pr.nets import Actor

METHODS = ("A2PR", "TD3+BC", "IQL", "BC")

CONVERGED_CHANGE = 0.05
"""Convergence gate (pre-registered): a critic has converged when λ changed < 5% over the last 20% of training."""


def _hyper(cfg):
    a2pr = method.A2PRConfig(
        hidden=cfg.hidden,
        vae_hidden=cfg.vae_hidden,
        lr=cfg.lr,
        vae_lr=cfg.vae_lr,
        gamma=cfg.gamma,
        tau=cfg.tau,
        alpha=cfg.alpha,
        mask=cfg.mask,
        vae_weight=cfg.vae_weight,
    )
    base = baselines.BaselineConfig(
        hidden=cfg.hidden,
        lr=cfg.lr,
        gamma=cfg.gamma,
        tau=cfg.tau,
        alpha=cfg.alpha,
        iql_tau=cfg.iql_tau,
        iql_beta=cfg.iql_beta,
    )
    return a2pr, base


def _algorithm(name: str, cfg, act_dim: int, mask: float | None = None):
    """(nets, init(key, obs_dim) -> state, update(state, batch, key) -> (state, metrics)); `mask` replaces
    `cfg.mask` for A2PR."""
    a2pr, base = _hyper(cfg if mask is None else replace(cfg, mask=mask))
    if name == "A2PR":
        nets = method.make_nets(a2pr, act_dim)
        return nets, partial(method.init, a2pr, nets), partial(method.update, a2pr, nets)
    nets = baselines.make_nets(base, act_dim)
    upd = {"TD3+BC": baselines.td3_bc_update, "IQL": baselines.iql_update, "BC": baselines.bc_update}[name]
    return nets, partial(baselines.init, base, nets), partial(upd, base, nets)


def stack_datasets(world: dict, names: tuple[str, ...]) -> dict[str, jax.Array]:
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


def evaluate(spec, cfg, params: dict, n_agents: int, key, seed: int) -> np.ndarray:
    """Mean unscaled return per agent over `eval_episodes` episodes (deterministic policies)."""
    pol = _eval_policy((cfg.hidden,) * 3, spec.act_dim, n_agents)
    ep = data.episodes(spec, pol, params, n_agents * cfg.eval_episodes, key, seed)
    ret = (ep["rew"] * ep["valid"]).sum(1)
    return ret.reshape(n_agents, cfg.eval_episodes).mean(1)


def _probe_fn(name: str, cfg, nets, stacked: dict):
    """(state, d, key) -> {"lambda": α / mean|Q_1(s, π(s))|, ["pos_fraction"]} on `vae_probe` dataset states of
    dataset d; None for BC (no critic). pos_fraction = share of data actions with Q_1(s, a) > V(s) (A2PR's filter)."""
    if name == "BC":
        return None

    def probe(state, d, key):
        s, a, _, _, _ = _sample(stacked, d, key, cfg.vae_probe, 1.0)
        q_pi = nets.critic.apply(state["critic"], s, nets.actor.apply(state["actor"], s))[0]
        out = {"lambda": cfg.alpha / jnp.abs(q_pi).mean()}
        if name == "A2PR":
            adv = nets.critic.apply(state["critic"], s, a)[0] - nets.value.apply(state["value"], s)
            out["pos_fraction"] = (adv > 0).mean()
        return out

    return jax.jit(jax.vmap(probe))


def train_method(
    name: str,
    cfg,
    spec,
    world: dict,
    stacked: dict,
    names: tuple[str, ...],
    mask: float | None = None,
    label: str | None = None,
) -> list[dict]:
    """Train one agent per (dataset, seed) with a vmapped update; returns curves and per-run final rows.

    `stacked` holds the datasets `names` (in that order); `mask` replaces A2PR's `cfg.mask`; rows are recorded
    under `label` (default `name`). An agent's key depends on (seed, the dataset's place in `cfg.cells()`, name),
    not on `label` or `mask`, so a sensitivity run shares its initial parameters and minibatches with the main
    run of the same (dataset, seed)."""
    label = label or name
    n_d, seeds = len(names), cfg.seed_list()
    n_agents = n_d * len(seeds)
    d_idx = jnp.repeat(jnp.arange(n_d), len(seeds))
    nets, init, update = _algorithm(name, cfg, spec.act_dim, mask)
    cell = {c: i for i, c in enumerate(cfg.cells())}
    keys = jnp.stack(
        [
            jax.random.fold_in(jax.random.key(s), 7919 * cell.get(n, i) + METHODS.index(name))
            for i, n in enumerate(names)
            for s in seeds
        ]
    )
    state = jax.vmap(lambda k: init(k, spec.obs_dim, spec.act_dim))(keys)
    state, keys, d_idx = dist.shard_seeds((state, keys, d_idx))  # agents over the JAX devices when there are several

    def chunk(state, d, key):
        def step(state, k):
            kb, ku = jax.random.split(k)
            return update(state, _sample(stacked, d, kb, cfg.batch, spec.reward_scale), ku)[0], None

        return jax.lax.scan(step, state, jax.random.split(key, cfg.eval_every))[0]

    train, probe = jax.jit(jax.vmap(chunk)), _probe_fn(name, cfg, nets, stacked)
    probe_keys = jax.random.split(jax.random.key(321), n_agents)  # the same probe states at every evaluation
    ref = world["ref"]
    run = lambda j: {"env": spec.name, "dataset": names[j // len(seeds)], "seed": seeds[j % len(seeds)]}  # noqa: E731
    rows, scores, lambdas = [], [], []
    for i in range(cfg.steps // cfg.eval_every):
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, i)
        state = train(state, d_idx, keys)
        params = {"actor": state["actor"], "mu": stacked["mu"][d_idx], "sd": stacked["sd"][d_idx]}
        ret = evaluate(spec, cfg, params, n_agents, jax.random.key(10_000 + i), seed=10_000 + 97 * i)
        scores.append(data.normalized_score(ret, ref["random"], ref["expert"]))
        curves = {"score": scores[-1]}
        if probe is not None:
            curves |= {k: np.asarray(v) for k, v in probe(state, d_idx, probe_keys).items()}
            lambdas.append(curves["lambda"])
        step = (i + 1) * cfg.eval_every
        rows += [
            record(label, metric=m, value=v[j], step=step, **run(j)) for m, v in curves.items() for j in range(n_agents)
        ]
    final = np.mean(scores[-cfg.final_evals :], axis=0)
    rows += [record(label, metric="score_final", value=final[j], **run(j)) for j in range(n_agents)]
    if lambdas:
        change = lambda_change(np.stack(lambdas))
        for j in range(n_agents):
            rows.append(record(label, metric="lambda_change", value=change[j], **run(j)))
            rows.append(record(label, metric="converged", value=float(change[j] < CONVERGED_CHANGE), **run(j)))
    if name == "A2PR":
        rows += _vae_probe(cfg, nets, state, stacked, names, seeds, spec, label)
    return rows


def lambda_change(lambdas: np.ndarray) -> np.ndarray:
    """Relative change of λ over the last 20% of training, |λ_end − λ_0.8| / λ_0.8, per run.

    `lambdas` [evaluations, runs], the evaluations equally spaced; λ_0.8 is the evaluation at 80% of the steps
    (rounded to the nearest evaluation)."""
    n = lambdas.shape[0]
    i80 = max(round(0.8 * n) - 1, 0)
    return np.abs(lambdas[-1] - lambdas[i80]) / np.abs(lambdas[i80])


def _vae_probe(cfg, nets, state, stacked, names, seeds, spec, label: str = "A2PR") -> list[dict]:
    """Claim 3's measurement: VAE reconstruction error of dataset actions split by advantage sign, and the share
    of dataset actions that pass the advantage filter (`pos_fraction`), after training."""
    n = cfg.vae_probe

    def probe(st, d, key):
        k1, k2 = jax.random.split(key)
        s, a, _, _, _ = _sample(stacked, d, k1, n, 1.0)
        return method.vae_error_by_advantage(nets, st, s, a, k2)

    n_agents = len(names) * len(seeds)
    out = jax.jit(jax.vmap(probe))(
        state, jnp.repeat(jnp.arange(len(names)), len(seeds)), jax.random.split(jax.random.key(123), n_agents)
    )
    return [
        record(label, seeds[j % len(seeds)], metric, out[metric][j], env=spec.name, dataset=names[j // len(seeds)])
        for j in range(n_agents)
        for metric in ("vae_err_pos", "vae_err_neg", "pos_fraction")
    ]
