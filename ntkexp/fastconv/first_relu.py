"""A Pallas step for a CNTK's first layer: its product, affine map and ReLU.

The first convolution of the CNTK needs no recursion: its unnormalised
covariance is the product of the two images' patches (Arora et al. 2019,
Eq. 7), ``raw[a, b] = <patch_a(x), patch_b(x')>``, and its NNGP and NTK are
affine in it (``s1 raw + s0``, ``a1 raw + a0``). XLA computes that product
(a matrix product) and then the ReLU after it (Arora et al. 2019, Eq. 4-5) as
a second kernel that reads the product back; compiled for an H100, the two
are 6.5 of the 11.1 us per pair that the Pallas ``diagonal`` path takes for
Myrtle-5 (``results/bench/session15/``, ``session16/``).

:func:`first_relu` does both in one kernel, one program per pair and pair of
(padded) rows: a ``(W, F) x (F, W)`` product of the two rows' patches, the
affine map, the ReLU, and the two ``(W, W)`` tiles written straight into the
zero-padded layout the next convolution's ``diagonal`` step reads
(:data:`ntkexp.fastconv.recursion.PADDED_FIRST_LAYER`), the padding written
as zeros. Only the ReLU's outputs are written; the product is never stored.
With ``padded=False`` (kind ``diagonal_first_masked``) it writes no padding:
one program per pair of image rows, for a ``diagonal`` step that masks its
loads (``conv_relu_diagonal(..., masked=True)``).

On a GPU (Triton) the product runs in IEEE float32 (``Precision.HIGHEST``:
fused multiply-adds, not TF32), the image side must be a power of two, and
sides under :data:`ntkexp.fastconv.pallas.MIN_GPU_TILE` go to XLA.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from ntkexp.fastconv import recursion


def _xla_first_relu(pt1, pt2, var1, var2, *, k, affine, padded=True):
    """The same in XLA (the recursion's first layer, padded as
    :data:`recursion.PADDED_FIRST_LAYER` or not): tiles too small for
    Triton, and the reference of the tests."""
    s1, s0, a1, a0 = affine
    if padded:
        pt1, pt2, var1_in, var2_in = (recursion.pad_images(a, k)
                                      for a in (pt1, pt2, var1, var2))
    else:
        var1_in, var2_in = var1, var2
    raw = recursion._block_first(pt1, pt2)  # pylint: disable=protected-access
    prod = recursion.block_variance_product(var1_in, var2_in)
    nngp, dot = recursion.relu(s1 * raw + s0, prod)
    ntk = (a1 * raw + a0) * dot
    if not padded:
        return nngp, ntk
    inside = recursion._padding_mask(var1.shape[1:], k)[0]  # pylint: disable=protected-access
    keep = inside[:, :, None, None] & inside[None, None]
    return jnp.where(keep, nngp, 0.), jnp.where(keep, ntk, 0.)


def first_relu(pt1: jax.Array, pt2: jax.Array, var1: jax.Array,
               var2: jax.Array, *, k: int, affine: Sequence[float],
               padded: bool = True, interpret: bool = False,
               num_warps: int = 4) -> tuple[jax.Array, jax.Array]:
    """``ReLU`` of the first layer's NNGP and NTK of a block of pairs.

    Args:
        pt1, pt2: ``(b1, H, W, F)``, ``(b2, H, W, F)`` first-layer patches
            (``F = k^2 C``; :func:`recursion.patches`).
        var1, var2: ``(b1, H, W)``, ``(b2, H, W)`` pre-activation variances
            of the ReLU (:func:`recursion.self_variances`, the first).
        k: the next convolution's filter side (its SAME padding).
        affine: ``(s1, s0, a1, a0)``: NNGP ``s1 raw + s0``, NTK ``a1 raw +
            a0`` of the product ``raw``.
        padded: write the outputs zero-padded for the next convolution
            (what the ``diagonal`` step takes with ``padded=True``); False:
            unpadded, for a step that masks its loads instead
            (``conv_relu_diagonal(..., masked=True)``).
        interpret: run in Pallas' interpreter (CPU tests).
        num_warps: Triton warps per program (GPU).

    Returns:
        ``(nngp, ntk)`` after the ReLU, ``(b1, b2, H + k - 1, W + k - 1,
        H + k - 1, W + k - 1)``, zero on the padding: what
        :func:`ntkexp.fastconv.diagonal.conv_relu_diagonal` takes with
        ``padded=True``; with ``padded=False``, ``(b1, b2, H, W, H, W)``.
    """
    from jax.experimental import pallas as pl  # pylint: disable=g-import-not-at-top
    from ntkexp.fastconv import diagonal, pallas  # pylint: disable=g-import-not-at-top

    b1, b2, h, w = var1.shape[0], var2.shape[0], *var1.shape[1:]
    if not interpret and w < pallas.MIN_GPU_TILE:
        return _xla_first_relu(pt1, pt2, var1, var2, k=k, affine=affine,
                               padded=padded)
    lo, hi = recursion._same_pads(k) if padded else (0, 0)  # pylint: disable=protected-access
    hp, wp = h + lo + hi, w + lo + hi
    s1, s0, a1, a0 = affine
    patches = [diagonal._feature_padded(p) for p in (pt1, pt2)]  # pylint: disable=protected-access
    features = patches[0].shape[-1]
    _, pad_cols, cover = diagonal.padding_layout(h, w, lo, hi)

    def kernel(p1_ref, p2_ref, v1_ref, v2_ref, n_out, t_out):
        i, i2 = pl.program_id(1), pl.program_id(2)
        dtype = n_out.dtype

        def image_rows():
            cols = pl.ds(0, w)
            raw = jax.lax.dot_general(
                p1_ref[i - lo, cols, :], p2_ref[i2 - lo, cols, :],
                (((1,), (1,)), ((), ())), precision=jax.lax.Precision.HIGHEST)
            prod = (v1_ref[i - lo, cols][:, None] *
                    v2_ref[i2 - lo, cols][None, :])
            nngp, dot = recursion.relu(s1 * raw + s0, prod)
            ntk = (a1 * raw + a0) * dot
            n_out[i, pl.ds(lo, w), i2, pl.ds(lo, w)] = nngp.astype(dtype)
            t_out[i, pl.ds(lo, w), i2, pl.ds(lo, w)] = ntk.astype(dtype)
            diagonal.zero_padded_columns((n_out, t_out), i, i2, pad_cols,
                                         cover, w)

        if not padded:
            image_rows()
            return
        inside = (i >= lo) & (i < lo + h) & (i2 >= lo) & (i2 < lo + h)

        @pl.when(jnp.logical_not(inside))
        def _padding_rows():
            diagonal.zero_row_pair((n_out, t_out), i, i2, cover, w)

        pl.when(inside)(image_rows)

    def pair_spec(block, index):
        return pl.BlockSpec(block, lambda p, r, r2: index(p))

    specs = [pair_spec((None, h, w, features), lambda p: (p // b2, 0, 0, 0)),
             pair_spec((None, h, w, features), lambda p: (p % b2, 0, 0, 0)),
             pair_spec((None, h, w), lambda p: (p // b2, 0, 0)),
             pair_spec((None, h, w), lambda p: (p % b2, 0, 0))]
    out_spec = pair_spec((None, hp, wp, hp, wp), lambda p: (p, 0, 0, 0, 0))
    shape = jax.ShapeDtypeStruct((b1 * b2, hp, wp, hp, wp), var1.dtype)
    params = None
    if not interpret:
        from jax.experimental.pallas import triton as pl_triton  # pylint: disable=g-import-not-at-top
        params = pl_triton.CompilerParams(num_warps=num_warps, num_stages=1)
    nngp, ntk = pl.pallas_call(
        kernel, out_shape=(shape, shape), grid=(b1 * b2, hp, hp),
        in_specs=specs, out_specs=(out_spec, out_spec), interpret=interpret,
        name='cntk_first_relu', compiler_params=params,
    )(*patches, var1, var2)
    return (nngp.reshape(b1, b2, hp, wp, hp, wp),
            ntk.reshape(b1, b2, hp, wp, hp, wp))


__all__ = ['first_relu']
