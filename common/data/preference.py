"""RLHF preference datasets mapped to TRL's conversational formats (the `full` presets of par, ensembles, power_dl).

Schemas (`FORMATS`; detected from the columns, or named by `--dataset-format`):
- `ultrafeedback` (HuggingFaceH4/ultrafeedback_binarized; splits train_prefs / test_prefs): `prompt` (str),
  `prompt_id`, `chosen` / `rejected` (the **whole conversation**, user turn included), `messages`,
  `score_chosen` / `score_rejected`. TRL's trainers fail on this layout as it is (string prompt + conversational
  chosen: `TypeError: can only concatenate str (not "list") to str`), so the prompt turns are split off.
- `hh_rlhf` (Anthropic/hh-rlhf; splits train / test): `chosen` / `rejected` transcripts
  "\\n\\nHuman: …\\n\\nAssistant: …"; the prompt is every turn before the final "Assistant:" turn.
- `alpacafarm` (tatsu-lab/alpaca_farm, config alpaca_human_preference; split preference): `instruction`, `input`,
  `output_1`, `output_2`, `preference` (1 or 2: the preferred output).
- `coste_pref` (tlc4418/1.4b-policy_preference_data_gold_labelled, Coste et al.'s RM training data):
  `instruction`, `input`, `answers` (2 answers), `preference` (0 or 1: index of the preferred answer).
- `coste_gold` (tlc4418/gold_labelled_gens; split validation, Coste et al.'s best-of-n data): `instruction`,
  `input`, `answers` (N answers of the SFT policy), `gold_scores` (the gold RM's score of each answer).
The instruction/input prompt is "instruction\\ninput" (input omitted when empty), as Coste et al.'s official
`rm_dataset_formatter.py` writes it.

Outputs (`datasets.Dataset`): `pairs(...)` → `prompt` (list of messages), `chosen` / `rejected` (one assistant
message each): TRL's conversational preference format with an explicit prompt, accepted by its reward and DPO
trainers. `prompts(...)` → `prompt` only (generation / RL). `generations(...)` (coste_gold) → `prompt`,
`answers`, `gold_scores`.
"""

from __future__ import annotations

import re

from reprozoo.common.data.core import DatasetError, load_any, require_columns

COLUMNS = {
    "ultrafeedback": ["prompt", "chosen", "rejected", "score_chosen", "score_rejected"],
    "coste_gold": ["instruction", "input", "answers", "gold_scores"],
    "coste_pref": ["instruction", "input", "answers", "preference"],
    "alpacafarm": ["instruction", "input", "output_1", "output_2", "preference"],
    "hh_rlhf": ["chosen", "rejected"],
}
"""Columns that identify each schema, most specific first (detection takes the first whose columns are present)."""
FORMATS = tuple(COLUMNS)
PAIR_FORMATS = ("ultrafeedback", "hh_rlhf", "alpacafarm", "coste_pref")
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


SPLIT_PAIRS = (("train_prefs", "test_prefs"), ("train", "test"), ("train", "validation"))
"""(training, evaluation) split names, in the order they are looked for (UltraFeedback's first)."""


def split_names(source: str) -> list[str]:
    """The split names of a hub id[:config], a save_to_disk folder (a lone Dataset is 'train') or a data file."""
    from pathlib import Path

    import datasets

    path = Path(source).expanduser()
    if path.is_dir():
        data = datasets.load_from_disk(str(path))
        return list(data) if isinstance(data, datasets.DatasetDict) else ["train"]
    if path.is_file():
        return ["train"]
    if source.startswith((".", "/", "~")):
        raise DatasetError(f"{source}: no such file or folder")
    name, _, config = source.partition(":")
    return list(datasets.get_dataset_split_names(name, config or None))


def train_eval_splits(source: str) -> tuple[str, str]:
    """(training split, evaluation split) of `source`: the first pair of `SPLIT_PAIRS` it has."""
    names = split_names(source)
    for train, test in SPLIT_PAIRS:
        if train in names and test in names:
            return train, test
    raise DatasetError(f"{source} has splits {names}: a training and an evaluation split are needed {SPLIT_PAIRS}")


def detect_format(columns: list[str], source: str = "dataset") -> str:
    """The schema whose identifying columns `columns` contain (see `COLUMNS`)."""
    for name, cols in COLUMNS.items():
        if set(cols) <= set(columns):
            return name
    raise DatasetError(
        f"{source}: columns {columns} match none of the schemas {FORMATS}; name one with --dataset-format"
    )


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def instruction_prompt(instruction: str, input_text: str | None) -> str:
    """Coste et al.'s / AlpacaFarm's prompt text: the instruction, then the input on a new line when there is one."""
    return f"{instruction}\n{input_text}" if input_text else instruction


def _split_conversation(conv: list[dict], source: str) -> tuple[list[dict], list[dict]]:
    if not conv or conv[-1].get("role") != "assistant":
        raise DatasetError(f"{source}: a chosen/rejected conversation must end with an assistant turn, got {conv!r}")
    return [{"role": m["role"], "content": m["content"]} for m in conv[:-1]], _assistant(conv[-1]["content"])


def hh_turns(transcript: str) -> list[dict]:
    """An Anthropic HH transcript "\\n\\nHuman: a\\n\\nAssistant: b…" as a list of messages."""
    parts = _HH_TURN.split(transcript)
    if len(parts) < 3 or parts[0].strip():
        raise DatasetError(f"not an HH-RLHF transcript: {transcript[:80]!r}")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[r], "content": c} for r, c in zip(parts[1::2], parts[2::2], strict=True)]


def _pair_row(row: dict, fmt: str, source: str) -> dict:
    if fmt == "ultrafeedback":  # the pitfall: chosen/rejected hold the user turn too
        prompt, chosen = _split_conversation(row["chosen"], source)
        _, rejected = _split_conversation(row["rejected"], source)
    elif fmt == "hh_rlhf":
        prompt, chosen = _split_conversation(hh_turns(row["chosen"]), source)
        _, rejected = _split_conversation(hh_turns(row["rejected"]), source)
    elif fmt == "alpacafarm":
        if row["preference"] not in (1, 2):
            raise DatasetError(f"{source}: alpacafarm preference must be 1 or 2, got {row['preference']!r}")
        prompt = _user(instruction_prompt(row["instruction"], row["input"]))
        win, lose = ("output_1", "output_2") if row["preference"] == 1 else ("output_2", "output_1")
        chosen, rejected = _assistant(row[win]), _assistant(row[lose])
    elif fmt == "coste_pref":
        if row["preference"] not in (0, 1) or len(row["answers"]) != 2:
            raise DatasetError(f"{source}: coste_pref needs 2 answers and preference 0 or 1, got {row['preference']!r}")
        prompt = _user(instruction_prompt(row["instruction"], row["input"]))
        p = row["preference"]
        chosen, rejected = _assistant(row["answers"][p]), _assistant(row["answers"][1 - p])
    else:
        raise DatasetError(f"{source}: {fmt} holds no preference pairs (pair schemas: {PAIR_FORMATS})")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _open(source: str, split: str | None, fmt: str | None, max_rows: int | None):
    data = load_any(source, split, max_rows)
    if fmt is None:
        fmt = detect_format(data.column_names, source)
    elif fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {FORMATS}")
    require_columns(data, COLUMNS[fmt], source, fmt)
    return data, fmt


def pairs(source: str, split: str | None = None, fmt: str | None = None, max_rows: int | None = None):
    """Preference pairs as TRL's conversational explicit-prompt format: `prompt`, `chosen`, `rejected`."""
    data, fmt = _open(source, split, fmt, max_rows)
    out = data.map(lambda row: _pair_row(row, fmt, source), remove_columns=data.column_names)
    return out.select_columns(["prompt", "chosen", "rejected"])


def prompts(source: str, split: str | None = None, fmt: str | None = None, max_rows: int | None = None):
    """The prompts of any schema as `prompt` (a list of messages), in dataset order."""
    data, fmt = _open(source, split, fmt, max_rows)
    if fmt in ("alpacafarm", "coste_pref", "coste_gold"):
        fn = lambda row: {"prompt": _user(instruction_prompt(row["instruction"], row["input"]))}  # noqa: E731
    else:
        fn = lambda row: {"prompt": _pair_row(row, fmt, source)["prompt"]}  # noqa: E731
    return data.map(fn, remove_columns=data.column_names)


def generations(source: str, split: str | None = None, fmt: str | None = None, max_rows: int | None = None):
    """Coste et al.'s gold-labelled generations: `prompt`, `answers` (N strings), `gold_scores` (N floats)."""
    data, fmt = _open(source, split, fmt, max_rows)
    if fmt != "coste_gold":
        raise DatasetError(f"{source}: best-of-n needs gold-labelled generations (coste_gold), this is {fmt}")

    def row_fn(row):
        if len(row["answers"]) != len(row["gold_scores"]) or not row["answers"]:
            raise DatasetError(f"{source}: each row needs as many gold_scores as answers (and at least one)")
        return {"prompt": _user(instruction_prompt(row["instruction"], row["input"]))}

    return data.map(row_fn, remove_columns=["instruction", "input"])
