"""papers.bang: WiSE-FT, output ensembles, BANG's loss, the paper's diagnostics, baselines, config and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from reprozoo.common.config import parse
from reprozoo.common.results import record
from reprozoo.papers.bang.baselines import ensemble_accuracy, mlp, mse_to_one_hot
from reprozoo.papers.bang.claims import best_alpha, wise_ft_gain
from reprozoo.papers.bang.experiment import PRESETS, Config, cosine_lr
from reprozoo.papers.bang.method import (
    bang_loss,
    beta_draw,
    false_false_true,
    mixup,
    output_ensemble,
    overconfidence,
    smooth_labels,
    soft_cross_entropy,
    wise_ft,
)

pytestmark = pytest.mark.usefixtures("float64_default")  # hand-computed checks in float64


@pytest.mark.points(2)
def test_wise_ft_interpolates_every_parameter():
    pre = {"w": torch.tensor([[1.0, 2.0]]), "b": torch.tensor([0.0])}
    ft = {"w": torch.tensor([[3.0, -2.0]]), "b": torch.tensor([10.0])}
    mid = wise_ft(pre, ft, 0.25)  # 0.75 θ_pre + 0.25 θ_ft
    torch.testing.assert_close(mid["w"], torch.tensor([[1.5, 1.0]]))
    torch.testing.assert_close(mid["b"], torch.tensor([2.5]))
    torch.testing.assert_close(wise_ft(pre, ft, 0.0)["w"], pre["w"])
    torch.testing.assert_close(wise_ft(pre, ft, 1.0)["b"], ft["b"])
    with pytest.raises(ValueError, match="same parameters"):
        wise_ft(pre, {"w": ft["w"]}, 0.5)


@pytest.mark.points(1)
def test_wise_ft_of_a_linear_model_is_its_output_ensemble():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    mixed = torch.nn.Linear(4, 3)
    mixed.load_state_dict(wise_ft(a.state_dict(), b.state_dict(), 0.3))
    with torch.no_grad():  # linear in θ: weight and output space agree; for an MLP they do not
        torch.testing.assert_close(mixed(x), output_ensemble(a(x), b(x), 0.3))
    deep_a, deep_b = mlp(4, 8, 3), mlp(4, 8, 3)
    deep = mlp(4, 8, 3)
    deep.load_state_dict(wise_ft(deep_a.state_dict(), deep_b.state_dict(), 0.5))
    with torch.no_grad():
        assert not torch.allclose(deep(x), output_ensemble(deep_a(x), deep_b(x), 0.5))


@pytest.mark.points(1)
def test_output_ensemble_by_hand():
    out = output_ensemble(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 4.0]]), 0.25)
    torch.testing.assert_close(out, torch.tensor([[1.5, 1.0]]))


@pytest.mark.points(1)
def test_label_smoothing_and_mixup_by_hand():
    t = smooth_labels(torch.tensor([1, 3]), 4, 0.2)
    torch.testing.assert_close(t, torch.tensor([[0.05, 0.85, 0.05, 0.05], [0.05, 0.05, 0.05, 0.85]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    xm, tm = mixup(x, t, 0.7, torch.tensor([1, 0]))
    torch.testing.assert_close(xm, torch.tensor([[0.7, 0.6], [0.3, 1.4]]))
    torch.testing.assert_close(tm[0], torch.tensor([0.05, 0.61, 0.05, 0.29]))


@pytest.mark.points(1)
def test_soft_cross_entropy_value_and_gradient():
    z = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], requires_grad=True)
    t = torch.tensor([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    logp = np.log(np.exp(z.detach().numpy()) / np.exp(z.detach().numpy()).sum(1, keepdims=True))
    expected = -(t.numpy() * logp).sum(1).mean()
    loss = soft_cross_entropy(z, t)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()  # ∂L/∂z = (softmax(z) − t) / B  (t sums to 1)
    torch.testing.assert_close(z.grad, (torch.softmax(z.detach(), -1) - t) / 2)
    assert torch.autograd.gradcheck(lambda zz: soft_cross_entropy(zz, t), (z.detach().clone().requires_grad_(),))


@pytest.mark.points(2)
def test_bang_loss_matches_hand_mixup_and_smoothing():
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 4)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 1])
    gen = torch.Generator().manual_seed(7)
    loss = bang_loss(model, x, y, n_classes=4, eps=0.1, mixup_alpha=0.4, generator=gen)
    replay = torch.Generator().manual_seed(7)  # replay the same draws by hand
    lam = beta_draw(float(torch.rand(1, generator=replay, dtype=torch.float64)), 0.4)
    perm = torch.randperm(5, generator=replay)
    t = 0.9 * torch.nn.functional.one_hot(y, 4) + 0.1 / 4
    xm, tm = lam * x + (1 - lam) * x[perm], lam * t + (1 - lam) * t[perm]
    expected = -(tm * torch.log_softmax(model(xm), -1)).sum(-1).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()  # the gradient flows to the weights like any loss: compare with the hand loss's
    g = model.weight.grad.clone()
    model.zero_grad()
    expected.backward()
    torch.testing.assert_close(g, model.weight.grad)
    plain = bang_loss(model, x, y, n_classes=4, eps=0.0, mixup_alpha=0.0, generator=gen)
    torch.testing.assert_close(plain, torch.nn.functional.cross_entropy(model(x), y))


@pytest.mark.points(1)
def test_beta_draw_is_the_beta_inverse_cdf():
    assert beta_draw(0.5, 0.2) == pytest.approx(0.5)
    assert beta_draw(0.3, 1.0) == pytest.approx(0.3)  # Beta(1, 1) is uniform
    assert beta_draw(0.01, 0.2) < 1e-6  # small a: λ piles up near 0 and 1


@pytest.mark.points(1)
def test_false_false_true_on_a_hand_made_example():
    y = torch.tensor([0, 1, 2, 3, 4])
    pre = torch.tensor([1, 1, 0, 0, 4])  # wrong on 0, 2, 3
    ft = torch.tensor([2, 0, 1, 3, 4])  # wrong on 0, 1, 2
    mix = torch.tensor([0, 1, 0, 3, 4])  # right on 0, 1, 3, 4
    assert false_false_true(pre, ft, mix, y) == pytest.approx(1 / 5)  # only sample 0


@pytest.mark.points(1)
def test_overconfidence_on_wrong_predictions_only():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]))
    y = torch.tensor([1, 1, 0])  # sample 0 wrong (0.7), sample 1 right, sample 2 wrong (0.6)
    assert overconfidence(logits, y) == pytest.approx(0.65)
    assert np.isnan(overconfidence(logits, torch.tensor([0, 1, 2])))


def test_baselines_by_hand():
    out = torch.tensor([[0.5, 0.0], [1.0, 1.0]])
    assert mse_to_one_hot(out, torch.tensor([0, 1])).item() == pytest.approx((0.25 + 0 + 1 + 0) / 4)
    o1, o2 = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 3.0], [0.0, 1.0]])
    assert ensemble_accuracy(o1, o2, torch.tensor([1, 1])) == pytest.approx(1.0)
    net = mlp(1728, 64, 10)
    assert sum(p.numel() for p in net.parameters()) == 1728 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10


def test_cosine_lr_is_wise_ft_schedule():
    lr = cosine_lr(1e-3, warmup=4, steps=14)  # base·(t+1)/warmup, then ½(1 + cos(π(t − 4)/10))·base
    assert [lr(t) for t in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lr(4) == pytest.approx(1e-3) and lr(9) == pytest.approx(5e-4) and lr(14) == pytest.approx(0.0, abs=1e-12)


def _sweep(world: str, accs: list[list[float]], ffts: list[list[float]], alphas=(0.0, 0.5, 1.0)) -> list[dict]:
    rows = []
    for seed, (acc, fft) in enumerate(zip(accs, ffts, strict=True)):
        for a, v, f in zip(alphas, acc, fft, strict=True):
            at = dict(space="weight", alpha=a, p=0.8, world=world)
            rows += [record("wise_ft", seed, "ood_acc", v, **at), record("wise_ft", seed, "false_false_true", f, **at)]
    return rows


def test_claim_2_quantities_by_hand():
    rows = _sweep("diverse", [[0.6, 0.70, 0.62], [0.5, 0.60, 0.58]], [[0, 0.04, 0], [0, 0.02, 0]])
    g = wise_ft_gain(rows, Config(preset="smoke", alphas=[0.0, 0.5, 1.0]), "diverse")
    assert g["best_alpha"] == 0.5 and g["acc_pre"] == pytest.approx(0.55) and g["acc_ft"] == pytest.approx(0.60)
    assert g["gain"] == pytest.approx(0.05)  # paired: 0.70 − 0.62 and 0.60 − 0.58
    assert g["fft_half"] == pytest.approx(0.03) and g["fft_best"] == pytest.approx(0.03)
    acc = np.array([[0.6, 0.5, 0.9], [0.6, 0.5, 0.7]])
    assert best_alpha([0.0, 0.5, 1.0], acc, interior=False) == 2  # one α for all seeds: highest seed mean
    assert best_alpha([0.0, 0.5, 1.0], acc, interior=True) == 1


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--p-wise", "0.33"),
        ("--alphas", "0.2 0.5"),
        ("--iters", "0"),
        ("--label-smoothing", "1.5"),
        ("--device", "tpu"),
        ("--sp-pre", "1.5"),
        ("--n-finetune", "1295"),
        ("--alphas", "0 0.4 1"),
    ],
)
def test_bad_config_exits_naming_the_field(flag, value, capsys):
    with pytest.raises(SystemExit) as err:
        parse(Config, PRESETS, ["--preset", "smoke", flag, *value.split()])
    assert err.value.code == 2
    assert flag in capsys.readouterr().err


def test_cli_smoke(run_cli, tmp_path):
    run_cli("reprozoo.papers.bang", "--preset", "smoke", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["paper"] == "bang" and summary["preset"] == "smoke"
    assert [c["id"] for c in summary["claims"]] == CLAIMS
    assert (tmp_path / "figure.png").stat().st_size > 0
    assert "WiSE-FT α sweeps" in (tmp_path / "table.md").read_text()
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert {r["method"] for r in rows} >= {"mlp_1", "mlp_2", "output_ensemble", "pre-trained", "wise_ft", "bang"}
    assert {r.get("world") for r in rows} == {None, "diverse", "control"}  # (a) has no world


CLAIMS = [
    "0a-premise-different-spurious-features",
    "0b-premise-balanced-endpoints",
    "0c-premise-fine-tuned-over-confident",
    "1-diversity-ensemble-gain",
    "2-wise-ft-false-false-true",
    "2b-false-false-true-needs-diversity",
    "3-bang-beats-wise-ft",
    "4-overconfidence",
]


KNOWN_FAILS = {  # findings of the committed quick run (see papers/bang/README.md, "Findings")
    "2-wise-ft-false-false-true": "interior-α gain holds, but the endpoints' OOD errors are shared hard digits",
    "2b-false-false-true-needs-diversity": "FalseFalseTrue is ~0.004 in both the diverse world and the control",
}


@pytest.mark.slow
@pytest.mark.parametrize("claim", CLAIMS)
def test_quick_claims(check_quick_claim, claim):
    check_quick_claim("bang", claim, KNOWN_FAILS)
