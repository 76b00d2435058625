"""ReBalance: step confidence, prototypes, the steering vector, the layer search and the dynamic control λ = F(c, v).

Per the official code (yu-lin-li/ReBalance): a reasoning trace is split into steps; each step gets a confidence c
and a variance proxy v; a calibration set labels steps as over-thinking-like (reflective / unconfident) or
confident; the class means of hidden states at layer L give the steering vector S = μ_pos − μ_neg; at inference
h ← h + λ S at step boundaries inside the thinking region, with λ = F(c, v) set from the last step's confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# --- method ---


def offline_confidence(step_logprobs: torch.Tensor) -> torch.Tensor:
    """c = exp( (1/|s|) Σ_{t∈s} log π(y_t | y_<t) ) of one step (the offline / calibration confidence)."""
    # BEGIN SOLUTION
    return step_logprobs.mean().exp()
    # END SOLUTION


def online_confidence(step_maxprobs: torch.Tensor) -> torch.Tensor:
    """c = (1/|s|) Σ_{t∈s} max_v π(v | y_<t): the mean max-probability over the step's tokens (online)."""
    # BEGIN SOLUTION
    return step_maxprobs.mean(-1)
    # END SOLUTION


def variance_proxy(c: torch.Tensor, c_prev: torch.Tensor) -> torch.Tensor:
    """v_k = (c_k − c_{k−1})² / 4."""
    # BEGIN SOLUTION
    return (c - c_prev) ** 2 / 4
    # END SOLUTION


def label_steps(conf: np.ndarray, reflective: np.ndarray, q25: float, q75: float) -> np.ndarray:
    """+1 (reflective / over-thinking mode) if the step holds a reflection word or c < q25; −1 (confident) if no
    reflection word and c > q75; 0 (dropped) otherwise."""
    # BEGIN SOLUTION
    pos = reflective | (conf < q25)
    neg = ~reflective & (conf > q75)
    return np.where(pos, 1, np.where(neg, -1, 0))
    # END SOLUTION


def prototypes(h: torch.Tensor, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """μ_pos = mean of h over positive steps, μ_neg = mean over negative steps (h: (N, d))."""
    # BEGIN SOLUTION
    lab = torch.as_tensor(labels)
    if not (lab == 1).any() or not (lab == -1).any():
        raise ValueError("prototypes need at least one positive and one negative step")
    return h[lab == 1].mean(0), h[lab == -1].mean(0)
    # END SOLUTION


def steering_vector(mu_pos: torch.Tensor, mu_neg: torch.Tensor) -> torch.Tensor:
    """S = μ_pos − μ_neg (points from confident towards reflective / over-thinking states)."""
    # BEGIN SOLUTION
    return mu_pos - mu_neg
    # END SOLUTION


def ridge_r2(
    h: np.ndarray,
    conf: np.ndarray,
    *,
    n_components: int = 64,
    alpha: float = 1.0,
    test_frac: float = 0.2,
    seed: int = 0,
) -> float:
    """Held-out R² of ridge regression (PCA to n_components first) from hidden states to step confidence."""
    # BEGIN SOLUTION
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(h))
    n_test = max(1, int(round(test_frac * len(h))))
    test, train = order[:n_test], order[n_test:]
    pca = PCA(n_components=min(n_components, len(train), h.shape[1]), random_state=seed).fit(h[train])
    model = Ridge(alpha=alpha).fit(pca.transform(h[train]), conf[train])
    return float(r2_score(conf[test], model.predict(pca.transform(h[test]))))
    # END SOLUTION


def choose_layer(h_by_layer: dict[int, np.ndarray], conf: np.ndarray, **kw) -> tuple[int, dict[int, float]]:
    """L = argmax_ℓ R²_ℓ (held-out ridge R² of confidence from layer-ℓ hidden states; a layer whose states do not
    vary, e.g. the embeddings of a token that is always the same, has no R² and is skipped)."""
    # BEGIN SOLUTION
    r2 = {}
    for layer, h in h_by_layer.items():
        r2[layer] = ridge_r2(h, conf, **kw) if h.std(0).max() > 1e-12 else float("nan")
    return max(r2, key=lambda ell: r2[ell] if np.isfinite(r2[ell]) else -np.inf), r2
    # END SOLUTION


@dataclass(frozen=True)
class Control:
    """Parameters of λ = F(c, v): quantiles of step confidence (c) and variance proxy (v) on this model, and the
    per-model values (defaults: the official ones for DeepSeek-R1-Distill-Qwen-7B)."""

    q25c: float
    q75c: float
    q25v: float
    q75v: float
    low_val_1: float = -1.19
    low_val_2: float = -2.34
    high_val_2: float = 0.1
    sharpness: float = 1200.0
    use_low: bool = True
    use_high: bool = True

    @property
    def m(self) -> float:
        """m = (q25c + q75c) / 2."""
        # BEGIN SOLUTION
        return (self.q25c + self.q75c) / 2
        # END SOLUTION

    @property
    def k(self) -> float:
        """k such that F1(1) = 0.01 given F1(q25c) = low_val_1 and F1(q75c) = 0 (bisection).

        With Δ = (q75c − q25c)/2: a = low_val_1/2, b = −low_val_1 / (2 tanh(kΔ)), so F1(1) = 0.01 ⇔
        tanh(k(1 − m)) / tanh(kΔ) = 1 − 0.02/low_val_1; the ratio falls from (1 − m)/Δ (k → 0) to 1 (k → ∞).
        """
        # BEGIN SOLUTION
        delta, target = (self.q75c - self.q25c) / 2, 1 - 0.02 / self.low_val_1
        ratio = lambda k: math.tanh(k * (1 - self.m)) / math.tanh(k * delta)  # noqa: E731
        lo, hi = 1e-6, 1e4
        if ratio(lo) <= target:  # q75c too close to 1: the steepest curve cannot reach 0.01 — take the flattest
            return lo
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if ratio(mid) > target else (lo, mid)
        return math.sqrt(lo * hi)
        # END SOLUTION

    @property
    def ab(self) -> tuple[float, float]:
        """a = low_val_1 / 2, b = −low_val_1 / (2 tanh(k Δ))."""
        # BEGIN SOLUTION
        delta = (self.q75c - self.q25c) / 2
        return self.low_val_1 / 2, -self.low_val_1 / (2 * math.tanh(self.k * delta))
        # END SOLUTION

    def f1(self, c: torch.Tensor) -> torch.Tensor:
        """F1(c) = a + b tanh(k (c − m))."""
        # BEGIN SOLUTION
        a, b = self.ab
        return a + b * torch.tanh(self.k * (c - self.m))
        # END SOLUTION

    @property
    def g_m(self) -> float:
        """Normaliser of w_high (official): g_m = σ(12 (1 − q75c)/IQR_c) · σ(0), the arguments clamped to ±60."""
        # BEGIN SOLUTION
        x = max(-60.0, min(60.0, 12.0 * (1 - self.q75c) / (self.q75c - self.q25c)))
        return 0.5 / (1 + math.exp(-x))
        # END SOLUTION

    def w_low(self, c: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """w_low = min(1, σ(s (q25c − c)/IQR_c) · σ(s (v − q75v)/IQR_v) / 0.25)   (low, unstable confidence)."""
        # BEGIN SOLUTION
        iqr_c, iqr_v = self.q75c - self.q25c, self.q75v - self.q25v
        s = self.sharpness
        g = torch.sigmoid(s * (self.q25c - c) / iqr_c) * torch.sigmoid(s * (v - self.q75v) / iqr_v)
        return torch.clamp(g / 0.25, max=1.0)
        # END SOLUTION

    def w_high(self, c: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """w_high = min(1, σ(s (c − q75c)/IQR_c) · σ(s (q25v − v)/IQR_v) / g_m)   (high, stable confidence)."""
        # BEGIN SOLUTION
        iqr_c, iqr_v = self.q75c - self.q25c, self.q75v - self.q25v
        s = self.sharpness
        g = torch.sigmoid(s * (c - self.q75c) / iqr_c) * torch.sigmoid(s * (self.q25v - v) / iqr_v)
        return torch.clamp(g / self.g_m, max=1.0)
        # END SOLUTION

    def __call__(self, c: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """λ = F1(c) + (low_val_2 − F1(q25c)) w_low + (high_val_2 − F1(1)) w_high,
        clamped to [min(low_val_1, low_val_2), max(0.01, high_val_2)]."""
        one, q25 = torch.ones_like(c), torch.full_like(c, self.q25c)
        lam = self.f1(c)
        if self.use_low:
            lam = lam + (self.low_val_2 - self.f1(q25)) * self.w_low(c, v)
        if self.use_high:
            lam = lam + (self.high_val_2 - self.f1(one)) * self.w_high(c, v)
        return lam.clamp(min(self.low_val_1, self.low_val_2), max(0.01, self.high_val_2))


class SteeringHook:
    """h_L ← h_L + λ_b S at the positions where `lam` is non-zero (official: at the input of decoder layer L).

    L is a hidden-state index as in `output_hidden_states`: 0..n−1 is the input of decoder layer L (a forward
    pre-hook; 0 = the embeddings), n the final post-norm state (a hook on the final norm). `lam` is (B,) for
    one-token (KV-cached) passes or (B, T) for a full sequence; the controller sets it to λ at step-boundary tokens
    inside the thinking region and to 0 everywhere else.
    """

    def __init__(self, model: nn.Module, layer: int, vector: torch.Tensor):
        self.vector = vector
        self.lam: torch.Tensor | None = None
        layers = model.model.layers
        if not 0 <= layer <= len(layers):
            raise ValueError(f"layer must lie in [0, {len(layers)}], got {layer}")
        if layer < len(layers):
            self.handle = layers[layer].register_forward_pre_hook(self._pre, with_kwargs=True)
        else:
            self.handle = model.model.norm.register_forward_hook(lambda m, i, o: self._add(o))

    def _add(self, h: torch.Tensor) -> torch.Tensor:
        if self.lam is None:
            return h
        lam = self.lam.to(h.dtype)
        lam = lam[:, None, None] if lam.dim() == 1 else lam[..., None]  # (B,) → every position of this pass
        return h + lam * self.vector.to(h.dtype)

    def _pre(self, module, args, kwargs):
        if args:
            return (self._add(args[0]), *args[1:]), kwargs
        return args, kwargs | {"hidden_states": self._add(kwargs["hidden_states"])}

    def remove(self) -> None:
        self.handle.remove()


class Controller:
    """Online per-row step tracking during generation (`on_token` of the world's rollout).

    mode "dynamic": λ = F(c, v) at every step boundary; "static": λ = constant (SEAL-like); "none": no steering.
    c is the online confidence: the mean max-probability over the step's tokens except the separator (official:
    max-probs are accumulated for non-separator tokens only); v = (c − c_prev)²/4 (v = 0 at the first step).
    Steering acts on the next forward pass, whose input is the separator token.
    """

    def __init__(
        self,
        hook: SteeringHook | None,
        batch: int,
        *,
        sep_id: int,
        end_id: int,
        mode: str = "dynamic",
        control: Control | None = None,
        static_lambda: float = -1.0,
    ):
        if mode not in ("dynamic", "static", "none"):
            raise ValueError(f"unknown mode {mode!r}; choose dynamic, static or none")
        if mode == "dynamic" and control is None:
            raise ValueError("mode='dynamic' needs a Control")
        self.hook, self.mode, self.control, self.static_lambda = hook, mode, control, static_lambda
        self.sep_id, self.end_id = sep_id, end_id
        self.sum = torch.zeros(batch)
        self.count = torch.zeros(batch)
        self.c_prev = torch.full((batch,), float("nan"))
        self.thinking = torch.ones(batch, dtype=torch.bool)
        self.trace: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def lam(self, c: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION
        if self.mode == "dynamic":
            return self.control(c, v)
        return torch.full_like(c, self.static_lambda if self.mode == "static" else 0.0)
        # END SOLUTION

    def __call__(self, t: int, tokens: torch.Tensor, probs: torch.Tensor) -> None:
        tokens, maxp = tokens.cpu(), probs.max(-1).values.float().cpu()
        boundary = (tokens == self.sep_id) & self.thinking
        inside = self.thinking & ~boundary
        self.sum += maxp * inside
        self.count += inside.float()
        c = self.sum / self.count.clamp_min(1)
        v = torch.where(torch.isnan(self.c_prev), torch.zeros_like(c), variance_proxy(c, self.c_prev))
        lam = torch.where(boundary, self.lam(c, v), torch.zeros_like(c))
        if self.hook is not None:
            self.hook.lam = lam.to(self.hook.vector.device)
        if bool(boundary.any()):
            self.trace.append((t, boundary.clone(), c.clone(), v.clone(), lam.clone()))
        self.c_prev = torch.where(boundary, c, self.c_prev)
        self.sum = torch.where(boundary, torch.zeros_like(self.sum), self.sum)
        self.count = torch.where(boundary, torch.zeros_like(self.count), self.count)
        self.thinking = self.thinking & (tokens != self.end_id)
