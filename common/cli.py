"""The one entry point every paper's `__main__` (and every world demo) calls:
parse → check --out → run → claims → write → print claims, then the reproduction table, last.

Where a run writes:
- by default the git-ignored `runs/<paper>/<preset>/` (a user's run never touches tracked files);
- `--out DIR` anywhere else; it is created and test-written before any computation (`error: --out: ...`, exit 2);
- `--publish`: the committed reference `results/<paper>/<preset>/`, then the project's after-publish steps run: the
  functions that pyproject.toml names in `[tool.reprozoo] after-publish` (the README tables' regeneration,
  `reprozoo.papers.readme:main`). They live above common/, which therefore names no paper-level module itself.
When the reference exists, the run is compared with it (common/reproduce.py): printed after the claims and written
as `comparison.json` beside the run. `--strict` exits 1 when a claim FAILs or its verdict differs from the
reference's. Ctrl-C or SIGTERM during a run leaves the run's files in `--out` as they were and says so in one line
(exit 130 / 143).

Checkpoints (common/checkpoint.py): the units a run finishes are saved in `<out>/checkpoints/` as they finish, and
survive an interrupt or a crash; the same command with `--resume` loads them instead of running them again (a
different setup is refused, exit 2). Without `--resume` a leftover checkpoints/ folder is deleted first. Once the
final files are in place the folder is deleted. The config recorded in summary.json leaves out `resume` and
`checkpoint_every`, which change how a run gets its records, not what they are.
"""

from __future__ import annotations

import importlib
import signal
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reprozoo.common.cache import recorded_fields
from reprozoo.common.checkpoint import Checkpoints, ResumeError, active, setup_of
from reprozoo.common.config import C, ConfigError, parse
from reprozoo.common.distributed import is_main_process, world_size
from reprozoo.common.reproduce import print_comparison
from reprozoo.common.results import (
    Claim,
    environment,
    exit_code,
    git_commit,
    print_claims,
    resolve_verdicts,
    write_run,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def _prog(paper: str) -> str:
    """`python -m <the module actually run>` (papers.<slug> or common.worlds.<name>), for --help and errors."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    name = spec.name.removesuffix(".__main__") if spec is not None else f"reprozoo.papers.{paper}"
    return f"python -m {name}"


def output_dir(cfg: Any, paper: str, results: Path) -> Path:
    """The folder this run writes to, created and proven writable now, before any computation."""
    if cfg.publish and cfg.out is not None:
        raise ConfigError("publish", f"writes {results / paper / cfg.preset}; do not combine it with --out")
    if cfg.publish:
        out = results / paper / cfg.preset
    else:
        out = cfg.out if cfg.out is not None else Path("runs") / paper / cfg.preset
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise ConfigError("out", f"cannot create or write {out}: {err.strerror or err}") from None
    return out


def checkpoints(cfg: Any, paper: str, out: Path) -> Checkpoints:
    """The run's checkpoint store `<out>/checkpoints/` (a ResumeError becomes a ConfigError of --resume)."""
    setup, commit = {"paper": paper, **setup_of(cfg)}, git_commit()
    try:
        store = Checkpoints(
            out / "checkpoints",
            setup,
            resume=cfg.resume,
            every=cfg.checkpoint_every,
            write=is_main_process(),
            commit=commit,
        )
    except ResumeError as err:
        raise ConfigError("resume", str(err)) from None
    if store.resumed_commit not in (None, commit):
        print(
            f"warning: --resume: the checkpoints were written at commit {store.resumed_commit}, this is {commit}; "
            "the records equal an uninterrupted run's only if the code is the same",
            file=sys.stderr,
        )
    return store


def check_launch(cfg: Any) -> None:
    """Under `accelerate launch` (a `full` preset's framework run) every rank takes its share of each job; a worker
    pool (`--workers` > 1) would compute alone and run every job on every rank, so it is refused before anything
    runs. The synthetic presets run in one process (`python -m`): their loops are single-process algorithms."""
    workers = getattr(cfg, "workers", 1)
    if world_size() > 1 and workers != 1:
        raise ConfigError("workers", f"must be 1 under accelerate launch ({world_size()} processes), got {workers}")


class Interrupted(KeyboardInterrupt):
    """Raised by the SIGTERM handler so that SIGTERM ends a run the way Ctrl-C does."""


_NOT_CONFIG = ("resume", "checkpoint_every", "first_seed")
"""Options left out of summary.json's config: how a run is carried out, or (first_seed) already in its `seeds`."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted


def after_publish_steps(root: Path = ROOT) -> list[str]:
    """The `module:function` names in `root/pyproject.toml`'s `[tool.reprozoo] after-publish` list ([] without one)."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return []
    return list(tomllib.loads(pyproject.read_text()).get("tool", {}).get("reprozoo", {}).get("after-publish", []))


def run_after_publish(steps: Sequence[str]) -> None:
    """Call each `module:function` of `steps` with an empty argv list; a step whose module is not in this copy of the
    project (an assignment copy holds one paper) is skipped with a warning."""
    for step in steps:
        module, _, function = step.partition(":")
        try:
            hook = getattr(importlib.import_module(module), function)
        except ModuleNotFoundError as err:
            print(f"warning: --publish: after-publish step {step} skipped ({err})", file=sys.stderr)
            continue
        hook([])


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
    results: Path = RESULTS,
) -> int:
    """Run `paper` from the command line; returns the process exit status.

    `results` is the folder of committed references (`<results>/<paper>/<preset>/`); tests point it elsewhere."""
    cfg = parse(config_cls, presets, argv, prog=_prog(paper))
    try:
        check_launch(cfg)
        out = output_dir(cfg, paper, results)
        store = checkpoints(cfg, paper, out)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    reference = results / paper / cfg.preset
    print(f"[{paper}] preset={cfg.preset} seeds={cfg.seed_list()} out={out}", flush=True)
    if cfg.resume:
        print(f"[{paper}] resuming: {len(store)} finished units in {store.folder}/", flush=True)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        env, start = environment(), time.perf_counter()  # the commit that runs, not the one at the end
        with active(store):
            rows = run(cfg)
        wall = time.perf_counter() - start
        if not is_main_process():  # under `accelerate launch` rank 0 alone writes, compares and prints
            return 0
        checked = resolve_verdicts(claims(rows, cfg))
        fig: Callable[[Path], Any] | None = (lambda p: figure(rows, cfg, p)) if figure is not None else None
        _, comparison = write_run(
            out,
            paper=paper,
            preset=cfg.preset,
            seeds=cfg.seed_list(),
            config={k: v for k, v in recorded_fields(cfg).items() if k not in _NOT_CONFIG},
            rows=rows,
            claims=checked,
            wall_time_s=wall,
            figure=fig,
            extra_table=table(rows, cfg) if table else "",
            reference=reference,
            env=env,
        )
    except NotImplementedError as err:
        if not (ROOT / "ASSIGNMENT.md").is_file():
            raise  # a gap in the project itself, not a student's function still to write: show where
        print(f"error: [{paper}] not implemented yet: {err} (see ASSIGNMENT.md)", file=sys.stderr)
        return 1
    except ConfigError as err:  # a setting found unusable only once the run starts (e.g. a --model it cannot use)
        print(f"error: [{paper}] {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        how = "SIGTERM" if isinstance(err, Interrupted) else "Ctrl-C"
        kept = len(store)
        note = f"; {kept} finished units kept in {store.folder}/ for --resume" if kept else ""
        print(
            f"\n[{paper}] interrupted ({how}): no run files were written to {out}/{note}", file=sys.stderr, flush=True
        )
        return 143 if isinstance(err, Interrupted) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    store.clear()
    written = ["records.jsonl", "summary.json", "table.md"] + (["figure.png"] if fig else [])
    if comparison is not None and out.resolve() != reference.resolve():
        written.append("comparison.json")
    print(f"[{paper}] wrote {out}/ ({', '.join(written)}) in {wall:.1f} s", flush=True)
    if cfg.publish:
        run_after_publish(after_publish_steps())
    print_claims(checked, title=f"{paper} ({cfg.preset}) claims")
    if comparison is not None:
        print_comparison(comparison)
    else:
        print(f"(no committed reference at {reference}/ to compare with)")
    differs = comparison is not None and not comparison["claims_same"]
    return max(exit_code(checked, cfg.strict), int(cfg.strict and differs))
