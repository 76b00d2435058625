"""Every implemented paper (from the registry) runs its smoke preset through its real CLI."""

import json

import pytest

from reprozoo.papers.registry import implemented

SUMMARY_KEYS = ["paper", "preset", "seeds", "config", "env", "wall_time_s", "methods", "claims"]


@pytest.mark.parametrize("paper", implemented(), ids=lambda p: p.slug)
def test_smoke_preset_through_cli(run_cli, tmp_path, paper):
    proc = run_cli(f"reprozoo.papers.{paper.slug}", "--preset", "smoke", "--out", str(tmp_path))
    assert "claims" in proc.stdout
    assert {"records.jsonl", "summary.json", "table.md", "figure.png"} <= {p.name for p in tmp_path.iterdir()}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == SUMMARY_KEYS
    assert summary["paper"] == paper.slug and summary["preset"] == "smoke"
    assert summary["claims"] and all(
        set(c) == {"id", "kind", "requires", "statement", "observed", "verdict", "passed"} for c in summary["claims"]
    )
    assert (tmp_path / "records.jsonl").read_text().strip()


@pytest.mark.parametrize("paper", implemented(), ids=lambda p: p.slug)
def test_help_and_bad_preset(run_cli, paper):
    assert "--preset" in run_cli(f"reprozoo.papers.{paper.slug}", "--help", timeout=120).stdout
    assert "--preset" in run_cli(f"reprozoo.papers.{paper.slug}", "--preset", "nope", expect_rc=2, timeout=120).stderr
