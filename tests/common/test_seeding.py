import numpy as np
import pytest
import torch

from reprozoo.common.seeding import jax_key, seed_everything


def test_same_seed_same_draws_everywhere():
    def draws(seed):
        rng = seed_everything(seed)
        return rng.normal(size=3), np.random.rand(2), torch.randn(3)

    a, b, c = draws(7), draws(7), draws(8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.allclose(a[0], c[0]) and not torch.equal(a[2], c[2])


def test_jax_key_is_deterministic():
    import jax

    x = jax.random.normal(jax_key(3), (4,))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(jax.random.normal(jax_key(3), (4,))))


def test_negative_seed_rejected():
    with pytest.raises(ValueError):
        seed_everything(-1)
