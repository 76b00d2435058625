"""Image-classification datasets (ImageNet layout: an `image` column and an integer `label` column) for the
`full` presets that fine-tune or evaluate vision models.

`open_images(source, split, max_rows)` opens the dataset with `load_any` (hub id, `save_to_disk` folder or data
file) and checks the schema; `class_names(data)` reads the label names of its `ClassLabel` feature;
`ImageBatches` turns rows into model inputs with a `transformers` image processor, lazily, batch by batch.
"""

from __future__ import annotations

from pathlib import Path

from reprozoo.common.data.core import DatasetError, load_any, require_columns

COLUMNS = ["image", "label"]


def open_images(source: str, split: str | None = None, max_rows: int | None = None):
    """The image-classification `datasets.Dataset` named by `source` (one split), with `image` and `label`."""
    data = load_any(source, split, max_rows)
    require_columns(data, COLUMNS, source, "image-classification (ImageNet)")
    return data


def class_names(data, override: str | None = None) -> list[str]:
    """Class names in label order: one per line of the file `override`, else the `label` ClassLabel's names (the
    first synonym of ImageNet's comma-separated WordNet names, "tench, Tinca tinca" → "tench")."""
    if override:
        names = [line.strip() for line in Path(override).expanduser().read_text().splitlines() if line.strip()]
        if not names:
            raise DatasetError(f"{override}: no class names")
        return names
    feature = data.features["label"]
    if not hasattr(feature, "names"):
        raise DatasetError("the label column has no class names (not a ClassLabel): give a class-names file")
    return [n.split(",")[0].strip() for n in feature.names]


class ImageBatches:
    """Rows [start, stop) of an image dataset in batches: (pixel_values [B, 3, H, W], labels [B]) made by
    `processor` (a transformers image processor), images converted to RGB."""

    def __init__(self, data, processor, batch_size: int):
        self.data, self.processor, self.batch_size = data, processor, batch_size

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def batch(self, rows: list[int]):
        import torch

        part = self.data.select(rows)
        images = [im.convert("RGB") for im in part["image"]]
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        return pixels, torch.as_tensor(part["label"], dtype=torch.long)

    def __iter__(self):
        for start in range(0, len(self.data), self.batch_size):
            yield self.batch(list(range(start, min(start + self.batch_size, len(self.data)))))
