"""Config/CLI helper: tyro dataclasses with three presets (smoke / quick / full) and validation.

A paper declares `@dataclass class Config(RunConfig)` with a docstring on every field (tyro turns
them into `--help`), a `validate()` that calls `ensure(...)`, and `PRESETS = {"smoke": ..., "quick": ...,
"full": ...}`. `parse(Config, PRESETS, argv)` picks the preset's values as defaults, lets any flag
override them, validates, and exits with a message that names the field on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import tyro

PresetName = Literal["smoke", "quick", "full"]
PRESET_NAMES: tuple[str, ...] = ("smoke", "quick", "full")


class ConfigError(ValueError):
    """A config value is invalid; the message starts with the offending flag."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"--{field.replace('_', '-')}: {message}")


def ensure(condition: bool, field: str, message: str) -> None:
    """Raise `ConfigError(field, message)` unless `condition` holds."""
    if not condition:
        raise ConfigError(field, message)


@dataclass
class RunConfig:
    """Options every paper run shares."""

    preset: PresetName = "quick"
    """Preset: smoke (seconds, for tests), quick (<= 15 min on 2 CPU cores, committed), full (paper scale)."""
    seeds: int = 3
    """Number of seeds; seeds first_seed .. first_seed+seeds-1 are run."""
    first_seed: int = 0
    """The first seed. Evaluation seeds start at 0; a pilot that chooses the number of seeds runs on development
    seeds that are never evaluation seeds (e.g. --first-seed 1000)."""
    out: Path | None = None
    """Output folder (default: runs/<paper>/<preset>/, git-ignored). Created and test-written before the run."""
    publish: bool = False
    """Write the committed reference results/<paper>/<preset>/ instead, and regenerate the README tables
    (maintainers, on purpose; not with --out)."""
    strict: bool = False
    """Exit with status 1 if any claim FAILs or its verdict differs from the committed reference."""
    resume: bool = False
    """Continue an interrupted run: give the same options (and --out) as the interrupted run; the units it finished
    (saved in <out>/checkpoints/) are loaded instead of run again, and the records equal an uninterrupted run's.
    Without it a leftover checkpoints/ folder is deleted and the run starts from scratch (common/checkpoint.py)."""
    checkpoint_every: int = 0
    """Also save the state of a long training loop every N steps, so that --resume continues an interrupted unit
    from its last saved step (0: only finished units are saved). Papers that support it say so in their README."""

    def validate(self) -> None:
        """Check every field; paper configs extend this and call `super().validate()`."""
        ensure(self.preset in PRESET_NAMES, "preset", f"must be one of {PRESET_NAMES}, got {self.preset!r}")
        ensure(self.seeds >= 1, "seeds", f"must be >= 1, got {self.seeds}")
        ensure(self.first_seed >= 0, "first_seed", f"must be >= 0, got {self.first_seed}")
        ensure(self.checkpoint_every >= 0, "checkpoint_every", f"must be >= 0, got {self.checkpoint_every}")

    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


def check_positive(cfg: object, *names: str) -> None:
    """`ensure(value > 0)` for every named field (numbers or sequences of numbers)."""
    for name in names:
        value = getattr(cfg, name)
        values = value if isinstance(value, list | tuple) else [value]
        ensure(len(values) > 0, name, "must not be empty")
        ensure(all(v > 0 for v in values), name, f"must be > 0, got {value}")


def check_fraction(cfg: object, *names: str, upper_open: bool = True) -> None:
    """`ensure(0 <= value < 1)` (or `<= 1` with upper_open=False) for every named field."""
    for name in names:
        value = getattr(cfg, name)
        values = value if isinstance(value, list | tuple) else [value]
        ok = all(0 <= v < 1 if upper_open else 0 <= v <= 1 for v in values)
        ensure(ok, name, f"must lie in [0, 1{')' if upper_open else ']'}, got {value}")


C = TypeVar("C", bound=RunConfig)


def _requested_preset(argv: Sequence[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="quick")
    known, _ = pre.parse_known_args(list(argv))
    return known.preset


def parse(config_cls: type[C], presets: Mapping[str, C], argv: Sequence[str] | None = None, *, prog: str = "") -> C:
    """Parse `argv` into `config_cls`, starting from the requested preset; exit(2) with a clear message on error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _requested_preset(argv)
    if name not in presets:
        print(f"error: --preset: unknown preset {name!r}; choose one of {sorted(presets)}", file=sys.stderr)
        raise SystemExit(2)
    default = dataclasses.replace(presets[name], preset=name)
    cfg = tyro.cli(config_cls, default=default, args=argv, prog=prog or None, description=config_cls.__doc__)
    try:
        cfg.validate()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return cfg
