"""World option `bos` (v3.3 / v3.4, issue 32): a BOS token first in every prompt and SFT sequence and in the official
scorer input (DeepSeek-R1-Distill-Qwen's tokenizer prepends one), landing in step 0; earlier worlds unchanged."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from reprozoo.common.worlds.reasoning import build_corpus, build_world, world_config, world_key
from reprozoo.papers.traac.compression import importances
from reprozoo.papers.traac.premise import premise

CFG = world_config("sink-smoke")
V = CFG.vocab


class SinkScorer(torch.nn.Module):
    """A scorer whose every head attends only to position 0; it keeps its inputs."""

    config = SimpleNamespace(_attn_implementation="sdpa")

    def set_attn_implementation(self, impl):
        self.config._attn_implementation = impl

    def forward(self, input_ids, attention_mask, position_ids, output_attentions):
        self.inputs = (input_ids, attention_mask, position_ids)
        att = torch.zeros(*input_ids.shape, input_ids.shape[1])[:, None].repeat(1, 2, 1, 1)
        att[..., 0] = 1.0
        return SimpleNamespace(attentions=(att, att))


def test_earlier_worlds_keep_their_vocabulary_layout_and_cache_key():
    old = world_config("v3")
    assert (old.vocab.size, old.max_prompt_len, old.vocab.has_bos) == (V.size - 1, CFG.max_prompt_len - 1, False)
    assert world_key(old) == "520e0fdcb8ae" and world_key(world_config("premise")) == "391ef04bd782"
    with pytest.raises(ValueError, match="no BOS"):
        _ = old.vocab.bos
    assert world_config("v3.3").bos and world_config("v3.3").sft_weight_decay == 0.1
    assert world_config("v3.4").n_layers == 6 and world_config("v3.3-v2").answer == "last"


def test_every_sft_sequence_starts_with_bos_and_the_layout_is_shifted_by_one():
    ids, _, loss = build_corpus(dataclasses.replace(CFG, corpus_size=8))
    assert (ids[:, 0] == V.bos).all() and (ids[:, 1] == V.start).all()
    assert (ids[:, CFG.max_prompt_len - 1] == V.think).all() and (loss[:, : CFG.max_prompt_len] == 0).all()


def test_official_scorer_input_starts_with_bos_and_bos_joins_step_zero():
    world = SimpleNamespace(v=V, cfg=CFG)
    resp = [V.step, 3, V.sep, V.check, 3, V.sep, V.end, 3, V.eos]
    responses = torch.tensor([resp + [V.eos] * (CFG.max_new_tokens - len(resp))])
    scorer = SinkScorer()  # every head attends to position 0 only
    imp = importances(world, [None], responses, scorer=scorer, kind="attention", scorer_input="official")[0]
    ids, _, pos = scorer.inputs
    assert ids[0].tolist() == [V.bos, V.think] + resp[:6] + [V.end]
    assert pos[0].tolist() == list(range(9))
    assert imp.tolist() == pytest.approx([1 / 5, 0.0])  # BOS, THINK, "> 3 ;" share the sink


def test_premise_runs_on_a_bos_world_and_records_the_sink_per_layer():
    world = build_world(CFG, cache=False)
    assert world.model.config.vocab_size == V.size
    cfg = SimpleNamespace(group_size=4, train_ks=(1, 2), rollout_temperature=1.0, rollout_top_p=1.0)
    rows = premise(world, cfg, seed=0)
    sink = {r.get("layer"): r["value"] for r in rows if r["metric"] == "think_mass"}
    assert set(sink) == {None, *range(CFG.n_layers)} and all(0 <= x <= 1 for x in sink.values())
