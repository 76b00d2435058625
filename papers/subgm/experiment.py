"""The paper's experiments at their own scale: sweeps over initialisation scale α, over-parameterised rank r',
outlier fraction p and Gaussian noise level ν; SubGM against ℓ2 gradient descent and large initialisation.

Each seed is one independent trial (X*, measurement matrices, noise, initial direction B); trials are vmapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from reprozoo.common import checkpoint
from reprozoo.common import distributed as dist
from reprozoo.common.config import RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.progress import track
from reprozoo.common.results import record
from reprozoo.papers.subgm.baselines import l2_gd
from reprozoo.papers.subgm.method import subgm

jax.config.update("jax_enable_x64", True)  # errors down to 1e-11 need float64


@dataclass
class Config(RunConfig):
    """SubGM (Ma & Fattahi 2022): robust over-parameterised matrix recovery sweeps."""

    d: int = 20
    """Dimension of X* (d × d)."""
    r: int = 2
    """True rank of X*."""
    m: int = 800
    """Number of Gaussian measurements (m = 400 left one trial in ten unrecovered at p = 0.3; see README)."""
    ranks: list[int] = field(default_factory=lambda: [2, 5, 10, 20])
    """Over-parameterised ranks r' swept (each r <= r' <= d)."""
    alphas: list[float] = field(default_factory=lambda: [1.0, 1e-2, 1e-4, 1e-6, 1e-8])
    """Initialisation scales α, U_0 = α B with ‖B‖_F = 1."""
    outlier_fractions: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    """Outlier fractions p swept (SubGM vs ℓ2 GD, at r' = d and the smallest α)."""
    outlier_scale: float = 10.0
    """Outliers are N(0, (outlier_scale · ‖X*‖_F)²)."""
    noise_levels: list[float] = field(default_factory=lambda: [1e-3, 1e-2, 1e-1])
    """Dense Gaussian noise levels ν (relative to ‖X*‖_F) swept at r' = d."""
    mixed_outlier_fraction: float = 0.3
    """Outlier fraction added on top of the middle Gaussian noise level (large dense outliers + noise)."""
    eta0: float = 0.3
    """Initial step size η_0 (η_t = η_0 ρ^t)."""
    rho: float = 0.99
    """Step-size decay ρ."""
    l2_eta0: float = 0.3
    """Initial step size of the ℓ2 gradient-descent baseline."""
    l2_rho: float = 0.997
    """Step-size decay of the ℓ2 baseline (tuned on noiseless trials, where it then reaches ~1e-12)."""
    iters: int = 1500
    """Iterations T."""
    every: int = 25
    """Record the error curve every this many iterations."""

    def validate(self) -> None:
        super().validate()
        check_positive(
            self, "d", "r", "m", "ranks", "alphas", "outlier_scale", "noise_levels", "eta0", "l2_eta0", "iters", "every"
        )
        ensure(self.r <= self.d, "r", f"must be <= d={self.d}, got {self.r}")
        ensure(all(self.r <= k <= self.d for k in self.ranks), "ranks", f"each r' must lie in [r, d], got {self.ranks}")
        ensure(self.d in self.ranks, "ranks", f"must include r' = d = {self.d} (the over-parameterised case)")
        ensure(len(self.alphas) >= 2, "alphas", "needs a large and a small scale")
        check_fraction(self, "outlier_fractions", "mixed_outlier_fraction")
        ensure(0 < self.rho <= 1, "rho", f"must lie in (0, 1], got {self.rho}")
        ensure(0 < self.l2_rho <= 1, "l2_rho", f"must lie in (0, 1], got {self.l2_rho}")
        ensure(self.iters % self.every == 0, "every", f"must divide iters={self.iters}, got {self.every}")


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=2,
        d=8,
        r=2,
        m=120,
        ranks=[2, 8],
        alphas=[1.0, 1e-6],
        outlier_fractions=[0.0, 0.3],
        noise_levels=[1e-2, 1e-1],
        iters=300,
        every=25,
    ),
    "quick": Config(preset="quick", seeds=10),
    # The paper's own scale is this CPU scale; "full" runs more trials and a longer schedule.
    "full": Config(preset="full", seeds=50, iters=3000, every=50),
}


# --------------------------------------------------------------------------- problem instances


@dataclass
class Instance:
    """Batched over trials: A (n, m, d, d), X_star (n, d, d), clean y (n, m), B (n, d, d) directions."""

    A: jax.Array
    X_star: jax.Array
    y_clean: jax.Array
    B: np.ndarray
    seed: int


def make_instances(cfg: Config, seeds: list[int]) -> list[Instance]:
    """One trial per seed: X* = U* U*ᵀ with ‖X*‖_F = 1, symmetric Gaussian A_i = (G_i + G_iᵀ)/2."""
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        U_star = rng.standard_normal((cfg.d, cfg.r))
        X_star = U_star @ U_star.T
        X_star /= np.linalg.norm(X_star)
        G = rng.standard_normal((cfg.m, cfg.d, cfg.d))
        A = (G + G.transpose(0, 2, 1)) / 2
        B = rng.standard_normal((cfg.d, cfg.d))
        out.append(Instance(A=A, X_star=X_star, y_clean=np.einsum("mij,ij->m", A, X_star), B=B, seed=seed))
    return out


def noise(inst: Instance, m: int, *, outlier_p: float, outlier_scale: float, nu: float) -> np.ndarray:
    """s = outliers (each entry non-zero w.p. p, N(0, (scale·‖X*‖_F)²)) + dense Gaussian noise N(0, ν²).

    The draw depends only on (trial, p, ν), so every solver sees the same corrupted measurements.
    """
    rng = np.random.default_rng((inst.seed, round(outlier_p * 1e6), round(nu * 1e9)))
    outliers = (rng.random(m) < outlier_p) * rng.normal(0.0, outlier_scale, m)
    return outliers + rng.normal(0.0, nu, m) * (nu > 0)


def initial(inst: Instance, rank: int, alpha: float) -> np.ndarray:
    """U_0 = α B[:, :r'] / ‖B[:, :r']‖_F (the same direction B for every α of a trial)."""
    B = inst.B[:, :rank]
    return alpha * B / np.linalg.norm(B)


@partial(jax.jit, static_argnames=("solver", "iters", "every"))
def _batched(U0, A, y, X_star, eta0, rho, *, solver, iters, every):
    fn = {"subgm": subgm, "l2": l2_gd}[solver]
    run = lambda U0, A, y, X: fn(U0, A, y, X, eta0=eta0, rho=rho, iters=iters, every=every)[1]  # noqa: E731
    return jax.vmap(run)(U0, A, y, X_star)


def solve(
    cfg: Config, insts: list[Instance], *, solver: str, rank: int, alpha: float, outlier_p: float = 0.0, nu: float = 0.0
) -> np.ndarray:
    """Error curves (trials × points) of `solver` on every trial with the given noise and initialisation."""
    y = np.stack(
        [i.y_clean + noise(i, cfg.m, outlier_p=outlier_p, outlier_scale=cfg.outlier_scale, nu=nu) for i in insts]
    )
    U0 = np.stack([initial(i, rank, alpha) for i in insts])
    eta0, rho = (cfg.eta0, cfg.rho) if solver == "subgm" else (cfg.l2_eta0, cfg.l2_rho)
    trials = (jnp.asarray(U0), jnp.stack([i.A for i in insts]), jnp.asarray(y), jnp.stack([i.X_star for i in insts]))
    errs = _batched(
        *dist.shard_seeds(trials),  # trials spread over the JAX devices when there are several
        eta0,
        rho,
        solver=solver,
        iters=cfg.iters,
        every=cfg.every,
    )
    return np.asarray(errs)


def iterations_to(curve: np.ndarray, tol: float, every: int) -> float:
    """First recorded iteration with error ≤ tol; censored at T = (len(curve) − 1)·every if never reached."""
    hit = np.nonzero(curve <= tol)[0]
    return float((hit[0] if hit.size else len(curve) - 1) * every)


# --------------------------------------------------------------------------- the sweeps


def run(cfg: Config) -> list[dict]:
    seeds = cfg.seed_list()
    insts = make_instances(cfg, seeds)
    small = min(cfg.alphas)
    jobs = [("init", dict(solver="subgm", rank=k, alpha=a)) for k in cfg.ranks for a in cfg.alphas]
    jobs += [
        ("outliers", dict(solver=s, rank=cfg.d, alpha=small, outlier_p=p))
        for p in cfg.outlier_fractions
        for s in ("subgm", "l2")
    ]
    jobs += [("gaussian", dict(solver="subgm", rank=cfg.d, alpha=small, nu=nu)) for nu in cfg.noise_levels]
    nu_mid = sorted(cfg.noise_levels)[len(cfg.noise_levels) // 2]
    jobs += [
        (
            "gaussian+outliers",
            dict(solver="subgm", rank=cfg.d, alpha=small, nu=nu_mid, outlier_p=cfg.mixed_outlier_fraction),
        )
    ]
    rows: list[dict] = []
    for sweep, kw in track(jobs, description="SubGM sweeps"):  # each sweep point is a checkpointed unit (--resume)
        curves = checkpoint.unit((sweep, *sorted(kw.items())), partial(solve, cfg, insts, **kw))
        method = kw["solver"]
        setting = {"sweep": sweep, **{k: v for k, v in kw.items() if k != "solver"}}
        for seed, curve in zip(seeds, curves, strict=True):
            rows.append(record(method, seed, "final_error", curve[-1], **setting))
            rows.append(record(method, seed, "iters_to_1e-2", iterations_to(curve, 1e-2, cfg.every), **setting))
            for k in range(0, len(curve), max(1, len(curve) // 25)):
                rows.append(record(method, seed, "error", curve[k], step=k * cfg.every, **setting))
    return rows


# --------------------------------------------------------------------------- figure


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Four panels: error vs iteration per r' (small vs large α); final error vs α; vs p; vs ν."""
    import matplotlib.pyplot as plt

    from reprozoo.common.results import select

    def curve(**match):
        pts = select(rows, metric="error", **match)
        steps = sorted({r["step"] for r in pts})
        return steps, [np.exp(np.mean([np.log(max(r["value"], 1e-16)) for r in pts if r["step"] == s])) for s in steps]

    def final(**match):
        v = [r["value"] for r in select(rows, metric="final_error", **match)]
        return np.exp(np.mean(np.log(np.maximum(v, 1e-16))))

    small, large = min(cfg.alphas), max(cfg.alphas)
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    for k, color in zip(cfg.ranks, plt.cm.viridis(np.linspace(0, 0.9, len(cfg.ranks))), strict=True):
        for alpha, style in ((small, "-"), (large, "--")):
            ax[0, 0].semilogy(
                *curve(sweep="init", rank=k, alpha=alpha), style, color=color, label=f"r'={k}, α={alpha:g}"
            )
        ax[0, 1].loglog(
            cfg.alphas, [final(sweep="init", rank=k, alpha=a) for a in cfg.alphas], "o-", color=color, label=f"r'={k}"
        )
    ax[0, 0].set(title="SubGM error vs iteration", xlabel="iteration", ylabel="‖UUᵀ−X*‖_F/‖X*‖_F")
    ax[0, 1].set(title="final error vs initialisation scale", xlabel="α", ylabel="final relative error")
    for solver, label in (("subgm", "SubGM (ℓ1)"), ("l2", "ℓ2 GD")):
        ax[1, 0].semilogy(
            cfg.outlier_fractions,
            [final(sweep="outliers", method=solver, outlier_p=p) for p in cfg.outlier_fractions],
            "o-",
            label=label,
        )
    ax[1, 0].set(title=f"outliers (r'=d={cfg.d}, α={small:g})", xlabel="outlier fraction p", ylabel="final error")
    ax[1, 1].loglog(
        cfg.noise_levels, [final(sweep="gaussian", nu=nu) for nu in cfg.noise_levels], "o-", label="Gaussian noise"
    )
    ax[1, 1].set(title=f"dense Gaussian noise (r'=d={cfg.d})", xlabel="ν / ‖X*‖_F", ylabel="final error")
    for a in ax.flat:
        a.legend(fontsize=7)
        a.grid(alpha=0.3, which="both")
    fig.suptitle(f"SubGM, d={cfg.d}, r={cfg.r}, m={cfg.m}, geometric mean over {cfg.seeds} trials")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
