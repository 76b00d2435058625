"""TRAAC fidelity fixes of issue 32: the official scorer input (THINK + thinking + END, no question), the official
no-difficulty normaliser (every length of the current batch), the official format handling of compressed rollouts,
runaway responses reported apart, and the premise measurement on a seconds-scale world."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from reprozoo.common.worlds.reasoning import ReasoningWorld, new_model, world_config
from reprozoo.papers.traac import method as M
from reprozoo.papers.traac.baselines import VARIANTS
from reprozoo.papers.traac.compression import format_flags, importances
from reprozoo.papers.traac.evaluation import runaway_stats
from reprozoo.papers.traac.experiment import PRESETS
from reprozoo.papers.traac.training import Batch, rewards

CFG = world_config("v3-smoke")
V = CFG.vocab


def _world():
    return ReasoningWorld(CFG, new_model(CFG), Path("."))


class SinkScorer(torch.nn.Module):
    """A scorer whose every head attends only to position 0 (the official input's THINK, the usual sink)."""

    config = SimpleNamespace(_attn_implementation="sdpa")

    def __init__(self):
        super().__init__()
        self.inputs = None

    def set_attn_implementation(self, impl):
        self.config._attn_implementation = impl

    def forward(self, input_ids, attention_mask, position_ids, output_attentions):
        self.inputs = (input_ids, attention_mask, position_ids)
        B, S = input_ids.shape
        att = torch.zeros(B, 2, S, S)
        att[..., 0] = 1.0
        return SimpleNamespace(attentions=(att, att, att, att))


def test_official_scorer_input_reads_think_thinking_end_without_the_question():
    world = _world()
    v = world.v
    # steps "> 3 ;", "> 7 ;", "check 7 ;" then END, answer, EOS (padded with EOS)
    resp = [v.step, 3, v.sep, v.step, 7, v.sep, v.check, 7, v.sep, v.end, 5, v.eos]
    responses = torch.tensor([resp + [v.eos] * (CFG.max_new_tokens - len(resp))])
    problems = world.problems(1, 1, seed=0)
    scorer = SinkScorer()
    imp = importances(world, problems, responses, scorer=scorer, kind="attention", scorer_input="official")[0]
    ids, mask, pos = scorer.inputs
    assert ids[0].tolist() == [v.think] + resp[:9] + [v.end]  # no prompt, no answer
    assert pos[0].tolist() == list(range(11)) and mask.all()
    # THINK (position 0) joins step 0: its 4 tokens share the whole attention mass; END joins the last step
    assert imp.tolist() == pytest.approx([1 / 4, 0.0, 0.0])
    with pytest.raises(ValueError, match="scorer_input"):
        importances(world, problems, responses, scorer=scorer, kind="attention", scorer_input="question")


def _batch(world, lengths_correct, compressed=None):
    """Responses of one prompt (answer of k = 1 problem) with the given thinking lengths (in steps) and correctness."""
    v = world.v
    p = world.problems(1, 1, seed=3)[0]
    rows, T = [], CFG.max_new_tokens
    for n_steps, ok in lengths_correct:
        think = [v.step, p.partials()[0], v.sep] * n_steps
        r = think + [v.end, p.answer if ok else (p.answer + 1) % CFG.modulus, v.eos]
        rows.append(r + [v.eos] * (T - len(r)))
    n = len(rows)
    return Batch([p] * n, torch.tensor(rows), ["easy"] * n, 0, 0, compressed or [False] * n)


def test_no_difficulty_normaliser_is_every_length_of_this_batch():
    world = _world()
    batch = _batch(world, [(2, True), (3, False), (5, True), (4, False)])
    history = M.LengthHistory(10)
    history.add_batch({"all": [1.0, 100.0]})  # an older batch: the official no-difficulty reward ignores it
    r = rewards(batch, VARIANTS["no_difficulty"], history, world)
    lengths = [3 * s + 3 for s in (2, 3, 5, 4)]  # thinking + END + answer + EOS
    for i, ok in enumerate((True, False, True, False)):
        l_norm = M.length_norm(lengths[i], [float(x) for x in lengths])
        assert float(r[i]) == pytest.approx(M.traac_reward(ok, True, True, l_norm, None))


def test_compressed_rollouts_lose_the_soft_format_reward():
    world = _world()
    batch = _batch(world, [(2, True), (2, True)], compressed=[False, True])
    assert format_flags(batch.responses[1].tolist(), world, compressed=True) == (False, True)
    r = rewards(batch, VARIANTS["length_penalty"], M.LengthHistory(), world)
    assert float(r[0] - r[1]) == pytest.approx(0.25)


def test_runaway_responses_are_reported_apart_from_length():
    world = _world()
    v = world.v
    p = world.problems(1, 2, seed=0)[0]
    T = CFG.max_new_tokens
    runaway = [v.check, 1, v.sep] * (T // 3)  # never closes: hits the budget
    closed = [v.step, 1, v.sep] * 3 + [v.end, 1, v.eos]
    tokens = torch.tensor([runaway[:T], closed + [v.eos] * (T - len(closed))])
    stats = runaway_stats([p, p], tokens, world)[p.k]
    assert stats == {"runaway": 0.5, "think_len_finite": 9.0}


def test_quick_runs_world_v3_with_v2_as_control_and_the_official_scorer_input():
    cfg = PRESETS["quick"]
    assert (cfg.world, cfg.control_world, cfg.scorer_input) == ("v3", "premise", "official")
