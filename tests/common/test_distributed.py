"""Run-level multi-device helpers (common/distributed.py) and the `from_pretrained` path of `full` presets.

The `full` presets scale through their frameworks under `accelerate launch`; the CLI asks `is_main_process` which
process writes. The synthetic worlds' loops are single-process. The JAX papers' vmapped seeds are sharded over two
forced host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2) and must give the one-device values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from reprozoo.common import distributed as dist
from reprozoo.common import hf
from reprozoo.common.lm import pretrained, tiny_lm

TOLERANCE = 1e-5
TWO_JAX_DEVICES = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}


def test_the_launch_names_the_process_that_writes(monkeypatch):
    """Without a launcher this process writes; under `accelerate launch` (WORLD_SIZE, RANK) rank 0 alone does."""
    assert dist.world_size() == 1 and dist.is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert dist.world_size() == 2 and not dist.is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert dist.is_main_process()


def test_pretrained_loads_a_saved_model_and_tokenizer(tmp_path):
    """The `full` presets' path: `pretrained(folder)` loads what `save_pretrained` wrote (a tiny model built from a
    config stands in for hub weights; the tokenizer is a word-level one made in code)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "two", "plus", "three", "is", "five"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>").save_pretrained(tmp_path)
    model = tiny_lm(len(words), d_model=16, n_layers=1, n_heads=2, max_len=16, seed=3)
    model.save_pretrained(tmp_path)

    loaded, tokenizer = pretrained(str(tmp_path))
    ids = torch.tensor([tokenizer("two plus three is five")["input_ids"]])
    assert ids.tolist() == [[2, 3, 4, 5, 6]] and tokenizer.eos_token_id == 1
    assert loaded.dtype == hf.frozen_dtype()
    torch.testing.assert_close(loaded(ids).logits.float(), model(ids).logits, rtol=0, atol=0)


def _records(folder) -> dict[tuple, float]:
    rows = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    return {tuple(sorted((k, str(v)) for k, v in r.items() if k != "value")): r["value"] for r in rows}


def _gap(x: float | None, y: float | None) -> float:
    """Relative difference of two record values (None: a metric with no value, e.g. an empty bucket)."""
    if x == y:
        return 0.0
    return float("inf") if x is None or y is None else abs(x - y) / max(1.0, abs(x))


SHARD_SEEDS = """
import jax, jax.numpy as jnp
from reprozoo.common import distributed as dist

assert len(jax.devices()) == 2
x, keys = jnp.arange(12.0).reshape(4, 3), jax.random.split(jax.random.key(0), 4)
sx, skeys = dist.shard_seeds((x, keys))
assert len(sx.sharding.device_set) == 2 and len(skeys.sharding.device_set) == 2
f = jax.jit(jax.vmap(lambda a, k: a * jax.random.normal(k, ())))
assert (f(sx, skeys) == f(x, keys)).all()
odd = jnp.ones((3, 2))
assert dist.shard_seeds(odd) is odd  # 3 seeds do not split over 2 devices
print("ok")
"""


def test_jax_seeds_shard_over_devices():
    """`shard_seeds` spreads the seed axis over two (forced host) devices; a vmapped program gives the same values."""
    proc = subprocess.run(
        [sys.executable, "-c", SHARD_SEEDS], env=TWO_JAX_DEVICES, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.slow
def test_two_jax_devices_reproduce_one_subgm(run_cli, tmp_path):
    """subgm's vmapped trials sharded over two forced host devices: the records of one device (measured identical)."""
    one, two = tmp_path / "one", tmp_path / "two"
    run_cli("reprozoo.papers.subgm", "--preset", "smoke", "--out", str(one))
    cmd = [sys.executable, "-m", "reprozoo.papers.subgm", "--preset", "smoke", "--out", str(two)]
    proc = subprocess.run(cmd, env=TWO_JAX_DEVICES, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    a, b = _records(one), _records(two)
    assert a.keys() == b.keys() and max(_gap(a[k], b[k]) for k in a) <= TOLERANCE
