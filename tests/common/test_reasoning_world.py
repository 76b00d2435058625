import numpy as np
import pytest
import torch

from common.lm import generate
from common.worlds import reasoning as rw
from common.worlds.reasoning import (
    Problem,
    WorldConfig,
    analyse,
    build_corpus,
    encode_prompts,
    prompt_tokens,
    rollout,
    segments,
    trace,
    verify,
)

CFG = WorldConfig(corpus_size=300, d_model=16, n_layers=2, n_heads=2, sft_steps=3, sft_batch=16)
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


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_traces_have_one_step_per_segment(k):
    rng = np.random.default_rng(k)
    p = rw.sample_problems(1, k, 10, rng)[0]
    concise = trace(p, V, "concise", rng)
    segs, closed = segments(concise, V)
    assert closed and len(segs) == k + 1
    assert [s for s in segs] == [[V.step, x, V.sep] for x in p.partials()]
    st = analyse(p, concise, V)
    assert st.correct and not st.overthink and not st.underthink and st.think_len == 3 * (k + 1)

    over = analyse(p, trace(p, V, "overcheck", rng), V)
    assert over.correct and over.overthink and 1 <= over.redundant_steps <= 3 and over.reflections >= 1
    if k >= 2:
        trunc = trace(p, V, "truncate", rng)
        st = analyse(p, trunc, V)
        assert st.underthink and st.n_steps < k + 1 and st.closed
        rec = trace(p, V, "recover", rng)
        st = analyse(p, rec, V)
        assert st.correct and st.reflections == 1 and st.n_steps == k + 1 and not st.underthink and not st.overthink


def test_prompts_are_aligned_with_steps():
    rng = np.random.default_rng(0)
    probs = rw.sample_problems(20, [1, 4, 8], 10, rng)
    ids, mask = encode_prompts(probs, V, CFG.k_max)
    assert ids.shape == (20, CFG.max_prompt_len) and bool(mask.all())
    P = CFG.max_prompt_len
    for p, row in zip(probs, ids, strict=True):
        full = row.tolist() + trace(p, V, "concise", rng)
        for i, a in enumerate(p.operands):  # a_i at 3i + 1, step i's value p_i at P + 3i + 1
            assert full[3 * i + 1] == a and full[P + 3 * i + 1] == p.partials()[i]
    with pytest.raises(ValueError, match="k_max"):
        prompt_tokens(Problem(tuple(range(10)), (1,) * 9, 10), V, 8)


def test_corpus_mixture_and_loss_mask():
    cfg = WorldConfig(corpus_size=4000)
    ids, am, lm = build_corpus(cfg)
    P = cfg.max_prompt_len
    assert not lm[:, :P].any() and lm[:, P].all()  # loss on the response only
    resp = ids[:, P:]
    wait_or_check = ((resp == V.wait) | (resp == V.check)).any(1)
    k = (ids[:, :P] == V.plus).sum(1) + (ids[:, :P] == V.minus).sum(1)
    easy, hard = k <= cfg.easy_max, k >= cfg.hard_min
    assert abs(float(wait_or_check[easy].float().mean()) - cfg.p_overcheck) < 0.05
    assert abs(float(wait_or_check[hard].float().mean()) - cfg.p_recover) < 0.04


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
    proc = run_cli("common.worlds.reasoning", "--preset", "smoke", "--out", str(tmp_path))
    assert "over-thinking" in proc.stdout and (tmp_path / "summary.json").exists()


def test_cut_step_concentrates_truncation_on_one_boundary():
    rng = np.random.default_rng(0)
    for p in rw.sample_problems(30, [4, 6, 8], 10, rng):
        assert analyse(p, trace(p, V, "truncate", rng, cut_step=2), V).n_steps == 3
        rec = trace(p, V, "recover", rng, cut_step=2)
        assert segments(rec, V)[0][3][0] == V.wait  # the reflection replaces the marker of step 3
