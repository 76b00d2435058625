"""The PPO settings the preference-world experiments share, defined once (issue 37).

The world demo (`preference_demo.py`), papers.ensembles, papers.par and papers.leaderboard all run PPO
(`common/ppo.py`) on the preference world's tiny LM with the same optimiser settings and worker processes. Their
Configs inherit the fields from here, so the options (`--ppo-lr`, `--ppo-batch`, ...), their defaults, `--help` texts
and checks are written once:
- `PPOFields`: optimiser (learning rate, epochs, minibatch, batch) and processes (threads, workers);
- `FreshPromptsPPO`: PPO for `ppo_steps` iterations on fresh prompts, statistics averaged over `log_every`
  iterations (the world demo, the ensembles' runs);
- `PromptSetPPO`: PPO for `prompt_epochs` passes over a fixed set of `train_prompts` training prompts, with a
  per-token KL coefficient and win-rate evaluations every `eval_every` iterations (Fu et al.'s protocol: papers.par,
  and the leaderboard's budget).
A paper whose default differs declares the field again with its own value and docstring (dataclass override).
`budget(cfg, names)` hands one experiment's PPO budget to another's config (the leaderboard's to each paper's).
"""

from __future__ import annotations

from dataclasses import dataclass

from reprozoo.common.config import RunConfig, check_positive, ensure
from reprozoo.common.ppo import PPOConfig

OPTIMISER = ("ppo_batch", "ppo_lr", "ppo_epochs", "ppo_minibatch")
"""The fields of `PPOFields` that decide PPO's optimisation (not where it runs)."""
PROMPT_SET_BUDGET = ("kl_coef", "train_prompts", "prompt_epochs", *OPTIMISER, "eval_every", "eval_prompts")
"""The fields of `PromptSetPPO` that decide a run's budget and evaluation (not its seeds or processes)."""


def budget(cfg: PPOFields, names: tuple[str, ...]) -> dict[str, object]:
    """`names` of `cfg` by name, to give another experiment's config the same PPO budget:
    `dataclasses.replace(other, **budget(cfg, OPTIMISER))`."""
    return {name: getattr(cfg, name) for name in names}


@dataclass
class PPOFields(RunConfig):
    """PPO's optimiser settings and the worker processes (fields shared by the preference-world experiments)."""

    ppo_batch: int = 128
    """Prompts (= rollouts) per PPO iteration."""
    ppo_lr: float = 2e-4
    """PPO learning rate."""
    ppo_epochs: int = 2
    """PPO optimisation passes over each rollout batch."""
    ppo_minibatch: int = 64
    """PPO minibatch size."""
    threads: int = 1
    """torch CPU threads per process (<= 2 on the 2-core CI machine)."""
    workers: int = 2
    """Processes for the independent units: reward models, PPO and other training runs (1 = all in this process)."""

    def validate(self) -> None:
        super().validate()
        check_positive(self, "ppo_batch", "ppo_lr", "ppo_epochs", "ppo_minibatch", "threads", "workers")

    def ppo_config(self, kl_coef: float, max_new_tokens: int, **options) -> PPOConfig:
        """The PPO trainer's settings: this config's optimiser fields, KL coefficient β and response length (plus
        any other `PPOConfig` option)."""
        return PPOConfig(
            lr=self.ppo_lr,
            epochs=self.ppo_epochs,
            minibatch_size=self.ppo_minibatch,
            kl_coef=kl_coef,
            max_new_tokens=max_new_tokens,
            **options,
        )


@dataclass
class FreshPromptsPPO(PPOFields):
    """PPO for `ppo_steps` iterations, each on `ppo_batch` fresh prompts."""

    ppo_steps: int = 100
    """PPO iterations."""
    log_every: int = 5
    """PPO curve resolution: statistics are averaged over windows of this many iterations."""

    def validate(self) -> None:
        super().validate()
        check_positive(self, "ppo_steps", "log_every")
        ensure(self.ppo_steps % self.log_every == 0, "log_every", "must divide ppo_steps")


@dataclass
class PromptSetPPO(PPOFields):
    """PPO for `prompt_epochs` passes over `train_prompts` training prompts (Fu et al.'s protocol)."""

    kl_coef: float = 0.005
    """β of the per-token KL penalty (PAR's official `KL_coef` = 0.005)."""
    train_prompts: int = 3200
    """Training prompts per epoch (PAR: each with its M SFT references, scored by the proxy once, offline)."""
    prompt_epochs: int = 2
    """Passes over the training prompts (PAR: two epochs); iterations = prompt_epochs · train_prompts / ppo_batch."""
    ppo_batch: int = 64
    """Prompts (= rollouts) per PPO iteration."""
    ppo_minibatch: int = 32
    """PPO minibatch size."""
    eval_every: int = 5
    """Iterations between win-rate evaluations (rollout statistics are averaged over the same windows)."""
    eval_prompts: int = 256
    """Held-out prompts of the win-rate evaluations (one SFT response each)."""
    premise_seeds: int = 0
    """Extra evaluation seeds, after the `seeds` every run has, on which only vanilla PPO runs: the premise
    (Vanilla's fall) is a property of Vanilla alone and its seed-to-seed spread needs more seeds than the paired
    comparisons, which use the seeds every run has (power pilot, README)."""

    @property
    def iterations(self) -> int:
        return self.prompt_epochs * self.train_prompts // self.ppo_batch

    def premise_seed_list(self) -> list[int]:
        """The seeds on which only vanilla PPO runs (the premise), after `seed_list()`."""
        start = self.first_seed + self.seeds
        return list(range(start, start + self.premise_seeds))

    def validate(self) -> None:
        super().validate()
        check_positive(self, "train_prompts", "prompt_epochs", "eval_every", "eval_prompts")
        ensure(self.kl_coef >= 0, "kl_coef", f"must be >= 0, got {self.kl_coef}")
        ensure(self.premise_seeds >= 0, "premise_seeds", f"must be >= 0, got {self.premise_seeds}")
        ensure(self.train_prompts % self.ppo_batch == 0, "train_prompts", "must be a multiple of ppo_batch")
        ensure(self.iterations % self.eval_every == 0, "eval_every", "must divide the number of PPO iterations")
