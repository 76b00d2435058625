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
def run_cli():
    """`run_cli("papers.subgm", "--preset", "smoke", expect_rc=0)` → CompletedProcess (stdout/stderr as text)."""
    return _run_cli


@pytest.fixture(scope="session")
def quick_summary_of(tmp_path_factory):
    """`quick_summary_of("bang")` → summary.json of one quick run of papers.<slug> (run once per session)."""
    summaries: dict[str, dict] = {}

    def _summary(slug: str, timeout: float = 1800) -> dict:
        if slug not in summaries:
            out = tmp_path_factory.mktemp(f"{slug}_quick")
            _run_cli(f"papers.{slug}", "--preset", "quick", "--out", str(out), timeout=timeout)
            summaries[slug] = json.loads((out / "summary.json").read_text())
        return summaries[slug]

    return _summary
