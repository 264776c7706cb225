"""Shared test set-up: every test starts in float32 with exact float32 products.

Matrix products run at ``highest`` precision (as ``ntkexp run`` does by default,
``matmul_precision=highest``): on a GPU, JAX's default lets float32 products use
TF32, whose 1e-3 relative error would swamp the comparisons between different
but equivalent computations (structured derivatives vs Jacobian contraction,
blocks vs one call) that the tests make.
"""

import jax
import pytest

import ntkexp  # noqa: F401  (neural-tangents on current JAX, before any test imports it)

jax.config.update('jax_default_matmul_precision', 'highest')


@pytest.fixture(autouse=True)
def _default_precision():
    """Restores JAX's precision settings after each test (runs change them)."""
    before = bool(jax.config.jax_enable_x64)
    matmul = jax.config.jax_default_matmul_precision
    yield
    jax.config.update('jax_enable_x64', before)
    jax.config.update('jax_default_matmul_precision', matmul)
