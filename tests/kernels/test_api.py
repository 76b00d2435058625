"""`reprozoo.kernels.api.fused_logprob`: input checks, explicit KL, ignored tokens, reductions, per-token temperature,
optional entropy, mixed dtypes, logsumexp, k3 clamp (torch backends; JAX in test_jax.py)."""

from __future__ import annotations

import math

import pytest
import torch

from reprozoo.kernels.api import K3_CLAMP, FusedLogprob, fused_logprob, kl_estimator
from reprozoo.kernels.reference import fused_logprob_reference


def _x(inputs, **kw):
    return inputs(5, 4, 9, dtype=torch.float32, **kw)


def test_returns_named_tuple_with_leading_shape(inputs):
    x = inputs(6, 4, 9, dtype=torch.float32)
    out = fused_logprob(x["hidden"].reshape(2, 3, 4), x["weight"], x["targets"].reshape(2, 3))
    assert isinstance(out, FusedLogprob) and out.kl is None
    assert out.logprobs.shape == (2, 3) and out.entropy.shape == (2, 3) and out.lse.shape == (2, 3)
    flat = fused_logprob(x["hidden"], x["weight"], x["targets"], backend="reference")
    torch.testing.assert_close(out.logprobs.reshape(-1), flat.logprobs)


def _ref(x):
    return {"ref_hidden": x["hidden"] + 0.5, "ref_weight": x["weight"]}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda x: x.update(weight=x["weight"][:, :3]), "does not match weight"),
        (lambda x: x.update(targets=x["targets"][:4]), "targets shape"),
        (lambda x: x.update(targets=x["targets"] + 9), r"targets must lie in \[0, V=9\)"),
        (lambda x: x.update(targets=x["targets"] - 9), "targets must lie"),
        (lambda x: x.update(targets=x["targets"].float()), "integer"),
        (lambda x: x.update(weight=x["weight"].int()), "floating"),
        (lambda x: x.update(temperature=0.0), "temperature"),
        (lambda x: x.update(temperature=float("nan")), "temperature"),
        (lambda x: x.update(temperature=torch.ones(4)), "temperature must be a number or an array shaped"),
        (lambda x: x.update(temperature=torch.tensor([1.0, 1, 0, 1, 1])), "temperature must be finite and > 0"),
        (lambda x: x.update(backend="cuda"), "backend must be one of"),
        (lambda x: x.update(reduction="max"), "reduction must be one of"),
        (lambda x: x.update(kl="k4"), "kl must be None or one of"),
        # the KL mode is explicit: a reference without kl, or a kl without its reference, is rejected
        (lambda x: x.update(_ref(x)), "reference was given without kl"),
        (lambda x: x.update(ref_logprobs=torch.zeros(5)), "reference was given without kl"),
        (lambda x: x.update(kl="exact"), "needs ref_hidden and ref_weight"),
        (lambda x: x.update(kl="k3"), "estimator from ref_logprobs"),
        (lambda x: x.update(_ref(x), kl="k3"), "estimator from ref_logprobs"),
        (lambda x: x.update(_ref(x), kl="k1"), "estimator from ref_logprobs"),
        (lambda x: x.update(ref_logprobs=torch.zeros(5), kl="exact"), "needs ref_hidden"),
        (lambda x: x.update(_ref(x), ref_logprobs=torch.zeros(5), kl="exact"), "no ref_logprobs"),
        (lambda x: x.update(_ref(x), ref_logprobs=torch.zeros(5), kl="k3"), "no ref_hidden"),
        (lambda x: x.update(ref_hidden=x["hidden"], kl="exact"), "go together"),
        (lambda x: x.update(ref_logprobs=torch.zeros(4), kl="k3"), "ref_logprobs shape"),
        (lambda x: x.update(ref_hidden=x["hidden"], ref_weight=x["weight"][:8], kl="exact"), "ref_weight"),
    ],
)
def test_bad_input_raises_clear_error(inputs, change, match):
    x = _x(inputs)
    change(x)
    with pytest.raises((ValueError, TypeError), match=match):
        fused_logprob(x.pop("hidden"), x.pop("weight"), x.pop("targets"), **x)


def test_exact_kl_only_when_asked(inputs):
    """The old default kl="k3" with reference states silently returned the exact KL; now the mode is named."""
    x = _x(inputs, ref=True)
    exact = fused_logprob(**x, kl="exact").kl
    ref = fused_logprob_reference(
        x["hidden"].double(),
        x["weight"].double(),
        x["targets"],
        1.0,
        x["ref_hidden"].double(),
        x["ref_weight"].double(),
    )
    torch.testing.assert_close(exact.double(), ref[2], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="without kl"):
        fused_logprob(**x)


@pytest.mark.parametrize("name", ["hidden", "weight", "ref_logprobs", "ref_hidden", "ref_weight", "temperature"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_check_inputs_covers_every_input(inputs, name, bad):
    x = _x(inputs, ref=True)
    if name == "ref_logprobs":
        x = {k: x[k] for k in ("hidden", "weight", "targets")} | {"ref_logprobs": -torch.rand(5), "kl": "k3"}
    else:
        x["kl"] = "exact"
    if name == "temperature":
        x["temperature"] = torch.ones(5)
    x[name].view(-1)[1] = bad
    with pytest.raises(ValueError, match=f"{name}" if name != "temperature" or bad != bad else "temperature"):
        fused_logprob(**x, check_inputs=True)
    if name != "temperature":  # default path: the finite check is opt-in (it reads every input)
        out = fused_logprob(**x)
        if name in ("hidden", "weight"):
            assert not torch.isfinite(out.logprobs).all()


def test_k3_is_textbook_and_matches_float64():
    """kl="k3" is eˣ − x − 1 with no clamp (TRL's GRPO): against a float64 evaluation, values and gradient, including
    gaps where the clamped variant would have cut it (x = 3, −15)."""
    lp64 = torch.tensor([-1.0, -1.0, -4.0, -1.0, -16.0, -0.5], dtype=torch.float64)
    ref64 = torch.tensor([-2.0, 0.0, -1.0, -16.0, -1.0, -0.5], dtype=torch.float64)
    x64 = ref64 - lp64
    lp = lp64.float().requires_grad_(True)
    k3 = kl_estimator(lp, ref64.float(), "k3")
    torch.testing.assert_close(k3.double(), torch.exp(x64) - x64 - 1, rtol=1e-6, atol=1e-7)
    assert k3[2].item() > K3_CLAMP and k3[3].item() > K3_CLAMP  # beyond the clamp's bound, not cut
    k3.sum().backward()
    torch.testing.assert_close(lp.grad.double(), -(torch.exp(x64) - 1), rtol=1e-6, atol=1e-7)  # ∂k3/∂log p
    assert torch.isinf(kl_estimator(torch.tensor([-481.0]), torch.tensor([-1.0]), "k3")).all()  # fp32 overflow


def test_k3_clamped_is_verl_low_var_kl():
    """kl="k3_clamped": x to ±20, then k3 ≤ 10 (verl's `low_var_kl`), finite gradients at any gap."""
    lp = torch.tensor([-1.0, -1.0, -481.0, -1.0, -3.0], dtype=torch.float32, requires_grad=True)
    ref = torch.tensor([-2.0, 0.0, -1.0, -481.0, -1.0])
    k3 = kl_estimator(lp, ref, "k3_clamped")
    x = ref - lp.detach()
    assert k3[0].item() == pytest.approx(math.exp(-1) + 1 - 1, rel=1e-6)  # x = −1: e⁻¹ − (−1) − 1
    assert k3[1].item() == pytest.approx(math.e - 2, rel=1e-6)  # x = 1
    assert k3[2].item() == K3_CLAMP and k3[3].item() == K3_CLAMP  # x = +480 and −480
    assert k3[4].item() == pytest.approx(min(math.exp(2) - 3, K3_CLAMP), rel=1e-6)
    k3.sum().backward()
    assert torch.isfinite(lp.grad).all() and lp.grad[2] == 0 and lp.grad[3] == 0
    torch.testing.assert_close(lp.grad[:2], -(x[:2].exp() - 1))  # ∂k3/∂log p = −(eˣ − 1)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_ignore_index_rows_are_exactly_zero(inputs, backend):
    x = inputs(12, 6, 20, ref=True, scale=3.0)
    t = x["targets"].clone()
    t[[0, 5, 11]] = -100
    h = x["hidden"].clone().requires_grad_(True)
    w = x["weight"].clone().requires_grad_(True)
    out = fused_logprob(h, w, t, ref_hidden=x["ref_hidden"], ref_weight=x["ref_weight"], kl="exact", backend=backend)
    for o in (out.logprobs, out.entropy, out.kl, out.lse):
        assert (o[[0, 5, 11]] == 0).all()
    (out.logprobs.sum() + out.entropy.sum() + out.kl.sum() + out.lse.sum()).backward()
    assert (h.grad[[0, 5, 11]] == 0).all()
    keep = t != -100
    h2 = x["hidden"][keep].clone().requires_grad_(True)
    w2 = x["weight"].clone().requires_grad_(True)
    sub = fused_logprob(
        h2, w2, t[keep], ref_hidden=x["ref_hidden"][keep], ref_weight=x["ref_weight"], kl="exact", backend=backend
    )
    (sub.logprobs.sum() + sub.entropy.sum() + sub.kl.sum() + sub.lse.sum()).backward()
    torch.testing.assert_close(out.logprobs[keep], sub.logprobs)
    torch.testing.assert_close(h.grad[keep], h2.grad)
    torch.testing.assert_close(w.grad, w2.grad)
    # a custom ignore_index, and k-estimators are 0 at ignored tokens too
    t2 = torch.where(keep, t, 7)
    ref_lp = -torch.rand(12, dtype=torch.float64)
    o2 = fused_logprob(x["hidden"], x["weight"], t2, ref_logprobs=ref_lp, kl="k2", ignore_index=7, backend=backend)
    assert (o2.kl[t2 == 7] == 0).all() and (o2.kl[t2 != 7] > 0).all()


def test_reductions(inputs):
    x = inputs(10, 6, 20, ref=True)
    t = x["targets"].clone()
    t[:3] = -100
    per = fused_logprob(x["hidden"], x["weight"], t)
    for name in ("logprobs", "entropy", "lse"):
        s = fused_logprob(x["hidden"], x["weight"], t, reduction="sum")
        m = fused_logprob(x["hidden"], x["weight"], t, reduction="mean")
        torch.testing.assert_close(getattr(s, name), getattr(per, name).sum())
        torch.testing.assert_close(getattr(m, name), getattr(per, name).sum() / 7)
    none = fused_logprob(x["hidden"], x["weight"], torch.full_like(t, -100), reduction="mean")
    assert none.logprobs.item() == 0.0


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_per_token_temperature_matches_scalar_runs(inputs, backend):
    """τ shaped like targets gives, token by token, what a scalar τ gives (outputs and gradients)."""
    x = inputs(8, 5, 30, ref=True, scale=4.0)
    tau = torch.tensor([0.5, 1.0, 2.0, 0.5, 3.0, 1.0, 0.05, 2.0], dtype=torch.float64)
    h = x["hidden"].clone().requires_grad_(True)
    out = fused_logprob(
        h,
        x["weight"],
        x["targets"],
        temperature=tau,
        ref_hidden=x["ref_hidden"],
        ref_weight=x["ref_weight"],
        kl="exact",
        backend=backend,
    )
    (out.logprobs.sum() + out.entropy.sum() + out.kl.sum()).backward()
    for value in tau.unique():
        rows = tau == value
        hs = x["hidden"][rows].clone().requires_grad_(True)
        o = fused_logprob(
            hs,
            x["weight"],
            x["targets"][rows],
            temperature=float(value),
            ref_hidden=x["ref_hidden"][rows],
            ref_weight=x["ref_weight"],
            kl="exact",
            backend=backend,
        )
        (o.logprobs.sum() + o.entropy.sum() + o.kl.sum()).backward()
        for a, b in zip(out, o, strict=True):
            torch.testing.assert_close(a[rows], b, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(h.grad[rows], hs.grad, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_entropy_false_skips_it(inputs, backend):
    x = inputs(9, 6, 40, scale=3.0)
    ws = [x["weight"].clone().requires_grad_(True) for _ in range(2)]
    a = fused_logprob(x["hidden"], ws[0], x["targets"], entropy=False, backend=backend)
    b = fused_logprob(x["hidden"], ws[1], x["targets"], backend=backend)
    assert a.entropy is None and b.entropy is not None
    torch.testing.assert_close(a.logprobs, b.logprobs)
    torch.testing.assert_close(a.lse, b.lse)
    (a.logprobs.sum() + a.lse.sum()).backward()
    (b.logprobs.sum() + b.lse.sum()).backward()
    torch.testing.assert_close(ws[0].grad, ws[1].grad)


def test_lse_matches_logsumexp_and_its_gradient(inputs):
    x = inputs(9, 6, 40, scale=3.0)
    w = x["weight"].clone().requires_grad_(True)
    lse = fused_logprob(x["hidden"], w, x["targets"], temperature=0.7, backend="torch").lse
    z = x["hidden"] @ w.T / 0.7
    torch.testing.assert_close(lse, torch.logsumexp(z, -1))
    (g,) = torch.autograd.grad((lse**2).sum(), [w])  # a z-loss
    (g_ref,) = torch.autograd.grad((torch.logsumexp(z, -1) ** 2).sum(), [w])
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize(("h_dt", "w_dt"), [(torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16)])
def test_mixed_dtypes(inputs, backend, h_dt, w_dt):
    """bf16 / fp32 mixed inputs compute in fp32 and give each gradient in its input's dtype."""
    x = inputs(16, 8, 50, dtype=torch.float32, scale=3.0)
    h = x["hidden"].to(h_dt).requires_grad_(True)
    w = x["weight"].to(w_dt).requires_grad_(True)
    out = fused_logprob(h, w, x["targets"], backend=backend)
    assert out.logprobs.dtype == torch.float32
    (out.logprobs.sum() + out.entropy.sum()).backward()
    assert h.grad.dtype == h_dt and w.grad.dtype == w_dt
    h64 = h.detach().double().requires_grad_(True)
    w64 = w.detach().double().requires_grad_(True)
    ref = fused_logprob_reference(h64, w64, x["targets"])
    (ref[0].sum() + ref[1].sum()).backward()
    torch.testing.assert_close(out.logprobs.double(), ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w.grad.double(), w64.grad, atol=1e-2, rtol=1e-2)  # one bf16 rounding when w_dt = bf16
    torch.testing.assert_close(h.grad.double(), h64.grad, atol=2e-2, rtol=1e-2)


def test_auto_picks_torch_on_cpu(inputs, monkeypatch):
    import reprozoo.kernels.api as api

    seen = []

    def fake(name):
        seen.append(name)
        return lambda h, *a, **k: (h[:, 0], h[:, 0], None, h[:, 0])

    monkeypatch.setattr(api, "_torch_backend", fake)
    x = _x(inputs)
    fused_logprob(x["hidden"], x["weight"], x["targets"])
    assert seen == ["torch"]


def test_device_path_masks_without_host_reads(inputs, monkeypatch):
    """The no-sync path used for device data (here forced on CPU): ignored rows exactly 0 with zero gradients,
    an out-of-range target NaN in its own row only, no ValueError."""
    import reprozoo.kernels.api as api

    monkeypatch.setattr(api, "_on_host", lambda x: False)
    x = inputs(8, 5, 20, scale=3.0)
    t = x["targets"].clone()
    t[2], t[5] = -100, 25
    h = x["hidden"].clone().requires_grad_(True)
    out = fused_logprob(h, x["weight"], t, ref_logprobs=-torch.rand(8, dtype=torch.float64), kl="k3")
    assert (out.logprobs[2] == 0) and (out.kl[2] == 0) and (out.entropy[2] == 0)
    assert torch.isnan(out.logprobs[5]) and torch.isnan(out.kl[5])
    ok = torch.tensor([i not in (2, 5) for i in range(8)])
    assert torch.isfinite(out.logprobs[ok]).all()
    out.logprobs[ok].sum().backward()
    assert (h.grad[[2, 5]] == 0).all()
    ref = fused_logprob_reference(x["hidden"], x["weight"], torch.where(ok, t, 0))[0]
    torch.testing.assert_close(out.logprobs[ok], ref[ok])
