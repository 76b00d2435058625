"""The benchmark plumbing at toy sizes (in-process worker, table, figure, README splice); no timing asserted."""

from __future__ import annotations

import torch

from reprozoo.kernels import bench, bench_worker

CASE = {"n": 16, "d": 8, "v": 64, "device": "cpu", "dtype": "float32", "threads": 1, "repeats": 1}


def test_worker_table_figure_and_splice(tmp_path):
    records = [
        bench_worker.main({**CASE, "backend": b, "mode": m, "part": "key"})
        for b in ("naive", "linear_cross_entropy", "torch", "fused_loss", "gemm")
        for m in ("fwd", "fwd+bwd")
        if not (b == "fused_loss" and m == "fwd")
    ]
    records.append(bench_worker.main({**CASE, "v": 128, "backend": "fused_loss", "mode": "fwd+bwd", "part": "shapes"}))
    records.append(bench_worker.main({**CASE, "v": 128, "backend": "gemm", "mode": "fwd+bwd", "part": "shapes"}))
    for r in records:
        assert r["wall_s"] >= 0 and r["cpu_s"] >= 0 and r["peak_bytes"] > 0 and r["baseline_bytes"] > 0
    meta = {"threads": 1, "cpu": "test", "ncpu": 2, "load_min": 0.0, "load_max": 1.0, "max_naive_logits": 1024}
    text = bench.table(records, meta)
    assert "| torch | fwd+bwd |" in text and "| fused_loss | fwd+bwd |" in text and "| gemm | fwd |" in text
    assert "fused-loss path `fused_loss`" in text and "general (recompute) path `torch`" in text
    assert "Further shapes" in text and "| 16 | 8 | 128 | fused_loss |" in text
    bench.figure(records, tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 0
    readme = tmp_path / "README.md"
    readme.write_text("head\n<!-- results:start -->\nold\n<!-- results:end -->\ntail\n")
    bench.splice_readme(readme, text)
    body = readme.read_text()
    assert "old" not in body and "| torch | fwd+bwd |" in body and body.startswith("head") and body.endswith("tail\n")


def test_bare_gemm_floor_computes_the_three_products():
    """The floor does the forward GEMM and, with backward, the two gradient-shaped GEMMs (checked via Σ sᵀ h)."""
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randn(7, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(bench_worker._bare_gemms(h, w, backward=True, chunk=3), (h @ w.T).T @ h)


def test_cases_cover_key_shape_and_cap_naive():
    cfg = bench.BenchConfig(shapes=((4096, 1024, 32768), (4096, 256, 131072)))
    cases = bench._cases(cfg, cuda=False)
    key = [c for c in cases if c["part"] == "key"]
    backends = ("naive", "linear_cross_entropy", "torch", "jax", "fused_loss", "gemm")
    assert {(c["backend"], c["mode"]) for c in key} == {
        (b, m) for b in backends for m in ("fwd", "fwd+bwd") if not (b == "fused_loss" and m == "fwd")
    }
    assert all(c["n"] == 4096 and c["d"] == 256 and c["v"] == 32768 for c in key)
    big = {c["backend"] for c in cases if c["v"] == 131072}
    assert big == {"torch", "fused_loss", "gemm"}
    assert {c["backend"] for c in cases if c["d"] == 1024} == set(cfg.shape_backends)
