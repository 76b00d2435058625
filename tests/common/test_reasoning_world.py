import dataclasses

import numpy as np
import pytest
import torch

from reprozoo.common.lm import generate
from reprozoo.common.worlds import reasoning as rw
from reprozoo.common.worlds.reasoning import (
    CONTROL,
    Problem,
    WorldConfig,
    analyse,
    build_corpus,
    encode_prompts,
    prompt_tokens,
    roles,
    rollout,
    sample_trace,
    segments,
    step_table,
    verify,
)
from reprozoo.common.worlds.reasoning_demo import cross_fit_auc, steered

CFG = WorldConfig(corpus_size=300, d_model=16, n_layers=2, n_heads=2, sft_steps=3, sft_batch=16)
CONTROL_CFG = dataclasses.replace(CFG, **CONTROL)
V = CFG.vocab


def test_partials_and_answer_by_hand():
    p = Problem((3, 4, 9, 5), (1, -1, 1), 10)
    assert p.partials() == [3, 7, 8, 3] and p.answer == 3 and p.k == 3
    assert Problem((7, 8), (-1,), 5).partials() == [2, 4]  # 7 mod 5 = 2; 2 − 8 = −6 ≡ 4


def test_verifier_is_exact():
    p = Problem((3, 4, 9), (1, -1), 10)  # answer 8
    good = [V.step, 3, V.sep, V.step, 7, V.sep, V.step, 8, V.sep, V.end, 8, V.eos]
    assert verify(p, good, V)
    assert not verify(p, good[:-3] + [V.end, 7, V.eos], V)  # wrong answer
    assert not verify(p, good[:-3] + [8, V.eos], V)  # no end of thinking
    assert not verify(p, good[:-1] + [3], V)  # answer not followed by EOS
    assert not verify(p, good[:-3] + [V.end, V.eos], V)  # empty answer
    assert verify(p, good + [V.eos, V.eos], V)  # padding after EOS is ignored
    # a wrong thinking trace with the right final answer is still accepted: the verifier checks the answer only
    assert verify(p, [V.step, 1, V.sep, V.end, 8, V.eos], V)


def test_rates_by_hand():
    c = WorldConfig()
    assert c.onset(1) == 1.0 and c.onset(8) == pytest.approx(0.5) and c.onset(15) == 0  # falls with k
    assert [c.hazard(s) for s in (0, 1, 2, 3, 9)] == pytest.approx([0, 0, 0.08, 0.16, 0.3])  # grows, capped
    assert [c.reflect(s) for s in (0, 1, 2, 3)] == pytest.approx([0, 0.4, 0.2, 0.1])  # falls with the streak
    f = WorldConfig(**CONTROL)
    assert [f.hazard(s) for s in (0, 1, 5)] == [0, 0.15, 0.15] and [f.reflect(s) for s in (0, 1, 5)] == [0, 0.25, 0.25]


@pytest.mark.parametrize("cfg", [CFG, CONTROL_CFG], ids=["premise", "control"])
def test_traces_follow_the_grammar_and_roles_are_readable_from_tokens(cfg):
    rng = np.random.default_rng(0)
    for p in rw.sample_problems(300, [1, 2, 5, 8], 10, rng):
        t = sample_trace(p, cfg, rng)
        segs, closed = segments(t.tokens, V)
        assert closed and all(s[-1] == V.sep and len(s) == 3 for s in segs)
        read = roles(segs, p.k, V)
        assert read == [{"loop": "redundant"}.get(r, r) for r in t.roles]  # the analysis recovers the generator's
        chain = [s for s, r in zip(segs, read, strict=True) if r != "redundant"]
        assert [s[1] for s in chain] == p.partials()[: len(chain)]  # step i computes p_i, at a fixed position
        markers = [(s[0], r) for s, r in zip(segs, read, strict=True) if r != "redundant"]
        assert all(m == (V.step if r == "chain" else V.wait) for m, r in markers)
        assert "reflectreflect" not in "".join(read)  # never a reflection right after a reflection
        loop = [s for s, r in zip(segs, read, strict=True) if r == "redundant"]
        assert len({s[0] for s in loop}) <= 1 and (not loop or cfg.premise or loop[0][0] == V.check)
        for s in loop:  # re-verification: the answer, or (premise, hesitant "wait" loops) a near-miss
            assert (s[1] - p.answer) % 10 in ((0, 1, 9) if s[0] == V.wait else (0,))
        st = analyse(p, t.tokens, V)
        assert st.underthink == t.truncated and st.redundant_tokens == 3 * t.roles.count("loop")
        assert st.correct or t.truncated
        assert len(t.tokens) <= cfg.max_new_tokens and t.roles.count("loop") <= cfg.loop_cap


def test_corpus_has_the_premise_and_the_control_does_not():
    def stats(cfg):
        rng = np.random.default_rng(1)
        length = {"wait": [], "check": []}
        near, loops, ends = [], [], {}
        for p in rw.sample_problems(6000, [1, 4, 8], 10, rng):
            t = sample_trace(p, cfg, rng)
            segs = segments(t.tokens, V)[0]
            red = [s for s, r in zip(segs, t.roles, strict=True) if r == "loop"]
            near += [s[1] != p.answer for s in red]
            if red:
                length["wait" if red[0][0] == V.wait else "check"].append(len(red))
            if p.k == 1 and not t.truncated:
                loops.append(bool(red))
            if t.truncated:  # plain steps in a row when the thinking ended prematurely
                streak = len(t.roles) - max((i + 1 for i, r in enumerate(t.roles) if r != "chain"), default=0)
                ends[streak] = ends.get(streak, 0) + 1
        return np.mean(near), np.mean(loops), ends, {m: np.mean(x) if x else 0 for m, x in length.items()}

    near, loop1, ends, length = stats(WorldConfig())
    assert near > 0.1 and loop1 == 1.0 and length["wait"] > 3 * length["check"]  # hesitant loops go on
    assert 1 not in ends and ends[4] > ends[2]  # premature END only after a streak, more often after a long one
    near, loop1, ends, length = stats(WorldConfig(**CONTROL))
    assert near == 0 and loop1 == 1.0 and length["wait"] == 0
    assert ends[1] > ends[4]  # flat hazard: short streaks end too


def test_prompts_are_aligned_with_steps():
    rng = np.random.default_rng(0)
    probs = rw.sample_problems(20, [1, 4, 8], 10, rng)
    ids, mask = encode_prompts(probs, V, CFG.k_max)
    assert ids.shape == (20, CFG.max_prompt_len) and bool(mask.all())
    P = CFG.max_prompt_len
    for p, row in zip(probs, ids, strict=True):
        for i, a in enumerate(p.operands):  # a_i at 3i + 1
            assert row[3 * i + 1] == a
    with pytest.raises(ValueError, match="k_max"):
        prompt_tokens(Problem(tuple(range(14)), (1,) * 13, 10), V, 12)
    assert P == 3 * 12 + 4


def test_corpus_loss_mask():
    ids, am, lm = build_corpus(CFG)
    P = CFG.max_prompt_len
    assert not lm[:, :P].any() and lm[:, P].all() and bool((am >= lm).all())  # loss on the response only
    assert ids.shape == (CFG.corpus_size, P + CFG.max_new_tokens)


def test_step_table_by_hand():
    p = Problem((3, 4), (1,), 10)  # partials 3, 7
    r = [V.step, 3, V.sep, V.step, 7, V.sep, V.check, 6, V.sep, V.check, 7, V.sep, V.end, 7, V.eos]
    maxp = torch.tensor([[1.0, 0.8, 0.99, 0.6, 1.0, 0.99, 0.5, 0.4, 0.99, 0.9, 0.9, 0.99, 0.7, 1.0, 1.0]])
    steps = step_table([p], torch.tensor([r]), maxp, V)
    assert [s.c for s in steps] == pytest.approx([0.9, 0.8, 0.45, 0.9])  # the SEP's own max-prob is excluded
    assert [s.v for s in steps] == pytest.approx([0, 0.0025, 0.030625, 0.050625])
    assert [s.role for s in steps] == ["chain", "chain", "redundant", "redundant"]
    assert [s.next for s in steps] == ["step", "redundant", "redundant", "end"]
    assert [s.boundary for s in steps] == ["mid", "chain_end", "loop", "loop"] and steps[1].complete
    assert [s.start for s in steps] == [0, 3, 6, 9] and [s.sep for s in steps] == [2, 5, 8, 11]


def test_cross_fit_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    rows = np.arange(2000)
    assert cross_fit_auc(np.c_[y + 0.1 * rng.normal(size=2000), rng.normal(size=2000)], y, rows) > 0.99
    assert abs(cross_fit_auc(rng.normal(size=(2000, 2)), y, rows) - 0.5) < 0.05


def test_steered_adds_the_vector_at_the_given_positions():
    model = rw.new_model(CFG)
    ids = torch.randint(0, V.size, (2, 7))
    lam = torch.zeros(2, 7)
    lam[0, 3], lam[1, 5] = 2.0, -1.0
    S = torch.randn(CFG.d_model)
    seen = []
    # what decoder layer 1 receives: the input of its first norm
    rec = model.model.layers[1].input_layernorm.register_forward_hook(lambda m, a, o: seen.append(a[0].clone()))
    try:
        base = model(input_ids=ids, output_hidden_states=True)
        with steered(model, 1, S, lam):
            model(input_ids=ids)
        with steered(model, CFG.n_layers, S, lam):  # the final, post-norm state feeds the LM head
            top = model(input_ids=ids).logits
    finally:
        rec.remove()
    assert torch.allclose(seen[1] - seen[0], lam[..., None] * S, atol=1e-6)
    assert torch.allclose(top, model.lm_head(base.hidden_states[-1] + lam[..., None] * S), atol=1e-5)


def test_rollout_matches_common_generate_and_calls_back():
    model = rw.new_model(CFG)
    probs = rw.sample_problems(6, [2, 5], 10, np.random.default_rng(1))
    ids, mask = encode_prompts(probs, V, CFG.k_max)
    seen = []
    g, maxp = rollout(
        model,
        ids,
        mask,
        max_new_tokens=10,
        eos_id=V.eos,
        temperature=0.7,
        top_p=0.95,
        generator=torch.Generator().manual_seed(3),
        on_token=lambda t, tok, pr: seen.append((t, tok.clone())),
    )
    ref = generate(
        model,
        ids,
        prompt_mask=mask,
        max_new_tokens=10,
        temperature=0.7,
        top_p=0.95,
        eos_id=V.eos,
        generator=torch.Generator().manual_seed(3),
    )
    assert torch.equal(g.tokens, ref.tokens)
    assert len(seen) == 10 and all(torch.equal(tok, g.tokens[:, t]) for t, tok in seen)
    assert ((maxp > 0) & (maxp <= 1)).all()


def test_world_smoke_builds_caches_and_exposes_states(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROZOO_CACHE", str(tmp_path))
    world = rw.build_world(CFG)
    assert (world.cache_dir / "model.pt").exists() and len(world.sft_losses) == CFG.sft_steps
    again = rw.build_world(CFG)  # loaded from the cache
    for a, b in zip(world.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert rw.build_world(CONTROL_CFG).cache_dir != world.cache_dir  # the control world is cached on its own
    probs = world.problems(5, [1, 3], seed=0)
    g = world.sample(probs, output_hidden_states=True, output_attentions=True)
    assert g.tokens.shape == (5, CFG.max_new_tokens) and g.hidden_states.shape[-1] == CFG.d_model
    hs, att, logits = world.states(probs, g.tokens, attentions=True)
    S = CFG.max_prompt_len + CFG.max_new_tokens
    assert len(hs) == CFG.n_layers + 1 and hs[0].shape == (5, S, CFG.d_model)
    assert len(att) == CFG.n_layers and att[0].shape == (5, CFG.n_heads, S, S)
    assert logits.shape == (5, S, V.size)
    stats = world.evaluate(probs, g.tokens)
    assert set(stats) == {1, 3} and all(0 <= s["accuracy"] <= 1 for s in stats.values())


def test_demo_cli_smoke(run_cli, tmp_path):
    proc = run_cli("reprozoo.common.worlds.reasoning_demo", "--preset", "smoke", "--out", str(tmp_path))
    assert "loops-follow-low-confidence" in proc.stdout and (tmp_path / "summary.json").exists()


def test_world_config_rejects_bad_values():
    with pytest.raises(ValueError, match="q_hesitant"):
        WorldConfig(q_hesitant=1.5)
    with pytest.raises(ValueError, match="k_train"):
        WorldConfig(k_train=(1, 13))
    with pytest.raises(ValueError, match="unknown world"):
        rw.world_config("magic")
