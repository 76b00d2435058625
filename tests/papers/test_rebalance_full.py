"""ReBalance `--preset full` end to end on CPU: a tiny Qwen2 reasoning model and MATH-500 stand-ins in the real
formats, through the command line; the steering hook must fire and the run files must hold the records."""

import json
import os

import pytest

pytest.importorskip("datasets")
pytest.importorskip("math_verify")


os.environ["HF_HUB_OFFLINE"] = "1"


def test_full_preset_runs_end_to_end_and_steers(reasoning_standins, run_cli, tmp_path):
    model, data = reasoning_standins
    out = tmp_path / "out"
    args = ["--preset", "full", "--model", str(model), "--dataset", str(data["math500"])]
    args += ["--calibration-dataset", str(data["math500"]), "--n-calib", "4", "--max-samples", "4"]
    args += ["--max-new-tokens", "80", "--seeds", "1", "--batch-size", "4", "--methods", "base", "rebalance"]
    run_cli("reprozoo.papers.rebalance", *args, "--out", str(out))
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    get = {(r["method"], r["metric"]): r["value"] for r in rows}
    assert get[("rebalance", "steered_positions")] > 0 and get[("base", "steered_positions")] == 0
    assert get[("base", "accuracy")] > 0  # the fitted model answers 2 and math-verify accepts it
    assert get[("calibration", "n_pos")] > 0 and get[("calibration", "n_neg")] > 0
    assert 0 < get[("calibration", "layer")] <= 2
    assert (out / "summary.json").is_file()


def test_official_settings_and_lexicon():
    from reprozoo.papers.rebalance.full import official_for, reflective

    assert official_for("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")["layer"] == 22
    assert official_for("/models/DeepSeek-R1-Distill-Qwen-1.5B")["low_val_2"] == -1.91
    assert official_for("Qwen/QwQ-32B")["layer"] == 58 and "layer" not in official_for("Qwen/Qwen3-14B")
    assert official_for("Qwen/Qwen3-4B") is None
    assert reflective("Wait, let me double-check that.") and reflective("Let me double check")
    assert reflective("Alternatively we could") and not reflective("So the sum is 2.")
    assert not reflective("butter")  # word boundaries, as the official regex


@pytest.mark.slow
def test_full_preset_resumes_after_an_interrupt(reasoning_standins, run_cli, tmp_path, monkeypatch):
    """Two seeds; SIGTERM once seed 0 is saved; the same command with --resume loads it and runs seed 1: the records
    equal an uninterrupted run's."""
    from reprozoo.common import checkpoint

    model, data = reasoning_standins
    args = ["--preset", "full", "--model", str(model), "--dataset", str(data["math500"]), "--n-calib", "4"]
    args += ["--calibration-dataset", str(data["math500"]), "--max-samples", "4", "--max-new-tokens", "80"]
    args += ["--seeds", "2", "--batch-size", "4", "--methods", "base", "rebalance"]
    run_cli("reprozoo.papers.rebalance", *args, "--out", str(tmp_path / "ref"))
    monkeypatch.setenv(checkpoint.STOP_ENV, "1")
    run_cli("reprozoo.papers.rebalance", *args, "--out", str(tmp_path / "cut"), expect_rc=143)
    monkeypatch.delenv(checkpoint.STOP_ENV)
    run_cli("reprozoo.papers.rebalance", *args, "--out", str(tmp_path / "cut"), "--resume")
    assert (tmp_path / "cut" / "records.jsonl").read_text() == (tmp_path / "ref" / "records.jsonl").read_text()
