"""ReBalance at paper scale: a Hugging Face reasoning model, a math calibration set and math benchmarks.

Per the official code (yu-lin-li/ReBalance), with the project's method.py (one definition of the method):
1. Calibration (`transformer_inference_dp.py`, `hidden_analysis_auto.py`; `--max_files 500` responses): the model
   decodes the calibration problems greedily; the thinking (before `</think>`) is split into steps at the tokens that
   hold a blank line; a step's confidence is c = exp(mean log π(y_t)) over its tokens; q25/q75 of c over all steps,
   of v = (c_k − c_{k−1})²/4 over consecutive steps; a step (after the first) is positive if its text hits the
   official reflection lexicon or c < q25, negative if it does not and c > q75; its vector is the hidden state at its
   first token (`expected_offset = 1`) at layer L; S = μ_pos − μ_neg. L is the official layer of the model when known
   (`vectors/<model>/steer_vector_layer<L>_conf_mixed.pt`), else the best held-out ridge R² (PCA 64, α = 1).
2. Inference (`transformer_inference_steer_dp.py`): sampling at T = 0.7, top-p 0.95 with the project's
   `SteeringHook` on `model.model.layers[L]` and the step `Controller` (λ = F(c, v) at every step boundary inside the
   thinking span); per-model λ values from the official `MODEL_DYN_DEFAULTS`.
3. Scoring: `common.verify.is_correct` (math-verify) on the text after `</think>`; thinking length in tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from reprozoo.common import checkpoint
from reprozoo.common.data.math import MathProblem, load_math
from reprozoo.common.progress import track
from reprozoo.common.results import record
from reprozoo.common.verify import THINK_TAGS, family_of, is_correct, separator_ids, thinking_prompt
from reprozoo.common.worlds.reasoning import rollout
from reprozoo.papers.rebalance.baselines import controller_for
from reprozoo.papers.rebalance.method import (
    Control,
    SteeringHook,
    choose_layer,
    label_steps,
    offline_confidence,
    prototypes,
    steering_vector,
    variance_proxy,
)

OFFICIAL: dict[str, dict[str, float]] = {
    "DeepSeek-R1-Distill-Qwen-1.5B": dict(
        layer=19, q25c=0.662293, q75c=0.94805, q25v=0.000560, q75v=0.011597, low_val_1=-1.02, low_val_2=-1.91
    ),
    "DeepSeek-R1-Distill-Qwen-7B": dict(
        layer=22, q25c=0.666017, q75c=0.927745, q25v=0.000488, q75v=0.009931, low_val_1=-1.19, low_val_2=-2.34
    ),
    "QwQ-32B": dict(
        layer=58, q25c=0.700670, q75c=0.917506, q25v=0.000386, q75v=0.007279, low_val_1=-1.31, low_val_2=-2.73
    ),
    "Qwen3-14B": dict(q25c=0.816174, q75c=0.965398, q25v=0.000149, q75v=0.003593, low_val_1=-1.03, low_val_2=-1.13),
}
"""Official per-model values (`transformer_inference_steer_dp.py` MODEL_DYN_DEFAULTS; Qwen3-14B from
`transformer_inference_steer_dp_qwen3.py` MODEL_DYN_HPARAMS; high_val_2 = 0.1 for all; the layer from the released
`vectors/<model>/steer_vector_layer<L>_conf_mixed.pt`: none for Qwen3-14B, whose layer is searched). The official
Qwen3 script also applies a repetition penalty of 1.18 during sampling, which this run does not."""

LEXICON = (
    "alternatively", "alternative", "another", "perhaps", "maybe", "wait", "but", "think again", "make sure",
    "just to ensure", "there any other", "some other", "should consider", "about whether", "if they have", "i was",
    "any errors", "or something", "let me check", "hold on", "double check", "however", "confusing", "differently",
    "careful", "sometimes", "alternate",
)  # fmt: skip
"""The official reflection lexicon (`hidden_analysis_auto.LEXICON_BASE`)."""
_VARIANTS = {
    "alternative": r"alternative(?:s|ly)?",
    "confusing": r"confus(?:e|es|ed|ing)",
    "differently": r"different(?:ly)?",
    "careful": r"careful(?:ly)?",
    "sometimes": r"sometimes?",
    "alternate": r"alternat(?:e|es|ed|ing)",
}
_BETWEEN = r"(?:[-\s]+)"  # official: space or hyphen between the words of a phrase
LEXICON_RE = re.compile(
    "|".join(r"\b" + _BETWEEN.join(_VARIANTS.get(w, re.escape(w)) for w in t.split()) + r"\b" for t in LEXICON),
    re.IGNORECASE,
)
MAX_SEARCH_VECTORS = 4000
"""Step vectors kept (a seeded random subset) for the ridge layer search of a model without an official layer: every
layer's vectors are held in memory at once."""


def official_for(model: str) -> dict[str, float] | None:
    """The official settings of `model` (hub id or a path whose name holds the official model name)."""
    return next((v for k, v in OFFICIAL.items() if k.lower() in model.lower()), None)


def reflective(text: str) -> bool:
    """The official lexicon hit (`has_lexicon_hit`)."""
    return LEXICON_RE.search(text.replace("’", "'").lower()) is not None


@dataclass
class LM:
    """A loaded reasoning model with what the controller needs from its tokenizer."""

    model: torch.nn.Module
    tokenizer: object
    family: str
    sep_ids: torch.Tensor  # tokens that hold a blank line (step boundaries)
    close_id: int  # </think>
    eos_id: int

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_lm(name: str) -> LM:
    """Model (bf16 on a GPU, fp32 on CPU; ReBalance is training-free) and tokenizer by hub id or local path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    tok = AutoTokenizer.from_pretrained(name)
    model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.bfloat16 if cuda else torch.float32)
    model = model.to("cuda" if cuda else "cpu").eval()
    family = family_of(name)
    close = tok.convert_tokens_to_ids(THINK_TAGS[family][1])
    seps = separator_ids(tok)
    if close is None or close == tok.unk_token_id or not seps:
        raise ValueError(f"{name}: the tokenizer needs a {THINK_TAGS[family][1]} token and blank-line tokens")
    return LM(model, tok, family, torch.tensor(seps), close, tok.eos_token_id)


def encode(lm: LM, problems: list[MathProblem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and mask: the chat template with the thinking span opened."""
    texts = [thinking_prompt(lm.tokenizer, p.chat(), lm.family) for p in problems]
    tok = lm.tokenizer
    side, tok.padding_side = tok.padding_side, "left"
    try:
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    return batch["input_ids"], batch["attention_mask"]


def response_ids(lm: LM, row: torch.Tensor) -> list[int]:
    """The response up to (not including) its EOS."""
    ids = row.tolist()
    return ids[: ids.index(lm.eos_id)] if lm.eos_id in ids else ids


def think_len(lm: LM, ids: list[int]) -> int:
    """Tokens before the first </think> (all of them when the thinking is never closed)."""
    return ids.index(lm.close_id) if lm.close_id in ids else len(ids)


def step_spans(lm: LM, ids: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each thinking step: the tokens between blank-line tokens, before </think>; empty steps
    dropped (official: `re.split(r"\\n\\n+", …)`, stripped). `end` is the separator's index (excluded)."""
    seps = set(lm.sep_ids.tolist())
    spans, start = [], 0
    for t, tok in enumerate(ids[: think_len(lm, ids)] + [-1]):
        if tok in seps or tok == -1:
            if t > start:
                spans.append((start, t))
            start = t + 1
    return spans


class CountingHook(SteeringHook):
    """`SteeringHook` that counts the positions it steered (λ ≠ 0), so a run shows the hook fired."""

    fired = 0

    def _add(self, h: torch.Tensor) -> torch.Tensor:
        if self.lam is not None:
            self.fired += int((self.lam != 0).sum())
        return super()._add(h)


@dataclass
class FullCalibration:
    layer: int
    r2: dict[int, float]
    vector: torch.Tensor
    control: Control
    n_pos: int
    n_neg: int
    n_steps: int


@torch.no_grad()
def calibrate(lm: LM, problems: list[MathProblem], cfg, seed: int) -> FullCalibration:
    """Greedy calibration responses → quantiles, labels, layer, prototypes and S (module docstring, item 1)."""
    official = official_for(cfg.model) or {}
    confs, c_next, var, lexicon, vectors = [], [], [], [], []  # c_next, lexicon, vectors: steps after the first
    bs, search = cfg.batch_size, "layer" not in official
    for i in track(range(0, len(problems), bs), "ReBalance calibration"):
        ids, mask = encode(lm, problems[i : i + bs])
        gen, maxprob = rollout(
            lm.model, ids, mask, max_new_tokens=cfg.max_new_tokens, eos_id=lm.eos_id, temperature=0.0
        )
        for b in range(ids.shape[0]):
            resp = response_ids(lm, gen.tokens[b])
            full = torch.cat([ids[b].to(lm.device), gen.tokens[b]])[None]  # one row: 16k tokens × every layer
            am = torch.cat([mask[b].to(lm.device), gen.mask[b].to(mask.dtype)])[None]
            hs = lm.model(input_ids=full, attention_mask=am, output_hidden_states=True, logits_to_keep=1).hidden_states
            spans = step_spans(lm, resp)
            # greedy: log π(y_t) of the chosen token is log max_v π(v); c = exp(mean log π) over the step
            c = [float(offline_confidence(maxprob[b, s:e].float().clamp_min(1e-12).log())) for s, e in spans]
            confs += c
            c_next += c[1:]
            var += [float(variance_proxy(np.float64(x), np.float64(y))) for x, y in zip(c[1:], c[:-1], strict=True)]
            pos = [ids.shape[1] + s for s, _ in spans[1:]]  # the first token of each step after the first
            lexicon += [reflective(lm.tokenizer.decode(resp[s:e])) for s, e in spans[1:]]
            kept = hs if search else [hs[int(official["layer"])]]  # a known layer: keep only its states
            vectors += [torch.stack([h[0, p].float().cpu() for h in kept]) for p in pos]  # (layers+1, d) per step
    if len(vectors) < 4:
        raise ValueError(f"calibration found {len(vectors)} step vectors; use more or longer calibration responses")
    c_all = np.asarray(confs)
    q25, q75 = np.quantile(c_all, [0.25, 0.75])
    qv = np.quantile(var, [0.25, 0.75]) if var else np.array([0.0, 1e-6])
    c_next = np.asarray(c_next)
    labels = label_steps(c_next, np.asarray(lexicon), q25, q75)
    h = torch.stack(vectors)  # (steps, layers+1 or 1, d)
    if not search:
        layer, r2, h_layer = int(official["layer"]), {}, h[:, 0]
    else:
        keep = np.random.default_rng(seed).permutation(len(h))[:MAX_SEARCH_VECTORS]
        by_layer = {ell: h[keep, ell].double().numpy() for ell in range(h.shape[1])}
        layer, r2 = choose_layer(by_layer, c_next[keep], n_components=cfg.pca_components, alpha=cfg.ridge_alpha)
        h_layer = h[:, layer]
    mu_pos, mu_neg = prototypes(h_layer, labels)
    control = Control(
        q25c=float(q25),
        q75c=float(max(q75, q25 + 1e-4)),
        q25v=float(qv[0]),
        q75v=float(max(qv[1], qv[0] + 1e-8)),
        low_val_1=official.get("low_val_1", cfg.low_val_1),
        low_val_2=official.get("low_val_2", cfg.low_val_2),
        high_val_2=cfg.high_val_2,
    )
    n_pos, n_neg = int((labels == 1).sum()), int((labels == -1).sum())
    return FullCalibration(layer, r2, steering_vector(mu_pos, mu_neg).float(), control, n_pos, n_neg, len(confs))


@torch.no_grad()
def generate(lm: LM, problems: list[MathProblem], method: str, cal: FullCalibration, cfg, seed: int):
    """Sample every problem under `method` (T, top-p of the paper); returns the response ids, the controllers and
    the number of steered positions. The controller sees a blank-line token as the separator and </think> as the
    end of the thinking span (official `steering_split_ids`, `steering_think_end_id`)."""
    gen = torch.Generator(device=lm.device).manual_seed(50_000 + seed)  # the same sampling stream for every method
    sep = -1  # the controller's separator id: every blank-line token is mapped onto it
    seps = lm.sep_ids.to(lm.device)
    out, ctrls, fired = [], [], 0
    for i in range(0, len(problems), cfg.batch_size):
        ids, mask = encode(lm, problems[i : i + cfg.batch_size])
        hook = None if method == "base" else CountingHook(lm.model, cal.layer, cal.vector.to(lm.device))
        ctrl = controller_for(
            method,
            hook,
            ids.shape[0],
            sep_id=sep,
            end_id=lm.close_id,
            control=cal.control,
            static_lambda=cfg.static_lambda,
        )

        def on_token(t, tokens, probs, ctrl=ctrl):
            ctrl(t, torch.where(torch.isin(tokens, seps), torch.full_like(tokens, sep), tokens), probs)

        try:
            g, _ = rollout(
                lm.model,
                ids,
                mask,
                max_new_tokens=cfg.max_new_tokens,
                eos_id=lm.eos_id,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                generator=gen,
                on_token=on_token,
            )
        finally:
            if hook is not None:
                hook.remove()
                fired += hook.fired
        out += [response_ids(lm, row) for row in g.tokens.cpu()]
        ctrls.append(ctrl)
    return out, ctrls, fired


def score(lm: LM, method: str, seed: int, problems, responses, fired: int, ctrls, tags: dict) -> list[dict]:
    """Accuracy (math-verify after </think>), thinking and response length, closed-thinking rate, mean λ at the
    step boundaries and the number of steered positions."""
    close = THINK_TAGS[lm.family][1]
    texts = [lm.tokenizer.decode(r, skip_special_tokens=False) for r in responses]
    correct = [is_correct(t, p.answer, p.convention, close=close) for t, p in zip(texts, problems, strict=True)]
    lams = [float(lam[b]) for c in ctrls for _, bd, _, _, lam in c.trace for b in torch.nonzero(bd).flatten().tolist()]
    return [
        record(method, seed, "accuracy", float(np.mean(correct)), **tags),
        record(method, seed, "think_len", float(np.mean([think_len(lm, r) for r in responses])), **tags),
        record(method, seed, "response_len", float(np.mean([len(r) for r in responses])), **tags),
        record(method, seed, "closed", float(np.mean([lm.close_id in r for r in responses])), **tags),
        record(method, seed, "mean_lambda", float(np.mean(lams)) if lams else 0.0, **tags),
        record(method, seed, "steered_positions", fired, **tags),
    ]


def seed_rows(lm: LM, calib: list[MathProblem], evals: dict[str, list[MathProblem]], cfg, seed: int) -> list[dict]:
    """Calibration, then every method on every evaluation set, for one seed."""
    cal = calibrate(lm, calib, cfg, seed)
    official = official_for(cfg.model) or {}
    rows = [
        record("calibration", seed, "layer", cal.layer),
        record("calibration", seed, "steer_norm", float(cal.vector.norm())),
    ]
    rows += [record("calibration", seed, "ridge_r2", x, layer=ell) for ell, x in cal.r2.items()]
    for q in ("q25c", "q75c", "q25v", "q75v", "low_val_1", "low_val_2", "high_val_2"):
        rows.append(record("calibration", seed, q, getattr(cal.control, q)))
        if q in official:
            rows.append(record("official", seed, q, official[q]))
    rows += [record("calibration", seed, q, getattr(cal, q)) for q in ("n_pos", "n_neg", "n_steps")]
    for name, problems in evals.items():
        for method in cfg.methods:
            responses, ctrls, fired = generate(lm, problems, method, cal, cfg, seed)
            rows += score(lm, method, seed, problems, responses, fired, ctrls, {"dataset": name})
    return rows


def run(cfg) -> list[dict]:
    """The full preset: load the model and the data sets, then one checkpointed unit per seed (--resume)."""
    torch.manual_seed(0)
    lm = load_lm(cfg.model)
    calib = load_math(cfg.calibration_dataset, max_rows=cfg.n_calib, prefer="train")
    evals = {cfg.dataset: load_math(cfg.dataset, max_rows=cfg.max_samples, prefer="test")}
    rows: list[dict] = []
    for seed in cfg.seed_list():
        rows += checkpoint.unit(("full", seed), partial(seed_rows, lm, calib, evals, cfg, seed))
    return rows


def for_preset(world_fn, full_fn):
    """`world_fn` for the reasoning world, `full_fn` for a Hugging Face model (`--model`), same arguments."""
    return lambda rows, cfg, *rest: (world_fn if cfg.model == "world" else full_fn)(rows, cfg, *rest)


def claims(rows: list[dict], cfg) -> list:
    """No claim is pre-registered for the paper-scale run (it has not been run here): its records are reported."""
    return []


def figure(rows: list[dict], cfg, path) -> None:
    """Accuracy and mean thinking length per method (mean over seeds)."""
    import matplotlib.pyplot as plt

    from reprozoo.common.results import select

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for a, metric in zip(ax, ("accuracy", "think_len"), strict=True):
        vals = [np.mean([r["value"] for r in select(rows, method=m, metric=metric)]) for m in cfg.methods]
        a.bar(cfg.methods, vals)
        a.set(title=f"{metric} ({cfg.dataset})", ylabel=metric)
        a.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
