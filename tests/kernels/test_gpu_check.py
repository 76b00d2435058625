"""kernels/gpu_check.py in its CPU dry-run mode: every section runs, parity passes, files are written, bad input
exits 2.

The GPU run itself is not possible here; this is what makes sure the script works before a GPU is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRITON_INTERPRET")}
    cmd = [sys.executable, str(ROOT / "kernels" / "gpu_check.py"), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_dry_run_checks_every_backend_and_writes_the_bench_files(tmp_path):
    out = tmp_path / "gpu"
    proc = _run("--dry-run", "--out", str(out), "--repeats", "1", "--warmup", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["FAIL"] == 0
    assert "reprozoo-view-" in summary["meta"]["imports"]  # imported from the checkout's view, not an install
    status = {c["case"].split(" N=")[0]: c["status"] for c in summary["cases"]}
    for backend in ("torch", "triton", "jax", "pallas"):
        for dtype in ("float32", "bfloat16"):
            assert status[f"{backend} {dtype}"] == "PASS"
    parity = [c for c in summary["cases"] if c["section"] == "parity"]
    assert all({"err_k3", "err_k3_clamped", "err_kl_exact", "rel_grad_w"} <= set(c) for c in parity)
    assert status["policy path float32"] == "PASS" and status["full preset"] == "SKIP"
    records = json.loads((out / "records.json").read_text())["records"]
    timed = {r["backend"] for r in records if "wall_s" in r}
    assert {"gemm", "naive", "linear_cross_entropy", "fused_loss", "torch", "triton", "jax"} <= timed
    assert "| gemm |" in (out / "table.md").read_text()
    assert (out / "figure.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_options_exit_2(tmp_path):
    proc = _run("--dry-run", "--sections", "parity,nope", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown ['nope']" in proc.stderr
    assert _run("--dry-run", "--repeats", "0", cwd=tmp_path).returncode == 2


def test_the_smoke_vocabulary_takes_the_policys_fused_path():
    """The smoke calls the kernels' API itself (kernels/ imports nothing above it); its LM's vocabulary must be one at
    which common.policy.logprobs_from_hidden takes that fused path."""
    from reprozoo.common.policy import FUSED_MIN_VOCAB
    from reprozoo.kernels.gpu_check import POLICY_VOCAB

    assert POLICY_VOCAB >= FUSED_MIN_VOCAB
