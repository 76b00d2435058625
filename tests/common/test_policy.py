"""Policy primitives against float64 references and their defining formulas."""

from __future__ import annotations

import pytest
import torch

from reprozoo.common import policy as P


def _logits(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


def test_logprobs_match_float64_reference_and_are_nonpositive():
    z = _logits(3, 5, 7)
    y = torch.randint(0, 7, (3, 5), generator=torch.Generator().manual_seed(1))
    ref = torch.tensor(
        [[z[b, t, y[b, t]] - torch.log(torch.exp(z[b, t]).sum()) for t in range(5)] for b in range(3)],
        dtype=torch.float64,
    )
    lp64 = P.logprobs_from_logits(z, y)
    lp32 = P.logprobs_from_logits(z.float(), y)
    assert torch.allclose(lp64, ref, atol=1e-12)
    assert torch.allclose(lp32.double(), ref, atol=1e-5)
    assert (lp64 <= 0).all() and (lp32 <= 0).all()
    # temperature divides the logits
    assert torch.allclose(P.logprobs_from_logits(z, y, temperature=2.0), P.logprobs_from_logits(z / 2, y))


@pytest.mark.parametrize("backend", ["plain", "auto", "reference"])
def test_logprobs_from_hidden_equals_logits_path(backend):
    g = torch.Generator().manual_seed(2)
    h = torch.randn(2, 4, 8, generator=g, dtype=torch.float64)
    W = torch.randn(11, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 11, (2, 4), generator=g)
    try:
        got = P.logprobs_from_hidden(h, W, y, temperature=0.7, backend=backend)
    except ValueError:
        pytest.skip("kernels package not available")
    assert torch.allclose(got, P.logprobs_from_logits(h @ W.T, y, temperature=0.7), atol=1e-10)


def test_entropy_and_exact_kl():
    z, q = _logits(4, 6, seed=3), _logits(4, 6, seed=4)
    p = torch.softmax(z, -1)
    assert torch.allclose(P.entropy_from_logits(z), -(p * p.log()).sum(-1))
    kl = P.kl_exact(z, q)
    assert torch.allclose(kl, (p * (p.log() - torch.log_softmax(q, -1))).sum(-1))
    assert (kl >= 0).all()
    assert torch.allclose(P.kl_exact(z, z), torch.zeros(4, dtype=torch.float64), atol=1e-12)


def test_kl_estimators_formulas():
    lp = torch.tensor([-1.0, -0.5, -2.0], dtype=torch.float64)
    lq = torch.tensor([-1.5, -0.5, -0.2], dtype=torch.float64)
    r = torch.exp(lq - lp)
    assert torch.allclose(P.kl_estimate(lp, lq, "k1"), lp - lq)
    assert torch.allclose(P.kl_estimate(lp, lq, "k2"), 0.5 * torch.log(r) ** 2)
    assert torch.allclose(P.kl_estimate(lp, lq, "k3"), (r - 1) - torch.log(r))
    with pytest.raises(ValueError, match="k1, k2 or k3"):
        P.kl_estimate(lp, lq, "k4")


def test_kl_estimators_against_exact_kl_on_small_vocab():
    """Exact expectations over y ∼ p: E[k1] = E[k3] = KL(p‖q) (unbiased); k3 ≥ 0 pointwise; E[k2] ≈ KL."""
    z, q = _logits(5, 6, seed=5) * 0.3, _logits(5, 6, seed=6) * 0.3
    p = torch.softmax(z, -1)
    lp, lq = torch.log_softmax(z, -1), torch.log_softmax(q, -1)
    exact = P.kl_exact(z, q)
    e_k1 = (p * P.kl_estimate(lp, lq, "k1")).sum(-1)
    e_k3 = (p * P.kl_estimate(lp, lq, "k3")).sum(-1)
    e_k2 = (p * P.kl_estimate(lp, lq, "k2")).sum(-1)
    assert torch.allclose(e_k1, exact, atol=1e-12)
    assert torch.allclose(e_k3, exact, atol=1e-12)
    assert (P.kl_estimate(lp, lq, "k3") >= 0).all()
    near = z + 0.05 * _logits(5, 6, seed=8)  # k2 is biased, but second-order close to KL when q ≈ p
    e_k2_near = (p * P.kl_estimate(lp, torch.log_softmax(near, -1), "k2")).sum(-1)
    assert torch.allclose(e_k2_near, P.kl_exact(z, near), rtol=0.1)
    assert not torch.allclose(e_k2, exact, rtol=1e-3)
    # Monte-Carlo: sampled k3 mean converges to the exact KL
    y = torch.multinomial(p, 20000, replacement=True, generator=torch.Generator().manual_seed(7))
    mc = P.kl_estimate(lp.gather(-1, y), lq.gather(-1, y), "k3").mean(-1)
    assert torch.allclose(mc, exact, atol=0.01)


def test_masked_reductions():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert P.masked_sum(x, m).item() == 7.0
    assert torch.equal(P.masked_sum(x, m, dim=-1), torch.tensor([3.0, 4.0]))
    assert torch.allclose(P.masked_mean(x, m, dim=-1), torch.tensor([1.5, 4.0]))
    assert P.masked_mean(x, m).item() == pytest.approx(7 / 3)
    assert P.masked_var(x, m).item() == pytest.approx(torch.tensor([1.0, 2.0, 4.0]).var().item())
    assert P.masked_mean(x, torch.zeros_like(m), dim=-1).tolist() == [0.0, 0.0]
    w = P.masked_whiten(x, m)
    assert P.masked_mean(w, m).abs().item() < 1e-6
    assert torch.equal(P.sequence_logprob(x, m), torch.tensor([3.0, 4.0]))


def test_response_mask_stops_after_first_eos():
    y = torch.tensor([[3, 9, 4, 9], [9, 1, 1, 1], [1, 2, 3, 4]])
    assert P.response_mask(y, 9).tolist() == [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]


def test_top_p_filter_keeps_nucleus():
    z = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(P.top_p_filter(z, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(P.top_p_filter(z, 1.0)).all()
    assert torch.isfinite(P.top_p_filter(z, 0.01)).sum() == 1
    with pytest.raises(ValueError):
        P.top_p_filter(z, 0.0)


def test_sampling_frequencies_and_logprobs():
    z = torch.log(torch.tensor([0.6, 0.3, 0.1])).repeat(40000, 1)
    tok, lp = P.sample_from_logits(z, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(tok, minlength=3).float() / 40000
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.01)
    assert torch.allclose(lp, torch.log(torch.tensor([0.6, 0.3, 0.1]))[tok], atol=1e-6)
    # top-p renormalises over the nucleus; temperature 0 is greedy
    tok, lp = P.sample_from_logits(z[:5000], top_p=0.8, generator=torch.Generator().manual_seed(1))
    assert set(tok.tolist()) <= {0, 1}
    assert torch.allclose(lp[tok == 0], torch.log(torch.tensor(2 / 3)), atol=1e-6)
    tok, lp = P.sample_from_logits(z[:3], temperature=0)
    assert tok.tolist() == [0, 0, 0] and (lp == 0).all()
