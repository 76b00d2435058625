"""The paper's experiments on the digits world (MultiColorDigits, `common/worlds/digits.py`).

(a) MultiColorMNIST (Table 1): two MLPs differing only in initialisation, trained with MSE to one-hot on the
    spuriously coloured training set (sp = 1), their OOD accuracies and their output ensemble's over a p sweep,
    for 32 colour features and for the one-colour control.
(b) WiSE-FT: a "pre-trained" MLP (trained on the broad split, where colours carry no label information) and
    its fine-tuned copy (plain cross-entropy on sp = 1), ensembled in weight and output space over α.
(c) BANG: the same fine-tuning with Mixup + label smoothing (and each alone, as ablations), then WiSE-FT;
    the FalseFalseTrue fraction and the over-confidence (max-probability on wrong OOD predictions).

Each seed is one world (train/test split and colour maps) and one set of initialisations.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.config import RunConfig, check_fraction, check_positive, ensure
from common.device import torch_device
from common.progress import track
from common.results import record, select
from common.worlds.digits import N_CLASSES, N_PATCHES, MultiColorDigits, Split
from papers.bang.baselines import cross_entropy, ensemble_accuracy, mlp, mse_to_one_hot
from papers.bang.method import bang_loss, false_false_true, output_ensemble, overconfidence, wise_ft

D_IN = 3 * 24 * 24
FINETUNES = ("wise_ft", "wise_ft+ls", "wise_ft+mixup", "bang")  # fine-tuning variants, then WiSE-FT


@dataclass
class Config(RunConfig):
    """Lin et al. 2024 (spurious feature diversification, WiSE-FT, BANG) on MultiColorDigits."""

    n_test: int = 497
    """Digits held out for the ID / OOD test splits (the other 1797 − n_test train)."""
    hidden: int = 64
    """MLP hidden width (official: 64)."""
    lr: float = 1e-3
    """Adam learning rate of every training run (official: 0.001)."""
    batch_size: int = 64
    """Mini-batch size (official DataLoader: 64)."""
    iters: int = 800
    """(a) training iterations of each of the two MLPs (official: 5001 on 50k MNIST digits)."""
    ps: list[float] = field(default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.9])
    """Distribution shifts p swept; the OOD test colours have correlation 1 − p."""
    p_headline: float = 0.7
    """(a) shift at which claim 1 is checked (the paper's Table 1: p = 0.7)."""
    pretrain_iters: int = 500
    """(b, c) iterations of the "pre-trained" model on the broad split (colours carry no label)."""
    finetune_iters: int = 200
    """(b, c) fine-tuning iterations on the sp = 1 training split, for every fine-tuning variant."""
    alphas: list[float] = field(default_factory=lambda: [round(0.1 * k, 1) for k in range(11)])
    """WiSE-FT mixing weights α (0 = pre-trained, 1 = fine-tuned); must include 0 and 1."""
    p_wise: float = 0.9
    """(b, c) shift at which claims 2-4 are checked."""
    label_smoothing: float = 0.1
    """BANG's label smoothing ε."""
    mixup_alpha: float = 0.2
    """BANG's Mixup: λ ~ Beta(a, a)."""
    threads: int = 1
    """torch CPU threads (1: the machine is shared; more threads thrash under load)."""
    device: str = "cpu"
    """Torch device: cpu, cuda or auto."""

    def validate(self) -> None:
        super().validate()
        check_positive(
            self, "n_test", "hidden", "lr", "batch_size", "iters", "ps", "pretrain_iters", "finetune_iters", "threads"
        )
        ensure(10 <= self.n_test <= 1787, "n_test", f"must lie in [10, 1787], got {self.n_test}")
        check_fraction(self, "ps", "label_smoothing")
        ensure(self.p_headline in self.ps, "p_headline", f"must be one of ps={self.ps}, got {self.p_headline}")
        ensure(self.p_wise in self.ps, "p_wise", f"must be one of ps={self.ps}, got {self.p_wise}")
        check_fraction(self, "alphas", upper_open=False)
        ensure(
            0.0 in self.alphas and 1.0 in self.alphas and len(self.alphas) >= 3,
            "alphas",
            f"must include 0, 1 and an interior value, got {self.alphas}",
        )
        ensure(self.mixup_alpha >= 0, "mixup_alpha", f"must be >= 0, got {self.mixup_alpha}")
        ensure(self.device in ("cpu", "cuda", "auto"), "device", f"must be cpu, cuda or auto, got {self.device!r}")


PRESETS = {
    "smoke": Config(
        preset="smoke", seeds=1, iters=60, ps=[0.7, 0.9], pretrain_iters=60, finetune_iters=30, alphas=[0.0, 0.5, 1.0]
    ),
    "quick": Config(preset="quick", seeds=5),
    # The official MultiColorMNIST run: `--n_restarts 20`, `n_iters = 5001`, batch 64, Adam lr 0.001, p = 0.7;
    # the CLIP / ImageNet half of the paper needs data this repo cannot download (see README).
    "full": Config(
        preset="full",
        seeds=20,
        iters=5001,
        ps=[0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9],
        pretrain_iters=5000,
        finetune_iters=1000,
    ),
}


# --------------------------------------------------------------------------- training plumbing


def _tensors(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(split.flat()).to(device), torch.from_numpy(split.y).to(device)


def _model(cfg: Config, init_seed: int, device: torch.device) -> nn.Module:
    torch.manual_seed(init_seed)
    return mlp(D_IN, cfg.hidden, N_CLASSES).to(device)


def train(
    models: list[nn.Module], x: torch.Tensor, y: torch.Tensor, loss: Callable, iters: int, cfg: Config, data_seed: int
) -> None:
    """Adam on `loss(model, xb, yb)`; every model sees the same mini-batches (epochs of a seeded permutation)."""
    opts = [torch.optim.Adam(m.parameters(), lr=cfg.lr) for m in models]
    gen = torch.Generator().manual_seed(data_seed)
    n, bs = len(x), min(cfg.batch_size, len(x))
    perm, k = torch.randperm(n, generator=gen), 0
    for _ in range(iters):
        if k + bs > n:
            perm, k = torch.randperm(n, generator=gen), 0
        idx = perm[k : k + bs].to(x.device)
        k += bs
        for m, opt in zip(models, opts, strict=True):
            opt.zero_grad()
            loss(m, x[idx], y[idx]).backward()
            opt.step()


@torch.no_grad()
def _out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def _acc(out: torch.Tensor, y: torch.Tensor) -> float:
    return float((out.argmax(-1) == y).float().mean())


# --------------------------------------------------------------------------- (a) diversity of spurious features


def part_a(cfg: Config, seed: int, device: torch.device) -> list[dict]:
    rows = []
    for n_colors in (N_PATCHES, 1):
        world = MultiColorDigits(seed=seed, n_colors=n_colors, n_test=cfg.n_test)
        x, y = _tensors(world.train(1.0), device)
        m1, m2 = _model(cfg, 1000 * seed + 1, device), _model(cfg, 1000 * seed + 2, device)
        train([m1, m2], x, y, lambda m, xb, yb: mse_to_one_hot(m(xb), yb), cfg.iters, cfg, data_seed=seed)
        tests = {"id": world.test(1.0), **{p: world.test(1 - p) for p in cfg.ps}}
        for p, split in tests.items():
            xt, yt = _tensors(split, device)
            o1, o2 = _out(m1, xt), _out(m2, xt)
            a1, a2, ens = _acc(o1, yt), _acc(o2, yt), ensemble_accuracy(o1, o2, yt)
            metric, setting = ("id_acc", {}) if p == "id" else ("ood_acc", {"p": p})
            for method, v in (("mlp_1", a1), ("mlp_2", a2), ("output_ensemble", ens)):
                rows.append(record(method, seed, metric, v, colors=n_colors, **setting))
            if p != "id":
                rows.append(record("output_ensemble", seed, "ensemble_gain", ens - max(a1, a2), colors=n_colors, p=p))
                fft = false_false_true(o1.argmax(-1), o2.argmax(-1), (o1 + o2).argmax(-1), yt)
                rows.append(record("output_ensemble", seed, "false_false_true", fft, colors=n_colors, p=p))
    return rows


# --------------------------------------------------------------------------- (b, c) WiSE-FT and BANG


def _finetune_loss(cfg: Config, variant: str, gen: torch.Generator) -> Callable:
    eps = cfg.label_smoothing if variant in ("wise_ft+ls", "bang") else 0.0
    a = cfg.mixup_alpha if variant in ("wise_ft+mixup", "bang") else 0.0
    if variant == "wise_ft":
        return lambda m, xb, yb: cross_entropy(m(xb), yb)
    return lambda m, xb, yb: bang_loss(m, xb, yb, n_classes=N_CLASSES, eps=eps, mixup_alpha=a, generator=gen)


def _feature_probes(world: MultiColorDigits, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Diagnostics of what a model reads: test digits with label-free colours (sp = 0: the digit alone carries
    the label) and test images in their label colours (sp = 1) with the digit blanked (colours alone)."""
    colour_only = world.test(1.0)
    colour_only.x = colour_only.x.copy()
    colour_only.x[:, :, 8:16, 8:16] = 0.0
    return {"digit_only_acc": _tensors(world.test(0.0), device), "colour_only_acc": _tensors(colour_only, device)}


def part_bc(cfg: Config, seed: int, device: torch.device) -> list[dict]:
    rows = []
    world = MultiColorDigits(seed=seed, n_test=cfg.n_test)
    pre = _model(cfg, 1000 * seed + 3, device)
    train(
        [pre],
        *_tensors(world.train(0.0), device),
        lambda m, xb, yb: cross_entropy(m(xb), yb),
        cfg.pretrain_iters,
        cfg,
        data_seed=seed + 10_000,
    )
    x, y = _tensors(world.train(1.0), device)
    tests = {"id": _tensors(world.test(1.0), device), **{p: _tensors(world.test(1 - p), device) for p in cfg.ps}}
    pre_out = {p: _out(pre, xt) for p, (xt, _) in tests.items()}
    for p in cfg.ps:
        rows.append(record("pre-trained", seed, "overconfidence", overconfidence(pre_out[p], tests[p][1]), p=p))
    probes = _feature_probes(world, device)
    rows += [record("pre-trained", seed, m, _acc(_out(pre, xp), yp)) for m, (xp, yp) in probes.items()]
    student = copy.deepcopy(pre)
    for variant in FINETUNES:
        ft = copy.deepcopy(pre)
        train(
            [ft],
            x,
            y,
            _finetune_loss(cfg, variant, torch.Generator().manual_seed(seed + 20_000)),
            cfg.finetune_iters,
            cfg,
            data_seed=seed + 30_000,
        )
        rows += [record(variant, seed, m, _acc(_out(ft, xp), yp)) for m, (xp, yp) in probes.items()]
        for p in cfg.ps:
            rows.append(
                record(variant, seed, "overconfidence", overconfidence(_out(ft, tests[p][0]), tests[p][1]), p=p)
            )
        ft_out = {p: _out(ft, xt) for p, (xt, _) in tests.items()}
        for step, alpha in enumerate(cfg.alphas):
            student.load_state_dict(wise_ft(pre.state_dict(), ft.state_dict(), alpha))
            for p, (xt, yt) in tests.items():
                metric, setting = ("id_acc", {}) if p == "id" else ("ood_acc", {"p": p})
                w_out = _out(student, xt)
                rows.append(
                    record(variant, seed, metric, _acc(w_out, yt), space="weight", alpha=alpha, step=step, **setting)
                )
                rows.append(
                    record(
                        variant,
                        seed,
                        metric,
                        _acc(output_ensemble(pre_out[p], ft_out[p], alpha), yt),
                        space="output",
                        alpha=alpha,
                        step=step,
                        **setting,
                    )
                )
                if p != "id":
                    fft = false_false_true(pre_out[p].argmax(-1), ft_out[p].argmax(-1), w_out.argmax(-1), yt)
                    rows.append(
                        record(variant, seed, "false_false_true", fft, space="weight", alpha=alpha, step=step, p=p)
                    )
    return rows


def run(cfg: Config) -> list[dict]:
    torch.set_num_threads(cfg.threads)
    device = torch_device(cfg.device)  # type: ignore[arg-type]
    rows: list[dict] = []
    for seed in track(cfg.seed_list(), description="bang seeds"):
        rows += part_a(cfg, seed, device)
        rows += part_bc(cfg, seed, device)
    return rows


# --------------------------------------------------------------------------- figure


def curve(rows: list[dict], **match) -> tuple[list[float], np.ndarray]:
    """(α values, seed-mean values) of an α curve."""
    pts = select(rows, **match)
    alphas = sorted({r["alpha"] for r in pts})
    return alphas, np.array([np.mean([r["value"] for r in pts if r["alpha"] == a]) for a in alphas])


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """Left: OOD accuracy vs α (WiSE-FT and BANG, weight and output space); right: ensemble gain vs p."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    for variant, color in zip(FINETUNES, ("C0", "C2", "C4", "C3"), strict=True):
        for space, style in (("weight", "-o"), ("output", "--")):
            a, v = curve(rows, method=variant, metric="ood_acc", space=space, p=cfg.p_wise)
            ax[0].plot(a, v, style, color=color, ms=3, label=f"{variant} ({space})")
        a, v = curve(rows, method=variant, metric="id_acc", space="weight")
        ax[1].plot(a, v, "-o", color=color, ms=3, label=variant)
    ax[0].set(
        title=f"OOD accuracy vs α (p = {cfg.p_wise})",
        xlabel="α (0 = pre-trained, 1 = fine-tuned)",
        ylabel="OOD accuracy",
    )
    ax[1].set(title="ID accuracy vs α (weight space)", xlabel="α", ylabel="ID accuracy")
    for n_colors in (N_PATCHES, 1):
        g = [select(rows, metric="ensemble_gain", colors=n_colors, p=p) for p in cfg.ps]
        mean = [np.mean([r["value"] for r in gp]) for gp in g]
        sd = [np.std([r["value"] for r in gp]) for gp in g]
        ax[2].errorbar(cfg.ps, mean, yerr=sd, fmt="-o", capsize=3, label=f"{n_colors} colour feature(s)")
    ax[2].axhline(0, color="k", lw=0.5)
    ax[2].set(
        title="output-ensemble gain over the better member (OOD)",
        xlabel="shift p (OOD sp = 1 − p)",
        ylabel="acc(ensemble) − max(acc(mlp_1), acc(mlp_2))",
    )
    for a in ax:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.suptitle(f"MultiColorDigits, mean over {cfg.seeds} seeds")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def table(rows: list[dict], cfg: Config) -> str:
    """The α sweeps (mean over seeds) at p = p_wise: OOD accuracy in weight and output space, FalseFalseTrue."""
    head = "| fine-tuning | quantity | " + " | ".join(f"α={a:g}" for a in cfg.alphas) + " |"
    lines = [
        f"WiSE-FT α sweeps, OOD at p = {cfg.p_wise} (α = 0: pre-trained, 1: fine-tuned), mean of {cfg.seeds} seeds:",
        "",
        head,
        "|---|---|" + "---|" * len(cfg.alphas),
    ]
    for variant in FINETUNES:
        for label, match in (
            ("OOD acc, weight space", dict(metric="ood_acc", space="weight", p=cfg.p_wise)),
            ("OOD acc, output space", dict(metric="ood_acc", space="output", p=cfg.p_wise)),
            ("FalseFalseTrue, weight", dict(metric="false_false_true", space="weight", p=cfg.p_wise)),
            ("ID acc, weight space", dict(metric="id_acc", space="weight")),
        ):
            _, v = curve(rows, method=variant, **match)
            lines.append(f"| {variant} | {label} | " + " | ".join(f"{x:.3f}" for x in v) + " |")
    return "\n".join(lines) + "\n"
