"""Headline experiment: A2PR vs TD3+BC, IQL and BC on locally generated D4RL-style datasets.

For every environment, the chosen datasets of `data.py` (standard: random, medium, medium-replay, expert; and
the trajectory-level mixed-<p> sets) are stacked and every method trains one agent per (dataset, seed) at once:
the update is `jax.vmap`-ed over agents and `jax.lax.scan`-ned over `eval_every` gradient steps, then all agents
are evaluated together. Scores are D4RL-normalised with the locally measured random / expert returns; the final
score of a run is the mean over its last `final_evals` evaluations. At every evaluation each critic method's
λ = α / mean|Q_1(s, π(s))| is measured on dataset states (the convergence gate of `claims.py`); for A2PR also
the share of dataset actions that pass the advantage filter and, at the end, the VAE's reconstruction error
split by the sign of Q_1(s, a) − V(s). Aggregates over datasets use rliable (IQM, stratified bootstrap CIs).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from reprozoo.common import checkpoint
from reprozoo.common.cache import enable_jax_compilation_cache
from reprozoo.common.config import ConfigError, RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.results import record, select
from reprozoo.papers.a2pr import data, tasks
from reprozoo.papers.a2pr.training import METHODS, stack_datasets, train_method


def sensitivity_label(mask: float) -> str:
    """Method name of an A2PR sensitivity run at `mask`, e.g. "A2PR mask=0.5"."""
    return f"A2PR mask={mask:g}"


@dataclass
class Config(RunConfig):
    """A2PR (Liu et al. 2024) on locally generated D4RL-style offline datasets."""

    envs: tuple[str, ...] = ("pendulum", "invpendulum")
    """Environments (keys of data.ENVS): pendulum = phys2d/Pendulum-v0 (JAX), invpendulum = InvertedPendulum-v5."""
    online_steps: tuple[int, ...] = (8_000, 20_000)
    """Online TD3 environment steps used to build each env's datasets (one per env)."""
    datasets: tuple[str, ...] = data.STANDARD
    """Standard datasets per env (any of random, medium, medium-replay, expert; may be empty)."""
    mixed_fractions: tuple[float, ...] = (0.01, 0.05, 0.1)
    """Expert-episode shares of the mixed (random + expert episodes) datasets, one dataset mixed-<p> each."""
    methods: tuple[str, ...] = METHODS
    """Methods to train: A2PR, TD3+BC, IQL, BC."""
    transitions: int = 20_000
    """Transitions per dataset (D4RL: 1M)."""
    steps: int = 4_000
    """Offline gradient steps per agent (paper: 1M)."""
    eval_every: int = 1_000
    """Gradient steps between evaluations."""
    eval_episodes: int = 20
    """Evaluation episodes per agent and evaluation."""
    final_evals: int = 3
    """A run's final score is the mean over its last `final_evals` evaluations."""
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
    """Discount of every method (paper default 0.99)."""
    tau: float = 0.005
    """Soft target-update rate of every method (paper default 0.005)."""
    alpha: float = 2.5
    """α of A2PR and TD3+BC (paper default 2.5)."""
    mask: float = 0.5
    """A2PR BC weight where either advantage indicator holds (official argparse default `utils/config.py`
    "--mask", default=0.5; the class default `A2PR.__init__(..., mask=1.0)`); per dataset see `dataset_masks`."""
    dataset_masks: tuple[str, ...] = ()
    """Per-dataset A2PR masks "<dataset>=<mask>" that replace `mask` on that dataset (all envs)."""
    mask_sensitivity: tuple[str, ...] = ()
    """Extra A2PR runs "<dataset>=<mask>", recorded as method "A2PR mask=<mask>" on that dataset only (same seeds,
    initial parameters and minibatches as the main A2PR run there): a labelled sensitivity analysis."""
    vae_weight: float = 1.0
    """A2PR weight of the positive-advantage VAE reconstruction loss (paper default 1.0)."""
    iql_tau: float = 0.7
    """IQL expectile (CORL locomotion: 0.7)."""
    iql_beta: float = 3.0
    """IQL inverse temperature (CORL locomotion: 3.0)."""
    data_seed: int = 0
    """Seed of the dataset generation (datasets are cached per data config)."""
    vae_probe: int = 4_096
    """Dataset transitions used to measure λ, the advantage filter and the VAE error by advantage sign."""
    bootstrap_reps: int = 2_000
    """Stratified bootstrap resamples of the rliable interval estimates."""
    dataset: tuple[str, ...] = ()
    """Real offline datasets instead of generated ones, each `[<task>=]<source>`: task `<env>-<type>` (halfcheetah,
    hopper, walker2d × random, medium, medium-replay, medium-expert, expert: it picks A2PR's official settings, the
    evaluation env and D4RL's reference scores); source a Minari id (e.g. mujoco/hopper/medium-v0, downloaded by
    Minari when not under MINARI_DATASETS_PATH), a local Minari dataset folder or a D4RL .hdf5 file. When given,
    --envs, --datasets, --mixed-fractions and --online-steps are not used."""
    max_steps: int = 0
    """Cap on the gradient steps of every training (and the online steps of data generation); evaluations are
    spread over 5 points of the capped run. 0: no cap. A capped run's claims are UNTESTED."""
    max_samples: int = 0
    """Cap on the evaluation episodes per agent and evaluation. 0: no cap. A capped run's claims are UNTESTED."""
    log: bool = field(default=True)
    """Print progress lines."""

    def validate(self) -> None:
        super().validate()
        ensure(self.max_steps == 0 or self.max_steps >= 5, "max_steps", f"must be 0 or >= 5, got {self.max_steps}")
        ensure(self.max_samples >= 0, "max_samples", f"must be >= 0, got {self.max_samples}")
        for entry in self.dataset:
            try:
                tasks.parse_entry(entry)
            except tasks.TaskError as err:
                ensure(False, "dataset", str(err))
        names = [tasks.parse_entry(e)[0] for e in self.dataset]
        ensure(len(set(names)) == len(names), "dataset", f"a task is named twice: {names}")
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
            "final_evals",
            "bootstrap_reps",
        )
        check_fraction(self, "gamma", "iql_tau", "mixed_fractions")
        ensure(0 < self.tau <= 1, "tau", f"must lie in (0, 1], got {self.tau}")
        ensure(all(f > 0 for f in self.mixed_fractions), "mixed_fractions", "every fraction must be > 0")
        ensure(self.mask > 0, "mask", f"must be > 0, got {self.mask}")
        for field_name in ("dataset_masks", "mask_sensitivity"):
            for entry in getattr(self, field_name):
                d, _, m = entry.partition("=")
                ensure(d in self.cells(), field_name, f"{entry!r}: {d!r} is not a dataset of this run {self.cells()}")
                try:
                    ok = float(m) > 0
                except ValueError:
                    ok = False
                ensure(ok, field_name, f"{entry!r}: expected <dataset>=<mask> with a mask > 0")
        ensure(self.vae_weight > 0, "vae_weight", f"must be > 0, got {self.vae_weight}")
        for e in self.envs:
            ensure(e in data.ENVS, "envs", f"unknown env {e!r}; choose from {sorted(data.ENVS)}")
        ensure(len(self.online_steps) == len(self.envs), "online_steps", "needs one value per env")
        for d in self.datasets:
            ensure(d in data.STANDARD, "datasets", f"unknown dataset {d!r}; choose from {data.STANDARD}")
        ensure(len(self.cells()) > 0, "datasets", "no dataset: give --datasets or --mixed-fractions")
        for m in self.methods:
            ensure(m in METHODS, "methods", f"unknown method {m!r}; choose from {METHODS}")
        ensure(self.steps % self.eval_every == 0, "steps", "must be a multiple of --eval-every")
        n_evals = self.steps // self.eval_every
        ensure(n_evals >= 5, "eval_every", f"needs >= 5 evaluations for the convergence gate, got {n_evals}")
        ensure(self.final_evals <= n_evals, "final_evals", f"must be <= the {n_evals} evaluations")

    def capped(self) -> bool:
        """True when --max-steps or --max-samples cut the run short of its preset."""
        return 0 < self.max_steps < self.steps or 0 < self.max_samples < self.eval_episodes

    def effective(self) -> Config:
        """This config with the caps applied: steps = 5 evaluations of max_steps // 5 steps each, eval_episodes
        = max_samples, online_steps ≤ max_steps."""
        out = self
        if 0 < self.max_steps < self.steps:
            every = self.max_steps // 5
            out = replace(
                out,
                steps=5 * every,
                eval_every=every,
                final_evals=min(out.final_evals, 5),
                online_steps=tuple(min(n, self.max_steps) for n in out.online_steps),
            )
        if 0 < self.max_samples < self.eval_episodes:
            out = replace(out, eval_episodes=self.max_samples)
        return out

    def cells(self) -> tuple[str, ...]:
        """Dataset names trained per env: the standard ones, then mixed-<p> per expert fraction."""
        return (*self.datasets, *map(data.mixed_name, self.mixed_fractions))

    def mask_of(self, dataset: str) -> float:
        """A2PR's mask on `dataset`: its `dataset_masks` entry, else `mask`."""
        return {d: float(m) for d, _, m in (e.partition("=") for e in self.dataset_masks)}.get(dataset, self.mask)

    def a2pr_runs(self) -> list[tuple[str, float, tuple[str, ...]]]:
        """(method label, mask, datasets) of every A2PR training: the main runs grouped by mask (one vmapped
        training per mask), then one labelled run per `mask_sensitivity` mask."""
        out: dict[tuple[str, float], list[str]] = {}
        for d in self.cells():
            out.setdefault(("A2PR", self.mask_of(d)), []).append(d)
        for entry in self.mask_sensitivity:
            d, _, m = entry.partition("=")
            out.setdefault((sensitivity_label(float(m)), float(m)), []).append(d)
        return [(label, m, tuple(ds)) for (label, m), ds in out.items()]

    def data_config(self, i: int) -> data.DataConfig:
        return data.DataConfig(
            env=self.envs[i],
            online_steps=self.online_steps[i],
            transitions=self.transitions,
            mixed_expert_fractions=self.mixed_fractions,
            seed=self.data_seed,
            eval_every=max(self.online_steps[i] // 12, 200),
            batch=128,
        )


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=2,
        envs=("pendulum",),
        online_steps=(1_200,),
        datasets=("random",),
        mixed_fractions=(0.1,),
        transitions=1_000,
        steps=50,
        eval_every=10,
        eval_episodes=2,
        final_evals=2,
        batch=32,
        hidden=16,
        vae_hidden=16,
        vae_probe=256,
        bootstrap_reps=50,
        log=False,
    ),
    # Quick: 10 seeds (the power rule of README "Pre-registration v2": a pilot on the development seeds
    # 1000-1002 gave paired SDs for which every claim needs 2-4 seeds at the 10-point effect; 10 is the floor)
    # on the cells the claims need (random, medium and the three mixed sets per env), critics trained to
    # convergence by an all-methods deviation (γ 0.95, τ 0.02: target time constant
    # policy_freq / (τ (1 − γ)) = 2,000 steps, 10,000 steps = 5 time constants), small nets to pay for it.
    "quick": Config(
        preset="quick",
        seeds=10,
        online_steps=(8_000, 20_000),
        datasets=("random", "medium"),
        steps=10_000,
        eval_every=2_000,
        eval_episodes=20,
        final_evals=3,
        batch=64,
        hidden=32,
        vae_hidden=32,
        gamma=0.95,
        tau=0.02,
        # The official per-dataset settings (github.com/ltlhuuu/A2PR @ f92a2a4). README.md "Run experiments":
        #   "--env_id halfcheetah-medium-v2 ... --alpha 40.0 --vae_weight 1.0 ... --mask 1.0 --discount 0.99"
        #   "--env_id hopper-medium-v2 ... --alpha 2.5 --vae_weight 1.0 ... --mask 0.4 --discount 0.995" (= run.sh)
        #   "--env_id walker2d-medium-v2 ... --alpha 2.5 --vae_weight 1.5 ... --mask 1.0 --discount 0.99"
        # READMEv0.md (an earlier draft): hopper-random "--vae_weight 1.5 --mask 1.5 --discount 0.995",
        #   hopper-medium-replay "--vae_weight 1.5 --mask 0.5", hopper-medium-expert "--mask 4.0", halfcheetah-
        #   medium-replay "--vae_weight 1.5 --mask 0.8 --discount 0.995", halfcheetah-medium-expert "--mask 15.0",
        #   walker2d-medium-replay "--vae_weight 1.5 --mask 1.2 --discount 0.995", walker2d-medium-expert
        #   "--mask 0.8". Defaults: utils/config.py "--mask", default=0.5; A2PR.py `__init__(..., mask=1.0)`.
        # Rule (pre-registered, README "Pre-registration v2"): a dataset type the current README sets takes its
        # value there (medium: mask 1.0, two of its three medium tasks and the class default; α 2.5 and
        # vae_weight 1.0, two of three each); a type it does not set keeps the argparse default 0.5 (random: only
        # the superseded draft names hopper-random; mixed: no official value). γ stays the quick deviation 0.95.
        dataset_masks=("medium=1.0",),
        # Labelled sensitivity runs (no verdict except the control `mask-halved-medium-<env>`): the v1 setting
        # (mask 0.5) on medium, the pendulum-medium collapse of v1.
        mask_sensitivity=("medium=0.5",),
    ),
    # Paper scale on the paper's data (Liu et al. 2024, Sec. 5 / official code github.com/ltlhuuu/A2PR): the 15
    # D4RL v2 locomotion tasks (tasks.PAPER_TASKS) read from D4RL's own files (`d4rl.qlearning_dataset`, as main.py
    # does; a Minari id may replace any of them: --dataset hopper-medium=mujoco/hopper/medium-v0), A2PR's official
    # per-task α / vae_weight / mask / γ (tasks.OFFICIAL, quoted there), D4RL's reference scores (tasks.REF_SCORES).
    # utils/config.py: "--max_timesteps", default=1e6; "--batch_size", default=256; "--eval_freq", default=5000;
    # "--tau", default=0.005; "--actor_lr" / "--critic_lr", default=3e-4; utils/eval.py: "eval_episodes=10";
    # networks 256 wide (core/network), VAE 750 wide (A2PR.py). The baselines keep α 2.5, γ 0.99 (TD3+BC's own).
    "full": Config(
        preset="full",
        seeds=10,
        envs=("halfcheetah", "hopper", "walker2d"),
        online_steps=(1_000_000, 1_000_000, 1_000_000),
        transitions=1_000_000,
        steps=1_000_000,
        eval_every=5_000,
        eval_episodes=10,
        final_evals=5,
        batch=256,
        hidden=256,
        vae_hidden=750,
        dataset=tuple(f"{t}={tasks.d4rl_file(t)}" for t in tasks.PAPER_TASKS),
    ),
}


def rliable_rows(rows: list[dict], cfg: Config, groups: dict[str, list[tuple[str, str]]] | None = None) -> list[dict]:
    """rliable aggregates of the final normalised scores per method: IQM with 95% stratified-bootstrap CIs over
    (env, dataset) tasks × seeds (Agarwal et al. 2021, as CORL reports), per group of tasks (default: all datasets
    and the mixed ones of every env); one row each for the point estimate and the two CI ends (seed 0)."""
    from rliable import library, metrics

    if groups is None:
        groups = {
            name: [(e, d) for e in cfg.envs for d in cells]
            for name, cells in (("all", cfg.cells()), ("mixed", [d for d in cfg.cells() if data.is_mixed(d)]))
        }
    out = []
    for group, cells in groups.items():
        if not cells:
            continue
        scores = {}
        for m in cfg.methods:
            table = {
                (r["env"], r["dataset"], r["seed"]): r["value"] for r in select(rows, method=m, metric="score_final")
            }
            scores[m] = np.array([[table[(e, d, s)] for e, d in cells] for s in cfg.seed_list()])
        with warnings.catch_warnings():  # arch deprecates the RandomState that rliable passes on
            warnings.simplefilter("ignore", FutureWarning)
            point, ci = library.get_interval_estimates(
                scores,
                lambda x: np.array([metrics.aggregate_iqm(x)]),
                reps=cfg.bootstrap_reps,
                random_state=np.random.RandomState(0),
            )
        for m in cfg.methods:
            for metric, v in (("iqm", point[m][0]), ("iqm_low", ci[m][0, 0]), ("iqm_high", ci[m][1, 0])):
                out.append(record(m, 0, metric, v, group=group))
    return out


def run_real(cfg: Config, log) -> list[dict]:
    """Every `--dataset` task: load its real dataset, train every method on it (A2PR at the task's official
    settings, `tasks.hyper`), score with D4RL's reference returns; rliable IQM over the tasks × seeds."""
    rows: list[dict] = []
    for entry in cfg.dataset:
        task, source = tasks.parse_entry(entry)
        env, kind = tasks.split_task(task)
        t0 = time.perf_counter()
        try:
            arrays, eval_id = tasks.load(task, source)
        except tasks.TaskError as err:
            raise ConfigError("dataset", str(err)) from None
        spec = replace(data.ENVS[env], gym_id=eval_id)
        shape = (arrays["obs"].shape[1], arrays["act"].shape[1])
        if shape != (spec.obs_dim, spec.act_dim):
            raise ConfigError("dataset", f"{source}: (obs, act) dims {shape}, {env} has {spec.obs_dim, spec.act_dim}")
        r_random, r_expert = tasks.REF_SCORES[env]
        world = {"ref": {"random": r_random, "expert": r_expert}, "datasets": {kind: arrays}}
        stacked = stack_datasets(world, (kind,))
        h = tasks.hyper(task)
        log(
            f"[a2pr] {task}: {len(arrays['rew'])} transitions from {source} ({time.perf_counter() - t0:.1f} s), "
            f"evaluated on {eval_id}; A2PR α {h.alpha:g}, vae_weight {h.vae_weight:g}, mask {h.mask:g}, γ {h.gamma:g}"
        )
        for name in cfg.methods:
            c = (
                replace(cfg, alpha=h.alpha, vae_weight=h.vae_weight, mask=h.mask, gamma=h.gamma)
                if name == "A2PR"
                else cfg
            )
            t0 = time.perf_counter()
            new = checkpoint.unit((task, name), partial(train_method, name, c, spec, world, stacked, (kind,)))
            rows += new
            last = [r["value"] for r in select(new, metric="score_final")]
            log(f"[a2pr] {task} {name}: mean final score {np.mean(last):.1f} ({time.perf_counter() - t0:.1f} s)")
        rows.append(record("reference", 0, "transitions", len(arrays["rew"]), env=env, dataset=kind))
    cells = [tasks.split_task(tasks.parse_entry(e)[0]) for e in cfg.dataset]
    return rows + rliable_rows(rows, cfg, {"all": cells})


def run(cfg: Config) -> list[dict]:
    """Generate (or load) the datasets of every env, train every method, return the records."""
    log = (lambda msg: print(msg, flush=True)) if cfg.log else (lambda *_: None)
    enable_jax_compilation_cache()  # reruns skip XLA compiles
    cfg = cfg.effective()
    if cfg.dataset:
        return run_real(cfg, log)
    rows: list[dict] = []
    for i, env in enumerate(cfg.envs):
        t0 = time.perf_counter()
        world = data.load(cfg.data_config(i), log=log)
        log(
            f"[a2pr] {env}: datasets ready in {time.perf_counter() - t0:.1f} s (ref {world['ref']['random']:.1f}"
            f" / {world['ref']['expert']:.1f})"
        )
        stacked = stack_datasets(world, cfg.cells())
        spec = data.ENVS[env]
        jobs = []  # (unit key, method, label, mask, datasets)
        for name in cfg.methods:
            if name != "A2PR":
                jobs.append(((env, name), name, name, None, cfg.cells()))
                continue
            for label, mask, names in cfg.a2pr_runs():
                key = (env, name) if (label, mask) == ("A2PR", cfg.mask) else (env, label, f"mask={mask:g}")
                jobs.append((key, name, label, mask, names))
        for key, name, label, mask, names in jobs:
            t0 = time.perf_counter()
            sub = stacked if names == cfg.cells() else stack_datasets(world, names)
            new = checkpoint.unit(key, partial(train_method, name, cfg, spec, world, sub, names, mask, label))
            rows += new
            last = [r["value"] for r in select(new, metric="score_final")]
            conv = [r["value"] for r in select(new, metric="converged")]
            where = "" if names == cfg.cells() else f" on {', '.join(names)} (mask {mask:g})"
            log(
                f"[a2pr] {env} {label}{where}: mean final score {np.mean(last):.1f}"
                + (f", converged {np.mean(conv):.0%}" if conv else "")
                + f" ({time.perf_counter() - t0:.1f} s)"
            )
        for key in ("random", "expert"):
            rows.append(record("reference", 0, f"return_{key}", world["ref"][key], env=env))
    return rows + rliable_rows(rows, cfg)
