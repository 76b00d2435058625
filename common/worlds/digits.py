"""The digits world: MultiColorDigits, scikit-learn's bundled 8×8 digits with patch-wise spurious colours.

It follows the official MultiColorMNIST construction (Lin et al. 2024, `submit_main.py`), scaled down:

- the grey digit (8×8, values in [0, 1], copied into R, G and B) sits in the centre block of a 24×24 RGB
  image cut into a 3×3 grid of 8×8 blocks (MultiColorMNIST: a 14×14 digit in a 42×42 image);
- each of the 8 outer blocks is cut into 2×2 patches of 4×4, giving 32 patches; patch j is one spurious
  feature with its own random label → colour map, a permutation π_j of the 10 colours of `PALETTE`;
- per image and patch, with probability sp the patch is painted π_j(y), otherwise a colour drawn uniformly
  from all 10 (so it can still hit π_j(y) by chance): P(patch shows its label colour) = sp + (1 − sp)/10;
- training data use sp = 1 (MultiColorMNIST's `--id_sp 1.0`); the shifted (OOD) test uses sp = 1 − p;
- `n_colors=1` is the one-colour control: one draw per image through patch 0's map paints all 32 patches,
  so the 32 patches form a single spurious feature;
- the "broad" split (sp = 0) carries no label information in its colours;
- the paper's premise for WiSE-FT / BANG — the pre-trained and the fine-tuned model hold *different* spurious
  features — is built into the data: the 32 patches form two disjoint groups, A (even patches) and B (odd
  patches), and the training digits are split into disjoint pre-training and fine-tuning digits. `pretrain(sp_a)`
  colours the pre-training digits with group A correlated (sp_a) and B random; `finetune(sp_b)` colours the
  fine-tuning digits with B correlated and A random; `pretrain(0)` is the colour-blind control (no spurious
  feature at all), and `colour_only(group)` blanks the digit and shows one group in its label colours (a probe of
  which group a model reads).

Demo: `python -m reprozoo.common.worlds.digits --preset smoke|quick` measures these properties and writes the
git-ignored `runs/digits_world/<preset>/` (`--publish`: the committed `results/digits_world/<preset>/`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from reprozoo.common.config import RunConfig, check_fraction, check_positive, ensure
from reprozoo.common.progress import track
from reprozoo.common.results import Claim, record, select

N_CLASSES = 10
SIDE = 24  # image side (3 blocks of 8)
BLOCK = 8  # block side = digit side
PATCH = 4  # patch side: each outer block holds 2×2 patches
# The official palette: red, green, blue, yellow, cyan, magenta, black, white, grey, orange.
PALETTE = (
    np.array(
        [
            (255, 0, 0),
            (0, 255, 0),
            (0, 0, 255),
            (255, 255, 0),
            (0, 255, 255),
            (255, 0, 255),
            (0, 0, 0),
            (255, 255, 255),
            (128, 128, 128),
            (255, 165, 0),
        ],
        dtype=np.float32,
    )
    / 255.0
)
OUTER_BLOCKS = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)]  # (row, col), centre left out


def patch_corners() -> list[tuple[int, int]]:
    """Top-left pixel (row, col) of each of the 32 patches: 8 outer blocks × 2×2 patches, block by block."""
    return [
        (br * BLOCK + i * PATCH, bc * BLOCK + j * PATCH) for br, bc in OUTER_BLOCKS for i in range(2) for j in range(2)
    ]


N_PATCHES = len(patch_corners())
GROUPS = {"A": np.arange(0, N_PATCHES, 2), "B": np.arange(1, N_PATCHES, 2)}  # disjoint spurious-feature groups


def group_sp(**sp: float) -> np.ndarray:
    """(32,) per-patch correlation: `group_sp(A=0.8)` gives 0.8 on group A's patches, 0 (random colours) elsewhere."""
    out = np.zeros(N_PATCHES)
    for name, value in sp.items():
        out[GROUPS[name]] = value
    return out


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: images (1797, 8, 8) scaled to [0, 1] and labels (1797,)."""
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def canvas(digits: np.ndarray) -> np.ndarray:
    """(n, 8, 8) grey digits → (n, 3, 24, 24) images with the digit in the centre block, black elsewhere."""
    out = np.zeros((len(digits), 3, SIDE, SIDE), dtype=np.float32)
    out[:, :, BLOCK : 2 * BLOCK, BLOCK : 2 * BLOCK] = digits[:, None]
    return out


def colour_maps(rng: np.random.Generator) -> np.ndarray:
    """(32, 10) int: row j is patch j's label → colour permutation π_j."""
    return np.stack([rng.permutation(N_CLASSES) for _ in range(N_PATCHES)])


def colour_indices(
    labels: np.ndarray, sp: float | np.ndarray, maps: np.ndarray, n_colors: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, 32) colour index per image and patch.

    32 colours: c_ij = π_j(y_i) if u_ij < sp_j else uniform{0..9}, independently per patch (sp: one number for
                every patch, or a (32,) vector of per-patch correlations).
    1 colour:   c_i = π_0(y_i) if u_i < sp else uniform{0..9}, one draw copied to all 32 patches (sp a number).
    """
    if n_colors not in (1, N_PATCHES):
        raise ValueError(f"n_colors must be 1 or {N_PATCHES}, got {n_colors}")
    sp = np.asarray(sp, dtype=np.float64)
    if sp.shape not in ((), (N_PATCHES,)) or (n_colors == 1 and sp.shape != ()):
        raise ValueError(f"sp must be a number (or a ({N_PATCHES},) vector with 32 colours), got shape {sp.shape}")
    if not np.all((sp >= 0.0) & (sp <= 1.0)):
        raise ValueError(f"sp must lie in [0, 1], got {sp}")
    n = len(labels)
    width = N_PATCHES if n_colors == N_PATCHES else 1
    keep = rng.random((n, width)) < sp
    random_colour = rng.integers(0, N_CLASSES, (n, width))
    label_colour = maps[:width, :][np.arange(width)[None, :], labels[:, None]]  # π_j(y_i)
    idx = np.where(keep, label_colour, random_colour)
    return np.repeat(idx, N_PATCHES, axis=1) if width == 1 else idx


def paint(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Paint patch j of image i with PALETTE[idx[i, j]] (returns a copy)."""
    out = images.copy()
    rgb = PALETTE[idx]  # (n, 32, 3)
    for j, (r, c) in enumerate(patch_corners()):
        out[:, :, r : r + PATCH, c : c + PATCH] = rgb[:, j, :, None, None]
    return out


@dataclass
class Split:
    """One coloured split: x (n, 3, 24, 24) float32, y (n,) int64, colour indices (n, 32), its sp (a number, or
    the (32,) per-patch correlations)."""

    x: np.ndarray
    y: np.ndarray
    colours: np.ndarray
    sp: float | np.ndarray

    def flat(self) -> np.ndarray:
        """x flattened to (n, 1728), the MLP input."""
        return self.x.reshape(len(self.x), -1)


@dataclass(frozen=True)
class MultiColorDigits:
    """One seeded world: a stratified train/test split of the digits and the 32 colour maps.

    `train(sp)`, `test(sp)` colour the split on demand; the draw depends only on (seed, split, sp, n_colors),
    so every model of a seed sees exactly the same images. The training digits are further split (stratified)
    into disjoint pre-training and fine-tuning digits for `pretrain` / `finetune`.
    """

    seed: int = 0
    n_colors: int = N_PATCHES
    """32 (one spurious feature per patch) or 1 (the one-colour control)."""
    n_test: int = 497
    """Digits held out for the ID and OOD test splits (the rest, 1300 by default, are for training)."""
    n_finetune: int = 500
    """Training digits reserved for fine-tuning; the other 1797 − n_test − n_finetune are the pre-training digits."""

    def __post_init__(self) -> None:
        if self.n_colors not in (1, N_PATCHES):
            raise ValueError(f"n_colors must be 1 or {N_PATCHES}, got {self.n_colors}")
        if not 10 <= self.n_test <= 1797 - 10:
            raise ValueError(f"n_test must lie in [10, 1787], got {self.n_test}")
        if not 10 <= self.n_finetune <= 1797 - self.n_test - 10:
            raise ValueError(f"n_finetune must lie in [10, {1797 - self.n_test - 10}], got {self.n_finetune}")

    @cached_property
    def _ids(self) -> dict[str, np.ndarray]:
        """Indices into scikit-learn's digits of the train and test digits, and of the pre-training and fine-tuning
        digits (a stratified split of train)."""
        _, labels = load_digits()
        from sklearn.model_selection import train_test_split

        idx_tr, idx_te = train_test_split(
            np.arange(len(labels)), test_size=self.n_test, stratify=labels, random_state=self.seed
        )
        idx_pre, idx_ft = train_test_split(
            idx_tr, test_size=self.n_finetune, stratify=labels[idx_tr], random_state=self.seed
        )
        return {"train": idx_tr, "test": idx_te, "pretrain": idx_pre, "finetune": idx_ft}

    def digit_ids(self, part: str) -> np.ndarray:
        """Indices into scikit-learn's digits of `part`: train, test, pretrain or finetune."""
        return self._ids[part]

    @cached_property
    def _data(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(images, labels) of the train, test, pre-training and fine-tuning digits."""
        images, labels = load_digits()
        return [(canvas(images[self._ids[k]]), labels[self._ids[k]]) for k in ("train", "test", "pretrain", "finetune")]

    @cached_property
    def maps(self) -> np.ndarray:
        """(32, 10) label → colour permutations of this seed (shared by the 32- and 1-colour worlds)."""
        return colour_maps(np.random.default_rng([self.seed, 7]))

    @property
    def label_maps(self) -> np.ndarray:
        """(32, 10) map each patch actually follows: its own π_j (32 colours) or π_0 for all (1 colour)."""
        return self.maps if self.n_colors == N_PATCHES else np.repeat(self.maps[:1], N_PATCHES, axis=0)

    def _split(self, which: int, sp: float | np.ndarray) -> Split:
        x, y = self._data[which]
        code = np.round(np.asarray(sp, dtype=np.float64) * 1_000_000).astype(np.int64)
        key = [self.seed, which, int(code), self.n_colors] if code.ndim == 0 else [self.seed, which, 99, *code]
        idx = colour_indices(y, sp, self.maps, self.n_colors, np.random.default_rng(key))
        return Split(paint(x, idx), y, idx, sp)

    def train(self, sp: float = 1.0) -> Split:
        """Training digits coloured with correlation sp (sp = 0: the broad, label-free colouring)."""
        return self._split(0, sp)

    def test(self, sp: float | np.ndarray) -> Split:
        """Held-out digits coloured with correlation sp (ID: the training sp; OOD: 1 − p; or per patch)."""
        return self._split(1, sp)

    def pretrain(self, sp_a: float) -> Split:
        """Pre-training digits, group A in its label colours with probability sp_a, group B random (sp_a = 0: the
        colour-blind control, no spurious feature)."""
        return self._split(2, group_sp(A=sp_a))

    def finetune(self, sp_b: float) -> Split:
        """Fine-tuning digits (disjoint from the pre-training ones), group B correlated with sp_b, group A random."""
        return self._split(3, group_sp(B=sp_b))

    def colour_only(self, group: str) -> Split:
        """Probe of a spurious group: test images with the digit blanked, `group` in its label colours (sp = 1),
        the other group random. A model that reads the group scores ≈ 1, one that does not ≈ 0.1 (chance)."""
        s = self.test(group_sp(**{group: 1.0}))
        s.x[:, :, BLOCK : 2 * BLOCK, BLOCK : 2 * BLOCK] = 0.0
        return s


def label_colour_rate(split: Split, maps: np.ndarray) -> float:
    """Fraction of (image, patch) pairs showing the patch's label colour π_j(y); expected sp + (1 − sp)/10."""
    return float(np.mean(split.colours == maps[np.arange(N_PATCHES)[None, :], split.y[:, None]]))


def colour_vote(split: Split, maps: np.ndarray) -> np.ndarray:
    """Colour-only classifier: each patch votes for π_j⁻¹(colour); predict the most voted label (ties → lowest)."""
    inverse = np.argsort(maps, axis=1)  # inverse[j, c] = label whose colour is c on patch j
    votes = inverse[np.arange(N_PATCHES)[None, :], split.colours]
    counts = np.stack([(votes == k).sum(1) for k in range(N_CLASSES)], axis=1)
    return counts.argmax(1)


# --------------------------------------------------------------------------- demo: the world's properties


@dataclass
class DemoConfig(RunConfig):
    """MultiColorDigits world demo: measures the properties the bang paper relies on."""

    ps: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.9])
    """Distribution shifts p measured (OOD test colour correlation 1 − p)."""
    n_test: int = 497
    """Held-out digits per world."""
    ridge: float = 10.0
    """Ridge penalty λ of the linear probes."""
    sp_pre: float = 0.2
    """Correlation of group A in the pre-training split (papers/bang `--sp-pre`, same default)."""
    sp_ft: float = 1.0
    """Correlation of group B in the fine-tuning split (papers/bang `--sp-ft`, same default)."""

    def validate(self) -> None:
        super().validate()
        check_fraction(self, "ps", upper_open=False)
        check_fraction(self, "sp_pre", "sp_ft", upper_open=False)
        check_positive(self, "n_test", "ridge")
        ensure(10 <= self.n_test <= 1787, "n_test", f"must lie in [10, 1787], got {self.n_test}")


DEMO_PRESETS = {
    "smoke": DemoConfig(preset="smoke", seeds=1, ps=[0.9]),
    "quick": DemoConfig(preset="quick", seeds=3),
    "full": DemoConfig(preset="full", seeds=10, ps=[0.1, 0.3, 0.5, 0.7, 0.9]),
}


def _probe(train: Split, tests: dict[str, Split], ridge: float) -> dict[str, float]:
    """Accuracy of a ridge-regression probe on one-hot labels, W = Xᵀ(XXᵀ + λI)⁻¹Y (dual form), on each split."""
    X = train.flat().astype(np.float64)
    Y = np.eye(N_CLASSES)[train.y]
    W = X.T @ np.linalg.solve(X @ X.T + ridge * np.eye(len(X)), Y)
    return {name: float(np.mean((s.flat() @ W).argmax(1) == s.y)) for name, s in tests.items()}


def demo_run(cfg: DemoConfig) -> list[dict]:
    rows: list[dict] = []
    p_max = max(cfg.ps)
    for seed in track(cfg.seed_list(), description="digits world"):
        for n_colors in (N_PATCHES, 1):
            w = MultiColorDigits(seed=seed, n_colors=n_colors, n_test=cfg.n_test)
            m = f"colors={n_colors}"
            splits = {"train": w.train(1.0), "broad": w.train(0.0), **{f"ood_p={p}": w.test(1 - p) for p in cfg.ps}}
            for name, s in splits.items():
                rows.append(record(m, seed, "label_colour_rate", label_colour_rate(s, w.label_maps), split=name))
                q = s.sp + (1 - s.sp) / N_CLASSES
                n_draws = len(s.y) * (N_PATCHES if n_colors == N_PATCHES else 1)  # independent draws
                rows.append(record(m, seed, "label_colour_rate_expected", q, split=name))
                rows.append(
                    record(
                        m,
                        seed,
                        "label_colour_rate_z",
                        (label_colour_rate(s, w.label_maps) - q) / max(np.sqrt(q * (1 - q) / n_draws), 1e-12),
                        split=name,
                    )
                )
                rows.append(
                    record(m, seed, "colour_vote_acc", np.mean(colour_vote(s, w.label_maps) == s.y), split=name)
                )
                distinct = np.mean([len(np.unique(c)) for c in s.colours])
                rows.append(record(m, seed, "distinct_colours_per_image", distinct, split=name))
            if n_colors == 1:
                continue
            tests = {"id": w.test(1.0), "ood": w.test(1 - p_max)}
            for fit_on, train in (("broad", splits["broad"]), ("train", splits["train"])):
                for name, acc in _probe(train, tests, cfg.ridge).items():
                    rows.append(record("ridge_probe", seed, "acc", acc, fit_on=fit_on, test=name, p=p_max))
            rows += _premise_probes(w, cfg, seed)
    return rows


def _premise_probes(w: MultiColorDigits, cfg: DemoConfig, seed: int) -> list[dict]:
    """The WiSE-FT premise in the data: ridge probes fitted on the pre-training split (group A correlated), the
    fine-tuning split (group B) and the colour-blind control pre-training split, read on colour-only-A/-B test
    images (digit blanked) and on digit-only test images (colours random)."""
    fits = {
        "pretrain": w.pretrain(cfg.sp_pre),
        "finetune": w.finetune(cfg.sp_ft),
        "pretrain_control": w.pretrain(0.0),
    }
    tests = {"colour_A_only": w.colour_only("A"), "colour_B_only": w.colour_only("B"), "digit_only": w.test(0.0)}
    overlap = len(np.intersect1d(w.digit_ids("pretrain"), w.digit_ids("finetune")))
    rows = [record("premise", seed, "shared_digits", overlap)]
    for fit_on, split in fits.items():
        rows += [
            record("premise", seed, "acc", a, fit_on=fit_on, test=t) for t, a in _probe(split, tests, cfg.ridge).items()
        ]
    return rows


PREMISE_READS, PREMISE_BLIND, PREMISE_DIGIT = (
    0.5,
    0.25,
    0.5,
)  # claims 6-7 (ridge probes; chance 0.1), fixed before the build


def demo_claims(rows: list[dict], cfg: DemoConfig) -> list[Claim]:
    from reprozoo.common.results import values

    claims = []
    z = float(np.max(np.abs([r["value"] for r in select(rows, metric="label_colour_rate_z")])))
    claims.append(
        Claim(
            "1-colour-correlation",
            "every split, seed and world (32 or 1 colours): the fraction of patches in their label's colour is "
            "within 4 binomial standard errors of q = sp + (1 − sp)/10 (train sp = 1, OOD sp = 1 − p, broad sp = 0)",
            {"max_abs_z": z},
            z <= 4.0,
        )
    )
    one = values(rows, method="colors=1", metric="distinct_colours_per_image", split="broad")
    many = values(rows, method=f"colors={N_PATCHES}", metric="distinct_colours_per_image", split="broad")
    claims.append(
        Claim(
            "2-one-colour-control",
            "colors=1: all 32 patches share one colour in every image; colors=32 "
            "(broad split): >= 8 distinct colours per image on average",
            {"colors=1": float(np.max(one)), "colors=32": float(np.mean(many))},
            bool(np.all(one == 1) and np.mean(many) >= 8),
        )
    )
    p = max(cfg.ps)
    v32 = values(rows, method=f"colors={N_PATCHES}", metric="colour_vote_acc", split=f"ood_p={p}")
    v1 = values(rows, method="colors=1", metric="colour_vote_acc", split=f"ood_p={p}")
    t32 = values(rows, method=f"colors={N_PATCHES}", metric="colour_vote_acc", split="train")
    b32 = values(rows, method=f"colors={N_PATCHES}", metric="colour_vote_acc", split="broad")
    claims.append(
        Claim(
            "3-diverse-spurious-features",
            f"colour-only vote: 1.0 on train (sp = 1), <= 0.2 on the broad "
            f"split, and at p = {p} the 32 patch features carry more label information than one "
            "(vote accuracy 32 colours >= 1 colour + 0.2)",
            {
                "train": float(np.mean(t32)),
                "broad": float(np.mean(b32)),
                f"ood32_p={p}": float(np.mean(v32)),
                f"ood1_p={p}": float(np.mean(v1)),
            },
            bool(np.all(t32 == 1.0) and np.mean(b32) <= 0.2 and np.mean(v32) >= np.mean(v1) + 0.2),
        )
    )
    inv_id = values(rows, method="ridge_probe", metric="acc", fit_on="broad", test="id", p=p)
    inv_ood = values(rows, method="ridge_probe", metric="acc", fit_on="broad", test="ood", p=p)
    claims.append(
        Claim(
            "4-digit-is-invariant",
            "a linear (ridge) probe fitted on the broad split (colours carry no "
            f"label) reads the digit: ID and OOD (p = {p}) accuracy >= 0.85",
            {"id": float(np.mean(inv_id)), "ood": float(np.mean(inv_ood))},
            bool(np.mean(inv_id) >= 0.85 and np.mean(inv_ood) >= 0.85),
        )
    )
    sp_id = values(rows, method="ridge_probe", metric="acc", fit_on="train", test="id", p=p)
    sp_ood = values(rows, method="ridge_probe", metric="acc", fit_on="train", test="ood", p=p)
    claims.append(
        Claim(
            "5-colours-are-spurious",
            f"fitted on the train split (sp = 1): ID accuracy >= 0.95 and OOD (p = {p}) accuracy at least 0.2 below it",
            {"id": float(np.mean(sp_id)), "ood": float(np.mean(sp_ood))},
            bool(np.mean(sp_id) >= 0.95 and np.mean(sp_ood) <= np.mean(sp_id) - 0.2),
        )
    )
    premise = {
        (fit, test): float(np.mean(values(rows, method="premise", metric="acc", fit_on=fit, test=test)))
        for fit in ("pretrain", "finetune", "pretrain_control")
        for test in ("colour_A_only", "colour_B_only", "digit_only")
    }
    shared = float(np.max(values(rows, method="premise", metric="shared_digits")))
    claims.append(
        Claim(
            "6-premise-different-spurious-groups",
            "WiSE-FT premise: pre-training and fine-tuning digits are disjoint; a ridge probe fitted on the "
            f"pre-training split reads group A (colour-only-A acc >= {PREMISE_READS}) and not B (<= {PREMISE_BLIND}); "
            "one fitted on the fine-tuning split reads B and not A; the pre-training split also teaches the digit "
            f"(digit-only acc >= {PREMISE_DIGIT})",
            {
                "shared_digits": shared,
                **{f"{fit}:{test}": v for (fit, test), v in premise.items() if fit != "pretrain_control"},
            },
            bool(
                shared == 0
                and premise[("pretrain", "colour_A_only")] >= PREMISE_READS
                and premise[("pretrain", "colour_B_only")] <= PREMISE_BLIND
                and premise[("finetune", "colour_B_only")] >= PREMISE_READS
                and premise[("finetune", "colour_A_only")] <= PREMISE_BLIND
                and premise[("pretrain", "digit_only")] >= PREMISE_DIGIT
            ),
        )
    )
    claims.append(
        Claim(
            "7-control-colour-blind-pretraining",
            f"control: a ridge probe fitted on the colour-blind pre-training split reads neither group (<= "
            f"{PREMISE_BLIND}) and reads the digit (>= {PREMISE_DIGIT})",
            {f"{test}": v for (fit, test), v in premise.items() if fit == "pretrain_control"},
            bool(
                max(premise[("pretrain_control", "colour_A_only")], premise[("pretrain_control", "colour_B_only")])
                <= PREMISE_BLIND
                and premise[("pretrain_control", "digit_only")] >= PREMISE_DIGIT
            ),
        )
    )
    return claims


def demo_figure(rows: list[dict], cfg: DemoConfig, path) -> None:
    """Top: example images per split; bottom: colour-vote accuracy vs p for 32 vs 1 colours."""
    import matplotlib.pyplot as plt

    from reprozoo.common.results import values

    fig = plt.figure(figsize=(11, 6.5))
    w32, w1 = MultiColorDigits(0), MultiColorDigits(0, n_colors=1)
    p = max(cfg.ps)
    shows = [
        ("train sp=1", w32.train(1.0)),
        (f"OOD p={p}", w32.test(1 - p)),
        ("broad sp=0", w32.train(0.0)),
        ("1 colour, train", w1.train(1.0)),
        (f"1 colour, OOD p={p}", w1.test(1 - p)),
    ]
    for k, (title, s) in enumerate(shows):
        for i in range(3):
            ax = fig.add_subplot(4, 5, 1 + k + 5 * i)
            ax.imshow(s.x[i].transpose(1, 2, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{title}\ny={s.y[i]}" if i == 0 else f"y={s.y[i]}", fontsize=7)
    ax = fig.add_subplot(4, 1, 4)
    for n in (N_PATCHES, 1):
        ax.plot(
            cfg.ps,
            [np.mean(values(rows, method=f"colors={n}", metric="colour_vote_acc", split=f"ood_p={q}")) for q in cfg.ps],
            "o-",
            label=f"{n} colour feature(s)",
        )
    ax.set(xlabel="shift p (OOD sp = 1 − p)", ylabel="colour-vote acc")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    from reprozoo.common.cli import main

    sys.exit(
        main(
            paper="digits_world",
            config_cls=DemoConfig,
            presets=DEMO_PRESETS,
            run=demo_run,
            claims=demo_claims,
            figure=demo_figure,
        )
    )
