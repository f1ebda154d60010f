"""Where JAX keeps compiled code between runs, and that the backend uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from relpos.equivalence.backends import backend, jax_cache_dir


def test_the_cache_follows_relpos_jax_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("RELPOS_JAX_CACHE", str(tmp_path / "mine"))
    assert jax_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("RELPOS_JAX_CACHE", "")
    assert jax_cache_dir() is None
    monkeypatch.delenv("RELPOS_JAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jax_cache_dir() == tmp_path / "xdg" / "relpos" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert jax_cache_dir() == Path.home() / ".cache" / "relpos" / "jax"


def test_the_jax_backend_compiles_into_the_cache(monkeypatch, tmp_path):
    jax = pytest.importorskip("jax")
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv("RELPOS_JAX_CACHE", str(tmp_path))
    try:
        assert backend("jax").jax.config.jax_compilation_cache_dir == str(tmp_path)
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
