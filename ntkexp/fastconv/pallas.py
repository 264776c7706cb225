"""Optional Pallas kernels of the hot step: SAME convolution + ReLU (+ pool).

In the CNTK of a pooled network most of the work is, at full resolution, the
map ``(Sigma, Theta) -> ReLU(Conv(Sigma, Theta))`` on ``(b1 b2, H, W, H, W)``
covariances (Arora et al. 2019, Eq. 7 and 4-5), followed in Myrtle by a 2x2
average pool. :func:`conv_relu` does it in one pass: one program per output
row pair ``(h, h')`` and pair loads the ``k^2`` shifted ``(W, W)`` planes of
the zero-padded inputs, sums them, applies the arc-cosine step with the two
images' variances and writes the NNGP and NTK planes; with ``pool`` one
program per *pooled* row pair evaluates the ``pool^4`` sub-grids of the window
as strided loads and writes only the pooled planes. The last step of a
CNN-GAP net is pooled 2x2 before the global mean (the same mean). Everything
else (first layer, small stages, readout) stays in XLA
(:mod:`ntkexp.fastconv.recursion`).

Status: equal to the XLA recursion (``interpret=True`` on CPU, float64, in
``tests/test_fastconv.py``) and, compiled by Triton on an H100, equal to
neural-tangents to 4e-7 (float32) and 5e-16 (float64), at the speed of the XLA
recursion, not faster (Myrtle-5 4.21x plain neural-tangents against 4.20x,
CNN-GAP 5.17x against 4.99x; ``results/bench/session3/``). So it is not
selected automatically; ``model.fast_kernel=pallas`` selects it (on CPU it runs
in interpret mode, which is slow and only meant for tests). A second design,
:mod:`ntkexp.fastconv.diagonal` (one program per diagonal of row pairs, ``k``
instead of ``k^2`` loads per output, optionally with the ReLU before the
convolution fused, and with it the first layer's product from the patches),
is exact and on an H100 no faster than XLA either (6.6x plain neural-tangents
at best for Myrtle-5, against XLA's 6.5x; ``results/bench/session14/``);
:func:`make_conv_relu`
builds either (:data:`KINDS`). Loaded tiles are
``(W / pool, W / pool)``: on a GPU (Triton) the image side at every stage must
be a power of two (32x32 CIFAR: 32, 16, 8), and tiles under
:data:`MIN_GPU_TILE` go to XLA.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from ntkexp import backend
from ntkexp.fastconv import recursion


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _xla_conv_relu(nngp, ntk, var1, var2, *, k, scale, shift, alpha, beta,
                   gamma, pool, in_vars=None):
    """The same step in XLA (:mod:`recursion`): tiles too small for Triton.
    ``in_vars``: a ReLU applied first, as in
    :func:`ntkexp.fastconv.diagonal.conv_relu_diagonal`."""
    if in_vars is not None:
        u1, u2 = in_vars
        nngp, dot = recursion.relu(nngp,
                                   recursion.block_variance_product(u1, u2))
        ntk = ntk * dot
    pre_n, pre_t = recursion.conv_step(nngp, ntk, k=k, scale=scale,
                                       shift=shift, alpha=alpha, beta=beta,
                                       gamma=gamma)
    out_n, dot = recursion.relu(pre_n,
                                recursion.block_variance_product(var1, var2))
    out_t = pre_t * dot
    if pool is not None:
        out_n = recursion.avg_pool_full(out_n, pool)
        out_t = recursion.avg_pool_full(out_t, pool)
    return out_n, out_t


# Smallest loaded tile side on a GPU: below it (e.g. the 8x8 stage of
# Myrtle, 4x4 pooled tiles) a Triton program would idle most of its threads,
# and the stage is cheap anyway, so XLA does it.
MIN_GPU_TILE = 8


def conv_relu(nngp: jax.Array, ntk: jax.Array, var1: jax.Array,
              var2: jax.Array, *, k: int, scale: float, shift: float,
              alpha: float, beta: float, gamma: float,
              pool: Optional[int] = None,
              interpret: bool = False,
              num_warps: int = 4,
              pairs_last: bool = True) -> tuple[jax.Array, jax.Array]:
    """``ReLU(Conv(.))`` of a block of pair covariances, one fused pass.

    ``Sigma' = scale S(Sigma) + shift``, ``Theta' = S(alpha Sigma + beta
    Theta) + gamma`` with ``S`` the SAME shift-sum (:func:`recursion.conv_full`),
    then the arc-cosine step (:func:`recursion.relu`) with variances ``var1``
    (rows) and ``var2`` (columns), and ``Theta'' = Theta' * dot``. With
    ``pool``, the ``AvgPool((pool, pool), strides=(pool, pool))`` that follows
    is fused too, so only the pooled covariances are written (16x less
    memory traffic at 32x32 than writing the full ones).

    Programs: one per pair and output row pair ``(h, h')``; with ``pool`` one
    per pair and *pooled* row pair ``(R, R')``, which evaluates the ``pool^4``
    sub-grids ``(pool R + a, pool j + b; pool R' + a', pool j' + b')`` as
    strided loads of the ``k^2`` shifted planes (no reshapes in registers)
    and sums them.

    Args:
        nngp, ntk: ``(b1, b2, H, W, H, W)`` covariances after the previous
            ReLU.
        var1, var2: ``(b1, H, W)``, ``(b2, H, W)`` pre-activation variances of
            this layer's ReLU.
        k: filter size.
        scale, shift, alpha, beta, gamma: the layer's affine constants
            (:meth:`recursion.ConvNet.conv_ntk_coeffs`).
        pool: window (and stride) of a fused average pool, or None.
        interpret: run the kernel in Pallas' interpreter (CPU tests).
        num_warps: Triton warps per program (GPU).
        pairs_last: order the grid ``(row, row', pair)`` (default) instead of
            ``(pair, row, row')``, so that programs launched together share
            the shifted planes of one pair (cache reuse; on an H100, 18.3
            against 21.3 us per pair for a pooled 32x32 stage, 19.1 against
            25.5 unpooled).

    Returns:
        ``(nngp, ntk)`` after the ReLU (and pool).
    """
    from jax.experimental import pallas as pl  # pylint: disable=g-import-not-at-top

    b1, b2, h, w = nngp.shape[:4]
    step = 1 if pool is None else pool
    ho, wo = h // step, w // step
    coeffs = dict(k=k, scale=scale, shift=shift, alpha=alpha, beta=beta,
                  gamma=gamma)
    if not interpret and wo < MIN_GPU_TILE:
        return _xla_conv_relu(nngp, ntk, var1, var2, pool=pool, **coeffs)
    lo, hi = recursion._same_pads(k)  # pylint: disable=protected-access
    pads = ((0, 0), (lo, hi), (lo, hi), (lo, hi), (lo, hi))
    hp, wp = h + lo + hi, w + lo + hi
    n_pad = jnp.pad(nngp.reshape(b1 * b2, h, w, h, w), pads)
    t_pad = jnp.pad(ntk.reshape(b1 * b2, h, w, h, w), pads)
    weight = 1.0 / step ** 4

    def cols(start):
        return pl.ds(start, wo) if step == 1 else pl.ds(start, wo, step)

    rc_axes = (0, 1) if pairs_last else (1, 2)

    def kernel(n_ref, t_ref, v1_ref, v2_ref, n_out, t_out):
        big_r, big_c = pl.program_id(rc_axes[0]), pl.program_id(rc_axes[1])
        acc_n = acc_t = None
        for a_r, a_c, b_r, b_c in itertools.product(range(step), repeat=4):
            r, c = big_r * step + a_r, big_c * step + a_c
            sn = st = None
            for dh in range(k):
                for dw in range(k):
                    idx = (r + dh, cols(dw + b_r), c + dh, cols(dw + b_c))
                    a, b = n_ref[idx], t_ref[idx]
                    sn = a if sn is None else sn + a
                    st = b if st is None else st + b
            pre_n = scale * sn + shift
            pre_t = alpha * sn + beta * st + gamma
            prod = (v1_ref[r, cols(b_r)][:, None] *
                    v2_ref[c, cols(b_c)][None, :])
            out_n, dot = recursion.relu(pre_n, prod)
            out_t = pre_t * dot
            acc_n = out_n if acc_n is None else acc_n + out_n
            acc_t = out_t if acc_t is None else acc_t + out_t
        if step > 1:
            acc_n, acc_t = acc_n * weight, acc_t * weight
        n_out[...] = acc_n.astype(n_out.dtype)
        t_out[...] = acc_t.astype(t_out.dtype)

    def spec(block, index):
        if pairs_last:
            return pl.BlockSpec(block, lambda r, c, p: index(p, r, c))
        return pl.BlockSpec(block, index)

    full = spec((None, hp, wp, hp, wp), lambda p, r, c: (p, 0, 0, 0, 0))
    var1_spec = spec((None, h, w), lambda p, r, c: (p // b2, 0, 0))
    var2_spec = spec((None, h, w), lambda p, r, c: (p % b2, 0, 0))
    plane = spec((None, None, wo, None, wo), lambda p, r, c: (p, r, 0, c, 0))
    grid = (ho, ho, b1 * b2) if pairs_last else (b1 * b2, ho, ho)
    shape = jax.ShapeDtypeStruct((b1 * b2, ho, wo, ho, wo), nngp.dtype)
    params = None
    if not interpret:
        # The Triton backend: its blocks are pointers into global memory (the
        # k^2 shifted tiles are loads from L1/L2), where Mosaic GPU would copy
        # the whole padded pair into shared memory.
        from jax.experimental.pallas import triton as pl_triton  # pylint: disable=g-import-not-at-top
        params = pl_triton.CompilerParams(num_warps=num_warps, num_stages=1)
    name = 'cntk_conv_relu' if pool is None else 'cntk_conv_relu_pool'
    out_n, out_t = pl.pallas_call(
        kernel, out_shape=(shape, shape), grid=grid,
        in_specs=[full, full, var1_spec, var2_spec], out_specs=(plane, plane),
        interpret=interpret, name=name, compiler_params=params,
    )(n_pad, t_pad, var1, var2)
    return (out_n.reshape(b1, b2, ho, wo, ho, wo),
            out_t.reshape(b1, b2, ho, wo, ho, wo))


def supported(net: recursion.ConvNet, height: int, width: int,
              on_gpu: bool) -> bool:
    """Whether the Pallas step can serve ``net`` on ``height x width`` images.

    Only :class:`recursion.ConvNet` recursions of ReLU networks use the step
    (not the residual nets of :mod:`ntkexp.fastconv.residual`, nor other
    activations: the step computes the ReLU's arc-cosine formulas).
    """
    if (not isinstance(net, recursion.ConvNet) or not net.full_spatial
            or net.activation != 'relu'):
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


#: Pallas steps :func:`make_conv_relu` can build: ``'rows'`` (:func:`conv_relu`,
#: one program per output row pair), ``'diagonal'``
#: (:func:`ntkexp.fastconv.diagonal.conv_relu_diagonal`, one program per
#: diagonal of row pairs), ``'diagonal_relu_in'`` (the same, with the ReLU
#: before the convolution fused too), ``'diagonal_patches'`` (the same
#: again, with the first layer's product computed in the kernel from the
#: images' patches), ``'diagonal_patches_tf32x3'`` (that product as three
#: TF32 tensor-core products on a GPU, ``product_precision='tf32x3'``) and
#: ``'diagonal_first'`` (``'diagonal'`` after a step of its own for the first
#: layer's product and ReLU, :func:`ntkexp.fastconv.first_relu.first_relu`,
#: which writes the padded covariances the diagonal step reads) and
#: ``'diagonal_first_masked'`` (the same with no padding stored: every step
#: writes unpadded covariances and the next masks its loads,
#: ``conv_relu_diagonal(..., masked=True)``), and
#: ``'diagonal_first_masked_tail'`` (the same, with a network's last
#: ``Conv -> ReLU`` and its global average pool fused into the step before,
#: ``conv_relu_diagonal(..., tail=...)``: CNN-GAP).
KINDS = ('rows', 'diagonal', 'diagonal_relu_in', 'diagonal_patches',
         'diagonal_patches_tf32x3', 'diagonal_first', 'diagonal_first_masked',
         'diagonal_first_masked_tail')

#: Triton warps per program of the diagonal kinds' steps when not given. On
#: the H100 the two diagonal kinds timed with both ran faster with 8 than
#: with 4 (``diagonal`` 6.62x plain neural-tangents against 5.77x,
#: ``diagonal_relu_in`` 3.91x against 3.30x; results/bench/session14/),
#: which the roofline model does not see (it puts 8 at +0.3%): compiled for
#: an H100, 4 warps take 168-255 registers a thread, so an SM holds 8-12 of
#: their warps, 8 warps 99-128 registers, 16 resident warps
#: (results/bench/session19/). The first layer's step
#: (:func:`ntkexp.fastconv.first_relu.first_relu`) keeps its own 4: 36-48
#: resident warps either way, and 4 run fewer instructions in the model.
DIAGONAL_NUM_WARPS = 8


def default_num_warps(kind: str) -> int:
    """The Triton warps per program a step of ``kind`` (:data:`KINDS`) runs
    when ``num_warps`` is not given: :func:`conv_relu`'s own for ``'rows'``,
    :data:`DIAGONAL_NUM_WARPS` for the diagonal kinds."""
    if kind == 'rows':
        return inspect.signature(conv_relu).parameters['num_warps'].default
    return DIAGONAL_NUM_WARPS


def make_conv_relu(interpret: Optional[bool] = None, kind: str = 'rows',
                   **options) -> Callable:
    """A Pallas step of :data:`KINDS` with ``interpret`` set (default: on CPU)
    and any of its other keyword ``options`` (``num_warps``, ``pairs_last``
    for ``'rows'``, ``carry_sums`` for the diagonal kinds). The diagonal
    kinds' steps run :func:`default_num_warps` (:data:`DIAGONAL_NUM_WARPS`)
    unless ``num_warps`` says otherwise; their first layer's step
    (``diagonal_first*``) always runs its own default.

    The returned function has the signature of :func:`conv_relu`; its
    attribute ``fuses_input_relu`` tells :func:`recursion.pair_kernels`
    whether to hand it the ReLU before the convolution too (keyword
    ``in_vars``), and ``fuses_input_product`` whether to hand it the first
    layer's patches instead of their product (keyword ``input_patches``), and
    ``takes_padded`` whether it takes covariances that already carry the
    convolution's zero padding (keyword ``padded``), ``first_relu``
    (None or a function) the step that computes the first layer's product
    and ReLU (:func:`ntkexp.fastconv.first_relu.first_relu`), and
    ``masks_padding`` whether that step and this one store no padding (the
    step masks its loads instead), and ``fuses_gap_tail`` whether it takes
    a last ``Conv -> ReLU -> GlobalAvgPool`` too (keyword ``tail``). It
    also records its ``kind`` and the ``num_warps`` its steps run.
    """
    if kind not in KINDS:
        raise ValueError(f'Pallas step kind={kind!r}: expected one of {KINDS}')
    if interpret is None:
        interpret = backend.target_backend() == 'cpu'
    masks_padding = kind.startswith('diagonal_first_masked')
    if kind == 'rows':
        step = functools.partial(conv_relu, interpret=interpret, **options)
    else:
        from ntkexp.fastconv import diagonal  # pylint: disable=g-import-not-at-top
        if kind == 'diagonal_patches_tf32x3':
            options = dict(options, product_precision='tf32x3')
        if masks_padding:
            options = dict(options, masked=True)
        options = {'num_warps': default_num_warps(kind), **options}
        step = functools.partial(diagonal.conv_relu_diagonal,
                                 interpret=interpret, **options)
    step.kind = kind
    step.num_warps = step.keywords.get('num_warps', default_num_warps(kind))
    step.first_relu = None
    step.masks_padding = masks_padding
    step.fuses_gap_tail = kind == 'diagonal_first_masked_tail'
    if kind.startswith('diagonal_first'):
        from ntkexp.fastconv import first_relu  # pylint: disable=g-import-not-at-top
        step.first_relu = functools.partial(
            first_relu.first_relu, interpret=interpret,
            padded=not step.masks_padding)
    step.fuses_input_product = kind.startswith('diagonal_patches')
    # Covariances that carry the SAME padding (recursion.PADDED_FIRST_LAYER)
    # go to the diagonal step as they are (keyword ``padded``).
    step.takes_padded = kind in ('diagonal', 'diagonal_first')
    # diagonal_first's steps also write their outputs padded for the next
    # step (keyword ``pad_output``).
    step.pads_output = kind == 'diagonal_first'
    step.fuses_input_relu = step.fuses_input_product or kind == 'diagonal_relu_in'
    return step


def pallas_kernel_fn(kernel_fn: Callable, interpret: Optional[bool] = None,
                     **options) -> Callable:
    """A fast ``kernel_fn`` (from :mod:`ntkexp.fastconv.select`) using Pallas.

    Args:
        kernel_fn: a ``kernel_fn`` with ``fastconv = True``.
        interpret: Pallas interpreter (default: on CPU).
        **options: passed to :func:`make_conv_relu` (``kind``,
            ``num_warps``, ``pairs_last``, ``carry_sums``).

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
                                 conv_relu=make_conv_relu(interpret, **options))
