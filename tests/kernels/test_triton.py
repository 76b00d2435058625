"""`triton` backend against `reference`; on CPU under TRITON_INTERPRET=1 at tiny fp32 shapes."""

from __future__ import annotations

import functools
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first `triton.jit` of kernels.triton_backend
pytest.importorskip("triton")

from reprozoo.kernels.api import fused_logprob  # noqa: E402
from reprozoo.kernels.reference import fused_logprob_reference  # noqa: E402
from reprozoo.kernels.triton_backend import fused_logprob_triton  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def _run(fn, x, temperature):
    leaves = {k: v.to(DEVICE).clone().requires_grad_(True) for k, v in x.items() if v.is_floating_point()}
    out = fn(
        leaves["hidden"],
        leaves["weight"],
        x["targets"].to(DEVICE),
        temperature,
        leaves.get("ref_hidden"),
        leaves.get("ref_weight"),
    )
    out = [o for o in out if o is not None]
    g = torch.Generator().manual_seed(11)
    loss = sum((o * torch.randn(o.shape, generator=g).to(DEVICE)).sum() for o in out)
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return [o.detach().cpu() for o in out] + [gr.cpu() for gr in grads]


@pytest.mark.parametrize("splits", [None, 3])
@pytest.mark.parametrize(("shape", "temperature", "ref"), [((47, 31, 123), 0.7, True), ((8, 16, 64), 1.0, False)])
def test_triton_matches_reference(inputs, shape, temperature, ref, splits):
    """Also with the vocabulary split across 3 programs per token block (the last split shorter)."""
    x = inputs(*shape, dtype=torch.float32, ref=ref, d_ref=shape[1] - 5, scale=4.0)
    fn = functools.partial(fused_logprob_triton, splits=splits)
    got, expected = _run(fn, x, temperature), _run(fused_logprob_reference, x, temperature)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=5e-4)


def test_triton_large_logits_and_api(inputs):
    x = inputs(20, 16, 40, dtype=torch.float32, ref=True, scale=1e4)
    out = fused_logprob(**{k: v.to(DEVICE) for k, v in x.items()}, kl="exact", backend="triton")
    ref = fused_logprob_reference(
        x["hidden"].double(),
        x["weight"].double(),
        x["targets"],
        1.0,
        x["ref_hidden"].double(),
        x["ref_weight"].double(),
    )
    assert torch.isfinite(out.logprobs).all() and (out.logprobs <= 0).all()
    assert (out.kl >= -1e-3).all()
    torch.testing.assert_close(out.logprobs.cpu().double(), ref[0], atol=0.05, rtol=1e-4)
    torch.testing.assert_close(out.kl.cpu().double(), ref[2], atol=0.05, rtol=1e-4)
    split = fused_logprob_triton(
        *(x[k].to(DEVICE) for k in ("hidden", "weight", "targets")),
        1.0,
        x["ref_hidden"].to(DEVICE),
        x["ref_weight"].to(DEVICE),
        splits=2,
    )
    torch.testing.assert_close(split[0].detach().cpu().double(), ref[0], atol=0.05, rtol=1e-4)
    torch.testing.assert_close(split[2].detach().cpu().double(), ref[2], atol=0.05, rtol=1e-4)


def test_triton_per_token_temperature_lse_and_options(inputs):
    """Per-token τ, entropy=False, ignore_index, bf16/fp32 mixed inputs: values, gradients (with lse) vs reference."""
    x = inputs(21, 12, 40, dtype=torch.float32, scale=4.0)
    tau = torch.linspace(0.3, 2.5, 21)
    got, expected = _run(fused_logprob_triton, x, tau), _run(fused_logprob_reference, x, tau)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=5e-4)
    t = x["targets"].clone()
    t[3] = -100
    h = x["hidden"].bfloat16().to(DEVICE).requires_grad_(True)
    out = fused_logprob(
        h, x["weight"].to(DEVICE), t.to(DEVICE), temperature=tau.to(DEVICE), entropy=False, backend="triton"
    )
    assert out.entropy is None and out.logprobs[3] == 0
    (out.logprobs.sum() + out.lse.sum()).backward()
    assert h.grad.dtype == torch.bfloat16 and (h.grad[3] == 0).all()
    ref = fused_logprob_reference(h.detach().float().cpu(), x["weight"], torch.where(t < 0, 0, t), tau)
    keep = t != -100
    torch.testing.assert_close(out.logprobs.cpu()[keep], ref[0][keep], atol=5e-5, rtol=5e-4)
    torch.testing.assert_close(out.lse.cpu()[keep], ref[3][keep], atol=5e-5, rtol=5e-4)
