"""Float32 convolutions as TF32 tensor-core convolutions, three products each.

A GPU's tensor cores multiply TF32 numbers (float32's 8 exponent bits, 10 of
its 23 mantissa bits) and add the products in float32; one such convolution is
about 1e-3 relative off the float32 one. Splitting each float32 operand into a
TF32 head and a float32 tail, ``x = x_hi + x_lo`` (``x_lo`` below one TF32 unit
of ``x``), and keeping three of the four products,

    ``x * w ~ x_hi * w_hi + x_lo * w_hi + x_hi * w_lo``,

leaves an error of about ``2^-21`` relative per product against float32's
``2^-24`` (Markidis et al. 2018, "NVIDIA Tensor Core Programmability,
Performance & Precision", Sec. V; Ootomo & Yokota 2022, "Recovering single
precision accuracy from Tensor Cores while surpassing the FP32 theoretical peak
performance", Sec. 3; the same split as ``lax.DotAlgorithmPreset.
TF32_TF32_F32_X3`` gives matrix products, which XLA does not offer for
convolutions). The three products are one convolution over the operands
concatenated along their input channels (``[x_hi, x_lo, x_hi]`` against
``[w_hi; w_hi; w_lo]``), so the GPU runs one cuDNN call with three times the
input channels instead of three calls and a sum.

:func:`conv_tf32x3` does this for one ``conv_general_dilated`` and for its
transpose with respect to the input (the backward passes of
:mod:`ntkexp.structured_ntk`, ``convolutions='tf32x3'``, issue 9), whose
cotangents are split the same way. Its weight gradient stays one exact float32
convolution: the structured NTK never takes it.

Everything here is exact arithmetic around ``Precision.DEFAULT`` convolutions,
which JAX leaves to the backend: TF32 tensor cores on NVIDIA GPUs, full
float32 on the CPU (where the three products then cost three times one, and
agree with the float32 convolution up to the dropped ``x_lo * w_lo``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

#: Float32 mantissa bits below TF32's 10: cleared in the head.
TAIL_BITS = 23 - 10
_HEAD_MASK = np.uint32((0xFFFFFFFF << TAIL_BITS) & 0xFFFFFFFF)

#: The precision the three products run at (TF32 on GPUs).
TENSOR_CORE = (lax.Precision.DEFAULT, lax.Precision.DEFAULT)


def tf32_split(x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(x_hi, x_lo)``: ``x_hi`` is ``x`` with its 13 low mantissa bits
    cleared (a TF32 number, so a tensor core reads it exactly, whether it
    rounds or truncates), ``x_lo = x - x_hi`` (exact in float32, smaller than
    one TF32 unit of ``x``)."""
    bits = lax.bitcast_convert_type(x, jnp.uint32)
    hi = lax.bitcast_convert_type(bits & _HEAD_MASK, x.dtype)
    return hi, x - hi


def tensor_core_operand(x: jnp.ndarray) -> jnp.ndarray:
    """What a tensor core reads of ``x``: ``x`` itself (the hardware rounds).
    Tests replace it with :func:`round_to_tf32` to see TF32 on a CPU."""
    return x


def round_to_tf32(x: jnp.ndarray) -> jnp.ndarray:
    """``x`` rounded to the nearest TF32 number (ties away from zero), as
    ``cvt.rna.tf32.f32`` does: a CPU stand-in for a tensor core's input."""
    bits = lax.bitcast_convert_type(x, jnp.uint32)
    half = np.uint32(1 << (TAIL_BITS - 1))
    return lax.bitcast_convert_type((bits + half) & _HEAD_MASK, x.dtype)


def _three_products(x: jnp.ndarray, axis: int) -> jnp.ndarray:
    """``[x_hi, x_lo, x_hi]`` along ``axis``: the left factors."""
    hi, lo = tf32_split(x)
    return jnp.concatenate([hi, lo, hi], axis=axis)


def _weights(w: jnp.ndarray, axis: int) -> jnp.ndarray:
    """``[w_hi; w_hi; w_lo]`` along ``axis``: the right factors."""
    hi, lo = tf32_split(w)
    return jnp.concatenate([hi, hi, lo], axis=axis)


def supported(params: dict, dtypes) -> bool:
    """Whether :func:`conv_tf32x3` applies: float32 operands, no feature or
    batch groups (the channel concatenation would mix the groups)."""
    return (all(jnp.dtype(d) == jnp.float32 for d in dtypes)
            and params['feature_group_count'] == 1
            and params['batch_group_count'] == 1)


def conv_tf32x3(params: dict) -> Callable[[Any, Any], jnp.ndarray]:
    """``conv(lhs, rhs)``: ``lax.conv_general_dilated_p`` with ``params`` (a
    traced equation's), its products and its input transpose as three TF32
    tensor-core products each (module docstring).

    Args:
        params: the equation's parameters (``dimension_numbers`` a
            ``ConvDimensionNumbers``; ``precision`` is overridden).

    Returns:
        A function of ``(lhs, rhs)`` with ``jax.custom_vjp``: the cotangent of
        ``lhs`` is the transposed convolution of the split cotangent against
        the split filter (one call with three times the output channels); the
        cotangent of ``rhs`` is the exact float32 (``HIGHEST``) one.
    """
    lhs_spec, rhs_spec, out_spec = params['dimension_numbers']
    at_tensor_cores = dict(params, precision=TENSOR_CORE)
    exact = dict(params, precision=(lax.Precision.HIGHEST,) * 2)

    def products(lhs, rhs):
        return lax.conv_general_dilated_p.bind(
            tensor_core_operand(lhs), tensor_core_operand(rhs),
            **at_tensor_cores)

    @jax.custom_vjp
    def conv(lhs, rhs):
        return products(_three_products(lhs, lhs_spec[1]),
                        _weights(rhs, rhs_spec[1]))

    def forward(lhs, rhs):
        return conv(lhs, rhs), (lhs, rhs)

    def backward(residuals, g):
        lhs, rhs = residuals
        # conv(., [w_hi, w_hi, w_lo] stacked as output channels) maps lhs to
        # three copies of the output; its transpose at [g_hi, g_lo, g_hi]
        # sums T(g_hi; w_hi) + T(g_lo; w_hi) + T(g_hi; w_lo).
        filters = tensor_core_operand(_weights(rhs, rhs_spec[0]))

        def stacked(x):
            return lax.conv_general_dilated_p.bind(x, filters,
                                                   **at_tensor_cores)

        transpose = jax.linear_transpose(
            stacked, jax.ShapeDtypeStruct(lhs.shape, lhs.dtype))
        (d_lhs,) = transpose(tensor_core_operand(
            _three_products(g, out_spec[1])))
        _, weight_vjp = jax.vjp(
            lambda w: lax.conv_general_dilated_p.bind(lhs, w, **exact), rhs)
        return d_lhs, weight_vjp(g)[0]

    conv.defvjp(forward, backward)
    return conv


__all__ = ['TAIL_BITS', 'TENSOR_CORE', 'conv_tf32x3', 'round_to_tf32',
           'supported', 'tensor_core_operand', 'tf32_split']
