"""No import-name clash with other distributions, so a fresh install works from the repo root and everywhere else.

The project's modules live under `reprozoo.` (pyproject.toml maps `reprozoo.common` → `common/`, ...). Hugging Face's
`kernels` — a dependency of transformers ≥ 5.25 — must import as itself from the repo root (how nox, CI and the README
run); before, the project's `kernels/__init__.py` shadowed it there and every transformers model failed to build.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from reprozoo.common.results import constraints_check
from reprozoo.papers.registry import ROOT

WELL_KNOWN = {"kernels", "common", "papers"}
"""Top-level modules of PyPI distributions that the project's folders once shadowed (Hugging Face's `kernels`,
`common` — among the 15,000 most downloaded —, `papers`)."""

FOLDERS = ("common", "kernels", "papers")


def _importable_from_root() -> set[str]:
    """Regular modules and packages at the repo root: what `python -m` from the root can import by a top-level name."""
    return {p.stem for p in ROOT.glob("*.py")} | {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}


def test_no_project_import_name_is_another_distributions_module():
    ours = set(importlib.metadata.distribution("reprozoo").read_text("top_level.txt").split())
    assert ours == {"reprozoo"}
    others = {name for name, dists in importlib.metadata.packages_distributions().items() if "reprozoo" not in dists}
    clashes = (ours | _importable_from_root()) & (others | WELL_KNOWN)
    assert not clashes, f"top-level import names shared with other distributions: {sorted(clashes)}"
    for folder in FOLDERS:  # a namespace portion at most, which any installed package of that name outranks
        assert not (ROOT / folder / "__init__.py").exists(), f"{folder}/__init__.py makes `{folder}` importable"


def test_pyproject_maps_every_package_folder_under_reprozoo():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {f"reprozoo.{f}": f for f in FOLDERS}
    found = {f"reprozoo.{f}" for f in FOLDERS} | {
        "reprozoo." + ".".join(init.parent.relative_to(ROOT).parts)
        for f in FOLDERS
        for init in (ROOT / f).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert set(tool["packages"]) == found


FROM_ROOT = """
import kernels, torch, transformers, diffusers
assert "site-packages" in kernels.__file__, kernels.__file__  # Hugging Face's package, not the project's folder
from transformers import LlamaConfig, LlamaForCausalLM
from diffusers import DiTTransformer2DModel
from reprozoo.kernels.api import fused_logprob
from reprozoo.common.policy import FUSED_MIN_VOCAB, fused_kernels_status, logprobs_from_hidden

torch.manual_seed(0)
lm = LlamaForCausalLM(LlamaConfig(vocab_size=FUSED_MIN_VOCAB, hidden_size=16, intermediate_size=32,
                                  num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)).double()
ids = torch.randint(0, FUSED_MIN_VOCAB, (2, 7))
out = lm(ids, output_hidden_states=True)
expected = torch.log_softmax(out.logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
h, w = out.hidden_states[-1][:, :-1], lm.lm_head.weight
torch.testing.assert_close(fused_logprob(h, w, ids[:, 1:], backend="torch").logprobs, expected)
torch.testing.assert_close(logprobs_from_hidden(h, w, ids[:, 1:]), expected)  # "auto": the fused path at this V
dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=1, out_channels=1, num_layers=1,
                            sample_size=8, patch_size=2, num_embeds_ada_norm=10, norm_num_groups=1)
x = dit(torch.randn(1, 1, 8, 8), timestep=torch.tensor([3]), class_labels=torch.tensor([1])).sample
assert x.shape == (1, 1, 8, 8) and torch.isfinite(x).all()
print(fused_kernels_status())
"""


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_transformers_diffusers_and_fused_logprob_from_the_repo_root():
    """The failure of a fresh install: from the repo root, building a transformers model imported the project's
    `kernels/` in place of Hugging Face's (`cannot import name 'CUDAProperties'`)."""
    proc = _python(FROM_ROOT, ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "fused (reprozoo.kernels.api)"


def test_outside_the_repo_root_the_fused_path_is_still_taken(tmp_path):
    """Outside the root, Hugging Face's `kernels` used to win and the policy code fell back to the plain path
    without a word; now the fused kernels live under their own name and the path taken is reported."""
    code = "import kernels; from reprozoo.common.policy import fused_kernels_status; print(fused_kernels_status())"
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "fused (reprozoo.kernels.api)"


def test_an_unimportable_fused_kernel_warns_once_and_is_reported(monkeypatch):
    from reprozoo.common import policy

    monkeypatch.setitem(sys.modules, "reprozoo.kernels.api", None)  # import raises ImportError
    policy._fused_logprob.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="fused log-prob kernels cannot be imported"):
            assert policy.fused_kernels_status() == "unavailable: plain logits"
        import torch

        h, w, t = torch.randn(3, 4), torch.randn(policy.FUSED_MIN_VOCAB, 4), torch.tensor([0, 1, 2])
        expected = torch.log_softmax(h @ w.T, -1).gather(-1, t[:, None])[:, 0]
        torch.testing.assert_close(policy.logprobs_from_hidden(h, w, t), expected)  # no second warning (cached)
    finally:
        policy._fused_logprob.cache_clear()


def test_constraints_file_pins_the_recorded_versions_and_reports_mismatches(tmp_path):
    """The lock holds the versions the committed summaries record; a run reports any installed package off its pin."""
    pins = dict(
        line.split("==") for line in (ROOT / "results/constraints.txt").read_text().splitlines() if "==" in line
    )
    recorded = json.loads((ROOT / "results/subgm/quick/summary.json").read_text())["env"]["packages"]
    for name, version in recorded.items():
        assert pins[name] == version.split("+")[0], name
    lock = tmp_path / "constraints.txt"
    lock.write_text("# a comment\nnumpy==0.0.1\nnot-installed-anywhere==1.0\n")
    check = constraints_check(lock)
    assert check["mismatches"] == {"numpy": ["0.0.1", importlib.metadata.version("numpy")]}
    assert check["matches"] is False and len(check["sha256"]) == 64
