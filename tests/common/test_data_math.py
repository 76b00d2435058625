import pytest

datasets = pytest.importorskip("datasets")

from reprozoo.common.data.core import DatasetError  # noqa: E402
from reprozoo.common.data.math import ANSWER_LINE, BOXED, last_boxed, load_math  # noqa: E402

DAPO_PROMPT = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{q}\n\nRemember to put your "
    'answer on its own line after "Answer:".'
)


def dapo(n=2):
    return datasets.Dataset.from_dict(
        {
            "data_source": ["math_dapo"] * n,
            "prompt": [[{"role": "user", "content": DAPO_PROMPT.format(q=f"What is {i} + 1?")}] for i in range(n)],
            "ability": ["MATH"] * n,
            "reward_model": [{"ground_truth": str(i + 1), "style": "rule-lighteval/MATH_v2"} for i in range(n)],
            "extra_info": [{"index": f"id-{i}"} for i in range(n)],
        }
    )


def test_every_layout_maps_to_rows(tmp_path):
    math500 = datasets.DatasetDict(
        test=datasets.Dataset.from_dict(
            {
                "problem": ["What is $1+1$?"],
                "solution": ["It is $\\boxed{2}$."],
                "answer": ["2"],
                "subject": ["Algebra"],
                "level": [1],
                "unique_id": ["test/algebra/1.json"],
            }
        )
    )
    math500.save_to_disk(tmp_path / "m500")
    (row,) = load_math(str(tmp_path / "m500"), "test")
    assert (row.id, row.answer, row.convention, row.level, row.schema) == ("test/algebra/1.json", "2", BOXED, 1, "qa")
    assert row.chat()[0]["role"] == "system" and row.chat()[-1] == {"role": "user", "content": "What is $1+1$?"}

    gsm = datasets.Dataset.from_dict({"question": ["Q?"], "answer": ["Work... 3*400=1,200\n#### 1,200"]})
    gsm.to_parquet(tmp_path / "gsm.parquet")
    (row,) = load_math(str(tmp_path / "gsm.parquet"))
    assert (row.answer, row.schema) == ("1200", "gsm8k")

    aime = datasets.Dataset.from_dict({"ID": ["2024-I-1"], "Problem": ["Find x."], "Answer": [204]})
    aime.to_json(tmp_path / "aime.jsonl")
    (row,) = load_math(str(tmp_path / "aime.jsonl"))
    assert (row.id, row.question, row.answer) == ("2024-I-1", "Find x.", "204")

    train = datasets.Dataset.from_dict(
        {"problem": ["P"], "solution": ["so $\\boxed{\\frac{1}{2}}$"], "level": ["Level 4"]}
    )
    (row,) = load_math(_save(train, tmp_path / "train"))
    assert (row.answer, row.level) == ("\\frac{1}{2}", 4)

    repeated = datasets.concatenate_datasets([dapo(3)] * 3)  # the hub's DAPO-Math-17k repeats its prompts ~100x
    rows = load_math(_save(repeated, tmp_path / "dapo"), max_rows=2)
    assert len(load_math(str(tmp_path / "dapo"))) == 3
    assert [r.answer for r in rows] == ["1", "2"] and rows[1].id == "id-1"
    assert rows[0].convention == ANSWER_LINE and rows[0].chat() == [dict(role="user", content=rows[0].question)]


def _save(ds, path):
    ds.save_to_disk(path)
    return str(path)


def test_bad_layouts_fail_clearly(tmp_path):
    with pytest.raises(DatasetError, match="not a known math layout"):
        load_math(_save(datasets.Dataset.from_dict({"text": ["x"]}), tmp_path / "bad"))
    with pytest.raises(DatasetError, match="no answer column"):
        load_math(_save(datasets.Dataset.from_dict({"problem": ["x"], "solution": ["no box"]}), tmp_path / "nobox"))


def test_last_boxed_matches_braces():
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{a}{b}} end") == "\\frac{a}{b}"
    assert last_boxed("no answer") is None and last_boxed("\\boxed{unclosed") is None
