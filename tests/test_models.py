"""Tests for ntkexp.models: kernels, finite networks, configs and input checks.

* Monte Carlo: for every architecture, the empirical NNGP / NTK of finite
  networks averaged over random initialisations (``nt.monte_carlo_kernel_fn``)
  approaches the analytic ``kernel_fn``, and the error shrinks as width and the
  number of samples grow.
* Closed form: the FC ReLU kernels equal the arc-cosine recursion (Cho & Saul
  2009; NNGP of Lee et al. 2018, NTK of Jacot et al. 2018 / Arora et al. 2019)
  in float64 to 1e-10.
* Finite networks: output shapes and exact parameter counts (by formula) on
  8x8x1, 28x28x1 and 32x32x3 inputs.
"""

import inspect
import math
import pathlib

import ntkexp  # noqa: F401  (before neural_tangents)

import jax
import jax.numpy as jnp
import neural_tangents as nt
import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ntkexp import models
from ntkexp.models import count_params
from arccos import relu_kernels
from neural_tangents import stax

CONF = pathlib.Path(__file__).resolve().parents[1] / 'conf' / 'model'

# nt warns that FanIn layers assume independent branches (true here: every
# residual branch has a Dense / Conv layer; the skip is the identity).
pytestmark = pytest.mark.filterwarnings('ignore:`FanIn` layers assume')


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def _images(shape, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


# --------------------------------------------------------------------------
# Monte Carlo estimate of the finite network vs the analytic kernels.

# name -> (function, kwargs, input shape, (small width, large width)). One case
# per architecture runs by default; the variants (standard parameterization,
# other activations and readouts) are slow. Compiling the jitted init and
# empirical kernel for each width dominates the cost; extra samples are cheap.
MC_CASES = {
    'fc': (models.fc, dict(depth=2), (2, 8), (8, 128)),
    'cnn-gap': (models.cnn, dict(depth=2, readout='gap'), (2, 4, 4, 1),
                (2, 32)),
    'myrtle5': (models.myrtle, dict(depth=5), (2, 4, 4, 1), (2, 32)),
    'wrn-10-1': (models.wrn, dict(depth=10), (2, 4, 4, 1), (2, 16)),
    'resnet-flat': (models.resnet, dict(depth=2, alpha=0.7, b_std=0.1),
                    (2, 8), (8, 128)),
}
MC_SLOW_CASES = {
    'fc-standard': (models.fc, dict(depth=2, parameterization='standard'),
                    (2, 8), (8, 128)),
    'fc-gelu': (models.fc, dict(depth=3, activation='gelu', b_std=None),
                (2, 8), (8, 128)),
    'cnn-flatten-erf': (models.cnn, dict(depth=2, readout='flatten',
                                         activation='erf', W_std=1.5),
                        (2, 4, 4, 1), (2, 32)),
    # ReLU CNN / Myrtle kernels default to ntkexp.fastconv; these check the
    # neural-tangents path of the same networks.
    'cnn-gap-nt': (models.cnn, dict(depth=2, readout='gap', fast_kernel=False),
                   (2, 4, 4, 1), (2, 32)),
    'myrtle5-nt': (models.myrtle, dict(depth=5, fast_kernel=False),
                   (2, 4, 4, 1), (2, 32)),
    # Other activations through ntkexp.fastconv (the default for these nets).
    # Erf's NNGP converges more slowly in the width (relative RMS error 0.061
    # at width 32, 0.029 at 128, with 256 samples; ReLU 0.036 / 0.042):
    # widths 4x those of the ReLU Myrtle.
    'myrtle5-erf': (models.myrtle, dict(depth=5, activation='erf'),
                    (2, 4, 4, 1), (8, 128)),
    'wrn-10-1-gelu': (models.wrn, dict(depth=10, activation='gelu'),
                      (2, 4, 4, 1), (2, 16)),
    # Locally connected (LCN): a finite net with a filter per position.
    'lcn': (models.cnn, dict(depth=2, readout='flatten', weight_sharing=False),
            (2, 4, 4, 1), (2, 32)),
    'cnn-standard': (models.cnn, dict(depth=2, parameterization='standard'),
                     (2, 4, 4, 1), (2, 32)),
    'resnet-standard': (models.resnet, dict(depth=2, alpha=0.7, b_std=0.1,
                                            parameterization='standard'),
                        (2, 8), (8, 128)),
    'resnet-image-gelu': (models.resnet, dict(depth=1, alpha=0.5,
                                              layout='image',
                                              activation='gelu'),
                          (2, 4, 4, 1), (2, 32)),
}


def _analytic(fn, kwargs, x, width):
    _, _, kernel_fn = fn(width=width, **kwargs)
    return jax.jit(kernel_fn, static_argnames='get')(x, None,
                                                      get=('nngp', 'ntk'))


def _mc_errors(fn, kwargs, x, width, n_samples, exact=None, out_dim=8,
               seed=1):
    """Relative NNGP and NTK errors of MC estimates with ``n_samples`` samples.

    ``out_dim`` independent outputs each count as a sample (``trace_axes``
    averages over them). Without ``exact`` the analytic kernel is computed for
    the same width: under the standard parameterization the NTK depends on it.
    """
    if exact is None:
        exact = _analytic(fn, kwargs, x, width)
    init_fn, apply_fn, _ = fn(width=width, out_dim=out_dim, **kwargs)
    # The RngBitGenerator PRNG compiles the jitted init_fn ~5x faster on CPU
    # than threefry (whose compile time dominated these tests).
    key = jax.random.key(seed, impl='unsafe_rbg')
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, list(n_samples))
    return [(_rel(k.nngp, exact.nngp), _rel(k.ntk, exact.ntk))
            for k in mc(x, None, ('nngp', 'ntk'))]


def _check_mc_convergence(case, fn, kwargs, shape, widths):
    w_small, w_large = widths
    x = _images(shape)
    exact = None
    if kwargs.get('parameterization', 'ntk') == 'ntk':
        exact = _analytic(fn, kwargs, x, 1)  # width-free in NTK param
    (small,) = _mc_errors(fn, kwargs, x, w_small, [1], exact)
    (large,) = _mc_errors(fn, kwargs, x, w_large, [128], exact)
    for kind, e_small, e_large in zip(('nngp', 'ntk'), small, large):
        assert e_large < 0.15, (case, kind, small, large)
        assert e_large < 0.5 * e_small, (case, kind, small, large)


@pytest.mark.parametrize('case', list(MC_CASES))
def test_monte_carlo_converges_to_analytic_kernel(case):
    _check_mc_convergence(case, *MC_CASES[case])


@pytest.mark.slow
@pytest.mark.parametrize('case', list(MC_SLOW_CASES))
def test_monte_carlo_converges_variants(case):
    _check_mc_convergence(case, *MC_SLOW_CASES[case])


def _mc_rms_errors(fn, kwargs, x, width, n_samples, repeats):
    """Root-mean-square NNGP / NTK errors of ``repeats`` independent estimates.

    One compiled sampler: its running means after ``n, 2n, ...`` samples give
    the means of disjoint chunks of ``n`` samples.
    """
    exact = _analytic(fn, kwargs, x, width)
    init_fn, apply_fn, _ = fn(width=width, out_dim=8, **kwargs)
    counts = [n_samples * (r + 1) for r in range(repeats)]
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn,
                                  jax.random.key(1, impl='unsafe_rbg'), counts)
    sq, previous = np.zeros(2), None
    for count, k in zip(counts, mc(x, None, ('nngp', 'ntk'))):
        total = (k.nngp * count, k.ntk * count)
        chunk = total if previous is None else tuple(
            (t - p) for t, p in zip(total, previous))
        previous = total
        sq += np.square([_rel(chunk[0] / n_samples, exact.nngp),
                         _rel(chunk[1] / n_samples, exact.ntk)])
    return np.sqrt(sq / repeats)


@pytest.mark.slow
@pytest.mark.parametrize('case', list(MC_CASES) + list(MC_SLOW_CASES))
def test_monte_carlo_error_decreases_with_width_and_samples(case):
    """Three steps of 4x the width and 16x, then 8x the samples: the error drops."""
    fn, kwargs, shape, (w_small, _) = {**MC_CASES, **MC_SLOW_CASES}[case]
    x = _images(shape, seed=3)
    errors = [_mc_rms_errors(fn, kwargs, x, w, n, repeats=4)
              for w, n in zip([w_small, 4 * w_small, 16 * w_small],
                              [2, 32, 256])]
    for kind in (0, 1):
        e = [err[kind] for err in errors]
        assert e[2] < e[1] < e[0], (case, kind, e)
        assert e[2] < 0.05, (case, kind, e)


# --------------------------------------------------------------------------
# FC ReLU: closed-form arc-cosine recursion in float64 (tests/arccos.py).


@pytest.mark.parametrize('b_std', [None, 0.1])
def test_lcn_kernels_equal_cnn_vec_kernels(b_std):
    """Novak et al. 2019: with a flatten readout the locally connected net
    (weight_sharing=False) has the CNN-VEC's NNGP and NTK; with pooling it
    does not (weight sharing correlates positions)."""
    with jax.enable_x64(True):
        x = np.random.default_rng(0).normal(size=(4, 5, 5, 2))
        kw = dict(depth=3, width=1, b_std=b_std, fast_kernel=False)
        kernels = {}
        for sharing in (True, False):
            for readout in ('flatten', 'gap'):
                _, _, kernel_fn = models.cnn(weight_sharing=sharing, readout=readout,
                                             **kw)
                kernels[sharing, readout] = kernel_fn(x, None, ('nngp', 'ntk'))
        for kind in ('nngp', 'ntk'):
            cnn = np.asarray(getattr(kernels[True, 'flatten'], kind))
            lcn = np.asarray(getattr(kernels[False, 'flatten'], kind))
            np.testing.assert_allclose(lcn, cnn, rtol=1e-12, atol=0)
            assert _rel(getattr(kernels[False, 'gap'], kind),
                        getattr(kernels[True, 'gap'], kind)) > 0.05


def _assert_close_1e10(actual, desired, same):
    """Agreement to 1e-10; the diagonal of a same-set kernel to 1e-8.

    On the diagonal c = cos(theta) = 1, where arccos is ill-conditioned
    (d theta / d c -> infinity): one rounding error of 1e-16 in c moves theta by
    ~1e-8 and E[relu' relu'] = (pi - theta) / (2 pi) by ~1e-9, in any float64
    implementation that does not special-case the diagonal (neural-tangents
    does not). The reference uses theta = 0 exactly there.
    """
    scale = np.abs(desired).max()
    if same:
        np.testing.assert_allclose(np.diag(actual), np.diag(desired), rtol=1e-8)
        off = ~np.eye(len(desired), dtype=bool)
        actual, desired = actual[off], desired[off]
    np.testing.assert_allclose(actual, desired, rtol=1e-10, atol=1e-10 * scale)


@pytest.mark.parametrize('depth,W_std,b_std', [
    (1, 2 ** 0.5, 0.1), (3, 1.3, 0.0), (4, 1.0, 0.1), (6, 2 ** 0.5, None),
    (2, 0.8, 0.5)])
def test_fc_relu_kernel_matches_arccos_recursion_float64(depth, W_std, b_std):
    rng = np.random.default_rng(depth)
    x1 = rng.normal(size=(5, 7))
    x2 = 3.0 * rng.normal(size=(4, 7))
    with jax.enable_x64(True):
        _, _, kernel_fn = models.fc(depth=depth, width=8, W_std=W_std,
                                    b_std=b_std)
        for a, b in ((x1, x2), (x1, None)):
            k = kernel_fn(jnp.asarray(a), None if b is None else jnp.asarray(b),
                          ('nngp', 'ntk'))
            assert k.ntk.dtype == jnp.float64
            nngp, ntk = relu_kernels(a, b, depth, W_std, b_std)
            _assert_close_1e10(np.asarray(k.nngp), nngp, same=b is None)
            _assert_close_1e10(np.asarray(k.ntk), ntk, same=b is None)
    # The NNGP does not depend on the parameterization.
    with jax.enable_x64(True):
        _, _, std_kernel_fn = models.fc(depth=depth, width=8, W_std=W_std,
                                        b_std=b_std,
                                        parameterization='standard')
        np.testing.assert_allclose(
            np.asarray(std_kernel_fn(jnp.asarray(x1), jnp.asarray(x2), 'nngp')),
            relu_kernels(x1, x2, depth, W_std, b_std)[0], rtol=1e-10)


@pytest.mark.parametrize('fn,kwargs', [
    (models.fc, dict(depth=2, width=8)),
    (models.resnet, dict(depth=2, width=8, b_std=0.1)),
])
def test_flat_models_flatten_images(fn, kwargs):
    x = _images((3, 4, 4, 2))
    flat = x.reshape(3, -1)
    init_fn, apply_fn, kernel_fn = fn(out_dim=2, **kwargs)
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    np.testing.assert_allclose(apply_fn(params, x), apply_fn(params, flat),
                               rtol=1e-6)
    k_img = kernel_fn(x, None, ('nngp', 'ntk'))
    k_flat = kernel_fn(flat, None, ('nngp', 'ntk'))
    np.testing.assert_allclose(k_img.nngp, k_flat.nngp, rtol=1e-6)
    np.testing.assert_allclose(k_img.ntk, k_flat.ntk, rtol=1e-6)


# --------------------------------------------------------------------------
# Finite networks: forward pass and parameter counts.

IMAGE_SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3)]


def _dense(n_in, n_out, bias):
    return n_in * n_out + (n_out if bias else 0)


def _conv(f, c_in, c_out, bias):
    return f * f * c_in * c_out + (c_out if bias else 0)


def _expected_params(name, kw, hwc, out):
    """Parameter count of each architecture, from its definition."""
    h, w, c = hwc
    bias = kw.get('b_std') is not None
    n = kw['width']
    if name == 'fc':
        dims = [h * w * c] + [n] * kw['depth'] + [out]
        return sum(_dense(a, b, bias) for a, b in zip(dims, dims[1:]))
    if name == 'cnn':
        f = kw['filter_size']
        total = _conv(f, c, n, bias) + (kw['depth'] - 1) * _conv(f, n, n, bias)
        if not kw.get('weight_sharing', True):
            total *= h * w  # LCN: a filter (and bias) per position
        feat = n if kw['readout'] == 'gap' else h * w * n
        return total + _dense(feat, out, bias)
    if name == 'myrtle':
        convs = sum(models.MYRTLE_STAGES[kw['depth']])
        return (_conv(3, c, n, bias) + (convs - 1) * _conv(3, n, n, bias)
                + _dense(n, out, bias))
    if name == 'wrn':
        blocks = (kw['depth'] - 4) // 6
        total, c_in = _conv(3, c, n, bias), n
        for g in range(3):
            ch = n * kw['k'] * 2 ** g
            for i in range(blocks):
                total += _conv(3, c_in, ch, bias) + _conv(3, ch, ch, bias)
                if i == 0 and (ch != c_in or g > 0):
                    total += _conv(1, c_in, ch, bias)
                c_in = ch
        return total + _dense(c_in, out, bias)
    if name == 'resnet':
        if kw.get('layout') == 'image':
            f = kw['filter_size']
            return (_conv(f, c, n, bias) + 2 * kw['depth'] * _conv(f, n, n, bias)
                    + _dense(n, out, bias))
        return (_dense(h * w * c, n, bias) + 2 * kw['depth'] * _dense(n, n, bias)
                + _dense(n, out, bias))
    raise AssertionError(name)


FORWARD_CASES = {
    'fc': ('fc', dict(depth=2, width=6, b_std=0.1)),
    'cnn-gap': ('cnn', dict(depth=2, width=3, filter_size=3, readout='gap',
                            b_std=0.1)),
    'cnn-flatten': ('cnn', dict(depth=1, width=2, filter_size=5,
                                readout='flatten', b_std=None)),
    'lcn': ('cnn', dict(depth=2, width=3, filter_size=3, readout='flatten',
                        b_std=0.1, weight_sharing=False)),
    'myrtle7': ('myrtle', dict(depth=7, width=3, b_std=None)),
    'myrtle10': ('myrtle', dict(depth=10, width=2, b_std=0.1)),
    'wrn-16-2': ('wrn', dict(depth=16, width=2, k=2, b_std=None)),
    'wrn-10-1': ('wrn', dict(depth=10, width=2, k=1, b_std=0.1)),
    'resnet-flat': ('resnet', dict(depth=2, width=5, b_std=0.1)),
    'resnet-image': ('resnet', dict(depth=2, width=3, filter_size=3,
                                    layout='image', b_std=None)),
}


@pytest.mark.parametrize('hwc', IMAGE_SHAPES, ids=lambda s: 'x'.join(map(str, s)))
@pytest.mark.parametrize('case', list(FORWARD_CASES))
def test_forward_pass_shape_and_parameter_count(case, hwc):
    """Shapes and counts through the whole network, traced abstractly.

    ``jax.eval_shape`` runs ``init_fn`` and ``apply_fn`` on abstract values (no
    compilation), so every layer's shape logic runs on each input size; the
    numbers the finite networks compute are checked by the Monte Carlo tests
    and by the hand-computed forward passes below.
    """
    name, kw = FORWARD_CASES[case]
    out = 10
    init_fn, apply_fn, _ = getattr(models, name)(out_dim=out, **kw)
    x = jax.ShapeDtypeStruct((2,) + hwc, jnp.float32)
    shapes = []

    def init_params(key):
        out_shape, params = init_fn(key, x.shape)
        shapes.append(tuple(int(d) for d in out_shape))
        return params

    params = jax.eval_shape(init_params, jax.random.PRNGKey(0))
    assert shapes == [(2, out)]
    assert count_params(params) == _expected_params(name, kw, hwc, out)
    y = jax.eval_shape(apply_fn, params, x)
    assert y.shape == (2, out) and y.dtype == jnp.float32


@pytest.mark.parametrize('hwc', IMAGE_SHAPES, ids=lambda s: 'x'.join(map(str, s)))
def test_forward_pass_runs_on_image_sizes(hwc):
    """A real forward pass of a small CNN-GAP and an FC net on each size."""
    x = _images((2,) + hwc)
    for fn, kw in ((models.cnn, dict(depth=2, width=2)),
                   (models.fc, dict(depth=1, width=4))):
        init_fn, apply_fn, _ = fn(out_dim=3, **kw)
        _, params = init_fn(jax.random.PRNGKey(0), x.shape)
        y = apply_fn(params, x)
        assert y.shape == (2, 3) and bool(jnp.all(jnp.isfinite(y)))
        assert float(jnp.std(y)) > 0


@pytest.mark.parametrize('depth,k,millions', [(28, 10, 36.5), (16, 8, 11.0)])
def test_wrn_parameter_count_matches_paper(depth, k, millions):
    """Zagoruyko & Komodakis 2016, Table on CIFAR: WRN-28-10 36.5M, WRN-16-8 11.0M.

    (Their counts include batch-norm parameters, a few thousand here.)
    """
    init_fn, _, _ = models.wrn(depth=depth, k=k, width=16, out_dim=10)
    params = jax.eval_shape(lambda key: init_fn(key, (1, 32, 32, 3))[1],
                            jax.random.PRNGKey(0))
    assert round(count_params(params) / 1e6, 1) == millions


def test_fc_forward_pass_by_hand():
    """NTK parameterization: z = W_std / sqrt(n_in) W x + b_std b."""
    W_std, b_std = 1.3, 0.2
    init_fn, apply_fn, _ = models.fc(depth=2, width=5, W_std=W_std,
                                     b_std=b_std, activation='erf', out_dim=3)
    x = _images((4, 2, 3, 1))
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    h = np.asarray(x).reshape(4, -1)
    dense = [p for p in params if p]
    for i, (W, b) in enumerate(dense):
        h = W_std / math.sqrt(h.shape[1]) * h @ np.asarray(W) + b_std * np.asarray(
            b).reshape(-1)
        if i < len(dense) - 1:
            h = np.asarray(jax.scipy.special.erf(h))
    np.testing.assert_allclose(apply_fn(params, x), h, rtol=1e-5, atol=1e-6)


def test_resnet_alpha_gamma_sets_alpha_from_depth():
    """alpha_gamma = gamma gives alpha = depth^(-gamma) (Huang et al. 2020)."""
    x = np.random.default_rng(0).normal(size=(4, 6))
    for depth, gamma, alpha in ((16, 0.5, 0.25), (8, 1.0, 0.125), (3, 0.0, 1.0)):
        _, _, by_gamma = models.resnet(depth=depth, alpha=0.9, alpha_gamma=gamma)
        _, _, by_alpha = models.resnet(depth=depth, alpha=alpha)
        np.testing.assert_array_equal(by_gamma(x, None, 'ntk'), by_alpha(x, None, 'ntk'))
    # alpha itself is ignored when alpha_gamma is set; without it, it counts.
    _, _, plain = models.resnet(depth=16, alpha=0.9)
    _, _, scaled = models.resnet(depth=16, alpha=0.9, alpha_gamma=0.5)
    assert not np.allclose(plain(x, None, 'ntk'), scaled(x, None, 'ntk'), rtol=1e-3)


def test_resnet_forward_pass_by_hand():
    """y = x + alpha * V act(W x): the residual scale multiplies the branch."""
    alpha, W_std, V_std = 0.3, 1.4, 0.9
    init_fn, apply_fn, _ = models.resnet(depth=2, width=4, alpha=alpha,
                                         W_std=W_std, V_std=V_std, b_std=None,
                                         out_dim=2)
    x = _images((3, 5))
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    weights = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params)]
    assert len(weights) == 1 + 2 * 2 + 1

    def dense(h, W, std):
        return std / math.sqrt(h.shape[1]) * h @ W

    h = dense(np.asarray(x), weights[0], V_std)
    for block in range(2):
        W, V = weights[1 + 2 * block], weights[2 + 2 * block]
        h = h + alpha * dense(np.maximum(dense(h, W, W_std), 0), V, V_std)
    y = dense(h, weights[-1], V_std)
    np.testing.assert_allclose(apply_fn(params, x), y, rtol=1e-5, atol=1e-6)


def test_normalized_resnet_by_hand_and_its_variance_kept_at_any_alpha():
    """normalize=True: y = (x + alpha V relu(W x)) / sqrt(1 + alpha^2) in the
    finite net; for ReLU at W_std^2 = 2, V_std = 1 and no biases each block
    keeps the variance, so the NNGP's diagonal is |x|^2 / d at any alpha and
    depth, where the plain ResNet's grows as (1 + alpha^2)^depth."""
    alpha = 0.8
    init_fn, apply_fn, _ = models.resnet(depth=2, width=4, alpha=alpha,
                                         normalize=True, out_dim=2)
    x = _images((3, 5))
    _, params = init_fn(jax.random.PRNGKey(1), x.shape)
    weights = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params)]

    def dense(h, W, std):
        return std / math.sqrt(h.shape[1]) * h @ W

    h = dense(np.asarray(x), weights[0], 1.0)
    for block in range(2):
        W, V = weights[1 + 2 * block], weights[2 + 2 * block]
        h = (h + alpha * dense(np.maximum(dense(h, W, 2 ** 0.5), 0), V, 1.0)
             ) / math.sqrt(1 + alpha ** 2)
    np.testing.assert_allclose(apply_fn(params, x), dense(h, weights[-1], 1.0),
                               rtol=1e-5, atol=1e-6)
    # A seed draws the same weights with and without the rescaling.
    init_plain, _, _ = models.resnet(depth=2, width=4, alpha=alpha, out_dim=2)
    _, plain = init_plain(jax.random.PRNGKey(1), x.shape)
    for a, b in zip(jax.tree_util.tree_leaves(plain), weights):
        np.testing.assert_array_equal(a, b)

    xs = np.random.default_rng(2).normal(size=(4, 6))
    q = np.sum(xs ** 2, axis=1) / 6
    with jax.enable_x64(True):
        for alpha, depth in ((0.5, 4), (2.0, 3), (1.0, 16)):
            for fast in (True, False):
                _, _, normalized = models.resnet(depth=depth, alpha=alpha,
                                                 normalize=True, fast_kernel=fast)
                np.testing.assert_allclose(
                    np.diag(normalized(xs, None, 'nngp')), q, rtol=1e-12)
            _, _, plain = models.resnet(depth=depth, alpha=alpha)
            np.testing.assert_allclose(np.diag(plain(xs, None, 'nngp')),
                                       q * (1 + alpha ** 2) ** depth, rtol=1e-12)
    with pytest.raises(ValueError, match='normalize must be true or false'):
        models.resnet(normalize='yes')


def test_normalized_resnet_trains_as_the_plain_one_on_scaled_targets():
    """Without biases every block is positively homogeneous, so the
    normalised ResNet is the plain one divided by s = (1 + alpha^2)^(depth/2),
    with the same weights. Its NTK is then the plain one's over s^2, and
    gradient descent on it at s^2 times the learning rate (the same fraction
    of its stable rate) is step for step the plain net's on targets s y
    (centred nets, results/resnet-ntk-alpha/: why a large output is lazy)."""
    alpha, depth = 1.0, 2
    s = (1 + alpha ** 2) ** (depth / 2)
    init_fn, plain, _ = models.resnet(depth=depth, width=16, alpha=alpha)
    _, normalized, _ = models.resnet(depth=depth, width=16, alpha=alpha,
                                     normalize=True)
    rng = np.random.default_rng(3)
    x, y = jnp.asarray(rng.normal(size=(6, 5))), jnp.asarray(rng.normal(size=(6, 1)))
    _, params0 = init_fn(jax.random.PRNGKey(4), x.shape)
    np.testing.assert_allclose(normalized(params0, x), plain(params0, x) / s,
                               rtol=1e-5)

    def train(f, lr, target):
        f0 = f(params0, x)
        grad = jax.grad(lambda p: 0.5 * jnp.mean((f(p, x) - f0 - target) ** 2))
        params = params0
        for _ in range(5):
            params = jax.tree.map(lambda p, g: p - lr * g, params, grad(params))
        return params

    got = train(normalized, 0.05 * s ** 2, y)
    want = train(plain, 0.05, s * y)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    moved = jax.tree_util.tree_leaves(jax.tree.map(jnp.subtract, got, params0))
    assert max(float(jnp.abs(m).max()) for m in moved) > 1e-3  # it trained


def test_count_params_skips_absent_biases():
    params = ((jnp.ones((3, 4)), None), (), (jnp.ones((4, 2)), jnp.ones((1, 2))))
    assert count_params(params) == 12 + 8 + 2


# --------------------------------------------------------------------------
# Configs: one per architecture, instantiable, in sync with the functions.

MODEL_NAMES = ['fc', 'cnn', 'myrtle', 'wrn', 'resnet']


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_config_instantiates_triple_with_function_defaults(name):
    cfg = OmegaConf.load(CONF / f'{name}.yaml')
    assert cfg._target_ == f'ntkexp.models.{name}'
    fn = getattr(models, name)
    params = inspect.signature(fn).parameters
    for key in ('depth', 'width', 'W_std', 'b_std', 'activation',
                'parameterization', 'out_dim'):
        assert key in params and params[key].kind == inspect.Parameter.KEYWORD_ONLY
    for key, value in cfg.items():
        if key != '_target_':
            assert key in params, f'{name}.yaml: {key} is not an argument'
            assert params[key].default == value, (name, key)
    triple = instantiate(cfg, out_dim=3, width=2)
    assert len(triple) == 3 and all(callable(f) for f in triple)
    layout = models.input_layout(cfg)
    shape = (2, 8, 8, 1) if name in ('cnn', 'myrtle', 'wrn') else (2, 8)
    out = jax.eval_shape(lambda x: triple[1](triple[0](jax.random.PRNGKey(0),
                                                        x.shape)[1], x),
                         jax.ShapeDtypeStruct(shape, jnp.float32))
    assert out.shape == (2, 3)
    assert layout == ('image' if name in ('cnn', 'myrtle', 'wrn') else 'any')


@pytest.mark.parametrize('preset', sorted(p.stem for p in CONF.glob('*.yaml')))
def test_every_model_config_composes_and_runs(preset):
    """Each conf/model file (presets such as cnn_vec and lcn included) gives
    a network that maps its inputs to out_dim outputs."""
    import hydra
    from ntkexp import cli
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR), version_base='1.3'):
        cfg = hydra.compose('config', overrides=[f'model={preset}'])
    init_fn, apply_fn, _ = instantiate(cfg.model, out_dim=3, width=2)
    shape = (2, 8, 8, 1) if models.input_layout(cfg.model) == 'image' else (2, 8)
    out = jax.eval_shape(lambda x: apply_fn(init_fn(jax.random.PRNGKey(0), x.shape)[1], x),
                         jax.ShapeDtypeStruct(shape, jnp.float32))
    assert out.shape == (2, 3)


# --------------------------------------------------------------------------
# Invalid hyper-parameters: one clear ValueError naming the valid choices.

@pytest.mark.parametrize('fn,kwargs,match', [
    (models.fc, dict(width=0), r"model 'fc': width must be an integer >= 1, got 0"),
    (models.fc, dict(width=-3), r'width must be an integer >= 1'),
    (models.fc, dict(width=2.5), r'width must be an integer'),
    (models.fc, dict(depth=-1), r'depth must be an integer >= 0'),
    (models.fc, dict(activation='tanh'),
     r"unknown activation 'tanh'; valid choices: relu, erf, gelu"),
    (models.cnn, dict(parameterization='mup'),
     r"unknown parameterization 'mup'; valid choices: ntk, standard"),
    (models.cnn, dict(readout='max'), r'valid choices: flatten, gap'),
    (models.cnn, dict(filter_size=0), r'filter_size must be an integer >= 1'),
    (models.cnn, dict(weight_sharing='no'), r'weight_sharing=.no. must be true'),
    (models.cnn, dict(weight_sharing=False, fast_kernel=True),
     r'fast_kernel=true does not support locally connected layers'),
    (models.myrtle, dict(depth=6), r"model 'myrtle': depth=6 is not supported; "
                                   r'valid choices: 5, 7, 10'),
    (models.wrn, dict(depth=12), r'\(depth - 4\) % 6 == 0.*10, 16, 22, 28'),
    (models.wrn, dict(depth=4), r'\(depth - 4\) % 6 == 0'),
    (models.wrn, dict(k=0), r'k must be an integer >= 1'),
    (models.resnet, dict(alpha=-1.0), r'alpha must be a finite number >= 0'),
    (models.resnet, dict(alpha_gamma=-0.5), r'alpha_gamma must be a finite number >= 0'),
    (models.resnet, dict(layout='sequence'), r'valid choices: flat, image'),
    (models.resnet, dict(W_std=0.0), r'W_std must be a finite number > 0'),
    (models.fc, dict(b_std=-0.1), r'b_std must be .*or null'),
    (models.fc, dict(out_dim=0), r'out_dim must be an integer >= 1'),
])
def test_invalid_hyperparameters_raise_one_line_value_error(fn, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        fn(**kwargs)
    assert '\n' not in str(info.value)


def test_hydra_wraps_model_value_error():
    cfg = OmegaConf.create({'_target_': 'ntkexp.models.myrtle', 'depth': 6})
    with pytest.raises(Exception) as info:
        instantiate(cfg)
    cause = info.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, ValueError) and 'valid choices: 5, 7, 10' in str(
        cause)


# --------------------------------------------------------------------------
# Input layouts and the checking wrapper.

def test_input_layout_and_check_input():
    assert models.input_layout('fc') == 'any'
    assert models.input_layout('cnn') == 'image'
    assert models.input_layout('resnet') == 'any'
    image_resnet = OmegaConf.create({'_target_': 'ntkexp.models.resnet',
                                     'layout': 'image'})
    assert models.input_layout(image_resnet) == 'image'
    assert models.input_layout(models.wrn(width=2)[2]) == 'image'
    with pytest.raises(ValueError, match=r"unknown model 'mlp'; valid choices"):
        models.input_layout('mlp')
    models.check_input('fc', (100, 2))
    models.check_input('fc', (100, 8, 8, 1))
    models.check_input('cnn', (-1, 8, 8, 1))
    models.validate_input(image_resnet, np.zeros((3, 8, 8, 1)))
    with pytest.raises(ValueError) as info:
        models.check_input('cnn', (100, 2))
    assert str(info.value) == (
        "model 'cnn' needs image inputs (N, H, W, C) but got shape (100, 2); "
        'use an image dataset such as dataset=digits (with dataset.flatten=false) or model=fc.')
    with pytest.raises(ValueError, match='needs image inputs'):
        models.validate_input(image_resnet, np.zeros((3, 64)))
    with pytest.raises(ValueError, match='at least 4x4'):
        models.check_input('myrtle', (3, 2, 2, 1))
    with pytest.raises(ValueError, match='leading batch axis'):
        models.check_input('fc', (5,))


@pytest.mark.parametrize('name', ['cnn', 'myrtle', 'wrn', 'resnet-image'])
def test_convolutional_models_reject_flat_inputs(name):
    if name == 'resnet-image':
        triple, label = models.resnet(width=2, layout='image'), 'resnet'
    else:
        triple, label = getattr(models, name)(width=2), name
    init_fn, apply_fn, kernel_fn = triple
    x = jnp.ones((5, 16))
    fix = 'model.layout=flat' if label == 'resnet' else 'model=fc'
    msg = (rf"^model '{label}' needs image inputs \(N, H, W, C\) but got shape "
           rf'\(5, 16\); use an image dataset such as dataset=digits \(with dataset.flatten=false\) or {fix}\.$')
    with pytest.raises(ValueError, match=msg):
        init_fn(jax.random.PRNGKey(0), x.shape)
    with pytest.raises(ValueError, match=msg):
        kernel_fn(x, None, 'ntk')
    with pytest.raises(ValueError, match=msg):
        kernel_fn(x, x, get='nngp')
    params = jax.eval_shape(lambda key: init_fn(key, (5, 4, 4, 1))[1],
                            jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=msg):
        apply_fn(params, x)


def test_wrapped_triple_works_with_neural_tangents_tools():
    init_fn, apply_fn, kernel_fn = models.fc(depth=1, width=16, out_dim=2)
    x = _images((4, 2, 2, 1))
    y = _images((4, 2), seed=1)
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    exact = kernel_fn(x, None, ('nngp', 'ntk'))
    assert inspect.signature(kernel_fn) == inspect.signature(kernel_fn.__wrapped__)
    # nt.batch reads kernel_fn.input_req; jit needs the `get` argument name.
    batched = nt.batch(kernel_fn, batch_size=2)(x, None, ('nngp', 'ntk'))
    np.testing.assert_allclose(batched.ntk, exact.ntk, rtol=1e-3)  # float32
    jitted = jax.jit(kernel_fn, static_argnames='get')(x, x, get='ntk')
    np.testing.assert_allclose(jitted, exact.ntk, rtol=1e-3)
    emp = nt.empirical_ntk_fn(apply_fn, vmap_axes=0)(x, None, params)
    assert emp.shape == (4, 4)
    f_lin = nt.linearize(apply_fn, params)
    np.testing.assert_allclose(f_lin(params, x), apply_fn(params, x), rtol=1e-6)
    predict_fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x, y,
                                                          diag_reg=1e-4)
    assert predict_fn(None, x, 'ntk').shape == (4, 2)
    # A wrong-rank input still fails clearly through nt.batch and jit.
    _, _, cnn_kernel_fn = models.cnn(width=2)
    with pytest.raises(ValueError, match="model 'cnn' needs image inputs"):
        nt.batch(cnn_kernel_fn, batch_size=2)(jnp.ones((4, 3)), None, 'ntk')
    with pytest.raises(ValueError, match="model 'cnn' needs image inputs"):
        jax.jit(cnn_kernel_fn, static_argnames='get')(jnp.ones((4, 3)), get='ntk')


def _readme_wide_resnet(block_size, k, num_classes):
    """neural-tangents' README WideResnet, transcribed as it is there."""
    def block(channels, strides=(1, 1), channel_mismatch=False):
        main = stax.serial(
            stax.Relu(), stax.Conv(channels, (3, 3), strides, padding='SAME'),
            stax.Relu(), stax.Conv(channels, (3, 3), padding='SAME'))
        shortcut = stax.Identity() if not channel_mismatch else stax.Conv(
            channels, (3, 3), strides, padding='SAME')
        return stax.serial(stax.FanOut(2), stax.parallel(main, shortcut),
                           stax.FanInSum())

    def group(n, channels, strides=(1, 1)):
        blocks = [block(channels, strides, channel_mismatch=True)]
        blocks += [block(channels, (1, 1)) for _ in range(n - 1)]
        return stax.serial(*blocks)

    return stax.serial(
        stax.Conv(16, (3, 3), padding='SAME'),
        group(block_size, int(16 * k)),
        group(block_size, int(32 * k), (2, 2)),
        group(block_size, int(64 * k), (2, 2)),
        stax.AvgPool((8, 8)), stax.Flatten(), stax.Dense(num_classes, 1., 0.))


def test_wrn_nt_is_the_neural_tangents_readme_wide_resnet():
    """model=wrn_nt: the same kernels and the same parameter count as the
    README network (WRN-10-2 on 32x32 images, where its 8x8 pool is global)."""
    from hydra import compose, initialize_config_dir  # pylint: disable=g-import-not-at-top
    from ntkexp import cli  # pylint: disable=g-import-not-at-top
    with initialize_config_dir(config_dir=str(cli.CONF_DIR), version_base='1.3'):
        cfg = compose('config', overrides=['model=wrn_nt', 'model.k=2'])
    init_fn, _, kernel_fn = instantiate(cfg.model, out_dim=3)
    ref_init, _, ref_kernel = _readme_wide_resnet(1, 2, 3)
    x = np.random.RandomState(0).randn(2, 32, 32, 3)
    with jax.enable_x64(True):
        # Both jitted: the same program (an eager and a jitted kernel differ
        # by ~1e-10 on the diagonal, the arc-cosine step's rounding at
        # correlation 1; docs/fastconv.md, "Correlation 1 is exact").
        got = jax.jit(kernel_fn, static_argnames='get')(x, None, ('nngp', 'ntk'))
        want = jax.jit(ref_kernel, static_argnames='get')(x, None, ('nngp', 'ntk'))
    for g in ('nngp', 'ntk'):
        np.testing.assert_allclose(getattr(got, g), getattr(want, g), rtol=1e-12)
    def count(init):
        return count_params(init(jax.random.PRNGKey(0), (1, 32, 32, 3))[1])
    assert count(init_fn) == count(ref_init)
    # It differs from the reference-code blocks of model=wrn.
    _, _, reference = models.wrn(depth=10, k=2, W_std=1.0, out_dim=3)
    with jax.enable_x64(True):
        other = reference(x, None, 'nngp')
    assert not np.allclose(other, got.nngp, rtol=1e-2)
    with pytest.raises(ValueError, match="block_style='x' is not one of"):
        models.wrn(block_style='x')
    with pytest.raises(ValueError, match='fast_kernel=true does not support '
                       'block_style=neural_tangents'):
        models.wrn(block_style='neural_tangents', fast_kernel=True)


def test_residual_kernels_do_not_print_neural_tangents_fan_in_warning():
    """neural-tangents warns at every FanIn kernel call; ntkexp's residual
    blocks all satisfy its assumption, so the models silence that message
    (in a fresh process, as a user's run sees it; pytest's own warning
    capture would reset the filter). An unrelated UserWarning still shows."""
    import subprocess
    import sys
    code = (
        'import warnings, numpy as np\n'
        'from ntkexp import models\n'
        'x = np.ones((2, 4), np.float32)\n'
        'models.resnet(width=4, depth=2, fast_kernel=False)[2](x, None, "ntk")\n'
        'warnings.warn("another warning")\n')
    result = subprocess.run([sys.executable, '-W', 'default', '-c', code],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'another warning' in result.stderr
    assert 'FanIn' not in result.stderr, result.stderr


@pytest.mark.parametrize('parameterization', ['ntk', 'standard'])
@pytest.mark.parametrize('filter_size,b_std', [(3, 0.1), (2, None)])
def test_lcn_apply_equals_neural_tangents_conv_local(parameterization, filter_size,
                                                     b_std):
    """models.conv_local's faster apply_fn is stax.ConvLocal's function."""
    from neural_tangents import stax
    x = np.random.default_rng(1).normal(size=(3, 5, 6, 2)).astype(np.float32)
    kw = dict(W_std=1.3, b_std=b_std, parameterization=parameterization)
    init_fn, apply_fn, _ = models.conv_local(4, filter_size, **kw)
    _, apply_nt, _ = stax.ConvLocal(4, (filter_size, filter_size), padding='SAME',
                                    **kw)
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    got, want = apply_fn(params, x), apply_nt(params, x)
    assert got.shape == want.shape == (3, 5, 6, 4)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * float(
        jnp.max(jnp.abs(want))))
