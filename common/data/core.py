"""Open a dataset by hub id or local path, the same way for every `full` preset.

`load_any(source, split)` accepts
- a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`,
- a local `.parquet`, `.json`, `.jsonl` or `.csv` file (one split, returned whatever `split` names),
- a hub id such as `HuggingFaceH4/ultrafeedback_binarized` (optionally `id:config`, e.g. `openai/gsm8k:main`),
  downloaded by `datasets` on a connected machine.
"""

from __future__ import annotations

from pathlib import Path

LOCAL_FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


class DatasetError(ValueError):
    """A dataset that cannot be opened or does not have the schema asked for (the CLI reports it as bad input)."""


def load_any(source: str, split: str | None = None, max_rows: int | None = None):
    """The `datasets.Dataset` named by `source` (hub id[:config], save_to_disk folder or data file), one split.

    `split=None` takes the only split, or fails listing them if there are several. `max_rows` keeps the first rows.
    """
    import datasets

    if max_rows is not None and max_rows < 1:
        raise DatasetError(f"max_rows must be >= 1, got {max_rows}")
    path = Path(source).expanduser()
    if path.is_dir():
        data = datasets.load_from_disk(str(path))
    elif path.is_file():
        kind = LOCAL_FORMATS.get(path.suffix.lower())
        if kind is None:
            raise DatasetError(f"{source}: unknown data file type {path.suffix!r} (known: {sorted(LOCAL_FORMATS)})")
        data = datasets.load_dataset(kind, data_files=str(path), split="train")
    elif source.startswith((".", "/", "~")) or path.suffix.lower() in LOCAL_FORMATS:
        raise DatasetError(f"{source}: no such file or folder")
    else:
        name, _, config = source.partition(":")
        data = datasets.load_dataset(name, config or None)
    if isinstance(data, datasets.DatasetDict):
        data = _one_split(data, split, source)
    if max_rows is not None:
        data = data.select(range(min(max_rows, len(data))))
    return data


def _one_split(data, split: str | None, source: str):
    names = list(data)
    if split is None:
        if len(names) != 1:
            raise DatasetError(f"{source} has splits {names}: name one")
        split = names[0]
    if split not in data:
        raise DatasetError(f"{source} has no split {split!r} (it has {names})")
    return data[split]


def require_columns(data, columns: list[str], source: str, schema: str) -> None:
    """Fail clearly when `data` lacks a column the `schema` needs."""
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise DatasetError(f"{source}: missing columns {missing} for the {schema} schema (it has {data.column_names})")
