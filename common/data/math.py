"""Math benchmarks and RL prompt sets → the project's `MathProblem` rows (ReBalance and TRAAC `full` presets).

Accepted layouts (hub id, `save_to_disk` folder or parquet / json / jsonl file, via `core.load_any`):
- MATH / MATH-500 (`HuggingFaceH4/MATH-500`, split `test`): `problem`, `answer` (or only `solution`, whose last
  `\\boxed{}` is the answer: the MATH train set used for ReBalance's calibration), optional `level`, `unique_id`;
- GSM8K (`openai/gsm8k:main`): `question`, `answer` ending in `#### N`;
- AIME sets: `problem` / `Problem` / `question` and `answer` / `Answer` (e.g. `HuggingFaceH4/aime_2024`,
  `Maxwell-Jia/AIME_2024`, `opencompass/AIME2025`), optional `id` / `ID`;
- DAPO-Math-17k in verl's format (`BytedTsinghua-SIA/DAPO-Math-17k`): `data_source`, `prompt` (a message list),
  `ability`, `reward_model` {`ground_truth`, `style`}, `extra_info` {`index`}. Its prompts ask for a last line
  "Answer: $Answer" instead of `\\boxed{}`: the row records that convention and `common.verify` follows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from reprozoo.common.data.core import DatasetError, load_any

BOXED = "boxed"
ANSWER_LINE = "answer_line"
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""The system prompt of ReBalance's official inference (`transformer_inference_steer_dp.py`) and of DeepSeek-R1's
recommended math prompt."""

QUESTION_COLUMNS = ("problem", "Problem", "question", "Question")
ANSWER_COLUMNS = ("answer", "Answer")
ID_COLUMNS = ("unique_id", "id", "ID", "idx")


@dataclass(frozen=True)
class MathProblem:
    """One problem: the question text, the gold final answer (no `\\boxed{}`), how the prompt asks for the answer
    (`boxed` or `answer_line`), the schema it came from, and the dataset's own chat prompt when it has one (DAPO)."""

    id: str
    question: str
    answer: str
    convention: str
    schema: str
    level: int | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content) pairs of the dataset's own prompt

    def chat(self, system: str | None = BOXED_INSTRUCTION) -> list[dict[str, str]]:
        """The chat messages to prompt a model with: the dataset's own prompt (DAPO), else `system` (default: the
        `\\boxed{}` instruction) and the question as the user turn."""
        if self.messages is not None:
            return [{"role": r, "content": c} for r, c in self.messages]
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": "user", "content": self.question}]


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces matched; None if there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def gsm8k_answer(solution: str) -> str:
    """GSM8K's final answer: the text after `####`, thousands separators removed."""
    if "####" not in solution:
        raise DatasetError(f"GSM8K answer without '####': {solution[-80:]!r}")
    return solution.split("####")[-1].strip().replace(",", "")


def _level(value) -> int | None:
    """MATH levels come as 1..5 or as "Level 3"."""
    if value is None:
        return None
    found = re.search(r"\d+", str(value))
    return int(found.group()) if found else None


def _first(columns: list[str], names: tuple[str, ...]) -> str | None:
    return next((c for c in names if c in columns), None)


def schema_of(columns: list[str], source: str) -> str:
    """ "dapo", "gsm8k" (decided per row by `####`, see `rows`), or "qa" (MATH / MATH-500 / AIME); fails clearly."""
    if "prompt" in columns and "reward_model" in columns:
        return "dapo"
    if _first(columns, QUESTION_COLUMNS) and (_first(columns, ANSWER_COLUMNS) or "solution" in columns):
        return "qa"
    raise DatasetError(
        f"{source}: not a known math layout (it has {columns}); expected MATH-500 (problem, answer), GSM8K "
        "(question, answer with '#### N'), AIME (problem/question, answer) or verl's DAPO (prompt, reward_model)"
    )


def rows(data, source: str) -> Iterator[MathProblem]:
    """The `MathProblem` rows of an opened `datasets.Dataset`, in order."""
    columns = list(data.column_names)
    schema = schema_of(columns, source)
    if schema == "dapo":
        for i, row in enumerate(data):
            gold = (row["reward_model"] or {}).get("ground_truth")
            if gold is None or not row["prompt"]:
                raise DatasetError(f"{source} row {i}: DAPO row without reward_model.ground_truth or prompt")
            msgs = tuple((m["role"], m["content"]) for m in row["prompt"])
            user = next((c for r, c in reversed(msgs) if r == "user"), msgs[-1][1])
            index = (row.get("extra_info") or {}).get("index", i)
            convention = ANSWER_LINE if re.search(r"Answer\s*:", user) else BOXED
            yield MathProblem(str(index), user, str(gold).strip(), convention, "dapo", None, msgs)
        return
    q_col, a_col, id_col = (
        _first(columns, QUESTION_COLUMNS),
        _first(columns, ANSWER_COLUMNS),
        _first(columns, ID_COLUMNS),
    )
    for i, row in enumerate(data):
        raw = row[a_col] if a_col else None
        if isinstance(raw, str) and "####" in raw:
            answer, schema = gsm8k_answer(raw), "gsm8k"
        elif raw is not None and str(raw).strip():
            answer, schema = str(raw).strip(), "qa"
        else:
            answer, schema = last_boxed(row.get("solution") or ""), "qa"
            if answer is None:
                raise DatasetError(f"{source} row {i}: no answer column and no \\boxed{{}} in its solution")
        ident = str(row[id_col]) if id_col else str(i)
        yield MathProblem(ident, row[q_col], answer, BOXED, schema, _level(row.get("level")))


def load_math(
    source: str, split: str | None = None, max_rows: int | None = None, *, prefer: str | None = None
) -> list[MathProblem]:
    """Open `source` (hub id[:config], save_to_disk folder or data file) and map it onto `MathProblem` rows.

    `split=None` takes the only split; with several, the `prefer`red one (e.g. "test" for a benchmark, "train" for a
    calibration or RL prompt set), else it fails listing them. Repeated problems (same question and answer) are kept
    once: the hub's DAPO-Math-17k holds its ≈ 17k prompts about 100 times (BytedTsinghua-SIA/DAPO issue #36) and
    verl's AIME 2024 parquet repeats its 30 problems 32 times (verl issue #3065). `max_rows` counts distinct
    problems, in the dataset's order."""
    if max_rows is not None and max_rows < 1:
        raise DatasetError(f"max_rows must be >= 1, got {max_rows}")
    try:
        data = load_any(source, split)
    except DatasetError as err:
        if split is not None or prefer is None or "name one" not in str(err):
            raise
        data = load_any(source, prefer)
    out, seen = [], set()
    for problem in rows(data, source):
        if (problem.question, problem.answer) not in seen:
            seen.add((problem.question, problem.answer))
            out.append(problem)
            if max_rows is not None and len(out) >= max_rows:
                break
    if not out:
        raise DatasetError(f"{source}: no rows")
    return out
