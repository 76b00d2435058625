"""The smoke records of the papers no one re-tunes, as SHA-256 hashes: a refactor that changes a number fails.

    python tests/papers/smoke_records.py    # regenerate tests/papers/smoke_records.json (after a deliberate change)

Issue 37 (item 5): moving code must not change results. Each paper in PAPERS runs its smoke preset through its real
CLI in a subprocess with one BLAS/OpenMP thread, and the SHA-256 of the records.jsonl it writes is compared with the
hash stored in smoke_records.json (tests/papers/test_smoke_records.py). Floating-point results are byte-identical
only on the same software and CPU, so the file also stores the stack it was made on (`stack()`); on another stack
the test skips and says so instead of failing on round-off. Regenerate only when a change of numbers is intended, and
say so in the commit message.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("smoke_records.json")
PAPERS = ("grpo_guard", "a2pr", "traac", "bang", "bar_parl", "subgm")
"""Papers whose smoke records are pinned: their code is settled (others change numbers on purpose this month)."""
STACK_PACKAGES = ("numpy", "torch", "jax", "jaxlib", "flax", "optax", "diffusers", "transformers")


def _cpu() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def stack() -> dict[str, str]:
    """What byte-identical floating-point results depend on: Python, the numerical packages, the CPU."""
    versions = {}
    for name in STACK_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": _cpu(), **versions}


def smoke_records(slug: str, out: Path) -> bytes:
    """records.jsonl of `python -m reprozoo.papers.<slug> --preset smoke`, run single-threaded into `out`."""
    env = {**os.environ, "REPROZOO_QUIET": "1", "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", f"reprozoo.papers.{slug}", "--preset", "smoke", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return (out / "records.jsonl").read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    hashes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for slug in PAPERS:
            records = smoke_records(slug, Path(tmp) / slug)
            hashes[slug] = {"sha256": sha256(records), "rows": records.count(b"\n")}
            print(f"{slug}: {hashes[slug]['rows']} rows, sha256 {hashes[slug]['sha256'][:16]}…")
    FIXTURE.write_text(json.dumps({"stack": stack(), "papers": hashes}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
