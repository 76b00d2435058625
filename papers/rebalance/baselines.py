"""Baselines: the un-steered base model and static steering (SEAL-like: a constant λ at every step boundary).

Both run through the same controller as ReBalance (`method.Controller`) so that the only difference is λ:
- base:   λ = 0 (no hook);
- static: λ = λ_static at every step boundary inside the thinking region (SEAL, Chen et al. 2025, adds a fixed
          multiple of the "execution − reflection/transition" vector at the "\\n\\n" delimiters; with
          S = μ_pos − μ_neg pointing towards reflection, that is a constant negative λ).
The ablations (ReBalance without w_low / without w_high) are `Control(use_low=False)` / `Control(use_high=False)`.
"""

from __future__ import annotations

from reprozoo.papers.rebalance.method import Control, Controller, SteeringHook

METHODS = ("base", "static", "rebalance", "no_w_low", "no_w_high")


def controller_for(
    method: str,
    hook: SteeringHook | None,
    batch: int,
    *,
    sep_id: int,
    end_id: int,
    control: Control,
    static_lambda: float,
) -> Controller:
    """The step controller of each compared method."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if method == "base":
        return Controller(None, batch, sep_id=sep_id, end_id=end_id, mode="none")
    if method == "static":
        return Controller(hook, batch, sep_id=sep_id, end_id=end_id, mode="static", static_lambda=static_lambda)
    ctrl = {
        "rebalance": control,
        "no_w_low": _replace(control, use_low=False),
        "no_w_high": _replace(control, use_high=False),
    }[method]
    return Controller(hook, batch, sep_id=sep_id, end_id=end_id, mode="dynamic", control=ctrl)


def _replace(control: Control, **kw) -> Control:
    import dataclasses

    return dataclasses.replace(control, **kw)
