"""Math answers, thinking spans and reasoning steps of real reasoning models (ReBalance and TRAAC `full` presets).

- `is_correct`: the final answer checked with `math-verify` (Hugging Face's maintained verifier, the one TRAAC's
  official `verl/utils/reward_score/math_verify_sum.py` calls): gold wrapped as `\\boxed{gold}` and parsed as LaTeX,
  the prediction parsed as an expression or LaTeX, from the text after the thinking (official: no `</think>`, no
  credit). Prompts that ask for a last line "Answer: …" (DAPO-Math) are read at that line.
- Thinking tags per model family (`THINK_TAGS`) and `thinking_prompt`, which renders a chat with the tokenizer's own
  template and opens the thinking span when the template does not (Qwen3 leaves `<think>` to the model).
- Step splitters: `blank_line_steps` (ReBalance: the thinking text split at blank lines, official
  `re.split(r"\\n\\n+", …)`), `separator_ids` (ReBalance online: every vocabulary token holding a blank line, official
  `"ĊĊ" in token`) and `traac_steps` (TRAAC: the official discourse-marker segmentation over token strings).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from reprozoo.common.data.math import ANSWER_LINE, BOXED, last_boxed

THINK_TAGS: dict[str, tuple[str, str]] = {
    "qwen3": ("<think>", "</think>"),  # Qwen3-*: the model opens <think> itself (enable_thinking=True)
    "deepseek-r1": ("<think>", "</think>"),  # DeepSeek-R1-Distill-*: recent templates end with "<think>\n"
    "qwq": ("<think>", "</think>"),  # QwQ-32B: the template ends with "<think>\n"
}
"""Opening and closing thinking tags of each supported reasoning-model family."""


def family_of(model: str) -> str:
    """The thinking-tag family of a hub id or local path (by name); every family here uses <think> … </think>."""
    name = model.lower()
    if "qwq" in name:
        return "qwq"
    if "deepseek" in name or "r1" in name:
        return "deepseek-r1"
    return "qwen3"


def thinking_prompt(tokenizer, messages: list[dict[str, str]], family: str = "qwen3") -> str:
    """The tokenizer's chat template with the generation prompt, ending inside an opened thinking span."""
    if tokenizer.chat_template is None:
        raise ValueError("the tokenizer has no chat template; a reasoning model's tokenizer must carry one")
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    open_tag = THINK_TAGS[family][0]
    if not text.rstrip().endswith(open_tag):
        text += open_tag + "\n"
    return text


def split_thinking(response: str, close: str = "</think>") -> tuple[str, str | None]:
    """(thinking, answer part): the text before the first `close` and after the last one (official ReBalance and
    TRAAC); the answer part is None when the thinking was never closed."""
    if close not in response:
        return response, None
    return response.split(close)[0], response.split(close)[-1]


TIMEOUT_S = 5
"""Seconds math-verify may spend parsing or comparing one answer (its default) before the answer counts as wrong."""
ANSWER_LINE_RE = re.compile(r"Answer\s*:\s*(.+)")


def extract_answer(text: str, convention: str) -> str | None:
    """The final answer as the prompt asked for it: the last `\\boxed{}` (`boxed`), or the last "Answer: …" line
    (`answer_line`, DAPO-Math's instruction "The last line of your response should be of the form Answer: $Answer");
    None when absent."""
    if convention == BOXED:
        return last_boxed(text)
    if convention == ANSWER_LINE:
        found = ANSWER_LINE_RE.findall(text)
        return found[-1].strip().strip("$").strip() if found else None
    raise ValueError(f"unknown answer convention {convention!r}; choose {BOXED} or {ANSWER_LINE}")


def is_correct(response: str, gold: str, convention: str = BOXED, *, close: str | None = "</think>") -> bool:
    """math-verify equivalence of the response's final answer with `gold`.

    `close`: the thinking must be closed and only the text after it counts (official TRAAC `getCorrectness`);
    None checks the whole response. `boxed`: math-verify reads the answer part itself (gold `\\boxed{gold}` as LaTeX;
    prediction as an expression or LaTeX, as the official `math_metric` configuration); `answer_line`: the last
    "Answer: …" line is extracted first and verified the same way.
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    if close is not None:
        _, answer = split_thinking(response, close)
        if answer is None:
            return False
    else:
        answer = response
    if convention == ANSWER_LINE:
        answer = extract_answer(answer, ANSWER_LINE)
        if answer is None:
            return False
        answer = f"${answer}$"
    elif convention != BOXED:
        raise ValueError(f"unknown answer convention {convention!r}; choose {BOXED} or {ANSWER_LINE}")
    # math-verify's timeouts are SIGALRM-based: only the main thread can use them (elsewhere: none)
    limit = TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    gold_parsed = parse("\\boxed{" + gold + "}", extraction_config=[LatexExtractionConfig()], parsing_timeout=limit)
    pred = parse(answer, extraction_config=[ExprExtractionConfig(), LatexExtractionConfig()], parsing_timeout=limit)
    if not gold_parsed or not pred:
        return False
    return bool(verify(gold_parsed, pred, timeout_seconds=limit))


# --------------------------------------------------------------------------- steps


def blank_line_steps(thinking: str) -> list[str]:
    """ReBalance's steps: the thinking text split at blank lines, empty pieces dropped (official
    `split_segments_for_conf`: `re.split(r"\\n\\n+", text)`, stripped)."""
    return [s.strip() for s in re.split(r"\n\n+", thinking) if s.strip()]


def separator_ids(tokenizer) -> list[int]:
    """Vocabulary ids of the tokens that hold a blank line: ReBalance's online step boundaries (official
    `[vocab[t] for t in vocab if "ĊĊ" in t]`, "Ċ" being byte-level BPE's newline); plain "\\n\\n" for tokenizers
    that store text as is."""
    return sorted(i for t, i in tokenizer.get_vocab().items() if "ĊĊ" in t or "\n\n" in t)


TRAAC_MARKERS = (
    "Wait", "Alternatively", "Another angle", "Another approach", "But wait", "Hold on", "Hmm", "Maybe",
    "Looking back", "Okay", "Let me", "First", "Then", "Alright", "Compute", "Correct", "Good", "Got it",
    "I don't see any errors", "I think", "Let me double-check", "Let's see", "Now", "Remember", "Seems solid",
    "Similarly", "So", "Starting", "That's correct", "That seems right", "Therefore", "Thus",
)  # fmt: skip
"""TRAAC's official split markers (`redundant_token_eviction.segment_reasoning_chain`)."""

_MARKER_RE = re.compile("|".join(re.escape(m) for m in sorted(TRAAC_MARKERS, key=len, reverse=True)))


def traac_steps(tokens: Sequence[str]) -> list[list[int]]:
    """TRAAC's official step segmentation over token strings (`tokenizer.convert_ids_to_tokens`): the strings are
    joined, every occurrence of a marker (longest first, no word boundary, case-sensitive) starts a step, and a token
    belongs to the step whose character range holds the token's first character (official `split_by_tokens`; a
    byte-level token such as "ĠWait" starts one character before the marker, so it stays in the previous step, as
    there). Returns the token positions of each step; one step when there is no marker."""
    starts, pos = [], 0
    for t in tokens:
        starts.append(pos)
        pos += len(t)
    cuts = [m.start() for m in _MARKER_RE.finditer("".join(tokens))]
    if not cuts:
        return [list(range(len(tokens)))] if tokens else []
    bounds = ([0] if cuts[0] > 0 else []) + cuts + [pos + 1]
    steps = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        step = [i for i, s in enumerate(starts) if lo <= s < hi]
        if step:
            steps.append(step)
    return steps
