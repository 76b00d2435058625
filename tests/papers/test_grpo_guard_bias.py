"""papers.grpo_guard RatioNorm's bias b: per sample (the paper, `bias="sample"`) or one batch scalar (the official
code's `mean(dim=tuple(range(1, log_prob.ndim)))` on a 1-D log-prob, i.e. `mean(dim=())`, `bias="batch"`)."""

from __future__ import annotations

import pytest
import torch

from reprozoo.common.config import parse
from reprozoo.papers.grpo_guard.experiment import PRESETS, Config
from reprozoo.papers.grpo_guard.method import grpo_guard_loss, ratio_norm

pytestmark = pytest.mark.usefixtures("float64_default")


def _step(seed=0):
    g = torch.Generator().manual_seed(seed)
    b, d = 5, 12
    mean_old = torch.randn(b, d, generator=g)
    delta = torch.randn(b, d, generator=g) * torch.linspace(0.01, 0.3, b).view(b, 1)  # drift differs per sample
    logp, logp_old = torch.randn(b, generator=g) * 0.01, torch.randn(b, generator=g) * 0.01
    std, sqrt_dt = torch.full((b,), 0.6), torch.full((b,), 0.3)
    return logp, logp_old, mean_old + delta, mean_old, std, sqrt_dt


def test_sample_bias_is_per_sample_and_batch_bias_is_the_official_scalar():
    logp, logp_old, mean, mean_old, std, sqrt_dt = _step()
    s_bar = 0.3 * 0.6
    per = (mean - mean_old).pow(2).mean(1) / (2 * s_bar**2)
    official = (mean - mean_old).pow(2).mean(dim=tuple(range(1, logp.ndim))) / (2 * s_bar**2)  # the official line
    assert official.ndim == 0 and official == pytest.approx(float(per.mean()))  # torch: dim=() reduces everything
    got_sample = ratio_norm(logp, logp_old, mean, mean_old, std, sqrt_dt, "sample")
    got_batch = ratio_norm(logp, logp_old, mean, mean_old, std, sqrt_dt, "batch")
    torch.testing.assert_close(got_sample, torch.exp((logp - logp_old + per) * s_bar))
    torch.testing.assert_close(got_batch, torch.exp((logp - logp_old + official) * s_bar))
    assert not torch.allclose(got_sample, got_batch)  # they differ when the drift differs between samples
    assert ratio_norm(logp, logp_old, mean, mean_old, std, sqrt_dt) is not None  # the default is the paper's
    torch.testing.assert_close(ratio_norm(logp, logp_old, mean, mean_old, std, sqrt_dt), got_sample)


def test_batch_bias_gradient_couples_the_samples():
    """With a scalar b every sample's loss depends on every other sample's drift; per sample it does not."""
    logp, logp_old, mean, mean_old, std, sqrt_dt = _step(1)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0])
    for bias, coupled in (("sample", False), ("batch", True)):
        m = mean.clone().requires_grad_(True)
        ratio = ratio_norm(logp, logp_old, m, mean_old, std, sqrt_dt, bias)
        (ratio[0] * adv[0]).backward()
        others = m.grad[1:].abs().sum()
        assert (others > 0) == coupled, bias
    loss_b, _ = grpo_guard_loss(logp, logp_old, mean, mean_old, std, sqrt_dt, adv, 1e-3, bias="batch")
    loss_s, _ = grpo_guard_loss(logp, logp_old, mean, mean_old, std, sqrt_dt, adv, 1e-3, bias="sample")
    assert torch.isfinite(loss_b) and torch.isfinite(loss_s)


def test_bias_switch_is_validated(capsys):
    with pytest.raises(ValueError, match="bias"):
        ratio_norm(*_step(), bias="token")
    with pytest.raises(SystemExit):
        parse(Config, PRESETS, ["--preset", "smoke", "--ratio-norm-bias", "token"])
    assert "--ratio-norm-bias" in capsys.readouterr().err
