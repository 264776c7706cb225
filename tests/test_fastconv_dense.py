"""The scanned dense recursion (:mod:`ntkexp.fastconv.dense`) of model=fc and
the flat model=resnet.

* It equals neural-tangents' ``kernel_fn`` of the same ``stax`` network to
  rounding, for every activation, with and without biases, ``k(x1, x2)`` and
  ``k(x1, x1)``, float64 and float32.
* Its traced program does not grow with the depth (neural-tangents' grows
  linearly, and XLA's compile time faster than that).
* Selection: NTK parameterisation only; ``fast_kernel=false`` and the
  standard parameterisation keep neural-tangents', ``fast_kernel=true`` there
  is one clear error.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import ntkexp  # noqa: F401  (neural-tangents on current JAX)

from ntkexp import models
from arccos import relu_kernels

X1 = np.random.default_rng(0).normal(size=(7, 3, 4, 2))
X2 = np.random.default_rng(1).normal(size=(5, 3, 4, 2))

NETS = {
    'fc': (models.fc, dict(depth=3)),
    'fc_linear': (models.fc, dict(depth=0)),
    'fc_erf_nobias': (models.fc, dict(depth=5, b_std=None, activation='erf')),
    'fc_gelu': (models.fc, dict(depth=2, activation='gelu', b_std=0.3)),
    'fc_sin': (models.fc, dict(depth=2, activation='sin', W_std=0.9)),
    'fc_abs': (models.fc, dict(depth=4, activation='abs')),
    'resnet': (models.resnet, dict(depth=3, alpha=0.7, b_std=0.1)),
    'resnet_erf': (models.resnet, dict(depth=2, activation='erf', V_std=1.3)),
    'resnet_gamma': (models.resnet, dict(depth=6, alpha_gamma=1.0)),
    'resnet_normalized': (models.resnet, dict(depth=3, alpha=0.7, b_std=0.1,
                                              normalize=True)),
}


@pytest.mark.parametrize('name', sorted(NETS))
def test_equals_neural_tangents_float64(name):
    build, kwargs = NETS[name]
    _, _, fast = build(**kwargs)
    _, _, plain = build(**kwargs, fast_kernel=False)
    assert fast.fastconv and not getattr(plain, 'fastconv', False)
    with jax.enable_x64(True):
        for x2 in (X2, None):
            got = fast(X1, x2, ('nngp', 'ntk'))
            want = plain(X1, x2, ('nngp', 'ntk'))
            for g, w in zip(got, want):
                g, w = np.asarray(g), np.asarray(w)
                if x2 is None:
                    # neural-tangents' own k(x, x) diagonal is the square
                    # root of its rounding off at correlation 1 when its
                    # correlation comes out an ulp below 1, as XLA's -O0 code
                    # (tests/conftest.py) makes it for one input here: 5e-9
                    # (fc) to 3e-8 (resnet).
                    # test_relu_diagonal_is_exact holds ours to the closed form.
                    np.testing.assert_allclose(np.diag(g), np.diag(w),
                                               rtol=1e-7)
                    off = ~np.eye(len(g), dtype=bool)
                    g, w = g[off], w[off]
                np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)
            # One name gives the array itself.
            np.testing.assert_array_equal(np.asarray(fast(X1, x2, 'ntk')),
                                          np.asarray(got.ntk))


@pytest.mark.parametrize('name', ['fc', 'resnet'])
def test_equals_neural_tangents_float32_and_is_symmetric(name):
    build, kwargs = NETS[name]
    _, _, fast = build(**kwargs)
    _, _, plain = build(**kwargs, fast_kernel=False)
    x = X1.astype(np.float32)
    got = np.asarray(fast(x, None, 'ntk'))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, got.T)  # exactly symmetric
    with jax.enable_x64(True):
        exact = np.asarray(plain(x.astype(np.float64), None, 'ntk'))
    # Within float32 rounding of the float64 kernel everywhere. neural-tangents'
    # float32 diagonal is further off (the ReLU step at correlation 1,
    # ntkexp.fastconv.activations.relu), its off-diagonal as close.
    np.testing.assert_allclose(got, exact, rtol=3e-6)
    off = ~np.eye(len(x), dtype=bool)
    np.testing.assert_allclose(got[off], np.asarray(plain(x, None, 'ntk'))[off],
                               rtol=3e-6)
    jitted = jax.jit(fast, static_argnames='get')
    np.testing.assert_allclose(np.asarray(jitted(x, x, get='ntk')), got, rtol=2e-6)


def _equations(kernel_fn):
    jaxpr = jax.make_jaxpr(lambda a, b: kernel_fn(a, b, ('nngp', 'ntk')))(X1, X2)
    return len(jaxpr.jaxpr.eqns)


@pytest.mark.parametrize('build', [models.fc, models.resnet])
def test_traced_program_does_not_grow_with_depth(build):
    sizes = {depth: _equations(build(depth=depth)[2]) for depth in (2, 64)}
    assert sizes[2] == sizes[64]
    plain = {depth: _equations(build(depth=depth, fast_kernel=False)[2])
             for depth in (2, 8)}
    assert plain[8] > 2 * plain[2]  # neural-tangents': one copy per layer


def test_selection_and_errors():
    for build in (models.fc, models.resnet):
        _, _, standard = build(depth=2, parameterization='standard')
        assert not getattr(standard, 'fastconv', False)
        with pytest.raises(ValueError, match='fast_kernel=true does not support '
                           'parameterization=standard'):
            build(depth=2, parameterization='standard', fast_kernel=True)
        assert build(depth=2, fast_kernel=True)[2].net.depth == 2
    with pytest.raises(ValueError, match="fast_kernel='fast' is not supported"):
        models.fc(fast_kernel='fast')
    # The model's input check still runs first (a 1-D batch is no input).
    with pytest.raises(ValueError):
        models.fc(depth=1)[2](np.ones(5), None, 'ntk')


def test_relu_diagonal_is_exact():
    """At correlation 1 the ReLU step is ``nngp / 2``, ``dot = 1/2`` exactly
    (every layer's variance halves and is restored by ``W^2 = 2``): the
    recursion's ``k(x, x)`` diagonal is that to rounding, where
    neural-tangents' carries the square root of the rounding noise of
    ``prod - nngp^2`` (measured 1.7e-8 relative in float64 on 256 inputs of
    3072 features)."""
    x = np.random.default_rng(4).normal(size=(64, 300))
    # The reference takes theta = 0 exactly on a same-set diagonal.
    want = np.diag(relu_kernels(x, None, 3, 2 ** 0.5, 0.1)[1])
    with jax.enable_x64(True):
        got = np.diag(np.asarray(models.fc(depth=3)[2](x, None, 'ntk')))
    np.testing.assert_allclose(got, want, rtol=1e-14)
