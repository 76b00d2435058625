"""Kernel benchmark: `python -m reprozoo.kernels.bench [--quick] [--help]` (also `nox -s bench`) → runs/bench/
(`--publish`: the committed results/bench/ and the kernels README table).

For each backend, time and peak memory of the forward and forward+backward of per-token log p (loss Σ g_i log p_i
with fixed random g), against the naive full-logits version, torch's `linear_cross_entropy` and the bare GEMMs,
at the key shape (N = 4096, D = 256, V = 32768, fp32, CPU), plus forward+backward at further (N, D, V) shapes.
Each case runs in a fresh subprocess (`kernels.bench_worker`) so that the process's peak RSS is that case's own.
On CUDA the triton backend, bf16 and Liger-Kernel (if installed) are added. Writes records.json, table.md and
figure.png (and with --publish splices table.md into kernels/README.md).
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
    """Options of `python -m reprozoo.kernels.bench`."""

    quick: bool = False
    """Small shapes (N=1024, V=8192, two small extra shapes, one timed run): a minute, to check the pipeline."""
    n: int = 4096
    """Tokens N at the key shape."""
    d: int = 256
    """Hidden size D at the key shape."""
    v: int = 32768
    """Vocabulary size V at the key shape."""
    shapes: tuple[tuple[int, int, int], ...] = ((4096, 1024, 32768), (4096, 256, 131072), (1024, 4096, 32768))
    """Further (N, D, V) shapes, forward+backward only (N = 1024 at D = 4096 keeps one case under a minute on 2
    cores); empty to skip."""
    backends: tuple[str, ...] = ("naive", "linear_cross_entropy", "torch", "jax", "fused_loss", "gemm")
    """Cases at the key shape: naive, linear_cross_entropy, liger, reference, torch, triton, jax, pallas,
    fused_loss (reprozoo.kernels.fused_loss.fused_linear_loss, forward+backward only), gemm (the bare GEMMs: the
    floor)."""
    shape_backends: tuple[str, ...] = ("naive", "linear_cross_entropy", "torch", "fused_loss", "gemm")
    """Cases at the further shapes."""
    max_naive_logits: int = 4096 * 65536
    """Largest N×V for naive / linear_cross_entropy (their N×V buffers: ~7 GB at 4096 × 131072 in fp32)."""
    repeats: int = 2
    """Timed runs per key-shape case after the first (peak-memory / warm-up) run; the minimum is reported."""
    shape_repeats: int = 1
    """Timed runs per further-shape case (after the first run)."""
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
        for name in ("n", "d", "v", "repeats", "shape_repeats", "threads"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name}: must be >= 1, got {getattr(self, name)}")
        known = {"naive", "linear_cross_entropy", "liger", "reference", "torch", "triton", "jax", "pallas"}
        known |= {"fused_loss", "gemm"}
        bad = (set(self.backends) | set(self.shape_backends)) - known
        if bad:
            raise SystemExit(f"--backends: unknown {sorted(bad)}; choose from {sorted(known)}")
        if any(len(s) != 3 or min(s) < 1 for s in self.shapes):
            raise SystemExit(f"--shapes: each must be (N, D, V) >= 1, got {self.shapes}")


def _run_case(case: dict, cfg: BenchConfig) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg.threads), **cfg.extra_env}
    env.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={cfg.threads}")
    load0 = os.getloadavg()[0]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "reprozoo.kernels.bench_worker", json.dumps(case)],
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
    keep = lambda bs: [b for b in bs if b not in ("triton", "pallas") or cuda]  # noqa: E731
    backends, shape_backends = keep(cfg.backends), keep(cfg.shape_backends)
    if cuda:
        backends += [b for b in ("triton", "liger") if b not in backends and _has(b)]
    base = {"n": cfg.n, "d": cfg.d, "device": dev, "dtype": "float32", "threads": cfg.threads, "repeats": cfg.repeats}
    cases = [
        {**base, "v": cfg.v, "backend": b, "mode": m, "part": "key"}
        for b in backends
        for m in ("fwd", "fwd+bwd")
        if not (b == "fused_loss" and m == "fwd")
    ]
    for n, d, v in cfg.shapes:
        for b in shape_backends:
            if b in ("naive", "linear_cross_entropy") and n * v > cfg.max_naive_logits:
                continue
            shape = {"n": n, "d": d, "v": v, "repeats": cfg.shape_repeats}
            cases.append({**base, **shape, "backend": b, "mode": "fwd+bwd", "part": "shapes"})
    if cuda:  # the GPU shape from shared/kernels.md
        gpu = {**base, "n": 8192, "d": 4096, "v": 128256, "dtype": "bfloat16", "mode": "fwd+bwd", "part": "gpu"}
        cases += [{**gpu, "backend": b} for b in backends if b not in ("jax", "pallas")]
    return cases


def _has(name: str) -> bool:
    import importlib.util

    return name != "liger" or importlib.util.find_spec("liger_kernel") is not None


def _ratio(a, b) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def _by(records, part):
    return {
        (r["n"], r["d"], r["v"], r["backend"], r["mode"]): r for r in records if r["part"] == part and "error" not in r
    }


def table(records: list[dict], meta: dict) -> str:
    """Markdown tables: key shape (ratios to naive, linear_cross_entropy and the bare GEMMs), the targets, and the
    further shapes."""
    key = [r for r in records if r["part"] == "key"]
    by = {(r["backend"], r["mode"]): r for r in key if "error" not in r}
    k0 = key[0] if key else {}
    lines = [
        f"Key shape N={k0.get('n')}, D={k0.get('d')}, V={k0.get('v')}, {k0.get('dtype')}, {k0.get('device')}, "
        f"{meta['threads']} threads; {meta['cpu']}; load average (1 min) during the run: "
        f"{meta['load_min']:.1f}–{meta['load_max']:.1f} on {meta['ncpu']} cores (shared machine: wall times are "
        "inflated, CPU times are steadier). Memory: peak RSS of a fresh process per case; extra = peak − RSS "
        "after the inputs were made. `fused_loss` = `kernels.fused_linear_loss` (gradient in the forward), "
        "`gemm` = the bare GEMMs of forward+backward (the floor), `torch` / `jax` = `fused_logprob` (recompute).",
        "",
        "| backend | pass | wall s | CPU s | peak RSS GB | extra GB | wall / naive | CPU / naive | "
        "peak / naive | extra / naive | CPU / lce | CPU / gemm |",
        "|" + "---|" * 12,
    ]
    g = lambda x, k: None if x is None else x[k]  # noqa: E731
    for r in key:
        if "error" in r:
            lines.append(f"| {r['backend']} | {r['mode']} | error: {r['error']} |" + " |" * 9)
            continue
        nv, lce, mm = (by.get((b, r["mode"])) for b in ("naive", "linear_cross_entropy", "gemm"))
        lines.append(
            f"| {r['backend']} | {r['mode']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['peak_bytes'] / GB:.2f} | "
            f"{r['extra_bytes'] / GB:.3f} | {_ratio(r['wall_s'], g(nv, 'wall_s'))} | "
            f"{_ratio(r['cpu_s'], g(nv, 'cpu_s'))} | {_ratio(r['peak_bytes'], g(nv, 'peak_bytes'))} | "
            f"{_ratio(r['extra_bytes'], g(nv, 'extra_bytes'))} | {_ratio(r['cpu_s'], g(lce, 'cpu_s'))} | "
            f"{_ratio(r['cpu_s'], g(mm, 'cpu_s'))} |"
        )
    nv, lce = by.get(("naive", "fwd+bwd")), by.get(("linear_cross_entropy", "fwd+bwd"))
    for name, lim_naive in (("fused_loss", 0.9), ("torch", 1.1)):
        t = by.get((name, "fwd+bwd"))
        if not (t and nv and lce):
            continue
        checks = [
            ("peak RSS ≤ 0.25× naive", t["peak_bytes"] / nv["peak_bytes"], 0.25),
            (f"wall time ≤ {lim_naive}× naive", t["wall_s"] / nv["wall_s"], lim_naive),
            (f"CPU time ≤ {lim_naive}× naive", t["cpu_s"] / nv["cpu_s"], lim_naive),
        ]
        if name == "fused_loss":
            checks += [
                ("wall time < 1.0× linear_cross_entropy", t["wall_s"] / lce["wall_s"], 0.999),
                ("CPU time < 1.0× linear_cross_entropy", t["cpu_s"] / lce["cpu_s"], 0.999),
            ]
        path = "fused-loss path" if name == "fused_loss" else "general (recompute) path"
        lines += ["", f"Targets for the {path} `{name}`, forward+backward (issue 22):", ""]
        lines += [f"- {c}: {val:.2f}× → {'PASS' if val <= lim else 'FAIL'}" for c, val, lim in checks]
    shapes = [r for r in records if r["part"] == "shapes"]
    if shapes:
        sb = _by(records, "shapes")
        lines += [
            "",
            "Further shapes (forward+backward; naive and linear_cross_entropy only where N×V ≤ "
            f"{meta.get('max_naive_logits', 0):,}):",
            "",
            "| N | D | V | backend | wall s | CPU s | peak RSS GB | extra GB | CPU / naive | CPU / gemm |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in shapes:
            if "error" in r:
                lines.append(f"| {r['n']} | {r['d']} | {r['v']} | {r['backend']} | error: {r['error']} |" + " |" * 5)
                continue
            nv, mm = (sb.get((r["n"], r["d"], r["v"], b, "fwd+bwd")) for b in ("naive", "gemm"))
            lines.append(
                f"| {r['n']} | {r['d']} | {r['v']} | {r['backend']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
                f"{r['peak_bytes'] / GB:.2f} | {r['extra_bytes'] / GB:.3f} | {_ratio(r['cpu_s'], g(nv, 'cpu_s'))} | "
                f"{_ratio(r['cpu_s'], g(mm, 'cpu_s'))} |"
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
    """Forward+backward CPU time relative to the bare GEMMs, and extra memory, per shape and backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r["mode"] == "fwd+bwd" and r["part"] in ("key", "shapes") and "error" not in r]
    shapes = list(dict.fromkeys((r["n"], r["d"], r["v"]) for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    at = {(r["n"], r["d"], r["v"], r["backend"]): r for r in rows}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    width = 0.8 / max(1, len(backends))
    for j, b in enumerate(backends):
        xs, t_ratio, mem, xm = [], [], [], []
        for i, sh in enumerate(shapes):
            r, mm = at.get((*sh, b)), at.get((*sh, "gemm"))
            if r and mm:
                xs.append(i + j * width)
                t_ratio.append(r["cpu_s"] / mm["cpu_s"])
            if r:
                xm.append(i + j * width)
                mem.append(max(r["extra_bytes"], 1) / GB)
        axes[0].bar(xs, t_ratio, width, label=b)
        axes[1].bar(xm, mem, width, label=b)
    labels = [f"N={n}\nD={d}\nV={v}" for n, d, v in shapes]
    for ax, title in zip(axes, ("process CPU time / bare GEMMs", "peak RSS − baseline (GB)"), strict=True):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(shapes))], labels)
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
    axes[1].set_yscale("log")
    axes[0].axhline(1.0, color="k", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.suptitle("fused log-prob / fused loss, forward+backward, fp32, CPU")
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
        cfg.n, cfg.v, cfg.repeats = 1024, 8192, 1
        cfg.shapes, cfg.max_naive_logits = ((512, 512, 8192), (1024, 128, 32768)), 1024 * 16384
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
            f"[{i}/{len(cases)}] {case['backend']:>20} {case['mode']:>7} "
            f"N={case['n']} D={case['d']} V={case['v']}: {desc} "
            f"({time.perf_counter() - t0:.0f} s, load {loads[-1]:.1f})",
            flush=True,
        )
    meta = {
        "threads": cfg.threads,
        "cpu": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "ncpu": os.cpu_count(),
        "load_min": min(loads),
        "load_max": max(loads),
        "max_naive_logits": cfg.max_naive_logits,
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
