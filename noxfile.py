"""Sessions: `nox -s tests` (default), `tests-latest`, `lint`, `tests-slow`, `bench`, and `paper-<slug>` per paper.

Every session installs with `results/constraints.txt`, the exact versions the committed results were produced with
(README, "Reproducible installs"); `tests-latest` installs the newest releases that pyproject.toml admits instead, to
see upcoming breakage before users do. Virtualenvs are reused between runs, so a second `nox -s ...` starts at once.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
CONSTRAINTS = "results/constraints.txt"


def _registry():
    """papers/registry.py, loaded from its file: nox's own interpreter does not have the project installed."""
    spec = importlib.util.spec_from_file_location("reprozoo_registry", ROOT / "papers" / "registry.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, extra: str, *groups: str, locked: bool = True) -> None:
    """The project (editable) with `extra` and the dependency `groups`, pinned by the constraints file if `locked`."""
    pins = ["-c", CONSTRAINTS] if locked else ["--upgrade", "--upgrade-strategy", "eager"]
    packages = [p for group in groups for p in nox.project.dependency_groups(PYPROJECT, group)]
    session.install(*pins, "-e", f".[{extra}]", *packages)


@nox.session
def tests(session: nox.Session) -> None:
    """Fast tier: unit tests and every paper's smoke preset through its CLI."""
    _install(session, "all", "test")
    # two xdist workers on two cores: one BLAS/OpenMP thread each (oversubscription slows torch ~10x)
    env = {"TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    session.run("pytest", "-n", "2", "--durations=15", *session.posargs, env=env)


@nox.session(name="tests-latest")
def tests_latest(session: nox.Session) -> None:
    """The fast tier on the newest releases pyproject.toml admits (no constraints file): breakage shows here first."""
    _install(session, "all", "test", locked=False)
    env = {"TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    session.run("pytest", "-n", "2", "--durations=15", *session.posargs, env=env)


@nox.session(name="tests-slow")
def tests_slow(session: nox.Session) -> None:
    """Slow tier: each paper's quick preset with its claims asserted (not in CI)."""
    _install(session, "all", "test")
    session.run("pytest", "-m", "slow", *session.posargs, env={"TRITON_INTERPRET": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format check + ruff lint."""
    session.install("-c", CONSTRAINTS, *nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Kernel benchmarks: writes runs/bench/ (`-- --publish`: the committed results/bench/)."""
    _install(session, "kernels")
    session.run("python", "-m", "reprozoo.kernels.bench", *session.posargs)


@nox.session(name="readme")
def readme(session: nox.Session) -> None:
    """Regenerate the README paper table from results/."""
    _install(session, "all")
    session.run("python", "-m", "reprozoo.papers.readme")


@nox.session
def assignment(session: nox.Session) -> None:
    """Write a paper's student copy: `nox -s assignment -- <slug> [--out DIR]` (see README, For instructors)."""
    _install(session, "all", "test")
    session.run("python", "-m", "reprozoo.papers.assignments", "make", *session.posargs)


@nox.session
def grade(session: nox.Session) -> None:
    """Grade student copies: `nox -s grade -- <slug> PATH... [--json FILE] [--csv FILE] [--timeout S]`."""
    _install(session, "all", "test")
    session.run("python", "-m", "reprozoo.papers.assignments", "grade", *session.posargs)


@nox.session
def leaderboard(session: nox.Session) -> None:
    """Every RLHF method of the project on one preference world and budget (papers/leaderboard): quick → runs/."""
    _install(session, "lm")
    session.run("python", "-m", "reprozoo.papers.leaderboard", *session.posargs)


def _paper_session(slug: str, extra: str):
    def run_paper(session: nox.Session) -> None:
        _install(session, extra)
        session.run("python", "-m", f"reprozoo.papers.{slug}", *session.posargs)

    run_paper.__doc__ = f"Run reprozoo.papers.{slug}: quick preset → runs/ (after --: --preset, --publish, --help …)."
    return run_paper


for _paper in _registry().implemented():
    nox.session(name=_paper.session)(_paper_session(_paper.slug, _paper.extra))
