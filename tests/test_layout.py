"""Dependencies point one way (papers → common → kernels) and no modules import each other, lazily or not."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"kernels": 0, "common": 1, "papers": 2}

# Known exceptions: none left (issue 37). A new one needs its reason here.
KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_CYCLES: set[frozenset[str]] = set()


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return "reprozoo." + ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every `reprozoo.*` module `path` imports, at top level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reprozoo."):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("reprozoo."))
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for top in LAYERS for p in (ROOT / top).rglob("*.py")]
    modules = {_module(p): p for p in files}
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_no_upward_imports():
    upward = [
        f"{m} imports {i}"
        for m, deps in _graph().items()
        for i in deps
        if LAYERS[i.split(".")[1]] > LAYERS[m.split(".")[1]] and (m, i) not in KNOWN_UPWARD
    ]
    assert not upward, "imports against papers -> common -> kernels:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    cycles = []
    for start in graph:  # every cycle through `start` closes on a path back to it
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start and frozenset(path) not in KNOWN_CYCLES:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))
