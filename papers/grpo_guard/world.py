"""A generative digits world: scikit-learn's 8×8 digits as images, the 10 classes as "prompts".

- Splits (seeded, stratified): `n_base` digits pre-train the base flow model, `n_proxy` fit the proxy reward model,
  the rest (`n_gold`, 497 by default) are the gold references; the three are disjoint.
- Base policy: a class-conditional `diffusers.DiTTransformer2DModel` (ada-norm-zero, 10 classes) trained by
  rectified flow, x_σ = (1 − σ) x₀ + σ ε, velocity target v = ε − x₀, σ ~ logit-normal (SD3's weighting); cached
  under `.cache/grpo_guard_world/<config hash>/`.
- Proxy reward (stands in for OCR / PickScore): the log-odds margin z_c − log Σ_{k≠c} e^{z_k} of a multinomial
  logistic regression on pixels fitted on the proxy digits. It is unbounded and linear in the pixels, so pushing
  pixels along its weight pattern raises it without making a better digit.
- Gold measures (fixed before any run): realism = mean L2 distance of a sample to its 5 nearest gold digits (lower is
  better); diversity = mean within-class pairwise L2 distance; gold RM = the per-pixel log-density of a sample under
  its class's Gaussian in a PCA space of the gold digits (plus an isotropic residual), a density-based reward with
  no proxy–gold gap by construction (the control's reward).
Images live in [−1, 1]; `image_size` 16 upsamples the 8×8 digits bilinearly (the "more latent dimensions" lever).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from reprozoo.common.cache import cache_root, config_hash, save_atomic
from reprozoo.common.worlds.digits import load_digits

if TYPE_CHECKING:  # diffusers takes seconds to import: loaded when a model is built, not for --help
    from diffusers import DiTTransformer2DModel

N_CLASSES = 10


@dataclass(frozen=True)
class WorldConfig:
    """What the cached world depends on (its hash is the cache key)."""

    image_size: int = 8
    """Side of the square images: 8 (the digits) or 16 (bilinear upsampling)."""
    n_base: int = 1000
    """Digits that pre-train the base flow model."""
    n_proxy: int = 300
    """Digits that fit the proxy reward model (the remaining 497 are the gold references)."""
    layers: int = 4
    """DiT transformer blocks."""
    heads: int = 4
    """DiT attention heads (×16 dims each)."""
    train_steps: int = 600
    """AdamW steps of rectified-flow pre-training (batch `batch`)."""
    batch: int = 128
    """Pre-training batch size."""
    lr: float = 1e-3
    """Pre-training AdamW learning rate (cosine-decayed)."""
    pca_dims: int = 20
    """Gold RM: PCA components of the class-density model."""
    seed: int = 0
    """Split and initialisation seed (one world for every run seed: the RL runs differ in their own seeds)."""


def new_model(cfg: WorldConfig) -> DiTTransformer2DModel:
    """The class-conditional DiT: patch 2, ada-norm-zero conditioning on (timestep, class)."""
    from diffusers import DiTTransformer2DModel

    return DiTTransformer2DModel(
        num_attention_heads=cfg.heads,
        attention_head_dim=16,
        in_channels=1,
        out_channels=1,
        num_layers=cfg.layers,
        sample_size=cfg.image_size,
        patch_size=2,
        num_embeds_ada_norm=N_CLASSES,
        norm_type="ada_norm_zero",
    )


def velocity(model: DiTTransformer2DModel, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """v_θ(x, σ, c); the timestep fed to the model is 1000·σ, as SD3's pipeline does."""
    t = (sigma * 1000).expand(len(x)) if sigma.dim() == 0 else sigma * 1000
    return model(x, timestep=t, class_labels=labels).sample


def images(cfg: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (n, 1, S, S) float32 in [−1, 1], and their labels."""
    x, y = load_digits()
    t = torch.from_numpy(x)[:, None] * 2 - 1
    if cfg.image_size != 8:
        t = F.interpolate(t, size=cfg.image_size, mode="bilinear", align_corners=False)
    return t.numpy().astype(np.float32), y


def splits(cfg: WorldConfig, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Disjoint stratified index sets base / proxy / gold."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    base, rest = train_test_split(idx, train_size=cfg.n_base, stratify=labels, random_state=cfg.seed)
    proxy, gold = train_test_split(rest, train_size=cfg.n_proxy, stratify=labels[rest], random_state=cfg.seed)
    return {"base": base, "proxy": proxy, "gold": gold}


def pretrain(model: DiTTransformer2DModel, x: torch.Tensor, y: torch.Tensor, cfg: WorldConfig) -> list[float]:
    """Rectified flow: minimise ‖v_θ(x_σ, σ, c) − (ε − x₀)‖², x_σ = (1 − σ)x₀ + σε, σ = sigmoid(n), n ~ N(0, 1)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.train_steps)
    model.train()
    losses = []
    for _ in range(cfg.train_steps):
        idx = torch.randint(len(x), (cfg.batch,), generator=gen)
        x0, c = x[idx], y[idx]
        eps = torch.randn(x0.shape, generator=gen)
        sigma = torch.sigmoid(torch.randn(cfg.batch, generator=gen))
        xs = (1 - sigma[:, None, None, None]) * x0 + sigma[:, None, None, None] * eps
        loss = (velocity(model, xs, sigma, c) - (eps - x0)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


class ProxyRM:
    """Multinomial logistic regression on pixels; reward = margin z_c − log Σ_{k≠c} exp z_k (unbounded)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=1.0, max_iter=2000).fit(x.reshape(len(x), -1), y)
        self.w = torch.tensor(clf.coef_, dtype=torch.float32)
        self.b = torch.tensor(clf.intercept_, dtype=torch.float32)

    def __call__(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        z = x.reshape(len(x), -1).float() @ self.w.T + self.b
        zc = z.gather(1, c[:, None])[:, 0]
        others = z.scatter(1, c[:, None], float("-inf"))
        return zc - torch.logsumexp(others, dim=1)

    def accuracy(self, x: torch.Tensor, c: torch.Tensor) -> float:
        z = x.reshape(len(x), -1).float() @ self.w.T + self.b
        return float((z.argmax(1) == c).float().mean())


class GoldRM:
    """Per-class Gaussian in a shared PCA space of the gold digits, plus an isotropic Gaussian residual:
    log p_c(x) = log N(Pᵀ(x − m); μ_c, Σ_c + λI) + log N(r; 0, s²I), r the part of x − m outside the PCA space;
    returned per pixel (divided by D)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, dims: int):
        flat = torch.tensor(x.reshape(len(x), -1), dtype=torch.float64)
        self.m = flat.mean(0)
        _, _, v = torch.linalg.svd(flat - self.m, full_matrices=False)
        self.p = v[:dims].T  # (D, k)
        z = (flat - self.m) @ self.p
        resid = (flat - self.m) - z @ self.p.T
        self.d = flat.shape[1]
        self.s2 = float(resid.pow(2).sum(1).mean()) / (self.d - dims)
        self.dists = []
        for c in range(N_CLASSES):
            zc = z[torch.as_tensor(y) == c]
            cov = torch.cov(zc.T) + 0.05 * torch.eye(dims, dtype=torch.float64)
            self.dists.append(torch.distributions.MultivariateNormal(zc.mean(0), covariance_matrix=cov))

    def __call__(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), -1).double() - self.m
        z = flat @ self.p
        r2 = (flat - z @ self.p.T).pow(2).sum(1)
        k = self.p.shape[1]
        resid = -0.5 * r2 / self.s2 - 0.5 * (self.d - k) * np.log(2 * np.pi * self.s2)
        every = torch.stack([d.log_prob(z) for d in self.dists], dim=1)  # (n, classes)
        dens = every.gather(1, c[:, None].long())[:, 0]
        return ((dens + resid) / self.d).float()


def realism(x: torch.Tensor, gold: torch.Tensor, k: int = 5) -> float:
    """Mean L2 distance from each sample to its k nearest gold digits (lower = more realistic)."""
    d = torch.cdist(x.reshape(len(x), -1).float(), gold.reshape(len(gold), -1).float())
    return float(d.topk(k, dim=1, largest=False).values.mean())


def realism_loo(gold: torch.Tensor, k: int = 5) -> float:
    """`realism` of the gold digits themselves (leave-one-out: a digit's own distance 0 is skipped)."""
    x = gold.reshape(len(gold), -1)
    d = torch.cdist(x, x)
    return float(d.topk(k + 1, dim=1, largest=False).values[:, 1:].mean())


def diversity(x: torch.Tensor, c: torch.Tensor) -> float:
    """Mean within-class pairwise L2 distance (classes with >= 2 samples, averaged over classes)."""
    per = []
    for cls in c.unique():
        xc = x[c == cls].reshape(int((c == cls).sum()), -1).float()
        if len(xc) >= 2:
            d = torch.cdist(xc, xc)
            per.append(float(d.sum() / (len(xc) * (len(xc) - 1))))
    return float(np.mean(per))


@dataclass
class World:
    cfg: WorldConfig
    model: DiTTransformer2DModel
    proxy: ProxyRM
    gold_rm: GoldRM
    gold_x: torch.Tensor
    gold_y: torch.Tensor
    losses: list[float]


def build_world(cfg: WorldConfig, *, cache: bool = True, verbose: bool = False) -> World:
    """Pre-train the base DiT (or load it from `.cache/grpo_guard_world/<hash>/`); fit the proxy and gold RMs."""
    x, y = images(cfg)
    ids = splits(cfg, y)
    torch.manual_seed(cfg.seed)
    model = new_model(cfg)
    path = cache_root() / "grpo_guard_world" / config_hash(cfg) / "model.pt"
    if cache and path.exists():
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        losses = state["losses"]
        model.eval()
    else:
        start = time.perf_counter()
        xb, yb = torch.from_numpy(x[ids["base"]]), torch.from_numpy(y[ids["base"]])
        losses = pretrain(model, xb, yb, cfg)
        if verbose:
            tail = float(np.mean(losses[-20:]))
            print(f"[grpo_guard world] flow loss {losses[0]:.3f} -> {tail:.3f} in {time.perf_counter() - start:.0f} s")
        if cache:
            save_atomic({"model": model.state_dict(), "losses": losses}, path)
            (path.parent / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    model.requires_grad_(False)
    proxy = ProxyRM(x[ids["proxy"]], y[ids["proxy"]])
    gold_rm = GoldRM(x[ids["gold"]], y[ids["gold"]], cfg.pca_dims)
    gold_x, gold_y = torch.from_numpy(x[ids["gold"]]), torch.from_numpy(y[ids["gold"]])
    return World(cfg, model, proxy, gold_rm, gold_x, gold_y, losses)
