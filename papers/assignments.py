"""Every paper as a course assignment: make a student copy, grade submissions with the paper's own tests.

    python -m reprozoo.papers.assignments make <slug> [--out DIR] [--force]
    python -m reprozoo.papers.assignments grade <slug> PATH [PATH ...] [--timeout S] [--json FILE|-] [--csv FILE|-]
    (nox -s assignment -- <slug> …, nox -s grade -- <slug> PATH …)

Solution regions are the lines between `# BEGIN SOLUTION` and `# END SOLUTION` in the paper's files (the
nbgrader / otter-grader convention); docstrings stay outside them: they are the specification. `make` copies the
paper package, `common/`, `kernels/`, the paper's tests (without the `@pytest.mark.hidden` ones) and writes
ASSIGNMENT.md; every region becomes `raise NotImplementedError("<function>: see the docstring")`.

`grade` builds, for each submission, a fresh copy of this repository in which only the paper's *solution files*
(those that hold regions here) are the student's, and runs every `@pytest.mark.points(n)` test of the paper —
hidden ones included — through pytest with the `common.grading` plugin: a per-test time limit, results recorded as
each test ends, and a crashed interpreter costs only the test it was running (the rest are run again without it).
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from reprozoo.papers.registry import BY_SLUG, ROOT, Paper

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".import")


class AssignmentError(ValueError):
    """Bad input to make/grade: the message says what and where."""


# ----------------------------------------------------------------------------- solution regions


@dataclass(frozen=True)
class Region:
    path: str  # relative to the repository root
    function: str  # qualified name of the enclosing function
    begin: int  # 1-based line numbers of the two markers
    end: int


def _functions(tree: ast.AST) -> list[tuple[str, int, int]]:
    """(qualified name, first line, last line) of every function, outer before inner."""
    found: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    found.append((name, child.lineno, child.end_lineno or child.lineno))
                visit(child, name + ".")

    visit(tree, "")
    return found


def regions(path: Path, root: Path = ROOT) -> list[Region]:
    """The solution regions of one file, checked: paired, not nested, same indentation, inside a function."""
    lines = path.read_text().splitlines()
    functions = _functions(ast.parse("\n".join(lines)))
    rel = str(path.relative_to(root))
    out, begin = [], None
    for no, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin is not None:
                raise AssignmentError(f"{rel}:{no}: {BEGIN} inside the region opened at line {begin}")
            begin = no
        elif marker == END:
            if begin is None:
                raise AssignmentError(f"{rel}:{no}: {END} without a {BEGIN}")
            if _indent(lines[begin - 1]) != _indent(line):
                raise AssignmentError(f"{rel}:{no}: {END} is not indented like its {BEGIN} (line {begin})")
            inside = [name for name, first, last in functions if first < begin <= last]
            if not inside:
                raise AssignmentError(f"{rel}:{begin}: a solution region must lie inside a function body")
            out.append(Region(rel, inside[-1], begin, no))
            begin = None
    if begin is not None:
        raise AssignmentError(f"{rel}:{begin}: {BEGIN} is never closed")
    return out


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def stub(text: str, found: list[Region]) -> str:
    """`text` with each region replaced by a NotImplementedError naming its function."""
    lines = text.splitlines(keepends=True)
    for r in sorted(found, key=lambda r: r.begin, reverse=True):
        indent = _indent(lines[r.begin - 1])
        lines[r.begin - 1 : r.end] = [f'{indent}raise NotImplementedError("{r.function}: see the docstring")\n']
    return "".join(lines)


def solution_files(paper: Paper, root: Path = ROOT) -> dict[Path, list[Region]]:
    """The paper's files that hold solution regions → their regions (files in name order)."""
    package = root / "papers" / paper.slug
    found = {p: regions(p, root) for p in sorted(package.rglob("*.py")) if "__pycache__" not in p.parts}
    found = {p: r for p, r in found.items() if r}
    if not found:
        raise AssignmentError(f"papers/{paper.slug} has no {BEGIN} / {END} regions: it is not an assignment yet")
    return found


def strip_hidden_tests(text: str) -> str:
    """A test module without its `@pytest.mark.hidden` tests (their decorators included)."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    drop: list[tuple[int, int]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and any(
            "mark.hidden" in ast.unparse(d) for d in node.decorator_list
        ):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            drop.append((first, node.end_lineno or node.lineno))
    for first, last in reversed(drop):
        del lines[first - 1 : last]
    return re.sub(r"\n{3,}(?=\S)", "\n\n\n", "".join(lines)).rstrip() + "\n"


# ----------------------------------------------------------------------------- make


def _test_file(paper: Paper) -> str:
    return f"tests/papers/test_{paper.slug}.py"


def _copy_tree(paper: Paper, root: Path, dest: Path) -> None:
    """The parts of the repository an assignment needs, unmodified but for pyproject.toml's package list."""
    for name in ("papers/registry.py", "results/constraints.txt", "tests/conftest.py", _test_file(paper)):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)
    for name in ("common", "kernels", f"papers/{paper.slug}"):
        shutil.copytree(root / name, dest / name, ignore=_IGNORE, dirs_exist_ok=True)
    (dest / "pyproject.toml").write_text(only_paper_packages((root / "pyproject.toml").read_text(), paper.slug))


def only_paper_packages(pyproject: str, slug: str) -> str:
    """pyproject.toml with the other papers' packages dropped from its list (a copy holds one paper, and setuptools
    refuses to install a listed package whose folder is missing)."""
    other = re.compile(r'^\s*"reprozoo\.papers\.(\w+)",\s*$')
    return "".join(
        line for line in pyproject.splitlines(keepends=True) if (m := other.match(line)) is None or m[1] == slug
    )


def make(slug: str, out: Path, *, force: bool = False, root: Path = ROOT) -> Path:
    """Write the student copy of papers/<slug> to `out`; returns `out`."""
    paper = _paper(slug)
    files = solution_files(paper, root)
    if out.exists() and any(out.iterdir()) and not force:
        raise AssignmentError(f"--out: {out} is not empty (pass --force to replace it)")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _copy_tree(paper, root, out)
    for path, found in files.items():
        (out / path.relative_to(root)).write_text(stub(path.read_text(), found))
    test = out / _test_file(paper)
    test.write_text(strip_hidden_tests(test.read_text()))
    (out / "ASSIGNMENT.md").write_text(_assignment_md(paper, files, root))
    return out


def _graded_tests(paper: Paper, root: Path) -> list[dict]:
    """[{nodeid, points, hidden}] of the paper's graded tests, collected from the reference repository."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "collected.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--collect-only",
            "-p",
            "no:cacheprovider",
            "-p",
            "reprozoo.common.grading",
        ]
        cmd += ["-o", "addopts=", "-m", "points and not slow", "--grading-collect", str(report), _test_file(paper)]
        proc = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True)
        if proc.returncode not in (0, 5) or not report.exists():
            raise AssignmentError(f"cannot collect the graded tests of {paper.slug}:\n{proc.stdout}\n{proc.stderr}")
        return [json.loads(line) for line in report.read_text().splitlines()]


def _assignment_md(paper: Paper, files: dict[Path, list[Region]], root: Path) -> str:
    tests = _graded_tests(paper, root)
    visible = [t for t in tests if not t["hidden"]]
    hidden = [t for t in tests if t["hidden"]]
    total, shown, kept = (sum(t["points"] for t in group) for group in (tests, visible, hidden))
    todo = []
    for path, found in files.items():
        tree = ast.parse(path.read_text())
        kinds = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
        docs = {n.name: (ast.get_docstring(n) or "").splitlines() for n in ast.walk(tree) if isinstance(n, kinds)}
        for r in found:
            first = (docs.get(r.function.split(".")[-1]) or [""])[0]
            todo.append(f"{len(todo) + 1}. `{r.path}` → `{r.function}`: {first}")
    rows = "\n".join(f"| `{t['nodeid'].split('::')[-1]}` | {t['points']:g} |" for t in visible)
    return f"""# Assignment: {paper.title}

Implement the method of `papers/{paper.slug}/`. Every place you write code raises
`NotImplementedError("<function>: see the docstring")` today; the function's docstring is your specification (the
paper's equations, next to the line that computes them in the reference solution), and
`papers/{paper.slug}/README.md` explains the paper, the method ↔ code map and the experiment.

## What to implement, in this order

{chr(10).join(todo)}

Later functions may call earlier ones. Change only these function bodies: everything else (the experiment, the
shared `common/` and `kernels/` code, the tests) is the instructor's and is replaced by the original when grading.

## Set up and self-check

```bash
python3 -m pip install -c results/constraints.txt -e ".[{paper.extra}]" pytest  # the reference's versions
python3 -m pytest tests/papers/test_{paper.slug}.py     # the visible tests; graded ones carry points
python3 -m reprozoo.papers.{paper.slug} --preset smoke   # the whole experiment once everything is done
```

Until a function is written, the experiment stops with a message naming the first unimplemented one it reaches.

## How it is graded

{len(tests)} graded tests, {total:g} points: {len(visible)} visible ({shown:g} points, below) and {len(hidden)} hidden
({kept:g} points) that check the same functions on other inputs. A test earns its points only if it passes; a
test that crashes, hangs past the time limit or raises earns 0, and grading goes on with the next one.

| visible graded test | points |
|---|---|
{rows}
"""


# ----------------------------------------------------------------------------- grade


@dataclass
class TestResult:
    student: str
    test: str
    points: float
    earned: float
    hidden: bool
    message: str


def _env(tree: Path) -> dict[str, str]:
    """The environment of a subprocess that imports `reprozoo.*` from `tree`, a copy in the repository's layout.

    The installed project maps `reprozoo.common` etc. to this repository's folders; for a copy, `tree/.import/reprozoo/`
    links its `common/`, `kernels/` and `papers/` and goes first on PYTHONPATH: the copy's modules are found first."""
    env = {**os.environ, "REPROZOO_QUIET": "1", "MPLBACKEND": "Agg"}
    if tree.resolve() == ROOT:
        return env
    view = tree / ".import" / "reprozoo"
    view.mkdir(parents=True, exist_ok=True)
    for name in ("common", "kernels", "papers"):
        if not (view / name).is_symlink():  # relative, so a copy of the tree links its own folders
            (view / name).symlink_to(Path("..", "..", name), target_is_directory=True)
    return env | {"PYTHONPATH": str(view.parent)}


def _grading_tree(paper: Paper, student: Path, root: Path, dest: Path) -> None:
    """The reference repository with the student's versions of the solution files (stubs where they lack one)."""
    _copy_tree(paper, root, dest)
    for path, found in solution_files(paper, root).items():
        rel = path.relative_to(root)
        theirs = student / rel
        (dest / rel).write_text(theirs.read_text() if theirs.is_file() else stub(path.read_text(), found))


def _run_tests(tree: Path, nodeids: list[str], timeout: float) -> tuple[dict[str, dict], str | None, str]:
    """Run `nodeids` once: (results by nodeid, the test that was running when the interpreter died, its output)."""
    report = tree / ".grading.jsonl"
    report.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "reprozoo.common.grading",
        "-o",
        "addopts=",
    ]
    cmd += ["--grading-report", str(report), "--grading-timeout", str(timeout), *nodeids]
    try:
        proc = subprocess.run(
            cmd, cwd=tree, env=_env(tree), capture_output=True, text=True, timeout=timeout * len(nodeids) + 120
        )
        output, crashed = proc.stdout + proc.stderr, proc.returncode not in (0, 1)
    except subprocess.TimeoutExpired as err:
        output, crashed = f"the grader's time limit was exceeded: {err}", True
    events = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    results = {e["nodeid"]: e for e in events if e["event"] == "result"}
    started = [e["nodeid"] for e in events if e["event"] == "start" and e["nodeid"] not in results]
    running = started[-1] if crashed and started else None
    return results, running, output


def grade_one(paper: Paper, student: Path, tests: list[dict], *, timeout: float, root: Path) -> list[TestResult]:
    """Grade one submission: every graded test once, re-running the rest after a crash."""
    if not (student / "papers" / paper.slug).is_dir():
        raise AssignmentError(f"{student}: not a student copy of {paper.slug} (no papers/{paper.slug}/)")
    points = {t["nodeid"]: t for t in tests}
    done: dict[str, tuple[bool, str]] = {}
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        tree = Path(tmp)
        _grading_tree(paper, student, root, tree)
        while pending := [t for t in points if t not in done]:
            results, running, output = _run_tests(tree, pending, timeout)
            done.update({k: (v["passed"], v["message"]) for k, v in results.items() if k in points})
            if running is not None:
                done[running] = (False, "the test crashed the Python interpreter")
            elif not results:  # nothing ran (e.g. the submission does not import): every pending test fails
                reason = _last_error(output)
                done.update({t: (False, reason) for t in pending})
    return [
        TestResult(
            student=str(student),
            test=nodeid.split("::", 1)[-1],
            points=t["points"],
            earned=t["points"] if done[nodeid][0] else 0.0,
            hidden=t["hidden"],
            message=done[nodeid][1],
        )
        for nodeid, t in points.items()
    ]


def _last_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("E ") or "Error" in line]
    return (errors[-1].strip() if errors else output.strip().splitlines()[-1] if output.strip() else "did not run")[
        :500
    ]


def grade(
    slug: str, students: list[Path], *, timeout: float = 60.0, root: Path = ROOT
) -> tuple[list[dict], list[TestResult]]:
    """Grade every submission; returns (graded tests, per-test results)."""
    paper = _paper(slug)
    tests = _graded_tests(paper, root)
    if not tests:
        raise AssignmentError(f"tests/papers/test_{slug}.py has no @pytest.mark.points tests")
    results: list[TestResult] = []
    for student in students:
        results += grade_one(paper, student, tests, timeout=timeout, root=root)
    return tests, results


def totals(results: list[TestResult]) -> dict[str, tuple[float, float]]:
    """student → (earned, possible)."""
    out: dict[str, tuple[float, float]] = {}
    for r in results:
        earned, possible = out.get(r.student, (0.0, 0.0))
        out[r.student] = (earned + r.earned, possible + r.points)
    return out


def _print(results: list[TestResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    for student, (earned, possible) in totals(results).items():
        table = Table(title=f"{student}: {earned:g} / {possible:g}")
        for col in ("test", "points", "result", "message"):
            table.add_column(col)
        for r in (r for r in results if r.student == student):
            name = r.test + (" (hidden)" if r.hidden else "")
            verdict = "[green]pass[/]" if r.earned else "[red]fail[/]"
            table.add_row(name, f"{r.earned:g}/{r.points:g}", verdict, r.message[:100])
        console.print(table)
    for student, (earned, possible) in totals(results).items():
        console.print(f"TOTAL {student}: {earned:g} / {possible:g} ({100 * earned / possible:.0f}%)")


def _write(dest: str, text: str) -> None:
    if dest == "-":
        sys.stdout.write(text)
    else:
        Path(dest).write_text(text)


def _csv(results: list[TestResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(results[0])))
    writer.writeheader()
    writer.writerows(asdict(r) for r in results)
    return buf.getvalue()


def _paper(slug: str) -> Paper:
    if slug not in BY_SLUG or not BY_SLUG[slug].implemented:
        implemented = sorted(p.slug for p in BY_SLUG.values() if p.implemented)
        raise AssignmentError(f"unknown or unimplemented paper {slug!r}; choose one of {implemented}")
    return BY_SLUG[slug]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reprozoo.papers.assignments", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make", help="write a student copy of a paper")
    mk.add_argument("slug", help="the paper, e.g. subgm")
    mk.add_argument("--out", type=Path, default=None, help="where to write it (default: assignments/<slug>/)")
    mk.add_argument("--force", action="store_true", help="replace a non-empty --out")
    gr = sub.add_parser("grade", help="grade student copies with the paper's graded tests (hidden ones included)")
    gr.add_argument("slug", help="the paper, e.g. subgm")
    gr.add_argument("paths", nargs="+", type=Path, help="student copies (folders made by `make`, then filled in)")
    gr.add_argument("--timeout", type=float, default=60.0, help="per-test time limit in seconds (default 60)")
    gr.add_argument("--json", default=None, metavar="FILE", help="write per-test results as JSON ('-': stdout)")
    gr.add_argument("--csv", default=None, metavar="FILE", help="write per-test results as CSV ('-': stdout)")
    args = parser.parse_args(argv)
    try:
        if args.command == "make":
            out = make(args.slug, args.out or Path("assignments") / args.slug, force=args.force)
            print(f"wrote the student copy of {args.slug} to {out}/ (see {out}/ASSIGNMENT.md)")
            return 0
        if args.timeout <= 0:
            raise AssignmentError(f"--timeout: must be > 0, got {args.timeout}")
        tests, results = grade(args.slug, args.paths, timeout=args.timeout)
    except AssignmentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json is None and args.csv is None:
        _print(results)
    if args.json is not None:
        payload = {"paper": args.slug, "totals": totals(results), "results": [asdict(r) for r in results]}
        _write(args.json, json.dumps(payload, indent=2) + "\n")
    if args.csv is not None:
        _write(args.csv, _csv(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
