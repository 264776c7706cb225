"""``ntkexp.tf32x3_conv``: float32 convolutions as three TF32 products.

A CPU has no tensor cores; its ``Precision.DEFAULT`` convolutions are float32.
The tests make them TF32 by rounding every operand a tensor core would read
(``tensor_core_operand = round_to_tf32``), and check against float64 that one
such convolution is TF32-accurate (about 1e-4 off) and the three-product one
float32-accurate (under 2e-6), forward and in both transposes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ntkexp import tf32x3_conv as T


def test_split_is_a_tf32_head_and_an_exact_tail():
    x = jax.random.normal(jax.random.PRNGKey(0), (4096,)) * jnp.logspace(
        -20, 20, 4096)
    hi, lo = T.tf32_split(x)
    bits = np.asarray(lax.bitcast_convert_type(hi, jnp.uint32))
    assert not np.any(bits & ((1 << T.TAIL_BITS) - 1))
    np.testing.assert_array_equal(np.asarray(hi) + np.asarray(lo),
                                  np.asarray(x))
    assert np.all(np.abs(np.asarray(lo, np.float64))
                  < 2.0 ** -10 * np.abs(np.asarray(x, np.float64)))
    # round_to_tf32: TF32 numbers, the nearest ones (half a unit at most).
    r = T.round_to_tf32(x)
    assert not np.any(np.asarray(lax.bitcast_convert_type(r, jnp.uint32))
                      & ((1 << T.TAIL_BITS) - 1))
    assert np.all(np.abs(np.asarray(r, np.float64) - np.asarray(x, np.float64))
                  <= 2.0 ** -11 * np.abs(np.asarray(x, np.float64)))


CONVS = {
    'nhwc_stride2_same': dict(shapes=((3, 9, 9, 16), (3, 3, 16, 8)),
                              specs=('NHWC', 'HWIO', 'NHWC'),
                              strides=(2, 2), padding='SAME', rhs_dilation=None),
    'nchw_dilated_valid': dict(shapes=((2, 12, 7, 7), (10, 12, 3, 3)),
                               specs=('NCHW', 'OIHW', 'NCHW'),
                               strides=(1, 1), padding='VALID',
                               rhs_dilation=(2, 1)),
}


def _conv(case, precision=None):
    def conv(lhs, rhs):
        dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, case['specs'])
        return lax.conv_general_dilated(
            lhs, rhs, case['strides'], case['padding'],
            rhs_dilation=case['rhs_dilation'], dimension_numbers=dn,
            precision=precision)
    return conv


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize('name', sorted(CONVS))
def test_three_tf32_products_are_float32_accurate(name, monkeypatch):
    case = CONVS[name]
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    lhs, rhs = (jax.random.normal(k, s) for k, s in zip(keys, case['shapes']))
    conv = _conv(case)
    params = [e for e in jax.make_jaxpr(conv)(lhs, rhs).jaxpr.eqns
              if e.primitive.name == 'conv_general_dilated'][0].params
    monkeypatch.setattr(T, 'tensor_core_operand', T.round_to_tf32)
    out, vjp = jax.vjp(T.conv_tf32x3(params), lhs, rhs)
    g = jax.random.normal(keys[2], out.shape)
    d_lhs, d_rhs = vjp(g)
    one_tf32 = conv(T.round_to_tf32(lhs), T.round_to_tf32(rhs))

    jax.config.update('jax_enable_x64', True)
    l64, r64, g64 = (jnp.asarray(np.asarray(a), jnp.float64)
                     for a in (lhs, rhs, g))
    ref, vjp64 = jax.vjp(conv, l64, r64)
    ref_lhs, ref_rhs = vjp64(g64)
    assert _rel(one_tf32, ref) > 3e-5          # TF32 is seen on this CPU
    assert _rel(out, ref) < 2e-6
    assert _rel(d_lhs, ref_lhs) < 2e-6         # the transpose, split too
    assert _rel(d_rhs, ref_rhs) < 2e-6         # exact float32
    assert out.dtype == d_lhs.dtype == jnp.float32


def test_vmapped_and_lowered_as_one_convolution_of_three_times_the_channels():
    """Vmapped over cotangents (the logits) it is the same per cotangent;
    lowered under ``highest`` its convolutions keep ``DEFAULT`` precision
    (TF32 on a GPU): the forward one reads 48 = 3 x 16 input channels, the
    transpose 24 = 3 x 8 cotangent channels."""
    case = CONVS['nhwc_stride2_same']
    lhs = jax.random.normal(jax.random.PRNGKey(2), case['shapes'][0])
    rhs = jax.random.normal(jax.random.PRNGKey(3), case['shapes'][1])
    params = [e for e in jax.make_jaxpr(_conv(case))(lhs, rhs).jaxpr.eqns
              if e.primitive.name == 'conv_general_dilated'][0].params
    conv = T.conv_tf32x3(params)
    out, vjp = jax.vjp(conv, lhs, rhs)
    gs = jax.random.normal(jax.random.PRNGKey(4), (3,) + out.shape)
    batched = jax.vmap(lambda g: vjp(g)[0])(gs)
    for i in range(3):
        np.testing.assert_allclose(batched[i], vjp(gs[i])[0], rtol=1e-6,
                                   atol=1e-6)
    text = jax.jit(lambda a, b: (conv(a, b), jax.vjp(conv, a, b)[1](out)[0])
                   ).lower(lhs, rhs).as_text()
    convs = [line for line in text.splitlines()
             if 'stablehlo.convolution' in line]
    assert len(convs) == 2
    assert all('precision DEFAULT>, #stablehlo<precision DEFAULT' in line
               for line in convs)
    assert 'tensor<3x9x9x48xf32>, tensor<3x3x48x8xf32>' in convs[0]
    assert 'tensor<3x5x5x24xf32>, tensor<3x3x16x24xf32>' in convs[1]
    assert T.supported(params, [jnp.float32, jnp.float32])
    assert not T.supported(params, [jnp.float64, jnp.float64])
    assert not T.supported(dict(params, feature_group_count=2),
                           [jnp.float32, jnp.float32])
