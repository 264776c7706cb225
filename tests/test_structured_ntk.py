"""``ntkexp.structured_ntk``: the empirical NTK from layer inputs and output
cotangents equals neural-tangents' Jacobian contraction in float64, for every
model family, both contractions of a convolution, traced and untraced logits,
one and two sets of images; weights it cannot tap stay exact."""

import jax
import jax.numpy as jnp
import neural_tangents as nt
import numpy as np
import pytest
from jax import lax

from ntkexp import models
from ntkexp import structured_ntk as S

MODELS = {
    'wrn': (lambda: models.wrn(depth=10, width=4, out_dim=3), (3, 8, 8, 3)),
    'fc_bias': (lambda: models.fc(depth=2, width=16, out_dim=3, b_std=0.1),
                (4, 7)),
    'cnn_gap_bias': (lambda: models.cnn(depth=2, width=6, out_dim=2,
                                        readout='gap', b_std=0.2),
                     (3, 6, 6, 3)),
    'cnn_vec': (lambda: models.cnn(depth=2, width=4, out_dim=2,
                                   readout='flatten'), (2, 5, 5, 3)),
    'myrtle5': (lambda: models.myrtle(depth=5, width=4, out_dim=2),
                (2, 8, 8, 3)),
    'resnet_flat': (lambda: models.resnet(depth=2, width=8, out_dim=2),
                    (3, 6)),
}


def _float64_setup(name):
    jax.config.update('jax_enable_x64', True)
    make, shape = MODELS[name]
    init_fn, apply_fn, _ = make()
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    x1 = jax.random.normal(k1, shape, jnp.float64)
    x2 = jax.random.normal(k2, (shape[0] - 1,) + shape[1:], jnp.float64)
    # Standard normal weights and biases, as the NTK parameterisation draws
    # them, from numpy: compiling or running stax's random init of a WRN
    # takes seconds.
    rng = np.random.RandomState(0)
    params = jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.standard_normal(s.shape), jnp.float64),
        jax.eval_shape(lambda key: init_fn(key, shape)[1],
                       jax.random.PRNGKey(0)))
    return apply_fn, x1, x2, params


def _rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()
                 / np.abs(np.asarray(b)).max())


# Default run: these families, traced logits against the same images and
# untraced against other images; ``make test-slow``: every family and case.
FAST_MODELS = ('wrn', 'fc_bias', 'cnn_gap_bias', 'resnet_flat')


@pytest.mark.parametrize('name,exhaustive', [
    (n, False) for n in FAST_MODELS] + [
    pytest.param(n, True, marks=pytest.mark.slow) for n in sorted(MODELS)])
def test_equals_jacobian_contraction_float64(name, exhaustive):
    """Every contraction of the convolutions, traced and untraced logits,
    ``x2=None`` and a second set of images: equal to Jacobian contraction."""
    apply_fn, x1, x2, params = _float64_setup(name)
    # One Jacobian contraction, untraced, of x1 against (x1, x2): its blocks
    # are the references of x2=None and of x2; traced, neural-tangents takes
    # the mean over the logits' diagonal.
    full = jax.jit(nt.empirical_ntk_fn(
        apply_fn, trace_axes=(), vmap_axes=0, implementation=1))(
            x1, jnp.concatenate([x1, x2]), params)
    n1, logits = x1.shape[0], full.shape[-1]
    blocks = {None: full[:, :n1], 'x2': full[:, n1:]}
    for trace_axes in ((-1,), ()):
        seconds = (None, 'x2') if exhaustive else (None,) if trace_axes else (
            'x2',)
        wants = [jnp.trace(blocks[second], axis1=2, axis2=3) / logits
                 if trace_axes else blocks[second] for second in seconds]
        # 'auto' picks one of the other two per layer. Default run: each of
        # the two in one case (weight gradients traced, pairs untraced).
        for contraction in (S.CONV_CONTRACTIONS if exhaustive
                            else ('gradients',) if trace_axes
                            else ('pairs',)):
            ours = jax.jit(S.structured_ntk_fn(
                apply_fn, trace_axes=trace_axes, conv_contraction=contraction))
            for second, want in zip(seconds, wants):
                got = ours(x1, None if second is None else x2, params)
                assert got.shape == want.shape
                assert got.dtype == jnp.float64
                assert _rel(got, want) < 1e-12, (trace_axes, contraction,
                                                 second is None)


def _taps(model, shape):
    init_fn, apply_fn, _ = model
    params = jax.eval_shape(lambda key: init_fn(key, shape)[1],
                            jax.random.PRNGKey(0))
    _, leaves, taps = S.trace_taps(apply_fn, params,
                                   jax.ShapeDtypeStruct(shape, jnp.float32))
    return taps, leaves


def test_wrn_taps_every_weight_and_fc_biases_are_not_tapped():
    """A WRN-10: 9 convolutions and the readout's dense layer are taps (the
    readout reads one vector per image: an outer product); nothing else."""
    taps, leaves = _taps(models.wrn(depth=10, width=4, out_dim=3),
                         (1, 8, 8, 3))
    assert [t.kind for t in taps] == ['conv'] * 9 + ['dense_vector']
    assert sorted(t.leaf for t in taps) == list(range(len(leaves)))
    # FC with biases: the weights are taps, the biases are not.
    taps, leaves = _taps(models.fc(depth=1, width=8, out_dim=2, b_std=0.1),
                         (1, 5))
    assert [leaves[t.leaf].shape for t in taps] == [(5, 8), (8, 2)]
    assert len(leaves) == 4


def _hand_written_net():
    """Weights used in ways that are not taps: one weight read twice, a
    grouped convolution, a weight through a nonlinearity, a dense layer on
    several vectors per image (``dense``), an elementwise scale."""
    def apply_fn(params, x):
        w_shared, w_group, w_exp, w_seq, scale = params
        y = lax.conv_general_dilated(x, w_shared, (1, 1), 'SAME',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
        y = jnp.tanh(y)
        y = lax.conv_general_dilated(y, w_shared, (2, 1), ((1, 0), (0, 1)),
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
        y = lax.conv_general_dilated(y, w_group, (1, 1), 'VALID',
                                     feature_group_count=2,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
        y = jnp.sin(y) * jnp.exp(w_exp)
        y = y.reshape(y.shape[0], -1, y.shape[-1])    # (N, positions, C)
        y = jnp.tanh(y @ w_seq) * scale               # dense on each position
        return y.mean(axis=1)
    keys = jax.random.split(jax.random.PRNGKey(3), 5)
    params = [jax.random.normal(keys[0], (3, 3, 4, 4)) / 3,
              jax.random.normal(keys[1], (1, 2, 2, 4)),
              0.1 * jax.random.normal(keys[2], (4,)),
              jax.random.normal(keys[3], (4, 3)) / 2,
              1. + 0.1 * jax.random.normal(keys[4], (3,))]
    return apply_fn, params


@pytest.mark.parametrize('contraction', ('gradients', 'pairs'))
def test_untapped_weights_stay_exact(contraction):
    jax.config.update('jax_enable_x64', True)
    apply_fn, params = _hand_written_net()
    params = [p.astype(jnp.float64) for p in params]
    x1 = jax.random.normal(jax.random.PRNGKey(4), (3, 6, 5, 4), jnp.float64)
    x2 = jax.random.normal(jax.random.PRNGKey(5), (2, 6, 5, 4), jnp.float64)
    taps = S.trace_taps(apply_fn, params, x1)[2]
    assert [(t.kind, t.leaf) for t in taps] == [('dense', 3)]
    for trace_axes in ((-1,), ()):
        want = jax.jit(nt.empirical_ntk_fn(
            apply_fn, trace_axes=trace_axes, vmap_axes=0,
            implementation=1))(x1, x2, params)
        got = jax.jit(S.structured_ntk_fn(
            apply_fn, trace_axes=trace_axes,
            conv_contraction=contraction))(x1, x2, params)
        assert _rel(got, want) < 1e-12


@pytest.mark.parametrize('strides,padding,lhs_dil,rhs_dil', [
    ((1, 1), ((1, 1), (1, 1)), (1, 1), (1, 1)),
    ((2, 1), ((0, 1), (2, 0)), (1, 1), (1, 2)),
    ((1, 2), ((1, 0), (0, 0)), (2, 1), (1, 1)),
    ((1, 1), ((-1, 1), (1, 1)), (1, 1), (1, 1)),
])
def test_conv_patches_reproduce_the_convolution(strides, padding, lhs_dil,
                                                rhs_dil):
    """``sum_f patches[..., f, c] w[f, c, o]`` is the convolution itself."""
    jax.config.update('jax_enable_x64', True)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 6, 3), jnp.float64)
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 2, 3, 5), jnp.float64)
    want = lax.conv_general_dilated(
        x, w, strides, padding, lhs_dil, rhs_dil,
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    patches = S.conv_patches(x, (3, 2), dict(
        window_strides=strides, padding=padding, lhs_dilation=lhs_dil,
        rhs_dilation=rhs_dil))
    assert patches.shape == want.shape[:3] + (6, 3)
    got = jnp.einsum('nhwfc,fco->nhwo', patches, w.reshape(6, 3, 5))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_position_pairs_chosen_for_few_positions_and_many_channels():
    """A 32x32 WRN-10-4 at 16 images, traced: per-image gradients for the
    32x32 and 16x16 stages, pairs for the 3x3 convolutions of the 8x8 one."""
    def pairs(positions, fan_in, channels):
        return S.prefer_position_pairs(16, None, positions, fan_in, channels,
                                       10, True)
    assert not pairs(1024, 27, 64) and not pairs(1024, 576, 64)
    assert not pairs(256, 1152, 128) and not pairs(256, 64, 128)
    assert pairs(64, 1152, 256) and pairs(64, 2304, 256)
    # Untraced logits make pairs 10x dearer: gradients again.
    assert not S.prefer_position_pairs(16, None, 64, 1152, 256, 10, False)


def test_bad_arguments_are_named():
    apply_fn = models.fc(depth=1, width=4, out_dim=2)[1]
    with pytest.raises(NotImplementedError, match='trace_axes'):
        S.structured_ntk_fn(apply_fn, trace_axes=(0,))
    with pytest.raises(NotImplementedError, match='diagonal_axes'):
        S.structured_ntk_fn(apply_fn, diagonal_axes=(-1,))
    with pytest.raises(ValueError, match="conv_contraction='fast'"):
        S.structured_ntk_fn(apply_fn, conv_contraction='fast')
    init_fn, apply_fn, _ = models.fc(depth=1, width=4, out_dim=1)
    _, params = init_fn(jax.random.PRNGKey(0), (2, 3))
    flat = S.structured_ntk_fn(lambda p, x: apply_fn(p, x)[:, 0])
    with pytest.raises(ValueError, match=r'\(batch, logits\) array, got f'):
        flat(jnp.ones((2, 3)), None, params)


def test_tensor_core_products_need_a_gpu_and_lower_to_their_algorithm(
        monkeypatch):
    """``products='tf32x3'`` (and the bfloat16 ones): refused off a GPU with
    one line naming the fix; ignored for float64 inputs (the same numbers as
    ``'default'``); lowered for CUDA, every product of the terms carries the
    algorithm while the network's own passes keep theirs."""
    with pytest.raises(ValueError, match="products='tf32'.*one of"):
        S.structured_ntk_fn(lambda p, x: x, products='tf32')
    init_fn, apply_fn, _ = models.wrn(depth=10, width=8, out_dim=3)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 6, 6, 3))
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    tensor_cores = S.structured_ntk_fn(apply_fn, products='tf32x3')
    with pytest.raises(ValueError, match="needs a GPU.*products='default'"):
        tensor_cores(x, None, params)
    # Lowered for CUDA (as on a GPU): all but the readout's backward product.
    _, _, taps = S.trace_taps(apply_fn, params, x)
    monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
    for name, marker in (('tf32x3', 'lhs_precision_type = tf32'),
                         ('bf16x9', 'num_primitive_operations = 9')):
        text = jax.jit(S.structured_ntk_fn(apply_fn, products=name)).trace(
            x, None, params).lower(lowering_platforms=('cuda',)).as_text()
        dots = [line for line in text.splitlines()
                if 'stablehlo.dot_general' in line]
        with_algorithm = [line for line in dots if marker in line]
        assert len(with_algorithm) >= 2 * sum(t.kind == 'conv' for t in taps)
        assert len(dots) - len(with_algorithm) == 1, name
    monkeypatch.undo()
    # float64 (last: it switches x64 on): the algorithm does not apply, the
    # kernel is the default one.
    apply64, x1, _, params64 = _float64_setup('wrn')
    np.testing.assert_array_equal(
        np.asarray(jax.jit(S.structured_ntk_fn(apply64, products='tf32x3'))(
            x1, None, params64)),
        np.asarray(jax.jit(S.structured_ntk_fn(apply64))(x1, None, params64)))


def test_tf32x3_convolutions_are_float32_accurate_and_need_a_gpu(monkeypatch):
    """``convolutions='tf32x3'``: refused off a GPU with one line naming the
    fix; built for a GPU (``backend.targeting``) with every tensor-core
    operand rounded to TF32 (a CPU stand-in for the tensor cores,
    ``tests/test_tf32x3_conv.py``) the WRN's NTK, untraced against other
    images, is within 2e-6 of float64; ``with_convolutions`` gives the
    cotangent floor the same cotangents; float64 inputs ignore it."""
    from ntkexp import backend, bench
    from ntkexp import tf32x3_conv
    with pytest.raises(ValueError, match=r"convolutions='x3': expected one"):
        S.structured_ntk_fn(lambda p, x: x, convolutions='x3')
    apply64, x1, x2, params64 = _float64_setup('wrn')
    truth = jax.jit(S.structured_ntk_fn(apply64, trace_axes=()))(
        x1, x2, params64)
    floor64 = jax.jit(bench.cotangent_floor_fn(apply64))(x1, params64)
    # float64: the option does not apply, off a GPU too.
    np.testing.assert_array_equal(
        jax.jit(S.structured_ntk_fn(apply64, trace_axes=(),
                                    convolutions='tf32x3'))(x1, x2, params64),
        truth)
    jax.config.update('jax_enable_x64', False)
    x1, x2, params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(np.asarray(a), jnp.float32), (x1, x2, params64))
    split = S.structured_ntk_fn(apply64, trace_axes=(), convolutions='tf32x3')
    with pytest.raises(ValueError, match="needs a GPU.*convolutions='default'"):
        split(x1, x2, params)
    monkeypatch.setattr(tf32x3_conv, 'tensor_core_operand',
                        tf32x3_conv.round_to_tf32)
    with backend.targeting('gpu'):
        kernel = jax.jit(split)(x1, x2, params)
        floor = jax.jit(bench.cotangent_floor_fn(
            apply64, convolutions='tf32x3'))(x1, params)
    assert _rel(kernel, truth) < 2e-6
    assert _rel(floor, floor64) < 2e-6
