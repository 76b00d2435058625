"""World v3 (issue 32): the answer is the floored mean of every partial, loops say CHECK and restate p_k (v2's loop
process), the answer token weighs more in SFT, and v2's cache keys are unchanged."""

import dataclasses

import numpy as np
import pytest

from reprozoo.common.worlds.reasoning import (
    V3,
    Problem,
    WorldConfig,
    aggregate,
    build_corpus,
    roles,
    sample_trace,
    segments,
    world_config,
    world_key,
)

V3_CFG = WorldConfig(**V3)
V = V3_CFG.vocab


def test_answer_is_the_floored_mean_of_every_partial():
    p = Problem((3, 4, 9, 5), (1, -1, 1), 10, "mean")  # partials 3, 7, 8, 3: sum 21, mean 5.25
    assert p.partials() == [3, 7, 8, 3] and p.answer == 5
    assert Problem((3, 4, 9, 5), (1, -1, 1), 10).answer == 3  # v2: the last partial
    assert aggregate([9, 0], "mean") == 4 and aggregate([9], "mean") == 9 and aggregate([2, 9, 0], "last") == 0
    # every partial counts: changing any one of them (or reading p_k twice) moves the answer here
    assert aggregate([3, 7, 8], "mean") == 6 and aggregate([3, 7, 8, 3, 3], "mean") == 4
    with pytest.raises(ValueError, match="answer"):
        WorldConfig(answer="sum")
    with pytest.raises(ValueError, match="aggregate"):
        aggregate([1], "sum")


def test_v3_traces_mark_loops_with_check_and_answer_the_mean():
    rng = np.random.default_rng(0)
    problems = [Problem(tuple(rng.integers(0, 10, k + 1).tolist()), (1,) * k, 10, "mean") for k in (1, 2, 3) * 60]
    truncated = loops = 0
    for p in problems:
        t = sample_trace(p, V3_CFG, rng)
        segs, closed = segments(t.tokens, V)
        assert closed and t.tokens[-1] == V.eos
        answer = t.tokens[t.tokens.index(V.end) + 1]
        rl = roles(segs, p.k, V)
        if t.truncated:  # premature END: the mean of the partials so far, or a random guess
            truncated += 1
            continue
        assert answer == p.answer
        ps = p.partials()
        for s, r in zip(segs, rl, strict=True):
            if r == "redundant":  # v2's loop process, every segment says CHECK and re-verifies p_k (± 1)
                loops += 1
                assert s[0] == V.check and (s[1] - ps[-1]) % 10 in (0, 1, 9)
            else:
                assert s[0] in (V.step, V.wait)
    assert loops > 50 and truncated < len(problems)


def test_corpus_weighs_the_answer_token():
    cfg = dataclasses.replace(V3_CFG, corpus_size=20)
    ids, am, loss = build_corpus(cfg)
    for row, w in zip(ids.tolist(), loss.tolist(), strict=True):
        ans = row.index(V.end) + 1
        assert w[ans] == 4.0 and w[ans + 1] == 1.0 and w[ans - 1] == 1.0  # the answer; EOS and END weigh 1


def test_v2_cache_keys_are_unchanged_and_v3_has_its_own():
    assert world_key(world_config("smoke")) == "c46202decfa3"  # the key the smoke world had before v3's fields
    keys = {world_key(world_config(n)) for n in ("premise", "control", "v3", "v3-control", "smoke", "v3-smoke")}
    assert len(keys) == 6
    v3 = world_config("v3")
    assert (v3.answer, v3.loop_word, v3.n_layers) == ("mean", "check", 4) and world_config("premise").answer == "last"


@pytest.mark.slow
def test_v3_quick_world_learns_the_mean_and_end_attends_to_the_chain(monkeypatch):
    """Acceptance A0 and A1 on one seed of the quick world (cached under .cache/; building it takes ~8 CPU minutes):
    the answer is learned (teacher-forced accuracy ≥ 0.8) and END's attention under the official scorer input ranks
    the loops below the necessary steps (AUC ≥ 0.7)."""
    from reprozoo.common.worlds.reasoning import build_world
    from reprozoo.papers.traac import premise as PR
    from reprozoo.papers.traac.experiment import PRESETS

    monkeypatch.setattr(PR, "PREMISE_PROMPTS", 32)
    monkeypatch.setattr(PR, "TF_TRACES", 128)
    rows = PR.premise(build_world(world_config("v3")), PRESETS["quick"], 0)
    got = {(r["metric"], r.get("input"), r.get("layer")): r["value"] for r in rows}
    assert got[("tf_answer_accuracy", None, None)] >= 0.8
    assert got[("redundant_auc", "official", None)] >= 0.7
