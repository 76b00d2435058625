"""The shared CLI: default output outside tracked files, --publish, the reproduction check against the committed
reference, fail-fast --out, and interrupts that leave earlier outputs untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from reprozoo.common import checkpoint, cli
from reprozoo.common.cli import main
from reprozoo.common.config import ConfigError, RunConfig
from reprozoo.common.results import Claim, record

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ToyConfig(RunConfig):
    """A toy paper: value = level + 0.01·seed."""

    level: float = 1.0
    """The level every seed measures."""


PRESETS = {name: ToyConfig() for name in ("smoke", "quick", "full")}


def toy(argv, results, *, run=None, figure=None):
    """Run the toy paper through the real CLI code; returns the exit status."""

    def default_run(cfg):
        return [record("toy", s, "value", cfg.level + 0.01 * s) for s in cfg.seed_list()]

    def claims(rows, cfg):
        mean = sum(r["value"] for r in rows) / len(rows)
        return [Claim("level-high", "mean value >= 0.5", {"mean": mean}, mean >= 0.5)]

    return main(
        paper="toy",
        config_cls=ToyConfig,
        presets=PRESETS,
        run=run or default_run,
        claims=claims,
        figure=figure,
        argv=argv,
        results=results,
    )


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch cwd (so the default runs/ lands in it) and a scratch committed-results root."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "after_publish_steps", lambda: [])  # --publish must not rewrite the real READMEs
    return tmp_path


def test_default_out_is_runs_and_publish_writes_the_reference(workdir):
    results = workdir / "results"
    assert toy(["--preset", "smoke"], results) == 0
    assert (workdir / "runs/toy/smoke/summary.json").is_file()
    assert not results.exists()
    assert toy(["--preset", "smoke", "--publish"], results) == 0
    assert (results / "toy/smoke/records.jsonl").is_file()
    assert not (results / "toy/smoke/comparison.json").exists()  # the reference does not compare with itself
    assert toy(["--preset", "smoke", "--publish", "--out", "x"], results) == 2


def test_publish_runs_the_after_publish_steps_that_pyproject_names(tmp_path, monkeypatch, capsys):
    assert cli.after_publish_steps() == ["reprozoo.papers.readme:main"]  # the README tables, above common/
    monkeypatch.chdir(tmp_path)
    steps = ["toy_step:main", "no_such_module:main"]
    (tmp_path / "pyproject.toml").write_text(f"[tool.reprozoo]\nafter-publish = {json.dumps(steps)}\n")
    assert cli.after_publish_steps(tmp_path) == steps
    assert cli.after_publish_steps(tmp_path / "results") == []

    (tmp_path / "toy_step.py").write_text("CALLS = []\n\n\ndef main(argv):\n    CALLS.append(argv)\n")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.setattr(cli, "after_publish_steps", lambda: steps)
    assert toy(["--preset", "smoke"], tmp_path / "results") == 0
    import toy_step

    assert toy_step.CALLS == []  # a run that does not publish runs no step
    assert toy(["--preset", "smoke", "--publish"], tmp_path / "results") == 0
    assert toy_step.CALLS == [[]]
    assert "after-publish step no_such_module:main skipped" in capsys.readouterr().err


def test_run_is_compared_with_the_reference(workdir, capsys):
    results = workdir / "results"
    assert toy(["--preset", "smoke", "--publish"], results) == 0
    assert toy(["--preset", "smoke"], results) == 0
    comp = json.loads((workdir / "runs/toy/smoke/comparison.json").read_text())
    assert comp["claims"] == [{"id": "level-high", "reference": "PASS", "this_run": "PASS", "same": True}]
    assert comp["claims_same"] and comp["same_seeds_and_config"] and comp["records_identical"] is True
    assert comp["aggregates_inside"] == comp["aggregates_total"] == 1
    assert "byte-identical" in capsys.readouterr().out

    # a different setting: the verdict flips, the mean leaves the CI, records are not compared
    assert toy(["--preset", "smoke", "--level", "0.1"], results) == 0
    comp = json.loads((workdir / "runs/toy/smoke/comparison.json").read_text())
    assert comp["claims"][0] == {"id": "level-high", "reference": "PASS", "this_run": "FAIL", "same": False}
    assert not comp["claims_same"] and comp["records_identical"] is None and comp["aggregates_inside"] == 0
    assert "DIFFERENT" in capsys.readouterr().out
    assert toy(["--preset", "smoke", "--level", "0.1", "--strict"], results) == 1


def test_strict_exits_1_when_only_the_verdict_differs_from_the_reference(workdir):
    results = workdir / "results"
    assert toy(["--preset", "smoke", "--publish"], results) == 0
    ref = results / "toy/smoke/summary.json"
    summary = json.loads(ref.read_text())
    summary["claims"][0].update(verdict="FAIL", passed=False)  # the reference says FAIL; this run PASSes
    ref.write_text(json.dumps(summary))
    assert toy(["--preset", "smoke"], results) == 0
    assert toy(["--preset", "smoke", "--strict"], results) == 1


def test_same_setup_with_round_off_reports_the_largest_relative_difference(workdir):
    results = workdir / "results"
    assert toy(["--preset", "smoke", "--publish"], results) == 0
    ref = results / "toy/smoke/records.jsonl"
    rows = [json.loads(line) for line in ref.read_text().splitlines()]
    rows[-1]["value"] *= 1 + 1e-9  # another CPU's round-off
    ref.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    assert toy(["--preset", "smoke"], results) == 0
    comp = json.loads((workdir / "runs/toy/smoke/comparison.json").read_text())
    assert comp["records_identical"] is False
    assert comp["records_max_rel_diff"] == pytest.approx(1e-9, rel=1e-3)


@pytest.mark.parametrize("bad", ["/proc/nope/out", "a_file/sub"])
def test_bad_out_fails_before_running(workdir, capsys, bad):
    (workdir / "a_file").write_text("not a folder")
    ran = []
    assert toy(["--preset", "smoke", "--out", bad], workdir / "results", run=lambda cfg: ran.append(1) or []) == 2
    assert not ran
    assert capsys.readouterr().err.startswith("error: --out: cannot create or write")


def _earlier_output(workdir):
    out = workdir / "runs/toy/smoke"
    assert toy(["--preset", "smoke"], workdir / "results") == 0
    return out, {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize("where", ["run", "sigterm", "figure"])
def test_interrupt_leaves_earlier_output_untouched(workdir, capsys, where):
    out, before = _earlier_output(workdir)
    handler = signal.getsignal(signal.SIGTERM)

    def interrupted_run(cfg):
        if where == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt

    def interrupted_figure(rows, cfg, path):
        path.write_bytes(b"half a png")
        raise KeyboardInterrupt

    if where == "figure":
        rc = toy(["--preset", "smoke", "--level", "3"], workdir / "results", figure=interrupted_figure)
    else:
        rc = toy(["--preset", "smoke", "--level", "3"], workdir / "results", run=interrupted_run)
    assert rc == (143 if where == "sigterm" else 130)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder, no half-written file
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is handler  # the CLI's handler is put back


def test_interrupted_run_resumes_from_its_checkpoints_with_identical_records(workdir, capsys, monkeypatch):
    ran = []

    def units_run(cfg):  # one checkpointed unit per seed, drawing from the global RNG
        def one(s):
            ran.append(s)
            return [record("toy", s, "value", cfg.level + 0.01 * s + float(np.random.rand()))]

        np.random.seed(0)
        return [r for s in cfg.seed_list() for r in checkpoint.unit(("toy", s), lambda s=s: one(s))]

    results = workdir / "results"
    assert toy(["--preset", "smoke", "--seeds", "4", "--out", "full"], results, run=units_run) == 0
    monkeypatch.setenv(checkpoint.STOP_ENV, "2")  # SIGTERM once 2 units are saved
    ran.clear()
    assert toy(["--preset", "smoke", "--seeds", "4", "--out", "cut"], results, run=units_run) == 143
    assert "2 finished units kept in cut/checkpoints/ for --resume" in capsys.readouterr().err
    assert [p.name for p in (workdir / "cut").iterdir()] == ["checkpoints"] and ran == [0, 1]
    monkeypatch.delenv(checkpoint.STOP_ENV)
    # another setup is refused before anything runs
    assert toy(["--preset", "smoke", "--seeds", "5", "--out", "cut", "--resume"], results, run=units_run) == 2
    assert "error: --resume: the checkpoints in cut/checkpoints belong to another setup (seeds: 4 → 5)" in (
        capsys.readouterr().err
    )
    meta = workdir / "cut/checkpoints/setup.json"
    meta.write_text(meta.read_text().replace(json.loads(meta.read_text())["commit"], "0000"))  # older code
    ran.clear()
    assert toy(["--preset", "smoke", "--seeds", "4", "--out", "cut", "--resume"], results, run=units_run) == 0
    assert "warning: --resume: the checkpoints were written at commit 0000" in capsys.readouterr().err
    assert ran == [2, 3] and not (workdir / "cut/checkpoints").exists()  # deleted once the run's files are in place
    assert (workdir / "cut/records.jsonl").read_bytes() == (workdir / "full/records.jsonl").read_bytes()
    config = json.loads((workdir / "cut/summary.json").read_text())["config"]
    assert "resume" not in config and "checkpoint_every" not in config and config["seeds"] == 4
    # without --resume a leftover checkpoint folder is deleted and every unit runs again
    monkeypatch.setenv(checkpoint.STOP_ENV, "1")
    assert toy(["--preset", "smoke", "--seeds", "4", "--out", "cut"], results, run=units_run) == 143
    monkeypatch.delenv(checkpoint.STOP_ENV)
    ran.clear()
    assert toy(["--preset", "smoke", "--seeds", "4", "--out", "cut"], results, run=units_run) == 0
    assert ran == [0, 1, 2, 3]
    with pytest.raises(SystemExit, match="2"):
        toy(["--preset", "smoke", "--checkpoint-every", "-1"], results)


def test_real_paper_smoke_with_default_out_leaves_checkout_clean_and_bad_out_exits_2(run_cli):
    def status():  # what the run could touch: its committed reference, and runs/ (must stay ignored)
        return subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", "results/subgm", "runs"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    before = status()
    proc = run_cli("reprozoo.papers.subgm", "--preset", "smoke")
    assert "out=runs/subgm/smoke" in proc.stdout
    assert (ROOT / "runs/subgm/smoke/summary.json").is_file()
    assert status() == before
    bad = run_cli("reprozoo.papers.subgm", "--preset", "smoke", "--out", "/proc/nope", expect_rc=2)
    assert bad.stderr.startswith("error: --out:") and "[subgm]" not in bad.stdout


def test_worker_pools_are_refused_under_a_multi_process_launch(workdir, capsys, monkeypatch):
    @dataclass
    class PoolConfig(ToyConfig):
        workers: int = 2
        """Processes of the toy's pool."""

    def pool_main(argv):
        return main(
            paper="toy",
            config_cls=PoolConfig,
            presets={name: PoolConfig() for name in ("smoke", "quick", "full")},
            run=lambda cfg: ran.append(1) or [record("toy", 0, "value", 1.0)],
            claims=lambda rows, cfg: [],
            argv=argv,
            results=workdir / "results",
        )

    ran = []
    monkeypatch.setenv("WORLD_SIZE", "2")  # what `accelerate launch --num_processes 2` sets
    assert pool_main(["--preset", "smoke"]) == 2 and not ran
    assert "error: --workers: must be 1 under accelerate launch (2 processes), got 2" in capsys.readouterr().err
    assert not (workdir / "runs").exists()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert pool_main(["--preset", "smoke"]) == 0 and ran == [1]


def test_a_gap_in_the_project_is_not_reported_as_a_students_todo(workdir, capsys, monkeypatch):
    """NotImplementedError means "write this function" only in a student copy (ASSIGNMENT.md at its root); in the
    project it is a real gap and surfaces as itself. A setting found unusable while running exits 2, naming it."""

    def gap(cfg):
        raise NotImplementedError("nobody wrote this")

    with pytest.raises(NotImplementedError, match="nobody wrote this"):
        toy(["--preset", "smoke"], workdir / "results", run=gap)
    assert "ASSIGNMENT.md" not in capsys.readouterr().err

    monkeypatch.setattr(cli, "ROOT", workdir)
    (workdir / "ASSIGNMENT.md").write_text("# Assignment\n")
    assert toy(["--preset", "smoke"], workdir / "results", run=gap) == 1
    assert "not implemented yet: nobody wrote this (see ASSIGNMENT.md)" in capsys.readouterr().err

    def unusable(cfg):
        raise ConfigError("level", "this level needs a GPU")

    assert toy(["--preset", "smoke"], workdir / "results", run=unusable) == 2
    assert "error: [toy] --level: this level needs a GPU" in capsys.readouterr().err


def test_pilot_seeds_are_development_seeds_and_stay_out_of_the_config(workdir):
    """--first-seed 1000 runs seeds 1000.. (a pilot never touches the evaluation seeds 0..); summary.json lists them
    under `seeds`, and `config` stays comparable with references written before the option existed."""
    assert toy(["--preset", "smoke", "--seeds", "2", "--first-seed", "1000"], workdir / "results") == 0
    summary = json.loads((workdir / "runs/toy/smoke/summary.json").read_text())
    assert summary["seeds"] == [1000, 1001] and "first_seed" not in summary["config"]
    with pytest.raises(SystemExit) as bad:
        toy(["--preset", "smoke", "--first-seed", "-1"], workdir / "results")
    assert bad.value.code == 2


def test_summary_records_the_commit_the_run_started_at(workdir, monkeypatch):
    """A commit landing during a long run does not relabel it: summary.json's env is taken before the run."""
    import reprozoo.common.results as results_mod

    commit = ["abc123"]
    monkeypatch.setattr(results_mod, "git_commit", lambda root=None: commit[0])

    def run(cfg):
        commit[0] = "def456"  # somebody commits while the run computes
        return [record("toy", s, "value", 1.0) for s in cfg.seed_list()]

    assert toy(["--preset", "smoke"], workdir / "results", run=run) == 0
    summary = json.loads((workdir / "runs/toy/smoke/summary.json").read_text())
    assert summary["env"]["commit"] == "abc123"
