"""pytest plugin behind `python -m reprozoo.papers.assignments grade`: points, hidden tests, a per-test time limit,
and a machine-readable report written as each test ends (so a crash of the interpreter loses only the test it was in).

Markers (registered in pyproject.toml):
  @pytest.mark.points(n)  the test is graded and worth n points;
  @pytest.mark.hidden     the test is kept by the instructor: `make` strips it from the student copy.

Options (only when loaded with `-p common.grading`):
  --grading-report PATH   append one JSON line per event: {"event": "start", "nodeid"} when a test starts, then
                          {"event": "result", "nodeid", "points", "hidden", "passed", "message"} when it ends;
  --grading-timeout S     a test (set-up, call and tear-down) running longer than S seconds fails with a TimeoutError;
  --grading-collect PATH  with --collect-only: write {"nodeid", "points", "hidden"} of each selected test.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("grading")
    group.addoption("--grading-report", default=None, help="JSON-lines file of per-test grading results")
    group.addoption("--grading-timeout", type=float, default=60.0, help="per-test time limit in seconds")
    group.addoption("--grading-collect", default=None, help="write the selected tests' points as JSON lines")


@pytest.hookimpl(trylast=True)  # after `-m` has deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = config.getoption("grading_collect")
    if path:
        with Path(path).open("w") as f:
            for item in items:
                hidden = item.get_closest_marker("hidden") is not None
                f.write(json.dumps({"nodeid": item.nodeid, "points": points_of(item), "hidden": hidden}) + "\n")


def points_of(item: pytest.Item) -> float:
    """The points of a test (0 when it has no `points` marker)."""
    marker = item.get_closest_marker("points")
    return float(marker.args[0]) if marker is not None else 0.0


def _append(config: pytest.Config, event: dict) -> None:
    path = config.getoption("grading_report")
    if path:
        with Path(path).open("a") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()


class TimeLimitExceeded(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _append(item.config, {"event": "start", "nodeid": item.nodeid})
    limit = item.config.getoption("grading_timeout")

    def on_alarm(signum, frame):
        raise TimeLimitExceeded(f"time limit of {limit:g} s exceeded")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    """Remember a failure of any phase on the item; report once, after tear-down."""
    if call.excinfo is not None and not hasattr(item, "_grading_error"):
        item._grading_error = f"{call.when}: {call.excinfo.typename}: {call.excinfo.value}"[:500]
    if call.when == "teardown":
        error = getattr(item, "_grading_error", None)
        _append(
            item.config,
            {
                "event": "result",
                "nodeid": item.nodeid,
                "points": points_of(item),
                "hidden": item.get_closest_marker("hidden") is not None,
                "passed": error is None,
                "message": error or "",
            },
        )
