"""Shared test helpers: `run_cli` runs a module's real command line in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ["REPROZOO_QUIET"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")


def _run_cli(module: str, *args: str, expect_rc: int | None = 0, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "REPROZOO_QUIET": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if expect_rc is not None:
        assert proc.returncode == expect_rc, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def float64_default():
    """torch's default dtype is float64 during the test (hand-computed checks); restored afterwards for the others.
    A module opts in with `pytestmark = pytest.mark.usefixtures("float64_default")`."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def run_cli():
    """`run_cli("reprozoo.papers.subgm", "--preset", "smoke", expect_rc=0)` → CompletedProcess (text stdout/stderr)."""
    return _run_cli


@pytest.fixture(scope="session")
def stand(tmp_path_factory):
    """Tiny stand-ins of the RLHF papers' real models and datasets (common/data/standins.py), built once a session."""
    pytest.importorskip("trl")
    from reprozoo.common.data import standins

    return standins.build(tmp_path_factory.mktemp("standins"))


@pytest.fixture(scope="session")
def reasoning_standins(tmp_path_factory):
    """(model folder, datasets) of the reasoning papers' full tests (tests/papers/reasoning_standins.py), built once."""
    from reasoning_standins import build_datasets, build_model

    root = tmp_path_factory.mktemp("reasoning_full")
    return build_model(root / "model"), build_datasets(root)


@pytest.fixture(scope="session")
def quick_summary_of(tmp_path_factory):
    """`quick_summary_of("bang")` → summary.json of one quick run of papers.<slug> (run once per session)."""
    summaries: dict[str, dict] = {}

    def _summary(slug: str, timeout: float = 1800) -> dict:
        if slug not in summaries:
            out = tmp_path_factory.mktemp(f"{slug}_quick")
            _run_cli(f"reprozoo.papers.{slug}", "--preset", "quick", "--out", str(out), timeout=timeout)
            summaries[slug] = json.loads((out / "summary.json").read_text())
        return summaries[slug]

    return _summary


@pytest.fixture
def check_quick_claim(quick_summary_of, request):
    """`check_quick_claim("bang", claim, KNOWN_FAILS)`: the claim PASSes in the paper's quick run (run once per
    session); a claim listed in KNOWN_FAILS (a committed finding) is a strict xfail, so the test turns red if it starts
    to pass and the committed results must be updated."""

    def _check(slug: str, claim: str, known_fails: dict[str, str], timeout: float = 1800) -> None:
        if claim in known_fails:
            request.applymarker(pytest.mark.xfail(reason=known_fails[claim], strict=True))
        result = next(c for c in quick_summary_of(slug, timeout)["claims"] if c["id"] == claim)
        assert result["passed"], result["observed"]

    return _check


@pytest.fixture
def changed_quick_verdicts(run_cli, tmp_path):
    """`changed_quick_verdicts("traac")` → ids of the claims whose verdict in a fresh quick run differs from the
    committed reference results/<slug>/quick/ (read from the run's comparison.json)."""

    def _changed(slug: str) -> list[str]:
        run_cli(f"reprozoo.papers.{slug}", "--preset", "quick", "--out", str(tmp_path))
        comparison = json.loads((tmp_path / "comparison.json").read_text())
        return [c["id"] for c in comparison["claims"] if not c["same"]]

    return _changed
