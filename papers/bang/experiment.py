"""The paper's experiments on the digits world (MultiColorDigits, `common/worlds/digits.py`).

(a) MultiColorMNIST (Table 1): two MLPs differing only in initialisation, trained with MSE to one-hot on the
    spuriously coloured training set (sp = 1), their OOD accuracies and their output ensemble's over a p sweep,
    for 32 colour features and for the one-colour control.
(b) WiSE-FT, in two worlds that differ only in the pre-training data:
    - `diverse` (the paper's premise): the "pre-trained" MLP learns the digit plus its OWN spurious features, patch
      group A (pre-training digits with A correlated, B random), as zero-shot CLIP holds its own; fine-tuning uses
      the other group B on disjoint digits (B correlated, A random), as ImageNet brings its own;
    - `control` (no diversity): the pre-trained MLP is colour-blind (pre-training colours random), so the only
      spurious features are the fine-tuned model's; there is nothing to diversify.
    Fine-tuning is gentle, in the WiSE-FT manner (AdamW, small lr, warm-up + cosine, grad-clip 1, few epochs);
    the endpoints are ensembled in weight and output space over α.
(c) BANG: the same fine-tuning with Mixup + label smoothing (and each alone, as ablations), then WiSE-FT;
    the FalseFalseTrue fraction and the over-confidence (max-probability on wrong OOD predictions).

Each seed is one world (splits and colour maps) and one set of initialisations; both (b) worlds of a seed share
the fine-tuning data, the test data and the initialisation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reprozoo.common import checkpoint
from reprozoo.common.config import ConfigError, RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.device import torch_device
from reprozoo.common.progress import track
from reprozoo.common.results import record, select
from reprozoo.common.worlds.digits import (
    BLOCK,
    GROUPS,
    N_CLASSES,
    N_PATCHES,
    MultiColorDigits,
    Split,
    canvas,
    colour_indices,
    group_sp,
    load_digits,
    paint,
)
from reprozoo.papers.bang.baselines import cross_entropy, ensemble_accuracy, mlp, mse_to_one_hot
from reprozoo.papers.bang.method import bang_loss, false_false_true, output_ensemble, overconfidence, wise_ft

D_IN = 3 * 24 * 24
FINETUNES = ("wise_ft", "wise_ft+ls", "wise_ft+mixup", "bang")  # fine-tuning variants, then WiSE-FT
WORLDS = ("diverse", "control")  # (b, c): pre-trained endpoint with its own spurious group A / colour-blind


@dataclass
class Config(RunConfig):
    """Lin et al. 2024 (spurious feature diversification, WiSE-FT, BANG) on MultiColorDigits."""

    n_test: int = 497
    """Digits held out for the ID / OOD test splits (the other 1797 − n_test train)."""
    n_finetune: int = 500
    """(b, c) training digits reserved for fine-tuning; the rest of the training digits pre-train (disjoint)."""
    hidden: int = 64
    """MLP hidden width (official: 64)."""
    lr: float = 1e-3
    """Adam learning rate of (a) and of pre-training (official MultiColorMNIST: 0.001)."""
    batch_size: int = 64
    """Mini-batch size of every run (official DataLoader: 64)."""
    iters: int = 800
    """(a) training iterations of each of the two MLPs (official: 5001 on 50k MNIST digits)."""
    ps: list[float] = field(default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.9])
    """Distribution shifts p swept; the OOD test colours have correlation 1 − p on every patch."""
    p_headline: float = 0.7
    """(a) shift at which claim 1 is checked (the paper's Table 1: p = 0.7)."""
    pretrain_iters: int = 500
    """(b, c) Adam iterations of the "pre-trained" model on the pre-training digits."""
    sp_pre: float = 0.2
    """(b, c) diverse world: correlation of patch group A in the pre-training data (group B random); weak, so
    the pre-trained endpoint also reads the digit."""
    pretrain_loss: str = "ce_ts"
    """(b, c) pre-training loss: ce_ts (cross-entropy, then temperature scaling fitted on held-out pre-training
    digits and folded into the last layer, as CLIP learns its logit scale: calibration is learned, not fixed),
    ce (cross-entropy alone) or mse (v1: MSE to one-hot, whose outputs cap the softmax at ≈ 0.23 by construction)."""
    n_calib: int = 160
    """(b, c) ce_ts: pre-training digits held out (not trained on) to fit the temperature."""
    n_marginal: int = 10
    """Random recolourings (sp = 0) averaged for the colour-marginal prediction of the colour-driven-error probe."""
    sp_ft: float = 1.0
    """(b, c) correlation of patch group B in the fine-tuning data (group A random), both worlds."""
    finetune_lr: float = 3e-4
    """(b, c) AdamW peak learning rate of fine-tuning (0.3 x pre-training's; WiSE-FT: 3e-5 for CLIP)."""
    finetune_epochs: int = 30
    """(b, c) fine-tuning epochs over the 500 fine-tuning digits: 240 steps (WiSE-FT: 10 epochs of ImageNet)."""
    weight_decay: float = 0.1
    """(b, c) AdamW weight decay of fine-tuning (WiSE-FT `--wd` default 0.1)."""
    warmup: int = 10
    """(b, c) linear warm-up steps before the cosine decay of the fine-tuning lr (WiSE-FT: 500 of ≈ 25k)."""
    clip: float = 1.0
    """(b, c) gradient-norm clipping of fine-tuning (WiSE-FT: 1.0)."""
    alphas: list[float] = field(default_factory=lambda: [round(0.1 * k, 1) for k in range(11)])
    """WiSE-FT mixing weights α (0 = pre-trained, 1 = fine-tuned); must include 0, 0.5 and 1."""
    p_wise: float = 0.9
    """(b, c) shift at which claims 2-4 and the premises are checked (v2: 0.9, where each patch group's colours
    point to a wrong label on most OOD images; fixed before the evaluation run, see README "Pre-registration v2")."""
    label_smoothing: float = 0.1
    """BANG's label smoothing ε."""
    mixup_alpha: float = 0.2
    """BANG's Mixup: λ ~ Beta(a, a)."""
    threads: int = 1
    """torch CPU threads (1: the machine is shared; more threads thrash under load)."""
    device: str = "cpu"
    """Torch device: cpu, cuda or auto."""
    model: str = ""
    """CLIP model (transformers CLIPModel: hub id or save_pretrained folder) for the paper's ImageNet experiment
    (papers/bang/clip.py); empty: the digits world (parts a, b, c)."""
    dataset: str = ""
    """CLIP path: the ID image-classification dataset (hub id[:config], save_to_disk folder or data file) with
    `image` and `label` columns; fine-tuned on --train-split, evaluated on --eval-split."""
    train_split: str = "train"
    """CLIP path: split of --dataset that fine-tunes."""
    eval_split: str = "validation"
    """CLIP path: split of --dataset that is the ID test set."""
    shifts: tuple[str, ...] = ()
    """CLIP path: OOD test sets "<name>=<source>" (hub id[:config], save_to_disk folder or data file; one split),
    each with `image` and a `label` column in --dataset's label space."""
    classnames: str = ""
    """CLIP path: a file of class names, one per line in label order (default: the label feature's names)."""
    templates: str = ""
    """CLIP path: a file of zero-shot prompt templates, one per line with {} for the class name (default: "a photo
    of a {}."; the paper's run: WiSE-FT's 80 openai_imagenet_template prompts)."""
    finetunes: tuple[str, ...] = FINETUNES
    """CLIP path: fine-tuning variants, each followed by WiSE-FT: wise_ft (cross-entropy), wise_ft+ls, wise_ft+mixup,
    bang (Mixup + label smoothing)."""
    clip_lr: float = 3e-5
    """CLIP path: AdamW peak learning rate (WiSE-FT `--lr 3e-5`)."""
    clip_batch: int = 512
    """CLIP path: fine-tuning batch size (WiSE-FT `--batch-size 512`)."""
    clip_epochs: int = 10
    """CLIP path: fine-tuning epochs over the training split (WiSE-FT `--epochs 10`)."""
    clip_warmup: int = 500
    """CLIP path: linear warm-up steps of the cosine schedule (WiSE-FT `--warmup_length 500`)."""
    eval_batch: int = 256
    """CLIP path: evaluation batch size."""
    max_steps: int = 0
    """Cap on the fine-tuning steps of every variant (CLIP path). 0: no cap. A capped run's claims are UNTESTED."""
    max_samples: int = 0
    """Cap on the images of every evaluation set (CLIP path). 0: no cap. A capped run's claims are UNTESTED."""

    def validate(self) -> None:
        super().validate()
        if self.model:
            self.validate_clip()
            return
        check_positive(
            self,
            "n_test",
            "n_finetune",
            "hidden",
            "lr",
            "batch_size",
            "iters",
            "ps",
            "pretrain_iters",
            "finetune_lr",
            "finetune_epochs",
            "clip",
            "threads",
            "n_calib",
            "n_marginal",
        )
        ensure(10 <= self.n_test <= 1787, "n_test", f"must lie in [10, 1787], got {self.n_test}")
        ensure(
            10 <= self.n_finetune <= 1787 - self.n_test,
            "n_finetune",
            f"must lie in [10, {1787 - self.n_test}] (the pre-training digits need >= 10), got {self.n_finetune}",
        )
        check_fraction(self, "ps", "label_smoothing")
        check_fraction(self, "sp_pre", "sp_ft", upper_open=False)
        ensure(
            self.pretrain_loss in ("ce_ts", "ce", "mse"),
            "pretrain_loss",
            f"must be ce_ts, ce or mse, got {self.pretrain_loss!r}",
        )
        ensure(
            10 <= self.n_calib <= 1787 - self.n_test - self.n_finetune - 10,
            "n_calib",
            f"must lie in [10, {1787 - self.n_test - self.n_finetune - 10}] (held out of the pre-training digits), "
            f"got {self.n_calib}",
        )
        ensure(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        ensure(self.warmup >= 0, "warmup", f"must be >= 0, got {self.warmup}")
        ensure(self.p_headline in self.ps, "p_headline", f"must be one of ps={self.ps}, got {self.p_headline}")
        ensure(self.p_wise in self.ps, "p_wise", f"must be one of ps={self.ps}, got {self.p_wise}")
        check_fraction(self, "alphas", upper_open=False)
        ensure(
            {0.0, 0.5, 1.0} <= set(self.alphas),
            "alphas",
            f"must include 0, 0.5 and 1, got {self.alphas}",
        )
        ensure(self.mixup_alpha >= 0, "mixup_alpha", f"must be >= 0, got {self.mixup_alpha}")
        ensure(self.device in ("cpu", "cuda", "auto"), "device", f"must be cpu, cuda or auto, got {self.device!r}")

    def validate_clip(self) -> None:
        """The CLIP path's options (the digits world's are not used there)."""
        ensure(bool(self.dataset), "dataset", "the CLIP path (--model) needs an image-classification dataset")
        check_positive(self, "clip_lr", "clip_batch", "clip_epochs", "eval_batch", "clip")
        ensure(self.clip_warmup >= 0, "clip_warmup", f"must be >= 0, got {self.clip_warmup}")
        ensure(self.max_steps >= 0, "max_steps", f"must be >= 0, got {self.max_steps}")
        ensure(self.max_samples >= 0, "max_samples", f"must be >= 0, got {self.max_samples}")
        for entry in self.shifts:
            name, sep, source = entry.partition("=")
            ensure(bool(sep and name and source), "shifts", f"{entry!r}: expected <name>=<source>")
        ensure(len(self.finetunes) > 0, "finetunes", "must not be empty")
        for v in self.finetunes:
            ensure(v in FINETUNES, "finetunes", f"unknown variant {v!r}; choose from {FINETUNES}")
        check_fraction(self, "alphas", upper_open=False)
        ensure({0.0, 0.5, 1.0} <= set(self.alphas), "alphas", f"must include 0, 0.5 and 1, got {self.alphas}")
        check_fraction(self, "label_smoothing")
        ensure(self.mixup_alpha >= 0, "mixup_alpha", f"must be >= 0, got {self.mixup_alpha}")
        ensure(self.device in ("cpu", "cuda", "auto"), "device", f"must be cpu, cuda or auto, got {self.device!r}")

    def capped(self) -> bool:
        """True when --max-steps or --max-samples cut the CLIP run short."""
        return self.max_steps > 0 or self.max_samples > 0

    def finetune_iters(self) -> int:
        """Fine-tuning steps: epochs × ⌈n_finetune / batch⌉."""
        return self.finetune_epochs * math.ceil(self.n_finetune / self.batch_size)


PRESETS = {
    "smoke": Config(
        preset="smoke",
        seeds=1,
        iters=60,
        ps=[0.7, 0.9],
        pretrain_iters=60,
        finetune_epochs=2,
        alphas=[0.0, 0.5, 1.0],
    ),
    # 20 seeds: the v2 power rule on the dev-seed pilot (README, "Pre-registration v2")
    "quick": Config(preset="quick", seeds=20),
    # The paper's CLIP half (Sec. 5): "fine-tuning the pre-trained CLIP on ImageNet (IN), and test OOD performance
    # on IN-V2, IN-R, IN-A, IN-S and ObjectNet", ViT-B/16, WiSE-FT's protocol (github.com/mlfoundations/wise-ft:
    # "--lr 3e-5", "--batch-size 512", "--epochs 10", "--wd 0.1", "--warmup_length 500", AdamW, cosine; α swept
    # 0, 0.1, ..., 1). BANG's ε = 0.1 and Mixup Beta(0.2, 0.2) are the usual defaults (the paper's values are not
    # quoted here: its body was not available). 3 seeds for paired CIs. The hub copies of the shifts are named
    # below; each must hold `image` and an ImageNet-1k `label` (README "Full scale"). The digits world at the
    # official MultiColorMNIST settings (`--n_restarts 20`, `n_iters = 5001`, batch 64, Adam lr 0.001) is
    # `--preset full --model "" --seeds 20`.
    "full": Config(
        preset="full",
        seeds=3,
        iters=5001,
        ps=[0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9],
        pretrain_iters=5000,
        device="auto",
        model="openai/clip-vit-base-patch16",
        dataset="ILSVRC/imagenet-1k",
        shifts=(
            "imagenet-v2=vaishaal/ImageNetV2",
            "imagenet-r=axiong/imagenet-r",
            "imagenet-sketch=songweig/imagenet_sketch",
            "imagenet-a=axiong/imagenet-a",
            "objectnet=objectnet",
        ),
    ),
}


# --------------------------------------------------------------------------- training plumbing


def _tensors(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(split.flat()).to(device), torch.from_numpy(split.y).to(device)


def _model(cfg: Config, init_seed: int, device: torch.device) -> nn.Module:
    torch.manual_seed(init_seed)
    return mlp(D_IN, cfg.hidden, N_CLASSES).to(device)


def cosine_lr(base_lr: float, warmup: int, steps: int) -> Callable[[int], float]:
    """WiSE-FT's schedule (`src/models/utils.py: cosine_lr`): lr = base·(t + 1)/warmup for t < warmup, then
    lr = ½(1 + cos(π (t − warmup)/(steps − warmup)))·base."""

    def lr(t: int) -> float:
        if t < warmup:
            return base_lr * (t + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (t - warmup) / max(steps - warmup, 1))) * base_lr

    return lr


def train(
    models: list[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable,
    iters: int,
    *,
    batch_size: int,
    data_seed: int,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    schedule: Callable[[int], float] | None = None,
    clip: float | None = None,
) -> None:
    """Minimise `loss(model, xb, yb)`; every model sees the same mini-batches (epochs of a seeded permutation);
    `schedule(t)` sets the lr of step t, `clip` the max gradient norm."""
    opts = [optimizer(m) for m in models]
    gen = torch.Generator().manual_seed(data_seed)
    n, bs = len(x), min(batch_size, len(x))
    perm, k = torch.randperm(n, generator=gen), 0
    for t in range(iters):
        if k + bs > n:
            perm, k = torch.randperm(n, generator=gen), 0
        idx = perm[k : k + bs].to(x.device)
        k += bs
        for m, opt in zip(models, opts, strict=True):
            if schedule is not None:
                for group in opt.param_groups:
                    group["lr"] = schedule(t)
            opt.zero_grad()
            loss(m, x[idx], y[idx]).backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(m.parameters(), clip)
            opt.step()


def _adam(lr: float) -> Callable[[nn.Module], torch.optim.Optimizer]:
    return lambda m: torch.optim.Adam(m.parameters(), lr=lr)


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
        train(
            [m1, m2],
            x,
            y,
            lambda m, xb, yb: mse_to_one_hot(m(xb), yb),
            cfg.iters,
            batch_size=cfg.batch_size,
            data_seed=seed,
            optimizer=_adam(cfg.lr),
        )
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
    """What a model reads: test digits with label-free colours (the digit alone carries the label), and the digit
    blanked with only patch group A (or B) in its label colours, the other group random (one group alone)."""
    blank = world.test(1.0)
    blank.x = blank.x.copy()
    blank.x[:, :, BLOCK : 2 * BLOCK, BLOCK : 2 * BLOCK] = 0.0
    return {
        "digit_only_acc": _tensors(world.test(0.0), device),
        "colour_only_acc": _tensors(blank, device),
        "colour_A_only_acc": _tensors(world.colour_only("A"), device),
        "colour_B_only_acc": _tensors(world.colour_only("B"), device),
    }


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Temperature scaling (Guo et al. 2017): T = argmin_T −(1/n) Σ_i log softmax(z_i / T)_{y_i} on held-out data
    (a bounded 1-D search over log T ∈ [−4, 4])."""
    from scipy.optimize import minimize_scalar

    z, t = logits.detach().double().cpu(), y.cpu()

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), t))

    return float(math.exp(minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded").x))


def _subset(split: Split, idx: np.ndarray) -> Split:
    return Split(split.x[idx], split.y[idx], split.colours[idx], split.sp)


def _pretrain(
    cfg: Config, world: MultiColorDigits, kind: str, seed: int, device: torch.device
) -> tuple[nn.Module, float]:
    """The pre-trained endpoint: Adam on the pre-training digits, group A correlated with sp_pre (diverse) or all
    colours random (control); same initialisation and batches in both worlds. ce_ts: cross-entropy on all but
    n_calib of those digits, then the temperature T fitted on the n_calib held-out ones (same colouring) and folded
    into the last layer (W, b) ← (W / T, b / T), so the endpoint's confidence is learned from data, as CLIP's
    logit scale; returns (model, T) (T = 1 for ce and mse)."""
    pre = _model(cfg, 1000 * seed + 3, device)
    data = world.pretrain(cfg.sp_pre if kind == "diverse" else 0.0)
    calib = None
    if cfg.pretrain_loss == "ce_ts":
        order = np.random.default_rng([seed, 40_000]).permutation(len(data.y))
        calib, data = _subset(data, order[: cfg.n_calib]), _subset(data, order[cfg.n_calib :])
    loss = mse_to_one_hot if cfg.pretrain_loss == "mse" else cross_entropy
    train(
        [pre],
        *_tensors(data, device),
        lambda m, xb, yb: loss(m(xb), yb),
        cfg.pretrain_iters,
        batch_size=cfg.batch_size,
        data_seed=seed + 10_000,
        optimizer=_adam(cfg.lr),
    )
    temperature = 1.0
    if calib is not None:
        xc, yc = _tensors(calib, device)
        temperature = fit_temperature(_out(pre, xc), yc)
        with torch.no_grad():
            pre[-1].weight.div_(temperature)
            pre[-1].bias.div_(temperature)
    return pre, temperature


def _recoloured_tests(world: MultiColorDigits, cfg: Config, seed: int, device: torch.device) -> torch.Tensor:
    """(n_marginal, n_test, 1728): the test digits, each time with fresh label-free colours (sp = 0)."""
    images, labels = load_digits()
    ids = world.digit_ids("test")
    base, y = canvas(images[ids]), labels[ids]
    rng = np.random.default_rng([seed, 50_000])
    xs = [paint(base, colour_indices(y, 0.0, world.maps, N_PATCHES, rng)) for _ in range(cfg.n_marginal)]
    return torch.from_numpy(np.stack([x.reshape(len(x), -1) for x in xs])).to(device)


@torch.no_grad()
def colour_marginal_prediction(model: nn.Module, recoloured: torch.Tensor) -> torch.Tensor:
    """argmax_k (1/K) Σ_c softmax(f(x_digit, colours_c))_k over K random recolourings: the model's prediction with
    the colours marginalised out (what it reads from the digit)."""
    return torch.stack([torch.softmax(model(x), -1) for x in recoloured]).mean(0).argmax(-1)


def marginal_fix_share(out: torch.Tensor, marginal: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the wrong predictions (argmax out ≠ y) that the colour-marginal prediction gets right (NaN if there
    is none): errors that colours of any kind cause, label-mapped or mere noise (a diagnostic; the premise uses
    `vote_follow_share`)."""
    wrong = out.argmax(-1) != y
    return float((wrong & (marginal == y)).sum() / wrong.sum()) if bool(wrong.any()) else float("nan")


def group_vote(split: Split, maps: np.ndarray, group: str) -> np.ndarray:
    """(n,) colour vote of one patch group: patch j votes π_j⁻¹(colour); the most voted label (ties → lowest)."""
    patches = GROUPS[group]
    inverse = np.argsort(maps, axis=1)  # inverse[j, c] = the label whose colour on patch j is c
    votes = inverse[patches[None, :], split.colours[:, patches]]
    counts = np.stack([(votes == k).sum(1) for k in range(N_CLASSES)], axis=1)
    return counts.argmax(1)


def group_vote_accuracy(split: Split, maps: np.ndarray, group: str) -> float:
    """Accuracy of a group's colour vote. Below 0.5: the group's colours point to a wrong label on most images."""
    return float(np.mean(group_vote(split, maps, group) == split.y))


def vote_follow_share(out: torch.Tensor, vote: np.ndarray, y: torch.Tensor) -> float:
    """Share of the wrong predictions that equal the (wrong) colour vote of a patch group (NaN if none is wrong):
    errors where the model followed colours pointing to a wrong label. A model blind to the group follows it by
    chance only (≈ P(vote = one given wrong label) < 0.1)."""
    pred = out.argmax(-1).cpu().numpy()
    wrong = pred != y.cpu().numpy()
    return float(np.mean(pred[wrong] == vote[wrong])) if wrong.any() else float("nan")


def _finetune(cfg: Config, pre: nn.Module, variant: str, data: Split, seed: int, device: torch.device) -> nn.Module:
    """A copy of `pre` fine-tuned in the WiSE-FT manner: AdamW(lr, wd), warm-up + cosine, grad-clip."""
    ft = copy.deepcopy(pre)
    steps = cfg.finetune_iters()
    train(
        [ft],
        *_tensors(data, device),
        _finetune_loss(cfg, variant, torch.Generator().manual_seed(seed + 20_000)),
        steps,
        batch_size=cfg.batch_size,
        data_seed=seed + 30_000,
        optimizer=lambda m: torch.optim.AdamW(m.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay),
        schedule=cosine_lr(cfg.finetune_lr, cfg.warmup, steps),
        clip=cfg.clip,
    )
    return ft


def part_bc(cfg: Config, seed: int, kind: str, device: torch.device) -> list[dict]:
    """One world (`diverse` or `control`) of one seed: pre-train, fine-tune every variant, sweep α."""
    rows = []
    world = MultiColorDigits(seed=seed, n_test=cfg.n_test, n_finetune=cfg.n_finetune)
    pre, temperature = _pretrain(cfg, world, kind, seed, device)
    rows.append(record("pre-trained", seed, "temperature", temperature))
    ood = {p: world.test(1 - p) for p in cfg.ps}
    for p, split in ood.items():
        for g in GROUPS:
            rows.append(record("data", seed, f"colour_vote_{g}_acc", group_vote_accuracy(split, world.maps, g), p=p))
    tests = {
        "id": _tensors(world.test(group_sp(B=cfg.sp_ft)), device),  # the fine-tuning distribution, test digits
        **{p: _tensors(split, device) for p, split in ood.items()},
    }
    recoloured = _recoloured_tests(world, cfg, seed, device)
    votes = {(p, g): group_vote(split, world.maps, g) for p, split in ood.items() for g in GROUPS}

    def colour_rows(method: str, out: dict, marginal: torch.Tensor) -> list[dict]:
        """Over-confidence and how colour-driven the OOD errors are, at every p."""
        got = []
        for p in cfg.ps:
            yt = tests[p][1]
            got.append(record(method, seed, "overconfidence", overconfidence(out[p], yt), p=p))
            got.append(record(method, seed, "marginal_fix_share", marginal_fix_share(out[p], marginal, yt), p=p))
            for g in GROUPS:
                share = vote_follow_share(out[p], votes[(p, g)], yt)
                got.append(record(method, seed, f"follows_vote_{g}", share, p=p))
        return got

    pre_out = {p: _out(pre, xt) for p, (xt, _) in tests.items()}
    rows += colour_rows("pre-trained", pre_out, colour_marginal_prediction(pre, recoloured))
    probes = _feature_probes(world, device)
    rows += [record("pre-trained", seed, m, _acc(_out(pre, xp), yp)) for m, (xp, yp) in probes.items()]
    data = world.finetune(cfg.sp_ft)
    student = copy.deepcopy(pre)
    for variant in FINETUNES:
        ft = _finetune(cfg, pre, variant, data, seed, device)
        rows += [record(variant, seed, m, _acc(_out(ft, xp), yp)) for m, (xp, yp) in probes.items()]
        ft_out = {p: _out(ft, xt) for p, (xt, _) in tests.items()}
        rows += colour_rows(variant, ft_out, colour_marginal_prediction(ft, recoloured))
        for p in cfg.ps:
            yt = tests[p][1]
            both = (pre_out[p].argmax(-1) != yt) & (ft_out[p].argmax(-1) != yt)
            rows.append(record(variant, seed, "both_wrong", float(both.float().mean()), p=p))
        for step, alpha in enumerate(cfg.alphas):
            student.load_state_dict(wise_ft(pre.state_dict(), ft.state_dict(), alpha))
            for p, (xt, yt) in tests.items():
                metric, setting = ("id_acc", {}) if p == "id" else ("ood_acc", {"p": p})
                w_out = _out(student, xt)
                at = dict(alpha=alpha, step=step, **setting)
                rows.append(record(variant, seed, metric, _acc(w_out, yt), space="weight", **at))
                o_out = output_ensemble(pre_out[p], ft_out[p], alpha)
                rows.append(record(variant, seed, metric, _acc(o_out, yt), space="output", **at))
                if p != "id":
                    fft = false_false_true(pre_out[p].argmax(-1), ft_out[p].argmax(-1), w_out.argmax(-1), yt)
                    rows.append(record(variant, seed, "false_false_true", fft, space="weight", **at))
    return [{**r, "world": kind} for r in rows]


def run_clip(cfg: Config, device: torch.device) -> list[dict]:
    """The CLIP experiment (papers/bang/clip.py): zero-shot head, then per seed and variant a fine-tune, WiSE-FT
    over α and the evaluation on the ID split and the shifts (one checkpointed unit each)."""
    from transformers import AutoProcessor, CLIPModel

    from reprozoo.common.data.core import DatasetError
    from reprozoo.common.data.images import ImageBatches, class_names, open_images
    from reprozoo.papers.bang import clip

    try:
        model = CLIPModel.from_pretrained(cfg.model).float().to(device)
        processor = AutoProcessor.from_pretrained(cfg.model)
    except (OSError, ValueError) as err:
        raise ConfigError("model", f"cannot load a CLIP model and processor from {cfg.model!r}: {err}") from None
    try:
        train_set = open_images(cfg.dataset, cfg.train_split)
        names = class_names(train_set, cfg.classnames or None)
        evals = {"id": open_images(cfg.dataset, cfg.eval_split)}
    except (DatasetError, OSError) as err:
        raise ConfigError("dataset", str(err)) from None
    for entry in cfg.shifts:
        name, _, source = entry.partition("=")
        try:
            evals[name] = open_images(source, None)
        except (DatasetError, OSError) as err:
            raise ConfigError("shifts", f"{entry}: {err}") from None
    classes = {k: clip.label_set(v) for k, v in evals.items()}  # before the --max-samples cut
    if cfg.max_samples:
        evals = {k: v.select(range(min(cfg.max_samples, len(v)))) for k, v in evals.items()}
    if cfg.templates:
        lines = Path(cfg.templates).expanduser().read_text().splitlines()
        templates = tuple(t.strip() for t in lines if "{}" in t)
    else:
        templates = clip.DEFAULT_TEMPLATES
    head = clip.zeroshot_head(model, processor.tokenizer, names, templates, device)
    zs = clip.CLIPClassifier(model, head).to(device).eval()
    del model.text_model  # only the vision side is fine-tuned and evaluated
    improc = processor.image_processor
    batches = ImageBatches(train_set, improc, cfg.clip_batch)
    eval_batches = {k: (ImageBatches(v, improc, cfg.eval_batch), classes[k]) for k, v in evals.items()}
    steps = cfg.clip_epochs * len(batches)
    if cfg.max_steps:
        steps = min(steps, cfg.max_steps)
    shifts = [k for k in evals if k != "id"]
    print(
        f"[bang] CLIP {cfg.model}: {len(names)} classes, {len(train_set)} training images, {steps} steps, "
        f"{len(templates)} templates, eval sets { {k: len(v) for k, v in evals.items()} }",
        flush=True,
    )

    def unit(seed: int, variant: str) -> list[dict]:
        torch.manual_seed(seed)
        loss = clip.finetune_loss(
            variant, len(names), cfg.label_smoothing, cfg.mixup_alpha, torch.Generator().manual_seed(seed + 20_000)
        )
        ft = clip.finetune(
            zs,
            batches,
            loss,
            steps,
            lr=cfg.clip_lr,
            weight_decay=cfg.weight_decay,
            warmup=cfg.clip_warmup,
            clip=cfg.clip,
            seed=seed + 30_000,
            device=device,
            schedule=cosine_lr,
        )
        rows = clip.evaluate(variant, seed, zs, ft, eval_batches, cfg.alphas, device, shifts)
        return rows + [record(variant, seed, "finetune_steps", steps)]

    rows: list[dict] = []
    for seed in cfg.seed_list():
        for variant in cfg.finetunes:
            rows += checkpoint.unit(("clip", seed, variant), partial(unit, seed, variant))
    return rows


def run(cfg: Config) -> list[dict]:
    torch.set_num_threads(cfg.threads)
    device = torch_device(cfg.device)  # type: ignore[arg-type]
    if cfg.model:
        return run_clip(cfg, device)
    rows: list[dict] = []
    for seed in track(cfg.seed_list(), description="bang seeds"):  # checkpointed units (--resume)
        rows += checkpoint.unit(("a", seed), partial(part_a, cfg, seed, device))
        for kind in WORLDS:
            rows += checkpoint.unit(("bc", seed, kind), partial(part_bc, cfg, seed, kind, device))
    return rows


# --------------------------------------------------------------------------- figure


def curve(rows: list[dict], **match) -> tuple[list[float], np.ndarray]:
    """(α values, seed-mean values) of an α curve."""
    pts = select(rows, **match)
    alphas = sorted({r["alpha"] for r in pts})
    return alphas, np.array([np.mean([r["value"] for r in pts if r["alpha"] == a]) for a in alphas])


def figure(rows: list[dict], cfg: Config, path: Path) -> None:
    """OOD accuracy vs α in the diverse and the control world; FalseFalseTrue vs α; (a) ensemble gain vs p.
    CLIP path: ID against OOD accuracy along the WiSE-FT path per variant."""
    if cfg.model:
        from reprozoo.papers.bang import clip

        return clip.figure(rows, cfg.alphas, path)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(19, 4.5))
    for k, kind in enumerate(WORLDS):
        for variant, color in zip(FINETUNES, ("C0", "C2", "C4", "C3"), strict=True):
            for space, style in (("weight", "-o"), ("output", "--")):
                a, v = curve(rows, method=variant, metric="ood_acc", space=space, p=cfg.p_wise, world=kind)
                ax[k].plot(a, v, style, color=color, ms=3, label=f"{variant} ({space})")
        ax[k].set(
            title=f"{kind} world: OOD accuracy vs α (p = {cfg.p_wise})",
            xlabel="α (0 = pre-trained, 1 = fine-tuned)",
            ylabel="OOD accuracy",
        )
    for kind, style in zip(WORLDS, ("-o", "--s"), strict=True):
        for variant, color in (("wise_ft", "C0"), ("bang", "C3")):
            a, v = curve(rows, method=variant, metric="false_false_true", space="weight", p=cfg.p_wise, world=kind)
            ax[2].plot(a, v, style, color=color, ms=3, label=f"{variant}, {kind}")
    ax[2].set(title=f"FalseFalseTrue vs α (weight space, p = {cfg.p_wise})", xlabel="α", ylabel="fraction")
    for n_colors in (N_PATCHES, 1):
        g = [select(rows, metric="ensemble_gain", colors=n_colors, p=p) for p in cfg.ps]
        mean = [np.mean([r["value"] for r in gp]) for gp in g]
        sd = [np.std([r["value"] for r in gp]) for gp in g]
        ax[3].errorbar(cfg.ps, mean, yerr=sd, fmt="-o", capsize=3, label=f"{n_colors} colour feature(s)")
    ax[3].axhline(0, color="k", lw=0.5)
    ax[3].set(
        title="(a) output-ensemble gain over the better member (OOD)",
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
    """The α sweeps (mean over seeds) at p = p_wise in both worlds: OOD accuracy, FalseFalseTrue, ID accuracy.
    CLIP path: accuracy per variant, α and dataset."""
    if cfg.model:
        from reprozoo.papers.bang import clip

        return clip.table(rows, cfg.alphas)
    head = "| world | fine-tuning | quantity | " + " | ".join(f"α={a:g}" for a in cfg.alphas) + " |"
    lines = [
        f"WiSE-FT α sweeps, OOD at p = {cfg.p_wise} (α = 0: pre-trained, 1: fine-tuned), mean of {cfg.seeds} seeds:",
        "",
        head,
        "|---|---|---|" + "---|" * len(cfg.alphas),
    ]
    quantities = {
        "OOD acc, weight space": dict(metric="ood_acc", space="weight", p=cfg.p_wise),
        "OOD acc, output space": dict(metric="ood_acc", space="output", p=cfg.p_wise),
        "FalseFalseTrue, weight": dict(metric="false_false_true", space="weight", p=cfg.p_wise),
        "ID acc, weight space": dict(metric="id_acc", space="weight"),
    }
    for kind in WORLDS:
        for variant in FINETUNES:
            shown = (
                quantities
                if variant in ("wise_ft", "bang")
                else {"OOD acc, weight space": quantities["OOD acc, weight space"]}
            )
            for label, match in shown.items():
                _, v = curve(rows, method=variant, world=kind, **match)
                lines.append(f"| {kind} | {variant} | {label} | " + " | ".join(f"{x:.3f}" for x in v) + " |")
    return "\n".join(lines) + "\n"
