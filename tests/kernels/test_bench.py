"""The benchmark plumbing at toy sizes (in-process worker, table, figure, README splice); no timing asserted."""

from __future__ import annotations

from kernels import bench, bench_worker

CASE = {"n": 16, "d": 8, "v": 64, "device": "cpu", "dtype": "float32", "threads": 1, "repeats": 1}


def test_worker_table_figure_and_splice(tmp_path):
    records = [
        bench_worker.main({**CASE, "backend": b, "mode": m, "part": "key"})
        for b in ("naive", "linear_cross_entropy", "torch")
        for m in ("fwd", "fwd+bwd")
    ]
    records.append(bench_worker.main({**CASE, "v": 128, "backend": "torch", "mode": "fwd+bwd", "part": "sweep"}))
    for r in records:
        assert r["wall_s"] >= 0 and r["cpu_s"] >= 0 and r["peak_bytes"] > 0 and r["baseline_bytes"] > 0
    meta = {"threads": 1, "cpu": "test", "ncpu": 2, "load_min": 0.0, "load_max": 1.0}
    text = bench.table(records, meta)
    assert "| torch | fwd+bwd |" in text and "peak RSS ≤ 0.25× naive" in text and "V sweep" in text
    bench.figure(records, tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 0
    readme = tmp_path / "README.md"
    readme.write_text("head\n<!-- results:start -->\nold\n<!-- results:end -->\ntail\n")
    bench.splice_readme(readme, text)
    body = readme.read_text()
    assert "old" not in body and "| torch | fwd+bwd |" in body and body.startswith("head") and body.endswith("tail\n")


def test_cases_cover_key_shape_and_cap_the_sweep():
    cfg = bench.BenchConfig(sweep=(8192, 131072), sweep_max_v_naive=65536)
    cases = bench._cases(cfg, cuda=False)
    key = [c for c in cases if c["part"] == "key"]
    assert {(c["backend"], c["mode"]) for c in key} == {
        (b, m) for b in ("naive", "linear_cross_entropy", "torch", "jax") for m in ("fwd", "fwd+bwd")
    }
    assert all(c["n"] == 4096 and c["d"] == 256 and c["v"] == 32768 for c in key)
    big = {c["backend"] for c in cases if c["v"] == 131072}
    assert big == {"torch", "jax"}
