"""`kernels.fused_logprob`: input checks, backend choice, output shapes."""

from __future__ import annotations

import pytest
import torch

from kernels import FusedLogprob, fused_logprob


def _x(inputs, **kw):
    return inputs(5, 4, 9, dtype=torch.float32, **kw)


def test_returns_named_tuple_with_leading_shape(inputs):
    x = inputs(6, 4, 9, dtype=torch.float32)
    out = fused_logprob(x["hidden"].reshape(2, 3, 4), x["weight"], x["targets"].reshape(2, 3))
    assert isinstance(out, FusedLogprob) and out.kl is None
    assert out.logprobs.shape == (2, 3) and out.entropy.shape == (2, 3)
    flat = fused_logprob(x["hidden"], x["weight"], x["targets"], backend="reference")
    torch.testing.assert_close(out.logprobs.reshape(-1), flat.logprobs)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda x: x.update(weight=x["weight"][:, :3]), "does not match weight"),
        (lambda x: x.update(targets=x["targets"][:4]), "targets shape"),
        (lambda x: x.update(targets=x["targets"] + 9), r"targets must lie in \[0, V=9\)"),
        (lambda x: x.update(targets=x["targets"] - 9), "targets must lie"),
        (lambda x: x["hidden"].__setitem__((0, 0), float("nan")), "non-finite"),
        (lambda x: x["hidden"].__setitem__((1, 2), float("inf")), "non-finite"),
        (lambda x: x.update(targets=x["targets"].float()), "integer"),
        (lambda x: x.update(weight=x["weight"].double()), "share one floating dtype"),
        (lambda x: x.update(temperature=0.0), "temperature"),
        (lambda x: x.update(temperature=float("nan")), "temperature"),
        (lambda x: x.update(backend="cuda"), "backend must be one of"),
        (lambda x: x.update(kl="k4"), "kl must be one of"),
        (lambda x: x.update(kl="exact"), "needs ref_hidden"),
        (lambda x: x.update(ref_hidden=x["hidden"]), "go together"),
        (lambda x: x.update(ref_logprobs=torch.zeros(4)), "ref_logprobs shape"),
        (lambda x: x.update(ref_logprobs=torch.zeros(5), ref_hidden=x["hidden"], ref_weight=x["weight"]), "either"),
        (lambda x: x.update(ref_hidden=x["hidden"], ref_weight=x["weight"][:8]), "ref_weight"),
        (lambda x: x.update(ref_hidden=x["hidden"], ref_weight=x["weight"], kl="k1"), "needs ref_logprobs"),
    ],
)
def test_bad_input_raises_clear_error(inputs, change, match):
    x = _x(inputs)
    change(x)
    with pytest.raises((ValueError, TypeError), match=match):
        fused_logprob(x.pop("hidden"), x.pop("weight"), x.pop("targets"), **x)


def test_auto_picks_torch_on_cpu(inputs, monkeypatch):
    import kernels.api as api

    seen = []
    monkeypatch.setattr(
        api, "_torch_backend", lambda name: seen.append(name) or (lambda *a: (a[0][:, 0],) * 2 + (None,))
    )
    x = _x(inputs)
    fused_logprob(x["hidden"], x["weight"], x["targets"])
    assert seen == ["torch"]
