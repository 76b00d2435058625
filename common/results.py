"""Run records, aggregates over seeds, environment capture, claims, and atomic output files.

A run writes to its output folder:
  records.jsonl  one row per (method, seed, [setting / step], metric)
  summary.json   paper, preset, seeds, config, env, wall_time_s, methods (aggregates), claims
  table.md       aggregates (mean ± 95% CI over seeds) and the claims table
  figure.png     the paper's headline plot (drawn by the paper)
  comparison.json  this run against the committed reference results/<paper>/<preset>/ (common/reproduce.py)

Rows are plain dicts with keys `method`, `seed`, `metric`, `value` and any number of setting keys
(e.g. `alpha`, `rank`). Rows that carry a `step` key are curves (kept in records.jsonl, drawn in the
figure); rows without one are final values and are aggregated into summary.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reprozoo.common.cache import recorded_fields
from reprozoo.common.reproduce import compare, verdict_of

RESERVED = ("method", "seed", "metric", "value")
PACKAGES = (
    "numpy",
    "scipy",
    "torch",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "transformers",
    "accelerate",
    "diffusers",
    "kernels",
    "triton",
    "gymnasium",
    "mujoco",
    "scikit-learn",
    "tyro",
)


# ----------------------------------------------------------------------------- records


def record(method: str, seed: int, metric: str, value: float, **setting: Any) -> dict[str, Any]:
    """One row; `value` is stored as a float (NaN and inf are kept and written as JSON null)."""
    return {"method": method, "seed": int(seed), "metric": metric, "value": float(value), **setting}


def select(rows: Iterable[dict], **match: Any) -> list[dict]:
    """Rows whose keys equal every `key=value` given (a missing key never matches)."""
    return [r for r in rows if all(k in r and r[k] == v for k, v in match.items())]


def values(rows: Iterable[dict], **match: Any) -> np.ndarray:
    """The `value`s of the matching rows, ordered by seed."""
    return np.array([r["value"] for r in sorted(select(rows, **match), key=lambda r: r["seed"])], dtype=float)


def mean_ci95(x: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of a two-sided 95% Student-t confidence interval over seeds (0 for one seed)."""
    arr = np.asarray(x, dtype=float)
    if arr.size == 0:
        raise ValueError("mean_ci95 of an empty sample")
    mean = float(np.mean(arr))
    if arr.size < 2:
        return mean, 0.0
    from scipy import stats

    half = float(stats.t.ppf(0.975, arr.size - 1) * np.std(arr, ddof=1) / math.sqrt(arr.size))
    return mean, half


def _setting_label(row: dict) -> str:
    extra = {k: v for k, v in row.items() if k not in RESERVED}
    if not extra:
        return row["metric"]
    return row["metric"] + "[" + ",".join(f"{k}={v}" for k, v in sorted(extra.items())) + "]"


def aggregate(rows: Iterable[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {metric[setting]: {mean, ci95, n}}} over seeds, for rows without a `step` key."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if "step" in r:
            continue
        groups[(r["method"], _setting_label(r))].append(r["value"])
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (method, label), vals in sorted(groups.items()):
        mean, half = mean_ci95(vals)
        out[method][label] = {"mean": mean, "ci95": half, "n": len(vals)}
    return dict(out)


# ----------------------------------------------------------------------------- claims


Kind = Literal["premise", "claim", "control"]
KINDS: tuple[str, ...] = ("premise", "claim", "control")
Verdict = Literal["PASS", "FAIL", "UNTESTED"]


@dataclass
class Claim:
    """A statement checked over the records: `passed` is decided by the data.

    kind: "premise" — the condition the paper relies on, measured in this set-up; "claim" — a headline statement;
    "control" — the outcome expected where the premise is switched off (PASS: the control behaved as predicted).
    requires: the premise ids a claim (or control) needs; `resolve_verdicts` makes its verdict UNTESTED when any of
    them FAILs (its numbers are still shown). verdict: PASS / FAIL / UNTESTED; `passed` is true iff PASS."""

    id: str
    statement: str
    observed: dict[str, Any]
    passed: bool
    kind: Kind = "claim"
    requires: tuple[str, ...] = ()
    verdict: Verdict | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "premise" and self.requires:
            raise ValueError(f"claim {self.id}: a premise is measured, it requires nothing ({self.requires})")
        self.requires = tuple(self.requires)
        if self.verdict is None:
            self.verdict = "PASS" if self.passed else "FAIL"
        elif self.verdict not in ("PASS", "FAIL", "UNTESTED"):
            raise ValueError(f"claim {self.id}: verdict must be PASS, FAIL or UNTESTED, got {self.verdict!r}")
        self.passed = self.verdict == "PASS"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "requires": list(self.requires),
            "statement": self.statement,
            "observed": _jsonable(self.observed),
            "verdict": self.verdict,
            "passed": bool(self.passed),
        }


def resolve_verdicts(claims: Sequence[Claim]) -> list[Claim]:
    """The claims with every claim or control whose required premise did not PASS marked UNTESTED (observed kept).

    A required id must be a premise of the same list (a typo must not silently make a claim testable)."""
    premises = {c.id: c for c in claims if c.kind == "premise"}
    out = []
    for c in claims:
        unknown = [r for r in c.requires if r not in premises]
        if unknown:
            raise ValueError(f"claim {c.id} requires {unknown}, which are not premises of this run")
        failed = [r for r in c.requires if premises[r].verdict != "PASS"]
        out.append(dataclasses.replace(c, verdict="UNTESTED") if failed and c.verdict != "UNTESTED" else c)
    return out


def count_verdicts(claims: Sequence[dict[str, Any]]) -> str:
    """'claims 5 pass · 1 fail · 2 untested; premises 2/3; controls 2/2' for summary.json claims; parts with no claim
    of that kind are left out. Summaries written before kinds existed give 'v1 checks (no kinds) 5 pass · 7 fail'."""
    if claims and not any("kind" in c for c in claims):  # v1: every check was scored PASS / FAIL, premises included
        verdicts = [verdict_of(c) for c in claims]
        return f"v1 checks (no kinds) {verdicts.count('PASS')} pass · {verdicts.count('FAIL')} fail"
    by_kind: dict[str, list[str]] = defaultdict(list)
    for c in claims:
        by_kind[c.get("kind", "claim")].append(verdict_of(c))
    parts = []
    if by_kind["claim"]:
        v = by_kind["claim"]
        counts = [f"{v.count(x)} {x.lower()}" for x in ("PASS", "FAIL", "UNTESTED") if x != "UNTESTED" or x in v]
        parts.append("claims " + " · ".join(counts))
    for kind in ("premise", "control"):
        if by_kind[kind]:
            parts.append(f"{kind}s {by_kind[kind].count('PASS')}/{len(by_kind[kind])}")
    return "; ".join(parts)


def print_claims(claims: Sequence[Claim], title: str = "Claims") -> None:
    """Print the claims as a table (rich) — the last thing a run prints."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=True)
    table.add_column("id")
    table.add_column("kind")
    table.add_column("statement")
    table.add_column("observed")
    table.add_column("verdict")
    for c in claims:
        obs = ", ".join(f"{k}={_fmt(v)}" for k, v in c.observed.items())
        table.add_row(c.id, c.kind, c.statement, obs, _COLOURED[c.verdict])
    Console(width=160).print(table)


_COLOURED = {"PASS": "[green]PASS[/]", "FAIL": "[red]FAIL[/]", "UNTESTED": "[yellow]UNTESTED[/]"}


# ----------------------------------------------------------------------------- environment


def git_commit(root: Path | None = None) -> str:
    """HEAD's commit, with "-dirty" if tracked code differs from it, or "unknown" outside a git checkout.

    Changes under results/ and to markdown files do not count: a run regenerating its own committed outputs
    would otherwise always call itself dirty."""
    root = Path(__file__).resolve().parent.parent if root is None else root
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results", ":!*.md"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Python, platform, installed package versions, git commit and device."""
    from reprozoo.common.device import describe

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
        "constraints": constraints_check(),
        "fused_logprob": _fused_logprob_path(),
        "commit": git_commit(),
        "device": describe(),
    }


CONSTRAINTS = Path(__file__).resolve().parent.parent / "results" / "constraints.txt"
"""The lock file: the exact versions the committed results were produced with (README, "Reproducible installs")."""


def constraints_check(path: Path = CONSTRAINTS) -> dict[str, Any]:
    """The constraints file's sha256 and every pinned package whose installed version differs from its pin
    ({name: [pinned, installed or None]}); `matches` is true when none does."""
    if not path.is_file():
        return {"file": None, "sha256": None, "mismatches": {}, "matches": False}
    text = path.read_text()
    installed = {_normal(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    mismatches = {}
    for line in text.splitlines():
        name, sep, pinned = line.split("#")[0].strip().partition("==")
        have = installed.get(_normal(name))
        # absent: an extra this run's install did not ask for; a local label (2.13.0+cpu) satisfies ==2.13.0
        if sep and have is not None and have.split("+")[0] != pinned.split("+")[0]:
            mismatches[name] = [pinned, have]
    return {
        "file": "results/constraints.txt",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "mismatches": mismatches,
        "matches": not mismatches,
    }


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _fused_logprob_path() -> str:
    """The log-prob path of the policy code, when this run used torch (the fused path never switches off silently)."""
    if "torch" not in sys.modules:
        return "not used (no torch in this run)"
    from reprozoo.common.policy import fused_kernels_status

    return fused_kernels_status()


# ----------------------------------------------------------------------------- writing


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_fmt(k)}: {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(recorded_fields(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def markdown_table(methods: dict[str, dict[str, dict[str, float]]], claims: Sequence[Claim]) -> str:
    """table.md: one row per (method, metric[setting]) with mean ± 95% CI, then the claims."""
    lines = ["| method | metric | mean ± 95% CI | n |", "|---|---|---|---|"]
    for method, metrics in methods.items():
        for label, agg in metrics.items():
            lines.append(f"| {method} | {label} | {agg['mean']:.4g} ± {agg['ci95']:.2g} | {agg['n']} |")
    lines += ["", "| claim | kind | statement | observed | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        obs = ", ".join(f"{k}={_fmt(v)}" for k, v in c.observed.items())
        needs = f" (requires {', '.join(c.requires)})" if c.requires else ""
        lines.append(f"| {c.id} | {c.kind}{needs} | {c.statement} | {obs} | {c.verdict} |")
    return "\n".join(lines) + "\n"


def _commit_files(out: Path, staged: Path, names: Sequence[str]) -> None:
    """Move the staged files over `out/<name>` with SIGINT/SIGTERM held back, so that an interrupt never leaves
    a mix of old and new outputs (a held signal is delivered once every file is in place)."""
    held = {signal.SIGINT, signal.SIGTERM}
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        for name in names:
            os.replace(staged / name, out / name)
    finally:
        if main_thread:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def write_run(
    out: Path,
    *,
    paper: str,
    preset: str,
    seeds: Sequence[int],
    config: Any,
    rows: Sequence[dict],
    claims: Sequence[Claim],
    wall_time_s: float,
    figure: Callable[[Path], None] | None = None,
    extra_table: str = "",
    reference: Path | None = None,
    env: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Write records.jsonl, summary.json, table.md, figure.png and, when `reference` holds a committed
    summary.json, comparison.json (see common.reproduce); return (summary, comparison or None).

    `env` is the run's `environment()` taken when it started (its commit is the code that ran, even when commits
    land during a long run); None takes it now.

    All files are made in a staging folder inside `out` first and moved into place together at the end, so an
    error or an interrupt while they are made leaves `out` as it was. The reference is read before anything is
    written, so `out` may be the reference folder itself (publishing); then no comparison.json is written there."""
    methods = aggregate(rows)
    summary = {
        "paper": paper,
        "preset": preset,
        "seeds": list(seeds),
        "config": _jsonable(config),
        "env": env if env is not None else environment(),
        "wall_time_s": round(float(wall_time_s), 1),
        "methods": _jsonable(methods),
        "claims": [c.as_dict() for c in claims],
    }
    records = "".join(json.dumps(_jsonable(r), sort_keys=True) + "\n" for r in rows)
    comparison = compare(json.loads(json.dumps(summary)), records, reference) if reference is not None else None
    files = {
        "records.jsonl": records,
        "summary.json": json.dumps(summary, indent=2, sort_keys=False) + "\n",
        "table.md": (extra_table + "\n" if extra_table else "") + markdown_table(methods, claims),
    }
    publishing = reference is not None and out.resolve() == reference.resolve()
    if comparison is not None and not publishing:
        files["comparison.json"] = json.dumps(comparison, indent=2) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".staging-") as tmp:
        staged = Path(tmp)
        for name, text in files.items():
            (staged / name).write_text(text)
        names = list(files)
        if figure is not None:
            import matplotlib

            matplotlib.use("Agg")
            figure(staged / "figure.png")
            names.append("figure.png")
        _commit_files(out, staged, names)
    return summary, comparison


def exit_code(claims: Sequence[Claim], strict: bool) -> int:
    """1 when `strict` and any claim FAILed (UNTESTED is not a failure: its premise is absent), else 0."""
    return int(strict and any(c.verdict == "FAIL" for c in claims))
