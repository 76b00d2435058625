import pytest

pytest.importorskip("math_verify")

from reprozoo.common.data.math import ANSWER_LINE, BOXED  # noqa: E402
from reprozoo.common.verify import (  # noqa: E402
    blank_line_steps,
    extract_answer,
    family_of,
    is_correct,
    separator_ids,
    split_thinking,
    traac_steps,
)


def test_is_correct_follows_math_verify_and_the_prompt_convention():
    assert is_correct("<think>hmm</think> so $\\boxed{\\frac{1}{2}}$", "0.5")
    assert is_correct("think... </think>The answer is \\boxed{\\dfrac12}.", "\\frac{1}{2}")
    assert not is_correct("think... </think>\\boxed{3}", "2")
    assert not is_correct("never closed \\boxed{2}", "2")  # official: no </think>, no credit
    assert is_correct("never closed \\boxed{2}", "2", close=None)
    dapo = "</think>Adding up, we get 12.\nAnswer: 12"
    assert is_correct(dapo, "12", ANSWER_LINE) and not is_correct(dapo, "13", ANSWER_LINE)
    assert not is_correct("</think>the result is 12", "12", ANSWER_LINE)  # no Answer: line
    with pytest.raises(ValueError, match="convention"):
        is_correct("</think>1", "1", "free")


def test_extraction_and_thinking_span():
    assert extract_answer("x \\boxed{2} y \\boxed{3}", BOXED) == "3"
    assert extract_answer("Answer: 4\nmore\nAnswer: $5$", ANSWER_LINE) == "5"
    assert split_thinking("a</think>b</think>c") == ("a", "c")
    assert split_thinking("open") == ("open", None)
    assert family_of("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B") == "deepseek-r1" and family_of("Qwen/QwQ-32B") == "qwq"


def test_blank_line_steps_and_separator_ids():
    assert blank_line_steps("one\n\ntwo\n\n\n three \n\n") == ["one", "two", "three"]

    class Tok:
        def get_vocab(self):
            return {"ĊĊ": 5, ".ĊĊ": 9, "Ċ": 2, "a": 0, "\n\n": 7}

    assert separator_ids(Tok()) == [5, 7, 9]


def test_traac_steps_follow_the_official_segmentation():
    toks = ["Let", "Ġx", "=1.", "ĠWait", ",", "Ġcheck", ".", "So", "Ġx", "=1"]
    # "Let" does not match "Let me"; "ĠWait" starts one character before "Wait", so it stays in step 0 (official).
    assert traac_steps(toks) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert traac_steps(["a", "b"]) == [[0, 1]] and traac_steps([]) == []
    assert traac_steps(["Now", "Ġgo"]) == [[0, 1]]
