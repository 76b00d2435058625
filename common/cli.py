"""The one entry point every paper's `__main__` calls: parse → run → claims → write → print claims last."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from common.config import C, parse
from common.results import Claim, exit_code, print_claims, write_run


def _prog(paper: str) -> str:
    """`python -m <the module actually run>` (papers.<slug> or common.worlds.<name>), for --help and errors."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    name = spec.name.removesuffix(".__main__") if spec is not None else f"papers.{paper}"
    return f"python -m {name}"


def main(
    *,
    paper: str,
    config_cls: type[C],
    presets: Mapping[str, C],
    run: Callable[[C], list[dict]],
    claims: Callable[[list[dict], C], list[Claim]],
    figure: Callable[[list[dict], C, Path], None] | None = None,
    table: Callable[[list[dict], C], str] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Run `paper` from the command line; returns the process exit status."""
    cfg = parse(config_cls, presets, argv, prog=_prog(paper))
    out = cfg.out if cfg.out is not None else Path("results") / paper / cfg.preset
    print(f"[{paper}] preset={cfg.preset} seeds={cfg.seed_list()} out={out}", flush=True)
    start = time.perf_counter()
    rows = run(cfg)
    wall = time.perf_counter() - start
    checked = claims(rows, cfg)
    fig: Callable[[Path], Any] | None = (lambda p: figure(rows, cfg, p)) if figure is not None else None
    write_run(
        out,
        paper=paper,
        preset=cfg.preset,
        seeds=cfg.seed_list(),
        config=cfg,
        rows=rows,
        claims=checked,
        wall_time_s=wall,
        figure=fig,
        extra_table=table(rows, cfg) if table else "",
    )
    print(
        f"[{paper}] wrote {out}/ (records.jsonl, summary.json, table.md{', figure.png' if fig else ''}) "
        f"in {wall:.1f} s",
        flush=True,
    )
    print_claims(checked, title=f"{paper} ({cfg.preset}) claims")
    return exit_code(checked, cfg.strict)
