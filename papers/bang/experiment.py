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
the fine-tuning data, the test data and the initialisation. The training loop is in `training.py`, the feature probes
and colour diagnostics in `probes.py`, the figure and table in `report.py`, the paper's CLIP experiment in `clip.py`.
"""

import copy
import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import nn

from reprozoo.common import checkpoint
from reprozoo.common.config import RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.device import torch_device
from reprozoo.common.progress import track
from reprozoo.common.results import record
from reprozoo.common.worlds.digits import GROUPS, N_CLASSES, N_PATCHES, MultiColorDigits, Split, group_sp
from reprozoo.papers.bang import clip
from reprozoo.papers.bang.baselines import cross_entropy, ensemble_accuracy, mse_to_one_hot
from reprozoo.papers.bang.method import false_false_true, output_ensemble, overconfidence, wise_ft
from reprozoo.papers.bang.probes import (
    colour_marginal_prediction,
    feature_probes,
    group_vote,
    group_vote_accuracy,
    marginal_fix_share,
    recoloured_tests,
    vote_follow_share,
)
from reprozoo.papers.bang.training import (
    accuracy,
    adam,
    cosine_lr,
    finetune_loss,
    fit_temperature,
    init_mlp,
    outputs,
    subset,
    tensors,
    train,
)

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


# --------------------------------------------------------------------------- (a) diversity of spurious features


def part_a(cfg: Config, seed: int, device: torch.device) -> list[dict]:
    rows = []
    for n_colors in (N_PATCHES, 1):
        world = MultiColorDigits(seed=seed, n_colors=n_colors, n_test=cfg.n_test)
        x, y = tensors(world.train(1.0), device)
        m1, m2 = init_mlp(cfg.hidden, 1000 * seed + 1, device), init_mlp(cfg.hidden, 1000 * seed + 2, device)
        train(
            [m1, m2],
            x,
            y,
            lambda m, xb, yb: mse_to_one_hot(m(xb), yb),
            cfg.iters,
            batch_size=cfg.batch_size,
            data_seed=seed,
            optimizer=adam(cfg.lr),
        )
        tests = {"id": world.test(1.0), **{p: world.test(1 - p) for p in cfg.ps}}
        for p, split in tests.items():
            xt, yt = tensors(split, device)
            o1, o2 = outputs(m1, xt), outputs(m2, xt)
            a1, a2, ens = accuracy(o1, yt), accuracy(o2, yt), ensemble_accuracy(o1, o2, yt)
            metric, setting = ("id_acc", {}) if p == "id" else ("ood_acc", {"p": p})
            for method, v in (("mlp_1", a1), ("mlp_2", a2), ("output_ensemble", ens)):
                rows.append(record(method, seed, metric, v, colors=n_colors, **setting))
            if p != "id":
                rows.append(record("output_ensemble", seed, "ensemble_gain", ens - max(a1, a2), colors=n_colors, p=p))
                fft = false_false_true(o1.argmax(-1), o2.argmax(-1), (o1 + o2).argmax(-1), yt)
                rows.append(record("output_ensemble", seed, "false_false_true", fft, colors=n_colors, p=p))
    return rows


# --------------------------------------------------------------------------- (b, c) WiSE-FT and BANG


def _pretrain(
    cfg: Config, world: MultiColorDigits, kind: str, seed: int, device: torch.device
) -> tuple[nn.Module, float]:
    """The pre-trained endpoint: Adam on the pre-training digits, group A correlated with sp_pre (diverse) or all
    colours random (control); same initialisation and batches in both worlds. ce_ts: cross-entropy on all but
    n_calib of those digits, then the temperature T fitted on the n_calib held-out ones (same colouring) and folded
    into the last layer (W, b) ← (W / T, b / T), so the endpoint's confidence is learned from data, as CLIP's
    logit scale; returns (model, T) (T = 1 for ce and mse)."""
    pre = init_mlp(cfg.hidden, 1000 * seed + 3, device)
    data = world.pretrain(cfg.sp_pre if kind == "diverse" else 0.0)
    calib = None
    if cfg.pretrain_loss == "ce_ts":
        order = np.random.default_rng([seed, 40_000]).permutation(len(data.y))
        calib, data = subset(data, order[: cfg.n_calib]), subset(data, order[cfg.n_calib :])
    loss = mse_to_one_hot if cfg.pretrain_loss == "mse" else cross_entropy
    train(
        [pre],
        *tensors(data, device),
        lambda m, xb, yb: loss(m(xb), yb),
        cfg.pretrain_iters,
        batch_size=cfg.batch_size,
        data_seed=seed + 10_000,
        optimizer=adam(cfg.lr),
    )
    temperature = 1.0
    if calib is not None:
        xc, yc = tensors(calib, device)
        temperature = fit_temperature(outputs(pre, xc), yc)
        with torch.no_grad():
            pre[-1].weight.div_(temperature)
            pre[-1].bias.div_(temperature)
    return pre, temperature


def _finetune(cfg: Config, pre: nn.Module, variant: str, data: Split, seed: int, device: torch.device) -> nn.Module:
    """A copy of `pre` fine-tuned in the WiSE-FT manner: AdamW(lr, wd), warm-up + cosine, grad-clip."""
    ft = copy.deepcopy(pre)
    steps = cfg.finetune_iters()
    train(
        [ft],
        *tensors(data, device),
        finetune_loss(
            variant, N_CLASSES, cfg.label_smoothing, cfg.mixup_alpha, torch.Generator().manual_seed(seed + 20_000)
        ),
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
        "id": tensors(world.test(group_sp(B=cfg.sp_ft)), device),  # the fine-tuning distribution, test digits
        **{p: tensors(split, device) for p, split in ood.items()},
    }
    recoloured = recoloured_tests(world, cfg.n_marginal, seed, device)
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

    pre_out = {p: outputs(pre, xt) for p, (xt, _) in tests.items()}
    rows += colour_rows("pre-trained", pre_out, colour_marginal_prediction(pre, recoloured))
    probes = feature_probes(world, device)
    rows += [record("pre-trained", seed, m, accuracy(outputs(pre, xp), yp)) for m, (xp, yp) in probes.items()]
    data = world.finetune(cfg.sp_ft)
    student = copy.deepcopy(pre)
    for variant in FINETUNES:
        ft = _finetune(cfg, pre, variant, data, seed, device)
        rows += [record(variant, seed, m, accuracy(outputs(ft, xp), yp)) for m, (xp, yp) in probes.items()]
        ft_out = {p: outputs(ft, xt) for p, (xt, _) in tests.items()}
        rows += colour_rows(variant, ft_out, colour_marginal_prediction(ft, recoloured))
        for p in cfg.ps:
            yt = tests[p][1]
            both = (pre_out[p].argmax(-1) != yt) & (ft_out[p].argmax(-1) != yt)
            rows.append(record(variant, seed, "both_wrong", float(both.float().mean()), p=p))
        for step, alpha in enumerate(cfg.alphas):
            student.load_state_dict(wise_ft(pre.state_dict(), ft.state_dict(), alpha))
            for p, (xt, yt) in tests.items():
                metric, setting = ("id_acc", {}) if p == "id" else ("ood_acc", {"p": p})
                w_out = outputs(student, xt)
                at = dict(alpha=alpha, step=step, **setting)
                rows.append(record(variant, seed, metric, accuracy(w_out, yt), space="weight", **at))
                o_out = output_ensemble(pre_out[p], ft_out[p], alpha)
                rows.append(record(variant, seed, metric, accuracy(o_out, yt), space="output", **at))
                if p != "id":
                    fft = false_false_true(pre_out[p].argmax(-1), ft_out[p].argmax(-1), w_out.argmax(-1), yt)
                    rows.append(record(variant, seed, "false_false_true", fft, space="weight", **at))
    return [{**r, "world": kind} for r in rows]


def run(cfg: Config) -> list[dict]:
    torch.set_num_threads(cfg.threads)
    device = torch_device(cfg.device)  # type: ignore[arg-type]
    if cfg.model:
        return clip.run(cfg, device)
    rows: list[dict] = []
    for seed in track(cfg.seed_list(), description="bang seeds"):  # checkpointed units (--resume)
        rows += checkpoint.unit(("a", seed), partial(part_a, cfg, seed, device))
        for kind in WORLDS:
            rows += checkpoint.unit(("bc", seed, kind), partial(part_bc, cfg, seed, kind, device))
    return rows
