"""Kernel benchmark: `python -m kernels.bench [--quick] [--help]` (also `nox -s bench`) → runs/bench/ (`--publish`: the
committed results/bench/ and the kernels README table).

For each backend, time and peak memory of the forward and forward+backward of per-token log p, against the naive
full-logits version and torch's `linear_cross_entropy`, at the key shape (N = 4096, D = 256, V = 32768, fp32,
CPU), plus a sweep over V (forward+backward). Each case runs in a fresh subprocess (`kernels.bench_worker`) so
that the process's peak RSS is that case's own. On CUDA the triton backend, bf16 and Liger-Kernel (if installed)
are added. Writes records.json, table.md and figure.png, and splices table.md into kernels/README.md.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parent.parent
GB = 1e9


@dataclass
class BenchConfig:
    """Options of `python -m kernels.bench`."""

    quick: bool = False
    """Small shapes (N=1024, V=8192, sweep 4k..16k, one timed run): a minute, to check the pipeline."""
    n: int = 4096
    """Tokens N at the key shape."""
    d: int = 256
    """Hidden size D at the key shape."""
    v: int = 32768
    """Vocabulary size V at the key shape."""
    sweep: tuple[int, ...] = (8192, 16384, 32768, 65536, 131072)
    """Vocabulary sizes of the V sweep (forward+backward, N and D as above); empty to skip."""
    sweep_max_v_naive: int = 65536
    """Largest V for naive / linear_cross_entropy in the sweep (their N×V buffers: ~7 GB at 128k)."""
    backends: tuple[str, ...] = ("naive", "linear_cross_entropy", "torch", "jax")
    """Cases: naive, linear_cross_entropy, liger, reference, torch, triton, jax, pallas."""
    repeats: int = 2
    """Timed runs per case after the first (peak-memory / warm-up) run; the minimum is reported."""
    sweep_repeats: int = 1
    """Timed runs per sweep case (after the first run)."""
    threads: int = 2
    """torch.set_num_threads in every case."""
    out: Path = Path("runs/bench")
    """Output folder (git-ignored by default; see --publish)."""
    publish: bool = False
    """Write the committed results/bench/ instead of --out and splice table.md into kernels/README.md."""
    timeout_s: float = 1800.0
    """Per-case limit in seconds."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """Environment added to every case process."""

    def validate(self) -> None:
        for name in ("n", "d", "v", "repeats", "sweep_repeats", "threads"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name}: must be >= 1, got {getattr(self, name)}")
        known = {"naive", "linear_cross_entropy", "liger", "reference", "torch", "triton", "jax", "pallas"}
        bad = set(self.backends) - known
        if bad:
            raise SystemExit(f"--backends: unknown {sorted(bad)}; choose from {sorted(known)}")


def _run_case(case: dict, cfg: BenchConfig) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg.threads), **cfg.extra_env}
    env.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={cfg.threads}")
    load0 = os.getloadavg()[0]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kernels.bench_worker", json.dumps(case)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=cfg.timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {**case, "error": f"timeout after {cfg.timeout_s:.0f} s"}
    if proc.returncode != 0:
        return {**case, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["load1"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    return rec


def _cases(cfg: BenchConfig, cuda: bool) -> list[dict]:
    dev = "cuda" if cuda else "cpu"
    backends = [b for b in cfg.backends if b not in ("triton", "pallas") or cuda]
    if cuda:
        backends += [b for b in ("triton", "liger") if b not in backends and _has(b)]
    base = {"n": cfg.n, "d": cfg.d, "device": dev, "dtype": "float32", "threads": cfg.threads, "repeats": cfg.repeats}
    cases = [{**base, "v": cfg.v, "backend": b, "mode": m, "part": "key"} for b in backends for m in ("fwd", "fwd+bwd")]
    for v in cfg.sweep:
        for b in backends:
            if b in ("naive", "linear_cross_entropy") and v > cfg.sweep_max_v_naive:
                continue
            if v != cfg.v:
                cases.append(
                    {**base, "v": v, "backend": b, "mode": "fwd+bwd", "part": "sweep", "repeats": cfg.sweep_repeats}
                )
    if cuda:  # the GPU shape from shared/kernels.md
        gpu = {**base, "n": 8192, "d": 4096, "v": 128256, "dtype": "bfloat16", "mode": "fwd+bwd", "part": "gpu"}
        cases += [{**gpu, "backend": b} for b in backends if b not in ("jax", "pallas")]
    return cases


def _has(name: str) -> bool:
    import importlib.util

    return name != "liger" or importlib.util.find_spec("liger_kernel") is not None


def _ratio(a, b) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def table(records: list[dict], meta: dict) -> str:
    """Markdown tables: key shape (with ratios to naive and linear_cross_entropy) and the V sweep."""
    key = [r for r in records if r["part"] == "key"]
    by = {(r["backend"], r["mode"]): r for r in key if "error" not in r}
    k0 = key[0] if key else {}
    lines = [
        f"Key shape N={k0.get('n')}, D={k0.get('d')}, V={k0.get('v')}, {k0.get('dtype')}, {k0.get('device')}, "
        f"{meta['threads']} threads; {meta['cpu']}; load average (1 min) during the run: "
        f"{meta['load_min']:.1f}–{meta['load_max']:.1f} on {meta['ncpu']} cores (shared machine: wall times are "
        "inflated, CPU times are steadier). Memory: peak RSS of a fresh process per case; extra = peak − RSS "
        "after the inputs were made.",
        "",
        "| backend | pass | wall s | CPU s | peak RSS GB | extra GB | wall / naive | CPU / naive | "
        "peak / naive | extra / naive | wall / lce | CPU / lce |",
        "|" + "---|" * 12,
    ]
    for r in key:
        if "error" in r:
            lines.append(f"| {r['backend']} | {r['mode']} | error: {r['error']} |" + " |" * 9)
            continue
        nv, lce = by.get(("naive", r["mode"])), by.get(("linear_cross_entropy", r["mode"]))
        g = lambda x, k: None if x is None else x[k]  # noqa: E731
        lines.append(
            f"| {r['backend']} | {r['mode']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['peak_bytes'] / GB:.2f} | "
            f"{r['extra_bytes'] / GB:.3f} | {_ratio(r['wall_s'], g(nv, 'wall_s'))} | "
            f"{_ratio(r['cpu_s'], g(nv, 'cpu_s'))} | {_ratio(r['peak_bytes'], g(nv, 'peak_bytes'))} | "
            f"{_ratio(r['extra_bytes'], g(nv, 'extra_bytes'))} | {_ratio(r['wall_s'], g(lce, 'wall_s'))} | "
            f"{_ratio(r['cpu_s'], g(lce, 'cpu_s'))} |"
        )
    t, nv, lce = by.get(("torch", "fwd+bwd")), by.get(("naive", "fwd+bwd")), by.get(("linear_cross_entropy", "fwd+bwd"))
    if t and nv and lce:
        checks = [
            ("peak RSS ≤ 0.25× naive", t["peak_bytes"] / nv["peak_bytes"], 0.25),
            ("extra memory ≤ 0.25× naive", t["extra_bytes"] / nv["extra_bytes"], 0.25),
            ("wall time ≤ 1.0× naive", t["wall_s"] / nv["wall_s"], 1.0),
            ("CPU time ≤ 1.0× naive", t["cpu_s"] / nv["cpu_s"], 1.0),
            ("wall time ≤ 1.1× linear_cross_entropy", t["wall_s"] / lce["wall_s"], 1.1),
            ("CPU time ≤ 1.1× linear_cross_entropy", t["cpu_s"] / lce["cpu_s"], 1.1),
        ]
        lines += ["", "Targets for the torch backend, forward+backward (shared/kernels.md):", ""]
        lines += [f"- {name}: {val:.2f}× → {'PASS' if val <= lim else 'FAIL'}" for name, val, lim in checks]
    sweep = sorted(
        (r for r in records if r["part"] in ("sweep", "key") and r["mode"] == "fwd+bwd"),
        key=lambda r: (r["v"], r["backend"]),
    )
    if len({r["v"] for r in sweep}) > 1:
        lines += [
            "",
            "V sweep (forward+backward, same N and D):",
            "",
            "| V | backend | wall s | CPU s | peak RSS GB | extra GB |",
            "|---|---|---|---|---|---|",
        ]
        for r in sweep:
            if "error" in r:
                lines.append(f"| {r['v']} | {r['backend']} | error: {r['error']} | | | |")
            else:
                lines.append(
                    f"| {r['v']} | {r['backend']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
                    f"{r['peak_bytes'] / GB:.2f} | {r['extra_bytes'] / GB:.3f} |"
                )
    gpu = [r for r in records if r["part"] == "gpu"]
    if gpu:
        lines += [
            "",
            "GPU (bf16, N=8192, D=4096, V=128256, forward+backward):",
            "",
            "| backend | time s | peak GB |",
            "|---|---|---|",
        ]
        lines += [
            f"| {r['backend']} | {r.get('wall_s', float('nan')):.3f} | {r.get('peak_bytes', 0) / GB:.2f} |" for r in gpu
        ]
    return "\n".join(lines) + "\n"


def figure(records: list[dict], path: Path) -> None:
    """Wall time, CPU time and extra memory of forward+backward against V, one line per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r["mode"] == "fwd+bwd" and r["part"] in ("key", "sweep") and "error" not in r]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for b in sorted({r["backend"] for r in rows}):
        rs = sorted((r for r in rows if r["backend"] == b), key=lambda r: r["v"])
        vs = [r["v"] for r in rs]
        axes[0].plot(vs, [r["wall_s"] for r in rs], "o-", label=b)
        axes[1].plot(vs, [r["cpu_s"] for r in rs], "o-", label=b)
        axes[2].plot(vs, [r["extra_bytes"] / GB for r in rs], "o-", label=b)
    for ax, title in zip(axes, ("wall time (s)", "process CPU time (s)", "peak RSS − baseline (GB)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("V")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    n, d = rows[0]["n"], rows[0]["d"]
    fig.suptitle(f"fused log-prob forward+backward, N={n}, D={d}, fp32, CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def splice_readme(readme: Path, text: str) -> None:
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if not readme.exists():
        return
    body = readme.read_text()
    if start in body and end in body:
        head, rest = body.split(start, 1)
        readme.write_text(f"{head}{start}\n{text}{end}{rest.split(end, 1)[1]}")


def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(BenchConfig, args=argv, description=__doc__)
    if cfg.quick:
        cfg.n, cfg.v, cfg.sweep, cfg.repeats, cfg.sweep_max_v_naive = 1024, 8192, (4096, 16384), 1, 16384
    cfg.validate()
    import torch

    cuda = torch.cuda.is_available()
    cases = _cases(cfg, cuda)
    records = []
    loads = []
    for i, case in enumerate(cases, 1):
        loads.append(os.getloadavg()[0])
        t0 = time.perf_counter()
        rec = _run_case(case, cfg)
        records.append(rec)
        loads.append(os.getloadavg()[0])
        desc = (
            rec.get("error")
            or f"wall {rec['wall_s']:.2f} s, CPU {rec['cpu_s']:.2f} s, peak {rec['peak_bytes'] / GB:.2f} GB"
        )
        print(
            f"[{i}/{len(cases)}] {case['backend']:>22} {case['mode']:>7} V={case['v']:>6}: {desc} "
            f"({time.perf_counter() - t0:.0f} s, load {loads[-1]:.1f})",
            flush=True,
        )
    meta = {
        "threads": cfg.threads,
        "cpu": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "ncpu": os.cpu_count(),
        "load_min": min(loads),
        "load_max": max(loads),
        "config": asdict(cfg),
    }
    out = ROOT / "results" / "bench" if cfg.publish else cfg.out
    meta["config"]["out"] = str(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "records.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1, default=str))
    text = table(records, meta)
    (out / "table.md").write_text(text)
    figure(records, out / "figure.png")
    if cfg.publish:
        splice_readme(ROOT / "kernels" / "README.md", text)
    print(text)


if __name__ == "__main__":
    main()
