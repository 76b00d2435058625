"""bang's CLIP path on CPU: a tiny CLIP (CLIPConfig) with a character-level CLIP tokenizer and an image processor
saved with save_pretrained, a tiny ImageNet-layout dataset and two shift sets saved with save_to_disk, run through
the CLI; HF_HUB_OFFLINE=1 so nothing can download."""

from __future__ import annotations

import json

import numpy as np
import pytest

CLASSES = ["cat", "dog", "bird", "fish"]


def _tiny_clip(folder):
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    # a character-level byte-level BPE vocabulary (no merges): CLIP's byte → unicode map, each char and char</w>
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    improc = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    torch.manual_seed(0)
    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config={**small, "vocab_size": len(vocab), "max_position_embeddings": 64},
        vision_config={**small, "image_size": 16, "patch_size": 8},
        projection_dim=8,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=improc, tokenizer=tok).save_pretrained(folder)


def _images(n: int, labels: list[int], seed: int, names=CLASSES):
    """Images whose mean colour channel encodes the label (learnable), in the ImageNet layout."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    ims = []
    for i in range(n):
        x = rng.integers(0, 60, (20, 20, 3), dtype=np.uint8)
        x[..., labels[i] % 3] += 120 + 40 * (labels[i] // 3)
        ims.append(Image.fromarray(x))
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"image": ims, "label": labels[:n]}, features=feats)


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "clip").mkdir()
    _tiny_clip(tmp_path / "clip")
    train_labels = [i % 4 for i in range(24)]
    datasets.DatasetDict(
        {"train": _images(24, train_labels, 0), "validation": _images(8, [i % 4 for i in range(8)], 1)}
    ).save_to_disk(str(tmp_path / "imagenet"))
    _images(8, [i % 4 for i in range(8)], 2).save_to_disk(str(tmp_path / "shift_full"))
    _images(6, [0, 2, 0, 2, 0, 2], 3).save_to_disk(str(tmp_path / "shift_subset"))  # a class subset (as IN-R)
    return tmp_path


def test_full_preset_clip_path_runs_end_to_end(stand_ins, tmp_path):
    from reprozoo.common.cli import main
    from reprozoo.papers.bang import claims, experiment, report

    out = tmp_path / "run"
    argv = ["--preset", "full", "--model", str(stand_ins / "clip"), "--dataset", str(stand_ins / "imagenet")]
    argv += ["--shifts", f"v2={stand_ins / 'shift_full'}", f"r={stand_ins / 'shift_subset'}", "--device", "cpu"]
    argv += ["--finetunes", "wise_ft", "bang", "--seeds", "2", "--alphas", "0", "0.5", "1"]
    argv += ["--clip-batch", "8", "--eval-batch", "4", "--clip-warmup", "1", "--clip-lr", "1e-3"]
    argv += ["--max-steps", "3", "--max-samples", "6", "--out", str(out)]
    kw = dict(
        paper="bang",
        config_cls=experiment.Config,
        presets=experiment.PRESETS,
        run=experiment.run,
        claims=claims.check,
        figure=report.figure,
        table=report.table,
        results=tmp_path / "results",
    )
    assert main(argv=argv, **kw) == 0
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    acc = {(r["method"], r["seed"], r["alpha"], r["dataset"]): r["value"] for r in rows if r["metric"] == "acc"}
    assert {k[3] for k in acc} == {"id", "v2", "r"}
    assert {k[0] for k in acc} == {"wise_ft", "bang"} and {k[2] for k in acc} == {0.0, 0.5, 1.0}
    # α = 0 is the zero-shot model for every variant and seed; fine-tuning moved the weights (α = 1 differs)
    zs = {v for k, v in acc.items() if k[2] == 0.0 and k[3] == "id"}
    assert len(zs) == 1
    assert {r["value"] for r in rows if r["metric"] == "finetune_steps"} == {3}  # --max-steps capped the fine-tunes
    # the subset shift is scored on its two classes only: chance is 1/2, and accuracy counts only those classes
    assert all(0.0 <= acc[k] <= 1.0 for k in acc)
    summary = json.loads((out / "summary.json").read_text())
    assert {c["id"] for c in summary["claims"]} == {"clip-overconfident", "clip-wise-ft", "clip-bang"}
    assert {c["verdict"] for c in summary["claims"]} == {"UNTESTED"}  # capped run
    assert [r for r in rows if r["metric"] == "false_false_true"]
    for f in ("records.jsonl", "summary.json", "table.md", "figure.png"):
        assert (out / f).is_file()


def test_logits_on_masks_absent_classes():
    import torch

    from reprozoo.papers.bang.clip import logits_on

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[5.0, 1.0, 0.0], [5.0, 0.0, 2.0]])

    batches = [(torch.zeros(2, 1), torch.tensor([1, 2]))]
    out, _ = logits_on(Fixed(), batches, "cpu", torch.tensor([1, 2]))
    assert out.argmax(-1).tolist() == [1, 2]  # class 0 is not in the dataset's label set: masked
    out, _ = logits_on(Fixed(), batches, "cpu", torch.tensor([0, 1, 2]))
    assert out.argmax(-1).tolist() == [0, 0]  # every class present: nothing masked


def test_max_samples_cut_keeps_the_label_set(stand_ins):
    """--max-samples keeps the first rows; the masked classes come from the whole dataset, not from the cut."""
    from reprozoo.common.data.images import open_images
    from reprozoo.papers.bang.clip import label_set

    data = open_images(str(stand_ins / "imagenet"), "validation")
    assert label_set(data).tolist() == [0, 1, 2, 3]
    assert label_set(data.select(range(2))).tolist() == [0, 1]  # what a cut would have given


def test_zeroshot_head_is_normalised_mean_of_templates(stand_ins):
    import torch
    from transformers import AutoProcessor, CLIPModel

    from reprozoo.papers.bang.clip import zeroshot_head

    model = CLIPModel.from_pretrained(str(stand_ins / "clip"))
    tok = AutoProcessor.from_pretrained(str(stand_ins / "clip")).tokenizer
    head = zeroshot_head(model, tok, ["cat", "dog"], ("a {}.", "the {}!"), "cpu")
    assert torch.allclose(head.norm(dim=-1), model.logit_scale.exp().expand(2), atol=1e-5)
    with torch.no_grad():
        e = model.get_text_features(**tok(["a cat.", "the cat!"], padding=True, return_tensors="pt"))
        e = e if torch.is_tensor(e) else e.pooler_output
        e = (e / e.norm(dim=-1, keepdim=True)).mean(0)
    assert torch.allclose(head[0], model.logit_scale.exp() * e / e.norm(), atol=1e-5)


def test_finetune_changes_every_part_of_the_classifier(stand_ins):
    import torch
    from transformers import AutoProcessor, CLIPModel

    from reprozoo.common.data.images import ImageBatches, open_images
    from reprozoo.papers.bang import clip
    from reprozoo.papers.bang.training import cosine_lr, finetune_loss

    model = CLIPModel.from_pretrained(str(stand_ins / "clip"))
    proc = AutoProcessor.from_pretrained(str(stand_ins / "clip"))
    zs = clip.CLIPClassifier(model, clip.zeroshot_head(model, proc.tokenizer, CLASSES, ("a {}.",), "cpu"))
    batches = ImageBatches(open_images(str(stand_ins / "imagenet"), "train"), proc.image_processor, 8)
    loss = finetune_loss("bang", 4, 0.1, 0.2, torch.Generator().manual_seed(0))
    kw = dict(lr=1e-3, weight_decay=0.1, warmup=1, clip=1.0, seed=0, device="cpu", schedule=cosine_lr)
    ft = clip.finetune(zs, batches, loss, 2, **kw)
    before, after = zs.state_dict(), ft.state_dict()
    for part in ("vision.embeddings.patch_embedding.weight", "proj.weight", "head.weight", "head.bias"):
        assert not torch.equal(before[part], after[part]), part
    again = clip.finetune(zs, batches, finetune_loss("bang", 4, 0.1, 0.2, torch.Generator().manual_seed(0)), 2, **kw)
    assert all(torch.equal(after[k], again.state_dict()[k]) for k in after)  # seeded: deterministic


def test_missing_shift_is_a_clear_error(stand_ins, tmp_path, capsys):
    from reprozoo.common.cli import main
    from reprozoo.papers.bang import claims, experiment

    argv = ["--preset", "full", "--model", str(stand_ins / "clip"), "--dataset", str(stand_ins / "imagenet")]
    argv += ["--shifts", f"objectnet={tmp_path / 'nowhere'}", "--device", "cpu", "--out", str(tmp_path / "o")]
    kw = dict(paper="bang", config_cls=experiment.Config, presets=experiment.PRESETS, run=experiment.run)
    assert main(argv=argv, claims=claims.check, results=tmp_path / "results", **kw) == 2
    assert "--shifts: objectnet=" in capsys.readouterr().err
