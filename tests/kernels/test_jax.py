"""`jax` (lax.scan + custom_vjp) and `pallas` (Pallas forward, interpret=True on CPU) backends; torch ↔ JAX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

jax = pytest.importorskip("jax")
jnp = jax.numpy

from reprozoo.kernels.api import fused_logprob  # noqa: E402
from reprozoo.kernels.jax_backend import fused_logprob_jax  # noqa: E402
from reprozoo.kernels.reference import fused_logprob_reference  # noqa: E402


def _weights(n):
    g = torch.Generator().manual_seed(7)
    return [torch.randn(n, dtype=torch.float64, generator=g) for _ in range(3)]


def _reference(x, temperature):
    """float64 outputs and grads of Σ_k g_k · output_k."""
    leaves = {k: v.double().clone().requires_grad_(True) for k, v in x.items() if v.is_floating_point()}
    out = fused_logprob_reference(
        leaves["hidden"],
        leaves["weight"],
        x["targets"],
        temperature,
        leaves.get("ref_hidden"),
        leaves.get("ref_weight"),
    )
    out = [o for o in out if o is not None]
    loss = sum((o * g).sum() for o, g in zip(out, _weights(len(x["targets"])), strict=False))
    return [o.detach().numpy() for o in out] + [g.numpy() for g in torch.autograd.grad(loss, list(leaves.values()))]


def _jax(x, temperature, **kw):
    j = {k: jnp.asarray(v.numpy()) for k, v in x.items()}
    names = [k for k in ("hidden", "weight", "ref_hidden", "ref_weight") if k in j]
    gs = [jnp.asarray(g.float().numpy()) for g in _weights(len(x["targets"]))]

    def f(*leaves):
        d = dict(zip(names, leaves, strict=True))
        out = fused_logprob_jax(
            d["hidden"], d["weight"], j["targets"], temperature, d.get("ref_hidden"), d.get("ref_weight"), **kw
        )
        out = [o for o in out if o is not None]
        return sum((o * g).sum() for o, g in zip(out, gs, strict=False)), out

    (_, out), grads = jax.jit(jax.value_and_grad(f, argnums=tuple(range(len(names))), has_aux=True))(
        *[j[k] for k in names]
    )
    return [np.asarray(o) for o in out] + [np.asarray(g) for g in grads]


@pytest.mark.parametrize("pallas", [False, True])
@pytest.mark.parametrize(("shape", "temperature", "ref"), [((47, 31, 123), 0.7, True), ((8, 16, 64), 1.0, False)])
def test_jax_matches_reference(inputs, pallas, shape, temperature, ref):
    x = inputs(*shape, dtype=torch.float32, ref=ref, d_ref=shape[1] + 3, scale=4.0)
    expected = _reference(x, temperature)
    got = _jax(x, temperature, vocab_chunk=17, pallas=pallas)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-4)


@pytest.mark.parametrize("pallas", [False, True])
def test_jax_large_logits(inputs, pallas):
    x = inputs(20, 16, 50, dtype=torch.float32, ref=True, scale=1e4)
    j = {k: jnp.asarray(v.numpy()) for k, v in x.items()}
    lp, ent, kl, _ = fused_logprob_jax(
        j["hidden"], j["weight"], j["targets"], 1.0, j["ref_hidden"], j["ref_weight"], vocab_chunk=16, pallas=pallas
    )
    ref = _reference(x, 1.0)
    assert np.isfinite(np.asarray(lp)).all() and np.isfinite(np.asarray(kl)).all()
    assert (np.asarray(lp) <= 0).all()
    np.testing.assert_allclose(np.asarray(lp), ref[0], atol=0.05, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(kl), ref[2], atol=0.05, rtol=1e-4)
    assert (np.asarray(ent) >= -1e-3).all()


@pytest.mark.parametrize("kl", ["k3", "k3_clamped"])
def test_torch_jax_parity_through_public_api(inputs, kl):
    """The same inputs through backend="torch" and backend="auto" with JAX arrays give the same outputs/grads."""
    x = inputs(33, 12, 70, dtype=torch.float32, scale=5.0)
    ref_lp = -torch.rand(33, generator=torch.Generator().manual_seed(1)) * 6
    h = x["hidden"].clone().requires_grad_(True)
    w = x["weight"].clone().requires_grad_(True)
    t_out = fused_logprob(h, w, x["targets"], temperature=1.5, ref_logprobs=ref_lp, kl=kl, backend="torch")
    (t_out.logprobs.sum() + t_out.entropy.sum() + t_out.kl.sum()).backward()

    def f(hj, wj):
        o = fused_logprob(
            hj,
            wj,
            jnp.asarray(x["targets"].numpy()),
            temperature=1.5,
            ref_logprobs=jnp.asarray(ref_lp.numpy()),
            kl=kl,
        )
        return o.logprobs.sum() + o.entropy.sum() + o.kl.sum(), o

    (_, j_out), (gh, gw) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(
        jnp.asarray(x["hidden"].numpy()), jnp.asarray(x["weight"].numpy())
    )
    for a, b in zip(j_out, t_out, strict=True):
        np.testing.assert_allclose(np.asarray(a), b.detach().numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gh), h.grad.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(gw), w.grad.numpy(), atol=1e-4, rtol=1e-4)


def test_jax_api_is_jittable_and_checks_input(inputs):
    x = inputs(6, 4, 9, dtype=torch.float32)
    h, w, t = (jnp.asarray(x[k].numpy()) for k in ("hidden", "weight", "targets"))
    out = jax.jit(lambda a, b, c: fused_logprob(a, b, c, backend="pallas"))(h, w, t)
    assert out.logprobs.shape == (6,) and (np.asarray(out.logprobs) <= 0).all()
    with pytest.raises(ValueError, match="targets must lie"):
        fused_logprob(h, w, t + 9)
    with pytest.raises(TypeError, match="does not take"):
        fused_logprob(h, w, t, backend="torch")


@pytest.mark.parametrize("backend", ["jax", "pallas"])
def test_jax_ignore_index_under_jit(inputs, backend):
    """Under jit: ignore_index rows are exactly 0 (outputs and gradients), other rows match the reference; an
    out-of-range target gives NaN for its own row only (a host check is impossible on tracers)."""
    x = inputs(10, 6, 20, dtype=torch.float32, scale=3.0)
    t = x["targets"].clone()
    t[[1, 7]] = -100
    h, w = jnp.asarray(x["hidden"].numpy()), jnp.asarray(x["weight"].numpy())

    def f(h, w, t):
        o = fused_logprob(h, w, t, backend=backend)
        return (o.logprobs + o.entropy + o.lse).sum(), o

    (_, out), (gh, _) = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(h, w, jnp.asarray(t.numpy()))
    for o in (out.logprobs, out.entropy, out.lse):
        assert (np.asarray(o)[[1, 7]] == 0).all()
    assert (np.asarray(gh)[[1, 7]] == 0).all()
    keep = (t != -100).numpy()
    ref = fused_logprob_reference(x["hidden"][keep].double(), x["weight"].double(), t[keep])
    np.testing.assert_allclose(np.asarray(out.logprobs)[keep], ref[0].numpy(), atol=1e-5, rtol=1e-5)
    bad = t.clone()
    bad[4] = 20
    o = jax.jit(lambda h, w, t: fused_logprob(h, w, t, backend=backend))(h, w, jnp.asarray(bad.numpy()))
    lp = np.asarray(o.logprobs)
    assert np.isnan(lp[4]) and np.isfinite(np.delete(lp, 4)).all() and lp[1] == 0
    with pytest.raises(ValueError, match="targets must lie"):
        fused_logprob(h, w, jnp.asarray(bad.numpy()), backend=backend)
    with pytest.raises(ValueError, match="outside jax.jit"):
        jax.jit(lambda h, w, t: fused_logprob(h, w, t, check_inputs=True))(h, w, jnp.asarray(t.numpy()))


def test_jax_per_token_temperature_entropy_lse_match_torch(inputs):
    x = inputs(12, 6, 40, dtype=torch.float32, scale=4.0)
    tau = torch.linspace(0.05, 3.0, 12)
    t_out = fused_logprob(x["hidden"], x["weight"], x["targets"], temperature=tau, backend="torch")
    j_out = fused_logprob(
        *(jnp.asarray(x[k].numpy()) for k in ("hidden", "weight", "targets")),
        temperature=jnp.asarray(tau.numpy()),
        entropy=False,
    )
    assert j_out.entropy is None
    np.testing.assert_allclose(np.asarray(j_out.logprobs), t_out.logprobs.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(j_out.lse), t_out.lse.numpy(), atol=1e-4, rtol=1e-5)
    t_const = jnp.asarray(x["targets"].numpy())  # concrete targets (range-checked), traced temperature
    lp = jax.jit(lambda h, w, tau: fused_logprob(h, w, t_const, temperature=tau).logprobs)(
        *(jnp.asarray(x[k].numpy()) for k in ("hidden", "weight")), jnp.asarray(tau.numpy())
    )
    np.testing.assert_allclose(np.asarray(lp), t_out.logprobs.numpy(), atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="hidden contains non-finite"):
        fused_logprob(
            jnp.asarray(x["hidden"].numpy()).at[0, 0].set(jnp.nan),
            jnp.asarray(x["weight"].numpy()),
            jnp.asarray(x["targets"].numpy()),
            check_inputs=True,
        )


def test_pallas_tiles_the_weight_across_vocabulary_splits(inputs):
    """Pallas with W tiled into 3 vocabulary splits (the last one partly padding) equals the scan backend."""
    from reprozoo.kernels.jax_backend import _stats_scan
    from reprozoo.kernels.pallas_kernel import stats_pallas

    x = inputs(20, 8, 123, dtype=torch.float32, ref=True, d_ref=5, scale=1e3)
    j = {k: jnp.asarray(v.numpy()) for k, v in x.items()}
    inv_t = jnp.full((20,), 1 / 0.7)
    args = (j["hidden"], j["weight"], j["targets"], inv_t, j["ref_hidden"], j["ref_weight"])
    split = stats_pallas(*args, block_v=16, vocab_split=48)
    scan = _stats_scan(*args, 17, True)
    for a, b in zip(split, scan, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-3, rtol=1e-5)
