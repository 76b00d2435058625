"""Shared test helpers: `run_cli` runs a module's real command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ["REPROZOO_QUIET"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def run_cli():
    """`run_cli("papers.subgm", "--preset", "smoke", expect_rc=0)` → CompletedProcess (stdout/stderr as text)."""

    def _run(module: str, *args: str, expect_rc: int | None = 0, timeout: float = 900) -> subprocess.CompletedProcess:
        env = {**os.environ, "REPROZOO_QUIET": "1", "MPLBACKEND": "Agg"}
        proc = subprocess.run(
            [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        if expect_rc is not None:
            assert proc.returncode == expect_rc, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    return _run
