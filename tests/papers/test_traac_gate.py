"""TRAAC's gate diagnosis (`premise.gate_diagnosis`) on a hand-made rollout whose END attends flatly."""

from pathlib import Path

import pytest
import torch

from reprozoo.common.worlds.reasoning import ReasoningWorld, new_model, world_config
from reprozoo.papers.traac import premise as P


def test_a_flat_end_leaks_fully_and_a_sink_opens_the_gate_blindly(monkeypatch):
    cfg = world_config("v3-smoke")
    world, v = ReasoningWorld(cfg, new_model(cfg), Path(".")), cfg.vocab
    # k = 1: steps "> 3 ;" "> 7 ;" (necessary) then three "check 7 ;" loops, END, answer
    resp = [v.step, 3, v.sep, v.step, 7, v.sep] + [v.check, 7, v.sep] * 3 + [v.end, 5, v.eos]
    responses = torch.tensor([resp + [v.eos] * (cfg.max_new_tokens - len(resp))])
    flat = torch.full((1, 2, 17, 17), 1 / 17)  # THINK + 15 thinking tokens + END, every row flat
    monkeypatch.setattr(P, "official_attentions", lambda *a: (flat,) * cfg.n_layers)
    roles = [["chain", "chain", "redundant", "redundant", "redundant"]]
    got = {
        (r["metric"], r.get("sink"), r.get("leak")): r["value"] for r in P.gate_diagnosis(world, responses, roles, 0)
    }
    assert got["think_mass", None, None] == pytest.approx(1 / 17)
    assert got["loop_leak", None, None] == pytest.approx(1.0)
    # ideal END with loops at 0.1: U = 0.704 opens the gate, but ⌊5 · 0.6 · 0.296⌋ = 0 steps go
    assert got["gate_evict_ideal", None, P.LEAK] == 0.0
    # a sink of 0.8 on THINK: U = 0.47, ⌊5 · 0.6 · 0.53⌋ = 1 step goes — the first of the tied rest, a chain step
    assert got["gate_evict_rate", 0.8, None] == 1.0
    assert got["evicted_loop_share", 0.8, None] == 0.0 and got["chain_loss_rate", 0.8, None] == 1.0
