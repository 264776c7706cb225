"""The fast convolutional kernels equal neural-tangents' and are selected automatically.

Reference: neural-tangents' ``kernel_fn`` of the same ``stax`` network (the
models built with ``fast_kernel=False``). Cross kernels ``k(x1, x2)`` of
distinct images agree to rounding (float64: 1e-10 relative, float32: 1e-5).
Self kernels ``k(x, x)`` agree to 1e-8 only: at correlation 1 the arc-cosine
step takes ``sqrt(var^2 - nngp^2)`` of a rounding-level difference, and
neural-tangents computes ``nngp`` and ``var`` by different contractions (see
``tests/test_kernels.py``).
"""

import functools
import re
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
from ntkexp import kernels, models, xla_gpu_model
from ntkexp.fastconv import recursion, select

# (model function, kwargs, image side, channels); small enough for 2 CPU cores.
CASES = {
    'myrtle5_ntk': (models.myrtle, dict(depth=5, width=8), 4, 2),
    'cnn_gap_standard': (models.cnn, dict(depth=2, width=8, b_std=0.1,
                                          parameterization='standard'), 5, 1),
    'cnn_vec_ntk': (models.cnn, dict(depth=2, width=8, b_std=0.2,
                                     readout='flatten', fast_kernel=True), 5, 1),
    # Odd sides: the strided SAME convolutions pad asymmetrically (6 -> 3 -> 2).
    'wrn10_ntk': (models.wrn, dict(depth=10, width=4), 6, 2),
    # Other activations (ntkexp.fastconv.activations): one per architecture
    # here, the other combinations in SLOW_CASES.
    'myrtle5_erf': (models.myrtle, dict(depth=5, width=8, activation='erf'),
                    4, 2),
    'cnn_gap_gelu_standard': (models.cnn, dict(depth=2, width=8, b_std=0.1,
                                               activation='gelu',
                                               parameterization='standard'),
                              5, 1),
    'cnn_vec_sin': (models.cnn, dict(depth=2, width=8, readout='flatten',
                                     activation='sin', fast_kernel=True), 5, 1),
    'wrn10_abs': (models.wrn, dict(depth=10, width=4, activation='abs'), 6, 2),
    # The ResNTK papers' convolutional ResNet (Scale(alpha) branches, V_std).
    'resnet_image': (models.resnet, dict(depth=2, width=8, layout='image',
                                         alpha=0.3, V_std=1.3, b_std=0.2),
                     5, 2),
    # ... divided by sqrt(1 + alpha^2) (normalize=True).
    'resnet_image_normalized': (models.resnet, dict(
        depth=2, width=8, layout='image', alpha=1.5, normalize=True), 5, 2),
}
# The remaining architecture x activation combinations (slow).
ACTIVATION_CASES = {
    f'{arch}_{act}': (fn, dict(kwargs, activation=act), side, channels)
    for arch, (fn, kwargs, side, channels) in {
        'myrtle5': (models.myrtle, dict(depth=5, width=8, b_std=0.2), 8, 1),
        'cnn_gap': (models.cnn, dict(depth=3, width=8), 5, 2),
        'cnn_vec': (models.cnn, dict(depth=2, width=8, readout='flatten',
                                     fast_kernel=True), 5, 2),
        'wrn10': (models.wrn, dict(depth=10, width=4, b_std=0.1), 5, 1),
    }.items()
    for act in ('abs', 'erf', 'gelu', 'sin')
    if f'{arch}_{act}' not in ('myrtle5_erf', 'cnn_vec_sin', 'wrn10_abs')
}
SLOW_CASES = {
    'myrtle5_standard_bias': (models.myrtle, dict(depth=5, width=8, b_std=0.3,
                                                  parameterization='standard'),
                              8, 3),
    'myrtle7': (models.myrtle, dict(depth=7, width=8), 8, 1),
    'myrtle10': (models.myrtle, dict(depth=10, width=8, W_std=1.3), 6, 2),
    'cnn_gap_depth3': (models.cnn, dict(depth=3, width=8, b_std=None), 6, 3),
    'cnn_gap_filter2': (models.cnn, dict(depth=2, width=8, filter_size=2), 5, 2),
    'cnn_gap_filter4_std': (models.cnn, dict(depth=2, width=8, filter_size=4,
                                             b_std=0.0,
                                             parameterization='standard'), 6, 1),
    'cnn_vec_standard': (models.cnn, dict(depth=3, width=8, readout='flatten',
                                          parameterization='standard',
                                          fast_kernel=True), 4, 2),
    'wrn16_k2_bias': (models.wrn, dict(depth=16, width=4, k=2, b_std=0.3,
                                       W_std=1.3), 5, 3),
    'wrn10_32x32': (models.wrn, dict(depth=10, width=4), 32, 3),
    'resnet_image_erf_filter2': (models.resnet, dict(
        depth=3, width=8, layout='image', activation='erf', filter_size=2,
        alpha=0.7), 6, 1),
    **ACTIVATION_CASES,
}


def _images(n, side, channels, seed):
    return np.random.RandomState(seed).randn(n, side, side, channels)


def _compare(case, dtype, rtol):
    fn, kwargs, side, channels = case
    _, _, fast = fn(**kwargs)
    _, _, reference = fn(**{**kwargs, 'fast_kernel': False})
    assert getattr(fast, 'fastconv', False)
    assert not getattr(reference, 'fastconv', False)
    x1 = _images(3, side, channels, 0).astype(dtype)
    x2 = _images(2, side, channels, 1).astype(dtype)
    get = ('nngp', 'ntk')
    out = jax.jit(fast, static_argnames='get')(x1, x2, get=get)
    ref = jax.jit(reference, static_argnames='get')(x1, x2, get=get)
    for g in get:
        a, r = np.asarray(getattr(out, g)), np.asarray(getattr(ref, g))
        assert a.shape == r.shape == (3, 2)
        assert a.dtype == r.dtype == dtype
        np.testing.assert_allclose(a, r, rtol=rtol, atol=rtol * np.abs(r).max())


@pytest.mark.parametrize('name', sorted(CASES))
def test_equals_neural_tangents_float64(name):
    with jax.enable_x64(True):
        _compare(CASES[name], np.float64, 1e-10)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(SLOW_CASES))
def test_equals_neural_tangents_float64_more(name):
    with jax.enable_x64(True):
        _compare(SLOW_CASES[name], np.float64, 1e-10)


def test_equals_neural_tangents_float32():
    _compare(CASES['myrtle5_ntk'], np.float32, 1e-5)


@pytest.mark.parametrize('name', [
    'myrtle5_erf', 'cnn_gap_gelu_standard',
    pytest.param('wrn10_abs', marks=pytest.mark.slow)])
def test_self_kernel_equals_neural_tangents(name):
    """``k(x, None)`` of other activations. Erf and GELU have no square root
    that vanishes at correlation 1, so they agree with neural-tangents to
    rounding on the diagonal too; ``abs`` has the ReLU's (``recursion.relu``),
    where jitted neural-tangents is off by its FMA noise (module docstring)."""
    fn, kwargs, side, channels = CASES[name]
    _, _, fast = fn(**kwargs)
    _, _, reference = fn(**{**kwargs, 'fast_kernel': False})
    x = _images(3, side, channels, 5)
    with jax.enable_x64(True):
        out = jax.jit(fast, static_argnames='get')(x, None, get=('nngp', 'ntk'))
        ref = jax.jit(reference, static_argnames='get')(x, None,
                                                          get=('nngp', 'ntk'))
    rtol = 1e-8 if kwargs['activation'] == 'abs' else 1e-10
    for g in ('nngp', 'ntk'):
        a, r = np.asarray(getattr(out, g)), np.asarray(getattr(ref, g))
        assert np.array_equal(a, a.T)
        np.testing.assert_allclose(a, r, rtol=rtol, atol=rtol * np.abs(r).max())


def test_self_kernel_is_symmetric_and_matches_blocks():
    """``k(x, None)`` computes pairs i <= j only; it equals the block ``k(x, x)``."""
    fn, kwargs, side, channels = CASES['myrtle5_ntk']
    _, _, fast = fn(**kwargs)
    fast = jax.jit(fast, static_argnames='get')
    x = _images(4, side, channels, 2)
    with jax.enable_x64(True):
        sym = fast(x, None, get=('nngp', 'ntk'))
        block = fast(x, x, get=('nngp', 'ntk'))
    for g in ('nngp', 'ntk'):
        a = np.asarray(getattr(sym, g))
        assert np.array_equal(a, a.T)
        # Both set theta = 0 exactly for an image with itself (recursion.relu).
        np.testing.assert_allclose(a, np.asarray(getattr(block, g)), rtol=1e-13)
        # A kernel Gram matrix: positive semi-definite.
        assert np.linalg.eigvalsh(a).min() > -1e-10 * np.abs(a).max()


def test_engine_uses_fast_kernel_and_call_conventions(tmp_path):
    fn, kwargs, side, channels = CASES['cnn_gap_standard']
    _, _, fast = fn(**kwargs)
    x = _images(4, side, channels, 3).astype(np.float32)
    jitted = jax.jit(fast, static_argnames='get')
    both = jitted(x[:2], x[2:], get=('nngp', 'ntk'))
    assert type(both).__name__ == 'Kernel' and both._fields == ('nngp', 'ntk')
    ntk = jitted(x[:2], x[2:], get='ntk')
    assert isinstance(ntk, jax.Array) and ntk.shape == (2, 2)
    np.testing.assert_allclose(ntk, both.ntk, rtol=1e-6)
    engine = kernels.KernelEngine(fast, 'cnn', get=('ntk',), block_size=2,
                                  cache_dir=tmp_path, progress=False)
    out = engine(x)['ntk']
    assert np.array_equal(out, out.T)
    np.testing.assert_array_equal(out[:2, 2:], ntk)
    # The engine's memory budget reads XLA's analysis of the fast kernel.
    _, _, small = models.cnn(depth=1, width=8)
    assert small.fastconv
    assert kernels.measure_block_bytes(small, x, 2, ('ntk',)) > 0


def test_fallback_to_neural_tangents():
    # Unsupported architecture: neural-tangents' kernel_fn, unchanged.
    _, _, standard = models.wrn(depth=10, width=4, parameterization='standard')
    assert not getattr(standard, 'fastconv', False)
    with pytest.raises(ValueError, match='fast_kernel=true does not support '
                       'parameterization=standard'):
        models.wrn(depth=10, width=4, parameterization='standard',
                   fast_kernel=True)
    # The Pallas steps fuse ReLU only: one error naming the fix.
    with pytest.raises(ValueError, match='fast_kernel=pallas fuses ReLU steps '
                       'only, not activation=erf; use fast_kernel=true or auto'):
        models.myrtle(depth=5, activation='erf', fast_kernel='pallas')
    net = models.myrtle(depth=5, activation='erf')[2].net
    from ntkexp.fastconv import pallas
    assert not pallas.supported(net, 32, 32, on_gpu=True)
    assert pallas.supported(models.myrtle(depth=5)[2].net, 32, 32, on_gpu=True)
    with pytest.raises(ValueError, match='ReLU only, not erf'):
        recursion.pair_kernels(net, None, None, [], [], 3, ('ntk',),
                               recursion._block_pairing(True), (4, 4),
                               conv_relu=lambda *a, **k: None)
    with pytest.raises(ValueError, match='fast_kernel'):
        models.myrtle(depth=5, fast_kernel='sometimes')
    _, _, forced = models.cnn(depth=1, width=8, fast_kernel=True)
    assert forced.fastconv
    # Calls the fast path does not handle go to neural-tangents.
    x = _images(2, 4, 1, 4).astype(np.float32)
    full = forced(x, None, None)  # get=None: the whole Kernel object
    assert hasattr(full, 'cov1') and full.nngp.shape == (2, 2)
    # Model input checks still apply.
    with pytest.raises(ValueError, match='needs image inputs'):
        forced(np.ones((2, 16), np.float32), None, 'ntk')


def test_config_selects_fast_kernel(tmp_path):
    import hydra
    from hydra.utils import instantiate
    import ntkexp.cli
    with hydra.initialize_config_dir(config_dir=str(ntkexp.cli.CONF_DIR),
                                     version_base='1.3'):
        cfg = hydra.compose('config', overrides=['model=myrtle',
                                                 f'paths.root={tmp_path}'])
        off = hydra.compose('config', overrides=[
            'model=myrtle', 'model.fast_kernel=false', f'paths.root={tmp_path}'])
        kind = hydra.compose('config', overrides=[
            'model=myrtle', 'model.fast_kernel=pallas_diagonal_patches',
            f'paths.root={tmp_path}'])
        defaults = {name: hydra.compose('config', overrides=[
            f'model={name}']).model.fast_kernel
            for name in ('cnn', 'cnn_gap', 'cnn_vec', 'myrtle', 'wrn', 'resnet')}
    assert defaults == dict(cnn='auto', cnn_gap='auto', cnn_vec=False,
                            myrtle='auto', wrn='auto', resnet='auto')
    assert instantiate(cfg.model, out_dim=2)[2].impl == 'xla'
    assert instantiate(cfg.model, out_dim=2)[2].pallas_kind is None
    assert not getattr(instantiate(off.model, out_dim=2)[2], 'fastconv', False)
    assert instantiate(kind.model, out_dim=2)[2].impl == 'pallas'
    built = instantiate(kind.model, out_dim=2)[2]
    assert (built.pallas_kind, built.pallas_num_warps) == (
        'diagonal_patches', 8)           # pallas.DIAGONAL_NUM_WARPS
    with pytest.raises(ValueError, match='pallas_diagonal_patches'):
        models.myrtle(depth=5, fast_kernel='pallas_diagonals')


def test_pallas_modes_only_where_a_pallas_step_runs():
    """``fast_kernel=pallas*`` on a net whose recursion no Pallas step
    serves (residual nets, CNN-VEC) is an error naming the fix, not the XLA
    recursion under an ``impl='pallas'`` label; an unsupported architecture's
    error names the mode that was asked for."""
    for build in (lambda m: models.wrn(depth=10, fast_kernel=m),
                  lambda m: models.resnet(width=4, layout='image',
                                          fast_kernel=m),
                  lambda m: models.cnn(depth=1, width=4, readout='flatten',
                                       fast_kernel=m)):
        assert build(True)[2].impl == 'xla'
        with pytest.raises(ValueError, match='Pallas steps for pooled plain '
                           'CNNs only.*use fast_kernel=true or auto'):
            build('pallas')
    assert models.cnn(depth=1, width=4, fast_kernel='pallas')[2].impl == 'pallas'
    for build in (models.resnet, models.fc):  # dense layers: no Pallas step
        with pytest.raises(ValueError, match='fast_kernel=pallas_diagonal has '
                           'Pallas steps for convolutions only'):
            build(width=4, fast_kernel='pallas_diagonal')


# Building blocks --------------------------------------------------------------


def test_angle_is_arctan2():
    rng = np.random.RandomState(0)
    y = np.abs(rng.randn(5000)) * np.exp(rng.uniform(-10, 10, 5000))
    x = rng.randn(5000) * np.exp(rng.uniform(-10, 10, 5000))
    y[:3], x[:2] = 0, 0
    expected = np.where((y == 0) & (x == 0), np.pi / 2, np.arctan2(y, x))
    with jax.enable_x64(True):
        np.testing.assert_allclose(recursion.angle(y, x), expected, rtol=0,
                                   atol=4.5e-16)
    got32 = recursion.angle(y.astype(np.float32), x.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, expected, rtol=0, atol=1e-6)


def test_shift_sum_is_same_convolution_of_covariance():
    """``conv_full`` maps the covariance of a SAME conv's input to its output's.

    With i.i.d. unit-variance taps ``W_j``, ``out(p) = sum_j W_j x(p + d_j)``
    has ``Cov(out(p), out(p')) = sum_j Cov(x(p + d_j), x(p' + d_j))``.
    """
    rng = np.random.RandomState(1)
    for k in (2, 3, 4):
        feats = rng.randn(5, 4, 50)  # (H, W, samples) of one image's features
        cov = np.einsum('hwn,xyn->hwxy', feats, feats)
        lo = (k - 1) // 2
        padded = np.pad(feats, ((lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0)))
        diag = sum(np.einsum('hwn,xyn->hwxy', padded[i:i + 5, j:j + 4],
                             padded[i:i + 5, j:j + 4])
                   for i in range(k) for j in range(k))
        with jax.enable_x64(True):
            got = np.asarray(recursion.conv_full(jnp.asarray(cov), k))
            np.testing.assert_allclose(got, diag, rtol=1e-12)
            np.testing.assert_allclose(
                np.asarray(recursion.conv_diag(jnp.asarray(
                    np.einsum('hwhw->hw', cov)), k)),
                np.einsum('hwhw->hw', diag), rtol=1e-12)


@pytest.mark.parametrize('name', [
    'myrtle5_ntk', pytest.param('wrn10_ntk', marks=pytest.mark.slow)])
def test_fusion_switches_change_nothing(name, monkeypatch):
    """``MATERIALIZE_PADDED`` and ``MATERIALIZE_CONV_OUTPUT`` (optimisation
    barriers around the shift-sums), ``BATCHED_FIRST_MATMUL``,
    ``OFFSET_SELF_COVARIANCE`` and ``PACK_RELU_OUTPUTS`` (the last ReLU's
    outputs as one complex array) change how, not what: every setting agrees
    to float64 rounding."""
    fn, kwargs, side, channels = CASES[name]
    net = fn(**kwargs)[2].net
    x1, x2 = _images(3, side, channels, 0), _images(2, side, channels, 1)
    out = {}
    with jax.enable_x64(True):
        for flags in ((True,) * 5, (False,) * 5,
                      (True, False, True, False, True),
                      (False, True, False, True, False)):
            for attr, flag in zip(('MATERIALIZE_PADDED',
                                   'MATERIALIZE_CONV_OUTPUT',
                                   'BATCHED_FIRST_MATMUL',
                                   'OFFSET_SELF_COVARIANCE',
                                   'PACK_RELU_OUTPUTS'), flags):
                monkeypatch.setattr(recursion, attr, flag)
            out[flags] = jax.jit(lambda a, b: recursion.kernel(net, a, b))(
                x1, x2)
    for g in ('nngp', 'ntk'):
        reference = np.asarray(out[(True,) * 5][g])
        assert reference.shape == (3, 2)
        for result in out.values():
            np.testing.assert_allclose(np.asarray(result[g]), reference,
                                       rtol=1e-14)


@pytest.mark.parametrize('name', [
    'myrtle5_ntk', 'cnn_gap_gelu_standard', 'wrn10_ntk',
    pytest.param('myrtle5_standard_bias', marks=pytest.mark.slow),
    pytest.param('cnn_gap_filter2', marks=pytest.mark.slow)])
@pytest.mark.parametrize('separate, padded', [(True, False), (False, True),
                                              (True, True)])
def test_layout_switches_equal_neural_tangents(name, separate, padded,
                                               monkeypatch):
    """``SEPARATE_NTK_SHIFT_SUM`` (``alpha S(Sigma) + beta S(Theta)``) and
    ``PADDED_FIRST_LAYER`` (the first covariance written padded, the
    activation masked on the padding, the next convolution as plain slices)
    give neural-tangents' kernels to float64 rounding, for cross blocks and
    for ``k(x, None)`` (the flat pairing), biases, other activations, even
    filters (asymmetric padding) and residual blocks included."""
    fn, kwargs, side, channels = (CASES.get(name) or SLOW_CASES[name])
    _, _, fast = fn(**kwargs)
    x = _images(3, side, channels, 2)
    with jax.enable_x64(True):
        # k(x, None) with the switches off (its own tests compare it with
        # neural-tangents, whose jitted diagonal carries FMA noise).
        before = jax.jit(fast, static_argnames='get')(x, None, get='ntk')
        monkeypatch.setattr(recursion, 'SEPARATE_NTK_SHIFT_SUM', separate)
        monkeypatch.setattr(recursion, 'PADDED_FIRST_LAYER', padded)
        _compare((fn, kwargs, side, channels), np.float64, 1e-11)
        after = jax.jit(fast, static_argnames='get')(x, None, get='ntk')
    np.testing.assert_allclose(np.asarray(after), np.asarray(before),
                               rtol=1e-13)


def test_padded_first_layer_pads_the_first_product(monkeypatch):
    """With ``PADDED_FIRST_LAYER`` the first matmul of Myrtle-5 writes the
    ``(H + 2)^2 (W + 2)^2`` padded covariance and no ``pad`` of a pair
    covariance remains before the second convolution; off, it writes ``H^2
    W^2``."""
    net = models.myrtle(depth=5, width=8)[2].net
    x = np.zeros((2, 6, 6, 3), np.float32)

    def first_product(padded):
        monkeypatch.setattr(recursion, 'PADDED_FIRST_LAYER', padded)
        text = str(jax.make_jaxpr(
            lambda a, b: recursion.kernel(net, a, b, get=('ntk',)))(x, x))
        return re.findall(r'f32\[2,2,(\d+),(\d+),(\d+),(\d+)\] = dot_general',
                          text)

    assert first_product(False) == [('6', '6', '6', '6')]
    assert first_product(True) == [('8', '8', '8', '8')]


@pytest.mark.parametrize('name', [
    'myrtle5_ntk', pytest.param('wrn10_ntk', marks=pytest.mark.slow)])
def test_kernel_in_steps_equals_one_step(name):
    """``step_entries`` cuts a block into steps of rows of ``x1`` and, below
    one row, columns of ``x2`` (remainders padded), and ``k(x, None)`` into
    steps of its pairs: the same numbers (float64) in every case."""
    fn, kwargs, side, channels = CASES[name]
    net = fn(**kwargs)[2].net
    x1, x2 = _images(3, side, channels, 0), _images(5, side, channels, 1)
    per_pair = side ** 4

    def block(steps, a, b):
        return jax.jit(lambda a, b: recursion.kernel(
            net, a, b, step_entries=steps * per_pair))(a, b)

    with jax.enable_x64(True):
        whole = block(15, x1, x2)
        # 2 pairs: columns of x2 in 3 steps (the last padded), rows one by
        # one; 11: rows of x1 two at a time (the last padded).
        cut = {pairs: block(pairs, x1, x2) for pairs in (2, 11)}
        sym_whole = block(15, x1, None)
        sym_cut = block(4, x1, None)
    for g in ('nngp', 'ntk'):
        assert whole[g].shape == (3, 5)
        for result in cut.values():
            np.testing.assert_allclose(result[g], whole[g], rtol=1e-14)
        np.testing.assert_allclose(sym_cut[g], sym_whole[g], rtol=1e-14)


def test_default_steps_depend_on_the_backend(monkeypatch):
    monkeypatch.setattr(jax, 'default_backend', lambda: 'cpu')
    assert recursion.default_step_entries() == recursion.STEP_ENTRIES_CPU
    monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
    assert recursion.default_step_entries() == recursion.STEP_ENTRIES


@pytest.mark.parametrize('depth, side', [
    (5, 9), pytest.param(5, 8, marks=pytest.mark.slow),
    pytest.param(7, 11, marks=pytest.mark.slow),
    pytest.param(10, 12, marks=pytest.mark.slow)])
def test_self_variances_at_offsets_equal_full_covariance(depth, side):
    """The self covariance carried at the offsets the pools need (7x7 before
    Myrtle's first pool, 3x3 before its second) gives the variances of the
    whole ``(H, W, H, W)`` recursion (``full_self_variances``, which carries
    every entry through every layer), odd sides (VALID pools) included."""
    net = models.myrtle(depth=depth, width=8, b_std=0.3)[2].net
    ranges = recursion._offset_ranges(net)  # pylint: disable=protected-access
    first_pool = net.layers.index(recursion.POOL)
    assert ranges[0] == 3 and ranges[first_pool] == 1
    assert ranges[net.last_pool] is None
    x = _images(2, side, 3, 4)
    with jax.enable_x64(True):
        # Jitted: op by op, the two recursions took 20 s instead of 2 s.
        got = jax.jit(recursion.self_variances, static_argnums=0)(net, x)
        ref = jax.jit(recursion.full_self_variances, static_argnums=0)(net, x)
    assert len(got) == len(ref) == net.layers.count(recursion.RELU)
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13)


def test_block_recursion_has_no_transposed_covariance():
    """The first layer's matmul is batched over pairs, so its output is in the
    recursion's ``(b1, b2, H, W, H, W)`` layout: the optimised HLO of a block
    moves no pair covariance between layouts (the plain product ``(b1 H W, k)
    x (k, b2 H W)`` made XLA transpose it into each fusion that read it)."""
    fn, kwargs, _, channels = CASES['myrtle5_ntk']
    net = fn(**kwargs)[2].net
    x1, x2 = _images(2, 8, channels, 0), _images(3, 8, channels, 1)
    text = jax.jit(lambda a, b: recursion.kernel(net, a, b)).lower(
        x1.astype(np.float32), x2.astype(np.float32)).compile().as_text()
    moved = [line for line in text.splitlines()
             if re.search(r'= f32\[2,3,8,8,8,8\]\S* (transpose|copy)\(', line)]
    assert not moved, moved
    assert re.search(r'= f32\[2,3,64,64\]\S* dot\(', text)


def test_last_relu_is_packed_on_cpu(monkeypatch):
    """On a CPU the ReLU before the readout writes NNGP and NTK as one complex
    array (``PACK_RELU_OUTPUTS``), so XLA computes its arc-cosine step once
    instead of inside each of the readout's two means."""
    fn, kwargs, side, channels = CASES['cnn_gap_standard']
    net = fn(**kwargs)[2].net
    x1, x2 = _images(2, side, channels, 0), _images(3, side, channels, 1)
    pair = rf'c64\[\d+,\d+,{side},{side},{side},{side}\]'

    def packed():
        text = jax.jit(lambda a, b: recursion.kernel(net, a, b)).lower(
            x1.astype(np.float32), x2.astype(np.float32)).compile().as_text()
        return bool(re.search(pair, text))

    assert recursion.pack_relu_outputs() and packed()
    monkeypatch.setattr(recursion, 'PACK_RELU_OUTPUTS', False)
    assert not packed()


@pytest.mark.parametrize('k,stride,size', [(3, 2, 8), (3, 2, 7), (1, 2, 8),
                                            (3, 1, 5), (2, 2, 5), (4, 3, 7)])
def test_strided_shift_sum_is_strided_convolution_of_covariance(k, stride, size):
    """``conv_full(.., stride)`` is the covariance map of a strided SAME conv.

    Built from a real ``lax.conv_general_dilated`` (the WRN's down-sampling
    convolutions) applied to one image's features with unit taps per offset:
    ``out_j(p) = x(s p + d_j - lo)``, whose covariances summed over ``j`` are
    the conv map of the input covariance.
    """
    rng = np.random.RandomState(k + stride + size)
    feats = rng.randn(1, size, size, 40)  # NHWC, channels = samples
    with jax.enable_x64(True):
        cov = np.einsum('hwn,xyn->hwxy', feats[0], feats[0])
        # One output channel per (offset, sample): a one-hot k x k filter.
        eye = np.eye(k * k).reshape(k, k, 1, k * k)
        outs = [np.asarray(jax.lax.conv_general_dilated(
            jnp.asarray(feats[..., i:i + 1]), jnp.asarray(eye),
            (stride, stride), 'SAME',
            dimension_numbers=('NHWC', 'HWIO', 'NHWC')))[0]
            for i in range(feats.shape[-1])]
        shifted = np.stack(outs, axis=-1)  # (H', W', k*k, samples)
        expected = np.einsum('hwjn,xyjn->hwxy', shifted, shifted)
        got = np.asarray(recursion.conv_full(jnp.asarray(cov), k, stride))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        diag = np.asarray(recursion.conv_diag(
            jnp.asarray(np.einsum('hwhw->hw', cov)), k, stride))
        np.testing.assert_allclose(diag, np.einsum('hwhw->hw', expected),
                                   rtol=1e-12)


def test_auto_keeps_neural_tangents_for_cnn_vec():
    """CNN-VEC: neural-tangents tracks only the diagonal and is faster."""
    _, _, vec = models.cnn(depth=2, width=8, readout='flatten')
    assert not getattr(vec, 'fastconv', False)
    _, _, forced = models.cnn(depth=2, width=8, readout='flatten',
                              fast_kernel=True)
    assert forced.fastconv and not forced.net.full_spatial
    _, _, gap = models.cnn(depth=2, width=8, readout='gap')
    assert gap.fastconv


def test_wrn_selection():
    _, _, fast = models.wrn(depth=16, width=4)
    assert fast.fastconv and fast.net.blocks == ((1, False), (1, False),
                                                 (2, True), (1, False),
                                                 (2, True), (1, False))
    _, _, wide = models.wrn(depth=10, width=4, k=2)
    assert wide.net.blocks == ((1, True), (2, True), (2, True))
    # The Pallas step serves ConvNet recursions only; a WRN keeps the XLA one.
    from ntkexp.fastconv import pallas
    assert not pallas.supported(fast.net, 32, 32, on_gpu=True)
    _, _, standard = models.wrn(depth=10, width=4, parameterization='standard')
    assert not getattr(standard, 'fastconv', False)
    with pytest.raises(ValueError, match='only ntk for wrn'):
        models.wrn(depth=10, width=4, parameterization='standard',
                   fast_kernel=True)


def test_resnet_selection():
    """``model=resnet``: the fast kernel for ``layout=image readout=gap`` and
    the dense recursion for ``layout=flat``, in the NTK parameterisation;
    neural-tangents otherwise, and one clear error for ``fast_kernel=true``
    there."""
    _, _, fast = models.resnet(depth=3, width=4, layout='image', alpha=0.2)
    assert fast.fastconv and fast.net.depth == 3 and fast.net.alpha == 0.2
    _, _, flat = models.resnet(depth=3, width=4, alpha=0.2)
    assert flat.fastconv and flat.net.kind == 'resnet' and flat.net.alpha == 0.2
    for kwargs, reason in [
            (dict(parameterization='standard'), 'parameterization=standard'),
            (dict(layout='image', readout='flatten'), 'readout=flatten'),
            (dict(layout='image', parameterization='standard'),
             'parameterization=standard')]:
        assert not getattr(models.resnet(width=4, **kwargs)[2], 'fastconv',
                           False)
        with pytest.raises(ValueError, match=f'does not support {reason}'):
            models.resnet(width=4, fast_kernel=True, **kwargs)
    # The image check still names the fix for vector inputs.
    with pytest.raises(ValueError, match='model.layout=flat'):
        fast(np.ones((2, 16), np.float32), None, 'ntk')


def test_supported_set():
    net, _ = select.myrtle_net(stages=models.MYRTLE_STAGES[10], W_std=1.0,
                               b_std=None, activation='relu',
                               parameterization='ntk', width=4)
    assert net.layers.count('conv') == 9 and net.layers.count('pool') == 2
    assert net.full_spatial and net.last_pool == 13
    net, _ = select.cnn_net(depth=2, W_std=1.0, b_std=None, activation='relu',
                            parameterization='ntk', width=4, filter_size=3,
                            readout='flatten')
    assert not net.full_spatial
    net, _ = select.cnn_net(depth=2, W_std=1.0, b_std=None, activation='gelu',
                            parameterization='ntk', width=4, filter_size=3,
                            readout='gap')
    assert net.activation == 'gelu'
    assert select.cnn_net(depth=2, W_std=1.0, b_std=None, activation='tanh',
                          parameterization='ntk', width=4, filter_size=3,
                          readout='gap') == (None, 'activation=tanh')
    # Every activation of the models is supported, by every architecture.
    for act in ('relu', 'abs', 'erf', 'gelu', 'sin'):
        for fn in (models.cnn, models.myrtle, models.wrn):
            kernel_fn = fn(depth=10 if fn is models.wrn else 5, width=4,
                           activation=act)[2]
            assert kernel_fn.fastconv and kernel_fn.net.activation == act


# Pallas step (ntkexp.fastconv.pallas) -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['pallas', 'pallas_diagonal_patches'])
def test_pallas_step_equals_xla_recursion_interpreted(mode):
    """``fast_kernel=pallas`` and ``pallas_<kind>`` (interpret mode on CPU)
    equal the XLA recursion."""
    fn, kwargs, side, channels = CASES['cnn_gap_standard']
    _, _, xla = fn(**kwargs)
    _, _, pal = fn(fast_kernel=mode, **kwargs)
    assert (xla.impl, pal.impl) == ('xla', 'pallas')
    x1 = _images(1, side, channels, 5)
    x2 = _images(2, side, channels, 6)
    with jax.enable_x64(True):
        a = jax.jit(pal, static_argnames='get')(x1, x2, get=('nngp', 'ntk'))
        b = jax.jit(xla, static_argnames='get')(x1, x2, get=('nngp', 'ntk'))
    for g in ('nngp', 'ntk'):
        np.testing.assert_allclose(getattr(a, g), getattr(b, g), rtol=1e-13)


@pytest.mark.parametrize('gpu_kind', [None, 'diagonal_first',
                                      'diagonal_first_masked'])
def test_auto_takes_the_gpu_pallas_kind_only_on_a_gpu(gpu_kind, monkeypatch):
    """``fast_kernel='auto'`` runs the Pallas steps of
    ``select.GPU_AUTO_PALLAS_KIND`` when built for a GPU, for pooled plain
    ReLU CNNs only; the XLA recursion on a CPU, for other activations and for
    residual networks; everywhere while the kind is None."""
    import re
    from ntkexp import backend
    monkeypatch.setattr(select, 'GPU_AUTO_PALLAS_KIND', gpu_kind)

    def triton_kernels(fn, **kwargs):
        _, _, kernel_fn = fn(fast_kernel='auto', **kwargs)
        x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
        with xla_gpu_model.abstract_h100():
            text = jax.jit(kernel_fn, static_argnames='get').trace(
                x, x, get='ntk').lower(lowering_platforms=('cuda',)).as_text()
        return re.findall(r'name = "(cntk_[a-z_]+)"', text)

    with backend.targeting('gpu'):
        myrtle = triton_kernels(models.myrtle, depth=5, width=8)
        gap = triton_kernels(models.cnn, depth=3, width=8, readout='gap')
        erf = triton_kernels(models.myrtle, depth=5, width=8,
                             activation='erf')
        wrn = triton_kernels(models.wrn, depth=10, width=1)
    if gpu_kind is None:
        assert myrtle == gap == []
    else:
        assert myrtle == ['cntk_first_relu', 'cntk_diag_conv_relu_pool',
                          'cntk_diag_conv_relu_pool']
        assert gap == ['cntk_first_relu', 'cntk_diag_conv_relu',
                       'cntk_diag_conv_relu_pool']
    assert erf == wrn == []
    # Built for the CPU, 'auto' is the XLA recursion whatever the kind.
    _, _, cpu = models.myrtle(depth=5, width=8, fast_kernel='auto')
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    assert 'pallas_call' not in str(jax.make_jaxpr(
        functools.partial(cpu, get='ntk'))(x, x))


def test_pallas_step_lowers_to_triton_for_cuda():
    """Lowering for a CUDA GPU (no GPU needed) emits one Triton kernel per
    convolution + ReLU after the first, the pooled ones fused with their pool
    (and the last one of CNN-GAP with a 2x2 pool before the global mean), and
    leaves tiles under ``MIN_GPU_TILE`` to XLA."""
    import re
    from ntkexp.fastconv import pallas

    def triton_kernels(fn, side, kind='rows', **kwargs):
        _, _, xla = fn(**kwargs)
        fast = select.fast_kernel_fn(
            xla.net, xla.fallback,
            conv_relu=pallas.make_conv_relu(False, kind=kind))
        x = jax.ShapeDtypeStruct((2, side, side, 3), jnp.float32)
        with xla_gpu_model.abstract_h100():
            text = jax.jit(fast, static_argnames='get').trace(
                x, x, get='ntk').lower(lowering_platforms=('cuda',)).as_text()
        # Whether XLA forms the first layer's product of the pairs (a matrix
        # product with a 6-D (b1, b2, H, W, H, W) result).
        products.append(bool(re.search(
            r'stablehlo\.dot_general.*-> tensor<(\d+x){6}f32>', text)))
        texts.append(text)
        return re.findall(r'name = "(cntk_[a-z_]+)"', text)

    products, texts = [], []

    # Myrtle-5 at 32x32: stages 32 -> 16 and 16 -> 8 in Triton, 8 -> 4 in XLA.
    assert triton_kernels(models.myrtle, 32, depth=5, width=8) == [
        'cntk_conv_relu_pool'] * 2
    assert triton_kernels(models.myrtle, 8, depth=5, width=8) == []
    assert triton_kernels(models.cnn, 32, depth=3, width=8, readout='gap') == [
        'cntk_conv_relu', 'cntk_conv_relu_pool']
    # The diagonal kernels: with the first ReLU fused, Myrtle's 32x32 stage
    # (ReLU -> conv -> ReLU -> pool) and CNN-GAP's first ReLU -> conv -> ReLU
    # each become one kernel; with the product fused too, from the patches.
    for kind, first in (('diagonal', 'cntk_diag_conv_relu'),
                        ('diagonal_relu_in', 'cntk_diag_relu_conv_relu'),
                        ('diagonal_patches',
                         'cntk_diag_patches_relu_conv_relu')):
        assert triton_kernels(models.myrtle, 32, depth=5, width=8,
                              kind=kind) == [first + '_pool',
                                             'cntk_diag_conv_relu_pool']
        assert triton_kernels(models.cnn, 32, depth=3, width=8,
                              readout='gap', kind=kind) == [
            first, 'cntk_diag_conv_relu_pool']
    # diagonal_patches computes it in the Triton kernel.
    assert products[-6:] == [True, True, True, True, False, False]
    # diagonal_first: the first layer's product and ReLU in a Triton kernel
    # of their own (no XLA product), then the diagonal steps.
    assert triton_kernels(models.myrtle, 32, depth=5, width=8,
                          kind='diagonal_first') == [
        'cntk_first_relu', 'cntk_diag_conv_relu_pool',
        'cntk_diag_conv_relu_pool']
    assert triton_kernels(models.cnn, 32, depth=3, width=8, readout='gap',
                          kind='diagonal_first') == [
        'cntk_first_relu', 'cntk_diag_conv_relu', 'cntk_diag_conv_relu_pool']
    assert products[-2:] == [False, False]
    # diagonal_first_masked: the same kernels, passing unpadded 32^4
    # covariances (diagonal_first: padded 34^4 ones); neither forms the
    # other's (so no XLA pad pass either).
    for fn, kwargs, names in (
            (models.myrtle, dict(depth=5, width=8),
             ['cntk_first_relu', 'cntk_diag_conv_relu_pool',
              'cntk_diag_conv_relu_pool']),
            (models.cnn, dict(depth=3, width=8, readout='gap'),
             ['cntk_first_relu', 'cntk_diag_conv_relu',
              'cntk_diag_conv_relu_pool'])):
        for kind, side in (('diagonal_first', 34), ('diagonal_first_masked', 32)):
            texts.clear()
            assert triton_kernels(fn, 32, kind=kind, **kwargs) == names
            covariances = set(re.findall(r'tensor<\d+x(\d+)x\1x\1x\1xf32>',
                                         texts[0]))
            assert str(side) in covariances, (kind, covariances)
            assert str(66 - side) not in covariances, (kind, covariances)
    # diagonal_first_masked_tail: CNN-GAP's last two layers and the global
    # mean in one kernel; Myrtle (pooled) as diagonal_first_masked.
    assert triton_kernels(models.cnn, 32, depth=3, width=8, readout='gap',
                          kind='diagonal_first_masked_tail') == [
        'cntk_first_relu', 'cntk_diag_conv_relu_conv_relu_gap']
    assert triton_kernels(models.cnn, 32, depth=4, width=8, readout='gap',
                          kind='diagonal_first_masked_tail') == [
        'cntk_first_relu', 'cntk_diag_conv_relu',
        'cntk_diag_conv_relu_conv_relu_gap']
    assert triton_kernels(models.myrtle, 32, depth=5, width=8,
                          kind='diagonal_first_masked_tail') == [
        'cntk_first_relu', 'cntk_diag_conv_relu_pool',
        'cntk_diag_conv_relu_pool']
    _, _, xla = models.myrtle(depth=5, width=8)
    assert pallas.supported(xla.net, 32, 32, on_gpu=True)
    assert not pallas.supported(xla.net, 28, 28, on_gpu=True)


def test_diagonal_steps_run_eight_warps_unless_told_and_the_first_four():
    """The diagonal kinds' steps lower with ``pallas.DIAGONAL_NUM_WARPS`` (8)
    Triton warps, or the ``num_warps`` given; the first layer's step keeps
    4 either way; the rows kind keeps its 4."""
    import re
    from ntkexp.fastconv import pallas
    assert pallas.DIAGONAL_NUM_WARPS == 8

    def warps(kind, **options):
        _, _, xla = models.myrtle(depth=5, width=8)
        fast = select.fast_kernel_fn(
            xla.net, xla.fallback,
            conv_relu=pallas.make_conv_relu(False, kind=kind, **options))
        x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
        with xla_gpu_model.abstract_h100():
            text = jax.jit(fast, static_argnames='get').trace(
                x, x, get='ntk').lower(lowering_platforms=('cuda',)).as_text()
        return re.findall(r'name = "(cntk_[a-z_]+)", num_stages = 1 : i32, '
                          r'num_warps = (\d+)', text)

    assert warps('diagonal_first_masked') == [
        ('cntk_first_relu', '4'), ('cntk_diag_conv_relu_pool', '8'),
        ('cntk_diag_conv_relu_pool', '8')]
    assert warps('diagonal_first_masked', num_warps=16) == [
        ('cntk_first_relu', '4'), ('cntk_diag_conv_relu_pool', '16'),
        ('cntk_diag_conv_relu_pool', '16')]
    assert warps('diagonal', num_warps=4) == [
        ('cntk_diag_conv_relu_pool', '4')] * 2
    assert warps('rows') == [('cntk_conv_relu_pool', '4')] * 2


def test_tf32x3_kind_lowers_its_products_to_three_tf32_products():
    """``diagonal_patches_tf32x3`` lowers the in-kernel first-layer products
    to Triton ``tt.dot``s with ``inputPrecision = tf32x3`` (three TF32
    tensor-core products); ``diagonal_patches`` keeps IEEE float32 (Triton's
    default, no attribute). Read from the Triton module before it is
    serialised (a private function of Pallas: skipped if it moved)."""
    import re
    from ntkexp.fastconv import diagonal, pallas
    try:
        from jax._src.pallas.triton import lowering as triton_lowering  # pylint: disable=g-import-not-at-top
        real = triton_lowering.lower_jaxpr_to_triton_module
    except (ImportError, AttributeError):
        pytest.skip('Pallas\' Triton lowering moved')
    modules = []

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        modules.append(str(result.module))
        return result

    _, _, xla = models.myrtle(depth=5, width=8)
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    dots = {}
    for kind in ('diagonal_patches', 'diagonal_patches_tf32x3'):
        modules.clear()
        fast = select.fast_kernel_fn(
            xla.net, xla.fallback, conv_relu=pallas.make_conv_relu(False, kind=kind))
        with mock.patch.object(triton_lowering, 'lower_jaxpr_to_triton_module',
                               spy), xla_gpu_model.abstract_h100():
            jax.jit(fast, static_argnames='get').trace(x, x, get='ntk').lower(
                lowering_platforms=('cuda',))
        dots[kind] = [re.findall(r'tt\.dot [^:]*', m) for m in modules]
    # The first stage's kernel has the products (one per loaded tile), the
    # second none.
    for kind, want in (('diagonal_patches', None),
                       ('diagonal_patches_tf32x3', 'inputPrecision = tf32x3')):
        first, second = dots[kind]
        assert first and not second
        assert all((want in d) if want else ('inputPrecision' not in d)
                   for d in first), first[:2]
    with pytest.raises(ValueError, match="product_precision='tf32': expected"):
        diagonal.conv_relu_diagonal(
            None, None, jnp.ones((1, 4, 4)), jnp.ones((1, 4, 4)), k=3, scale=1.,
            shift=0., alpha=1., beta=1., gamma=0., product_precision='tf32')


@pytest.mark.parametrize('pool, pairs_last', [
    (2, True), pytest.param(None, True, marks=pytest.mark.slow),
    pytest.param(2, False, marks=pytest.mark.slow),
    pytest.param(None, False, marks=pytest.mark.slow)])
def test_pallas_conv_relu_step_equals_xla_interpreted(pool, pairs_last):
    """One fused step (conv + ReLU, optionally + 2x2 average pool) in Pallas'
    interpreter equals the XLA recursion on a block of 2 x 3 pairs, float64."""
    from ntkexp.fastconv import pallas
    rng = np.random.RandomState(0)
    side, b1, b2 = 4, 2, 3
    with jax.enable_x64(True):
        x = rng.randn(b1 + b2, side, side, 3)
        pt = recursion.patches(jnp.asarray(x), 3)
        var = jnp.einsum('ahwk,ahwk->ahw', pt, pt) / 27
        raw = jnp.einsum('ahwk,bxyk->abhwxy', pt[:b1], pt[b1:]) / 27
        nngp, dot = recursion.relu(
            raw, var[:b1, None, :, :, None, None] *
            var[None, b1:, None, None, :, :])
        args = (nngp, raw * dot + nngp, 0.5 * var[:b1], 0.5 * var[b1:])
        coeffs = dict(k=3, scale=1.5 / 9, shift=0.01, alpha=1.5 / 9,
                      beta=1.5 / 9, gamma=0.01, pool=pool)
        got = pallas.conv_relu(*args, interpret=True, pairs_last=pairs_last,
                               **coeffs)
        want = pallas._xla_conv_relu(*args, **coeffs)  # pylint: disable=protected-access
    out = side // (pool or 1)
    for a, b in zip(got, want):
        assert a.shape == b.shape == (b1, b2, out, out, out, out)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['rows', 'diagonal', 'diagonal_relu_in',
                                  'diagonal_patches', 'diagonal_patches_tf32x3',
                                  'diagonal_first', 'diagonal_first_masked',
                                  'diagonal_first_masked_tail'])
@pytest.mark.parametrize('fn, kwargs, side', [
    (models.myrtle, dict(depth=5, width=8, b_std=0.2), 8),
    (models.cnn, dict(depth=3, width=8, b_std=0.1, readout='gap'), 6),
], ids=['myrtle5', 'cnn_gap_even'])
def test_pallas_kernel_equals_neural_tangents_interpreted(fn, kwargs, side,
                                                          kind):
    """The whole kernel with the Pallas steps (pooled stages, CNN-GAP's last
    step pooled 2x2 before the global mean; ``diagonal_relu_in``: the first
    ReLU -> conv -> ReLU from the padded first-layer product;
    ``diagonal_patches``: the same from the patches) equals
    neural-tangents, float64."""
    from ntkexp.fastconv import pallas
    _assert_equals_neural_tangents(fn, kwargs, side,
                                   pallas.make_conv_relu(True, kind=kind))


def _assert_equals_neural_tangents(fn, kwargs, side, conv_relu, jit=True):
    """The fast kernel of ``fn(**kwargs)`` with the step ``conv_relu``
    equals neural-tangents' on a 1 x 2 block of ``side``-pixel images,
    float64."""
    _, _, reference = fn(**kwargs, fast_kernel=False)
    _, _, xla = fn(**kwargs)
    fast = select.fast_kernel_fn(xla.net, xla.fallback, conv_relu=conv_relu)
    if jit:
        fast = jax.jit(fast, static_argnames='get')
    x1, x2 = _images(1, side, 3, 7), _images(2, side, 3, 8)
    with jax.enable_x64(True):
        got = fast(x1, x2, get=('nngp', 'ntk'))
        want = reference(x1, x2, get=('nngp', 'ntk'))
    for g in ('nngp', 'ntk'):
        np.testing.assert_allclose(getattr(got, g), getattr(want, g),
                                   rtol=1e-12)


@pytest.mark.parametrize('fn, kwargs, side', [
    (models.myrtle, dict(depth=5, width=8, b_std=0.2), 4),
    pytest.param(models.cnn, dict(depth=3, width=8, b_std=0.1, readout='gap'),
                 6, marks=pytest.mark.slow),
], ids=['myrtle5', 'cnn_gap_even'])
def test_diagonal_step_takes_the_padded_first_layer(fn, kwargs, side,
                                                    monkeypatch):
    """With ``PADDED_FIRST_LAYER`` the ``diagonal`` step gets the first
    activation's covariances as they come, padded (``padded=True``, no pad
    pass of their own), and the kernel still equals neural-tangents (float64,
    interpreted)."""
    from ntkexp.fastconv import diagonal, pallas
    monkeypatch.setattr(recursion, 'PADDED_FIRST_LAYER', True)
    _, _, reference = fn(**kwargs, fast_kernel=False)
    _, _, xla = fn(**kwargs)
    step = pallas.make_conv_relu(True, kind='diagonal')
    assert step.takes_padded
    calls = []

    def recording(nngp, ntk, *args, **options):
        calls.append((nngp.shape, options.get('padded', False)))
        return step(nngp, ntk, *args, **options)

    recording.takes_padded = True
    fast = select.fast_kernel_fn(xla.net, xla.fallback, conv_relu=recording)
    x1, x2 = _images(1, side, 3, 7), _images(2, side, 3, 8)
    with jax.enable_x64(True):
        got = fast(x1, x2, get=('nngp', 'ntk'))
        want = reference(x1, x2, get=('nngp', 'ntk'))
    padded = side + 2
    assert calls[0] == ((1, 2, padded, padded, padded, padded), True)
    assert all(not was_padded for _, was_padded in calls[1:])
    for g in ('nngp', 'ntk'):
        np.testing.assert_allclose(getattr(got, g), getattr(want, g),
                                   rtol=1e-12)
    assert diagonal.conv_relu_diagonal is step.func


@pytest.mark.parametrize('k, side', [(3, 8), (5, 4)])
def test_first_relu_step_writes_the_padded_first_activation(k, side):
    """``first_relu`` (interpreted): the first layer's product, affine map
    and ReLU of every pair, zero-padded by the SAME pads of the next ``k x k``
    convolution, equal to the XLA recursion's padded first layer (float64)
    and zero on every padded row and column; with ``padded=False``, that
    inside alone (what ``diagonal_first_masked`` stores), as the XLA form
    computes it unpadded."""
    from ntkexp.fastconv import first_relu
    rng = np.random.RandomState(3)
    with jax.enable_x64(True):
        x1, x2 = (jnp.asarray(rng.randn(b, side, side, 3)) for b in (2, 3))
        pt1, pt2 = (recursion.patches(x, 3) for x in (x1, x2))
        v1, v2 = (jnp.einsum('bhwk,bhwk->bhw', p, p) / 27 * 1.5 + 0.2
                  for p in (pt1, pt2))
        affine = (1.5 / 27, 0.2, 1.0 / 27, 0.05)
        got = first_relu.first_relu(pt1, pt2, v1, v2, k=k, affine=affine,
                                    interpret=True)
        want = first_relu._xla_first_relu(pt1, pt2, v1, v2, k=k,  # pylint: disable=protected-access
                                          affine=affine)
        unpadded = first_relu.first_relu(pt1, pt2, v1, v2, k=k, affine=affine,
                                         padded=False, interpret=True)
        unpadded_xla = first_relu._xla_first_relu(  # pylint: disable=protected-access
            pt1, pt2, v1, v2, k=k, affine=affine, padded=False)
    lo, _ = recursion._same_pads(k)  # pylint: disable=protected-access
    padded = side + k - 1
    inner = slice(lo, lo + side)
    for u, ux, w in zip(unpadded, unpadded_xla, want):
        assert u.shape == ux.shape == (2, 3) + (side,) * 4
        np.testing.assert_allclose(u, w[:, :, inner, inner, inner, inner],
                                   rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(ux, u, rtol=1e-13, atol=1e-15)
    for g, w in zip(got, want):
        assert g.shape == (2, 3) + (padded,) * 4
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)
        outside = np.ones(g.shape, bool)
        outside[:, :, inner, inner, inner, inner] = False
        assert not np.any(np.asarray(g)[outside])
        assert np.all(np.asarray(g)[:, :, inner, inner, inner, inner] != 0)


@pytest.mark.parametrize('kind', ['diagonal_first', 'diagonal_first_masked'])
def test_diagonal_first_kernel_equals_neural_tangents_interpreted(kind):
    """``fast_kernel=pallas_diagonal_first``: the first layer's step, then
    the diagonal steps taking its padded output, equals neural-tangents
    (Myrtle-5, float64, interpreted; CNN-GAP in the slow set); so does
    ``pallas_diagonal_first_masked``, which stores no padding."""
    from ntkexp.fastconv import pallas
    step = pallas.make_conv_relu(True, kind=kind)
    masked = kind == 'diagonal_first_masked'
    assert step.first_relu is not None
    assert step.takes_padded is not masked
    assert step.masks_padding is masked
    assert step.first_relu.keywords['padded'] is not masked
    _assert_equals_neural_tangents(
        models.myrtle, dict(depth=5, width=8, b_std=0.2), 8, step)


@pytest.mark.parametrize('side, k, carry', [
    (6, 3, True), (5, 3, False), (4, 1, True),
    pytest.param(4, 2, True, marks=pytest.mark.slow),
    pytest.param(6, 5, True, marks=pytest.mark.slow)])
def test_diagonal_step_with_the_gap_tail_equals_xla_interpreted(side, k,
                                                                carry):
    """``tail``: the step, then a last conv + ReLU and the global mean, in
    one walk per diagonal through a ring of rows (Pallas interpreter), equal
    to two XLA steps and the mean on a block of 2 x 3 pairs, float64; so is
    the fallback for tiles too small for Triton; odd sides and ``k = 2``
    (asymmetric SAME padding) included."""
    from ntkexp.fastconv import diagonal, pallas
    rng = np.random.RandomState(side + k)
    b1, b2 = 2, 3
    first = dict(k=k, scale=1.5 / 9, shift=0.01, alpha=1.5 / 9, beta=1.2 / 9,
                 gamma=0.02)
    last = dict(scale=1.3 / 9, shift=0.03, alpha=1.3 / 9, beta=1.1 / 9,
                gamma=0.04)
    with jax.enable_x64(True):
        raw_pad, u_pad, var, inner, _ = _step_arguments(rng, side, b1, b2, k)
        u = u_pad[:, inner, inner]
        nngp = 0.9 * raw_pad[:, :, inner, inner, inner, inner] + 0.3
        post, dot = recursion.relu(nngp, u[:b1, None, :, :, None, None] *
                                   u[None, b1:, None, None, :, :])
        args = (post, (0.8 * nngp + 0.1) * dot, var[:b1], var[b1:])
        var_last = 0.7 * var + 0.05
        mid = pallas._xla_conv_relu(*args, pool=None, **first)  # pylint: disable=protected-access
        out = pallas._xla_conv_relu(  # pylint: disable=protected-access
            *mid, var_last[:b1], var_last[b1:], k=k, pool=None, **last)
        want = [a.mean(axis=(-4, -3, -2, -1)) for a in out]
        tail = diagonal.GapTail(var_last[:b1], var_last[b1:], **last)
        got = diagonal.conv_relu_diagonal(*args, masked=True, tail=tail,
                                          interpret=True, carry_sums=carry,
                                          **first)
        assert side < pallas.MIN_GPU_TILE
        fallback = diagonal.conv_relu_diagonal(*args, masked=True, tail=tail,
                                               **first)
    for g, f, w in zip(got, fallback, want):
        assert g.shape == f.shape == (b1, b2, 1, 1, 1, 1)
        np.testing.assert_allclose(g[:, :, 0, 0, 0, 0], w, rtol=1e-13)
        np.testing.assert_allclose(f[:, :, 0, 0, 0, 0], w, rtol=1e-13)


def test_gap_tail_kind_fuses_the_last_two_layers(monkeypatch):
    """``pallas_diagonal_first_masked_tail`` on a 4-layer CNN-GAP: the first
    layer's step, one masked step, then one with the last conv + ReLU and
    the global mean (``tail``); the kernel equals neural-tangents (float64,
    interpreted). Myrtle (pooled, no tail) takes the masked steps."""
    from ntkexp.fastconv import pallas
    step = pallas.make_conv_relu(True, kind='diagonal_first_masked_tail')
    assert step.fuses_gap_tail and step.masks_padding
    calls = []

    def recording(nngp, ntk, *args, **options):
        out = step(nngp, ntk, *args, **options)
        calls.append((options.get('tail') is not None, out[0].shape))
        return out

    for attribute in ('fuses_gap_tail', 'masks_padding', 'first_relu',
                      'takes_padded', 'pads_output', 'fuses_input_relu',
                      'fuses_input_product'):
        setattr(recording, attribute, getattr(step, attribute))
    _assert_equals_neural_tangents(
        models.cnn, dict(depth=4, width=8, b_std=0.1, readout='gap'), 5,
        recording, jit=False)
    assert calls == [(False, (1, 2, 5, 5, 5, 5)), (True, (1, 2, 1, 1, 1, 1))]


def _step_arguments(rng, side, b1, b2, k):
    """A first layer's product ``raw`` (zero-padded by the SAME pads of
    ``k``, from zero patches around the images), its ReLU's variances ``u``
    (padded) and the next ReLU's ``var``, float64; the slices of the
    interior; and the padded patches ``pt`` (``raw`` is their product / 27)."""
    lo, hi = recursion._same_pads(k)  # pylint: disable=protected-access
    x = rng.randn(b1 + b2, side, side, 3)
    pt = jnp.pad(recursion.patches(jnp.asarray(x), 3),
                 ((0, 0), (lo, hi), (lo, hi), (0, 0)))
    raw = jnp.einsum('ahwk,bxyk->abhwxy', pt[:b1], pt[b1:]) / 27
    u = jnp.einsum('ahwk,ahwk->ahw', pt, pt) / 27 + 0.3
    u = u * jnp.pad(jnp.ones((side, side)), ((lo, hi), (lo, hi)))
    inner = slice(lo, lo + side)
    var = 0.5 * u[:, inner, inner] + 0.1
    return raw, u, var, inner, pt


@pytest.mark.parametrize('side, pool, k, inputs, carry', [
    (5, 2, 3, 'relu_in', True),
    pytest.param(4, None, 2, 'post_relu', False, marks=pytest.mark.slow),
    pytest.param(6, 3, 3, 'relu_in', True, marks=pytest.mark.slow),
    pytest.param(5, None, 3, 'first_layer', True, marks=pytest.mark.slow),
    pytest.param(6, 2, 2, 'first_layer', False, marks=pytest.mark.slow),
    (6, 2, 3, 'first_patches', True),
    pytest.param(5, None, 3, 'first_patches', False, marks=pytest.mark.slow),
    (5, 2, 3, 'masked', True),
    (6, None, 3, 'masked', True),
    pytest.param(4, None, 2, 'masked', False, marks=pytest.mark.slow),
    pytest.param(6, 2, 5, 'masked', True, marks=pytest.mark.slow),
])
def test_diagonal_step_equals_xla_interpreted(side, pool, k, inputs, carry):
    """The diagonal kernel (Pallas interpreter) equals the XLA step on a block
    of 2 x 3 pairs, float64: after a ReLU, with the ReLU before the
    convolution fused, in the first-layer form (padded product, affine
    NNGP / NTK) and with that product computed in the kernel from the
    patches; unpadded after a ReLU with the padding as load masks
    (``masked``); odd sides with a pool drop the last row and column like
    ``AvgPool``; sums carried between windows or recomputed."""
    from ntkexp.fastconv import diagonal, pallas
    rng = np.random.RandomState(side)
    b1, b2 = 2, 3
    coeffs = dict(k=k, scale=1.5 / 9, shift=0.01, alpha=1.5 / 9,
                  beta=1.2 / 9, gamma=0.02, pool=pool)
    with jax.enable_x64(True):
        raw_pad, u_pad, var, inner, pt = _step_arguments(rng, side, b1, b2,
                                                         k)
        raw = raw_pad[:, :, inner, inner, inner, inner]
        u = u_pad[:, inner, inner]
        affine = (0.9, 0.3, 0.8, 0.25)
        nngp, ntk = affine[0] * raw + affine[1], affine[2] * raw + affine[3]
        in_vars = (u[:b1], u[b1:])
        want = pallas._xla_conv_relu(  # pylint: disable=protected-access
            nngp, ntk, var[:b1], var[b1:], in_vars=in_vars, **coeffs)
        if inputs in ('post_relu', 'masked'):
            post, dot = recursion.relu(nngp, u[:b1, None, :, :, None, None] *
                                       u[None, b1:, None, None, :, :])
            args, extra = (post, ntk * dot), {}
            if inputs == 'masked':
                extra = dict(masked=True)
        elif inputs == 'relu_in':
            args, extra = (nngp, ntk), dict(in_vars=in_vars)
        elif inputs == 'first_layer':
            args, extra = (raw_pad, None), dict(
                in_vars=(u_pad[:b1], u_pad[b1:]), padded=True,
                input_affine=affine)
        else:
            args, extra = (None, None), dict(
                in_vars=(u_pad[:b1], u_pad[b1:]), padded=True,
                input_affine=(affine[0] / 27, affine[1], affine[2] / 27,
                              affine[3]),
                input_patches=(pt[:b1], pt[b1:]))
        got = diagonal.conv_relu_diagonal(*args, var[:b1], var[b1:],
                                          interpret=True, carry_sums=carry,
                                          **extra, **coeffs)
        # Compiled (not interpreted), tiles this small go to the XLA step
        # instead, from the same arguments.
        assert side < pallas.MIN_GPU_TILE
        fallback = diagonal.conv_relu_diagonal(*args, var[:b1], var[b1:],
                                               **extra, **coeffs)
    out = side // (pool or 1)
    for a, b, c in zip(got, want, fallback):
        assert a.shape == b.shape == c.shape == (b1, b2, out, out, out, out)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)
        np.testing.assert_allclose(c, b, rtol=1e-13, atol=0)


@pytest.mark.parametrize('side, pool, k', [(6, 2, 3), (5, None, 3),
                                         pytest.param(8, 2, 5, marks=pytest.mark.slow)])
def test_diagonal_step_writes_its_output_padded(side, pool, k):
    """``pad_output=True`` (interpreted, and the XLA fallback for small
    tiles): the step's outputs inside SAME zero padding of the next ``k x k``
    convolution, every padded row pair and column zero, the inside equal to
    the unpadded step (float64)."""
    from ntkexp.fastconv import diagonal
    rng = np.random.RandomState(side)
    b1, b2 = 2, 3
    coeffs = dict(k=k, scale=1.5 / 9, shift=0.01, alpha=1.5 / 9,
                  beta=1.2 / 9, gamma=0.02, pool=pool)
    with jax.enable_x64(True):
        raw_pad, u_pad, var, inner, _ = _step_arguments(rng, side, b1, b2, k)
        extra = dict(in_vars=(u_pad[:b1], u_pad[b1:]), padded=True,
                     input_affine=(0.9, 0.3, 0.8, 0.25))
        args = (raw_pad, None, var[:b1], var[b1:])
        plain = diagonal.conv_relu_diagonal(*args, interpret=True, **extra,
                                            **coeffs)
        padded = diagonal.conv_relu_diagonal(*args, interpret=True,
                                             pad_output=True, **extra,
                                             **coeffs)
        fallback = diagonal.conv_relu_diagonal(*args, pad_output=True,
                                               **extra, **coeffs)
    lo, hi = recursion._same_pads(k)  # pylint: disable=protected-access
    out = side // (pool or 1)
    inside = slice(lo, lo + out)
    for a, p, f in zip(plain, padded, fallback):
        assert p.shape == f.shape == (b1, b2) + (out + lo + hi,) * 4
        np.testing.assert_allclose(p[:, :, inside, inside, inside, inside], a,
                                   rtol=1e-13, atol=0)
        outside = np.ones(p.shape, bool)
        outside[:, :, inside, inside, inside, inside] = False
        assert not np.any(np.asarray(p)[outside])
        np.testing.assert_allclose(f, p, rtol=1e-13, atol=0)


def test_padding_layout_of_non_square_images():
    """The padded rows come from the height and the padded columns from the
    width (a 6 x 4 image, pads 1 and 1: rows 0 and 7, columns 0 and 5; two
    4-wide tiles at columns 0 and 2 cover a padded row of 6). The interpreter
    clamps out-of-range stores, so only this shows a mix-up; on a GPU it
    would write past the row."""
    from ntkexp.fastconv import diagonal
    assert diagonal.padding_layout(6, 4, 1, 1) == ([0, 7], [0, 5], [0, 2])
    assert diagonal.padding_layout(8, 8, 2, 2) == ([0, 1, 10, 11],
                                                   [0, 1, 10, 11], [0, 4])


def test_diagonal_first_steps_pass_padded_covariances(monkeypatch):
    """``pallas_diagonal_first`` on CNN-GAP: the first step's product and
    ReLU come padded, each diagonal step followed by another convolution
    writes its output padded and the next takes it so (no pad pass between
    them), and the kernel equals neural-tangents (float64, interpreted)."""
    from ntkexp.fastconv import pallas
    step = pallas.make_conv_relu(True, kind='diagonal_first')
    calls = []

    def recording(nngp, ntk, *args, **options):
        out = step(nngp, ntk, *args, **options)
        calls.append((options.get('padded', False),
                      options.get('pad_output', False), out[0].shape))
        return out

    recording.takes_padded = recording.pads_output = True
    recording.first_relu = step.first_relu
    _assert_equals_neural_tangents(
        models.cnn, dict(depth=3, width=8, b_std=0.1, readout='gap'), 6,
        recording, jit=False)
    assert calls == [(True, True, (1, 2, 8, 8, 8, 8)),
                     (True, False, (1, 2, 3, 3, 3, 3))]


def test_pallas_step_kind_is_checked():
    from ntkexp.fastconv import pallas
    with pytest.raises(ValueError, match='diagonal_relu_in'):
        pallas.make_conv_relu(True, kind='diagonals')
    from ntkexp.fastconv import diagonal
    var = jnp.ones((1, 4, 4))
    with pytest.raises(ValueError, match='tail needs masked=True'):
        diagonal.conv_relu_diagonal(
            var[:, None, :, :, None, None], var[:, None, :, :, None, None],
            var, var, k=3, scale=1., shift=0., alpha=1., beta=1., gamma=0.,
            tail=diagonal.GapTail(var, var, 1., 0., 1., 1., 0.),
            interpret=True)
    with pytest.raises(ValueError, match='masked=True takes unpadded'):
        diagonal.conv_relu_diagonal(
            var[:, None, :, :, None, None], None, var, var, k=3, scale=1.,
            shift=0., alpha=1., beta=1., gamma=0., padded=True, masked=True,
            interpret=True)
    with pytest.raises(ValueError, match='input_patches needs padded=True'):
        diagonal.conv_relu_diagonal(
            None, None, var, var, k=3, scale=1., shift=0., alpha=1., beta=1.,
            gamma=0., input_patches=(jnp.ones((1, 6, 6, 27)),) * 2,
            interpret=True)


def test_implementation_names_what_computes_the_kernels():
    """Logged by every run (runner._check_model_builds, into run.log)."""
    ours, theirs = 'ntkexp recursion (xla)', 'neural-tangents'
    assert kernels.implementation(models.cnn(depth=2, width=8)[2]) == ours
    assert kernels.implementation(models.fc(depth=2, width=8)[2]) == ours  # dense scan
    for model in (models.cnn, models.fc):
        assert kernels.implementation(model(depth=2, width=8, fast_kernel=False)[2]) == theirs
    net = models.cnn(depth=2, width=8, fast_kernel='pallas_diagonal')[2]
    assert kernels.implementation(net) == 'ntkexp recursion (pallas diagonal)'
