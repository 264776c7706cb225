"""One convolution + ReLU (+ 2x2 pool) step of the CNTK, variant by variant.

Times the step that dominates the Myrtle / CNN-GAP kernels at full
resolution, on a block of ``2 x 32`` pairs of ``side x side`` covariances (the
first layer's covariance of random images after its ReLU), for the XLA
recursion (:func:`ntkexp.fastconv.pallas._xla_conv_relu`), the Pallas rows
kernel (:func:`ntkexp.fastconv.pallas.conv_relu`) with both grid orders and
the diagonal kernel (:func:`ntkexp.fastconv.diagonal.conv_relu_diagonal`;
4 and 8 warps, sums carried or not), each checked against the XLA result; and
the first ReLU + that step, in XLA and with the ReLU fused into the diagonal
kernel; and the whole first stage from the images' patches (product, ReLU,
step), in XLA, with the ReLU fused, and with the product fused too
(``diagonal_patches``). Prints microseconds per pair. On a CPU the Pallas rows run in the
interpreter (slow; a check only).

With ``--layers ARCH``, instead times the whole fast kernel of a network of
:mod:`ntkexp.fastconv.bench` on an ``n x n`` block of images cut after each of
its layers (the readout applied there), so successive differences are the cost
of each layer in the XLA recursion (per pair; a cut can change what XLA fuses
across it, so the figures are approximate).

With ``--kernels ARCH``, runs the whole fast kernel under JAX's profiler and
prints the device time of each XLA operation (fusions, matmuls, Triton
kernels) per pair, with its kind, output shape and the operations it fuses
(:func:`kernel_profile`, :mod:`ntkexp.profile_ops`); ``--hlo PATH`` also
writes the optimised HLO.

Usage::

    JAX_DEFAULT_MATMUL_PRECISION=highest python -m ntkexp.fastconv.stage_bench 32
    python -m ntkexp.fastconv.stage_bench --layers myrtle5 --side 32 --n 32
    python -m ntkexp.fastconv.stage_bench --kernels myrtle5 --side 32 --n 32 \
        --hlo /tmp/myrtle5.hlo.txt
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any, Callable

import numpy as np

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
import jax
import jax.numpy as jnp

from ntkexp import bench as ntkexp_bench
from ntkexp.fastconv import pallas, recursion

# The step's constants: a bias-free NTK-parameterised layer with W_std = 1.
COEFFS = dict(k=3, scale=1.0, shift=0.0, alpha=1.0, beta=1.0, gamma=0.0)


def timed(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Median wall seconds of ``fn()`` after a warm-up call."""
    return ntkexp_bench.timed(fn, repeats)[0]


def step_inputs(side: int, b1: int = 2, b2: int = 32,
                dtype: Any = np.float32) -> tuple[jax.Array, ...]:
    """``(raw, raw_ntk, u1, u2, var1, var2)`` of a ``b1 x b2`` block: the first
    layer's covariance of random images before its ReLU (NNGP and NTK, equal
    for a bias-free layer), that ReLU's variances ``u`` and the next one's
    ``var`` (:func:`patch_inputs` with the patches multiplied out)."""
    p1, p2, *variances = patch_inputs(side, b1, b2, dtype)
    raw = jnp.einsum('ahwk,bxyk->abhwxy', p1, p2, precision='highest') / 27
    return (raw, raw, *variances)


def patch_inputs(side: int, b1: int = 2, b2: int = 32,
                 dtype: Any = np.float32) -> tuple[jax.Array, ...]:
    """``(p1, p2, u1, u2, var1, var2)``: the same block as
    :func:`step_inputs` given by the images' first-layer patches instead of
    their product."""
    x = np.random.RandomState(0).randn(b1 + b2, side, side, 3).astype(dtype)
    pt = recursion.patches(jnp.asarray(x), 3)
    var = jnp.einsum('ahwk,ahwk->ahw', pt, pt, precision='highest') / 27
    return pt[:b1], pt[b1:], var[:b1], var[b1:], 0.5 * var[:b1], 0.5 * var[b1:]


def _first_stage(kind: str, pool, warps: int, interpret: bool) -> Callable:
    """Product, ReLU and step from :func:`patch_inputs`: ``'xla'`` (the
    recursion's passes), ``'diagonal_relu_in'`` (XLA's padded product, then
    one kernel), ``'diagonal_patches'`` (one kernel) or
    ``'diagonal_patches_tf32x3'`` (its products as three TF32 products): the
    steps of :func:`pallas.make_conv_relu`."""
    step = None if kind == 'xla' else pallas.make_conv_relu(
        interpret, kind=kind, num_warps=warps)

    def pad(a):
        return recursion.pad_images(a, COEFFS['k'])

    def stage(p1, p2, u1, u2, v1, v2):
        if kind == 'xla':
            raw = recursion._block_first(p1, p2) / 27  # pylint: disable=protected-access
            return pallas._xla_conv_relu(raw, raw, v1, v2, pool=pool,  # pylint: disable=protected-access
                                         in_vars=(u1, u2), **COEFFS)
        options = dict(padded=True, in_vars=(pad(u1), pad(u2)),
                       input_affine=(1 / 27, 0.0, 1 / 27, 0.0), pool=pool,
                       **COEFFS)
        if step.fuses_input_product:
            return step(None, None, v1, v2, input_patches=(pad(p1), pad(p2)),
                        **options)
        raw = recursion._block_first(pad(p1), pad(p2))  # pylint: disable=protected-access
        return step(raw, None, v1, v2, **options)

    return jax.jit(stage)


def variants(interpret: bool) -> dict[tuple[Any, str, str], Callable]:
    """Jitted step variants keyed by ``(pool, group, name)``, each group's XLA
    one first. Group ``'step'`` times conv + ReLU (+ pool) on the first ReLU's
    output; group ``'relu+step'`` times the first ReLU too (XLA: the ReLU
    then the step; Pallas: the diagonal kernel with the ReLU fused); group
    ``'product+relu+step'`` the first layer's product too
    (:func:`patch_inputs`)."""
    from ntkexp.fastconv import diagonal  # pylint: disable=g-import-not-at-top
    out = {}
    for pool in (2, None):
        out[pool, 'step', 'xla'] = jax.jit(functools.partial(
            pallas._xla_conv_relu, pool=pool, **COEFFS))  # pylint: disable=protected-access
        for pairs_last in (False, True):
            name = 'pallas_w4' + ('_pairs_last' if pairs_last else '')
            out[pool, 'step', name] = jax.jit(functools.partial(
                pallas.conv_relu, pool=pool, num_warps=4, pairs_last=pairs_last,
                interpret=interpret, **COEFFS))
        for warps in (4, 8):
            for carry in (True, False):
                name = f'diagonal_w{warps}' + ('' if carry else '_no_carry')
                out[pool, 'step', name] = jax.jit(functools.partial(
                    diagonal.conv_relu_diagonal, pool=pool, num_warps=warps,
                    carry_sums=carry, interpret=interpret, **COEFFS))
        out[pool, 'relu+step', 'xla'] = jax.jit(
            lambda n, t, u1, u2, v1, v2, pool=pool:
            pallas._xla_conv_relu(n, t, v1, v2, pool=pool, in_vars=(u1, u2),  # pylint: disable=protected-access
                                  **COEFFS))
        for warps in (4, 8):
            out[pool, 'relu+step', f'diagonal_relu_in_w{warps}'] = jax.jit(
                lambda n, t, u1, u2, v1, v2, pool=pool, warps=warps:
                diagonal.conv_relu_diagonal(
                    n, t, v1, v2, pool=pool, in_vars=(u1, u2),
                    num_warps=warps, interpret=interpret, **COEFFS))
        out[pool, 'product+relu+step', 'xla'] = _first_stage(
            'xla', pool, 4, interpret)
        for kind in ('diagonal_relu_in', 'diagonal_patches',
                     'diagonal_patches_tf32x3'):
            for warps in (4, 8):
                out[pool, 'product+relu+step', f'{kind}_w{warps}'] = (
                    _first_stage(kind, pool, warps, interpret))
    return out


def layer_profile(arch: str, side: int, n: int,
                  repeats: int = 3) -> list[dict[str, Any]]:
    """Seconds per pair of ``arch``'s fast kernel cut after each layer."""
    import dataclasses  # pylint: disable=g-import-not-at-top
    net, x1, x2 = _net_and_images(arch, side, n)
    rows, before = [], 0.0
    for cut in range(1, len(net.layers) + 1):
        part = dataclasses.replace(net, layers=net.layers[:cut])
        kernel = jax.jit(lambda a, b, part=part: recursion.kernel(
            part, a, b, ('ntk',))['ntk'])
        seconds = timed(lambda: kernel(x1, x2), repeats) / (n * n)
        rows.append(dict(arch=arch, layer=cut - 1, kind=net.layers[cut - 1],
                         us_per_pair_cumulative=seconds * 1e6,
                         us_per_pair_layer=(seconds - before) * 1e6))
        before = seconds
        print(' '.join(f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}'
                       for k, v in rows[-1].items()), flush=True)
    return rows


def _net_and_images(arch: str, side: int, n: int):
    from ntkexp.fastconv import bench  # pylint: disable=g-import-not-at-top
    fn, kwargs = bench.ARCHITECTURES[arch]
    net = fn(**kwargs, fast_kernel=True)[2].net
    rng = np.random.RandomState(0)
    x1, x2 = (jnp.asarray(rng.randn(n, side, side, 3).astype(np.float32))
              for _ in range(2))
    return net, x1, x2


def kernel_profile(arch: str, side: int, n: int, repeats: int = 3,
                   hlo: str | None = None, top: int = 25
                   ) -> list[dict[str, Any]]:
    """Device time per XLA operation of ``arch``'s fast kernel on an ``n x n``
    block (:func:`ntkexp.profile_ops.profile_ops`: JAX's profiler trace read
    back, each operation described from the compiled HLO).

    Returns:
        Up to ``top`` rows ``{name, calls, us_per_pair, share, opcode, shape,
        contents}``, largest first.
    """
    from ntkexp import profile_ops  # pylint: disable=g-import-not-at-top
    net, x1, x2 = _net_and_images(arch, side, n)

    def fn(a, b):
        return recursion.kernel(net, a, b, ('ntk',))['ntk']

    frame = profile_ops.profile_ops(fn, (x1, x2), repeats, hlo=hlo)
    return [dict(name=row.op, calls=row.calls, us_per_pair=row.us / (n * n),
                 share=row.share, opcode=row.opcode, shape=row.shape,
                 contents=row.contents)
            for row in frame.head(top).itertuples()]


def parse_args(argv: list[str]):
    """The command line: ``[SIDE]``, or ``--layers ARCH`` / ``--kernels ARCH``
    with ``--side``, ``--n`` (and ``--hlo`` for ``--kernels``)."""
    import argparse  # pylint: disable=g-import-not-at-top
    parser = argparse.ArgumentParser(
        prog='python -m ntkexp.fastconv.stage_bench',
        description='Times one conv + ReLU (+ pool) step of the CNTK per '
        'variant (default), the cost of each layer (--layers) or the '
        "device's kernels (--kernels).")
    parser.add_argument('step_side', nargs='?', type=int, default=32,
                        metavar='SIDE',
                        help='image side of the one-step timings (default 32)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--layers', metavar='ARCH',
                      help='time the whole kernel of ARCH cut after each layer')
    mode.add_argument('--kernels', metavar='ARCH',
                      help="profile the whole kernel of ARCH's device kernels")
    parser.add_argument('--side', type=int, default=32,
                        help='with --layers / --kernels: image side')
    parser.add_argument('--n', type=int, default=32,
                        help='with --layers / --kernels: images per block side')
    parser.add_argument('--hlo', default=None,
                        help='with --kernels: write the optimised HLO')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.layers:
        layer_profile(args.layers, args.side, args.n)
        return
    if args.kernels:
        for row in kernel_profile(args.kernels, args.side, args.n,
                                  hlo=args.hlo):
            print(f"{row['us_per_pair']:9.3f} us/pair {row['share']:6.1%} "
                  f"x{row['calls']:<5g} {row['name']} | {row['opcode']} "
                  f"{row['shape']} | {row['contents']}")
        return
    side = args.step_side
    step_args = step_inputs(side)
    # The 'step' group's inputs (nngp, ntk, var1, var2): after the first ReLU.
    nngp, dot = recursion.relu(step_args[0], recursion.block_variance_product(
        step_args[2], step_args[3]))
    after = (nngp, step_args[1] * dot) + step_args[4:]
    patched = patch_inputs(side)
    pairs = step_args[0].shape[0] * step_args[0].shape[1]
    ref, t_ref = {}, {}
    for (pool, group, name), fn in variants(
            jax.default_backend() == 'cpu').items():
        inputs = {'relu+step': step_args, 'step': after,
                  'product+relu+step': patched}[group]
        try:
            start = time.perf_counter()
            out = jax.block_until_ready(fn(*inputs))
            first = time.perf_counter() - start
            ref.setdefault(pool, out)
            err = max(float(jnp.abs(a - b).max() / jnp.abs(b).max())
                      for a, b in zip(out, ref[pool]))
            seconds = timed(lambda: fn(*inputs))  # pylint: disable=cell-var-from-loop
            t_ref.setdefault((pool, group), seconds)
            print(f'side={side} pool={pool} {group} {name}: '
                  f'{seconds / pairs * 1e6:.2f} us/pair, '
                  f'{t_ref[pool, group] / seconds:.2f}x xla, rel err {err:.1e}, '
                  f'first call {first:.1f}s', flush=True)
        except Exception as error:  # pylint: disable=broad-except
            print(f'side={side} pool={pool} {group} {name}: '
                  f'{type(error).__name__}: {str(error)[:300]}', flush=True)


if __name__ == '__main__':
    main()
