"""`reference` and `torch` backends: values, properties, gradients (autograd and float64 finite differences)."""

from __future__ import annotations

import pytest
import torch

from reprozoo.kernels.api import fused_logprob
from reprozoo.kernels.reference import fused_logprob_reference
from reprozoo.kernels.torch_chunked import fused_logprob_torch

SHAPES = [(47, 31, 123), (8, 16, 64), (1, 5, 7)]


def _outputs_and_grads(fn, x, temperature, **kw):
    """Run fn, then backprop random per-output weights; returns (outputs, grads wrt every float input)."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in x.items() if v.is_floating_point()}
    out = fn(
        leaves["hidden"],
        leaves["weight"],
        x["targets"],
        temperature,
        leaves.get("ref_hidden"),
        leaves.get("ref_weight"),
        **kw,
    )
    g = torch.Generator().manual_seed(123)
    loss = sum(
        (o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)).sum() for o in out if o is not None
    )
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return [o.detach() for o in out if o is not None], list(grads)


def test_reference_matches_hand_formulas():
    x = {
        "hidden": torch.tensor([[1.0, -2.0]], dtype=torch.float64),
        "weight": torch.tensor([[0.5, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64),
    }
    s = torch.tensor([0.5, -2.0, -1.0], dtype=torch.float64) / 2.0  # z / τ with τ = 2
    p = torch.exp(s) / torch.exp(s).sum()
    logp, ent, _, lse = fused_logprob_reference(x["hidden"], x["weight"], torch.tensor([2]), 2.0)
    assert lse.item() == pytest.approx(torch.logsumexp(s, 0).item(), abs=1e-12)
    assert logp.item() == pytest.approx(torch.log(p[2]).item(), abs=1e-12)
    assert ent.item() == pytest.approx(-(p * p.log()).sum().item(), abs=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("ref", [False, True])
def test_torch_matches_reference_float64(inputs, shape, temperature, ref):
    x = inputs(*shape, ref=ref, d_ref=shape[1] + 3, scale=4.0)
    o_ref, g_ref = _outputs_and_grads(fused_logprob_reference, x, temperature)
    o, g = _outputs_and_grads(fused_logprob_torch, x, temperature, token_chunk=10, vocab_chunk=17)
    for a, b in zip(o + g, o_ref + g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


def test_torch_default_chunks_float32(inputs):
    x = inputs(300, 24, 1000, dtype=torch.float32, ref=True, scale=8.0)
    x64 = {k: v.double() if v.is_floating_point() else v for k, v in x.items()}
    o_ref, g_ref = _outputs_and_grads(fused_logprob_reference, x64, 1.3)
    o, g = _outputs_and_grads(fused_logprob_torch, x, 1.3)
    for a, b in zip(o + g, o_ref + g_ref, strict=True):
        torch.testing.assert_close(a.double(), b, atol=2e-5, rtol=5e-4)


def test_large_logits_stay_exact(inputs):
    """|z| ~ 1e4: the online softmax shifts by the running max, so nothing overflows or cancels."""
    x = inputs(47, 31, 123, ref=True, scale=1e4)
    o_ref, g_ref = _outputs_and_grads(fused_logprob_reference, x, 1.0)
    o, g = _outputs_and_grads(fused_logprob_torch, x, 1.0, token_chunk=16, vocab_chunk=20)
    for a, b in zip(o + g, o_ref + g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-8)
    x32 = {k: (v.float() if v.is_floating_point() else v) for k, v in x.items()}
    lp, ent, kl, _ = fused_logprob_torch(**x32, temperature=1.0, vocab_chunk=20)
    assert torch.isfinite(lp).all() and torch.isfinite(ent).all() and torch.isfinite(kl).all()
    assert (lp <= 0).all(), "log p must never be positive (verl's old bug)"
    torch.testing.assert_close(lp.double(), o_ref[0], atol=0.05, rtol=1e-4)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_properties(inputs, backend):
    """log p ≤ 0, 0 ≤ H ≤ log V, exact KL ≥ 0 and KL(π‖π) = 0."""
    x = inputs(64, 16, 50, dtype=torch.float32, ref=True, scale=6.0)
    out = fused_logprob(**x, kl="exact", backend=backend, temperature=0.9)
    assert (out.logprobs <= 0).all()
    assert (out.entropy >= -1e-6).all() and (out.entropy <= torch.log(torch.tensor(50.0)) + 1e-5).all()
    assert (out.kl >= -1e-6).all() and out.kl.mean() > 0.1
    self_kl = fused_logprob(
        x["hidden"],
        x["weight"],
        x["targets"],
        ref_hidden=x["hidden"],
        ref_weight=x["weight"],
        kl="exact",
        backend=backend,
    ).kl
    assert self_kl.abs().max() < 1e-5


@pytest.mark.parametrize("kind", ["k1", "k2", "k3", "k3_clamped"])
def test_kl_estimators_closed_form(inputs, kind):
    x = inputs(47, 31, 123)
    ref_lp = -torch.rand(47, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 8
    out = fused_logprob(**x, ref_logprobs=ref_lp, kl=kind, backend="torch")
    d = ref_lp - out.logprobs  # x = ℓ_ref − log p
    k3 = torch.exp(d) - d - 1
    expected = {"k1": -d, "k2": d**2 / 2, "k3": k3, "k3_clamped": k3.clamp(max=10.0)}[kind]
    torch.testing.assert_close(out.kl, expected, atol=1e-12, rtol=1e-12)
    if kind != "k1":
        assert (out.kl >= 0).all()


def test_exact_kl_matches_monte_carlo_of_k3(inputs):
    """E_{t∼π}[k3] = KL(π‖π_ref): k3 at sampled targets averages to the exact KL (one row, many samples)."""
    x = inputs(1, 8, 20, ref=True, scale=0.5)  # small enough that no sample reaches the k3 clamp (which biases)
    exact = fused_logprob(**x, kl="exact", backend="torch").kl
    s = x["hidden"] @ x["weight"].T
    t = torch.multinomial(torch.softmax(s, -1)[0], 20000, replacement=True, generator=torch.Generator().manual_seed(0))
    h = x["hidden"].expand(20000, -1)
    ref_lp = fused_logprob(x["ref_hidden"].expand(20000, -1), x["ref_weight"], t, backend="torch").logprobs
    k3 = fused_logprob(h, x["weight"], t, ref_logprobs=ref_lp, kl="k3", backend="torch").kl
    assert (k3 < 10).all() and exact.item() > 0.2
    assert k3.mean().item() == pytest.approx(exact.item(), rel=0.05)


def test_gradcheck_float64_finite_differences(inputs):
    x = inputs(6, 4, 11, ref=True, d_ref=3, scale=3.0)
    t = x["targets"]

    def f(h, w, hr, wr):
        return fused_logprob_torch(h, w, t, 0.8, hr, wr, token_chunk=4, vocab_chunk=5)

    args = [x[k].clone().requires_grad_(True) for k in ("hidden", "weight", "ref_hidden", "ref_weight")]
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-6)


def test_unused_outputs_and_partial_grads(inputs):
    """Backward with only log p used, and with weight frozen."""
    x = inputs(20, 8, 30)
    h = x["hidden"].clone().requires_grad_(True)
    lp, _, _, _ = fused_logprob_torch(h, x["weight"], x["targets"], vocab_chunk=7)
    (gh,) = torch.autograd.grad(lp.sum(), [h])
    h2 = x["hidden"].clone().requires_grad_(True)
    lp2, _, _, _ = fused_logprob_reference(h2, x["weight"], x["targets"])
    (gh2,) = torch.autograd.grad(lp2.sum(), [h2])
    torch.testing.assert_close(gh, gh2)


def test_bf16_inputs_accumulate_grad_w_in_fp32(inputs):
    """bf16 in, fp32 stats out; grad W summed over 64 token chunks stays within one bf16 rounding of fp32."""
    x = inputs(512, 16, 40, dtype=torch.float32, seed=3, scale=4.0)
    hb, wb = x["hidden"].bfloat16().requires_grad_(True), x["weight"].bfloat16().requires_grad_(True)
    lp, ent, _, _ = fused_logprob_torch(hb, wb, x["targets"], token_chunk=8)
    assert lp.dtype == torch.float32 and wb.dtype == torch.bfloat16
    (lp.sum() + ent.sum()).backward()
    h32, w32 = hb.detach().float().requires_grad_(True), wb.detach().float().requires_grad_(True)
    lp32, ent32, _, _ = fused_logprob_reference(h32, w32, x["targets"])
    (lp32.sum() + ent32.sum()).backward()
    assert wb.grad.dtype == torch.bfloat16
    torch.testing.assert_close(lp, lp32, atol=1e-4, rtol=1e-4)
    err = (wb.grad.float() - w32.grad).abs() / w32.grad.abs().clamp_min(1e-3)
    assert err.max() < 2**-8 + 1e-4
