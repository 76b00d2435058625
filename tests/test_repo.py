"""Repository-level checks: registry ↔ nox sessions ↔ packages, and generated README tables up to date."""

from reprozoo.papers.registry import PAPERS, ROOT, implemented

DESIGN_FILES = ("README.md", "__main__.py", "method.py", "experiment.py", "claims.py")


def test_registry_slugs_and_sessions():
    slugs = [p.slug for p in PAPERS]
    assert len(slugs) == len(set(slugs)) == 10
    assert {p.session for p in PAPERS} >= {"paper-subgm", "paper-power-dl", "paper-bar-parl"}


def test_implemented_papers_have_the_design_layout():
    for p in implemented():
        missing = [f for f in DESIGN_FILES if not (ROOT / "papers" / p.slug / f).exists()]
        assert not missing, f"papers/{p.slug} lacks {missing}"


def test_nox_registers_one_session_per_implemented_paper():
    import nox.registry

    nox.registry._REGISTRY.clear()
    import importlib.util

    spec = importlib.util.spec_from_file_location("noxfile", ROOT / "noxfile.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    sessions = set(nox.registry.get())
    assert {p.session for p in implemented()} <= sessions
    assert {"tests", "tests-latest", "tests-slow", "lint", "bench", "assignment", "grade"} <= sessions


def test_readme_tables_are_generated_from_results():
    from reprozoo.papers.readme import main

    assert main(["--check"]) == 0, "README tables are stale: run `nox -s readme`"


def test_long_aggregate_tables_fold_in_readmes_and_keep_every_row():
    from reprozoo.papers.readme import AGGREGATES_HEADER, FOLD_AFTER_ROWS, fold_aggregates

    def table(n: int) -> str:
        rows = [f"| m | metric{i} | 1 ± 0 | 3 |" for i in range(n)]
        return (
            "| extra |\n|---|\n| x |\n\n" + "\n".join([AGGREGATES_HEADER, "|---|---|---|---|", *rows]) + "\n\n| c |\n"
        )

    short = table(FOLD_AFTER_ROWS)
    assert fold_aggregates(short) == short
    long = table(FOLD_AFTER_ROWS + 1)
    folded = fold_aggregates(long)
    assert folded.count("<details>") == 1 and folded.count("</details>") == 1
    assert (
        folded.index("<details>") < folded.index(AGGREGATES_HEADER) < folded.index("</details>") < folded.index("| c |")
    )
    assert folded.replace("\n", "").count("|") == long.replace("\n", "").count("|")  # no row lost
    assert f"({FOLD_AFTER_ROWS + 1} rows" in folded
