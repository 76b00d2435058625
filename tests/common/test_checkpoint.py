"""Checkpoints: finished units load exactly (RNG included), a training loop resumes from its last saved step with
identical results, another setup is refused, and nothing is written without an active store."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import pytest
import torch

from reprozoo.common import checkpoint
from reprozoo.common.checkpoint import Checkpoints, ResumeError

SETUP = {"paper": "toy", "seeds": 3, "lr": 0.1}


def draw(seed: int) -> list[dict]:
    """A unit that reads the global RNGs (so the units after a skipped one depend on its RNG restore)."""
    x = random.random() + np.random.rand() + torch.rand(()).item()
    return [{"method": "m", "seed": seed, "value": np.float32(x), "setting": (seed, "a")}]


def units(store: Checkpoints, stop_after: int | None = None) -> list[dict]:
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    rows: list[dict] = []
    for seed in range(3):
        if seed == stop_after:
            raise KeyboardInterrupt
        rows += store.run(("draw", seed), lambda s=seed: draw(s))
    return rows + draw(99)  # after the units: must see the same RNG state too


def test_skipped_units_load_exactly_and_restore_the_rng(tmp_path):
    expected = units(Checkpoints(None))
    folder = tmp_path / "checkpoints"
    with pytest.raises(KeyboardInterrupt):
        units(Checkpoints(folder, SETUP), stop_after=2)
    assert len(Checkpoints(folder, SETUP, resume=True)) == 2
    calls = []
    resumed = Checkpoints(folder, SETUP, resume=True)
    real_draw = draw

    def counted(s):
        calls.append(s)
        return real_draw(s)

    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    rows = []
    for seed in range(3):
        rows += resumed.run(("draw", seed), lambda s=seed: counted(s))
    rows += draw(99)
    assert calls == [2]  # only the unfinished unit ran
    assert rows == expected and type(rows[0]["value"]) is np.float32 and rows[0]["setting"] == (0, "a")


def test_another_setup_is_refused_naming_the_field(tmp_path):
    folder = tmp_path / "checkpoints"
    Checkpoints(folder, SETUP).save(("u", 0), [1])
    with pytest.raises(ResumeError, match=r"lr: 0.1 → 0.2"):
        Checkpoints(folder, SETUP | {"lr": 0.2}, resume=True)
    (folder / "setup.json").unlink()
    with pytest.raises(ResumeError, match="no setup.json"):
        Checkpoints(folder, SETUP, resume=True)


def test_without_resume_a_leftover_folder_is_deleted_and_nothing_is_written_before_a_unit(tmp_path):
    folder = tmp_path / "checkpoints"
    Checkpoints(folder, SETUP).save(("u", 0), [1])
    store = Checkpoints(folder, SETUP)
    assert not folder.exists() and not store.done(("u", 0))
    assert len(Checkpoints(tmp_path / "none", SETUP, resume=True)) == 0  # nothing to resume: runs everything
    reader = Checkpoints(folder, SETUP, write=False)  # a non-main process of a distributed run
    assert reader.run(("u", 1), lambda: 5) == 5 and not folder.exists()


def test_keys_are_unique_per_run_and_no_store_just_runs(tmp_path):
    store = Checkpoints(tmp_path / "c", SETUP)
    store.run(("u", 0), lambda: 1)
    with pytest.raises(ValueError, match="used twice"):
        store.run(("u", 0), lambda: 1)
    assert checkpoint.unit(("u", 0), lambda: 2) == checkpoint.unit(("u", 0), lambda: 2) == 2  # no active store
    assert checkpoint.steps(("t",)).load() is None
    with checkpoint.active(store):
        assert checkpoint.current() is store and checkpoint.unit(("u", 1), lambda: 3) == 3
    assert checkpoint.current() is not store
    resumed = Checkpoints(tmp_path / "c", SETUP, resume=True)
    assert resumed.done(("u", 1)) and not store.done(("u", 1))  # only a resuming store reads the folder


@pytest.mark.parametrize("threads", [0, 2])
def test_map_units_runs_only_unsaved_jobs_in_the_pool_and_keeps_their_order(tmp_path, threads):
    from concurrent.futures import ThreadPoolExecutor

    keys, jobs = [("sq", i) for i in range(4)], [(i,) for i in range(4)]
    folder = tmp_path / "c"
    store = Checkpoints(folder, SETUP)
    store.save(keys[1], 1), store.save(keys[3], 9)
    ran = []
    with ThreadPoolExecutor(threads) if threads else contextlib.nullcontext() as pool:
        with checkpoint.active(Checkpoints(folder, SETUP, resume=True)):
            out = list(checkpoint.map_units(lambda i: ran.append(i) or i * i, jobs, keys, pool))
    assert out == [0, 1, 4, 9] and sorted(ran) == [0, 2]
    assert Checkpoints(folder, SETUP, resume=True).done(keys[2])


class Stop(Exception):
    pass


def train(store: Checkpoints, n_steps: int = 12, stop_at: int | None = None) -> tuple[torch.Tensor, list[dict]]:
    """A loop with momentum (optimiser state), dropout and sampled data (RNG), and records per step."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = np.random.default_rng(1)  # a local generator: the loop saves it itself
    state = store.steps(("train", 0))
    start, rows = 0, []
    if (saved := state.load()) is not None:
        model.load_state_dict(saved["model"]), opt.load_state_dict(saved["optim"])
        gen.bit_generator.state, rows, start = saved["gen"], saved["rows"], saved["step"]
    for step in range(start, n_steps):
        if step == stop_at:
            raise Stop
        x = torch.randn(16, 4) + float(gen.normal())
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad(), loss.backward(), opt.step()
        rows.append({"step": step, "loss": loss.item()})
        state.save(
            step + 1,
            {
                "model": model.state_dict(),
                "optim": opt.state_dict(),
                "gen": gen.bit_generator.state,
                "rows": rows,
            },
        )
    return torch.cat([p.detach().flatten() for p in model.parameters()]), rows


@pytest.mark.parametrize("stop_at", [5, 8])
def test_training_loop_resumes_from_its_last_saved_step_with_identical_results(tmp_path, stop_at):
    expected_params, expected_rows = train(Checkpoints(None))
    folder = tmp_path / "checkpoints"
    with pytest.raises(Stop):
        train(Checkpoints(folder, SETUP, every=4), stop_at=stop_at)  # saved at step 4 (and 8 when it reaches it)
    assert Checkpoints(folder, SETUP, resume=True, every=4).steps(("train", 0)).load()["step"] == 4 * (stop_at // 4)
    params, rows = train(Checkpoints(folder, SETUP, resume=True, every=4))
    assert torch.equal(params, expected_params) and rows == expected_rows
    store = Checkpoints(folder, SETUP, resume=True, every=4)
    assert store.steps(("train", 0)).load()["step"] == 12 and not store.done(("train", 0))
    store.save(("train", 0), rows)  # the finished unit replaces its step state
    assert not list(folder.glob("*.state.pt")) and store.done(("train", 0))
