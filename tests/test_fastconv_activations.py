"""The dual activations of ``ntkexp.fastconv.activations`` against sampling.

Independent of neural-tangents: each closed form ``pair(c, v1, v2)`` is
checked against Monte Carlo estimates of ``E[phi(u) phi(v)]`` and ``E[phi'(u)
phi'(v)]`` over centred Gaussian ``(u, v)`` with covariance ``c`` and variances
``v1``, ``v2`` (tolerance: six standard errors), and ``diagonal(v)`` against
the pair step at ``c = v1 = v2``. ``tests/test_fastconv.py`` checks the whole
kernels against neural-tangents.
"""

import jax
import numpy as np
import pytest
from scipy import special, stats

from ntkexp.fastconv import activations

# phi and phi' of each activation (numpy), as the models' stax layers define
# them: ReLU, |x|, erf(x), x Phi(x), sin(x).
FUNCTIONS = {
    'relu': (lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    'abs': (np.abs, np.sign),
    'erf': (special.erf, lambda x: 2 / np.sqrt(np.pi) * np.exp(-x ** 2)),
    'gelu': (lambda x: x * stats.norm.cdf(x),
             lambda x: stats.norm.cdf(x) + x * stats.norm.pdf(x)),
    'sin': (np.sin, np.cos),
}
# (v1, v2, correlation): equal and unequal variances, negative, near 1.
COVARIANCES = [(1.0, 1.0, 0.3), (0.4, 2.5, -0.6), (3.0, 0.7, 0.95)]


def test_every_model_activation_has_a_dual():
    from ntkexp.models.common import ACTIVATIONS
    assert set(activations.ACTIVATIONS) == set(ACTIVATIONS) == set(FUNCTIONS)
    with pytest.raises(ValueError, match="unknown activation 'tanh'; valid "
                       'choices: relu, abs, erf, gelu, sin'):
        activations.get('tanh')


@pytest.mark.parametrize('name', sorted(FUNCTIONS))
def test_pair_equals_monte_carlo(name):
    phi, dphi = FUNCTIONS[name]
    act = activations.get(name)
    rng = np.random.default_rng(0)
    n = 1_000_000
    for v1, v2, rho in COVARIANCES:
        c = rho * np.sqrt(v1 * v2)
        z1, z2 = rng.standard_normal((2, n))
        u = np.sqrt(v1) * z1
        v = np.sqrt(v2) * (rho * z1 + np.sqrt(1 - rho ** 2) * z2)
        with jax.enable_x64(True):
            out, dot = (float(a) for a in act.pair(np.float64(c), v1, v2))
        for got, samples in ((out, phi(u) * phi(v)), (dot, dphi(u) * dphi(v))):
            error = samples.std() / np.sqrt(n)
            assert abs(got - samples.mean()) < 6 * error, (
                name, v1, v2, rho, got, samples.mean(), error)


@pytest.mark.parametrize('name', sorted(FUNCTIONS))
def test_diagonal_is_the_pair_step_at_correlation_one(name):
    act = activations.get(name)
    var = np.array([1e-3, 0.1, 0.5, 1.0, 2.0, 10.0])
    with jax.enable_x64(True):
        out, _ = act.pair(var, var, var)
        np.testing.assert_allclose(act.diagonal(var), out, rtol=1e-13)
        # ... and the variance of phi(u), sampled.
    phi, _ = FUNCTIONS[name]
    u = np.random.default_rng(1).standard_normal(1_000_000)
    for v, got in zip(var, np.asarray(out)):
        samples = phi(np.sqrt(v) * u) ** 2
        assert abs(got - samples.mean()) < 6 * samples.std() / 1e3


def test_signed_angle_is_arctan2_for_positive_x():
    rng = np.random.RandomState(0)
    y = rng.randn(5000) * np.exp(rng.uniform(-10, 10, 5000))
    x = np.abs(rng.randn(5000)) * np.exp(rng.uniform(-10, 10, 5000))
    y[:3] = 0
    with jax.enable_x64(True):
        np.testing.assert_allclose(activations.signed_angle(y, x),
                                   np.arctan2(y, x), rtol=0, atol=4.5e-16)


def test_relu_is_ab_relu_zero_one():
    """The ReLU's step is the general ``ABRelu`` one at ``(a, b) = (0, 1)``,
    which keeps the exact correlation-1 treatment of :func:`relu`."""
    relu = activations.get('relu')
    assert relu == activations.ABRelu(0., 1.)
    with jax.enable_x64(True):
        v = np.array([0.5, 2.0, 3.0])
        out, dot = relu.pair(v, v, v)  # an image with itself: theta = 0
        np.testing.assert_array_equal(np.asarray(dot), 0.5)
        np.testing.assert_array_equal(np.asarray(out), 0.5 * v)
