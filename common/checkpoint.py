"""Checkpoints of a long run, so that an interrupted run goes on where it stopped (`--resume`).

A run is a sequence of *units* (a method × seed, a sweep point, a world): each finished unit's result is saved in
`<out>/checkpoints/` the moment it is done, and a run started with `--resume` loads the saved units instead of
computing them again. A paper marks its units with one line each:

    rows += checkpoint.unit(("ppo", method, seed), lambda: ppo_run(world, cfg, method, seed))

Inside one long training loop, `checkpoint.steps(key)` saves the loop's state every `--checkpoint-every` steps
(model, optimiser, the records so far, and the RNG states, which are saved and restored here), so that an
interrupted unit continues from its last saved step instead of from its start:

    state = checkpoint.steps(("train", method, seed))
    saved = state.load()                       # None when nothing was saved; restores the RNG states otherwise
    start = 0 if saved is None else saved["step"]
    ...                                        # load model / optimiser / records from `saved`
    for step in range(start, n_steps):
        ...
        state.save(step + 1, {"model": model.state_dict(), "optim": opt.state_dict(), "rows": rows})

Why a resumed run's records are byte-identical to an uninterrupted run's:
- a unit's result is stored with pickle (floats, numpy scalars and tuples come back exactly as they were);
- the global RNG states (python, numpy, torch CPU and CUDA) at a unit's end are stored with it and restored when
  the unit is skipped, so the units after it draw the same numbers (the papers also seed every unit from
  (seed, method), which makes that hold for units run in worker processes too);
- the folder is tied to the config: resuming with other options (anything but where and how the run reports)
  is refused with the fields that differ (`ResumeError`, exit 2).

Without `--resume` a leftover checkpoint folder is deleted when the run starts: a run without the flag starts from
scratch (and checkpoints itself). The folder is deleted once the run's final files are in place (it would only
duplicate records.jsonl); an interrupted or crashed run leaves it for `--resume`. Nothing is written before the
first unit finishes. With no active store (a paper's `run(cfg)` called from a test or another package),
`unit` and `steps` just run the code.

Testing hook: `REPROZOO_STOP_AFTER_UNITS=k` sends SIGTERM to the process once k units are saved (the CLI then
exits 143, the way a real interrupt does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import random
import re
import shutil
import signal
import sys
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from reprozoo.common.cache import recorded_fields

T = TypeVar("T")
FORMAT = 1
# config fields that say where and how a run reports or checkpoints, not what it computes
NOT_SETUP = ("out", "strict", "publish", "resume", "checkpoint_every")
STOP_ENV = "REPROZOO_STOP_AFTER_UNITS"


class ResumeError(ValueError):
    """The checkpoint folder cannot be resumed with this config (the message says why)."""


def setup_of(config: Any) -> dict[str, Any]:
    """The config fields that decide what a run computes, as JSON-able values (the checkpoints' fingerprint)."""
    fields = recorded_fields(config) if dataclasses.is_dataclass(config) else dict(config)
    return json.loads(json.dumps({k: v for k, v in fields.items() if k not in NOT_SETUP}, default=str))


# ----------------------------------------------------------------------------- RNG states


def rng_states() -> dict[str, Any]:
    """The global RNG states: python, numpy and (when torch is imported) torch CPU and initialised CUDA devices."""
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state()}
    torch = sys.modules.get("torch")
    if torch is not None:
        states["torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states` returned."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if "torch" in states:
        import torch

        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


# ----------------------------------------------------------------------------- the store


def _file_name(key: Hashable) -> str:
    """A readable, collision-free file stem for a unit key (a tuple of str / int / float)."""
    parts = key if isinstance(key, tuple) else (key,)
    text = re.sub(r"[^A-Za-z0-9.=+-]+", "_", "-".join(str(p) for p in parts))[:80]
    return f"{text}.{hashlib.sha256(repr(key).encode()).hexdigest()[:10]}"


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class Checkpoints:
    """The finished units of one run in `folder` (None: a store that saves nothing and runs everything).

    `setup` is the run's fingerprint (`setup_of(config)` plus the paper's name); `resume=False` deletes a leftover
    folder, `resume=True` checks that the folder's fingerprint equals `setup` (`ResumeError` otherwise). `every` is
    the step interval of `steps` states (0: none); `write=False` (a non-main process of a distributed run) reads
    the folder but never writes it. `commit` (the code's git commit) is stored beside the setup; a resumed store
    holds the stored one in `resumed_commit`, so that the CLI can warn when the code changed in between."""

    def __init__(
        self,
        folder: Path | None,
        setup: dict[str, Any] | None = None,
        *,
        resume: bool = False,
        every: int = 0,
        write: bool = True,
        commit: str = "unknown",
    ):
        self.folder, self.setup, self.every, self.write, self.resume = folder, setup or {}, every, write, resume
        self.commit = commit
        self.resumed_commit: str | None = None  # the commit the resumed checkpoints were written at
        self.seen: set[Hashable] = set()
        self.saved = 0  # units saved by this process
        self._states: list[Path] = []  # `steps` files opened inside the unit being run
        if folder is None:
            return
        meta = folder / "setup.json"
        if not resume:
            if folder.exists() and write:
                shutil.rmtree(folder)
            return
        if not folder.exists():
            return
        if not meta.is_file():
            raise ResumeError(f"{folder} holds no setup.json: not a checkpoint folder of this repository")
        stored = json.loads(meta.read_text())
        if stored.get("format") != FORMAT:
            raise ResumeError(f"{folder} was written by checkpoint format {stored.get('format')}, this is {FORMAT}")
        self.resumed_commit = stored.get("commit")
        if stored["setup"] != self.setup:
            old, new = stored["setup"], self.setup
            diff = [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in sorted(old | new) if old.get(k) != new.get(k)]
            raise ResumeError(
                f"the checkpoints in {folder} belong to another setup ({'; '.join(diff)}); resume with the "
                "interrupted run's options, or run without --resume to start from scratch"
            )

    def __len__(self) -> int:
        """How many finished units the folder holds."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        return sum(1 for _ in self.folder.glob("*.unit.pkl"))

    def _path(self, key: Hashable, suffix: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{_file_name(key)}{suffix}"

    def _prepare(self) -> bool:
        """Create the folder and its setup.json on the first write; False when this store never writes."""
        if self.folder is None or not self.write:
            return False
        if not (self.folder / "setup.json").is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            meta = {"format": FORMAT, "setup": self.setup, "commit": self.commit}
            text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
            _atomic_write(self.folder / "setup.json", lambda p: p.write_text(text))
        return True

    def done(self, key: Hashable) -> bool:
        """Whether unit `key` was saved by the interrupted run (or by this one). Without `resume` nothing is read:
        a non-main process must not see files the main process is about to delete."""
        return self.folder is not None and self.resume and self._path(key, ".unit.pkl").is_file()

    def load(self, key: Hashable) -> Any:
        """The saved result of unit `key`; the global RNG states are set to those at the unit's end."""
        self._claim(key)
        with self._path(key, ".unit.pkl").open("rb") as f:
            saved = pickle.load(f)
        set_rng_states(saved["rng"])
        return saved["result"]

    def save(self, key: Hashable, result: T) -> T:
        """Save `result` as unit `key` (with the RNG states now) and return it; the unit's `steps` files go."""
        if self.folder is None:
            return result
        self._claim(key)
        if self._prepare():
            blob = pickle.dumps({"key": key, "rng": rng_states(), "result": result}, protocol=pickle.HIGHEST_PROTOCOL)
            _atomic_write(self._path(key, ".unit.pkl"), lambda p: p.write_bytes(blob))
            for path in self._states:
                path.unlink(missing_ok=True)
        self._states.clear()
        self.saved += 1
        stop = os.environ.get(STOP_ENV)
        if stop and self.saved >= int(stop):
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    def run(self, key: Hashable, fn: Callable[[], T]) -> T:
        """The saved result of unit `key`, or `fn()` run now and saved."""
        return self.load(key) if self.done(key) else self.save(key, fn())

    def steps(self, key: Hashable) -> StepState:
        """The periodic state of one long loop (see `StepState`); a no-op unless `every` > 0."""
        if self.folder is None or self.every <= 0:
            return StepState(None, 0, read=False, write=False)
        path = self._path(key, ".state.pt")
        self._states.append(path)
        return StepState(path, self.every, read=self.resume, write=self.write, prepare=self._prepare)

    def clear(self) -> None:
        """Delete the folder (the run's final files are in place)."""
        if self.folder is not None and self.write and self.folder.exists():
            shutil.rmtree(self.folder)

    def _claim(self, key: Hashable) -> None:
        if key in self.seen:
            raise ValueError(f"checkpoint unit {key!r} used twice in one run: unit keys must be unique")
        self.seen.add(key)


class StepState:
    """The state of one long loop, saved every `every` steps with torch.save (atomically) and loaded on resume."""

    def __init__(
        self, path: Path | None, every: int, *, read: bool, write: bool, prepare: Callable[[], bool] | None = None
    ):
        self.path, self.every, self.read, self.write, self._prepare = path, every, read, write, prepare

    def load(self) -> dict[str, Any] | None:
        """The last saved state (a dict with "step" and what `save` was given), with the RNG states restored; None
        when there is none."""
        if self.path is None or not self.read or not self.path.is_file():
            return None
        import torch

        state = torch.load(self.path, weights_only=False)
        set_rng_states(state.pop("rng"))
        return state

    def save(self, step: int, state: dict[str, Any]) -> None:
        """When `step` is a multiple of `every`, save `{"step": step, **state}` and the RNG states now (state_dict()s
        hold references, not copies, so building `state` every step costs nothing)."""
        if self.path is None or step % self.every or not self.write or self._prepare is None or not self._prepare():
            return
        import torch

        payload = {"step": step, "rng": rng_states(), **state}
        _atomic_write(self.path, lambda p: torch.save(payload, p))


# ----------------------------------------------------------------------------- the active store

_NONE = Checkpoints(None)
_active: Checkpoints = _NONE


@contextlib.contextmanager
def active(store: Checkpoints) -> Iterator[Checkpoints]:
    """Make `store` the one `unit`, `steps` and `current` use inside the block (the CLI does this around run)."""
    global _active
    previous, _active = _active, store
    try:
        yield store
    finally:
        _active = previous


def current() -> Checkpoints:
    """The active store (one that saves nothing outside `active`)."""
    return _active


def unit(key: Hashable, fn: Callable[[], T]) -> T:
    """`current().run(key, fn)`: the saved result of unit `key`, or `fn()` run now and saved."""
    return _active.run(key, fn)


def steps(key: Hashable) -> StepState:
    """`current().steps(key)`: the periodic state of one long loop."""
    return _active.steps(key)


def map_units(
    fn: Callable[..., T], jobs: Sequence[tuple], keys: Sequence[Hashable], pool: Executor | None
) -> Iterator[T]:
    """`unit(key, lambda: fn(*job))` for every (key, job), in order, with the jobs run in `pool` (a
    concurrent.futures executor; None: in this process, one by one as the iterator is read). The jobs of the units
    not saved yet are all submitted at the call, so the caller can work while they run; each is saved as its result
    is taken. (Loops inside a worker process save no step states.)"""
    store = _active
    if pool is None:
        return (store.run(key, partial(fn, *job)) for key, job in zip(keys, jobs, strict=True))
    futures = {key: pool.submit(fn, *job) for key, job in zip(keys, jobs, strict=True) if not store.done(key)}
    return (store.save(key, futures[key].result()) if key in futures else store.load(key) for key in keys)
