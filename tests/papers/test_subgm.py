import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reprozoo.papers.subgm import reference
from reprozoo.papers.subgm.baselines import l2_gradient
from reprozoo.papers.subgm.experiment import PRESETS, Config, make_instances
from reprozoo.papers.subgm.method import l1_loss, measure, relative_error, step_size, subgm, subgradient

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    d, r, rp, m = 5, 2, 4, 30
    U_star = rng.standard_normal((d, r))
    X_star = U_star @ U_star.T
    A = rng.standard_normal((m, d, d))  # not symmetric: exercises the (A_i + A_iᵀ) term
    y = np.einsum("mij,ij->m", A, X_star) + (rng.random(m) < 0.2) * rng.normal(0, 10, m)
    U = 0.3 * rng.standard_normal((d, rp))
    return U, A, y, X_star


@pytest.mark.points(1)
def test_measure_is_the_inner_product_with_each_A_i():
    A = jnp.asarray(np.arange(2 * 2 * 2, dtype=float).reshape(2, 2, 2))
    X = jnp.asarray([[1.0, -1.0], [2.0, 0.5]])
    np.testing.assert_allclose(np.asarray(measure(A, X)), [0 - 1 + 4 + 1.5, 4 - 5 + 12 + 3.5])


@pytest.mark.points(1)
def test_step_size_decays_geometrically():
    np.testing.assert_allclose(np.asarray(step_size(jnp.arange(4.0), 0.5, 0.9)), 0.5 * 0.9 ** np.arange(4))


@pytest.mark.points(1)
def test_relative_error_hand_computed():
    U, X_star = jnp.asarray([[1.0], [0.0]]), jnp.asarray([[2.0, 0.0], [0.0, 0.0]])
    assert float(relative_error(U, X_star)) == pytest.approx(0.5)  # ‖[[1,0],[0,0]] − [[2,0],[0,0]]‖ / 2


@pytest.mark.points(1)
def test_l1_loss_hand_computed(problem):
    U, A, y, _ = problem
    expected = np.mean(np.abs(y - np.einsum("mij,ij->m", A, U @ U.T)))
    assert float(l1_loss(jnp.asarray(U), jnp.asarray(A), jnp.asarray(y))) == pytest.approx(expected, rel=1e-12)


@pytest.mark.points(2)
def test_subgradient_matches_float64_numpy_sum_and_autodiff(problem):
    U, A, y, _ = problem
    D = np.asarray(subgradient(jnp.asarray(U), jnp.asarray(A), jnp.asarray(y)))
    np.testing.assert_allclose(D, reference.subgradient(U, A, y), rtol=1e-12, atol=1e-12)
    # away from kinks the ℓ1 loss is differentiable and the subgradient is its gradient
    g = jax.grad(l1_loss)(jnp.asarray(U), jnp.asarray(A), jnp.asarray(y))
    np.testing.assert_allclose(D, np.asarray(g), rtol=1e-10, atol=1e-12)


@pytest.mark.points(2)
@pytest.mark.hidden
def test_subgradient_sign_of_zero_residual_is_zero():
    """Hidden: at an exact fit every residual is 0, sign(0) = 0, so the subgradient is exactly 0."""
    rng = np.random.default_rng(1)
    U = rng.integers(-3, 4, (4, 2)).astype(float)  # integers: A(U Uᵀ) is exact in float64, so y − A(U Uᵀ) = 0
    A = rng.integers(-3, 4, (12, 4, 4)).astype(float)
    y = np.einsum("mij,ij->m", A, U @ U.T)
    D = subgradient(jnp.asarray(U), jnp.asarray(A), jnp.asarray(y))
    np.testing.assert_array_equal(np.asarray(D), 0.0)


@pytest.mark.points(2)
def test_one_subgm_step_equals_hand_update(problem):
    U, A, y, X_star = problem
    eta0, rho = 0.1, 0.9
    U1, _ = subgm(
        jnp.asarray(U), jnp.asarray(A), jnp.asarray(y), jnp.asarray(X_star), eta0=eta0, rho=rho, iters=1, every=1
    )
    signs = np.sign(np.einsum("mij,ij->m", A, U @ U.T) - y)
    D = sum(s * (Ai + Ai.T) @ U for s, Ai in zip(signs, A, strict=True)) / len(y)
    np.testing.assert_allclose(np.asarray(U1), U - eta0 * D, rtol=1e-12, atol=1e-14)


def test_l2_gradient_matches_finite_differences(problem):
    U, A, y, _ = problem

    def f(U):
        return 0.5 * np.mean((np.einsum("mij,ij->m", A, U @ U.T) - y) ** 2)

    G = np.asarray(l2_gradient(jnp.asarray(U), jnp.asarray(A), jnp.asarray(y)))
    eps, fd = 1e-6, np.zeros_like(U)
    for idx in np.ndindex(U.shape):
        E = np.zeros_like(U)
        E[idx] = eps
        fd[idx] = (f(U + E) - f(U - E)) / (2 * eps)
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(G, reference.l2_gradient(U, A, y), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_jax_iteration_matches_numpy_reference(problem, loss):
    from reprozoo.papers.subgm.baselines import l2_gd

    U, A, y, X_star = problem
    fn = subgm if loss == "l1" else l2_gd
    U_T, errs = fn(
        jnp.asarray(U), jnp.asarray(A), jnp.asarray(y), jnp.asarray(X_star), eta0=0.02, rho=0.98, iters=60, every=1
    )
    U_ref, errs_ref = reference.descend(U, A, y, X_star, loss=loss, eta0=0.02, rho=0.98, iters=60)
    np.testing.assert_allclose(np.asarray(U_T), U_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(errs), errs_ref, rtol=1e-9)


def test_instances_are_normalised_and_seeded():
    cfg = PRESETS["smoke"]
    a, b = make_instances(cfg, [0, 1]), make_instances(cfg, [0])
    np.testing.assert_array_equal(a[0].A, b[0].A)
    assert not np.allclose(a[0].X_star, a[1].X_star)
    assert np.linalg.norm(a[0].X_star) == pytest.approx(1.0)
    assert np.linalg.matrix_rank(a[0].X_star) == cfg.r
    np.testing.assert_allclose(a[0].A, a[0].A.transpose(0, 2, 1))
    np.testing.assert_allclose(a[0].y_clean, np.asarray(measure(a[0].A, a[0].X_star)))
    assert float(relative_error(jnp.zeros((cfg.d, 1)), jnp.asarray(a[0].X_star))) == pytest.approx(1.0)


def test_cli_smoke_writes_results_and_is_deterministic(run_cli, tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        proc = run_cli("reprozoo.papers.subgm", "--preset", "smoke", "--iters", "150", "--out", str(out))
        assert "claims" in proc.stdout.splitlines()[-1] or "└" in proc.stdout  # claims table printed last
        assert {p.name for p in out.iterdir()} == {"records.jsonl", "summary.json", "table.md", "figure.png"}
        summary = json.loads((out / "summary.json").read_text())
        for key in ("wall_time_s", "env"):  # env holds the commit, which other edits of the tree may dirty
            summary.pop(key)
        summary["config"].pop("out")
        outs.append(summary)
    assert outs[0] == outs[1]
    assert outs[0]["config"]["iters"] == 150 and len(outs[0]["claims"]) == 8


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--seeds", "0"], "--seeds"),
        (["--ranks", "1"], "--ranks"),
        (["--rho", "1.5"], "--rho"),
    ],
)
def test_cli_rejects_bad_values(run_cli, args, needle):
    proc = run_cli("reprozoo.papers.subgm", *args, expect_rc=2, timeout=120)
    assert needle in proc.stderr


def test_config_validation_names_field():
    from reprozoo.common.config import ConfigError

    with pytest.raises(ConfigError, match="--every"):
        Config(iters=100, every=30).validate()


# committed findings of the quick run (pre-registration v2): one trial in ten (seed 7) does not reject p = 0.3
# outliers on top of ν = 1e-2 noise (92x its noise-only error), so the paired CI cannot exclude a 3x cost
KNOWN_FAILS = {"4b-outliers-under-noise": "seed 7 ends at 0.24 with noise + outliers (README, Pre-registration v2)"}


@pytest.mark.slow
def test_quick_preset_claims_hold(run_cli, tmp_path):
    run_cli("reprozoo.papers.subgm", "--preset", "quick", "--out", str(tmp_path))
    claims = json.loads((tmp_path / "summary.json").read_text())["claims"]
    assert {c["id"] for c in claims if c["verdict"] != "PASS"} == set(KNOWN_FAILS), claims


# ----------------------------------------------------------------------------- claims v2 on synthetic rows


def _synthetic_rows(seeds=6, l2_clean=1e-12, mixed_bad_seed=None):
    """Rows shaped like the quick preset's (final_error and iters_to_1e-2 per sweep point and trial), with values
    chosen so every claim holds unless a keyword breaks one."""
    from reprozoo.common.results import record

    cfg = PRESETS["quick"]
    rng = np.random.default_rng(0)
    rows = []
    small, large = min(cfg.alphas), max(cfg.alphas)
    for s in range(seeds):
        jit = 10 ** rng.normal(0, 0.05)
        for k in cfg.ranks:
            for a in cfg.alphas:
                err = 1e-7 * jit if (k == cfg.r or a == small) else 4e-3 * jit
                rows.append(record("subgm", s, "final_error", err, sweep="init", rank=k, alpha=a))
                rows.append(record("subgm", s, "iters_to_1e-2", 280.0 + 5 * s, sweep="init", rank=k, alpha=a))
        for p in cfg.outlier_fractions:
            kw = dict(sweep="outliers", rank=cfg.d, alpha=small, outlier_p=p)
            rows.append(record("subgm", s, "final_error", 1e-7 * jit, **kw))
            rows.append(record("l2", s, "final_error", l2_clean if p == 0 else 2.0 * jit, **kw))
        for nu in cfg.noise_levels:
            rows.append(record("subgm", s, "final_error", 0.28 * nu * jit, sweep="gaussian", rank=cfg.d, nu=nu))
        mixed = 0.24 if s == mixed_bad_seed else 0.28 * 1e-2 * 1.5 * jit
        rows.append(record("subgm", s, "final_error", mixed, sweep="gaussian+outliers", rank=cfg.d, nu=1e-2))
    assert large != small
    return rows, cfg


def _verdicts(rows, cfg):
    from reprozoo.common.results import resolve_verdicts
    from reprozoo.papers.subgm.claims import check

    return {c.id: c for c in resolve_verdicts(check(rows, cfg))}


def test_claims_v2_kinds_and_all_pass_on_a_good_world():
    got = _verdicts(*_synthetic_rows())
    assert {c.kind for c in got.values()} == {"premise", "claim", "control"}
    assert all(c.verdict == "PASS" for c in got.values()), {k: (c.verdict, c.observed) for k, c in got.items()}
    assert got["2c-control-exact-rank"].kind == "control"
    # the paired CI of claim 2 is the t CI of the per-trial log10 ratios
    obs = got["2-large-init-penalty"].observed
    assert obs["log10_ratio_large_over_small"] == pytest.approx(np.log10(4e-3 / 1e-7))
    assert obs["n_seeds"] == 6 and obs["log10_ratio_large_over_small_sd"] == pytest.approx(0, abs=1e-12)


def test_claims_v2_premise_fail_makes_dependent_claims_untested():
    got = _verdicts(*_synthetic_rows(l2_clean=0.5))  # the measurements no longer identify X*
    assert got["0a-premise-identifiable"].verdict == "FAIL"
    for cid in ("1-small-init-agnostic", "2-large-init-penalty", "2c-control-exact-rank", "3-outlier-robust"):
        assert got[cid].verdict == "UNTESTED" and not got[cid].passed
        assert got[cid].observed  # numbers still shown


def test_claims_v2_one_bad_trial_under_noise_and_outliers_fails_4b_only():
    got = _verdicts(*_synthetic_rows(mixed_bad_seed=3))
    assert got["4b-outliers-under-noise"].verdict == "FAIL"
    assert got["4b-outliers-under-noise"].observed["worst_trial_ratio"] > 50
    assert all(c.verdict == "PASS" for k, c in got.items() if k != "4b-outliers-under-noise")


def test_claims_v2_control_fails_when_the_exact_rank_run_also_pays_the_penalty():
    rows, cfg = _synthetic_rows()
    for row in rows:
        if row["metric"] == "final_error" and row.get("sweep") == "init" and row["rank"] == cfg.r:
            row["value"] = 4e-3 if row["alpha"] == max(cfg.alphas) else 1e-7
    assert _verdicts(rows, cfg)["2c-control-exact-rank"].verdict == "FAIL"
