"""GAE against a loop, PPO / GRPO losses against hand-computed values, with gradient checks."""

from __future__ import annotations

import math

import pytest
import torch

from reprozoo.common import rl


def gae_loop(r, v, m, gamma, lam):
    B, T = r.shape
    adv = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        L = int(m[b].sum())
        last = 0.0
        for t in reversed(range(L)):
            nv = v[b, t + 1].item() if t + 1 < L else 0.0
            delta = r[b, t].item() + gamma * nv - v[b, t].item()
            last = delta + gamma * lam * last
            adv[b, t] = last
    return adv, (adv + v) * m


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0), (0.99, 0.0)])
def test_gae_matches_loop(gamma, lam):
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g, dtype=torch.float64)
    m = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] + [0] * 5, [1] * 5 + [0]], dtype=torch.float64)
    adv, ret = rl.gae(r, v, m, gamma=gamma, lam=lam)
    ref_adv, ref_ret = gae_loop(r, v, m, gamma, lam)
    assert torch.allclose(adv, ref_adv, atol=1e-12) and torch.allclose(ret, ref_ret, atol=1e-12)


def test_gae_lambda_one_gives_monte_carlo_returns():
    r = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    v = torch.tensor([[0.5, 1.0, 1.5]], dtype=torch.float64)
    _, ret = rl.gae(r, v, torch.ones(1, 3, dtype=torch.float64), gamma=1.0, lam=1.0)
    assert ret.tolist() == [[2.0, 2.0, 2.0]]


def test_kl_penalised_rewards_put_score_on_last_token():
    logp = torch.tensor([[-1.0, -1.0, -1.0], [-0.5, -2.0, -3.0]])
    ref = torch.tensor([[-1.5, -0.5, -1.0], [-0.5, -1.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rew, kl = rl.kl_penalised_rewards(torch.tensor([3.0, 5.0]), logp, ref, mask, beta=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, -0.5, 0.0], [0.0, -1.0, 0.0]]))
    assert torch.allclose(rew, torch.tensor([[-0.05, 0.05, 3.0], [0.0, 5.1, 0.0]]))


def test_ppo_policy_loss_hand_computed_and_gradient():
    logp = torch.tensor([[math.log(1.5), math.log(0.5), math.log(1.1)]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, 3, dtype=torch.float64)
    adv = torch.tensor([[1.0, 1.0, -2.0]], dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.float64)
    loss, st = rl.ppo_policy_loss(logp, old, adv, mask, clip=0.2)
    # ratios 1.5 (A>0 → clipped at 1.2), 0.5 (A>0 → unclipped 0.5), 1.1 (A<0 → 1.1·2)
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3)
    assert st["clipfrac"].item() == pytest.approx(2 / 3)
    loss.backward()
    # d/dlogp of −A·ρ is −A·ρ where unclipped, 0 where clipped
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -0.5 / 3, 2.2 / 3]], dtype=torch.float64))
    assert torch.autograd.gradcheck(
        lambda lp: rl.ppo_policy_loss(lp, old, adv, mask)[0],
        (torch.tensor([[0.1, -0.3, 0.05]], dtype=torch.float64, requires_grad=True),),
    )


def test_ppo_value_loss_hand_computed():
    v = torch.tensor([[1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
    ret = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
    m = torch.ones(1, 2, dtype=torch.float64)
    # token 1: unclipped (1−2)² = 1, clipped v = 0.7 → 1.69 → max 1.69; token 2: 1
    assert rl.ppo_value_loss(v, old, ret, m, clip=0.2).item() == pytest.approx(0.5 * (1.69 + 1.0) / 2)
    assert rl.ppo_value_loss(v, old, ret, m, clip=None).item() == pytest.approx(0.5 * (1.0 + 1.0) / 2)
    assert torch.autograd.gradcheck(lambda x: rl.ppo_value_loss(x, old, ret, m, clip=None), (v,))


def test_kl_controllers():
    c = rl.AdaptiveKLController(0.1, target=6.0, horizon=100)
    assert c.update(12.0, 10) == pytest.approx(0.1 * (1 + 0.2 * 0.1))
    assert c.update(6.0, 10) == pytest.approx(0.1 * 1.02)
    assert rl.FixedKLController(0.05).update(100.0, 10) == 0.05


def test_grpo_advantages():
    r = torch.tensor([[1.0, 2.0, 3.0, 10.0]])
    std = torch.tensor([1.0, 2.0, 3.0, 10.0]).std()
    assert torch.allclose(rl.grpo_advantages(r, eps=0), (r - 4.0) / std)
    assert torch.allclose(rl.grpo_advantages(r, center="median", normalize=False), r - 2.0)  # lower median
    assert torch.allclose(rl.grpo_advantages(r, normalize=False), r - 4.0)
    with pytest.raises(ValueError):
        rl.grpo_advantages(r, center="mode")


def test_grpo_advantages_group_of_one_is_zero_not_nan():
    """One response per prompt carries no group-relative signal: advantage 0 (TRL), never NaN."""
    r = torch.tensor([[0.3], [-2.0]])
    for center in ("mean", "median"):
        adv = rl.grpo_advantages(r, center=center)
        assert torch.equal(adv, torch.zeros_like(r))


def test_grpo_loss_hand_computed_and_gradient():
    logp = torch.tensor([[math.log(1.3), 0.0], [math.log(0.7), math.log(0.9)]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(2, 2, dtype=torch.float64)
    ref = torch.zeros(2, 2, dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    k3 = lambda rho: 1 / rho - 1 + math.log(rho)  # noqa: E731   (r = π_ref/π = 1/ρ)
    seq0 = (-1.2 + 0.1 * k3(1.3) + (-1.0)) / 2
    seq1 = 0.8 + 0.1 * k3(0.7)
    got = rl.grpo_loss(logp, old, ref, adv, mask, clip=0.2, beta=0.1)
    assert got.item() == pytest.approx((seq0 + seq1) / 2)
    tok = rl.grpo_loss(logp, old, ref, adv, mask, clip=0.2, beta=0.1, aggregation="token")
    assert tok.item() == pytest.approx((-1.2 + 0.1 * k3(1.3) - 1.0 + seq1) / 3)
    x = torch.tensor([[0.05, -0.1], [0.02, 0.1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda lp: rl.grpo_loss(lp, old, ref, adv, mask, beta=0.1), (x,))
    # clip-higher (DAPO): ρ = 1.3 with A > 0 is clipped at 1.28, not 1.2; the lower side stays at 0.8
    high = rl.grpo_loss(logp, old, None, adv, mask, clip=0.2, clip_high=0.28, beta=0.0)
    assert high.item() == pytest.approx(((-1.28 - 1.0) / 2 + 0.8) / 2)
