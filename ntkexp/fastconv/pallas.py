"""Optional Pallas kernel of the hot step: SAME convolution + ReLU, fused.

In the CNTK of a pooled network most of the work is, at full resolution, the
map ``(Sigma, Theta) -> ReLU(Conv(Sigma, Theta))`` on ``(b1 b2, H, W, H, W)``
covariances (Arora et al. 2019, Eq. 7 and 4-5). :func:`conv_relu` does it in
one pass: one program per pair and output row pair ``(h, h')`` loads the
``k^2`` shifted ``(W, W)`` planes of the zero-padded inputs, sums them, applies
the arc-cosine step with the two images' variances and writes the NNGP and NTK
planes. Everything else (first layer, pools, readout) stays in XLA
(:mod:`ntkexp.fastconv.recursion`).

Status: checked against the XLA recursion in ``interpret=True`` mode on CPU
(``tests/test_fastconv.py``). It has not been compiled or timed on a GPU yet,
so it is not selected automatically; ``model.fast_kernel=pallas`` selects it
(on CPU it runs in interpret mode, which is slow and only meant for tests).
The loaded tiles are ``(W, W)``, so on a GPU (Triton) the image side at every
stage must be a power of two (32x32 CIFAR: 32, 16, 8); other sizes use XLA.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from ntkexp.fastconv import recursion


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def conv_relu(nngp: jax.Array, ntk: jax.Array, var1: jax.Array,
              var2: jax.Array, *, k: int, scale: float, shift: float,
              alpha: float, beta: float, gamma: float,
              interpret: bool = False,
              num_warps: int = 4) -> tuple[jax.Array, jax.Array]:
    """``ReLU(Conv(.))`` of a block of pair covariances, one fused pass.

    ``Sigma' = scale S(Sigma) + shift``, ``Theta' = S(alpha Sigma + beta
    Theta) + gamma`` with ``S`` the SAME shift-sum (:func:`recursion.conv_full`),
    then the arc-cosine step (:func:`recursion.relu`) with variances ``var1``
    (rows) and ``var2`` (columns), and ``Theta'' = Theta' * dot``.

    Args:
        nngp, ntk: ``(b1, b2, H, W, H, W)`` covariances after the previous
            ReLU.
        var1, var2: ``(b1, H, W)``, ``(b2, H, W)`` pre-activation variances of
            this layer's ReLU.
        k: filter size.
        scale, shift, alpha, beta, gamma: the layer's affine constants
            (:meth:`recursion.ConvNet.conv_ntk_coeffs`).
        interpret: run the kernel in Pallas' interpreter (CPU tests).
        num_warps: Triton warps per program (GPU).

    Returns:
        ``(nngp, ntk)`` after the ReLU, same shapes.
    """
    from jax.experimental import pallas as pl  # pylint: disable=g-import-not-at-top

    b1, b2, h, w = nngp.shape[:4]
    lo, hi = recursion._same_pads(k)  # pylint: disable=protected-access
    pads = ((0, 0), (lo, hi), (lo, hi), (lo, hi), (lo, hi))
    hp, wp = h + lo + hi, w + lo + hi
    n_pad = jnp.pad(nngp.reshape(b1 * b2, h, w, h, w), pads)
    t_pad = jnp.pad(ntk.reshape(b1 * b2, h, w, h, w), pads)

    def kernel(n_ref, t_ref, v1_ref, v2_ref, n_out, t_out):
        r, c = pl.program_id(1), pl.program_id(2)
        sn = st = None
        for dh in range(k):
            for dw in range(k):
                idx = (r + dh, pl.ds(dw, w), c + dh, pl.ds(dw, w))
                a, b = n_ref[idx], t_ref[idx]
                sn = a if sn is None else sn + a
                st = b if st is None else st + b
        pre_n = scale * sn + shift
        pre_t = alpha * sn + beta * st + gamma
        prod = v1_ref[...][:, None] * v2_ref[...][None, :]
        out_n, dot = recursion.relu(pre_n, prod)
        n_out[...] = out_n.astype(n_out.dtype)
        t_out[...] = (pre_t * dot).astype(t_out.dtype)

    full = pl.BlockSpec((None, hp, wp, hp, wp), lambda p, r, c: (p, 0, 0, 0, 0))
    row1 = pl.BlockSpec((None, None, w), lambda p, r, c: (p // b2, r, 0))
    row2 = pl.BlockSpec((None, None, w), lambda p, r, c: (p % b2, c, 0))
    plane = pl.BlockSpec((None, None, w, None, w),
                         lambda p, r, c: (p, r, 0, c, 0))
    shape = jax.ShapeDtypeStruct((b1 * b2, h, w, h, w), nngp.dtype)
    params = None
    if not interpret:
        # The Triton backend: its blocks are pointers into global memory (the
        # k^2 shifted tiles are loads from L2), where Mosaic GPU would copy the
        # whole padded pair into shared memory.
        from jax.experimental.pallas import triton as pl_triton  # pylint: disable=g-import-not-at-top
        params = pl_triton.CompilerParams(num_warps=num_warps, num_stages=1)
    out_n, out_t = pl.pallas_call(
        kernel, out_shape=(shape, shape), grid=(b1 * b2, h, h),
        in_specs=[full, full, row1, row2], out_specs=(plane, plane),
        interpret=interpret, name='cntk_conv_relu', compiler_params=params,
    )(n_pad, t_pad, var1, var2)
    return (out_n.reshape(b1, b2, h, w, h, w),
            out_t.reshape(b1, b2, h, w, h, w))


def supported(net: recursion.ConvNet, height: int, width: int,
              on_gpu: bool) -> bool:
    """Whether the Pallas step can serve ``net`` on ``height x width`` images.

    Only :class:`recursion.ConvNet` recursions use the step (not the residual
    :class:`ntkexp.fastconv.residual.WideResNet`).
    """
    if not isinstance(net, recursion.ConvNet) or not net.full_spatial:
        return False
    if not on_gpu:
        return True
    h, w = height, width
    for layer in net.layers:
        if layer == recursion.POOL:
            h, w = h // net.pool, w // net.pool
        if not (_is_pow2(w) and h >= 1):
            return False
    return True


def make_conv_relu(interpret: Optional[bool] = None) -> Callable:
    """:func:`conv_relu` with ``interpret`` set (default: on CPU)."""
    if interpret is None:
        interpret = jax.default_backend() == 'cpu'
    return functools.partial(conv_relu, interpret=interpret)


def pallas_kernel_fn(kernel_fn: Callable,
                     interpret: Optional[bool] = None) -> Callable:
    """A fast ``kernel_fn`` (from :mod:`ntkexp.fastconv.select`) using Pallas.

    Args:
        kernel_fn: a ``kernel_fn`` with ``fastconv = True``.
        interpret: Pallas interpreter (default: on CPU).

    Returns:
        The same calling convention; blocks ``k(x1, x2)`` whose architecture
        and image size :func:`supported` accepts run the convolution + ReLU
        steps in Pallas, everything else as ``kernel_fn``.
    """
    from ntkexp.fastconv import select  # pylint: disable=g-import-not-at-top
    if not getattr(kernel_fn, 'fastconv', False):
        raise ValueError('pallas_kernel_fn needs a fastconv kernel_fn')
    return select.fast_kernel_fn(kernel_fn.net, kernel_fn.fallback,
                                 getattr(kernel_fn, 'check', None),
                                 conv_relu=make_conv_relu(interpret))
