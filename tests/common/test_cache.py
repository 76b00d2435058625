from dataclasses import dataclass

from reprozoo.common.cache import cache_root, config_hash


@dataclass(frozen=True)
class Cfg:
    a: int = 1
    b: tuple[str, ...] = ("x",)


def test_config_hash_is_stable_and_sensitive():
    assert config_hash(Cfg()) == config_hash(Cfg()) and len(config_hash(Cfg())) == 12
    assert config_hash(Cfg(a=2)) != config_hash(Cfg())
    assert config_hash(Cfg(b=("y",))) != config_hash(Cfg())


def test_cache_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("REPROZOO_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("REPROZOO_CACHE")
    assert cache_root().name == ".cache"


def test_jax_compilation_cache_goes_under_cache_root(monkeypatch, tmp_path):
    import jax

    from reprozoo.common.cache import enable_jax_compilation_cache

    old = jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs
    monkeypatch.setenv("REPROZOO_CACHE", str(tmp_path))
    try:
        assert enable_jax_compilation_cache(2.5) == tmp_path / "jax"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "jax")
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 2.5
    finally:
        jax.config.update("jax_compilation_cache_dir", old[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])


def test_save_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    import threading

    import pytest
    import torch

    from reprozoo.common.cache import save_atomic

    path = tmp_path / "sub" / "entry.pt"
    save_atomic({"x": torch.arange(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.arange(3))
    with pytest.raises(TypeError):  # a failed write (a lock cannot be pickled) must leave the old entry whole
        save_atomic({"x": threading.Lock()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.arange(3))
    assert [p.name for p in path.parent.iterdir()] == ["entry.pt"]
