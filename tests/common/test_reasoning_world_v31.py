"""World v3.1 (issue 32, ReBalance's world): v3 with v2's loop markers (hesitant loops say WAIT, brisk ones CHECK)
and 4000 SFT steps; every world reports its build acceptance (teacher-forced chain-value accuracy)."""

import json
from types import SimpleNamespace

import numpy as np
import torch

from reprozoo.common.worlds.reasoning import (
    CHAIN_ACCURACY_MIN,
    SMOKE_WORLD,
    V3,
    V3_1,
    Problem,
    ReasoningWorld,
    WorldConfig,
    build_world,
    chain_accuracy,
    roles,
    sample_trace,
    segments,
    world_config,
    world_key,
)


def test_v31_is_v3_with_v2s_loop_markers_and_more_sft_steps():
    v31, v3 = world_config("v3.1"), world_config("v3")
    assert v31 == WorldConfig(**(V3 | {"loop_word": "by_kind", "sft_steps": 4000}))
    assert (v31.answer, v31.n_layers, v31.answer_weight) == (v3.answer, v3.n_layers, v3.answer_weight)
    assert world_config("v3.1-control").premise is False and world_config("v3.1-control").sft_steps == 4000
    # v3 and v3-control stay reproducible by their configs (the cache keys of the issue-32 builds)
    assert world_key(v3) == "520e0fdcb8ae" and world_key(world_config("v3-control")) == "020cfa04e6a6"
    assert len({world_key(world_config(n)) for n in ("v3", "v3-control", "v3.1", "v3.1-control")}) == 4


def _loops(cfg: WorldConfig, n: int = 600):
    """(marker, length, near-misses) of every loop in n traces of k = 1 (a loop starts with probability 1)."""
    rng = np.random.default_rng(0)
    v, out = cfg.vocab, []
    for _ in range(n):
        p = Problem(tuple(rng.integers(0, 10, 2).tolist()), (1,), 10, cfg.answer)
        segs, _ = segments(sample_trace(p, cfg, rng).tokens, v)
        loop = [s for s, r in zip(segs, roles(segs, p.k, v), strict=True) if r == "redundant"]
        if loop:
            out.append(({s[0] for s in loop}, len(loop), sum((s[1] - p.partials()[-1]) % 10 != 0 for s in loop)))
    return out


def test_v31_hesitant_loops_say_wait_and_go_on_brisk_ones_say_check_and_stop():
    cfg = WorldConfig(**V3_1)
    v = cfg.vocab
    loops = _loops(cfg)
    wait = [(n, miss) for m, n, miss in loops if m == {v.wait}]
    check = [(n, miss) for m, n, miss in loops if m == {v.check}]
    assert len(wait) + len(check) == len(loops)  # one marker per loop
    assert 0.3 < len(wait) / len(loops) < 0.5  # p_hesitant = 0.4
    assert np.mean([n for n, _ in wait]) > 4 * np.mean([n for n, _ in check])  # going on at 0.92 vs 0.1
    assert sum(m for _, m in check) == 0 and sum(m for _, m in wait) > 0  # near-misses only in hesitant loops
    # v3 marks every loop CHECK; the v3.1 control has no hesitant loops (flat continuation, CHECK)
    assert all(m == {v.check} for m, _, _ in _loops(WorldConfig(**V3)))
    assert all(m == {v.check} for m, _, _ in _loops(world_config("v3.1-control")))


class _Model(torch.nn.Module):
    """Logits favouring the next input token (an oracle) or always token 0."""

    def __init__(self, vocab: int, oracle: bool):
        super().__init__()
        self.vocab, self.oracle = vocab, oracle
        self.config = SimpleNamespace(_attn_implementation="sdpa")
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, **_):
        nxt = torch.roll(input_ids, -1, 1) if self.oracle else torch.zeros_like(input_ids)
        logits = torch.nn.functional.one_hot(nxt, self.vocab).float()
        return SimpleNamespace(logits=logits, hidden_states=(), attentions=None)


def test_chain_accuracy_scores_an_oracle_1_and_a_constant_model_at_chance(tmp_path):
    cfg = world_config("v3.1-control")
    oracle = ReasoningWorld(cfg, _Model(cfg.vocab.size, True), tmp_path / "missing")
    assert chain_accuracy(oracle, n=200) == 1.0
    blind = ReasoningWorld(cfg, _Model(cfg.vocab.size, False), tmp_path / "missing")
    assert 0.05 < chain_accuracy(blind, n=200) < 0.3 < CHAIN_ACCURACY_MIN  # p_i = 0 about one time in ten


def test_a_small_build_reports_and_caches_its_acceptance(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROZOO_CACHE", str(tmp_path))
    world = build_world(SMOKE_WORLD)  # 40 SFT steps: it has not learned the chain, and the check says so
    acc = world.chain_accuracy()
    assert 0 <= acc < CHAIN_ACCURACY_MIN
    cached = json.loads((world.cache_dir / "acceptance.json").read_text())
    assert cached["tf_chain_accuracy"] == acc and cached["min"] == CHAIN_ACCURACY_MIN
    assert build_world(SMOKE_WORLD).chain_accuracy() == acc  # read back from the world's folder


def _after_reflection(cfg: WorldConfig, n: int = 2000) -> tuple[int, int]:
    """(reflections right after a reflection, ENDs right after a reflection) in n traces of k = 8."""
    rng = np.random.default_rng(1)
    again = end = 0
    for _ in range(n):
        p = Problem(tuple(rng.integers(0, 10, 9).tolist()), (1,) * 8, 10, cfg.answer)
        t = sample_trace(p, cfg, rng)
        for a, b in zip(t.roles, t.roles[1:], strict=False):
            again += a == b == "reflect"
        end += t.truncated and t.roles[-1] == "reflect"
    return again, end


def test_v32_a_reflection_restarts_the_streak_at_one_plain_step():
    from reprozoo.common.worlds.reasoning import V3_2

    assert world_config("v3.2") == WorldConfig(**(V3_1 | {"reflect_after_reflect": True}))
    assert world_key(world_config("v3.1")) != world_key(world_config("v3.2"))
    assert _after_reflection(world_config("v3.1")) == (0, 0)  # v2-v3.1: a certain plain step after a reflection
    again, end = _after_reflection(WorldConfig(**V3_2))
    assert again > 100 and end == 0  # v3.2: reflection may come again (ρ(1) = 0.4), END still cannot (h(1) = 0)
    again, end = _after_reflection(world_config("v3.2-control"))
    assert again > 100 and end > 100  # control: the flat rates apply right after a reflection too
