"""Generate the README tables from the registry and `results/` (never typed by hand).

`python -m reprozoo.papers.readme` (`nox -s readme`; also run after every `--publish`: pyproject.toml names it in
`[tool.reprozoo] after-publish`, see common/cli.py) rewrites, in place:
- README.md between `<!-- papers:start -->` and `<!-- papers:end -->`: one row per paper (status, claims, time);
- each papers/<slug>/README.md between `<!-- results:start -->` and `<!-- results:end -->`:
  results/<slug>/quick/table.md;
- each common/worlds/README_<name>.md between the same markers: results/<name>_world/quick/table.md;
- papers/leaderboard/README.md (not in the registry) between the same markers: results/leaderboard/quick/table.md.
A per-metric aggregate table longer than FOLD_AFTER_ROWS rows is folded into a `<details>` block in the READMEs
(table.md keeps it as it is).
`python -m reprozoo.papers.readme --check` exits 1 if any file is out of date (the tests run this).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from reprozoo.common.results import count_verdicts, verdict_of
from reprozoo.papers.registry import PAPERS, ROOT

PAPERS_MARK = ("<!-- papers:start -->", "<!-- papers:end -->")
WORLDS_MARK = ("<!-- worlds:start -->", "<!-- worlds:end -->")
RESULTS_MARK = ("<!-- results:start -->", "<!-- results:end -->")


def _claims_and_wall(summary_path: Path) -> tuple[str, str]:
    if not summary_path.exists():
        return "—", "—"
    summary = json.loads(summary_path.read_text())
    verdicts = [f"{c['id']} {verdict_of(c)}" for c in summary["claims"]]
    return f"{count_verdicts(summary['claims'])}: " + "; ".join(verdicts), f"{summary['wall_time_s'] / 60:.1f} min"


def paper_table() -> str:
    lines = [
        "| paper | slug | framework | status | claims (quick preset) | quick wall time | run |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in PAPERS:
        status = "implemented" if p.implemented else "planned"
        claims, wall = _claims_and_wall(p.results_dir / "summary.json")
        run = f"`nox -s {p.session}`" if p.implemented else "—"
        lines.append(f"| {p.title} | `{p.slug}` | {p.framework} | {status} | {claims} | {wall} | {run} |")
    return "\n".join(lines)


def world_command(name: str) -> str:
    """The command that runs world `name`'s demo: its own module `<name>_demo.py` where the world has one (the demo
    imports the world, never the reverse), else the world module itself."""
    module = f"{name}_demo" if (ROOT / "common" / "worlds" / f"{name}_demo.py").is_file() else name
    return f"python -m reprozoo.common.worlds.{module}"


def world_table() -> str:
    """One row per synthetic world demo found under results/<name>_world/quick/."""
    lines = ["| world | properties checked (quick preset) | wall time | run |", "|---|---|---|---|"]
    for summary_path in sorted((ROOT / "results").glob("*_world/quick/summary.json")):
        name = summary_path.parent.parent.name.removesuffix("_world")
        claims, wall = _claims_and_wall(summary_path)
        lines.append(f"| `{name}` | {claims} | {wall} | `{world_command(name)} --preset quick` |")
    return "\n".join(lines)


def splice(text: str, marks: tuple[str, str], body: str) -> str:
    start, end = marks
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise ValueError(f"markers {start} … {end} not found")
    return pattern.sub(lambda _: f"{start}\n{body.rstrip()}\n{end}", text)


AGGREGATES_HEADER = "| method | metric | mean ± 95% CI | n |"
FOLD_AFTER_ROWS = 40


def fold_aggregates(table: str) -> str:
    """table.md for a README: a per-metric aggregate table longer than FOLD_AFTER_ROWS rows is folded into a
    `<details>` block (shown on a click), so the paper's own table and the claims stay on screen."""
    lines = table.split("\n")
    if AGGREGATES_HEADER not in lines:
        return table
    start = lines.index(AGGREGATES_HEADER)
    stop = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    n_rows = stop - start - 2
    if n_rows <= FOLD_AFTER_ROWS:
        return table
    summary = f"<details><summary>Every per-method aggregate ({n_rows} rows, mean ± 95% CI over seeds)</summary>"
    return "\n".join(lines[:start] + [summary, ""] + lines[start:stop] + ["", "</details>"] + lines[stop:])


def _results_section(readme: Path, table: Path, source: str, rerun: str) -> str | None:
    """`readme` with `table` spliced between its results markers, or None if either file or the markers are missing."""
    if not (readme.exists() and table.exists()):
        return None
    text = readme.read_text()
    if RESULTS_MARK[0] not in text:
        return None
    return splice(
        text, RESULTS_MARK, f"From `{source}` (regenerate: {rerun}).\n\n" + fold_aggregates(table.read_text())
    )


def targets() -> dict[Path, str]:
    """Every generated file → its expected contents."""
    out = {}
    readme = ROOT / "README.md"
    out[readme] = splice(splice(readme.read_text(), PAPERS_MARK, paper_table()), WORLDS_MARK, world_table())
    sections = [
        (
            ROOT / "papers" / p.slug / "README.md",
            p.results_dir / "table.md",
            f"results/{p.slug}/quick/",
            f"`nox -s {p.session} -- --publish`",
        )
        for p in PAPERS
    ]
    sections.append(
        (
            ROOT / "papers" / "leaderboard" / "README.md",
            ROOT / "results" / "leaderboard" / "quick" / "table.md",
            "results/leaderboard/quick/",
            "`nox -s leaderboard -- --publish`",
        )
    )
    for table in sorted((ROOT / "results").glob("*_world/quick/table.md")):
        name = table.parent.parent.name.removesuffix("_world")
        rerun = f"`{world_command(name)} --preset quick --publish`"
        sections.append(
            (ROOT / "common" / "worlds" / f"README_{name}.md", table, f"results/{name}_world/quick/", rerun)
        )
    for path, table, source, rerun in sections:
        text = _results_section(path, table, source, rerun)
        if text is not None:
            out[path] = text
    return out


def main(argv: list[str]) -> int:
    expected = targets()
    stale = [path for path, text in expected.items() if path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run `nox -s readme`)", file=sys.stderr)
        return int(bool(stale))
    for path in stale:
        path.write_text(expected[path])
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
