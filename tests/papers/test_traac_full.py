"""TRAAC `--preset full` on TRL's GRPO trainer, end to end on CPU: a tiny Qwen2 reasoning model and DAPO-Math-17k /
MATH-500 stand-ins in the real formats. Through the command line the weights must change; with the uniformity gate
forced open, correct rollouts must be compressed, regenerated and pooled."""

import json
import os

import pytest

pytest.importorskip("trl")
pytest.importorskip("math_verify")

from reasoning_standins import build_datasets, build_model  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"
SMALL = ["--max-steps", "2", "--max-samples", "4", "--seeds", "1", "--max-new-tokens", "100"]
SMALL += ["--prompts-per-step", "2", "--group-size", "2", "--minibatches", "1", "--rollout-temperature", "0.7"]


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("traac_full")
    return build_model(root / "model"), build_datasets(root)


def test_full_preset_trains_through_trl(standins, run_cli, tmp_path):
    model, data = standins
    out = tmp_path / "out"
    args = ["--preset", "full", "--model", str(model), "--dataset", str(data["dapo"])]
    args += ["--eval-dataset", str(data["math500"]), "--methods", "base", "traac", *SMALL, "--lr", "1e-3"]
    run_cli("reprozoo.papers.traac", *args, "--out", str(out))
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    get = {(r["method"], r["metric"]): r["value"] for r in rows if "step" not in r}
    assert get[("traac", "weights_changed")] > 0.5
    assert 0 <= get[("base", "accuracy")] <= 1 and get[("traac", "response_len")] > 0
    assert len([r for r in rows if r["metric"] == "reward"]) == 2  # one reward call per generation batch


def test_forced_compression_is_pooled(standins, tmp_path):
    from reprozoo.common.config import parse
    from reprozoo.common.data.math import load_math
    from reprozoo.papers.traac import full

    model, data = standins
    cfg = parse(full.Config, full.PRESETS, ["--preset", "full", "--model", str(model), *SMALL])
    problems = load_math(str(data["dapo"]), max_rows=4)
    _, _, rows = full.train(cfg, "traac", 0, problems, str(tmp_path / "trl"), force_gate_open=True)
    compressed = sum(r["value"] for r in rows if r["metric"] == "compressed")
    assert compressed >= 1
    assert sum(r["value"] for r in rows if r["metric"] == "pooled_compressed") <= compressed
