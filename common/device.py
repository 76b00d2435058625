"""Run-time device choice: CUDA when present, CPU otherwise (torch and JAX)."""

from __future__ import annotations

from typing import Literal

DeviceName = Literal["auto", "cpu", "cuda"]


def torch_device(name: DeviceName = "auto"):
    """Resolve "auto" | "cpu" | "cuda" to a `torch.device`; asking for CUDA without one is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch sees no CUDA device")
    return torch.device(name)


def describe() -> str:
    """One line naming the accelerator this process would use (for run records)."""
    import importlib.util
    import platform

    parts = [f"cpu ({platform.machine()})"]
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            parts.append(f"cuda: {torch.cuda.get_device_name(0)}")
    return "; ".join(parts)
