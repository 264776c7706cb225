"""Shared test set-up: every test starts with JAX's default float32 precision."""

import jax
import pytest

import ntkexp  # noqa: F401  (neural-tangents on current JAX, before any test imports it)


@pytest.fixture(autouse=True)
def _default_precision():
    """Restores ``jax_enable_x64`` after each test (runs may switch it on)."""
    before = bool(jax.config.jax_enable_x64)
    yield
    jax.config.update('jax_enable_x64', before)
