"""The paper's CLIP experiment: WiSE-FT and BANG on a CLIP model fine-tuned on ImageNet, tested on its shifts.

Lin et al. 2024 (Sec. 5, BANG): "We impose Mixup or Label Smoothing during fine-tuning the pre-trained CLIP on
ImageNet (IN), and test OOD performance on IN-V2, IN-R, IN-A, IN-S and ObjectNet"; the fine-tuning protocol is
WiSE-FT's (Wortsman et al. 2022, github.com/mlfoundations/wise-ft), with `transformers`' CLIPModel here:
1. Zero-shot head (WiSE-FT `get_zeroshot_classifier`): per class c, w_c = n(mean_t n(g(template_t(c)))) with
   n(v) = v / ‖v‖ and g the text tower; W = exp(logit_scale) · [w_c]; the classifier is
   f(x) = W · n(P h(x)) + b (vision tower h, projection P, b = 0 at the start; WiSE-FT `ClassificationHead`).
2. End-to-end fine-tuning of (h, P, W, b) on the ID training split: AdamW, warm-up + cosine lr, gradient clip,
   loss = cross-entropy (WiSE-FT) or `method.bang_loss` (Mixup and/or label smoothing: the ablations and BANG).
3. WiSE-FT θ(α) = (1 − α) θ_zs + α θ_ft (`method.wise_ft`) for every α, each evaluated on the ID evaluation split
   and on every shift; a shift with fewer classes (IN-R, IN-A: 200; ObjectNet: 113) is scored on the classes it
   contains (the other logits masked), as WiSE-FT projects the logits onto those classes.
Per variant and α the records hold the accuracy on every dataset and the OOD average; at α = 0.5 the
FalseFalseTrue share (`method.false_false_true`) and the over-confidence (`method.overconfidence`) per shift.
"""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reprozoo.common import checkpoint
from reprozoo.common.config import ConfigError
from reprozoo.common.results import record
from reprozoo.papers.bang.method import false_false_true, overconfidence, wise_ft
from reprozoo.papers.bang.training import cosine_lr, finetune_loss

DEFAULT_TEMPLATES = ("a photo of a {}.",)
"""The CLIP paper's basic prompt; the paper's run uses WiSE-FT's 80 `openai_imagenet_template` prompts, given as a
file (--templates, one per line with {} for the class name)."""


class CLIPClassifier(nn.Module):
    """f(x) = W · n(P h(x)) + b: CLIP's vision tower h and projection P with a linear head (WiSE-FT's
    `ImageClassifier` with a normalising `ClassificationHead`)."""

    def __init__(self, clip, head: torch.Tensor):
        super().__init__()
        self.vision, self.proj = clip.vision_model, clip.visual_projection
        self.head = nn.Linear(head.shape[1], head.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(head)
            self.head.bias.zero_()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        f = self.proj(self.vision(pixel_values=pixel_values).pooler_output)
        return self.head(f / f.norm(dim=-1, keepdim=True))


def _features(out) -> torch.Tensor:
    """get_text_features' output as a tensor (a model output object in some transformers versions)."""
    return out if torch.is_tensor(out) else out.pooler_output


@torch.no_grad()
def zeroshot_head(clip, tokenizer, names: list[str], templates: tuple[str, ...], device) -> torch.Tensor:
    """W = exp(logit_scale) · [n(mean_t n(g(template_t(c))))]_c, one row per class (WiSE-FT's zero-shot head)."""
    rows = []
    for name in names:
        tok = tokenizer([t.format(name) for t in templates], padding=True, truncation=True, return_tensors="pt")
        e = _features(clip.get_text_features(**tok.to(device)))
        e = (e / e.norm(dim=-1, keepdim=True)).mean(0)
        rows.append(e / e.norm())
    return clip.logit_scale.exp() * torch.stack(rows)


def finetune(model: nn.Module, batches, loss, steps: int, *, lr, weight_decay, warmup, clip, seed, device, schedule):
    """A copy of `model` fine-tuned for `steps` AdamW steps on epochs of a seeded permutation of the rows of
    `batches` (an `ImageBatches`); `schedule(base, warmup, steps)` gives the lr of step t."""
    ft = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(ft.parameters(), lr=lr, weight_decay=weight_decay)
    lr_of = schedule(lr, warmup, steps)
    gen = torch.Generator().manual_seed(seed)
    n, bs = len(batches.data), min(batches.batch_size, len(batches.data))
    perm, k = torch.randperm(n, generator=gen), 0
    for t in range(steps):
        if k + bs > n:
            perm, k = torch.randperm(n, generator=gen), 0
        x, y = batches.batch(perm[k : k + bs].tolist())
        k += bs
        for group in opt.param_groups:
            group["lr"] = lr_of(t)
        opt.zero_grad()
        loss(ft, x.to(device), y.to(device)).backward()
        nn.utils.clip_grad_norm_(ft.parameters(), clip)
        opt.step()
    return ft.eval()


@torch.no_grad()
def logits_on(model: nn.Module, batches, device, classes: torch.Tensor | None = None):
    """(logits, labels) of every row; when `classes` (the dataset's label set) is smaller than the head, the other
    classes' logits are masked (−inf): the shift datasets with a class subset."""
    outs, ys = [], []
    for x, y in batches:
        outs.append(model(x.to(device)).float().cpu())
        ys.append(y)
    out, y = torch.cat(outs), torch.cat(ys)
    if classes is not None and len(classes) < out.shape[1]:
        mask = torch.full((out.shape[1],), float("-inf"))
        mask[classes] = 0.0
        out = out + mask
    return out, y


def label_set(data) -> torch.Tensor:
    """The classes a dataset's `label` column holds (read before any --max-samples cut, so a cut cannot shrink it)."""
    return torch.as_tensor(np.unique(np.asarray(data["label"])))


def evaluate(
    variant: str, seed: int, zs: nn.Module, ft: nn.Module, evals: dict, alphas: list[float], device, shifts
) -> list[dict]:
    """Accuracy of WiSE-FT θ(α) on every dataset for every α, the OOD average over `shifts`, and at α = 0.5 the
    FalseFalseTrue share and over-confidence per shift (α = 0, 0.5, 1 predictions kept for them). `evals` maps a
    name to (batches, its label set)."""
    theta_zs, theta_ft = zs.state_dict(), ft.state_dict()
    model, rows, kept = copy.deepcopy(zs), [], {}
    for alpha in alphas:
        model.load_state_dict(wise_ft(theta_zs, theta_ft, alpha))
        accs = {}
        for name, (batches, classes) in evals.items():
            out, y = logits_on(model, batches, device, classes)
            accs[name] = float((out.argmax(-1) == y).float().mean())
            rows.append(record(variant, seed, "acc", accs[name], alpha=alpha, dataset=name))
            if alpha in (0.0, 0.5, 1.0):
                kept[(alpha, name)] = (out, y)
        if shifts:
            rows.append(record(variant, seed, "ood_avg", float(np.mean([accs[s] for s in shifts])), alpha=alpha))
    for name in shifts:
        if all((a, name) in kept for a in (0.0, 0.5, 1.0)):
            (o0, y), (o5, _), (o1, _) = (kept[(a, name)] for a in (0.0, 0.5, 1.0))
            fft = false_false_true(o0.argmax(-1), o1.argmax(-1), o5.argmax(-1), y)
            rows.append(record(variant, seed, "false_false_true", fft, alpha=0.5, dataset=name))
            for a, o in ((0.0, o0), (1.0, o1)):
                rows.append(record(variant, seed, "overconfidence", overconfidence(o, y), alpha=a, dataset=name))
    return rows


def run(cfg, device: torch.device) -> list[dict]:
    """The CLIP experiment of `cfg` (an `experiment.Config` with --model set): zero-shot head, then per seed and
    variant a fine-tune, WiSE-FT over α and the evaluation on the ID split and the shifts (one checkpointed unit
    each)."""
    from transformers import AutoProcessor, CLIPModel

    from reprozoo.common.data.core import DatasetError
    from reprozoo.common.data.images import ImageBatches, class_names, open_images

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
    classes = {k: label_set(v) for k, v in evals.items()}  # before the --max-samples cut
    if cfg.max_samples:
        evals = {k: v.select(range(min(cfg.max_samples, len(v)))) for k, v in evals.items()}
    if cfg.templates:
        lines = Path(cfg.templates).expanduser().read_text().splitlines()
        templates = tuple(t.strip() for t in lines if "{}" in t)
    else:
        templates = DEFAULT_TEMPLATES
    head = zeroshot_head(model, processor.tokenizer, names, templates, device)
    zs = CLIPClassifier(model, head).to(device).eval()
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
        loss = finetune_loss(
            variant, len(names), cfg.label_smoothing, cfg.mixup_alpha, torch.Generator().manual_seed(seed + 20_000)
        )
        ft = finetune(
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
        rows = evaluate(variant, seed, zs, ft, eval_batches, cfg.alphas, device, shifts)
        return rows + [record(variant, seed, "finetune_steps", steps)]

    rows: list[dict] = []
    for seed in cfg.seed_list():
        for variant in cfg.finetunes:
            rows += checkpoint.unit(("clip", seed, variant), partial(unit, seed, variant))
    return rows


def table(rows: list[dict], alphas: list[float]) -> str:
    """Markdown: mean accuracy over seeds per variant and α on every dataset, and the OOD average."""
    from reprozoo.common.results import select

    sets = list(dict.fromkeys(r["dataset"] for r in select(rows, metric="acc")))
    head = "| variant | α | " + " | ".join(sets) + " | OOD avg |\n|---|---|" + "---|" * (len(sets) + 1) + "\n"
    lines = []
    for v in dict.fromkeys(r["method"] for r in select(rows, metric="acc")):
        for a in alphas:
            cell = lambda v=v, a=a, **m: np.mean([r["value"] for r in select(rows, method=v, alpha=a, **m)] or [np.nan])  # noqa: E731
            accs = " | ".join(f"{cell(metric='acc', dataset=d):.4f}" for d in sets)
            lines.append(f"| {v} | {a:g} | {accs} | {cell(metric='ood_avg'):.4f} |")
    return head + "\n".join(lines) + "\n"


def figure(rows: list[dict], alphas: list[float], path) -> None:
    """ID accuracy against the OOD average along the WiSE-FT path (α = 0 … 1), one line per variant."""
    import matplotlib.pyplot as plt

    from reprozoo.common.results import select

    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    for v in dict.fromkeys(r["method"] for r in select(rows, metric="acc")):
        mean = lambda v=v, **m: np.mean([r["value"] for r in select(rows, method=v, **m)] or [np.nan])  # noqa: E731
        ax.plot(
            [mean(metric="acc", dataset="id", alpha=a) for a in alphas],
            [mean(metric="ood_avg", alpha=a) for a in alphas],
            "o-",
            ms=3,
            label=v,
        )
    ax.set_xlabel("ID accuracy")
    ax.set_ylabel("OOD accuracy (mean over shifts)")
    ax.set_title("WiSE-FT path α = 0 (zero-shot) → 1 (fine-tuned)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
