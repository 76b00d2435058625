"""Reward primitives: Bradley–Terry loss, ensemble aggregation, best-of-n estimator, reward model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from reprozoo.common import reward as R


def test_bradley_terry_hand_computed_and_gradient():
    rc = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    rr = torch.tensor([0.0, 0.5], dtype=torch.float64, requires_grad=True)
    ls = lambda z: math.log(1 / (1 + math.exp(-z)))  # noqa: E731
    assert R.bradley_terry_loss(rc, rr).item() == pytest.approx(-(ls(1.0) + ls(-0.5)) / 2)
    # soft labels + label smoothing: p = (1 − ε) ℓ + ε (1 − ℓ)
    lab = torch.tensor([0.8, 0.0], dtype=torch.float64)
    p = [0.9 * 0.8 + 0.1 * 0.2, 0.1]
    want = -(p[0] * ls(1.0) + (1 - p[0]) * ls(-1.0) + p[1] * ls(-0.5) + (1 - p[1]) * ls(0.5)) / 2
    assert R.bradley_terry_loss(rc, rr, labels=lab, label_smoothing=0.1).item() == pytest.approx(want)
    # centring term η (r⁺ + r⁻)²
    extra = 0.5 * ((1.0 + 0.0) ** 2 + (0.0 + 0.5) ** 2) / 2
    assert R.bradley_terry_loss(rc, rr, eta=0.5).item() == pytest.approx(R.bradley_terry_loss(rc, rr).item() + extra)
    assert torch.autograd.gradcheck(
        lambda a, b: R.bradley_terry_loss(a, b, labels=lab, label_smoothing=0.1, eta=0.3, l2=0.1), (rc, rr)
    )
    with pytest.raises(ValueError):
        R.bradley_terry_loss(rc, rr, label_smoothing=0.7)


def test_aggregations():
    r = torch.tensor([[1.0, 0.0], [2.0, 0.0], [6.0, 3.0]])  # k = 3 members, 2 samples
    assert R.aggregate(r, "mean").tolist() == [3.0, 1.0]
    assert R.aggregate(r, "median").tolist() == [2.0, 0.0]
    assert R.aggregate(r, "min").tolist() == R.aggregate(r, "wco").tolist() == [1.0, 0.0]
    pop = torch.tensor([14 / 3, 2.0])
    assert torch.allclose(R.aggregate(r, "uwo", lam=0.5), torch.tensor([3.0, 1.0]) - 0.5 * pop)
    assert torch.allclose(R.aggregate(r, "uwo", lam=0.5, unbiased=True), torch.tensor([3.0, 1.0]) - 0.5 * pop * 1.5)
    assert torch.allclose(R.aggregate(r, "mean_minus_std", lam=1.0), torch.tensor([3.0, 1.0]) - pop.sqrt())
    assert torch.allclose(R.aggregate(r[:2], "median"), torch.tensor([1.5, 0.0]))
    with pytest.raises(ValueError, match="unknown aggregation"):
        R.aggregate(r, "max")


def test_kl_bon():
    assert R.kl_bon(1) == 0.0
    assert R.kl_bon(64) == pytest.approx(math.log(64) - 63 / 64)
    assert torch.allclose(R.kl_bon(torch.tensor([1.0, 4.0])), torch.tensor([0.0, math.log(4) - 0.75]))


@pytest.mark.parametrize("N,n", [(6, 1), (6, 2), (6, 3), (7, 7), (8, 4)])
def test_bon_estimator_equals_brute_force_subsets(N, n):
    """The unbiased estimator equals the average over all C(N, n) subsets of the target at the proxy-argmax."""
    g = np.random.default_rng(N * 10 + n)
    proxy, target = g.normal(size=(3, N)), g.normal(size=(3, N))
    brute = [
        np.mean([t[max(s, key=lambda i: p[i])] for s in itertools.combinations(range(N), n)])
        for p, t in zip(proxy, target, strict=True)
    ]
    got = R.best_of_n(torch.tensor(proxy), torch.tensor(target), n)
    assert np.allclose(got.numpy(), brute, atol=1e-10)
    w = R.bon_weights(N, n)
    assert w.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("N", [8, 512, 1024])
def test_bon_weights_are_exact_binomial_ratios_summing_to_one(N):
    """Every weight equals the exact ratio C(i − 1, n − 1)/C(N, n) (math.comb), and they sum to 1 within 1e-12."""
    for n in sorted({1, 2, N // 2, N - 1, N}):
        w = R.bon_weights(N, n)
        assert w.dtype == torch.float64
        assert abs(w.sum().item() - 1.0) < 1e-12
        exact = [math.comb(i - 1, n - 1) / math.comb(N, n) for i in range(1, N + 1)]
        assert np.allclose(w.numpy(), exact, rtol=1e-15, atol=0)


def test_bon_estimator_vs_random_subsampling_large_n():
    g = torch.Generator().manual_seed(0)
    proxy, target = torch.randn(1, 300, generator=g), torch.randn(1, 300, generator=g)
    est = R.best_of_n(proxy, target, 32).item()
    draws = [
        target[0, idx[proxy[0, idx].argmax()]].item()
        for idx in (torch.randperm(300, generator=g)[:32] for _ in range(4000))
    ]
    assert est == pytest.approx(float(np.mean(draws)), abs=4 * np.std(draws) / math.sqrt(4000))
    with pytest.raises(ValueError):
        R.bon_weights(10, 11)


def test_reward_model_reads_last_real_token_and_trains():
    rm = R.RewardModel.tiny(12, d_model=16, n_layers=1, seed=0)
    ids = torch.randint(0, 12, (4, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 4 + [0] * 2, [1] * 3 + [0] * 3])
    r = rm(ids, mask)
    assert r.shape == (4,)
    # right padding does not change the reward
    assert torch.allclose(rm(ids[1:2, :4]), r[1:2], atol=1e-5)
    # Bradley–Terry training separates a trivially learnable preference (token 0 at the end wins)
    g = torch.Generator().manual_seed(1)
    a = torch.randint(1, 12, (64, 5), generator=g)
    b = a.clone()
    a[:, -1] = 0
    m = torch.ones_like(a)
    losses = R.train_bradley_terry(rm, a, m, b, m, torch.ones(64), steps=60, batch_size=32, lr=3e-3)
    assert losses[-1] < 0.3 < losses[0]
    assert (R.score(rm, a, m) > R.score(rm, b, m)).float().mean() > 0.9
