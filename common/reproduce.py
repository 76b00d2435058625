"""Every run is a replication: compare it with the committed reference `results/<paper>/<preset>/`.

`compare(summary, records, reference)` returns the `comparison.json` object (None when the reference folder has no
`summary.json`):
  claims                 per claim id: the reference verdict, this run's verdict (PASS / FAIL / UNTESTED), and
                         whether they agree;
  claims_same            every claim has the same verdict in both;
  aggregates             per (method, metric[setting]) present in both: this run's mean, the reference mean and its
                         95% CI half-width, and whether this mean lies inside that interval;
  same_seeds_and_config  the seeds and the config (ignoring where the output goes) equal the reference's;
  records_identical      records.jsonl is byte-identical to the reference's (None when seeds or config differ, since
                         then nothing says they should be);
  records_max_rel_diff   when the same setup gives the same rows but other values (another CPU, BLAS or XLA build):
                         the largest |value − reference| / max(|reference|, 1e-12), to tell round-off from a change.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def verdict_of(claim: dict[str, Any]) -> str:
    """The verdict of a summary.json claim; summaries written before verdicts existed have only `passed`."""
    return claim.get("verdict") or ("PASS" if claim["passed"] else "FAIL")


# config fields that say where and how a run reports, not what it computes
_NOT_SETUP = ("out", "strict", "publish")


def _hub_defaults() -> dict[str, Any]:
    """The real-model options (common.hf.HubConfig) at their defaults: a synthetic run with them equals one recorded
    before the options existed."""
    import dataclasses

    from reprozoo.common.config import RunConfig
    from reprozoo.common.hf import HubConfig

    shared = {f.name for f in dataclasses.fields(RunConfig)}
    return {f.name: f.default for f in dataclasses.fields(HubConfig) if f.name not in shared}


def _setup(config: dict[str, Any]) -> dict[str, Any]:
    hub = _hub_defaults()
    return {k: v for k, v in config.items() if k not in _NOT_SETUP and not (k in hub and v == hub[k])}


def _inside(mean: float | None, ref_mean: float | None, half: float | None) -> bool:
    """|mean − ref_mean| ≤ half (NaN/inf aggregates, written as null, agree only with null)."""
    if mean is None or ref_mean is None:
        return mean is None and ref_mean is None
    tol = 1e-9 * max(1.0, abs(ref_mean))  # float round-off through JSON; a one-seed reference has half = 0
    return abs(mean - ref_mean) <= (half or 0.0) + tol


def compare(summary: dict[str, Any], records: str, reference: Path) -> dict[str, Any] | None:
    """This run (its summary and records.jsonl text) against the reference folder; None if there is none."""
    ref_path = reference / "summary.json"
    if not ref_path.is_file():
        return None
    ref = json.loads(ref_path.read_text())
    ref_claims = {c["id"]: verdict_of(c) for c in ref["claims"]}
    run_claims = {c["id"]: verdict_of(c) for c in summary["claims"]}
    ids = list(run_claims) + [i for i in ref_claims if i not in run_claims]
    claims = [
        {
            "id": i,
            "reference": ref_claims.get(i),
            "this_run": run_claims.get(i),
            "same": i in ref_claims and i in run_claims and ref_claims[i] == run_claims[i],
        }
        for i in ids
    ]
    aggregates = []
    for method, metrics in summary["methods"].items():
        for label, agg in metrics.items():
            ref_agg = ref["methods"].get(method, {}).get(label)
            if ref_agg is None:
                continue
            aggregates.append(
                {
                    "method": method,
                    "metric": label,
                    "mean": agg["mean"],
                    "reference_mean": ref_agg["mean"],
                    "reference_ci95": ref_agg["ci95"],
                    "inside": _inside(agg["mean"], ref_agg["mean"], ref_agg["ci95"]),
                }
            )
    same_setup = ref["seeds"] == summary["seeds"] and _setup(ref["config"]) == _setup(summary["config"])
    ref_records = reference / "records.jsonl"
    identical = (ref_records.is_file() and ref_records.read_text() == records) if same_setup else None
    max_rel = _max_rel_diff(records, ref_records.read_text()) if identical is False else None
    return {
        "reference": str(reference),
        "reference_commit": ref.get("env", {}).get("commit", "unknown"),
        "claims": claims,
        "claims_same": all(c["same"] for c in claims),
        "aggregates_inside": sum(a["inside"] for a in aggregates),
        "aggregates_total": len(aggregates),
        "aggregates": aggregates,
        "same_seeds_and_config": same_setup,
        "records_identical": identical,
        "records_max_rel_diff": max_rel,
    }


def _max_rel_diff(records: str, ref_records: str) -> float | None:
    """Largest relative difference of `value` between two records.jsonl texts whose rows match key for key, else
    None (rows added, removed or relabelled: not a round-off question)."""
    rows, ref_rows = records.splitlines(), ref_records.splitlines()
    if len(rows) != len(ref_rows):
        return None
    worst = 0.0
    for line, ref_line in zip(rows, ref_rows, strict=True):
        row, ref = json.loads(line), json.loads(ref_line)
        value, ref_value = row.pop("value"), ref.pop("value")
        if row != ref:
            return None
        if value is None or ref_value is None:
            if value is not ref_value:
                return math.inf
            continue
        worst = max(worst, abs(value - ref_value) / max(abs(ref_value), 1e-12))
    return worst


def _verdict(verdict: str | None) -> str:
    colour = {"PASS": "green", "FAIL": "red", "UNTESTED": "yellow"}
    return "—" if verdict is None else f"[{colour[verdict]}]{verdict}[/]"


def print_comparison(comparison: dict[str, Any], max_outside: int = 10) -> None:
    """The reproduction table, printed after the claims table."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title=f"Reproduction against {comparison['reference']} ({comparison['reference_commit'][:12]})")
    for col in ("claim", "reference", "this run", "same"):
        table.add_column(col)
    for c in comparison["claims"]:
        same = "[green]same[/]" if c["same"] else "[red]DIFFERENT[/]"
        table.add_row(c["id"], _verdict(c["reference"]), _verdict(c["this_run"]), same)
    console.print(table)
    inside, total = comparison["aggregates_inside"], comparison["aggregates_total"]
    console.print(f"method aggregates inside the reference 95% CI: {inside}/{total}")
    outside = [a for a in comparison["aggregates"] if not a["inside"]]
    for a in outside[:max_outside]:
        console.print(
            f"  outside: {a['method']} {a['metric']}: {a['mean']} vs {a['reference_mean']} ± {a['reference_ci95']}",
            markup=False,
        )
    if len(outside) > max_outside:
        console.print(f"  … and {len(outside) - max_outside} more (comparison.json lists them all)")
    identical = comparison["records_identical"]
    if identical is None:
        console.print("records.jsonl: not compared (seeds or config differ from the reference)")
    else:
        console.print(f"records.jsonl: {'byte-identical to' if identical else 'DIFFERENT from'} the reference")
    if comparison["records_max_rel_diff"] is not None:
        console.print(f"  same rows; largest relative difference of a value: {comparison['records_max_rel_diff']:.3g}")
