"""The paper's D4RL task list on real offline datasets: official per-task settings, D4RL reference scores, loading.

A task is `<env>-<type>`, env ∈ {halfcheetah, hopper, walker2d}, type ∈ {random, medium, medium-replay,
medium-expert, expert} (D4RL v2 locomotion, the paper's Table 1). Its data comes from one *source*:
- a Minari dataset id, e.g. `mujoco/hopper/medium-v0`: read from `MINARI_DATASETS_PATH` (default
  `~/.minari/datasets`) when there, else downloaded by Minari (a connected machine);
- a local Minari dataset folder (the folder holding `data/`, or `data/` itself);
- a D4RL `.hdf5` file (the paper's own data, e.g. `~/.d4rl/datasets/hopper_medium-v2.hdf5`), read with h5py as
  `d4rl.qlearning_dataset` reads it (the official `main.py` calls it): transition i → i + 1 for every step that is
  not a time-out, done = `terminals`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reprozoo.papers.a2pr.data import from_minari

ENVS = ("halfcheetah", "hopper", "walker2d")
TYPES = ("random", "medium", "medium-replay", "medium-expert", "expert")
PAPER_TASKS = tuple(f"{e}-{t}" for e in ENVS for t in TYPES)
"""The paper's D4RL locomotion task list (3 envs × 5 dataset types)."""

REF_SCORES = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
}
"""D4RL's reference returns (R_random, R_expert) per env, quoted from d4rl/gym_mujoco/__init__.py:
"HOPPER_RANDOM_SCORE = -20.272305", "HALFCHEETAH_RANDOM_SCORE = -280.178953", "WALKER_RANDOM_SCORE = 1.629008",
"HOPPER_EXPERT_SCORE = 3234.3", "HALFCHEETAH_EXPERT_SCORE = 12135.0", "WALKER_EXPERT_SCORE = 4592.3"; the
normalised score is 100 · (R − R_random) / (R_expert − R_random) (`env.get_normalized_score` × 100)."""

EVAL_ENV = {"halfcheetah": "HalfCheetah", "hopper": "Hopper", "walker2d": "Walker2d"}
D4RL_EVAL_VERSION = "v4"
"""D4RL v2 data was collected on gym's `<Env>-v3` (mujoco-py); gymnasium's v4 is v3 on the `mujoco` bindings, the
closest env available here, so D4RL files are evaluated there. Minari datasets name their own env (e.g. Hopper-v5)."""


@dataclass(frozen=True)
class Hyper:
    """A2PR's per-task settings and where each comes from."""

    alpha: float
    vae_weight: float
    mask: float
    gamma: float
    source: str


# github.com/ltlhuuu/A2PR: README.md @ f92a2a4 ("Run experiments"), READMEv0.md @ c1fe2a8 (its first list under
# "See result"; later lines there are runs marked "current running" / "wait for running", not used).
OFFICIAL = {
    # README.md: "--env_id halfcheetah-medium-v2 ... --alpha 40.0 --vae_weight 1.0 ... --mask 1.0 --discount 0.99"
    "halfcheetah-medium": Hyper(40.0, 1.0, 1.0, 0.99, "README.md"),
    # README.md: "--env_id hopper-medium-v2 ... --alpha 2.5 --vae_weight 1.0 ... --mask 0.4 --discount 0.995"
    "hopper-medium": Hyper(2.5, 1.0, 0.4, 0.995, "README.md"),
    # README.md: "--env_id walker2d-medium-v2 ... --alpha 2.5 --vae_weight 1.5 ... --mask 1.0 --discount 0.99"
    "walker2d-medium": Hyper(2.5, 1.5, 1.0, 0.99, "README.md"),
    # READMEv0.md: "--env_id hopper-random-v2 --alpha 2.5 --vae_weight 1.5 ... --mask 1.5 --discount 0.995"
    "hopper-random": Hyper(2.5, 1.5, 1.5, 0.995, "READMEv0.md"),
    # READMEv0.md: "--env_id hopper-medium-replay-v2 --alpha 2.5 --vae_weight 1.5 ... --mask 0.5 --discount 0.99"
    "hopper-medium-replay": Hyper(2.5, 1.5, 0.5, 0.99, "READMEv0.md"),
    # READMEv0.md: "--env_id hopper-medium-expert-v2 --alpha 2.5 --vae_weight 1.0 ... --mask 4.0 --discount 0.99"
    "hopper-medium-expert": Hyper(2.5, 1.0, 4.0, 0.99, "READMEv0.md"),
    # READMEv0.md: "--env_id halfcheetah-medium-replay-v2 --alpha 40.0 --vae_weight 1.5 ... --mask 0.8
    # --discount 0.995"
    "halfcheetah-medium-replay": Hyper(40.0, 1.5, 0.8, 0.995, "READMEv0.md"),
    # READMEv0.md: "--env_id halfcheetah-medium-expert-v2 --alpha 40.0 --vae_weight 1.0 ... --mask 15.0
    # --discount 0.99"
    "halfcheetah-medium-expert": Hyper(40.0, 1.0, 15.0, 0.99, "READMEv0.md"),
    # READMEv0.md: "--env_id walker2d-medium-replay-v2 --alpha 2.5 --vae_weight 1.5 ... --mask 1.2 --discount 0.995"
    "walker2d-medium-replay": Hyper(2.5, 1.5, 1.2, 0.995, "READMEv0.md"),
    # READMEv0.md: "--env_id walker2d-medium-expert-v2 --alpha 2.5 --vae_weight 1.0 ... --mask 0.8 --discount 0.99"
    "walker2d-medium-expert": Hyper(2.5, 1.0, 0.8, 0.99, "READMEv0.md"),
}


def d4rl_file(task: str) -> str:
    """Where D4RL keeps the v2 file of `task` once downloaded: `~/.d4rl/datasets/<env>_<type>-v2.hdf5` (d4rl's
    DATASET_URLS file names, e.g. "gym_mujoco_v2/hopper_medium_replay-v2.hdf5"; `$D4RL_DATASET_DIR` moves it)."""
    root = os.environ.get("D4RL_DATASET_DIR", "~/.d4rl/datasets")
    return f"{root}/{task.replace('-', '_')}-v2.hdf5"


ENV_ALPHA = {"halfcheetah": 40.0, "hopper": 2.5, "walker2d": 2.5}
"""α of every official command line of the env (halfcheetah 40 in all three, hopper and walker2d 2.5)."""


def hyper(task: str) -> Hyper:
    """The official settings of `task`; a task with no official line (halfcheetah/walker2d-random, *-expert) takes
    its env's α (`ENV_ALPHA`) and the argparse defaults of utils/config.py: "--mask", default=0.5;
    "--vae_weight", default=1.0; "--discount", default=0.99."""
    if task in OFFICIAL:
        return OFFICIAL[task]
    return Hyper(ENV_ALPHA[split_task(task)[0]], 1.0, 0.5, 0.99, "defaults (utils/config.py) + env α")


class TaskError(ValueError):
    """A `--dataset` entry that names no known task or source."""


def split_task(task: str) -> tuple[str, str]:
    """`hopper-medium-replay` → ("hopper", "medium-replay")."""
    env, _, kind = task.partition("-")
    if env not in ENVS or kind not in TYPES:
        raise TaskError(f"unknown task {task!r}: expected <env>-<type>, env in {ENVS}, type in {TYPES}")
    return env, kind


def parse_entry(entry: str) -> tuple[str, str]:
    """(task, source) of a `--dataset` entry `[<task>=]<source>`.

    Without `<task>=` the task is read from the source: a Minari id `mujoco/<env>/<type>-v<k>` or a D4RL file
    `<env>_<type>-v2.hdf5` (D4RL's file names, `_` inside the type)."""
    task, sep, source = entry.partition("=")
    if sep:
        split_task(task)
        return task, source
    source = entry
    name = Path(source.rstrip("/")).name
    if name.endswith((".hdf5", ".h5")):
        stem = name.rsplit("-v", 1)[0].replace("_", "-")
        task = stem
    else:
        parts = source.rstrip("/").split("/")
        if len(parts) < 3:
            raise TaskError(f"--dataset {entry!r}: name the task as <env>-<type>=<source>")
        task = f"{parts[-2]}-{parts[-1].rsplit('-v', 1)[0]}"
    try:
        split_task(task)
    except TaskError as err:
        raise TaskError(
            f"--dataset {entry!r}: cannot read the task from the source ({err}); give <task>=<source>"
        ) from None
    return task, source


def from_d4rl_hdf5(path: Path) -> dict[str, np.ndarray]:
    """Flat transitions of a D4RL hdf5 file as `d4rl.qlearning_dataset` builds them: for i < N − 1 with
    timeouts[i] = 0, (s_i, a_i, r_i, s_{i+1}, terminals[i]); an episode ends at a terminal or before a time-out."""
    import h5py

    with h5py.File(path, "r") as f:
        missing = [k for k in ("observations", "actions", "rewards", "terminals", "timeouts") if k not in f]
        if missing:
            raise TaskError(f"{path}: not a D4RL dataset, missing {missing}")
        obs = np.asarray(f["observations"], np.float32)
        act, rew = np.asarray(f["actions"], np.float32), np.asarray(f["rewards"], np.float32)
        term, tout = np.asarray(f["terminals"], bool), np.asarray(f["timeouts"], bool)
    keep = np.flatnonzero(~tout[:-1])
    nxt_tout = np.append(tout[1:], True)
    end = term | nxt_tout
    end[keep[-1]] = True
    return {
        "obs": obs[keep],
        "act": act[keep],
        "rew": rew[keep],
        "next_obs": obs[keep + 1],
        "done": term[keep].astype(np.float32),
        "end": end[keep].astype(np.float32),
    }


def load(task: str, source: str) -> tuple[dict[str, np.ndarray], str]:
    """(flat transitions, gymnasium id of the evaluation env) of `task` from `source` (see the module doc)."""
    env, _ = split_task(task)
    path = Path(source).expanduser()
    if path.suffix in (".hdf5", ".h5"):
        if not path.is_file():
            raise TaskError(
                f"{source}: no such D4RL file; download it from D4RL's dataset URLs (d4rl/infos.py DATASET_URLS, "
                f"e.g. http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/{path.name}) or give a "
                "Minari id"
            )
        return from_d4rl_hdf5(path), f"{EVAL_ENV[env]}-{D4RL_EVAL_VERSION}"
    import minari

    if path.is_dir():
        dataset = minari.MinariDataset(path / "data" if (path / "data").is_dir() else path)
    else:
        try:
            dataset = minari.load_dataset(source, download=os.environ.get("HF_HUB_OFFLINE") != "1")
        except (FileNotFoundError, ValueError) as err:
            raise TaskError(f"{source}: not a local Minari dataset and not downloadable here ({err})") from None
    spec = dataset.env_spec
    eval_id = spec.id if spec is not None else f"{EVAL_ENV[env]}-v5"
    return from_minari(dataset), eval_id
