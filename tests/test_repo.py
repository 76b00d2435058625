"""Repository-level checks: registry ↔ nox sessions ↔ packages, and generated README tables up to date."""

from papers.registry import PAPERS, ROOT, implemented

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
    assert {"tests", "tests-slow", "lint", "bench", "assignment", "grade"} <= sessions


def test_readme_tables_are_generated_from_results():
    from common.readme import main

    assert main(["--check"]) == 0, "README tables are stale: run `nox -s readme`"
