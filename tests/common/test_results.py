import json
import math

import numpy as np
import pytest
from scipy import stats

from reprozoo.common.results import (
    Claim,
    aggregate,
    count_verdicts,
    exit_code,
    mean_ci95,
    record,
    resolve_verdicts,
    select,
    values,
    verdict_of,
    write_run,
)


def test_mean_ci95_matches_t_interval():
    x = [1.0, 2.0, 4.0, 7.0]
    mean, half = mean_ci95(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert mean == pytest.approx(3.5)
    assert half == pytest.approx((hi - lo) / 2)
    assert mean_ci95([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        mean_ci95([])


def test_record_select_values_and_aggregate():
    rows = [record("a", s, "acc", v, p=0.1) for s, v in enumerate([0.5, 0.7, 0.6])]
    rows += [record("a", 0, "acc", 9.0, p=0.1, step=3)]  # a curve point: not aggregated
    rows += [record("b", 0, "acc", 0.2)]
    assert len(select(rows, method="a", p=0.1)) == 4
    assert list(values(rows, method="a", p=0.1, metric="acc")) == [0.5, 9.0, 0.7, 0.6]  # ordered by seed
    agg = aggregate(rows)
    assert agg["a"]["acc[p=0.1]"]["mean"] == pytest.approx(0.6)
    assert agg["a"]["acc[p=0.1]"]["n"] == 3
    assert agg["b"]["acc"] == {"mean": 0.2, "ci95": 0.0, "n": 1}


def test_write_run_files_and_fixed_summary_keys(tmp_path):
    rows = [record("m", s, "err", 1.0 / (s + 1), rank=2) for s in range(3)] + [record("m", 0, "err", math.inf)]
    claims = [Claim("c1", "err small", {"err": 0.5}, True), Claim("c2", "other", {"x": [1, 2]}, False)]

    def fig(path):
        import matplotlib.pyplot as plt

        plt.plot([0, 1])
        plt.savefig(path, format="png")
        plt.close()

    summary, comparison = write_run(
        tmp_path,
        paper="toy",
        preset="smoke",
        seeds=[0, 1, 2],
        config={"a": 1},
        rows=rows,
        claims=claims,
        wall_time_s=1.23,
        figure=fig,
    )
    assert comparison is None  # no reference given
    assert list(summary) == ["paper", "preset", "seeds", "config", "env", "wall_time_s", "methods", "claims"]
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["claims"][1] == {
        "id": "c2",
        "kind": "claim",
        "requires": [],
        "statement": "other",
        "observed": {"x": [1, 2]},
        "verdict": "FAIL",
        "passed": False,
    }
    assert {"commit", "device", "packages", "python", "constraints", "fused_logprob"} <= set(on_disk["env"])
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["value"] is None  # inf is written as null
    assert "| m | err[rank=2] |" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"
    assert exit_code(claims, strict=True) == 1 and exit_code(claims, strict=False) == 0
    assert exit_code(claims[:1], strict=True) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_write_run_failure_leaves_earlier_outputs(tmp_path):
    """Files are staged and moved into place together: an error while making them changes nothing."""
    kwargs = dict(paper="toy", preset="smoke", seeds=[0], config={}, claims=[], wall_time_s=0.0)
    write_run(tmp_path, rows=[record("m", 0, "x", 1.0)], **kwargs)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def boom(path):
        path.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_run(tmp_path, rows=[record("m", 0, "x", 2.0)], figure=boom, **kwargs)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_git_commit_dirty_ignores_results_and_markdown(tmp_path):
    import subprocess

    from reprozoo.common.results import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    for name in ("code.py", "README.md", "results/table.md"):
        (tmp_path / name).write_text("a\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    sha = git_commit(tmp_path)
    assert len(sha) == 40 and not sha.endswith("-dirty")
    (tmp_path / "results/table.md").write_text("b\n")
    (tmp_path / "README.md").write_text("b\n")
    assert git_commit(tmp_path) == sha
    (tmp_path / "code.py").write_text("b\n")
    assert git_commit(tmp_path) == sha + "-dirty"
    assert git_commit(tmp_path / "nowhere") == "unknown"


def _toy_claims(premise_holds: bool, claim_holds: bool, control_holds: bool) -> list[Claim]:
    return [
        Claim("p1", "the premise", {"auc": 0.8}, premise_holds, kind="premise"),
        Claim("p2", "another premise", {"x": 1}, True, kind="premise"),
        Claim("c1", "the method helps", {"diff": 0.2}, claim_holds, requires=("p1", "p2")),
        Claim("c2", "needs only p2", {"diff": 0.1}, claim_holds, requires=("p2",)),
        Claim("k1", "no gain where the premise is off", {"diff": 0.0}, control_holds, kind="control"),
    ]


def test_a_failed_premise_makes_its_claims_untested_and_keeps_their_numbers():
    resolved = {c.id: c for c in resolve_verdicts(_toy_claims(False, True, True))}
    assert resolved["p1"].verdict == "FAIL" and resolved["c1"].verdict == "UNTESTED" and not resolved["c1"].passed
    assert resolved["c1"].observed == {"diff": 0.2}
    assert resolved["c2"].verdict == "PASS"  # its own premise holds
    assert resolved["k1"].verdict == "PASS"  # a control that behaved as predicted
    assert exit_code(list(resolved.values()), strict=True) == 1  # p1 FAILed; UNTESTED alone would not fail
    assert exit_code([resolved["c1"], resolved["c2"]], strict=True) == 0
    failing = {c.id: c.verdict for c in resolve_verdicts(_toy_claims(True, False, False))}
    assert failing == {"p1": "PASS", "p2": "PASS", "c1": "FAIL", "c2": "FAIL", "k1": "FAIL"}
    assert resolve_verdicts(resolve_verdicts(_toy_claims(False, True, True))) == resolve_verdicts(
        _toy_claims(False, True, True)
    )  # idempotent


def test_claim_kinds_are_checked():
    with pytest.raises(ValueError, match="kind must be"):
        Claim("x", "s", {}, True, kind="headline")
    with pytest.raises(ValueError, match="requires nothing"):
        Claim("x", "s", {}, True, kind="premise", requires=("y",))
    with pytest.raises(ValueError, match="not premises"):
        resolve_verdicts([Claim("c", "s", {}, True, requires=("typo",))])
    with pytest.raises(ValueError, match="not premises"):  # a claim is not a premise
        resolve_verdicts([Claim("a", "s", {}, True), Claim("c", "s", {}, True, requires=("a",))])


def test_verdict_counts_for_readme_tables_and_old_summaries():
    claims = [c.as_dict() for c in resolve_verdicts(_toy_claims(False, True, True))]
    assert count_verdicts(claims) == "claims 1 pass · 0 fail · 1 untested; premises 1/2; controls 1/1"
    old = [{"id": "a", "passed": True}, {"id": "b", "passed": False}]  # written before kinds and verdicts
    assert [verdict_of(c) for c in old] == ["PASS", "FAIL"] and count_verdicts(
        old
    ) == "v1 checks (no kinds) 1 pass · 1 fail"
