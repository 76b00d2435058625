"""One prepared GPU check of the kernels, in one process: parity, benchmark and a bf16 smoke (≤ 8 min on one H100).

    python kernels/gpu_check.py                        # CUDA machine → results/bench/gpu/ (records.json, table.md,
                                                       # figure.png, summary.json)
    python kernels/gpu_check.py --dry-run              # CPU, tiny shapes, Triton under TRITON_INTERPRET=1 (a fast
                                                       # test) → runs/bench/gpu-dry-run/

It runs from the checkout it sits in, with no install: `reprozoo.*` is imported through a view of this repository's
`common/`, `kernels/` and `papers/` put first on sys.path (the same mapping the install makes), so a GPU machine whose
image has torch, triton, jax, flax, optax, transformers, accelerate and peft — not tyro, diffusers, trl or datasets —
needs nothing more. Liger-Kernel, for the comparison, is optional and pure Python: fetch its wheel on a connected
machine (`pip download liger-kernel --no-deps -d wheels/`, well under 1 MB) and install it on the GPU machine with
`pip install --no-deps --no-index wheels/liger_kernel-*.whl`; without it its rows are SKIP.

Sections, each case reported PASS / FAIL / SKIP with its numbers; nothing asserts a wall-clock time:
(a) parity — every backend (torch chunked, triton, jax, pallas) against the float64 `reference` backend on the same
    (fp32- or bf16-rounded) inputs, forward (log p, entropy, logsumexp, every KL kind) and backward (∂/∂hidden and
    ∂/∂weight of L = Σ_i a_i log p_i + b_i H_i + c_i KL_exact,i + Σ_k e_ik k_i(x_i), k ∈ {k1, k2, k3, k3_clamped},
    x = ℓ_ref − log p), plus each estimator through the public `kl=` argument; error = max |out − ref| /
    max(1, max |ref|) for outputs, ‖g − g_ref‖ / ‖g_ref‖ for gradients; tolerances are the project's own (below:
    TF32/bf16 GEMM rounding, not a paper's number); log p ≤ 0 everywhere (verl's collapse bug).
(b) benchmark — forward+backward of Σ g_i log p_i: naive full logits, torch `linear_cross_entropy`, Liger's fused
    linear cross-entropy, the fused paths (`fused_loss`, torch, triton, jax), and the bare GEMMs (the floor); median of
    CUDA-event times after warm-ups, peak `torch.cuda.max_memory_allocated` above the inputs (JAX: time only).
(c) smoke — a tiny transformers causal LM in bf16 through the policy path: log-probs from its last hidden states by
    `reprozoo.kernels.api.fused_logprob(backend="auto")`, which is what `common.policy.logprobs_from_hidden` calls at a
    vocabulary ≥ its FUSED_MIN_VOCAB (4096; that dispatch is tested on CPU, tests/test_install.py), against the
    model's own logits, then one optimiser step; the real-scale `full` presets are SKIP until they exist (issues 33,
    34). The check imports no module above kernels/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOL = {"float32": (5e-3, 5e-3), "bfloat16": (5e-2, 3e-2)}
"""(outputs, gradients) tolerances per input dtype: the project's own, above TF32 / bf16 GEMM rounding."""
KINDS = ("k1", "k2", "k3", "k3_clamped")
GPU_PARITY = ((16384, 4096, 32768), (4096, 2048, 151936))
GPU_BENCH = ((8192, 4096, 128256), (4096, 2048, 151936))
DRY_PARITY = ((24, 16, 50),)
DRY_BENCH = ((64, 32, 256),)
POLICY_VOCAB = 8192
"""Vocabulary of the smoke's LM: twice common.policy's FUSED_MIN_VOCAB, so the policy takes the fused path."""


def _import_view() -> None:
    """`reprozoo.common|kernels|papers` → this checkout's folders, first on sys.path (no install needed)."""
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # running by path put kernels/ itself on sys.path: its modules are not top-level names
    view = Path(tempfile.mkdtemp(prefix="reprozoo-view-")) / "reprozoo"
    view.mkdir()
    for name in ("common", "kernels", "papers"):
        (view / name).symlink_to(ROOT / name, target_is_directory=True)
    sys.path.insert(0, str(view.parent))


class Report:
    """Cases with status PASS / FAIL / SKIP and numbers, printed as they finish."""

    def __init__(self, budget_s: float):
        self.cases: list[dict] = []
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def over_budget(self) -> bool:
        return time.perf_counter() - self.start > self.budget_s

    def add(self, section: str, name: str, status: str, **numbers) -> None:
        case = {"section": section, "case": name, "status": status, **numbers}
        self.cases.append(case)
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())
        print(f"[gpu_check] ({section}) {status:4s} {name}: {shown}", flush=True)


# ----------------------------------------------------------------------------- (a) parity


def _inputs(n, d, v, device, seed=0):
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    h = torch.randn(n, d, generator=g, device=device) * (4 / d**0.5)  # logits ~ N(0, 16)
    w = torch.randn(v, d, generator=g, device=device)
    t = torch.randint(0, v, (n,), generator=g, device=device)
    rh = h + 0.1 * torch.randn(n, d, generator=g, device=device) * (4 / d**0.5)  # a nearby reference policy
    rw = w + 0.1 * torch.randn(v, d, generator=g, device=device)
    coef = torch.randn(3 + len(KINDS), n, generator=g, device=device)
    return h, w, t, rh, rw, coef


def _loss(xp, out, ref_lp, coef, kl_estimator):
    """L = Σ a log p + b H + c KL_exact + Σ_k e_k k(x) (xp: torch or jax.numpy)."""
    total = (coef[0] * out.logprobs).sum() + (coef[1] * out.entropy).sum() + (coef[2] * out.kl).sum()
    for j, kind in enumerate(KINDS):
        total = total + (coef[3 + j] * kl_estimator(out.logprobs, ref_lp, kind)).sum()
    return total


def _reference(h, w, t, rh, rw, coef, chunk):
    """Float64 outputs and gradients, computed over row chunks (the N × V float64 logits never exist at once)."""
    import torch

    from reprozoo.kernels.api import fused_logprob, kl_estimator

    w64 = w.double().requires_grad_(True)
    rw64 = rw.double()
    outs, grads_h, ref_lps = [], [], []
    for n0 in range(0, h.shape[0], chunk):
        rows = slice(n0, n0 + chunk)
        h64 = h[rows].double().requires_grad_(True)
        rh64 = rh[rows].double()
        kw = dict(ref_hidden=rh64, ref_weight=rw64, kl="exact", backend="reference")
        out = fused_logprob(h64, w64, t[rows], **kw)
        ref_lp = fused_logprob(rh64, rw64, t[rows], entropy=False, backend="reference").logprobs.detach()
        ref_lp = ref_lp.to(h.dtype).double()  # rounded as the backends receive it: only the kernels differ
        _loss(torch, out, ref_lp, coef[:, rows].to(h.dtype).double(), kl_estimator).backward()
        outs.append([x.detach() for x in (out.logprobs, out.entropy, out.kl, out.lse)])
        grads_h.append(h64.grad)
        ref_lps.append(ref_lp)
    cat = [torch.cat(parts) for parts in zip(*outs, strict=True)]
    return {"outputs": cat, "grad_h": torch.cat(grads_h), "grad_w": w64.grad, "ref_lp": torch.cat(ref_lps)}


def _err(x, ref) -> float:
    x, ref = x.double(), ref.double()
    return float((x - ref).abs().max() / max(1.0, float(ref.abs().max())))


def _rel(g, ref) -> float:
    return float((g.double() - ref).norm() / ref.norm().clamp_min(1e-300))


def _run_torch_backend(backend, h, w, t, rh, rw, coef, ref_lp):
    import torch

    from reprozoo.kernels.api import fused_logprob, kl_estimator

    hh, ww = h.detach().requires_grad_(True), w.detach().requires_grad_(True)
    out = fused_logprob(hh, ww, t, ref_hidden=rh, ref_weight=rw, kl="exact", backend=backend)
    _loss(torch, out, ref_lp.to(h.dtype), coef.to(h.dtype), kl_estimator).backward()
    kinds = {
        k: fused_logprob(h, w, t, ref_logprobs=ref_lp.to(h.dtype), kl=k, entropy=False, backend=backend).kl
        for k in KINDS
    }
    outputs = [x.detach() for x in (out.logprobs, out.entropy, out.kl, out.lse)]
    return outputs, hh.grad, ww.grad, kinds


def _run_jax_backend(backend, h, w, t, rh, rw, coef, ref_lp):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from reprozoo.kernels.api import fused_logprob, kl_estimator

    dt = jnp.bfloat16 if h.dtype == torch.bfloat16 else jnp.float32
    j = lambda x: jnp.asarray(x.detach().float().cpu().numpy()).astype(dt)  # noqa: E731  exact for bf16 values
    jt, jrh, jrw, jlp, jc = jnp.asarray(t.cpu().numpy()), j(rh), j(rw), j(ref_lp), j(coef)

    def loss(hj, wj):
        out = fused_logprob(hj, wj, jt, ref_hidden=jrh, ref_weight=jrw, kl="exact", backend=backend)
        return _loss(jnp, out, jlp, jc, kl_estimator), out

    (_, out), (gh, gw) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(j(h), j(w))
    back = lambda x: torch.from_numpy(np.array(x.astype(jnp.float32)))  # noqa: E731
    kinds = {
        k: back(fused_logprob(j(h), j(w), jt, ref_logprobs=jlp, kl=k, entropy=False, backend=backend).kl) for k in KINDS
    }
    return [back(x) for x in (out.logprobs, out.entropy, out.kl, out.lse)], back(gh), back(gw), kinds


def parity(report: Report, shapes, device: str, backends, dtypes, chunk: int) -> None:
    import torch

    from reprozoo.kernels.api import kl_estimator

    for n, d, v in shapes:
        h, w, t, rh, rw, coef = _inputs(n, d, v, device)
        for dtype in dtypes:
            cast = [x.to(getattr(torch, dtype)) for x in (h, w, rh, rw)]
            ref = _reference(cast[0], cast[1], t, cast[2], cast[3], coef, chunk)
            ref_kinds = {k: kl_estimator(ref["outputs"][0], ref["ref_lp"], k) for k in KINDS}
            tol_out, tol_grad = TOL[dtype]
            for backend in backends:
                name = f"{backend} {dtype} N={n} D={d} V={v}"
                if report.over_budget():
                    report.add("parity", name, "SKIP", reason="time budget spent")
                    continue
                run = _run_jax_backend if backend in ("jax", "pallas") else _run_torch_backend
                try:
                    outputs, gh, gw, kinds = run(backend, cast[0], cast[1], t, cast[2], cast[3], coef, ref["ref_lp"])
                except Exception as err:  # a backend that cannot run here is a FAIL with its reason, not a crash
                    report.add("parity", name, "FAIL", error=f"{type(err).__name__}: {str(err)[:200]}")
                    continue
                errs = {
                    f"err_{k}": _err(x.cpu(), r.cpu())
                    for k, x, r in zip(("logp", "entropy", "kl_exact", "lse"), outputs, ref["outputs"], strict=True)
                }
                errs |= {f"err_{k}": _err(kinds[k].cpu(), ref_kinds[k].cpu()) for k in KINDS}
                grads = {
                    "rel_grad_h": _rel(gh.cpu(), ref["grad_h"].cpu()),
                    "rel_grad_w": _rel(gw.cpu(), ref["grad_w"].cpu()),
                }
                logp_ok = bool((outputs[0] <= 0).all())
                ok = max(errs.values()) <= tol_out and max(grads.values()) <= tol_grad and logp_ok
                report.add("parity", name, "PASS" if ok else "FAIL", **errs, **grads, logp_le_0=logp_ok)


# ----------------------------------------------------------------------------- (b) benchmark


def _timer(device: str):
    """(start, stop → seconds) with CUDA events on a GPU, perf_counter elsewhere."""
    import torch

    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        return (lambda: start.record()), (
            lambda: (end.record(), torch.cuda.synchronize(), start.elapsed_time(end))[2] / 1e3
        )
    box = {}
    return (lambda: box.__setitem__("t", time.perf_counter())), (lambda: time.perf_counter() - box["t"])


def _bench_fn(backend, h0, w0, t, gl):
    """One forward+backward of Σ g_i log p_i (or the bare GEMMs) for `backend`; None if it cannot run here."""
    import importlib.util

    import torch

    if backend == "liger" and importlib.util.find_spec("liger_kernel") is None:
        return None
    if backend in ("jax", "pallas"):
        import jax
        import jax.numpy as jnp

        from reprozoo.kernels.api import fused_logprob

        dt = jnp.bfloat16 if h0.dtype == torch.bfloat16 else jnp.float32
        hj, wj = (jnp.asarray(x.float().cpu().numpy()).astype(dt) for x in (h0, w0))
        tj, gj = jnp.asarray(t.cpu().numpy()), jnp.asarray(gl.cpu().numpy())
        f = jax.jit(
            jax.grad(lambda a, b: (fused_logprob(a, b, tj, entropy=False, backend=backend).logprobs * gj).sum(), (0, 1))
        )
        return lambda: jax.block_until_ready(f(hj, wj))

    def run():
        h, w = h0.detach().requires_grad_(True), w0.detach().requires_grad_(True)
        if backend == "gemm":  # the floor: s = h Wᵀ, s W and sᵀ h per 4096-token chunk, no softmax
            gw = torch.zeros_like(w)
            for n0 in range(0, h.shape[0], 4096):
                s = h[n0 : n0 + 4096].detach() @ w.detach().T
                s @ w.detach()
                gw.addmm_(s.T, h[n0 : n0 + 4096].detach())
            return
        if backend == "fused_loss":
            from reprozoo.kernels.fused_loss import fused_linear_loss

            fused_linear_loss(h, w, t, coef=gl).loss.backward()
            return
        if backend == "naive":
            lp = torch.log_softmax((h @ w.T).float(), -1).gather(1, t[:, None]).squeeze(1)
        elif backend == "linear_cross_entropy":
            lp = -torch.nn.functional.linear_cross_entropy(h, w, t, reduction="none")
        elif backend == "liger":
            from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

            lp = -liger_fused_linear_cross_entropy(h, w, t, reduction="none")
        else:
            from reprozoo.kernels.api import fused_logprob

            lp = fused_logprob(h, w, t, entropy=False, backend=backend).logprobs
        (lp.float() * gl).sum().backward()

    return run


def benchmark(report: Report, shapes, device: str, backends, dtype: str, warmup: int, repeats: int) -> list[dict]:
    import torch

    records = []
    for n, d, v in shapes:
        g = torch.Generator(device=device).manual_seed(0)
        h0 = (torch.randn(n, d, generator=g, device=device) * (4 / d**0.5)).to(getattr(torch, dtype))
        w0 = torch.randn(v, d, generator=g, device=device).to(getattr(torch, dtype))
        t = torch.randint(0, v, (n,), generator=g, device=device)
        gl = torch.randn(n, generator=g, device=device)
        for backend in backends:
            name = f"{backend} {dtype} N={n} D={d} V={v}"
            case = {"n": n, "d": d, "v": v, "backend": backend, "mode": "fwd+bwd", "dtype": dtype, "device": device}
            case["part"] = "gpu" if device == "cuda" else "dry-run"
            fn = None if report.over_budget() else _bench_fn(backend, h0, w0, t, gl)
            if fn is None:
                why = "time budget spent" if report.over_budget() else "not importable here"
                report.add("bench", name, "SKIP", reason=why)
                records.append({**case, "error": why})
                continue
            try:
                if device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                for _ in range(warmup):
                    fn()
                start, stop = _timer(device)
                times = []
                for _ in range(repeats):
                    start()
                    fn()
                    times.append(stop())
                extra = torch.cuda.max_memory_allocated() - base if device == "cuda" else None
            except Exception as err:  # e.g. out of memory for the naive path at V = 152k
                if device == "cuda":
                    torch.cuda.empty_cache()
                report.add("bench", name, "FAIL", error=f"{type(err).__name__}: {str(err)[:200]}")
                records.append({**case, "error": f"{type(err).__name__}: {str(err)[:200]}"})
                continue
            rec = {**case, "wall_s": statistics.median(times), "repeats": repeats, "warmup": warmup}
            rec["extra_bytes"] = None if backend in ("jax", "pallas") else extra
            records.append(rec)
            report.add("bench", name, "PASS", median_s=rec["wall_s"], extra_gb=(extra or 0) / 1e9)
    return records


# ----------------------------------------------------------------------------- (c) smoke


def smoke(report: Report, device: str, dtype: str) -> None:
    import importlib.util

    import torch

    if importlib.util.find_spec("transformers") is None:
        report.add("smoke", "policy path", "SKIP", reason="transformers is not installed")
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        from reprozoo.kernels.api import fused_logprob

        torch.manual_seed(0)
        cfg = LlamaConfig(
            vocab_size=POLICY_VOCAB,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
        lm = LlamaForCausalLM(cfg).to(device=device, dtype=getattr(torch, dtype))
        ids = torch.randint(0, cfg.vocab_size, (4, 33), device=device)
        out = lm(ids, output_hidden_states=True)
        plain = torch.log_softmax(out.logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
        h, w = out.hidden_states[-1][:, :-1], lm.lm_head.weight
        fused = fused_logprob(h, w, ids[:, 1:].long(), temperature=1.0, backend="auto").logprobs
        err = _err(fused.detach().float().cpu(), plain.detach().cpu())
        opt = torch.optim.AdamW(lm.parameters(), lr=1e-3)
        before = lm.lm_head.weight.detach().float().clone()
        (-fused.float().mean()).backward()
        opt.step()
        changed = float((lm.lm_head.weight.detach().float() != before).float().mean())
        ok = err <= TOL[dtype][0] and changed > 0 and torch.isfinite(fused).all()
        status = "PASS" if ok else "FAIL"
        report.add(
            "smoke",
            f"policy path {dtype}",
            status,
            err_logp=err,
            weights_changed=changed,
            path="fused (reprozoo.kernels.api)",
        )
    report.add("smoke", "full preset", "SKIP", reason="no real-scale full preset runs end to end yet (issues 33, 34)")


# ----------------------------------------------------------------------------- main


def _write(out: Path, report: Report, records: list[dict], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "records.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1) + "\n")
    counts = {s: sum(c["status"] == s for c in report.cases) for s in ("PASS", "FAIL", "SKIP")}
    summary = {"meta": meta, "counts": counts, "cases": report.cases}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / "table.md").write_text(table(report, records, meta))
    figure(records, out / "figure.png")


def table(report: Report, records: list[dict], meta: dict) -> str:
    """Markdown: the benchmark (median time, peak extra memory, ratios to the bare GEMMs, naive and Liger) and every
    parity / smoke case with its status."""
    lines = [
        f"{meta['device_name']}; torch {meta['torch']}; {meta['mode']}; {meta['wall_s']:.0f} s in all. Times: median "
        "of CUDA-event timings after warm-ups, forward+backward of Σ g·log p. Memory: peak allocated above the inputs "
        "(JAX: not measured).",
        "",
        "| N | D | V | dtype | backend | median s | extra GB | / gemm | / naive | / liger |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok = {(r["n"], r["d"], r["v"], r["backend"]): r for r in records if "error" not in r}
    ratio = lambda a, b: "—" if a is None or b is None or not b else f"{a / b:.2f}×"  # noqa: E731
    for r in records:
        key = (r["n"], r["d"], r["v"])
        if "error" in r:
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {r['dtype']} | {r['backend']} | {r['error']} |||||")
            continue
        base = {b: (ok.get((*key, b)) or {}).get("wall_s") for b in ("gemm", "naive", "liger")}
        extra = "—" if r.get("extra_bytes") is None else f"{r['extra_bytes'] / 1e9:.2f}"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {r['dtype']} | {r['backend']} | {r['wall_s']:.4f} | {extra} | "
            f"{ratio(r['wall_s'], base['gemm'])} | {ratio(r['wall_s'], base['naive'])} | "
            f"{ratio(r['wall_s'], base['liger'])} |"
        )
    lines += ["", "| section | case | status | numbers |", "|---|---|---|---|"]
    for c in report.cases:
        nums = ", ".join(
            f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in c.items()
            if k not in ("section", "case", "status")
        )
        lines.append(f"| {c['section']} | {c['case']} | {c['status']} | {nums} |")
    return "\n".join(lines) + "\n"


def figure(records: list[dict], path: Path) -> None:
    """Median forward+backward time relative to the bare GEMMs, per shape and backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if "error" not in r]
    shapes = list(dict.fromkeys((r["n"], r["d"], r["v"]) for r in rows))
    backends = [b for b in dict.fromkeys(r["backend"] for r in rows) if b != "gemm"]
    at = {(r["n"], r["d"], r["v"], r["backend"]): r["wall_s"] for r in rows}
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, len(backends))
    for j, b in enumerate(backends):
        pts = [(i + j * width, at[(*s, b)] / at[(*s, "gemm")]) for i, s in enumerate(shapes) if (*s, b) in at]
        pts = [p for p in pts if math.isfinite(p[1])]
        if pts and all((*s, "gemm") in at for s in shapes):
            ax.bar([p[0] for p in pts], [p[1] for p in pts], width, label=b)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([i + 0.4 for i in range(len(shapes))], [f"N={n} D={d} V={v}" for n, d, v in shapes])
    ax.set_ylabel("time / bare GEMMs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python kernels/gpu_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, Triton interpreter (fast test)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: results/bench/gpu/ on CUDA)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting cases after this many seconds")
    parser.add_argument("--sections", default="parity,bench,smoke", help="comma-separated subset of the sections")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per benchmark case (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per benchmark case before timing")
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    if bad := sections - {"parity", "bench", "smoke"}:
        parser.error(f"--sections: unknown {sorted(bad)}; choose from parity, bench, smoke")
    if args.repeats < 1 or args.warmup < 0 or args.budget_s <= 0:
        parser.error("--repeats must be >= 1, --warmup >= 0 and --budget-s > 0")
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX shares the GPU with torch
    _import_view()
    import torch

    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        parser.error("no CUDA device: run with --dry-run on a CPU")
    out = args.out or (ROOT / "results" / "bench" / "gpu" if cuda else Path("runs/bench/gpu-dry-run"))
    device = "cuda" if cuda else "cpu"
    report = Report(args.budget_s)
    print(f"[gpu_check] {'CUDA' if cuda else 'dry run on CPU'} → {out}", flush=True)
    kernels = ["torch", "triton", "jax", "pallas"]
    if "parity" in sections:
        parity(
            report, GPU_PARITY if cuda else DRY_PARITY, device, kernels, ("float32", "bfloat16"), 1024 if cuda else 8
        )
    records = []
    if "bench" in sections:
        backends = ["gemm", "naive", "linear_cross_entropy", "liger", "fused_loss", "torch", "triton", "jax"]
        records = benchmark(
            report,
            GPU_BENCH if cuda else DRY_BENCH,
            device,
            backends,
            "bfloat16" if cuda else "float32",
            args.warmup,
            args.repeats,
        )
    if "smoke" in sections:
        smoke(report, device, "bfloat16" if cuda else "float32")
    meta = {
        "mode": "cuda" if cuda else "dry-run (cpu)",
        "device_name": torch.cuda.get_device_name() if cuda else platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "wall_s": time.perf_counter() - report.start,
        "tolerances": TOL,
        "imports": str(Path(sys.modules["reprozoo.kernels.api"].__file__).parent)
        if "reprozoo.kernels.api" in sys.modules
        else None,
    }
    _write(out, report, records, meta)
    fails = sum(c["status"] == "FAIL" for c in report.cases)
    print(f"[gpu_check] wrote {out}/ — {len(report.cases)} cases, {fails} FAIL", flush=True)
    return int(fails > 0)


if __name__ == "__main__":
    sys.exit(main())
