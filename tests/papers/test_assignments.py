"""Assignments: solution regions, the student copy, and grading that is honest (reference 100%, untouched copy 0,
one function implemented = exactly its points, a hang or a crash costs only its own test)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib

import pytest

from reprozoo.papers import assignments as A
from reprozoo.papers.registry import BY_SLUG, ROOT, implemented


def test_regions_are_found_named_and_checked(tmp_path):
    good = tmp_path / "m.py"
    good.write_text(
        "def f(x):\n"
        '    """Doc."""\n'
        "    # BEGIN SOLUTION\n"
        "    y = x + 1\n"
        "    return y\n"
        "    # END SOLUTION\n"
        "\n\n"
        "class K:\n"
        "    def g(self):\n"
        "        # BEGIN SOLUTION\n"
        "        return 2\n"
        "        # END SOLUTION\n"
    )
    found = A.regions(good, tmp_path)
    assert [(r.function, r.begin, r.end) for r in found] == [("f", 3, 6), ("K.g", 11, 13)]
    stubbed = A.stub(good.read_text(), found)
    assert 'raise NotImplementedError("f: see the docstring")' in stubbed and "x + 1" not in stubbed
    assert '        raise NotImplementedError("K.g: see the docstring")' in stubbed
    namespace: dict = {}
    exec(stubbed, namespace)
    with pytest.raises(NotImplementedError, match="^f: see the docstring$"):
        namespace["f"](1)


@pytest.mark.parametrize(
    "body, message",
    [
        ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "inside a function"),
        ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    # END SOLUTION\n", "without a"),
        (
            "def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n",
            "inside the region",
        ),
        ("def f():\n    # BEGIN SOLUTION\n    return 1\n# END SOLUTION\n", "not indented like"),
    ],
)
def test_malformed_regions_are_rejected_with_their_line(tmp_path, body, message):
    bad = tmp_path / "m.py"
    bad.write_text(body)
    with pytest.raises(A.AssignmentError, match=message):
        A.regions(bad, tmp_path)


def test_hidden_tests_are_stripped_with_their_decorators():
    text = (
        "import pytest\n\n\n"
        "@pytest.mark.points(1)\ndef test_a():\n    pass\n\n\n"
        "@pytest.mark.points(2)\n@pytest.mark.hidden\ndef test_secret():\n    assert 1\n\n\n"
        "def test_b():\n    pass\n"
    )
    out = A.strip_hidden_tests(text)
    assert "test_secret" not in out and "hidden" not in out and "test_a" in out and "test_b" in out
    compile(out, "t.py", "exec")


def _write_body(copy, slug, function, body):
    """Replace one stub of a student copy by `body` (text placed at the stub's indentation)."""
    path = copy / "papers" / slug / "method.py"
    text = path.read_text()
    stub = f'raise NotImplementedError("{function}: see the docstring")'
    assert stub in text
    path.write_text(text.replace(stub, body))


def _restore(copy, slug, function):
    """Implement exactly one function in a student copy: its reference solution region, copied back."""
    for path, found in A.solution_files(BY_SLUG[slug]).items():
        for r in found:
            if r.function == function:
                ref = path.read_text().splitlines(keepends=True)
                indent = ref[r.begin - 1][: len(ref[r.begin - 1]) - len(ref[r.begin - 1].lstrip())]
                target = copy / path.relative_to(ROOT)
                stub = f'{indent}raise NotImplementedError("{function}: see the docstring")\n'
                assert stub in target.read_text()
                target.write_text(target.read_text().replace(stub, "".join(ref[r.begin : r.end - 1]), 1))
                return
    raise KeyError(function)


# the function whose implementation alone earns exactly these points (its tests use no other solution function)
ONE_FUNCTION = {
    "subgm": ("measure", 1.0),
    "traac": ("difficulty_bucket", 1.0),
    "a2pr": ("lambda_scale", 1.0),
    "bang": ("output_ensemble", 1.0),
    "bar_parl": ("discounted_returns", 1.0),
    "power_dl": ("weighted_entropy", 1.0),
    "rebalance": ("Control.g_m", 1.0),
    "ensembles": ("wco", 1.0),
    "par": ("par_reward", 5.0),
    "grpo_guard": ("reweight", 1.0),
}


def _honest(slug, tmp_path, extra=(), timeout=60.0):
    """Grade the untouched copy, the reference and a copy with ONE_FUNCTION implemented; return the grades."""
    copy = A.make(slug, tmp_path / "copy")
    one = tmp_path / "one"
    shutil.copytree(copy, one)
    function, points = ONE_FUNCTION[slug]
    _restore(one, slug, function)
    tests, results = A.grade(slug, [copy, ROOT, one, *extra], timeout=timeout)
    totals = A.totals(results)
    possible = sum(t["points"] for t in tests)
    assert possible > 0
    assert totals[str(copy)] == (0.0, possible)
    assert totals[str(ROOT)] == (possible, possible)
    assert totals[str(one)] == (points, possible)
    return tests, results


def test_grading_traac_is_honest(tmp_path):
    """The torch paper of the fast tier (subgm, below, is the JAX one)."""
    tests, _ = _honest("traac", tmp_path)
    assert any(t["hidden"] for t in tests)


@pytest.mark.slow
@pytest.mark.parametrize("paper", implemented(), ids=lambda p: p.slug)
def test_grading_every_paper_is_honest(tmp_path, paper):
    _honest(paper.slug, tmp_path)


@pytest.fixture(scope="module")
def subgm_copy(tmp_path_factory):
    return A.make("subgm", tmp_path_factory.mktemp("assign") / "subgm")


def test_student_copy_imports_hides_solution_and_cli_names_the_missing_function(subgm_copy):
    method = (subgm_copy / "papers/subgm/method.py").read_text()
    assert "BEGIN SOLUTION" not in method and "jnp.einsum" not in method
    tests = (subgm_copy / "tests/papers/test_subgm.py").read_text()
    assert "mark.hidden" not in tests and "test_measure_is_the_inner_product_with_each_A_i" in tests
    assert "`measure`" in (subgm_copy / "ASSIGNMENT.md").read_text()
    listed = tomllib.loads((subgm_copy / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "reprozoo.papers.subgm" in listed and "reprozoo.papers.par" not in listed  # installable: no missing folder
    for package in listed:
        assert (subgm_copy / package.removeprefix("reprozoo.").replace(".", "/")).is_dir(), package
    proc = subprocess.run(
        [sys.executable, "-m", "reprozoo.papers.subgm", "--preset", "smoke", "--out", str(subgm_copy / "out")],
        cwd=subgm_copy,
        env=A._env(subgm_copy),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "not implemented yet: subgm: see the docstring" in proc.stderr
    with pytest.raises(A.AssignmentError, match="not empty"):
        A.make("subgm", subgm_copy)


def test_grading_subgm_is_honest_and_survives_hangs_and_crashes(subgm_copy, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(subgm_copy, bad)
    _restore(bad, "subgm", "measure")
    _write_body(bad, "subgm", "step_size", "while True:\n        pass")
    _write_body(bad, "subgm", "relative_error", "import os\n\n    os._exit(3)")
    tests, results = _honest("subgm", tmp_path, extra=[bad], timeout=5)
    assert any(t["hidden"] for t in tests)
    measure_points = ONE_FUNCTION["subgm"][1]
    assert A.totals(results)[str(bad)][0] == measure_points
    by_test = {r.test: r for r in results if r.student == str(bad)}
    assert "time limit" in by_test["test_step_size_decays_geometrically"].message
    assert "crashed" in by_test["test_relative_error_hand_computed"].message


def test_grade_cli_json_and_bad_input(subgm_copy, tmp_path, capsys):
    assert A.main(["grade", "subgm", str(tmp_path)]) == 2
    assert "not a student copy" in capsys.readouterr().err
    assert A.main(["make", "nope"]) == 2
    assert A.main(["grade", "subgm", str(subgm_copy), "--json", str(tmp_path / "g.json")]) == 0
    grades = json.loads((tmp_path / "g.json").read_text())
    assert grades["totals"][str(subgm_copy)][0] == 0
    assert {r["test"] for r in grades["results"]} >= {"test_measure_is_the_inner_product_with_each_A_i"}
