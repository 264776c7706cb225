"""A Pallas step that walks the pair covariance along its diagonals.

The SAME convolution of the CNTK shifts *both* images' positions by the same
filter offset (Arora et al. 2019, Eq. 7): ``S(Sigma)[r, c, r', c'] = sum_{dh,
dw} Sigma[r + dh, c + dw, r' + dh, c' + dw]`` (zero-padded). Along a diagonal
of row pairs ``r' - r = delta`` the row shift ``dh`` never leaves the
diagonal, so one program per pair and diagonal can walk down it keeping the
last ``k - 1`` column-shifted sums ``s(i, i + delta) = sum_dw Sigma[i, . + dw,
i + delta, . + dw]`` in registers:

* every padded row pair ``(i, i')`` of the input is loaded by one program only
  (the rows kernel :func:`ntkexp.fastconv.pallas.conv_relu` loads each ``k^2``
  times, in separate programs, so through L2), as ``k`` contiguous ``(W, W)``
  tiles shifted by ``dw`` (no strided loads);
* ``S`` then costs ``k`` tile loads per output row pair instead of ``k^2``;
* with ``pool`` the program walks pooled row pairs: the ``pool^2`` row pairs of
  a window lie on three neighbouring diagonals (for ``pool = 2``), their
  column-shifted sums are carried from one window to the next in the same
  way, and the columns are pooled in registers (a reshape and a sum), so only
  the pooled covariances are written;
* with ``in_vars`` the ReLU *before* the convolution is applied to each loaded
  tile (its variances padded with zeros, which makes the ReLU of the padding
  exactly 0), so the post-ReLU covariances of that layer are never written
  either: for Myrtle's 32x32 stage the whole ``ReLU -> conv -> ReLU -> pool``
  is one pass from the first layer's covariance to the pooled one;
* with ``input_patches`` (kind ``diagonal_patches``) that covariance is not
  read either but computed in the kernel from the two images' patches, one
  ``(W, F) x (F, W)`` matrix product per loaded tile: Myrtle's 32x32 stage
  then reads only the patches (``34 x 34 x 32`` floats per image) and writes
  the pooled covariances.

It computes exactly what :func:`ntkexp.fastconv.pallas.conv_relu` does (the
shift-sum in another order; equal to 1e-13 in float64, tested in interpret
mode) and lowers to Triton for CUDA (tested without a GPU). Its speed on a
GPU has not been measured yet: ``python -m ntkexp.fastconv.bench --pallas
--pallas-kinds diagonal,diagonal_relu_in,diagonal_patches`` times it there.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from ntkexp.fastconv import pallas, recursion


#: Precisions of the in-kernel first-layer products (``input_patches``).
PRODUCT_PRECISIONS = ('highest', 'tf32x3')


@dataclasses.dataclass(frozen=True)
class GapTail:
    """A last ``Conv -> ReLU`` and the ``GlobalAvgPool`` readout after a
    :func:`conv_relu_diagonal` step, fused into it (``tail``).

    Attributes:
        var1, var2: ``(b1, H, W)``, ``(b2, H, W)`` pre-activation variances
            of the last ReLU.
        scale, shift, alpha, beta, gamma: the last convolution's constants
            (:meth:`recursion.ConvNet.conv_ntk_coeffs`), as the step's.
    """
    var1: jax.Array
    var2: jax.Array
    scale: float
    shift: float
    alpha: float
    beta: float
    gamma: float


def _window_keys(step: int, k: int) -> list[tuple[int, int]]:
    """Padded row offsets ``(x, x')`` of the column-shifted sums one window of
    ``step x step`` output row pairs needs: ``(a + dh, a' + dh)``."""
    keys = {(a + dh, b + dh) for a in range(step) for b in range(step)
            for dh in range(k)}
    return sorted(keys)


def _carried_keys(step: int, k: int) -> list[tuple[int, int]]:
    """Keys of the next window (offsets ``- step``) this window computes."""
    keys = set(_window_keys(step, k))
    return [key for key in sorted(keys)
            if key[0] >= step and key[1] >= step
            and (key[0] - step, key[1] - step) in keys]


def conv_relu_diagonal(nngp: jax.Array, ntk: Optional[jax.Array],
                       var1: jax.Array, var2: jax.Array, *, k: int,
                       scale: float, shift: float, alpha: float, beta: float,
                       gamma: float, pool: Optional[int] = None,
                       in_vars: Optional[Sequence[jax.Array]] = None,
                       padded: bool = False,
                       input_affine: Optional[Sequence[float]] = None,
                       input_patches: Optional[Sequence[jax.Array]] = None,
                       interpret: bool = False, num_warps: int = 4,
                       carry_sums: bool = True,
                       product_precision: str = 'highest',
                       pad_output: bool = False, masked: bool = False,
                       tail: Optional[GapTail] = None
                       ) -> tuple[jax.Array, jax.Array]:
    """``ReLU(Conv(.))`` (+ pool) of a block of pair covariances, by diagonals.

    The same map as :func:`ntkexp.fastconv.pallas.conv_relu` (see there for
    the constants), optionally preceded by a ReLU: with ``in_vars = (u1,
    u2)``, ``nngp`` and ``ntk`` are that ReLU's *pre-activation* covariances
    and ``u1``, ``u2`` its per-image variances, and the step computes
    ``ReLU(Conv(ReLU(.)))`` (Arora et al. 2019, Eq. 4-7, twice).

    For the first layer of a network (:func:`recursion.pair_kernels`) the
    input can come as it leaves the first layer's matrix product: already
    zero-padded by the SAME pads (``padded``, the padding computed by the
    product itself from zero patches, so no pass of its own), and as one array
    ``raw`` with ``input_affine = (s1, s0, a1, a0)``: ``nngp = s1 raw + s0``,
    ``ntk = a1 raw + a0`` (``ntk`` None), so that only one covariance is read.
    The padding is then masked to 0 after the affine map.

    With ``input_patches = (p1, p2)`` (kind ``diagonal_patches``) even
    ``raw`` is never read: each program computes its tiles of it as the
    matrix products ``p1[i, c + dw] . p2[i', c' + dw]`` of the two images'
    zero-padded first-layer patches (``(b, H + k - 1, W + k - 1, F)``,
    ``F = k^2 C``), so Myrtle's whole 32x32 stage reads only the patches and
    writes the pooled covariances. ``nngp`` and ``ntk`` are then None. Each
    product tile is computed once per program (``k`` per output row pair
    with carried sums), in the precision of ``jax.lax.Precision.HIGHEST``
    (IEEE float32 on a GPU, not TF32), or with ``product_precision='tf32x3'``
    as three TF32 tensor-core products (``DotAlgorithmPreset.TF32_TF32_F32_X3``:
    each float32 factor split into a TF32 head and tail, ``hi hi + hi lo + lo
    hi``, float32 sums; about ``2^-21`` relative per product, so within the
    1e-5 the float32 kernels are held to). Only the GPU has that algorithm:
    float64 inputs and the interpreter keep ``HIGHEST``.

    Args:
        nngp, ntk: ``(b1, b2, H, W, H, W)`` covariances (with ``padded``,
            ``(b1, b2, H + k - 1, W + k - 1, H + k - 1, W + k - 1)``);
            with ``input_affine``, ``nngp`` is ``raw`` and ``ntk`` None.
        var1, var2: ``(b1, H, W)``, ``(b2, H, W)`` pre-activation variances of
            the ReLU after the convolution.
        k, scale, shift, alpha, beta, gamma: the convolution's constants
            (:meth:`recursion.ConvNet.conv_ntk_coeffs`).
        pool: window (and stride) of a fused average pool, or None.
        in_vars: ``(u1, u2)`` variances of a ReLU applied first, or None
            (padded like the covariances with ``padded``).
        padded: inputs come zero-padded.
        input_affine: ``(s1, s0, a1, a0)``, see above, or None.
        input_patches: ``(p1, p2)`` padded first-layer patches of the two
            sides, see above, or None (needs ``padded``, ``input_affine``
            and ``in_vars``).
        interpret: run in Pallas' interpreter (CPU tests).
        num_warps: Triton warps per program (GPU).
        carry_sums: carry the column-shifted sums from one window to the
            next (``k`` tile loads per output row pair); False recomputes
            them (``k^2``, fewer registers held across the loop).
        product_precision: ``'highest'`` or ``'tf32x3'`` for the products
            of ``input_patches`` (above).
        pad_output: write the outputs zero-padded by the SAME pads of a
            ``k x k`` convolution, for a next step that takes ``padded``
            (no pad pass between the two).
        masked: the inputs ``nngp``, ``ntk`` come unpadded and the
            convolution's zero padding is the mask of the loads (masked
            lanes load nothing and read as 0): no pad pass and no padding
            stored between two steps (27% more entries than ``32^4`` at
            32x32). Not with ``padded``, ``in_vars``, ``input_affine`` or
            ``input_patches``.
        tail: with ``masked`` and no ``pool``, a last ``Conv -> ReLU`` and
            the global mean (:class:`GapTail`) in the same program: each
            program walks its diagonal once, computing this step's output
            row pairs in order into a ring of ``max(2, hi + 1)`` row pairs
            per program (an output used as scratch; Triton barriers between its
            writes and reads), from which the tail's convolution reads its
            column-shifted tiles (the tail's row shift stays on the diagonal
            too). Only the sums of the tail's ReLU outputs leave the
            program; the step's own output is never stored whole.

    Returns:
        ``(nngp, ntk)`` after the ReLU (and pool), unpadded, or with
        ``pad_output`` padded: ``(b1, b2, Ho + k - 1, Wo + k - 1, Ho + k - 1,
        Wo + k - 1)``, zero on the padding; with ``tail``, the global means
        of the tail's ReLU outputs, ``(b1, b2, 1, 1, 1, 1)``.
    """
    from jax.experimental import pallas as pl  # pylint: disable=g-import-not-at-top
    from jax.experimental.pallas import triton as pl_triton  # pylint: disable=g-import-not-at-top

    if product_precision not in PRODUCT_PRECISIONS:
        raise ValueError(f'product_precision={product_precision!r}: expected '
                         f'one of {PRODUCT_PRECISIONS}')
    lo, hi = recursion._same_pads(k)     # pylint: disable=protected-access
    b1, b2, h, w = var1.shape[0], var2.shape[0], *var1.shape[1:]
    pairs = b1 * b2
    step = 1 if pool is None else pool
    ho, wo = h // step, w // step
    if input_patches is not None and not (
            padded and input_affine is not None and in_vars is not None):
        raise ValueError('input_patches needs padded=True, input_affine '
                         'and in_vars (the first ReLU -> conv -> ReLU)')
    if masked and (padded or pad_output or in_vars is not None
                   or input_affine is not None or input_patches is not None):
        raise ValueError('masked=True takes unpadded covariances after a '
                         'ReLU: not with padded, pad_output, in_vars, '
                         'input_affine or input_patches')
    if tail is not None and not (masked and pool is None):
        raise ValueError('tail needs masked=True and no pool')
    if not interpret and wo < pallas.MIN_GPU_TILE:
        if input_patches is not None:
            nngp = recursion._block_first(*input_patches)  # pylint: disable=protected-access
        nngp, ntk, in_vars = _unpadded(nngp, ntk, in_vars, padded,
                                       input_affine, lo, h, w)
        out = pallas._xla_conv_relu(  # pylint: disable=protected-access
            nngp, ntk, var1, var2, k=k, scale=scale, shift=shift,
            alpha=alpha, beta=beta, gamma=gamma, pool=pool, in_vars=in_vars)
        if pad_output:
            out = tuple(jnp.pad(a, ((0, 0),) * 2 + ((lo, hi),) * 4)
                        for a in out)
        if tail is not None:
            out = pallas._xla_conv_relu(  # pylint: disable=protected-access
                *out, tail.var1, tail.var2, k=k, scale=tail.scale,
                shift=tail.shift, alpha=tail.alpha, beta=tail.beta,
                gamma=tail.gamma, pool=None)
            out = tuple(jnp.mean(a, axis=(-4, -3, -2, -1), keepdims=True)
                        for a in out)
        return out
    precision = jax.lax.Precision.HIGHEST
    if (product_precision == 'tf32x3' and not interpret
            and var1.dtype == jnp.float32):
        precision = jax.lax.DotAlgorithmPreset.TF32_TF32_F32_X3
    wc = wo * step                       # columns that reach the output
    hp, wp = h + lo + hi, w + lo + hi
    if input_affine is not None:
        ntk = None
    if input_patches is not None:
        args = [_feature_padded(p) for p in input_patches]
    elif masked:
        args = [x.reshape(pairs, h, w, h, w) for x in (nngp, ntk)]
    else:
        args = [x if padded else jnp.pad(x, ((0, 0),) * 2 + ((lo, hi),) * 4)
                for x in (nngp, ntk) if x is not None]
        args = [x.reshape(pairs, hp, wp, hp, wp) for x in args]
    relu_in = in_vars is not None
    if relu_in:
        args += [u if padded else recursion.pad_images(u, k) for u in in_vars]
    args += [var1, var2]
    if tail is not None:
        args += [tail.var1, tail.var2]
    # The tail's ring of row pairs: each row is read once, right after the
    # barrier that follows its write, and overwritten ``slots`` rows later,
    # after at least one more barrier (so at least 2 slots, for k = 1).
    slots = max(2, hi + 1)
    carried = _carried_keys(step, k) if carry_sums else []
    incoming = [(x - step, y - step) for x, y in carried]
    weight = 1.0 / step ** 4
    # The output's padding (pad_output): offset of the image, padded sides,
    # the column offsets of wo-wide tiles covering a padded row, the padded
    # rows and columns outside the image.
    olo = lo if pad_output else 0
    hop, wop = (ho + lo + hi, wo + lo + hi) if pad_output else (ho, wo)
    pad_rows, pad_cols, cover = (padding_layout(ho, wo, lo, hi) if pad_output
                                 else ([], [], [0]))

    def kernel(*refs):
        refs = list(refs)
        if input_patches is not None:
            p1_ref, p2_ref = refs.pop(0), refs.pop(0)
        else:
            n_ref = refs.pop(0)
        t_ref = None if input_affine is not None else refs.pop(0)
        u1_ref, u2_ref = (refs.pop(0), refs.pop(0)) if relu_in else (None,
                                                                      None)
        v1_ref, v2_ref = refs.pop(0), refs.pop(0)
        if tail is not None:
            w1_ref, w2_ref, n_out, t_out, ring = refs
        else:
            n_out, t_out = refs
        delta = pl.program_id(1) - (hop - 1)
        first = jnp.maximum(0, -delta)
        last = jnp.minimum(ho, ho - delta)

        def inside(i, size):
            return (i >= lo) & (i < lo + size)

        def load(i, i2, dw):
            """The (ReLU'd) ``(wc, wc)`` tiles of padded rows ``(i, i2)``,
            columns shifted by ``dw``."""
            cols = pl.ds(dw, wc)
            if masked:
                return (masked_tile(n_ref, i, i2, dw),
                        masked_tile(t_ref, i, i2, dw))
            if input_patches is not None:
                a = jax.lax.dot_general(
                    p1_ref[i, cols, :], p2_ref[i2, cols, :],
                    (((1,), (1,)), ((), ())), precision=precision)
            else:
                a = n_ref[i, cols, i2, cols]
            if input_affine is not None:
                s1, s0, a1, a0 = input_affine
                a, b = s1 * a + s0, a1 * a + a0
            else:
                b = t_ref[i, cols, i2, cols]
            if relu_in:
                prod = u1_ref[i, cols][:, None] * u2_ref[i2, cols][None, :]
                a, dot = recursion.relu(a, prod)
                b = b * dot
            if input_affine is not None:
                c = inside(jax.lax.iota(jnp.int32, wc) + dw, w)
                keep = (c[:, None] & c[None, :]) & (inside(i, h) &
                                                    inside(i2, h))
                a, b = jnp.where(keep, a, 0.), jnp.where(keep, b, 0.)
            return a, b

        def shifted_columns(dw, valid):
            """Indices of both images' columns of a ``(wc, wc)`` tile
            shifted by ``dw`` in an unpadded layout, and the mask of its
            entries inside the image (and ``valid``, a scalar). Masked lanes
            load nothing (their indices may point one past the row: never
            read); unshifted columns are a plain slice (aligned loads)."""
            if dw == lo:
                cols = pl.ds(0, wc)
                return cols, cols, jnp.broadcast_to(valid, (wc, wc))
            c = jax.lax.iota(jnp.int32, wc) + (dw - lo)
            ok = (c >= 0) & (c < w)
            return c[:, None], c[None, :], (ok[:, None] & ok[None, :]) & valid

        def masked_tile(ref, i, i2, dw):
            """The ``(wc, wc)`` tile of padded rows ``(i, i2)``, columns
            shifted by ``dw``, from the unpadded ``ref``: 0 on the padding
            (rows clamped into the image)."""
            r, r2 = i - lo, i2 - lo
            cols, cols2, keep = shifted_columns(
                dw, (r >= 0) & (r < h) & (r2 >= 0) & (r2 < h))
            index = (jnp.clip(r, 0, h - 1), cols, jnp.clip(r2, 0, h - 1), cols2)
            return pl_triton.load(ref.at[index], mask=keep, other=0.)

        def column_sums(load_pair, a_coeff, b_coeff):
            """``sum_dw`` of the tiles ``load_pair(dw) = (Sigma, Theta)``:
            the NNGP and a convolution's NTK input ``a_coeff Sigma + b_coeff
            Theta``."""
            acc_n = acc_x = None
            for dw in range(k):
                a, b = load_pair(dw)
                x = a_coeff * a + b_coeff * b
                acc_n = a if acc_n is None else acc_n + a
                acc_x = x if acc_x is None else acc_x + x
            return acc_n, acc_x

        def tail_walk(window_tiles, variance_product, first, last, delta,
                      w1_ref, w2_ref, n_out, t_out, ring):
            """The step's output row pairs ``j`` of this diagonal, in order,
            each written to ring slot ``j % slots``; the tail's output row
            pair ``r`` once rows ``r - lo .. r + hi`` are there. Rows
            outside ``[first, last)`` read as 0 (masks), so the walk may
            compute past the end."""
            def barrier():
                if not interpret:      # programs run one by one there
                    pl_triton.debug_barrier()

            def store(j, tiles):
                slot = j % slots
                for which, tile in enumerate(tiles):
                    ring[slot, which] = tile.astype(ring.dtype)

            def ring_sums(x):
                """The tail's column-shifted sums of ring row ``x`` (0
                outside ``[first, last)``)."""
                slot = jnp.maximum(x, 0) % slots

                def ring_pair(dw):
                    cols, cols2, keep = shifted_columns(
                        dw, (x >= first) & (x < last))
                    # (an array index: the interpreter's slice path takes
                    # no Python int beside a slice)
                    return tuple(pl_triton.load(
                        ring.at[slot, jnp.int32(which), cols, cols2],
                        mask=keep, other=0.) for which in (0, 1))
                return column_sums(ring_pair, tail.alpha, tail.beta)

            carry_a = tuple(shifted_sum(first + x, first + delta + y)
                            for x, y in incoming)
            for t in range(hi):            # rows first .. first + hi - 1
                n_t, t_t, carry_a = window_tiles(first + t,
                                                 zip(incoming, carry_a))
                store(first + t, (n_t, t_t))
            barrier()
            carry_b = tuple(ring_sums(first - lo + t) for t in range(k - 1))
            zeros = jnp.zeros((wc, wc), n_out.dtype)

            def body(r, state):
                carry_a, carry_b, tot_n, tot_t = state
                n_t, t_t, carry_a = window_tiles(r + hi,
                                                 zip(incoming, carry_a))
                store(r + hi, (n_t, t_t))
                barrier()
                rows = carry_b + (ring_sums(r + hi),)
                sn = sum((row[0] for row in rows[1:]), rows[0][0])
                sx = sum((row[1] for row in rows[1:]), rows[0][1])
                prod = variance_product(w1_ref, w2_ref, r, r + delta)
                out_n, dot = recursion.relu(tail.scale * sn + tail.shift,
                                            prod)
                out_t = (sx + tail.gamma) * dot
                return carry_a, rows[1:], tot_n + out_n, tot_t + out_t

            _, _, tot_n, tot_t = jax.lax.fori_loop(
                first, last, body, (carry_a, carry_b, zeros, zeros))
            n_out[...] = jnp.sum(tot_n).astype(n_out.dtype)
            t_out[...] = jnp.sum(tot_t).astype(t_out.dtype)

        def shifted_sum(i, i2):
            """``sum_dw`` of the tiles of padded rows ``(i, i2)``
            (:func:`column_sums`)."""
            return column_sums(lambda dw: load(i, i2, dw), alpha, beta)

        def window_tiles(big_r, sums):
            """This step's output tiles at (pooled) row pair ``(big_r,
            big_r + delta)``, and the sums carried to the next."""
            big_r2 = big_r + delta
            sums = dict(sums)

            def get(key):
                # Computed where first needed (shorter live ranges).
                if key not in sums:
                    sums[key] = shifted_sum(step * big_r + key[0],
                                            step * big_r2 + key[1])
                return sums[key]

            acc_n = acc_t = None
            for a in range(step):
                for b in range(step):
                    sn = sx = None
                    for dh in range(k):
                        pn, px = get((a + dh, b + dh))
                        sn = pn if sn is None else sn + pn
                        sx = px if sx is None else sx + px
                    prod = variance_product(v1_ref, v2_ref, step * big_r + a,
                                            step * big_r2 + b)
                    out_n, dot = recursion.relu(scale * sn + shift, prod)
                    out_t = (sx + gamma) * dot
                    acc_n = out_n if acc_n is None else acc_n + out_n
                    acc_t = out_t if acc_t is None else acc_t + out_t
            if step > 1:
                acc_n = acc_n.reshape(wo, step, wo, step).sum(axis=(1, 3))
                acc_t = acc_t.reshape(wo, step, wo, step).sum(axis=(1, 3))
                acc_n, acc_t = acc_n * weight, acc_t * weight
            return acc_n, acc_t, tuple(sums[key] for key in carried)

        def variance_product(u1_ref, u2_ref, row, row2):
            """``u1[row, :]^T u2[row2, :]``; rows past the image (the tail's
            walk computes past the diagonal's end) clamped into it."""
            cols = pl.ds(0, wc)
            if tail is not None:
                row, row2 = jnp.minimum(row, h - 1), jnp.minimum(row2, h - 1)
            return u1_ref[row, cols][:, None] * u2_ref[row2, cols][None, :]

        def window(big_r, sums):
            acc_n, acc_t, carry = window_tiles(big_r, sums)
            big_r2 = big_r + delta
            out_cols = pl.ds(olo, wo)
            row, row2 = olo + big_r, olo + big_r2
            n_out[row, out_cols, row2, out_cols] = acc_n.astype(n_out.dtype)
            t_out[row, out_cols, row2, out_cols] = acc_t.astype(t_out.dtype)
            zero_padded_columns((n_out, t_out), row, row2, pad_cols, cover,
                                wo)
            return carry

        def body(big_r, carry):
            return window(big_r, zip(incoming, carry))

        if tail is not None:
            tail_walk(window_tiles, variance_product, first, last, delta,
                      w1_ref, w2_ref, n_out, t_out, ring)
            return

        @pl.when(jnp.abs(delta) < ho)
        def _walk():
            start = tuple(shifted_sum(step * first + x,
                                      step * (first + delta) + y)
                          for x, y in incoming)
            jax.lax.fori_loop(first, last, body, start)

        # The padded row pairs on this diagonal (pad_output): zero tiles.
        for fixed in pad_rows:
            for row, row2 in ((fixed, fixed + delta), (fixed - delta, fixed)):
                @pl.when((row >= 0) & (row < hop) & (row2 >= 0)
                         & (row2 < hop))
                def _zero():
                    zero_row_pair((n_out, t_out), row, row2, cover, wo)

    def pair_spec(block, index):
        return pl.BlockSpec(block, lambda p, d: index(p))

    if input_patches is not None:
        features = args[0].shape[-1]
        specs = [pair_spec((None, hp, wp, features),
                           lambda p: (p // b2, 0, 0, 0)),
                 pair_spec((None, hp, wp, features),
                           lambda p: (p % b2, 0, 0, 0))]
    else:
        side = (h, w) if masked else (hp, wp)
        full = pair_spec((None,) + side * 2, lambda p: (p, 0, 0, 0, 0))
        specs = [full] * (1 if input_affine is not None else 2)
    if relu_in:
        specs += [pair_spec((None, hp, wp), lambda p: (p // b2, 0, 0)),
                  pair_spec((None, hp, wp), lambda p: (p % b2, 0, 0))]
    # The variances of the ReLU after the convolution (and the tail's).
    specs += [pair_spec((None, h, w), lambda p: (p // b2, 0, 0)),
              pair_spec((None, h, w), lambda p: (p % b2, 0, 0))] * (
                  1 if tail is None else 2)
    out_spec = pair_spec((None, hop, wop, hop, wop),
                         lambda p: (p, 0, 0, 0, 0))
    shape = jax.ShapeDtypeStruct((pairs, hop, wop, hop, wop), var1.dtype)
    out_specs, out_shapes = (out_spec, out_spec), (shape, shape)
    diagonals = 2 * hop - 1
    if tail is not None:
        # Per program: the sums of the tail's outputs, and its ring.
        sums = pl.BlockSpec((None, None), lambda p, d: (p, d))
        ring = pl.BlockSpec((None, slots, 2, wc, wc),
                            lambda p, d: (p * diagonals + d, 0, 0, 0, 0))
        out_specs = (sums, sums, ring)
        out_shapes = (jax.ShapeDtypeStruct((pairs, diagonals), var1.dtype),) * 2 + (
            jax.ShapeDtypeStruct((pairs * diagonals, slots, 2, wc, wc),
                                 var1.dtype),)
    params = None
    if not interpret:
        params = pl_triton.CompilerParams(num_warps=num_warps, num_stages=1)
    name = 'cntk_diag_' + ('patches_' if input_patches is not None else '') + (
        'relu_' if relu_in else '') + (
        'conv_relu' if pool is None else 'conv_relu_pool') + (
        '_conv_relu_gap' if tail is not None else '')
    out_n, out_t, *_ = pl.pallas_call(
        kernel, out_shape=out_shapes, grid=(pairs, diagonals),
        in_specs=specs, out_specs=out_specs,
        interpret=interpret, name=name, compiler_params=params,
    )(*args)
    if tail is not None:
        return tuple((a.sum(axis=1) / (h * w) ** 2).reshape(b1, b2, 1, 1, 1, 1)
                     for a in (out_n, out_t))
    return (out_n.reshape(b1, b2, hop, wop, hop, wop),
            out_t.reshape(b1, b2, hop, wop, hop, wop))


def padding_layout(h: int, w: int, lo: int, hi: int
                   ) -> tuple[list[int], list[int], list[int]]:
    """Where an ``(h, w)`` image's SAME padding ``(lo, hi)`` lies in a padded
    pair covariance ``(h + lo + hi, w + lo + hi, ...)``, as the Pallas steps
    write it: the padded rows, the padded columns, and the column offsets of
    ``w``-wide tiles that cover a padded row (Triton's tiles have power-of-two
    sides, a padded row has not: overlapping tiles)."""
    hp, wp = h + lo + hi, w + lo + hi
    return (list(range(lo)) + list(range(lo + h, hp)),
            list(range(lo)) + list(range(lo + w, wp)), sorted({0, wp - w}))


def zero_row_pair(outs: Sequence, row, row2, cover: Sequence[int],
                  w: int) -> None:
    """Zeros on the whole padded row pair ``(row, row2)`` of each output
    ref (``w x w`` tiles at the ``cover`` offsets, :func:`padding_layout`)."""
    from jax.experimental import pallas as pl  # pylint: disable=g-import-not-at-top
    zeros = jnp.zeros((w, w), outs[0].dtype)
    for c1 in cover:
        for c2 in cover:
            for out in outs:
                out[row, pl.ds(c1, w), row2, pl.ds(c2, w)] = zeros


def zero_padded_columns(outs: Sequence, row, row2, pad_cols: Sequence[int],
                        cover: Sequence[int], w: int) -> None:
    """Zeros on the padded columns of the image row pair ``(row, row2)`` of
    each output ref (:func:`padding_layout`), on both images' sides."""
    from jax.experimental import pallas as pl  # pylint: disable=g-import-not-at-top
    zeros = jnp.zeros((w,), outs[0].dtype)
    for c in pad_cols:
        for start in cover:
            for out in outs:
                out[row, c, row2, pl.ds(start, w)] = zeros
                out[row, pl.ds(start, w), row2, c] = zeros


def _feature_padded(p: jax.Array) -> jax.Array:
    """Patches with their feature axis zero-padded to a power of two of at
    least 16 (Triton's tensors have power-of-two sides, and its float64
    matrix product needs a contraction of 16 or more); the products are
    unchanged."""
    features = p.shape[-1]
    target = max(16, 1 << (features - 1).bit_length())
    return jnp.pad(p, ((0, 0),) * (p.ndim - 1) + ((0, target - features),))


def _unpadded(nngp, ntk, in_vars, padded, input_affine, lo, h, w):
    """The arguments of :func:`conv_relu_diagonal` as the XLA step takes them:
    unpadded, the affine map applied, and ``in_vars`` as a keyword."""
    if padded:
        inner = (slice(lo, lo + h), slice(lo, lo + w)) * 2
        nngp = nngp[(Ellipsis,) + inner]
        ntk = None if ntk is None else ntk[(Ellipsis,) + inner]
        if in_vars is not None:
            in_vars = [u[:, lo:lo + h, lo:lo + w] for u in in_vars]
    if input_affine is not None:
        s1, s0, a1, a0 = input_affine
        nngp, ntk = s1 * nngp + s0, a1 * nngp + a0
    return nngp, ntk, in_vars


__all__ = ['GapTail', 'PRODUCT_PRECISIONS', 'conv_relu_diagonal',
           'padding_layout',
           'zero_padded_columns', 'zero_row_pair']
