"""Sessions: `nox -s tests` (default), `lint`, `tests-slow`, `bench`, and `paper-<slug>` per implemented paper.

Virtualenvs are reused between runs, so a second `nox -s ...` starts at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))

from papers.registry import implemented  # noqa: E402

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, extra: str, *groups: str) -> None:
    session.install("-e", f".[{extra}]")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def tests(session: nox.Session) -> None:
    """Fast tier: unit tests and every paper's smoke preset through its CLI."""
    _install(session, "all", "test")
    # two xdist workers on two cores: one BLAS/OpenMP thread each (oversubscription slows torch ~10x)
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
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Kernel benchmarks: writes runs/bench/ (`-- --publish`: the committed results/bench/)."""
    _install(session, "kernels")
    session.run("python", "-m", "kernels.bench", *session.posargs)


@nox.session(name="readme")
def readme(session: nox.Session) -> None:
    """Regenerate the README paper table from results/."""
    _install(session, "all")
    session.run("python", "-m", "common.readme")


@nox.session
def assignment(session: nox.Session) -> None:
    """Write a paper's student copy: `nox -s assignment -- <slug> [--out DIR]` (see README, For instructors)."""
    _install(session, "all", "test")
    session.run("python", "-m", "common.assignments", "make", *session.posargs)


@nox.session
def grade(session: nox.Session) -> None:
    """Grade student copies: `nox -s grade -- <slug> PATH... [--json FILE] [--csv FILE] [--timeout S]`."""
    _install(session, "all", "test")
    session.run("python", "-m", "common.assignments", "grade", *session.posargs)


@nox.session
def leaderboard(session: nox.Session) -> None:
    """Every RLHF method of the project on one preference world and budget (papers/leaderboard): quick → runs/."""
    _install(session, "lm")
    session.run("python", "-m", "papers.leaderboard", *session.posargs)


def _paper_session(slug: str, extra: str):
    def run_paper(session: nox.Session) -> None:
        _install(session, extra)
        session.run("python", "-m", f"papers.{slug}", *session.posargs)

    run_paper.__doc__ = f"Run papers.{slug}: quick preset → runs/ (after --: --preset, --publish, --help …)."
    return run_paper


for _paper in implemented():
    nox.session(name=_paper.session)(_paper_session(_paper.slug, _paper.extra))
