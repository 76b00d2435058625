"""`reprozoo.kernels.fused_loss.fused_linear_loss` (gradient computed in the forward): gradient parity with a float64
autograd reference and with finite differences, for SFT (coef), a PPO clipped surrogate with entropy bonus (loss_fn),
per-token temperature, ignored tokens, mixed dtypes."""

from __future__ import annotations

import pytest
import torch

from reprozoo.kernels.fused_loss import fused_linear_loss
from reprozoo.kernels.reference import fused_logprob_reference


def _ppo(adv, old_lp, mask, clip=0.2, ent_coef=0.01):
    """Per-token PPO clipped surrogate with an entropy bonus, normalised by the number of masked tokens."""
    count = mask.sum()

    def loss_fn(lp, ent, rows):
        ratio = torch.exp(lp - old_lp[rows])
        a = adv[rows]
        ell = torch.maximum(-a * ratio, -a * ratio.clamp(1 - clip, 1 + clip))
        if ent is not None:
            ell = ell - ent_coef * ent
        return ell * mask[rows] / count

    return loss_fn


def _reference_loss(h, w, t, loss_fn, temperature=1.0, ignore_index=-100):
    keep = (t != ignore_index).nonzero().squeeze(1)
    tau = temperature[keep] if isinstance(temperature, torch.Tensor) else temperature
    lp, ent, _, _ = fused_logprob_reference(h[keep], w, t[keep], tau)
    return loss_fn(lp, ent, keep).sum()


def _case(inputs, n=37, d=7, v=53, seed=0):
    x = inputs(n, d, v, seed=seed, scale=4.0)
    g = torch.Generator().manual_seed(seed + 1)
    adv = torch.randn(n, dtype=torch.float64, generator=g)
    old_lp = -torch.rand(n, dtype=torch.float64, generator=g) * 4
    mask = (torch.rand(n, generator=g) > 0.2).double()
    return x, adv, old_lp, mask


@pytest.mark.parametrize("entropy", [False, True])
@pytest.mark.parametrize("per_token_tau", [False, True])
def test_ppo_loss_gradients_match_float64_reference(inputs, entropy, per_token_tau):
    x, adv, old_lp, mask = _case(inputs)
    t = x["targets"].clone()
    t[[2, 30]] = -100
    tau = torch.linspace(0.3, 2.0, 37, dtype=torch.float64) if per_token_tau else 0.8
    loss_fn = _ppo(adv, old_lp, mask)
    h = x["hidden"].clone().requires_grad_(True)
    w = x["weight"].clone().requires_grad_(True)
    out = fused_linear_loss(h, w, t, loss_fn, temperature=tau, entropy=entropy, token_chunk=8)
    out.loss.backward()
    h2 = x["hidden"].clone().requires_grad_(True)
    w2 = x["weight"].clone().requires_grad_(True)
    ref = _reference_loss(h2, w2, t, loss_fn if entropy else (lambda lp, _e, r: loss_fn(lp, None, r)), tau)
    ref.backward()
    torch.testing.assert_close(out.loss, ref.detach(), atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(h.grad, h2.grad, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(w.grad, w2.grad, atol=1e-12, rtol=1e-10)
    assert (h.grad[[2, 30]] == 0).all() and (out.logprobs[[2, 30]] == 0).all()
    lp, ent, _, lse = fused_logprob_reference(x["hidden"], x["weight"], torch.where(t < 0, 0, t), tau)
    keep = t != -100
    torch.testing.assert_close(out.logprobs[keep], lp[keep])
    torch.testing.assert_close(out.lse[keep], lse[keep])
    assert (out.entropy is not None) == entropy
    if entropy:
        torch.testing.assert_close(out.entropy[keep], ent[keep])


def test_finite_differences_float64(inputs):
    """Central differences of the loss along random directions equal ⟨grad, direction⟩ (float64)."""
    x, adv, old_lp, mask = _case(inputs, n=6, d=4, v=11, seed=3)
    loss_fn = _ppo(adv, old_lp, mask, ent_coef=0.3)
    t, tau = x["targets"], torch.linspace(0.5, 1.5, 6, dtype=torch.float64)

    def f(h, w):
        return fused_linear_loss(h, w, t, loss_fn, temperature=tau, entropy=True, token_chunk=4).loss

    h = x["hidden"].clone().requires_grad_(True)
    w = x["weight"].clone().requires_grad_(True)
    f(h, w).backward()
    g = torch.Generator().manual_seed(9)
    eps = 1e-6
    for _ in range(5):
        dh = torch.randn(h.shape, dtype=torch.float64, generator=g)
        dw = torch.randn(w.shape, dtype=torch.float64, generator=g)
        with torch.no_grad():
            fd = (f(h + eps * dh, w + eps * dw) - f(h - eps * dh, w - eps * dw)) / (2 * eps)
        analytic = (h.grad * dh).sum() + (w.grad * dw).sum()
        assert fd.item() == pytest.approx(analytic.item(), rel=1e-6, abs=1e-9)


def test_backward_hands_over_once(inputs):
    """The gradients are handed over without a copy (they become .grad); a second backward is refused."""
    x = inputs(10, 4, 20)
    w = x["weight"].clone().requires_grad_(True)
    out = fused_linear_loss(x["hidden"], w, x["targets"], coef=torch.ones(10, dtype=torch.float64))
    out.loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward runs once"):
        out.loss.backward()


def test_sft_coef_matches_cross_entropy(inputs):
    """coef = −mask / Σ mask gives the masked token-mean cross-entropy (common/lm.sft's loss) and its gradients."""
    x = inputs(40, 8, 64, dtype=torch.float32, scale=3.0)
    mask = (torch.arange(40) % 3 != 0).float()
    h = x["hidden"].clone().requires_grad_(True)
    w = x["weight"].clone().requires_grad_(True)
    out = fused_linear_loss(h, w, x["targets"], coef=-mask / mask.sum())
    out.loss.backward()
    h2 = x["hidden"].clone().requires_grad_(True)
    w2 = x["weight"].clone().requires_grad_(True)
    logp = torch.log_softmax(h2 @ w2.T, -1).gather(1, x["targets"][:, None]).squeeze(1)
    ref = -(logp * mask).sum() / mask.sum()
    ref.backward()
    torch.testing.assert_close(out.loss, ref)
    torch.testing.assert_close(h.grad, h2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


def test_upstream_scale_and_shapes(inputs):
    """loss.backward() scales the stored gradients by the upstream gradient; leading dims are kept."""
    x = inputs(12, 5, 30)
    h = x["hidden"].reshape(3, 4, 5).clone().requires_grad_(True)
    coef = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4)
    out = fused_linear_loss(h, x["weight"], x["targets"].reshape(3, 4), coef=coef)
    assert out.logprobs.shape == (3, 4) and out.loss.shape == ()
    (3.0 * out.loss).backward()
    h2 = x["hidden"].clone().requires_grad_(True)
    lp = fused_logprob_reference(h2, x["weight"], x["targets"])[0]
    (3.0 * (lp * coef.reshape(-1)).sum()).backward()
    torch.testing.assert_close(h.grad.reshape(12, 5), h2.grad)


@pytest.mark.parametrize(("h_dt", "w_dt"), [(torch.bfloat16, torch.float32), (torch.bfloat16, torch.bfloat16)])
def test_mixed_dtypes_accumulate_in_fp32(inputs, h_dt, w_dt):
    x = inputs(300, 16, 40, dtype=torch.float32, seed=2, scale=4.0)
    coef = torch.full((300,), -1 / 300)
    h = x["hidden"].to(h_dt).requires_grad_(True)
    w = x["weight"].to(w_dt).requires_grad_(True)
    out = fused_linear_loss(h, w, x["targets"], coef=coef, token_chunk=8)
    out.loss.backward()
    assert h.grad.dtype == h_dt and w.grad.dtype == w_dt and out.loss.dtype == torch.float32
    h64, w64 = h.detach().double().requires_grad_(True), w.detach().double().requires_grad_(True)
    (fused_logprob_reference(h64, w64, x["targets"])[0] * coef.double()).sum().backward()
    err = (w.grad.double() - w64.grad).abs() / w64.grad.abs().clamp_min(1e-3)
    assert err.max() < (2**-8 if w_dt == torch.bfloat16 else 1e-4)


def test_bad_arguments(inputs):
    x = inputs(5, 4, 9)
    with pytest.raises(ValueError, match="exactly one of loss_fn"):
        fused_linear_loss(**x)
    with pytest.raises(ValueError, match="exactly one of loss_fn"):
        fused_linear_loss(**x, loss_fn=lambda lp, e, r: lp, coef=torch.ones(5))
    with pytest.raises(ValueError, match="one loss per token"):
        fused_linear_loss(**x, loss_fn=lambda lp, e, r: lp.sum())
    with pytest.raises(ValueError, match=r"targets must lie in \[0, V=9\)"):
        fused_linear_loss(x["hidden"], x["weight"], x["targets"] + 9, coef=torch.ones(5))
    with pytest.raises(ValueError, match="coef shape"):
        fused_linear_loss(**x, coef=torch.ones(4))
    with pytest.raises(ValueError, match="temperature"):
        fused_linear_loss(**x, coef=torch.ones(5), temperature=0.0)
    all_ignored = fused_linear_loss(x["hidden"], x["weight"], torch.full((5,), -100), coef=torch.ones(5))
    assert all_ignored.loss.item() == 0.0 and (all_ignored.logprobs == 0).all()


def test_device_path_masks_ignored_tokens(inputs, monkeypatch):
    """The no-sync path for device tensors (forced on CPU): same loss and gradients as dropping the tokens."""
    import reprozoo.kernels.fused_loss as fl

    x, adv, old_lp, mask = _case(inputs, n=20, d=6, v=30, seed=5)
    t = x["targets"].clone()
    t[[0, 9]] = -100
    loss_fn = _ppo(adv, old_lp, mask)
    tau = torch.linspace(0.5, 1.5, 20, dtype=torch.float64)
    grads = []
    for host in (True, False):
        monkeypatch.setattr(fl, "_on_host", lambda _t, host=host: host)
        h = x["hidden"].clone().requires_grad_(True)
        w = x["weight"].clone().requires_grad_(True)
        out = fused_linear_loss(h, w, t, loss_fn, temperature=tau, entropy=True, token_chunk=6)
        out.loss.backward()
        grads.append((out.loss.detach(), out.logprobs, out.entropy, h.grad, w.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    assert (grads[1][3][[0, 9]] == 0).all() and (grads[1][1][[0, 9]] == 0).all()
