"""One benchmark case in a fresh process: `python -m reprozoo.kernels.bench_worker '<json case>'` prints one JSON line.

A fresh process per case makes the peak resident set size (ru_maxrss, which also sees torch's CPU allocator and
XLA's buffers, unlike tracemalloc) belong to that case alone. Protocol: build inputs, read the current RSS
(`baseline`), run the case once (its high-water mark is `peak`; this run also warms up / compiles), then time
`repeats` more runs (wall and process CPU time; the minimum is reported). On CUDA the memory is
`torch.cuda.max_memory_allocated` instead. Backends: naive, linear_cross_entropy, liger, gemm (the bare GEMMs),
fused_loss (`reprozoo.kernels.fused_loss.fused_linear_loss`), or a `reprozoo.kernels.api.fused_logprob` backend.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _bare_gemms(h, w, backward, chunk=512):
    """s = h Wᵀ per 512-token chunk (forward); with backward also s W and Σ sᵀ h (returned), no softmax."""
    import torch

    h, w = h.detach(), w.detach()
    gw = torch.zeros_like(w) if backward else None
    for n0 in range(0, h.shape[0], chunk):
        s = h[n0 : n0 + chunk] @ w.T
        if backward:
            s @ w
            gw.addmm_(s.T, h[n0 : n0 + chunk])
    return gw


def _torch_case(case):
    import torch

    torch.set_num_threads(case["threads"])
    dev = case["device"]
    dtype = getattr(torch, case["dtype"])
    g = torch.Generator(device=dev).manual_seed(0)
    n, d, v = case["n"], case["d"], case["v"]
    h0 = (torch.randn(n, d, generator=g, device=dev) / d**0.5 * 4).to(dtype)
    w0 = torch.randn(v, d, generator=g, device=dev).to(dtype)
    t = torch.randint(0, v, (n,), generator=g, device=dev)
    gl = torch.randn(n, generator=g, device=dev)
    backward = case["mode"] == "fwd+bwd"
    name = case["backend"]

    def run():
        h = h0.detach().requires_grad_(backward)
        w = w0.detach().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            if name == "naive":  # full logits, log_softmax, gather
                lp = torch.log_softmax((h @ w.T).float(), -1).gather(1, t[:, None]).squeeze(1)
            elif name == "linear_cross_entropy":
                lp = -torch.nn.functional.linear_cross_entropy(h, w, t, reduction="none")
            elif name == "gemm":  # the GEMM floor: the three GEMMs of gradient-in-forward, nothing else
                _bare_gemms(h, w, backward)
                lp = None
            elif name == "fused_loss":  # gradient in the forward; upstream gradient gl known up front
                from reprozoo.kernels.fused_loss import fused_linear_loss

                out = fused_linear_loss(h, w, t, coef=gl)
                if backward:
                    out.loss.backward()
                lp = None
            elif name == "liger":
                from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

                lp = -liger_fused_linear_cross_entropy(h, w, t, reduction="none")
            else:
                from reprozoo.kernels.api import fused_logprob

                lp = fused_logprob(h, w, t, entropy=False, backend=name).logprobs  # log p only, like naive
            if backward and lp is not None:
                (lp.float() * gl).sum().backward()
        if dev == "cuda":
            torch.cuda.synchronize()

    return run, dev == "cuda"


def _jax_case(case):
    import jax

    from reprozoo.kernels.jax_backend import fused_logprob_jax

    n, d, v = case["n"], case["d"], case["v"]
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    h = jax.random.normal(k1, (n, d)) / d**0.5 * 4
    w = jax.random.normal(k2, (v, d))
    t = jax.random.randint(k3, (n,), 0, v)
    gl = jax.random.normal(k4, (n,))
    pallas = case["backend"] == "pallas"

    def loss(h, w):
        return (fused_logprob_jax(h, w, t, entropy=False, pallas=pallas)[0] * gl).sum()

    if case["mode"] == "fwd+bwd":
        f = jax.jit(jax.grad(loss, argnums=(0, 1)))
    else:
        f = jax.jit(lambda h, w: fused_logprob_jax(h, w, t, entropy=False, pallas=pallas)[0])

    def run():
        jax.block_until_ready(f(h, w))

    return run, False


def main(case: dict) -> dict:
    run, cuda = (_jax_case if case["backend"] in ("jax", "pallas") else _torch_case)(case)
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    run()
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    walls, cpus = [], []
    for _ in range(case["repeats"]):
        c0, t0 = time.process_time(), time.perf_counter()
        run()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        **case,
        "wall_s": min(walls),
        "cpu_s": min(cpus),
        "peak_bytes": peak,
        "baseline_bytes": base,
        "extra_bytes": peak - base,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
